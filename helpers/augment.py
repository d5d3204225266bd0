"""Data augmentation as Keras preprocessing layers (introduced in 03; 04 and 05 put :func:`build`
inside their models, ``models.for_inference`` takes it out)."""

from __future__ import annotations

import keras
import numpy as np

NAME = "augmentation"


def build(
    *,
    flip: bool = True,
    rotation: float = 0.1,
    zoom: float = 0.0,
    contrast: float = 0.0,
    translation: float = 0.0,
    seed: int | None = None,
) -> keras.Sequential:
    """Returns a ``keras.Sequential`` named "augmentation" of random preprocessing layers (03).

    The defaults are the seed recipe: ``RandomFlip("horizontal")`` then ``RandomRotation(0.1)``;
    factors are Keras's fractions (``rotation=0.1``: up to 36 degrees either way), 0 (or
    ``flip=False``) leaves the layer out. Images: float 0-255 batches.
    """
    factors = {"rotation": rotation, "zoom": zoom, "contrast": contrast, "translation": translation}
    for name, value in factors.items():
        if not 0 <= value < 1:
            raise ValueError(f"{name}={value!r}: use a fraction in [0, 1), e.g. {name}=0.1.")

    def layer_seed(offset: int) -> int | None:
        return None if seed is None else seed + offset

    layers: list[keras.layers.Layer] = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=layer_seed(0)))
    if rotation:
        layers.append(keras.layers.RandomRotation(rotation, seed=layer_seed(1)))
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, seed=layer_seed(2)))
    if contrast:
        layers.append(keras.layers.RandomContrast(contrast, seed=layer_seed(3)))
    if translation:
        layers.append(keras.layers.RandomTranslation(translation, translation, seed=layer_seed(4)))
    if not layers:  # everything switched off: pass images through (an empty Sequential cannot run)
        layers.append(keras.layers.Identity())
    return keras.Sequential(layers, name=NAME)


def copies(augmentation: keras.Layer, image, count: int = 9) -> np.ndarray:
    """Returns ``count`` augmented copies of one 0-255 image as float32 ``(count, h, w, 3)`` (03),
    made in one batch in training mode."""
    batch = np.repeat(np.asarray(image, dtype=np.float32)[None], count, axis=0)
    return keras.ops.convert_to_numpy(augmentation(batch, training=True))
