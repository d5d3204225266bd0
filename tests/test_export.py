"""helpers.export: a SavedModel that prepares photos itself, and LiteRT files run by LiteRT."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ci_config

from helpers import data, export, models, predict

TINY = dict(TL_BACKBONE="mobilenet", TL_ALPHA="0.25", TL_IMAGE_SIZE="32", TL_WEIGHTS="none")


@pytest.fixture(scope="module")
def model():
    cfg = ci_config(**TINY)
    classifier = models.build_classifier(cfg, models.build_base(cfg))
    kernel, bias = classifier.get_layer("logit").get_weights()
    rng = np.random.default_rng(0)
    classifier.get_layer("logit").set_weights([rng.normal(0, 5, kernel.shape), bias])
    return classifier


def photos(count=4):
    rng = np.random.default_rng(1)
    shapes = [(40, 70), (90, 33), (32, 32), (64, 48)]
    return [rng.integers(0, 256, size=(*shapes[i % 4], 3), dtype=np.uint8) for i in range(count)]


def test_saved_model_prepares_photos_of_any_size_itself(tmp_path, model):
    import tensorflow as tf

    path = tmp_path / "saved"
    with export.quiet():  # the same call as 07's
        export.with_preparation(model, 32).export(
            str(path),
            format="tf_saved_model",
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="photo")],
            verbose=False,
        )
    reloaded = tf.saved_model.load(str(path))
    for photo in photos():
        served = reloaded.serve(photo[None]).numpy()
        prepared = data.prepare_image(photo, 32)
        expected = predict.logits(model, prepared[None]).reshape(served.shape)
        np.testing.assert_array_equal(served, expected)


def test_litert_float_and_quantized_files(tmp_path, model):
    prepared = np.stack([data.prepare_image(p, 32) for p in photos(8)])
    reference = predict.logits(model, prepared)
    import tensorflow as tf

    float_path, small_path = tmp_path / "model.tflite", tmp_path / "model_int8.tflite"
    with export.quiet():  # the same calls as 07's
        model.export(str(float_path), format="litert", verbose=False)
        model.export(
            str(small_path),
            format="litert",
            verbose=False,
            optimizations=[tf.lite.Optimize.DEFAULT],
        )
    float_logits = export.LiteRTModel(float_path).logits(prepared)
    np.testing.assert_allclose(float_logits, reference, atol=1e-3 * (1 + np.abs(reference).max()))
    assert export.size_mb(small_path) < 0.5 * export.size_mb(float_path)  # 8-bit weights
    small_logits = export.LiteRTModel(small_path).logits(prepared)
    assert small_logits.shape == reference.shape and np.isfinite(small_logits).all()


def test_agreement_and_accuracy():
    assert export.agreement(np.array([1.0, -2, 3]), np.array([0.5, 1, 2])) == pytest.approx(2 / 3)
    assert export.accuracy(np.array([1.0, -2, 3]), np.array([1, 0, 0])) == pytest.approx(2 / 3)


def test_ms_per_image_calls_once_per_image_after_a_warm_up():
    calls = []
    assert export.ms_per_image(calls.append, [1, 2, 3], repeats=2) >= 0
    assert calls == [1, 1, 2, 3, 1, 2, 3]
