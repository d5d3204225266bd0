"""The from-scratch baseline of 04 and the TimeBudget callback that gives it the same time."""

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
    assert model.input_shape == (None, *cfg.image_shape)
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


class FakeClock:
    """A clock that advances ``step`` seconds each time it is read."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def fit_with(budget: train.TimeBudget, epochs: int = 10) -> None:
    model = train.head_on_features(2)
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.zeros((4, 2)), np.zeros(4), epochs=epochs, verbose=0, callbacks=[budget])


def test_time_budget_stops_before_an_epoch_would_overrun():
    # The clock is read at train begin, epoch begin and epoch end: each epoch takes 1.5 "s" and
    # ends 3 "s" after the previous one. After epoch 3 (9 s) another would end past 10 s.
    budget = train.TimeBudget(10, clock=FakeClock(1.5))
    fit_with(budget)
    assert budget.epochs_run == 3
    assert budget.elapsed == pytest.approx(9.0)


def test_time_budget_runs_at_least_one_epoch_and_all_when_time_allows():
    tight = train.TimeBudget(0.1, clock=FakeClock(1.0))
    fit_with(tight)
    assert tight.epochs_run == 1
    loose = train.TimeBudget(1000, clock=FakeClock(1.0))
    fit_with(loose, epochs=4)
    assert loose.epochs_run == 4


def test_time_budget_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        train.TimeBudget(0)
