"""Tests for helpers.augment: the layers build() adds, their modes, and copies()."""

import keras
import numpy as np
import pytest

from helpers import augment


def layer_types(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def images(count: int = 2, size: int = 24) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(count, size, size, 3)).astype("float32")


def test_default_is_the_seed_recipe():
    model = augment.build()
    assert isinstance(model, keras.Sequential)
    assert model.name == "augmentation"
    assert layer_types(model) == ["RandomFlip", "RandomRotation"]
    flip, rotation = model.layers
    assert flip.mode == "horizontal"
    assert rotation.factor == (-0.1, 0.1)


def test_extra_layers_only_when_non_zero():
    model = augment.build(zoom=0.2, contrast=0.3, translation=0.1)
    assert layer_types(model) == [
        "RandomFlip",
        "RandomRotation",
        "RandomZoom",
        "RandomContrast",
        "RandomTranslation",
    ]
    assert layer_types(augment.build(flip=False, rotation=0.0, contrast=0.2)) == ["RandomContrast"]
    assert layer_types(augment.build(zoom=0.0, contrast=0.0, translation=0.0)) == [
        "RandomFlip",
        "RandomRotation",
    ]


def test_nothing_switched_on_passes_images_through():
    model = augment.build(flip=False, rotation=0.0)
    assert layer_types(model) == ["Identity"]
    x = images()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=True)), x)


@pytest.mark.parametrize("name", ["rotation", "zoom", "contrast", "translation"])
def test_out_of_range_factor_is_refused(name):
    with pytest.raises(ValueError, match=name):
        augment.build(**{name: 1.5})


def test_inference_mode_is_the_identity_and_training_mode_is_not():
    model = augment.build(zoom=0.2, contrast=0.2, translation=0.1, seed=1)
    x = images()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=False)), x)
    assert not np.array_equal(keras.ops.convert_to_numpy(model(x, training=True)), x)


def test_seed_makes_it_repeatable():
    x = images()
    first = augment.build(seed=7)(x, training=True)
    second = augment.build(seed=7)(x, training=True)
    np.testing.assert_array_equal(first, second)
    other = augment.build(seed=8)(x, training=True)
    assert not np.array_equal(first, other)


def test_copies_are_distinct_and_shaped_like_the_image():
    image = images(1)[0].astype("uint8")
    out = augment.copies(augment.build(seed=3), image, count=5)
    assert out.shape == (5, 24, 24, 3)
    assert out.dtype == np.float32
    assert len({copy.tobytes() for copy in out}) == 5


def test_a_direct_call_and_an_export_augment_predict_does_not(tmp_path):
    """What the module docstring says: only an explicit training=False (predict) switches it off."""
    import tensorflow as tf

    model = keras.Sequential([keras.Input((24, 24, 3)), augment.build(seed=1)])
    x = images(4)
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    assert not np.array_equal(keras.ops.convert_to_numpy(model(x)), x), "model(x) augments"
    model.export(tmp_path / "exported", verbose=False)
    exported = tf.saved_model.load(str(tmp_path / "exported"))
    assert not np.array_equal(exported.serve(x).numpy(), x), "the exported model augments"


def test_default_augmentation_has_a_layer_without_xla():
    """config.Config.jit_compile's docstring: "auto" gives no XLA to models holding augmentation."""
    no_xla = [type(layer).__name__ for layer in augment.build().layers if not layer.supports_jit]
    assert no_xla == ["RandomRotation"]
