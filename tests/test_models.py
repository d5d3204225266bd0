"""helpers.models: input scaling per backbone, weights errors, logits, BatchNorm, inference."""

from __future__ import annotations

import dataclasses
import importlib

import keras
import numpy as np
import pytest

from conftest import ci_config, make_folder
from helpers import augment, models, train
from helpers.errors import LearnerError

# The smallest input each backbone builds at; all with random weights (no download).
SMALL = {"xception": 71, "mobilenet_v2": 32, "mobilenet": 32, "efficientnet_b0": 32}
PREPROCESS_MODULE = {
    "xception": "xception",
    "mobilenet_v2": "mobilenet_v2",
    "mobilenet": "mobilenet",
    "efficientnet_b0": "efficientnet",
}


def small_config(backbone: str, **variables: str):
    settings = {"TL_WEIGHTS": "none", **variables}
    return ci_config(TL_BACKBONE=backbone, TL_IMAGE_SIZE=str(SMALL[backbone]), **settings)


def test_registry_covers_every_configurable_backbone():
    from helpers import config

    assert set(models.BACKBONES) == set(config.BACKBONES)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_each_backbone_gets_the_input_keras_preprocess_input_gives(name):
    """Our scaling layer must equal keras.applications.<module>.preprocess_input on 0-255 pixels."""
    pixels = np.random.default_rng(0).uniform(0, 255, size=(2, 8, 8, 3)).astype("float32")
    module = importlib.import_module(f"keras.applications.{PREPROCESS_MODULE[name]}")
    expected = module.preprocess_input(pixels.copy())
    ours = np.asarray(models.backbone(name).scaling()(pixels))
    np.testing.assert_allclose(ours, expected, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_classifier_feeds_its_base_the_scaled_pixels(name):
    """Inside the built classifier, the base receives exactly preprocess_input(pixels)."""
    cfg = small_config(name)
    base_model = models.build_base(cfg)
    model = models.build_classifier(cfg, base_model, augment.build())
    (call,) = model.get_layer(models.BASE_NAME)._inbound_nodes  # the base's one call in model
    feeds_base = keras.Model(model.input, call.input_tensors[0])
    pixels = np.full((1, *cfg.image_shape), 255.0, dtype="float32")
    pixels[0, 0, 0] = 0.0
    fed = np.asarray(feeds_base.predict(pixels, verbose=0))
    low, high = models.backbone(name).input_range
    assert fed.min() == pytest.approx(low, abs=1e-4)
    assert fed.max() == pytest.approx(high, abs=1e-4)


def test_build_base_respects_alpha_and_no_top():
    cfg = small_config("mobilenet", TL_ALPHA="0.25")
    base_model = models.build_base(cfg)
    assert base_model.name == models.BASE_NAME
    assert base_model.output_shape[-1] == 256  # 1024 channels x alpha 0.25, no classifier


def test_imagenet_download_failure_says_how_to_pass_a_file(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.example/weights.h5: None")

    entry = models.BACKBONES["xception"]
    monkeypatch.setitem(
        models.BACKBONES, "xception", models.Backbone("xception", offline, entry.input_range)
    )
    cfg = small_config("xception", TL_WEIGHTS="imagenet")
    with pytest.raises(models.WeightsError) as caught:
        models.build_base(cfg)
    message = str(caught.value)
    assert "URL fetch failure" in message
    assert "TL_WEIGHTS=/path/to/file.h5" in message and "TL_WEIGHTS=none" in message
    assert isinstance(caught.value, LearnerError)


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, on the wrong file
def test_a_weights_file_for_another_network_is_refused_clearly(tmp_path):
    other = keras.applications.MobileNet(
        input_shape=(32, 32, 3), alpha=0.5, include_top=False, weights=None
    )
    path = tmp_path / "mobilenet_0.5.weights.h5"
    other.save_weights(path)
    cfg = small_config("mobilenet", TL_ALPHA="0.25", TL_WEIGHTS=str(path))
    with pytest.raises(models.WeightsError, match="does not fit mobilenet"):
        models.build_base(cfg)


@pytest.fixture(scope="module")
def classifier():
    cfg = small_config("mobilenet", TL_ALPHA="0.25")
    base_model = models.build_base(cfg)
    base_model.trainable = False
    return cfg, models.build_classifier(cfg, base_model, augment.build())


def test_classifier_outputs_one_logit_with_no_sigmoid(classifier):
    cfg, model = classifier
    logit = model.get_layer("logit")
    assert logit.activation is keras.activations.linear, "a sigmoid before from_logits=True"
    assert model.output_shape == (None, 1)
    train.compile_for_logits(model, 1e-3, cfg)
    compiled = model.get_compile_config()
    assert compiled["loss"]["config"]["from_logits"] is True
    (accuracy,) = compiled["metrics"]
    assert accuracy["config"]["threshold"] == 0.0, "logits are compared with 0, not 0.5"


def test_augmentation_is_off_at_inference(classifier):
    cfg, model = classifier
    images = np.random.default_rng(1).uniform(0, 255, size=(4, *cfg.image_shape))
    first = model.predict(images, verbose=0)
    second = model.predict(images, verbose=0)
    np.testing.assert_array_equal(first, second)
    without = models.for_inference(model)
    assert augment.NAME not in [layer.name for layer in without.layers]
    np.testing.assert_allclose(without(images).numpy(), first, atol=1e-5)
    np.testing.assert_array_equal(without(images).numpy(), without(images).numpy())


def test_frozen_batchnorm_keeps_its_statistics_and_the_base_still_trains():
    """The 05 recipe on a small base; the check fails if BatchNorm is left trainable."""
    cfg = small_config("mobilenet")
    base_model = keras.Sequential(
        [
            keras.Input(cfg.image_shape),
            keras.layers.Conv2D(8, 3, strides=2),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Conv2D(8, 3),
            keras.layers.BatchNormalization(),
        ],
        name=models.BASE_NAME,
    )
    base_model.trainable = False
    model = models.build_classifier(cfg, base_model, augment.build())
    base_model.trainable = True
    for layer in models.batchnorm_layers(base_model):
        layer.trainable = False
    train.compile_for_logits(model, 1e-2, cfg)
    images = np.random.default_rng(2).uniform(0, 255, size=(16, *cfg.image_shape))
    labels = np.array([0, 1] * 8)
    statistics = models.batchnorm_statistics(model)
    assert len(statistics) == 4
    kernels = models.weights_snapshot(base_model, trainable_only=True)
    model.fit(images, labels, epochs=1, verbose=0)
    assert models.count_changed(statistics, models.batchnorm_statistics(model)) == 0
    changed = models.count_changed(
        kernels, models.weights_snapshot(base_model, trainable_only=True)
    )
    assert changed == len(kernels), "the unfrozen base did not train"

    for layer in models.batchnorm_layers(base_model):  # relying on training=False only
        layer.trainable = True
    train.compile_for_logits(model, 1e-2, cfg)
    model.fit(images, labels, epochs=1, verbose=0)
    assert models.count_changed(statistics, models.batchnorm_statistics(model)) == 4


def test_count_changed_sees_a_single_changed_element():
    before = [np.zeros((3, 3)), np.ones(4)]
    after = [np.zeros((3, 3)), np.ones(4)]
    assert models.count_changed(before, after) == 0
    after[1][2] = 1.0000001
    assert models.count_changed(before, after) == 1


def test_save_and_load_saved_match_settings(classifier, tmp_path):
    cfg, model = classifier
    cfg = cfg.__class__(**{**cfg.__dict__, "output_dir": tmp_path})
    missing, why = models.load_saved(cfg, "transfer_model")
    assert missing is None and "run 04 first" in why
    models.save(model, cfg, "transfer_model")
    loaded, why = models.load_saved(cfg, "transfer_model")
    assert loaded is not None, why
    other = cfg.__class__(**{**cfg.__dict__, "image_size": 64})
    refused, why = models.load_saved(other, "transfer_model")
    assert refused is None and "other settings" in why


def test_a_model_saved_for_other_classes_than_the_folder_has_now_is_not_reused(
    classifier, tmp_path
):
    # 05 saved a model for 3 class folders; then two were added to the same TL_DATA folder.
    _, model = classifier
    photos = make_folder(tmp_path / "photos", {"a": 2, "b": 2, "c": 2})
    cfg = dataclasses.replace(classifier[0], data=str(photos), output_dir=tmp_path / "run")
    models.save(model, cfg, "fine_tuned_model")
    assert models.load_saved(cfg, "fine_tuned_model")[0] is not None
    make_folder(photos, {"d": 2, "e": 2})
    refused, why = models.load_saved(cfg, "fine_tuned_model")
    assert refused is None
    assert "3 classes ['a', 'b', 'c']" in why and "5: ['a', 'b', 'c', 'd', 'e']" in why, why


def test_a_fine_tuned_model_is_reused_only_with_the_same_fine_tuning_settings(classifier, tmp_path):
    cfg, model = classifier
    cfg = dataclasses.replace(cfg, output_dir=tmp_path, unfreeze=2, stored_views=2)
    models.save(model, cfg, "fine_tuned_model")
    models.save(model, cfg, "transfer_model")
    assert models.load_saved(cfg, "fine_tuned_model")[0] is not None
    for change in (dict(unfreeze="all"), dict(unfreeze=0.3), dict(stored_views=0)):
        other = dataclasses.replace(cfg, **change)
        refused, why = models.load_saved(other, "fine_tuned_model")
        assert refused is None and "other settings" in why, change
        # 04's model does not depend on how 05 fine-tunes: still reused
        assert models.load_saved(other, "transfer_model")[0] is not None, change


def test_the_gpu_path_mixed_precision_trains_and_outputs_float32_logits():
    """What Colab runs (mixed_float16), on this CPU: the logit stays float32, the head trains."""
    cfg = small_config("mobilenet", TL_ALPHA="0.25")
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        base_model = models.build_base(cfg)
        base_model.trainable = False
        model = models.build_classifier(cfg, base_model, augment.build())
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
            jit_compile="auto",
        )
        images = np.random.default_rng(3).uniform(0, 255, size=(8, *cfg.image_shape))
        history = model.fit(images, np.array([0, 1] * 4), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        assert model.output.dtype == "float32"
        assert model.get_layer("logit").compute_dtype == "float32"
        assert models.for_inference(model)(images).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_feature_extractor_computes_what_the_classifier_pools(classifier):
    cfg, model = classifier
    extractor = models.feature_extractor(cfg, model.get_layer(models.BASE_NAME))
    pooled = keras.Model(model.input, model.get_layer("pool").output)
    images = np.random.default_rng(4).uniform(0, 255, size=(3, *cfg.image_shape))
    np.testing.assert_allclose(
        extractor.predict(images, verbose=0), pooled.predict(images, verbose=0), atol=1e-5
    )


EFFICIENTNET_FILES = ("efficientnetb0_notop.h5", "b0.weights.h5")  # Keras's download; Keras 3's


@pytest.fixture(scope="module")
def efficientnet_weights(tmp_path_factory):
    """Returns ``(folder, layer types, pixels, logits)``: random EfficientNetB0 weights in both
    formats of ``EFFICIENTNET_FILES``, and what Keras's own ``EfficientNetB0(weights="imagenet")``
    is and computes for ``pixels`` with them (built once: both files hold the same weights).

    The stem's Normalization gets ImageNet's mean and variance, as the real file holds them. No
    download: Keras' own imagenet route is pointed at the file in the format it downloads.
    """
    import h5py
    import keras.src.applications.efficientnet as keras_efficientnet
    from keras.src.legacy.saving import legacy_h5_format

    size = SMALL["efficientnet_b0"]
    source = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(size, size, 3)
    )
    (normalization,) = [
        layer for layer in source.layers if isinstance(layer, keras.layers.Normalization)
    ]
    mean, variance, count = normalization.get_weights()
    stddev = np.array(models.IMAGENET_STDDEV_RGB, dtype=variance.dtype)
    mean = np.array([0.485, 0.456, 0.406], dtype=mean.dtype).reshape(mean.shape)
    normalization.set_weights([mean, (stddev**2).reshape(variance.shape), count])
    folder = tmp_path_factory.mktemp("efficientnet")
    downloaded, keras_3 = (folder / name for name in EFFICIENTNET_FILES)
    with h5py.File(downloaded, "w") as file:  # the legacy format of the files Keras downloads
        legacy_h5_format.save_weights_to_hdf5_group(file, source)
    source.save_weights(keras_3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras_efficientnet.file_utils, "get_file", lambda *a, **kw: str(downloaded))
        reference = keras.applications.EfficientNetB0(
            include_top=False, weights="imagenet", input_shape=(size, size, 3)
        )
    pixels = np.random.default_rng(5).uniform(0, 255, size=(2, size, size, 3)).astype("float32")
    layer_types = [type(layer).__name__ for layer in reference.layers]
    return folder, layer_types, pixels, reference.predict(pixels, verbose=0)


@pytest.mark.parametrize("file_name", EFFICIENTNET_FILES)
def test_efficientnet_from_a_weights_file_is_the_network_keras_builds_for_imagenet(
    efficientnet_weights, file_name
):
    """TL_WEIGHTS=<file> must give what EfficientNetB0(weights="imagenet") gives with that file.

    Keras adds Rescaling(1/sqrt(stddev)) to the stem only for weights="imagenet"; a base built
    with weights=None and then loaded lacks it, and its inputs are about 2x too large.
    """
    folder, layer_types, pixels, expected = efficientnet_weights
    ours = models.build_base(small_config("efficientnet_b0", TL_WEIGHTS=str(folder / file_name)))
    assert ours.name == models.BASE_NAME
    assert [type(layer).__name__ for layer in ours.layers] == layer_types
    np.testing.assert_allclose(ours.predict(pixels, verbose=0), expected, rtol=1e-4, atol=1e-5)
