"""Export the trained model for use outside Keras: a TF SavedModel and LiteRT (TFLite) files.

Introduced in 07. The SavedModel's serving function takes a uint8 photo of any size and does the
centre crop and resize itself (the same :func:`helpers.data.resize` as training); the LiteRT
files take the prepared square, as phones usually feed a camera frame already resized.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from helpers import files


@contextlib.contextmanager
def _quiet():
    """Hides TensorFlow's "Assets written to ..." log lines and the converters' C++ chatter."""
    import tensorflow as tf

    from helpers.predict import native_stderr_silenced

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        with native_stderr_silenced():
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


def export_saved_model(model: keras.Model, path: str | Path, image_size: int) -> Path:
    """Returns ``path`` after exporting ``model`` as a TF SavedModel that prepares photos itself.

    Introduced in 07. Its ``serve`` function takes a uint8 batch ``(n, height, width, 3)`` of any
    height and width (one photo: ``photo[None]``) and returns ``(n, 1)`` logits. The folder is
    written under a temporary name and renamed into place (``helpers.files.atomic_path``).
    """
    import tensorflow as tf

    path = Path(path)
    with _quiet(), files.atomic_path(path) as temporary:  # the old export stays until it is done
        with_preparation(model, image_size).export(
            str(temporary),
            format="tf_saved_model",
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="photo")],
            verbose=False,
        )
    return path


def export_litert(model: keras.Model, path: str | Path, *, quantize: bool = False) -> Path:
    """Returns ``path`` (a ``.tflite`` file) after exporting ``model`` for the LiteRT runtime.

    Introduced in 07. ``quantize=True`` applies dynamic-range quantization (weights stored as
    8-bit integers, about 4 times smaller; activations stay float) through the converter option
    ``optimizations=[tf.lite.Optimize.DEFAULT]``, which ``model.export`` passes on.
    """
    import tensorflow as tf

    path = Path(path)
    options = {"optimizations": [tf.lite.Optimize.DEFAULT]} if quantize else {}
    with _quiet(), files.atomic_path(path) as temporary:
        model.export(str(temporary), format="litert", verbose=False, **options)
    return path


class LiteRTModel:
    """A ``.tflite`` file run by the LiteRT interpreter (``ai_edge_litert``), one image a call."""

    def __init__(self, path: str | Path):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        with _quiet():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
            self.interpreter = Interpreter(model_path=str(self.path))
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
            self(np.zeros(self._input["shape"][1:]))  # the first call sets up XNNPACK

    def __call__(self, image: np.ndarray) -> float:
        """Returns the logit for one prepared image (a uint8-valued square)."""
        batch = np.asarray(image, dtype=self._input["dtype"])[None]
        self.interpreter.set_tensor(self._input["index"], batch)
        self.interpreter.invoke()
        return float(self.interpreter.get_tensor(self._output["index"]).reshape(-1)[0])

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Returns one logit per prepared image."""
        return np.array([self(image) for image in images], dtype="float32")


def size_mb(path: str | Path) -> float:
    """Returns the size of a file, or of everything in a folder, in megabytes (10^6 bytes)."""
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def ms_per_image(predict_one: Callable, images, repeats: int = 1) -> float:
    """Returns the median milliseconds ``predict_one(image)`` takes, after one warm-up call."""
    predict_one(images[0])
    times = []
    for _ in range(repeats):
        for image in images:
            start = time.perf_counter()
            predict_one(image)
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def agreement(logits: np.ndarray, reference: np.ndarray) -> float:
    """Returns the fraction of images given the same class (the logit's sign) as ``reference``."""
    return float(np.mean((np.asarray(logits) > 0) == (np.asarray(reference) > 0)))


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Returns the fraction of images whose class (logit > 0 means label 1) is right."""
    return float(np.mean((np.asarray(logits) > 0) == (np.asarray(labels) == 1)))
