"""The from-scratch baseline of 04."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from conftest import ci_config
from helpers import augment, models, train


@pytest.fixture(scope="module")
def cfg():
    return ci_config(TL_IMAGE_SIZE="32", TL_BACKBONE="mobilenet")


def test_from_scratch_takes_0_255_images_and_outputs_one_logit(cfg):
    model = models.from_scratch(cfg)
    assert model.input_shape == (None, None, None, 3)  # any size
    assert model.output_shape == (None, 1)
    assert model.get_layer("logit").activation is keras.activations.linear
    names = [layer.name for layer in model.layers]
    assert names.index(augment.NAME) < names.index("scale_to_0_1") < names.index("conv0")
    assert model.get_layer("scale_to_0_1").scale == pytest.approx(1 / 255)
    assert model.count_params() < 300_000, "a small convnet"


def test_from_scratch_augments_only_in_training_and_learns(cfg):
    keras.utils.set_random_seed(0)
    model = models.from_scratch(cfg)
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 16)
    # Dark images are cats, bright ones dogs: a convnet from scratch learns that quickly.
    images = np.where(labels[:, None, None, None] == 1, 200.0, 40.0) + rng.normal(
        0, 10, size=(32, *cfg.image_shape)
    )
    first = model.predict(images, verbose=0)
    np.testing.assert_array_equal(first, model.predict(images, verbose=0))
    train.compile_for_logits(model, 1e-2, cfg)
    before = models.weights_snapshot(model, trainable_only=True)
    history = model.fit(images, labels, epochs=8, batch_size=8, verbose=0)
    assert models.count_changed(before, models.weights_snapshot(model, trainable_only=True)) == len(
        before
    )
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_from_scratch_resizes_large_images_down_first_and_leaves_small_ones():
    large = models.from_scratch(ci_config(TL_IMAGE_SIZE="224", TL_BACKBONE="mobilenet"))
    names = [layer.name for layer in large.layers]
    assert names.index("resize") < names.index(augment.NAME), "augment the smaller images"
    assert large.get_layer("resize").output.shape[1:3] == (models.SCRATCH_SIZE,) * 2
    assert large.input_shape == (None, None, None, 3)  # any size: 04 gives it 64 px photos
    assert large.predict(np.zeros((1, 64, 64, 3)), verbose=0).shape == (1, 1)
    assert large.predict(np.zeros((1, 224, 224, 3)), verbose=0).shape == (1, 1)
    assert models.scratch_size(ci_config(TL_IMAGE_SIZE="224")) == models.SCRATCH_SIZE
    small_cfg = ci_config(TL_IMAGE_SIZE="32", TL_BACKBONE="mobilenet")
    assert models.scratch_size(small_cfg) == 32
    small = models.from_scratch(small_cfg)
    assert "resize" not in [layer.name for layer in small.layers]
