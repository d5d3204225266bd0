"""TL_UNFREEZE: parsing and its bad values, the cut index per backbone, and train.fine_tune."""

from __future__ import annotations

import dataclasses
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ci_config

from helpers import augment, config, models, train
from helpers.errors import LearnerError


def load(**variables: str) -> config.Config:
    return config.load(variables, gpu=False)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("all", "all"), (" ALL ", "all"), ("0.3", 0.3), ("0.05", 0.05), ("2", 2), (" 14 ", 14)],
)
def test_unfreeze_accepts_all_a_fraction_or_a_block_count(raw, expected):
    value = load(TL_PROFILE="ci", TL_UNFREEZE=raw).unfreeze
    assert value == expected and type(value) is type(expected)


def test_each_profile_has_an_unfreeze_default():
    assert load(TL_PROFILE="full").unfreeze == "all", "full keeps the seed's whole base"
    assert load(TL_PROFILE="quick").unfreeze == config.QUICK_UNFREEZE
    assert load(TL_PROFILE="ci").unfreeze != "all", "ci exercises the partial unfreeze"
    assert "unfreeze" in load(TL_PROFILE="ci").describe()


@pytest.mark.parametrize("raw", ["0", "-1", "1.5", "1.0", "0.0", "half", "nan", "2 blocks", "-0.3"])
def test_bad_unfreeze_values_say_what_is_accepted_and_how_to_change_it(raw):
    with pytest.raises(config.ConfigError) as caught:
        load(TL_PROFILE="ci", TL_UNFREEZE=raw)
    message = str(caught.value)
    assert f"TL_UNFREEZE={raw!r}" in message
    assert "all" in message and "fraction" in message and "whole number" in message
    assert "TL_UNFREEZE=all make lab" in message and "%env TL_UNFREEZE=all" in message


# The smallest real Keras applications, random weights (no download): (name, size, blocks).
BASES = {
    "xception": (71, 14),
    "mobilenet_v2": (32, 16),
    "mobilenet": (32, 13),
    "efficientnet_b0": (32, 16),
}


@pytest.fixture(scope="module")
def bases():
    built = {}
    for name, (size, _) in BASES.items():
        cfg = ci_config(
            TL_BACKBONE=name, TL_IMAGE_SIZE=str(size), TL_WEIGHTS="none", TL_ALPHA="0.35"
        )
        built[name] = models.build_base(cfg)
    return built


@pytest.mark.parametrize("name", sorted(BASES))
def test_each_backbone_has_its_named_blocks(bases, name):
    blocks = models.base_blocks(bases[name])
    assert len(blocks) == BASES[name][1]
    first, last = {
        "xception": ("block1", "block14"),
        "mobilenet_v2": ("block_1", "block_16"),
        "mobilenet": ("1", "13"),
        "efficientnet_b0": ("block1a", "block7a"),
    }[name]
    assert (blocks[0], blocks[-1]) == (first, last)


@pytest.mark.parametrize(
    ("name", "count", "first_trained", "last_frozen"),
    [
        ("mobilenet", 1, "conv_dw_13", "conv_pw_12_relu"),
        ("mobilenet", 2, "conv_pad_12", "conv_pw_11_relu"),  # the block's padding belongs to it
        ("mobilenet", 13, "conv_dw_1", "conv1_relu"),  # all blocks: only the stem stays frozen
        ("xception", 1, "block14_sepconv1", "add"),  # block 13's residual add (auto-named)
        ("mobilenet_v2", 1, "block_16_expand", "block_15_add"),
        ("efficientnet_b0", 2, "block6d_expand_conv", "block6c_add"),
    ],
)
def test_a_block_count_cuts_at_the_first_layer_of_that_block(
    bases, name, count, first_trained, last_frozen
):
    layers = bases[name].layers
    index = models.first_trainable_index(bases[name], count)
    assert layers[index].name == first_trained
    assert layers[index - 1].name.startswith(last_frozen)


@pytest.mark.parametrize("name", sorted(BASES))
def test_no_layer_of_a_frozen_block_is_above_the_cut(bases, name):
    base_model = bases[name]
    blocks = models.base_blocks(base_model)
    for count in (1, 3, len(blocks)):
        index = models.first_trainable_index(base_model, count)
        trained_blocks = {models._block_of(layer.name) for layer in base_model.layers[index:]}
        frozen_blocks = {models._block_of(layer.name) for layer in base_model.layers[:index]}
        assert trained_blocks - {None} == set(blocks[-count:])
        assert frozen_blocks - {None} == set(blocks[:-count])
        # Weights above the cut: the top blocks' own, plus anything after the last block.
        top_names = [layer.name for layer in base_model.layers[index:] if layer.weights]
        assert top_names, "nothing to fine-tune"


def test_all_and_fractions(bases):
    base_model = bases["mobilenet"]
    count = len(base_model.layers)
    assert models.first_trainable_index(base_model, "all") == 0
    assert models.first_trainable_index(base_model, 0.25) == count - round(0.25 * count)
    assert models.first_trainable_index(base_model, 0.001) == count - 1, "at least one layer"


def test_more_blocks_than_the_base_has_is_a_clear_learner_error(bases):
    with pytest.raises(LearnerError) as caught:
        models.first_trainable_index(bases["mobilenet"], 14)
    message = str(caught.value)
    assert "TL_UNFREEZE=14" in message and "only 13" in message
    assert "%env TL_UNFREEZE=" in message and "make lab" in message


def test_a_base_without_named_blocks_takes_fractions_but_not_block_counts():
    base_model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Conv2D(4, 3)]
    )
    assert models.base_blocks(base_model) == []
    assert models.first_trainable_index(base_model, 0.5) == 1
    with pytest.raises(LearnerError, match="no named blocks.*fraction"):
        models.first_trainable_index(base_model, 2)


def mobilenet_like_base(image_shape, blocks: int = 4) -> keras.Model:
    """Returns a tiny base named like MobileNet v1 (conv1, then conv_dw_N + conv_pw_N blocks).

    A real random-weight MobileNet is too deep for a test: its activations shrink to about 1e-14
    and the gradients with them, so nothing visibly trains. Four blocks keep the signal.
    """
    inputs = keras.Input(image_shape)
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="conv1_bn")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    for n in range(1, blocks + 1):
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"conv_dw_{n}")(x)
        x = keras.layers.BatchNormalization(name=f"conv_dw_{n}_bn")(x)
        x = keras.layers.ReLU(name=f"conv_dw_{n}_relu")(x)
        x = keras.layers.Conv2D(8, 1, use_bias=False, name=f"conv_pw_{n}")(x)
        x = keras.layers.BatchNormalization(name=f"conv_pw_{n}_bn")(x)
        x = keras.layers.ReLU(name=f"conv_pw_{n}_relu")(x)
    return keras.Model(inputs, x, name=models.BASE_NAME)


def test_fine_tune_trains_only_the_top_blocks_and_keeps_batchnorm_statistics(tmp_path):
    cfg = dataclasses.replace(
        ci_config(
            TL_BACKBONE="mobilenet", TL_IMAGE_SIZE="32", TL_UNFREEZE="2", TL_FINE_TUNE_EPOCHS="1"
        ),
        output_dir=tmp_path,
    )
    keras.utils.set_random_seed(0)
    base_model = mobilenet_like_base(cfg.image_shape)
    for layer in models.batchnorm_layers(base_model):  # statistics that are not the defaults
        layer.moving_mean.assign(np.full(layer.moving_mean.shape, -0.1, dtype="float32"))
        layer.moving_variance.assign(np.full(layer.moving_variance.shape, 0.5, dtype="float32"))
    base_model.trainable = False
    model = models.build_classifier(cfg, base_model, augment.build())
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(32, *cfg.image_shape)).astype("float32")
    labels = np.array([0, 1] * 16)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    splits = types.SimpleNamespace(train=dataset, validation=dataset)

    cut = models.first_trainable_index(base_model, cfg.unfreeze)
    assert base_model.layers[cut].name == "conv_dw_3"
    below = [w for layer in base_model.layers[:cut] for w in layer.weights]
    above = [
        w
        for layer in base_model.layers[cut:]
        if not isinstance(layer, keras.layers.BatchNormalization)
        for w in layer.weights
    ]
    assert len(above) == 4, "conv_dw_3, conv_pw_3, conv_dw_4, conv_pw_4"
    before_below = [np.array(w.numpy()) for w in below]
    before_above = [np.array(w.numpy()) for w in above]
    statistics = models.batchnorm_statistics(model)
    head_before = model.get_layer("logit").get_weights()[0].copy()

    train.fine_tune(model, cfg, splits, learning_rate=1e-3)

    assert models.count_changed(before_below, [w.numpy() for w in below]) == 0
    assert models.count_changed(before_above, [w.numpy() for w in above]) == len(above)
    assert models.count_changed(statistics, models.batchnorm_statistics(model)) == 0
    assert not np.array_equal(head_before, model.get_layer("logit").get_weights()[0])
    assert not any(layer.trainable for layer in base_model.layers[:cut])
    assert not any(layer.trainable for layer in models.batchnorm_layers(base_model))
    assert len(model.trainable_weights) == len(above) + 2, "plus the head's kernel and bias"


def test_fine_tune_with_all_trains_every_non_batchnorm_array(tmp_path):
    cfg = dataclasses.replace(
        ci_config(
            TL_BACKBONE="mobilenet", TL_IMAGE_SIZE="32", TL_UNFREEZE="all", TL_FINE_TUNE_EPOCHS="1"
        ),
        output_dir=tmp_path,
    )
    base_model = mobilenet_like_base(cfg.image_shape, blocks=2)
    base_model.trainable = False
    model = models.build_classifier(cfg, base_model, augment.build())
    images = np.random.default_rng(1).uniform(0, 255, size=(16, *cfg.image_shape))
    dataset = tf.data.Dataset.from_tensor_slices((images, np.array([0, 1] * 8))).batch(8)
    before = models.weights_snapshot(base_model)
    train.fine_tune(model, cfg, types.SimpleNamespace(train=dataset, validation=dataset))
    conv_arrays = 1 + 2 * 2  # conv1, then conv_dw and conv_pw per block
    assert models.count_changed(before, models.weights_snapshot(base_model)) == conv_arrays
