"""Data augmentation as Keras preprocessing layers: random flips, rotations and more.

Introduced in 03; 04 and 05 put :func:`build` inside their models. The layers augment whenever
they are called without ``training=False``: in ``fit``, in a direct call ``model(images)``, and in
a model exported with ``model.export()`` (03 shows it). ``predict`` and ``evaluate`` pass
``training=False``, and then they pass images through unchanged. For a model that never augments,
whoever calls it, 05 uses ``models.for_inference``, which leaves these layers out.
"""

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

    The defaults are the seed recipe: ``RandomFlip("horizontal")`` then ``RandomRotation(0.1)``.
    ``zoom``, ``contrast`` and ``translation`` add ``RandomZoom``, ``RandomContrast`` and
    ``RandomTranslation`` only when non-zero; ``rotation=0`` and ``flip=False`` leave those out
    (with everything off, it holds one ``Identity`` layer).
    Each factor is a fraction: ``rotation=0.1`` turns by up to 10% of a full circle (36 degrees)
    either way, ``zoom=0.2`` zooms in or out by up to 20%, ``contrast=0.2`` scales contrast by a
    factor in [0.8, 1.2], ``translation=0.1`` shifts by up to 10% of the height and the width.
    Images are expected as 0-255 values in a batch (cast uint8 images to float32 first).
    With a ``seed``, the same calls give the same images; each layer gets its own seed.
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
    """Returns ``count`` augmented copies of one image as a float32 array ``(count, h, w, 3)`` (03).

    ``image`` is one image (h, w, 3) with 0-255 values, uint8 or float. The copies are made in one
    batch in training mode, so each gets its own random flip, rotation, etc.
    """
    batch = np.repeat(np.asarray(image, dtype=np.float32)[None], count, axis=0)
    return keras.ops.convert_to_numpy(augmentation(batch, training=True))
