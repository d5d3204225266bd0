"""Training plumbing for 04 and 05: speed settings, cached features, histories and metrics.

The lesson's own code (freezing, compiling, fitting) stays in the notebooks; these helpers hold
what is not the lesson: where files go, how histories are joined, how features are collected.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from pathlib import Path

import keras
import numpy as np

from helpers import files, progress
from helpers.config import Config
from helpers.errors import LearnerError


def use_fast_settings(cfg: Config) -> str:
    """Returns the dtype policy in force after choosing it: mixed precision on a GPU only.

    Introduced in 04. On a GPU, float16 math roughly doubles throughput; on a CPU it is slower,
    so the policy stays float32 there. XLA is chosen at compile time (``cfg.jit_compile``).
    """
    policy = "mixed_float16" if cfg.gpu else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


class EpochTimer(keras.callbacks.Callback):
    """A callback that records the seconds each epoch took, in ``epoch_seconds``, and the same
    without the epoch's validation pass, in ``train_seconds`` (08's images a second)."""

    def on_train_begin(self, logs=None):
        self.epoch_seconds: list[float] = []
        self.train_seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._validating = time.perf_counter(), 0.0

    def on_test_begin(self, logs=None):  # fit's validation calls the same callbacks
        self._test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self._validating += time.perf_counter() - self._test_start

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._start
        self.epoch_seconds.append(seconds)
        self.train_seconds.append(seconds - self._validating)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """``EarlyStopping`` that remembers, across a ``BackupAndRestore`` resume, what it has seen.

    Introduced in 05. Keras's ``EarlyStopping`` starts afresh when ``fit`` resumes from a backup:
    it forgets the best epoch before the interruption and restores a later, worse one. This one
    writes, after every epoch, that epoch's logs and seconds and its own state (the best value,
    its epoch, the epochs since, the best weights) to ``folder``, and reads them back when
    ``fit`` resumes. Put it before ``BackupAndRestore`` in ``callbacks`` and give it the same
    folder: an epoch is then recorded here before it is backed up (a kill between the two reruns
    the epoch, which replaces its record), and the backup's removal at the end removes this too.
    ``history`` and ``epoch_seconds`` hold every epoch of the run once, resumed or not.
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
def resume_hint(early_stopping: ResumableEarlyStopping, rerun: str = "this cell"):
    """Turns an interrupt during ``fit`` (Ctrl-C, Kernel > Interrupt) into one line (05).

    The line says where training stopped and that running ``rerun`` again resumes after the
    last finished epoch, in place of a traceback through Keras's training loop.
    """
    try:
        yield
    except KeyboardInterrupt:
        done = len(early_stopping.records)
        saved = {0: "no epoch had finished", 1: "epoch 1 is backed up"}.get(
            done, f"epochs 1-{done} are backed up"
        )
        raise LearnerError(
            f"interrupted during epoch {done + 1} ({saved}). Run {rerun} again to resume "
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


def extract_features(feature_extractor: keras.Model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(features, labels)``: the extractor's output for every batch, with its labels.

    Introduced in 04 (the fast path). Features and labels come from the same pass over
    ``dataset``, so they stay aligned even if the dataset is shuffled.
    """
    import tensorflow as tf

    # One compiled step for every batch, traced once: the signature leaves the batch size open,
    # so the last, smaller batch needs no second trace.
    images_spec = dataset.element_spec[0]
    step = tf.function(
        lambda images: feature_extractor(images, training=False),
        input_signature=[tf.TensorSpec([None, *images_spec.shape[1:]], images_spec.dtype)],
    )
    features, labels = [], []
    for images, batch_labels in _batches(dataset, "computing features"):
        features.append(keras.ops.convert_to_numpy(step(images)))
        labels.append(np.asarray(batch_labels))
    return np.concatenate(features), np.concatenate(labels)


def store_views(
    cfg: Config, bottom: keras.Model, dataset, views: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Returns ``(stored, labels)``: the frozen bottom's output for ``views`` views of each image.

    Introduced in 05 (training the top on stored activations); ``bottom`` comes from
    ``models.split_base``, and each view is scaled as the classifier scales its input. View 0 is
    the image itself, view 1 its horizontal flip, and each further view is a random draw of the
    classifier's augmentation (``augment.build()``, seeded with ``cfg.seed``: the same views on
    every run). ``stored`` holds one array per tensor ``bottom`` outputs, shaped
    ``(images, views, ...)``; ``labels`` comes from the same pass, so both stay aligned.
    """
    import tensorflow as tf

    from helpers import augment, models

    if views < 1:
        raise ValueError(f"views={views!r}: store at least 1 view (the image itself).")
    _check_memory(bottom, dataset, views, cfg.batch_size)
    scaling = models.backbone(cfg).scaling()
    augmentation = augment.build(seed=cfg.seed)
    step = tf.function(
        lambda images: keras.tree.flatten(bottom(scaling(images), training=False)),
        reduce_retracing=True,
    )
    stored: list[list[np.ndarray]] = [[] for _ in bottom.outputs]
    labels = []
    for images, batch_labels in _batches(dataset, "storing activations"):
        images = tf.cast(images, "float32")
        batch = [images, tf.image.flip_left_right(images)][:views]
        batch += [augmentation(images, training=True) for _ in range(views - len(batch))]
        outputs = [step(view) for view in batch]  # per view: one tensor per bottom output
        for index, parts in enumerate(stored):
            parts.append(np.stack([np.asarray(out[index]) for out in outputs], axis=1))
        labels.append(np.asarray(batch_labels))
    return [np.concatenate(parts) for parts in stored], np.concatenate(labels)


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


def views_dataset(cfg: Config, stored: list[np.ndarray], labels: np.ndarray, *, shuffle: bool):
    """Returns a ``tf.data.Dataset`` of batches of stored activations, one view per image.

    Introduced in 05. Each time an image comes up it gets one of its stored views at random
    (with one view: always that one), as ``RandomFlip`` picks the image or its mirror; with
    ``shuffle`` the order changes every epoch, as the image pipeline's does (``data.prepare``).
    """
    import tensorflow as tf

    views = stored[0].shape[1]

    def pick(activations, label):
        index = tf.random.uniform((), 0, views, dtype="int32")
        return tuple(a[index] for a in activations), label

    dataset = tf.data.Dataset.from_tensor_slices((tuple(stored), labels))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=cfg.seed, reshuffle_each_iteration=True)
    dataset = dataset.map(pick, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE)


def history_path(cfg: Config, stage: str) -> Path:
    """Returns where the history of one stage (``transfer_learning``, ``fine_tuning``) is kept."""
    return Path(cfg.output_dir) / f"history_{stage}.json"


def save_history(cfg: Config, stage: str, history: keras.callbacks.History | dict) -> Path:
    """Returns the path of ``history`` (a History or its ``.history`` dict) saved as JSON.

    Introduced in 04; written atomically (``helpers.files``).
    """
    values = history.history if hasattr(history, "history") else history
    return files.atomic_write_json(
        history_path(cfg, stage), {k: [float(v) for v in vs] for k, vs in values.items()}
    )


_HISTORY_NOTEBOOK = {"transfer_learning": "04", "fine_tuning": "05"}


def load_history(cfg: Config, stage: str) -> dict[str, list[float]] | None:
    """Returns the saved history of ``stage``, or None (with a warning) when missing or damaged.

    Introduced in 05. A damaged file is reported by name and treated as missing: a history
    only draws curves, so the notebook goes on without it (:func:`combine_histories`).
    """
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

    Introduced in 05: the head's epochs, then the fine-tuning epochs, on one time axis.
    Only the metrics every phase recorded are kept. A missing phase (None, as
    :func:`load_history` returns for a missing file) counts as one epoch of NaN: the plot shows
    what exists, with a gap where the missing phase would be.
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


METRICS_ADVICE = (
    "A fresh metrics.json is started; run the earlier notebooks again to fill in their results."
)


def read_metrics(cfg: Config) -> dict:
    """Returns the contents of metrics.json ({} when there is none yet).

    Introduced in 04. A damaged file is not lost: it is renamed ``metrics.json.damaged`` (with a
    warning naming both files) and the run starts a fresh one. ``config.load`` does the same
    check in every Setup cell, so it happens before the notebook's work, not after it.
    """
    return files.read_json_or_set_aside(metrics_path(cfg), METRICS_ADVICE) or {}


def record_metrics(cfg: Config, stage: str, **values: float) -> dict:
    """Returns all metrics of the run after writing ``values`` under ``stage`` in metrics.json.

    Introduced in 04. Each notebook writes its own key and keeps the others' entries; the file
    is replaced atomically. Notebooks call :func:`read_metrics` in their Setup cell, so a
    damaged file is reported (and set aside) before the work starts, not after.
    """
    metrics = read_metrics(cfg)
    metrics[stage] = {
        k: (round(float(v), 4) if isinstance(v, float | np.floating) else v)
        for k, v in values.items()
    }
    files.atomic_write_json(metrics_path(cfg), metrics, indent=2)
    return metrics


def head_on_features(feature_count: int, class_count: int = 2) -> keras.Model:
    """Returns the classifier's head alone (dropout, logits) for pooled base features.

    Its two layers are named like the full classifier's (``dropout``, ``logit``), so the trained
    weights can be copied over with :func:`copy_head`.
    """
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
    """Returns the loss and the accuracy for a model that outputs logits (introduced in 04).

    One logit (two classes): sigmoid cross-entropy, and accuracy with the logit compared to 0.
    N logits (N classes): softmax cross-entropy on integer labels, and accuracy by argmax.
    """
    if model.output_shape[-1] == 1:
        return (
            keras.losses.BinaryCrossentropy(from_logits=True),
            keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy"),
        )
    return (
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
    )


def compile_for_logits(model: keras.Model, learning_rate: float, cfg: Config) -> None:
    """Compiles ``model`` as 04 and 05 do: Adam, and :func:`loss_and_accuracy` for its logits."""
    loss, accuracy = loss_and_accuracy(model)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss,
        metrics=[accuracy],
        jit_compile=cfg.jit_compile,
    )


def transfer_model(cfg: Config, splits, epochs: int | None = None):
    """Returns ``(model, history)``: 04's classifier with its head trained on cached features.

    Introduced in 05, which calls it when 04 has not saved ``transfer_model.keras``. It does what
    04 teaches: a frozen base, features computed once, the head trained on them and copied in.
    """
    from helpers import augment, models

    class_count = len(splits.class_names)
    base_model = models.build_base(cfg)
    base_model.trainable = False
    model = models.build_classifier(cfg, base_model, augment.build(), class_count)
    extractor = models.feature_extractor(cfg, base_model)
    train_x, train_y = extract_features(extractor, splits.train)
    val_x, val_y = extract_features(extractor, splits.validation)
    head = head_on_features(train_x.shape[-1], class_count)
    compile_for_logits(head, 1e-3, cfg)
    history = head.fit(
        train_x,
        train_y,
        validation_data=(val_x, val_y),
        epochs=cfg.epochs if epochs is None else epochs,
        batch_size=cfg.batch_size,
        verbose=0,
    )
    copy_head(head, model)
    return model, history


def backup_folder(cfg: Config, stage: str) -> Path:
    """Returns where ``keras.callbacks.BackupAndRestore`` keeps ``stage``'s unfinished training.

    Introduced in 05 (``stage`` ``fine_tuning``): under ``TL_OUTPUT_DIR``, in a folder named after
    the settings that shape the model, so a backup is only resumed by the same run.
    """
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
    verbose: int = 0,
    callbacks: tuple = (),
):
    """Returns the :class:`ResumableEarlyStopping` of 05's fine-tuning of ``model`` (its
    ``history`` holds every epoch, resumed or not; ``model`` has a trained head).

    Introduced in 05, where each step stands in the notebook: the base unfrozen (all of it, or
    its top part per ``cfg.unfreeze``, ``TL_UNFREEZE``), every BatchNormalization layer kept
    frozen (inference mode), a low learning rate, EarlyStopping. With a frozen bottom and
    ``cfg.stored_views`` (``TL_STORED_VIEWS``), the bottom runs once over that many views of each
    training image and the top trains on what it stored. ``BackupAndRestore`` saves each finished
    epoch in :func:`backup_folder`: run again after a lost kernel or an interrupt, it resumes
    after the last finished epoch; a finished run removes the backup. ``callbacks`` follow it.
    """
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
    with resume_hint(early_stopping, "this cell"):
        fit_model.fit(
            train_data,
            validation_data=validation_data,
            epochs=cfg.fine_tune_epochs,
            callbacks=[early_stopping, keras.callbacks.BackupAndRestore(folder), *callbacks],
            verbose=verbose,
        )
    return early_stopping


def fine_tuned_model(cfg: Config, splits) -> tuple[keras.Model, str]:
    """Returns ``(model, why)``: 05's fine-tuned classifier for inference, loaded or trained.

    Introduced in 06 and 07, which run on their own: the model 05 saved with the same settings
    when there is one, otherwise 05's fine-tuning done here in one call (and saved), starting
    from the model 04 saved when it matches, else from a head trained here as 04 does.
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
