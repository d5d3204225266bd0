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


@pytest.mark.parametrize("stored_views", ["0", "2"])  # through the images, or stored activations
def test_fine_tune_trains_only_the_top_blocks_and_keeps_batchnorm_statistics(
    tmp_path, stored_views
):
    cfg = dataclasses.replace(
        ci_config(
            TL_BACKBONE="mobilenet",
            TL_IMAGE_SIZE="32",
            TL_UNFREEZE="2",
            TL_FINE_TUNE_EPOCHS="1",
            TL_STORED_VIEWS=stored_views,
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


# TL_STORED_VIEWS: the frozen bottom run once, the top trained on what it stored.


@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("1", 1), (" 2 ", 2), ("8", 8)])
def test_stored_views_accepts_zero_or_a_count(raw, expected):
    assert load(TL_PROFILE="ci", TL_STORED_VIEWS=raw).stored_views == expected


@pytest.mark.parametrize("raw", ["-1", "two", "1.5", "2 views", "yes"])
def test_bad_stored_views_say_what_is_accepted_and_how_to_change_it(raw):
    with pytest.raises(config.ConfigError) as caught:
        load(TL_PROFILE="ci", TL_STORED_VIEWS=raw)
    message = str(caught.value)
    assert f"TL_STORED_VIEWS={raw!r}" in message
    assert "TL_STORED_VIEWS=0 make lab" in message and "%env TL_STORED_VIEWS=0" in message


def test_each_profile_has_a_stored_views_default():
    assert load(TL_PROFILE="full").stored_views == 0, "full trains the whole base: nothing frozen"
    assert load(TL_PROFILE="quick").stored_views == config.QUICK_STORED_VIEWS
    assert load(TL_PROFILE="ci").stored_views >= 1, "ci exercises 05's stored path"
    assert "stored_views" in load(TL_PROFILE="ci").describe()


@pytest.mark.parametrize(("name", "unfreeze"), [(n, u) for n in sorted(BASES) for u in (2, 0.3)])
def test_split_base_computes_what_the_base_computes(bases, name, unfreeze):
    base_model = bases[name]
    cut = models.first_trainable_index(base_model, unfreeze)
    bottom, top = models.split_base(base_model, cut)
    images = np.random.default_rng(0).uniform(-1, 1, (2, *base_model.input_shape[1:]))
    whole = base_model(images, training=False)
    np.testing.assert_allclose(
        top(bottom(images, training=False), training=False), whole, atol=1e-5
    )
    # the top holds the layers from the cut up, and only those: it shares them with the base
    top_layers = {id(layer) for layer in top._flatten_layers(include_self=False)}
    assert top_layers >= {id(layer) for layer in base_model.layers[cut:]}
    assert not top_layers & {id(layer) for layer in base_model.layers[1:cut]}


def test_split_base_reads_every_tensor_that_crosses_the_cut(bases):
    # Xception's top 30% starts inside a block: its residual branch crosses the cut too.
    base_model = bases["xception"]
    bottom, top = models.split_base(base_model, models.first_trainable_index(base_model, 0.3))
    assert len(bottom.outputs) == len(top.inputs) == 2


@pytest.mark.parametrize("cut", [0, -1, 10_000])
def test_split_base_refuses_a_cut_with_nothing_to_store(bases, cut):
    with pytest.raises(LearnerError, match="no frozen bottom"):
        models.split_base(bases["mobilenet"], cut)


def stored_setup(views: int, shuffle: bool):
    """Returns (cfg, model, bottom, top, dataset) around a tiny MobileNet-like base."""
    cfg = ci_config(TL_BACKBONE="mobilenet", TL_IMAGE_SIZE="32", TL_UNFREEZE="2")
    keras.utils.set_random_seed(0)
    base_model = mobilenet_like_base(cfg.image_shape)
    base_model.trainable = False
    model = models.build_classifier(cfg, base_model, augment.build())
    bottom, top = models.split_base(base_model, models.first_trainable_index(base_model, 2))
    rng = np.random.default_rng(views)
    images = rng.uniform(0, 255, size=(20, *cfg.image_shape)).astype("float32")
    labels = np.arange(20)  # a label per image: alignment is visible
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        dataset = dataset.shuffle(20, seed=1)
    return cfg, model, bottom, top, dataset.batch(6), images


def test_stored_views_are_the_image_its_mirror_and_augmented_draws():
    cfg, model, bottom, _, dataset, images = stored_setup(views=4, shuffle=True)
    (stored,), labels = train.store_views(cfg, bottom, dataset, 4)
    assert stored.shape[:2] == (20, 4) and sorted(labels) == list(range(20))
    scaled = models.backbone(cfg).scaling()(images[labels])  # in the order the pass saw them
    np.testing.assert_allclose(stored[:, 0], bottom(scaled), atol=1e-5)
    np.testing.assert_allclose(stored[:, 1], bottom(scaled[:, :, ::-1]), atol=1e-5)
    for view in (2, 3):  # random draws: different from the plain and mirrored views
        assert not np.allclose(stored[:, view], stored[:, 0], atol=1e-3)
        assert not np.allclose(stored[:, view], stored[:, 1], atol=1e-3)
    (again,), _ = train.store_views(cfg, bottom, dataset.unbatch().batch(6), 4)
    assert again.shape == stored.shape


def test_stored_views_are_the_same_on_every_run():
    cfg, _, bottom, _, dataset, _ = stored_setup(views=3, shuffle=False)
    (first,), _ = train.store_views(cfg, bottom, dataset, 3)
    (second,), _ = train.store_views(cfg, bottom, dataset, 3)
    np.testing.assert_array_equal(first, second)
    # a pass of unknown length: the arrays grow as the batches come, with the same contents
    (third,), labels = train.store_views(cfg, bottom, dataset.unbatch().batch(6), 3)
    np.testing.assert_array_equal(third, first)
    assert list(labels) == list(range(20))


def test_views_dataset_gives_one_stored_view_per_image_in_order_or_shuffled():
    cfg, _, bottom, _, dataset, _ = stored_setup(views=3, shuffle=False)
    (stored,), labels = train.store_views(cfg, bottom, dataset, 3)
    ordered = train.views_dataset(cfg, [stored], labels, shuffle=False)
    assert ordered.options().autotune.enabled is False  # as data.prepare's
    batches = list(ordered)
    assert [len(y) for _, y in batches] == [16, 4], "cfg.batch_size (16 in ci), then the rest"
    picked = np.concatenate([x[0] for x, _ in batches])
    assert np.array_equal(np.concatenate([y for _, y in batches]), labels)
    chosen = [
        next(v for v in range(3) if np.array_equal(picked[i], stored[i, v])) for i in range(20)
    ]
    assert len(set(chosen)) > 1, "every image got the same view"
    shuffled = np.concatenate(
        [y for _, y in train.views_dataset(cfg, [stored], labels, shuffle=True)]
    )
    assert sorted(shuffled) == sorted(labels) and list(shuffled) != list(labels)


def test_top_classifier_gives_the_classifiers_logits_and_trains_its_layers():
    cfg, model, bottom, top, dataset, images = stored_setup(views=1, shuffle=False)
    stored, labels = train.store_views(cfg, bottom, dataset, 1)
    top_model = models.top_classifier(model, top)
    from_stored = top_model.predict(
        train.views_dataset(cfg, stored, labels, shuffle=False), verbose=0
    )
    np.testing.assert_allclose(from_stored, model.predict(images, verbose=0), atol=1e-5)
    shared = {id(w) for w in model.weights}
    assert all(id(w) in shared for w in top_model.weights), "the top model has weights of its own"


def test_storing_more_than_half_the_free_memory_is_refused_with_what_to_do(monkeypatch):
    cfg, _, bottom, _, dataset, _ = stored_setup(views=2, shuffle=False)
    per_view = 4 * int(np.prod(bottom.outputs[0].shape[1:]))
    needed = 4 * cfg.batch_size * 2 * per_view  # 4 batches of up to cfg.batch_size, 2 views
    monkeypatch.setattr(train, "available_memory", lambda: 2 * needed - 1)
    with pytest.raises(LearnerError) as caught:
        train.store_views(cfg, bottom, dataset, 2)
    message = str(caught.value)
    assert "Storing 2 views" in message and "GB" in message
    assert "TL_STORED_VIEWS=0 make lab" in message and "%env TL_STORED_VIEWS=0" in message
    monkeypatch.setattr(train, "available_memory", lambda: 2 * needed)
    assert train.store_views(cfg, bottom, dataset, 2)[0][0].shape[:2] == (20, 2)
    monkeypatch.setattr(train, "available_memory", lambda: None)  # unknown: no check
    assert train.store_views(cfg, bottom, dataset, 2)[0][0].shape[:2] == (20, 2)


def test_the_stored_path_trains_when_two_tensors_cross_the_cut():
    # A residual block cut in half: the top reads both the branch and the shortcut.
    cfg = ci_config(TL_BACKBONE="mobilenet", TL_IMAGE_SIZE="32")
    inputs = keras.Input(cfg.image_shape)
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inputs)
    branch = keras.layers.Conv2D(4, 3, padding="same", name="branch_a")(x)
    branch = keras.layers.Conv2D(4, 3, padding="same", name="branch_b")(branch)
    x = keras.layers.Add(name="add")([x, branch])
    x = keras.layers.Conv2D(4, 1, name="top_conv")(x)
    base_model = keras.Model(inputs, x, name=models.BASE_NAME)
    base_model.trainable = False
    model = models.build_classifier(cfg, base_model)
    cut = [layer.name for layer in base_model.layers].index("branch_b")
    base_model.trainable = True
    for layer in base_model.layers[:cut]:
        layer.trainable = False
    bottom, top = models.split_base(base_model, cut)
    assert len(bottom.outputs) == 2, "stem (the shortcut) and branch_a"
    images = np.random.default_rng(2).uniform(0, 255, (12, *cfg.image_shape)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((images, np.array([0, 1] * 6))).batch(4)
    stored, labels = train.store_views(cfg, bottom, dataset, 2)
    top_model = models.top_classifier(model, top)
    plain = train.views_dataset(cfg, [a[:, :1] for a in stored], labels, shuffle=False)
    np.testing.assert_allclose(
        top_model.predict(plain, verbose=0), model.predict(images), atol=1e-5
    )
    before = models.weights_snapshot(base_model, trainable_only=True)
    train.compile_for_logits(top_model, 1e-2, cfg)
    top_model.fit(train.views_dataset(cfg, stored, labels, shuffle=True), epochs=1, verbose=0)
    after = models.weights_snapshot(base_model, trainable_only=True)
    assert len(before) == 4 and models.count_changed(before, after) == 4, "branch_b, top_conv"
