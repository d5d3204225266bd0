"""helpers.train: aligned features, head copying, histories, metrics and the dtype policy."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ci_config
from helpers import train
from helpers.errors import LearnerError


@pytest.fixture
def cfg(tmp_path):
    return dataclasses.replace(ci_config(), output_dir=tmp_path / "run")


def test_extract_features_keeps_labels_aligned_on_a_shuffled_dataset():
    # Each image is filled with its own label, so a feature equals its label if they stay aligned.
    labels = np.arange(40) % 2
    images = np.repeat(labels[:, None, None, None], 4, axis=1).repeat(4, 2).repeat(3, 3)
    dataset = (
        tf.data.Dataset.from_tensor_slices((images.astype("float32"), labels))
        .shuffle(40, reshuffle_each_iteration=True)
        .batch(7)  # a smaller last batch too
    )
    extractor = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.GlobalAveragePooling2D()])
    features, collected = train.extract_features(extractor, dataset)
    assert features.shape == (40, 3)
    np.testing.assert_array_equal(features[:, 0], collected)
    assert sorted(collected.tolist()) == sorted(labels.tolist())


def test_extract_features_traces_once_for_every_batch_size():
    traces = []

    class CountTraces(keras.layers.Layer):
        def call(self, inputs):
            traces.append(inputs.shape)  # Python runs only while tf.function traces
            return inputs

    images = np.zeros((10, 4, 4, 3), dtype="uint8")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(10))).batch(4)  # 4, 4, 2
    extractor = keras.Sequential(
        [keras.Input((4, 4, 3)), CountTraces(), keras.layers.GlobalAveragePooling2D()]
    )
    traces.clear()  # building the Sequential model called the layer once
    features, _ = train.extract_features(extractor, dataset)
    assert features.shape == (10, 3)
    assert len(traces) == 1, f"traced for {traces}: the last, smaller batch traced again"
    again, _ = train.extract_features(extractor, dataset.map(lambda x, y: (x + 1, y)))
    assert len(traces) == 1, "a second pass of the same model traced again"
    np.testing.assert_array_equal(again, features + 1)

    import gc
    import weakref

    held = weakref.ref(extractor)
    del extractor
    gc.collect()
    assert held() is None, "the kept compiled step keeps the model alive"


def test_a_head_run_50_steps_a_call_learns_the_same_weights_as_one_step_a_call(cfg):
    # 04's claim for steps_per_execution=50; 7 does not divide the 16 steps an epoch
    rng = np.random.default_rng(0)
    features = rng.normal(size=(320, 16)).astype("float32")
    labels = (features[:, 0] > 0).astype("float32")
    results = []
    for steps in (1, 50, 7):
        keras.utils.set_random_seed(1)
        head = train.head_on_features(16, 2)  # its dropout draws random numbers every step
        train.compile_for_logits(head, 1e-2, cfg, steps_per_execution=steps)
        assert head.steps_per_execution == steps
        history = head.fit(  # as 04 gives it its vectors
            train.features_dataset(cfg, features[:256], labels[:256], shuffle=True),
            validation_data=train.features_dataset(cfg, features[256:], labels[256:]),
            epochs=3,
            verbose=0,
        )
        results.append((head.get_weights(), history.history))
    for weights, history in results[1:]:
        for mine, reference in zip(weights, results[0][0], strict=True):
            np.testing.assert_array_equal(mine, reference)
        assert history == results[0][1]


def test_features_dataset_keeps_each_vector_with_its_label_and_reshuffles_each_epoch(cfg):
    features = np.arange(40 * 3, dtype="float32").reshape(40, 3)  # row i: 3i, 3i + 1, 3i + 2
    labels = np.arange(40)
    ordered = train.features_dataset(cfg, features, labels)
    assert ordered.options().autotune.enabled is False  # as data.prepare's
    batches = list(ordered)
    assert [len(y) for _, y in batches] == [16, 16, 8], "cfg.batch_size (16 in ci), then the rest"
    assert np.array_equal(np.concatenate([y for _, y in batches]), labels)
    shuffled = train.features_dataset(cfg, features, labels, shuffle=True)
    epochs = []
    for _ in range(2):
        x, y = (np.concatenate(part) for part in zip(*shuffled, strict=True))
        np.testing.assert_array_equal(x, features[y])  # each vector with its own label
        assert sorted(y) == list(labels)
        epochs.append(list(y))
    assert epochs[0] != list(labels) and epochs[1] != epochs[0], "not reshuffled each epoch"


def test_head_weights_copy_into_the_classifier():
    head = train.head_on_features(5)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dropout(0.2), keras.layers.Dense(1, name="logit")]
    )
    head.get_layer("logit").set_weights([np.full((5, 1), 0.5), np.array([2.0])])
    train.copy_head(head, model)
    kernel, bias = model.get_layer("logit").get_weights()
    np.testing.assert_array_equal(kernel, np.full((5, 1), 0.5))
    assert bias[0] == 2.0


def test_head_outputs_a_logit():
    head = train.head_on_features(3)
    assert head.get_layer("logit").activation is keras.activations.linear


def test_combine_histories_joins_phases_and_marks_where_each_starts():
    head = {"loss": [3, 2, 1], "val_loss": [3, 2, 2], "accuracy": [0.5, 0.6, 0.7]}
    fine = {"loss": [0.9, 0.8], "val_loss": [1.5, 1.4]}
    combined, starts = train.combine_histories(head, fine)
    assert combined == {"loss": [3, 2, 1, 0.9, 0.8], "val_loss": [3, 2, 2, 1.5, 1.4]}
    assert starts == [3]


def test_histories_round_trip_and_missing_is_none(cfg):
    assert train.load_history(cfg, "transfer_learning") is None
    history = keras.callbacks.History()
    history.history = {"loss": [np.float32(0.5), 0.25]}
    train.save_history(cfg, "transfer_learning", history)
    assert train.load_history(cfg, "transfer_learning") == {"loss": [0.5, 0.25]}


def test_record_metrics_keeps_other_stages(cfg):
    train.record_metrics(cfg, "transfer_learning", test_accuracy=np.float32(0.91234), seconds=3.0)
    train.record_metrics(cfg, "fine_tuning", test_accuracy=0.95, epochs=5)
    saved = json.loads(train.metrics_path(cfg).read_text())
    assert saved["transfer_learning"] == {"test_accuracy": 0.9123, "seconds": 3.0}
    assert saved["fine_tuning"] == {"test_accuracy": 0.95, "epochs": 5}


def test_mixed_precision_only_on_a_gpu(cfg):
    try:
        assert train.use_fast_settings(dataclasses.replace(cfg, gpu=True)) == "mixed_float16"
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        assert train.use_fast_settings(cfg) == "float32"
        assert keras.mixed_precision.global_policy().name == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_epoch_timer_records_one_duration_per_epoch():
    model = train.head_on_features(2)
    model.compile(optimizer="adam", loss="mse")
    timer = train.EpochTimer()
    model.fit(np.zeros((4, 2)), np.zeros(4), epochs=3, verbose=0, callbacks=[timer])
    assert len(timer.epoch_seconds) == 3 and all(s > 0 for s in timer.epoch_seconds)


def test_epoch_timer_leaves_the_validation_pass_out_of_train_seconds():
    import time

    class SlowValidation(keras.callbacks.Callback):  # 0.3 s in every validation pass
        def on_test_batch_end(self, batch, logs=None):
            time.sleep(0.3)

    model = train.head_on_features(2)
    model.compile(optimizer="adam", loss="mse")
    timer = train.EpochTimer()
    data = (np.zeros((4, 2)), np.zeros(4))
    model.fit(*data, validation_data=data, batch_size=4, epochs=2, verbose=0,
              callbacks=[timer, SlowValidation()])  # fmt: skip
    for total, training in zip(timer.epoch_seconds, timer.train_seconds, strict=True):
        assert total - training >= 0.3 and 0 < training < total


def test_epoch_timer_leaves_the_first_step_out_of_steady_seconds():
    import time

    class SlowFirstStep(keras.callbacks.Callback):  # 0.5 s more in each epoch's first step
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                time.sleep(0.5)

    model = train.head_on_features(2)
    model.compile(optimizer="adam", loss="mse")
    timer = train.EpochTimer()
    model.fit(np.zeros((40, 2)), np.zeros(40), batch_size=4, epochs=2, verbose=0,
              callbacks=[timer, SlowFirstStep()])  # fmt: skip
    for training, steady in zip(timer.train_seconds, timer.steady_seconds, strict=True):
        assert training >= 0.5 and 0 < steady < 0.25, (training, steady)


def test_transfer_model_trains_the_head_05_uses_when_04_did_not_run(tmp_path):
    cfg = dataclasses.replace(
        ci_config(TL_BACKBONE="mobilenet", TL_ALPHA="0.25", TL_IMAGE_SIZE="32"),
        output_dir=tmp_path,
    )
    from helpers import data, models

    splits = data.load(cfg)
    model, history = train.transfer_model(cfg, splits, epochs=2)
    assert len(history.history["val_accuracy"]) == 2
    assert len(model.trainable_weights) == 2, "only the head is trainable"
    assert model.get_layer(models.BASE_NAME).trainable is False
    assert model.get_layer("logit").activation is keras.activations.linear


def test_fine_tuned_model_trains_once_then_reuses_what_it_saved(tmp_path):
    cfg = dataclasses.replace(
        ci_config(TL_BACKBONE="mobilenet", TL_ALPHA="0.25", TL_IMAGE_SIZE="32"),
        output_dir=tmp_path,
    )
    from helpers import augment, data, models

    splits = data.load(cfg)
    model, why = train.fine_tuned_model(cfg, splits)
    assert "run 05 first" in why and "fine-tuned here" in why
    assert (tmp_path / "fine_tuned_model.keras").is_file()
    assert augment.NAME not in [layer.name for layer in model.layers], "saved for inference"
    base_model = model.get_layer(models.BASE_NAME)
    assert base_model.trainable, "the base was unfrozen for fine-tuning"
    assert not any(layer.trainable for layer in models.batchnorm_layers(base_model))
    again, why_again = train.fine_tuned_model(cfg, splits)
    assert why_again.startswith("loaded")
    images, _ = next(iter(splits.test))
    np.testing.assert_allclose(again.predict_on_batch(images), model.predict_on_batch(images))

    # 05's model damaged, 04's there and matching: fine-tuned from 04's, not from a new head
    (tmp_path / "fine_tuned_model.keras").write_bytes(b"half a file")
    head_model, _ = train.transfer_model(cfg, splits)
    models.save(head_model, cfg, "transfer_model")
    _, why_damaged = train.fine_tuned_model(cfg, splits)
    assert "damaged" in why_damaged and "fine-tuned 04's model" in why_damaged, why_damaged


def test_setting_hint_names_both_ways():
    from helpers.errors import setting_hint

    hint = setting_hint("TL_DATA", "sample")
    assert "TL_DATA=sample make lab" in hint and "%env TL_DATA=sample" in hint


# Validation losses a fine-tuning might see: the best is epoch 2 (0.28); patience 3 stops after 5.
SCRIPTED_VAL_LOSS = [0.5, 0.28, 0.6, 0.623, 0.7, 0.8, 0.9]


class _Scripted(keras.callbacks.Callback):
    """Replaces val_loss by SCRIPTED_VAL_LOSS; raises KeyboardInterrupt after ``stop_after``."""

    def __init__(self, stop_after=None):
        super().__init__()
        self.stop_after = stop_after

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = SCRIPTED_VAL_LOSS[epoch]

    def on_epoch_begin(self, epoch, logs=None):
        if self.stop_after is not None and epoch == self.stop_after:
            raise KeyboardInterrupt  # Ctrl-C after `stop_after` epochs were backed up


def _fine_tune(folder, stop_after=None, early_stopping_class=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(0).normal(size=(12, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    make = early_stopping_class or train.ResumableEarlyStopping
    arguments = {} if early_stopping_class else {"folder": folder}
    early_stopping = make(monitor="val_loss", patience=3, restore_best_weights=True, **arguments)
    callbacks = [
        _Scripted(),  # first: the scripted val_loss is what EarlyStopping sees
        early_stopping,
        keras.callbacks.BackupAndRestore(str(folder)),
        _Scripted(stop_after),
    ]
    plain = early_stopping_class is not None
    with contextlib.nullcontext() if plain else train.resume_hint(early_stopping):
        model.fit(
            x,
            y,
            validation_data=(x, y),
            epochs=7,
            batch_size=4,
            shuffle=False,
            callbacks=callbacks,
            verbose=0,
        )
    return model, early_stopping


def test_early_stopping_keeps_the_best_epoch_and_every_epoch_across_a_resume(tmp_path):
    straight, reference = _fine_tune(tmp_path / "straight")
    assert reference.best_epoch == 1 and len(reference.records) == 5  # stopped after epoch 5

    with pytest.raises(LearnerError, match=r"during epoch 4 \(epochs 1-3 are backed up\)"):
        _fine_tune(tmp_path / "resumed", stop_after=3)
    model, resumed = _fine_tune(tmp_path / "resumed")
    assert resumed.best_epoch == 1, "the best epoch before the interruption was forgotten"
    assert resumed.history == reference.history  # every epoch once, in order
    assert len(resumed.epoch_seconds) == 5
    for ours, theirs in zip(model.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)  # the same run, the same arithmetic
    assert not (tmp_path / "resumed").exists(), "a finished run keeps its backup"


def test_keras_early_stopping_alone_forgets_the_best_epoch_after_a_resume(tmp_path):
    # Why ResumableEarlyStopping exists: with the same interruption, Keras's own restores epoch 4.
    with pytest.raises(KeyboardInterrupt):
        _fine_tune(tmp_path, stop_after=3, early_stopping_class=keras.callbacks.EarlyStopping)
    _, plain = _fine_tune(tmp_path, early_stopping_class=keras.callbacks.EarlyStopping)
    assert plain.best_epoch == 3


def test_an_epoch_recorded_but_not_backed_up_runs_again_and_replaces_its_record(tmp_path):
    # Killed after epoch 4 was recorded here but before BackupAndRestore saved it: the backup
    # resumes after epoch 3, epoch 4 runs again, and its record is replaced, not kept twice.
    _, reference = _fine_tune(tmp_path / "straight")
    with pytest.raises(LearnerError):
        _fine_tune(tmp_path / "run", stop_after=3)
    state_path = tmp_path / "run" / "early_stopping.json"
    state = json.loads(state_path.read_text())
    state["records"].append({**state["records"][-1], "logs": {"loss": -1.0, "val_loss": 0.01}})
    state_path.write_text(json.dumps(state))
    _, resumed = _fine_tune(tmp_path / "run")
    assert resumed.history == reference.history and resumed.best_epoch == 1


def test_a_backup_without_its_early_stopping_record_resumes_with_gaps_and_a_warning(
    tmp_path, capsys
):
    with pytest.raises(LearnerError, match="epochs 1-3 are backed up"):
        _fine_tune(tmp_path / "run", stop_after=3)
    (tmp_path / "run" / "early_stopping.json").unlink()  # lost; the backup is still there
    _, resumed = _fine_tune(tmp_path / "run")
    assert "knows 0 of the 3 epochs" in capsys.readouterr().err
    losses = resumed.history["val_loss"]
    assert np.isnan(losses[:3]).all() and not np.isnan(losses[3:]).any()
    assert losses[resumed.best_epoch] == min(losses[3:])  # the best of what it saw


def test_features_of_reads_back_only_what_the_same_extractor_computed_on_the_same_files(
    cfg, tmp_path, monkeypatch
):
    # 04 computes and keeps (reuse=False); 05 reads them back. Anything they depend on changes
    # the file's name: the extractor's weights, a layer's settings, a photo's bytes.
    photos = []
    for index in range(6):
        photos.append(tmp_path / f"photo{index}.jpg")
        photos[-1].write_bytes(b"x" * (index + 1))
    images = np.random.default_rng(0).uniform(0, 255, (6, 8, 8, 3)).astype("float32")
    labels = np.arange(6) % 2
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    splits = SimpleNamespace(
        train=dataset, files={"train": (photos, labels.tolist())}, source="a folder", sizes={}
    )

    def extractor(scale=1.0):
        return keras.Sequential(
            [keras.Input((8, 8, 3)), keras.layers.Rescaling(scale), keras.layers.Conv2D(2, 3)]
            + [keras.layers.GlobalAveragePooling2D()]
        )

    computed = []
    real_extract = train.extract_features
    monkeypatch.setattr(
        train, "extract_features", lambda *a: computed.append(1) or real_extract(*a)
    )
    first = extractor()
    features, got = train.features_of(cfg, first, splits, "train", reuse=False)
    assert len(computed) == 1 and sorted(got.tolist()) == sorted(labels.tolist())
    again, again_labels = train.features_of(cfg, first, splits, "train")
    assert len(computed) == 1, "the same extractor on the same files computed them again"
    np.testing.assert_array_equal(again, features)
    np.testing.assert_array_equal(again_labels, got)

    train.features_of(cfg, extractor(), splits, "train")  # other random weights
    assert len(computed) == 2
    other_scale = extractor(scale=0.5)
    other_scale.set_weights(first.get_weights())  # same weights, another layer setting
    train.features_of(cfg, other_scale, splits, "train")
    assert len(computed) == 3
    train.features_of(cfg, first, splits, "train", reuse=False)
    photos[2].write_bytes(b"yyy")  # a photo replaced under the same name and size
    train.features_of(cfg, first, splits, "train")
    assert len(computed) == 5

    kept = list((cfg.output_dir / "features").glob("train-*.npz"))
    assert len(kept) == 1, "older files of a split are removed"
    kept[0].write_bytes(b"damaged")
    damaged_too, _ = train.features_of(cfg, first, splits, "train")
    assert len(computed) == 6 and damaged_too.shape == features.shape
