"""Plumbing for 07's exports (the ``model.export`` calls themselves stand in 07's cells)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from helpers.quiet import ALL_LINES, filtered_stderr


@contextlib.contextmanager
def quiet():
    """Hides TensorFlow's "Assets written to ..." log lines and the converters' C++ chatter."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        with filtered_stderr(ALL_LINES):
            yield
    finally:
        logger.setLevel(level)


class PreparePhoto(keras.layers.Layer):
    """A layer doing :func:`helpers.data.resize`: uint8 photos of any size to model-size squares."""

    def __init__(self, image_size: int, **kwargs):
        super().__init__(**kwargs)
        self.image_size = image_size

    def call(self, images):
        from helpers import data

        squares, _ = data.resize(images, None, self.image_size)
        return keras.ops.cast(squares, "float32")

    def get_config(self) -> dict:
        return {**super().get_config(), "image_size": self.image_size}


def with_preparation(model: keras.Model, image_size: int) -> keras.Model:
    """Returns ``model`` behind :class:`PreparePhoto`: uint8 photos of any size in, logits out."""
    photos = keras.Input(shape=(None, None, 3), dtype="uint8", name="photo")
    return keras.Model(photos, model(PreparePhoto(image_size)(photos)), name="photo_classifier")


class LiteRTModel:
    """A ``.tflite`` file run by the LiteRT interpreter (``ai_edge_litert``), one image a call."""

    def __init__(self, path: str | Path):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        with quiet():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
            self.interpreter = Interpreter(model_path=str(self.path))
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
            self(np.zeros(self._input["shape"][1:]))  # the first call sets up XNNPACK

    def __call__(self, image: np.ndarray):
        """Returns the logit for one prepared image (0-255 values), or its N logits."""
        batch = np.asarray(image, dtype=self._input["dtype"])[None]
        self.interpreter.set_tensor(self._input["index"], batch)
        self.interpreter.invoke()
        values = self.interpreter.get_tensor(self._output["index"]).reshape(-1)
        return float(values[0]) if len(values) == 1 else values.copy()

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Returns the logits of each prepared image: ``(n,)`` for one logit, else ``(n, N)``."""
        return np.array([self(image) for image in images], dtype="float32")


def size_mb(path: str | Path) -> float:
    """Returns the size of a file, or of everything in a folder, in megabytes (10^6 bytes)."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def ms_per_image(predict_one: Callable, images) -> float:
    """Returns the median milliseconds ``predict_one(image)`` takes, after one warm-up call."""
    predict_one(images[0])
    times = []
    for image in images:
        start = time.perf_counter()
        predict_one(image)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def agreement(logits: np.ndarray, reference: np.ndarray) -> float:
    """Returns the fraction of images given the same class as ``reference`` gives them."""
    from helpers.predict import classes

    return float(np.mean(classes(logits) == classes(reference)))


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Returns the fraction of images whose predicted class (``predict.classes``) is right."""
    from helpers.predict import classes

    return float(np.mean(classes(logits) == np.asarray(labels)))


# What a faithful approximation of the logits may differ by (07's 8-bit file). Between the error
# 8-bit weights made on the reference photos (slope within 1.6%, offsets within 3.2% of a
# typical logit, correlation 0.998, at most 4 of 200 answers changed) and the smallest real
# faults (a logit scaled by 1.3 or 0.5, shifted by 1, one class's logit raised by 1: 5 points of
# accuracy lost).
FAITHFUL = {"slope": 0.1, "offset": 0.05, "correlation": 0.95, "agreement": 0.95}


def judge_approximation(reference, approximate, labels, class_names=None) -> dict:
    """Returns how closely ``approximate`` logits follow ``reference`` ones, and a verdict (07).

    Each logit is fitted as slope x reference + offset (N logits: rows centred first, since a
    shift common to all changes no probability); ``faithful`` holds within :data:`FAITHFUL` and
    an accuracy loss of 1 point (or 2 images), or more when chance explains it (McNemar's test
    of the changed answers, p >= 0.05); ``problems`` says in words what failed.
    """
    from helpers import evaluate
    from helpers.predict import classes

    ref, app = (np.asarray(a, dtype="float64") for a in (reference, approximate))
    ref, app = (a.reshape(len(a), -1) for a in (ref, app))
    ref_classes, app_classes = classes(ref), classes(app)
    if ref.shape[1] > 1:
        ref, app = (a - a.mean(axis=1, keepdims=True) for a in (ref, app))
    typical = float(np.mean(np.abs(ref)))
    fits = [np.polyfit(ref[:, k], app[:, k], 1) for k in range(ref.shape[1])]
    slopes, offsets = [float(f[0]) for f in fits], [float(f[1]) for f in fits]
    correlation = float(np.corrcoef(ref.ravel(), app.ravel())[0, 1])
    agreement = {
        int(c): float(np.mean(app_classes[ref_classes == c] == c)) for c in np.unique(ref_classes)
    }
    labels = np.asarray(labels)
    accuracy_change = float(np.mean(app_classes == labels) - np.mean(ref_classes == labels))
    limit = FAITHFUL
    name = (lambda k: repr(class_names[k])) if class_names else (lambda k: f"logit {k}")
    if ref.shape[1] == 1:
        name = lambda k: "the logit"  # noqa: E731
    scaled = [f"{name(k)} {s:.2f}" for k, s in enumerate(slopes) if abs(s - 1) > limit["slope"]]
    shifted = [
        f"{name(k)} {o:+.2f}" for k, o in enumerate(offsets) if abs(o) > limit["offset"] * typical
    ]
    problems = [f"scaled: {', '.join(scaled)}"] if scaled else []
    if shifted:
        problems.append(f"shifted (typical |logit| {typical:.2f}): {', '.join(shifted)}")
    if correlation < limit["correlation"]:
        problems.append(f"correlation {correlation:.3f}")
    kept = [
        f"{name(c)} {share:.0%}" for c, share in agreement.items() if share < limit["agreement"]
    ]
    if kept:
        problems.append(f"answers kept: {', '.join(kept)}")
    # A few changed answers of borderline images go either way: lost accuracy counts only when
    # the answers that turned wrong outnumber those that turned right beyond chance (McNemar).
    # On one fold of the reference cats and dogs, 3 of 200 answers changed, all 3 to wrong
    # (1.5 points, p = 0.25), with every slope within 1.3% of 1.
    lost = evaluate.mcnemar(ref_classes == labels, app_classes == labels)
    if -accuracy_change > max(0.01, 2 / max(len(labels), 1)) and lost["p_value"] < 0.05:
        problems.append(
            f"accuracy falls by {-100 * accuracy_change:.1f} points (McNemar p "
            f"{lost['p_value']:.2g})"
        )
    return {
        "slopes": slopes,
        "offsets": offsets,
        "typical_logit": typical,
        "correlation": correlation,
        "agreement_per_class": agreement,
        "accuracy_change": accuracy_change,
        "changed": int(np.sum(app_classes != ref_classes)),
        "faithful": not problems,
        "problems": problems,
    }
