"""helpers.train: aligned features, head copying, histories, metrics and the dtype policy."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ci_config

from helpers import train


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


def test_setting_hint_names_both_ways():
    from helpers.errors import setting_hint

    hint = setting_hint("TL_DATA", "sample")
    assert "TL_DATA=sample make lab" in hint and "%env TL_DATA=sample" in hint
