"""Training plumbing for 04 and 05: speed settings, cached features, histories and metrics.

Freezing, compiling and fitting, the lesson, stay in the notebooks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
import weakref
from pathlib import Path

import keras
import numpy as np

from helpers import files, progress
from helpers.config import METRICS_ADVICE, Config
from helpers.errors import LearnerError


def use_fast_settings(cfg: Config) -> str:
    """Returns the dtype policy set: mixed precision on a GPU only (slower on a CPU). From 04."""
    policy = "mixed_float16" if cfg.gpu else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


class EpochTimer(keras.callbacks.Callback):
    """A callback that records the seconds each epoch took, in ``epoch_seconds``, the same
    without the epoch's validation pass, in ``train_seconds`` (08's images a second), and the
    training steps after the first, scaled to all of them, in ``steady_seconds``: an epoch without
    the graph tracing its first step does, so one epoch is enough to time one (04)."""

    def on_train_begin(self, logs=None):
        self.epoch_seconds: list[float] = []
        self.train_seconds: list[float] = []
        self.steady_seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._validating = time.perf_counter(), 0.0
        self._step_ends: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        self._step_ends.append(time.perf_counter())

    def on_test_begin(self, logs=None):  # fit's validation calls the same callbacks
        self._test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self._validating += time.perf_counter() - self._test_start

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        self.epoch_seconds.append(seconds)
        self.train_seconds.append(seconds - self._validating)
        ends = self._step_ends  # the first step's end: the graph is traced and the data flows
        steady = (ends[-1] - ends[0]) * len(ends) / (len(ends) - 1) if len(ends) > 1 else None
        self.steady_seconds.append(steady or seconds - self._validating)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """``EarlyStopping`` that remembers, across a ``BackupAndRestore`` resume, what it has seen.

    Introduced in 05. Keras's own forgets the best epoch before a resume and restores a later, worse
    one. This one keeps each epoch's logs, seconds and its state in ``folder``. Put it before
    ``BackupAndRestore``, with the same folder: an epoch is recorded before it is backed up, and
    the backup's removal removes this too. ``history`` holds every epoch once, resumed or not.
    """

    def __init__(self, folder: str | Path, **kwargs):
        super().__init__(**kwargs)
        self.folder = Path(folder)
        self.records: list[dict] = []

    @property
    def history(self) -> dict[str, list[float]]:
        keys = next((record["logs"] for record in self.records if record["logs"]), {})
        return {key: [r["logs"].get(key, math.nan) for r in self.records] for key in keys}

    @property
    def epoch_seconds(self) -> list[float]:
        return [record["seconds"] for record in self.records]

    def _state_path(self) -> Path:
        return self.folder / "early_stopping.json"

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.records, self._resumed = [], False
        try:
            state = files.read_json(self._state_path(), "") if self._state_path().is_file() else {}
        except files.DamagedFileError:
            files.warn(f"{self._state_path()} is damaged: epochs before the resume are not known")
            state = {}
        self.records = state.get("records", []) if isinstance(state, dict) else []

    def _resume_from(self, epoch: int) -> None:
        """Keeps the records of the epochs before ``epoch`` and the state after the last one."""
        del self.records[epoch:]  # an epoch recorded but not backed up runs again
        if len(self.records) < epoch:  # the backup holds epochs this file does not know
            files.warn(
                f"{self._state_path()} knows {len(self.records)} of the {epoch} epochs the backup "
                "holds: the history shows them as gaps, and the best epoch is chosen after them"
            )
            gap = {"logs": {}, "seconds": 0.0}  # not known: NaN in history, 0 s
            self.records += [gap] * (epoch - len(self.records))
            return
        if self.records:
            last = self.records[-1]
            self.best, self.best_epoch, self.wait = last["best"], last["best_epoch"], last["wait"]
            if self.restore_best_weights:
                with np.load(self.folder / last["weights"]) as stored:
                    self.best_weights = [stored[f"arr_{i}"] for i in range(len(stored.files))]

    def on_epoch_begin(self, epoch, logs=None):
        if not self._resumed:
            self._resume_from(epoch)
            self._resumed = True
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        weights = f"best_weights_epoch_{self.best_epoch + 1}.npz"
        if self.restore_best_weights and self.best_epoch == epoch:
            self.folder.mkdir(parents=True, exist_ok=True)
            with files.atomic_path(self.folder / weights) as temporary:
                with open(temporary, "wb") as file:
                    np.savez(file, *self.best_weights)
        self.records.append(
            {
                "logs": {key: float(value) for key, value in (logs or {}).items()},
                "seconds": time.perf_counter() - self._start,
                "best": None if self.best is None else float(self.best),
                "best_epoch": int(self.best_epoch),
                "wait": int(self.wait),
                "weights": weights,
            }
        )
        files.atomic_write_json(self._state_path(), {"records": self.records})
        kept = {r.get("weights") for r in self.records[-2:]}  # a rerun needs the last two
        for old in self.folder.glob("best_weights_epoch_*.npz"):
            if old.name not in kept:
                old.unlink()


@contextlib.contextmanager
def resume_hint(early_stopping: ResumableEarlyStopping):
    """Turns an interrupt during ``fit`` into one line: running the cell again resumes (05)."""
    try:
        yield
    except KeyboardInterrupt:
        done = len(early_stopping.records)
        saved = {0: "no epoch had finished", 1: "epoch 1 is backed up"}.get(
            done, f"epochs 1-{done} are backed up"
        )
        raise LearnerError(
            f"interrupted during epoch {done + 1} ({saved}). Run this cell again to resume "
            + (f"after epoch {done}." if done else "from the start.")
        ) from None


FEATURES_BAR_MINIMUM = 20  # batches: a progress bar when the pass takes more than seconds


def _batches(dataset, description: str):
    """Returns the batches of ``dataset`` behind a progress bar when the pass is long."""
    batches = int(dataset.cardinality())  # negative when unknown or infinite: no bar
    return progress.bar(
        dataset,
        batches if batches >= 0 else None,
        description,
        minimum=FEATURES_BAR_MINIMUM,
        unit="batch",
    )


# extract_features's compiled step for each model and image shape, kept while the model lives:
# tracing a MobileNet's again took 0.3 s a call, and 04 passes the same extractor over the
# training and validation images, then the mirrored ones (Exercise 2 and its check).
_INFERENCE_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _inference_step(model: keras.Model, images_spec):
    """Returns a ``tf.function`` of ``model(images, training=False)`` for images of
    ``images_spec``'s shape and dtype: traced once for every batch size, reused by later calls."""
    import tensorflow as tf

    key = (tuple(images_spec.shape[1:]), images_spec.dtype)
    steps = _INFERENCE_STEPS.setdefault(model, {})
    if key not in steps:
        held = weakref.ref(model)  # the cache must not keep the model alive
        steps[key] = tf.function(
            lambda images: held()(images, training=False),
            input_signature=[tf.TensorSpec([None, *key[0]], key[1])],
        )
    return steps[key]


def extract_features(feature_extractor: keras.Model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(features, labels)`` from one pass over ``dataset``, so they line up (04)."""
    # One compiled step for every batch: the signature leaves the batch size open, so the last,
    # smaller batch needs no second trace, and the next pass of the same model none at all.
    step = _inference_step(feature_extractor, dataset.element_spec[0])
    features, labels = [], []
    for images, batch_labels in _batches(dataset, "computing features"):
        features.append(keras.ops.convert_to_numpy(step(images)))
        labels.append(np.asarray(batch_labels))
    return np.concatenate(features), np.concatenate(labels)


def _features_file(cfg: Config, feature_extractor: keras.Model, splits, role: str) -> Path:
    """Where :func:`features_of` keeps a split's features: named after everything they depend on
    (the extractor's layers and weights, the image size, the split's files with their sizes and
    times, or the TFDS source), so a change of any gives another name."""
    digest = hashlib.sha256()
    for layer in feature_extractor.layers:
        config = {k: v for k, v in layer.get_config().items() if k != "name"}
        digest.update(json.dumps([type(layer).__name__, config], default=str).encode())
    for weight in feature_extractor.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    paths, labels = splits.files.get(role, ([], []))
    stats = [(str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in paths]
    identity = [role, cfg.image_size, splits.source, splits.sizes.get(role), stats, labels]
    digest.update(json.dumps(identity, default=str).encode())
    return Path(cfg.output_dir) / "features" / f"{role}-{digest.hexdigest()[:16]}.npz"


def features_of(
    cfg: Config, feature_extractor: keras.Model, splits, role: str, *, reuse: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Returns :func:`extract_features` of ``splits.<role>``, kept in ``TL_OUTPUT_DIR/features``.

    A frozen extractor gives the same features for the same images: 04 computes them
    (``reuse=False``) and 05's control reads them back instead of a second pass (about 7 s on
    2,000 photos). A missing or damaged file is computed again.
    """
    path = _features_file(cfg, feature_extractor, splits, role)
    if reuse and path.is_file():
        try:
            with np.load(path) as kept:
                return kept["features"], kept["labels"]
        except (OSError, ValueError, KeyError, EOFError):
            pass  # damaged: computed again below, and replaced
    features, labels = extract_features(feature_extractor, getattr(splits, role))
    try:
        with files.atomic_path(path) as temporary, open(temporary, "wb") as stream:
            np.savez(stream, features=features, labels=labels)
        for older in path.parent.glob(f"{role}-*.npz"):  # one file a split: the newest
            if older != path:
                older.unlink()
    except OSError:
        pass  # an unwritable output folder: the next notebook computes them again
    return features, labels


def store_views(
    cfg: Config, bottom: keras.Model, dataset, views: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Returns ``(stored, labels)``: the frozen bottom's output for ``views`` views of each image.

    Introduced in 05. Views: the image, its mirror, then seeded draws of ``augment.build()``.
    ``stored``: one ``(images, views, ...)`` array per output of ``bottom``.
    """
    import tensorflow as tf

    from helpers import augment, models

    if views < 1:
        raise ValueError(f"views={views!r}: store at least 1 view (the image itself).")
    _check_memory(bottom, dataset, views, cfg.batch_size)
    scaling = models.backbone(cfg).scaling()
    augmentation = augment.build(seed=cfg.seed)

    def activations(images):
        return keras.tree.flatten(bottom(scaling(images), training=False))

    step = tf.function(activations, reduce_retracing=True)

    @tf.function(reduce_retracing=True)
    def image_and_mirror(images):  # one compiled call for both (05: 9.6 s of CPU, not 11.1)
        images = tf.cast(images, "float32")
        return [activations(images), activations(tf.image.flip_left_right(images))]

    # Written in place into arrays sized for every batch: stacking each batch's views, then
    # joining the batches, copied the 341 MB of 05's views twice (1.3 s of its 8.6 s).
    batches = int(dataset.cardinality())  # negative when unknown
    stored: list[np.ndarray] = []
    labels = []
    filled = 0
    for images, batch_labels in _batches(dataset, "storing activations"):
        if views == 1:
            outputs = [step(tf.cast(images, "float32"))]
        else:
            outputs = image_and_mirror(images)  # per view: one tensor per bottom output
        if views > 2:
            images = tf.cast(images, "float32")
            outputs += [step(augmentation(images, training=True)) for _ in range(views - 2)]
        count = len(batch_labels)
        if not stored:  # the first batch gives the shapes and the room for all (or grows below)
            room = count * max(batches, 1)
            stored = [
                np.empty((room, views, *out.shape[1:]), out.dtype.as_numpy_dtype)
                for out in outputs[0]
            ]
        if filled + count > len(stored[0]):  # the batches' count was unknown: double the room
            stored = [np.concatenate([a, np.empty_like(a)]) for a in stored]
        for index, array in enumerate(stored):
            for view, out in enumerate(outputs):
                array[filled : filled + count, view] = out[index]
        labels.append(np.asarray(batch_labels))
        filled += count
    return [array[:filled] for array in stored], np.concatenate(labels)


def available_memory() -> int | None:
    """Returns the bytes of memory free now, or None where the system does not say (Windows)."""
    import os

    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _check_memory(bottom: keras.Model, dataset, views: int, batch_size: int) -> None:
    """Raises a LearnerError when the stored views would take more than half the free memory."""
    from helpers.errors import LearnerError, setting_hint

    batches = int(dataset.cardinality())
    free = available_memory()
    if batches < 0 or free is None:
        return
    per_view = sum(4 * math.prod(tensor.shape[1:]) for tensor in bottom.outputs)  # float32
    needed = batches * batch_size * views * per_view
    if needed > free / 2:
        raise LearnerError(
            f"Storing {views} views of up to {batches * batch_size:,} images below the cut would "
            f"take about {needed / 1e9:.1f} GB of memory, and {free / 1e9:.1f} GB is free. Store "
            "fewer views, train fewer blocks (a cut higher up stores smaller activations), or "
            "train through the images without storing (TL_STORED_VIEWS=0). "
            + setting_hint("TL_STORED_VIEWS", "0")
        )


def features_dataset(cfg: Config, features, labels, *, shuffle: bool = False):
    """Returns a ``tf.data.Dataset`` of batches of ``(features, labels)``, arrays kept in memory,
    reshuffled each epoch when ``shuffle`` (04's heads).

    ``fit`` given the arrays themselves builds a new input pipeline from them every epoch, for
    training and for validation: a 30-epoch head took 2.3 times as long on arrays (2.93 s against
    1.27 s on 2 CPU cores; benchmarks/fit_overhead.py, C).
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    return _batched(cfg, dataset, len(labels), shuffle)


def _batched(cfg: Config, dataset, count: int, shuffle: bool, pick=None):
    """Returns ``dataset`` shuffled (seeded, each epoch anew) when ``shuffle``, mapped by
    ``pick`` when given, batched and prefetched, without autotuning (``data.without_autotune``)."""
    import tensorflow as tf

    from helpers import data

    if shuffle:
        dataset = dataset.shuffle(count, seed=cfg.seed, reshuffle_each_iteration=True)
    if pick is not None:
        dataset = dataset.map(pick, num_parallel_calls=tf.data.AUTOTUNE)
    return data.without_autotune(dataset.batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE))


def views_dataset(cfg: Config, stored: list[np.ndarray], labels: np.ndarray, *, shuffle: bool):
    """Returns a ``tf.data.Dataset`` of batches of stored activations, a random view per image
    each time it comes up, as ``RandomFlip`` picks the image or its mirror (05)."""
    import tensorflow as tf

    views = stored[0].shape[1]

    def pick(activations, label):
        index = tf.random.uniform((), 0, views, dtype="int32")
        return tuple(a[index] for a in activations), label

    dataset = tf.data.Dataset.from_tensor_slices((tuple(stored), labels))
    return _batched(cfg, dataset, len(labels), shuffle, pick)


def history_path(cfg: Config, stage: str) -> Path:
    """Returns where the history of one stage (``transfer_learning``, ``fine_tuning``) is kept."""
    return Path(cfg.output_dir) / f"history_{stage}.json"


def save_history(cfg: Config, stage: str, history: keras.callbacks.History | dict) -> Path:
    """Returns the path of ``history`` (a History or its dict) saved as JSON (04)."""
    values = history.history if hasattr(history, "history") else history
    return files.atomic_write_json(
        history_path(cfg, stage), {k: [float(v) for v in vs] for k, vs in values.items()}
    )


_HISTORY_NOTEBOOK = {"transfer_learning": "04", "fine_tuning": "05"}


def load_history(cfg: Config, stage: str) -> dict[str, list[float]] | None:
    """Returns the saved history of ``stage``, or None (with a warning) when missing or damaged:
    it only draws curves, so the notebook goes on without it (05)."""
    path = history_path(cfg, stage)
    notebook = _HISTORY_NOTEBOOK.get(stage, "the notebook that saves it")
    if not path.is_file():
        files.warn(
            f"{path} is missing: its curves are left out (run {notebook} again to have them)."
        )
        return None
    try:
        history = files.read_json(path, "")
    except files.DamagedFileError:
        history = None
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
        files.warn(
            f"{path} is damaged: its curves are left out (run {notebook} again to write it "
            "anew, or delete the file)."
        )
        return None
    return history


def combine_histories(
    *phases: dict[str, list[float]] | None,
) -> tuple[dict[str, list[float]], list[int]]:
    """Returns the phases' histories joined end to end, and the epoch where each later one starts.

    Introduced in 05. Only metrics every phase has are kept; a missing phase (None) is one epoch
    of NaN, a gap in the plot.
    """
    present = [phase for phase in phases if phase]
    keys = [k for k in (present or [{}])[0] if all(k in phase for phase in present[1:])]
    combined: dict[str, list[float]] = {k: [] for k in keys}
    starts = []
    length = 0
    for index, phase in enumerate(phases):
        if index:
            starts.append(length)
        for k in keys:
            combined[k].extend([float(v) for v in phase[k]] if phase else [math.nan])
        length += len(phase[keys[0]]) if phase and keys else 1
    return combined, starts


def metrics_path(cfg: Config) -> Path:
    """Returns the path of the run's ``metrics.json``."""
    return Path(cfg.output_dir) / "metrics.json"


def read_metrics(cfg: Config) -> dict:
    """Returns the contents of metrics.json ({} when there is none yet; from 04).

    A damaged file is set aside as ``metrics.json.damaged``, with a warning; ``config.load``
    checks it in every Setup cell, before the notebook's work.
    """
    return files.read_json_or_set_aside(metrics_path(cfg), METRICS_ADVICE) or {}


def record_metrics(cfg: Config, stage: str, **values: float) -> dict:
    """Returns all metrics of the run after writing ``values`` under ``stage`` in metrics.json,
    atomically, keeping the other stages' entries (introduced in 04)."""
    metrics = read_metrics(cfg)
    metrics[stage] = {
        k: (round(float(v), 4) if isinstance(v, float | np.floating) else v)
        for k, v in values.items()
    }
    files.atomic_write_json(metrics_path(cfg), metrics, indent=2)
    return metrics


def head_on_features(feature_count: int, class_count: int = 2) -> keras.Model:
    """Returns the classifier's head alone (dropout, logits) for pooled base features, its
    layers named like the classifier's, for :func:`copy_head` (04)."""
    inputs = keras.Input(shape=(feature_count,), name="features")
    from helpers import models

    x = keras.layers.Dropout(0.2, name="dropout")(inputs)
    units = models.output_units(class_count)
    outputs = keras.layers.Dense(units, dtype="float32", name="logit")(x)
    return keras.Model(inputs, outputs, name="head")


def copy_head(head: keras.Model, model: keras.Model) -> None:
    """Copies the trained ``logit`` layer of ``head`` into the full classifier ``model``."""
    model.get_layer("logit").set_weights(head.get_layer("logit").get_weights())


def loss_and_accuracy(model: keras.Model) -> tuple[keras.losses.Loss, keras.metrics.Metric]:
    """Returns the loss and the accuracy for a model that outputs logits (introduced in 04):
    sigmoid cross-entropy and logit > 0 for one logit, sparse softmax and argmax for N."""
    if model.output_shape[-1] == 1:
        return (
            keras.losses.BinaryCrossentropy(from_logits=True),
            keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy"),
        )
    return (
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
    )


def compile_for_logits(
    model: keras.Model, learning_rate: float, cfg: Config, *, steps_per_execution: int = 1
) -> None:
    """Compiles ``model`` as 04 and 05 do: Adam, and :func:`loss_and_accuracy` for its logits.

    ``steps_per_execution``: steps run in one compiled call (04 gives heads 50: the same weights,
    bit for bit, as one step a call, 1.5 to 1.7 times as fast on 2 CPU cores; benchmarks/
    fit_overhead.py).
    """
    loss, accuracy = loss_and_accuracy(model)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss,
        metrics=[accuracy],
        jit_compile=cfg.jit_compile,
        steps_per_execution=steps_per_execution,
    )


def transfer_model(cfg: Config, splits, epochs: int | None = None):
    """Returns ``(model, history)``: 04's classifier with its head trained on cached features,
    as 04 teaches (05 calls it when 04 has not saved its model)."""
    from helpers import augment, models

    class_count = len(splits.class_names)
    base_model = models.build_base(cfg)
    base_model.trainable = False
    model = models.build_classifier(cfg, base_model, augment.build(), class_count)
    extractor = models.feature_extractor(cfg, base_model)
    train_x, train_y = extract_features(extractor, splits.train)
    val_x, val_y = extract_features(extractor, splits.validation)
    head = head_on_features(train_x.shape[-1], class_count)
    compile_for_logits(head, 1e-3, cfg, steps_per_execution=50)
    history = head.fit(
        features_dataset(cfg, train_x, train_y, shuffle=True),
        validation_data=features_dataset(cfg, val_x, val_y),
        epochs=cfg.epochs if epochs is None else epochs,
        verbose=0,
    )
    copy_head(head, model)
    return model, history


def backup_folder(cfg: Config, stage: str) -> Path:
    """Returns where ``BackupAndRestore`` keeps ``stage``'s unfinished training (05), in a
    folder named after the model's settings, so only the same run resumes it."""
    from helpers import models

    settings = models._settings(cfg, "fine_tuned_model")
    tag = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return Path(cfg.output_dir) / "backup" / f"{stage}_{tag}"


def fine_tune(
    model,
    cfg: Config,
    splits,
    *,
    learning_rate: float = 1e-5,
    callbacks: tuple = (),
):
    """Returns the :class:`ResumableEarlyStopping` of 05's fine-tuning of ``model`` (a trained
    head), whose steps stand in 05: ``TL_UNFREEZE``, BatchNorm frozen, ``TL_STORED_VIEWS``,
    a low learning rate, early stopping, ``BackupAndRestore`` (resumed when run again)."""
    from helpers import models

    base_model = model.get_layer(models.BASE_NAME)
    cut = models.unfreeze(base_model, cfg.unfreeze)
    fit_model, train_data, validation_data = model, splits.train, splits.validation
    if cut and cfg.stored_views:
        bottom, top = models.split_base(base_model, cut)
        fit_model = models.top_classifier(model, top)
        train_data = views_dataset(
            cfg, *store_views(cfg, bottom, splits.train, cfg.stored_views), shuffle=True
        )
        validation_data = views_dataset(
            cfg, *store_views(cfg, bottom, splits.validation, 1), shuffle=False
        )
    compile_for_logits(fit_model, learning_rate, cfg)
    folder = str(backup_folder(cfg, "fine_tuning"))
    early_stopping = ResumableEarlyStopping(
        folder, monitor="val_loss", patience=3, restore_best_weights=True
    )
    with resume_hint(early_stopping):
        fit_model.fit(
            train_data,
            validation_data=validation_data,
            epochs=cfg.fine_tune_epochs,
            callbacks=[early_stopping, keras.callbacks.BackupAndRestore(folder), *callbacks],
            verbose=0,
        )
    return early_stopping


def fine_tuned_model(cfg: Config, splits) -> tuple[keras.Model, str]:
    """Returns ``(model, why)``: 05's fine-tuned classifier for inference, loaded or trained.

    Introduced in 06 and 07: 05's saved model, else 05's fine-tuning done here (and saved) from
    04's model or a head trained here.
    """
    from helpers import models

    model, why = models.load_saved(cfg, "fine_tuned_model")
    if model is not None:
        return model, why
    model, why_not_04 = models.load_saved(cfg, "transfer_model")
    if model is None:
        model, _ = transfer_model(cfg, splits)
        done = "trained the head and fine-tuned here instead"
    else:
        done = f"fine-tuned 04's model ({why_not_04}) here instead"
    fine_tune(model, cfg, splits)
    model = models.for_inference(model)
    path = models.save(model, cfg, "fine_tuned_model")
    return model, f"{why}; {done}, saved to {path}"
