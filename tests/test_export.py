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
    with export.quiet():  # the same calls as 07's: one SavedModel, converted twice
        model.export(str(tmp_path / "saved"), format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "saved"))
        float_path.write_bytes(converter.convert())
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        small_path.write_bytes(converter.convert())
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
    assert export.ms_per_image(calls.append, [1, 2, 3]) >= 0
    assert calls == [1, 1, 2, 3]


def _logits(classes: int, count: int = 400, seed: int = 0):
    """Returns (logits, labels) of a confident model right on about 90% of the images."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, count)
    width = 1 if classes == 2 else classes
    logits = rng.normal(0, 1.5, (count, width))
    if classes == 2:
        logits[:, 0] += np.where(labels == 1, 3.0, -3.0)
    else:
        logits[np.arange(count), labels] += 4.0
    return logits, labels


@pytest.mark.parametrize("classes", [2, 5])
def test_a_faithful_approximation_is_called_faithful(classes):
    logits, labels = _logits(classes)
    noise = np.random.default_rng(1).normal(0, 0.03, logits.shape)  # 8-bit-sized error
    verdict = export.judge_approximation(logits, logits + noise, labels)
    assert verdict["faithful"], verdict["problems"]
    if classes > 2:  # a shift common to every logit changes no probability
        assert export.judge_approximation(logits, logits + 2.0, labels)["faithful"]


def test_a_few_borderline_answers_turned_wrong_are_chance_many_are_a_fault():
    # a cat/dog fold of the reference photos: 3 of 200 answers changed, all to wrong (1.5 points)
    logits, labels = _logits(2, count=200)
    right = np.flatnonzero((logits[:, 0] > 0) == (labels == 1))
    nudged = logits.copy()
    flipped = right[:3]
    nudged[flipped, 0] = -np.sign(logits[flipped, 0]) * 0.01  # just over the line
    verdict = export.judge_approximation(logits, nudged, labels)
    assert verdict["changed"] == 3 and verdict["accuracy_change"] == pytest.approx(-0.015)
    assert verdict["faithful"], verdict["problems"]
    # 2,000 images, 30 right answers turned wrong and none the other way: 1.5 points, p < 1e-8,
    # while each class keeps about 97% of its answers (the agreement limit is 95%)
    logits, labels = _logits(2, count=2000)
    right = np.flatnonzero((logits[:, 0] > 0) == (labels == 1))
    nudged = logits.copy()
    flipped = right[:30]
    nudged[flipped, 0] = -np.sign(logits[flipped, 0]) * 0.01
    verdict = export.judge_approximation(logits, nudged, labels)
    assert not verdict["faithful"]
    assert [p for p in verdict["problems"] if p.startswith("accuracy falls by 1.5 points")]


@pytest.mark.parametrize(
    "fault", [lambda x: 0.5 * x - 3, lambda x: x + 1, lambda x: 1.3 * x, lambda x: 0.5 * x]
)
def test_two_class_faults_are_not_faithful(fault):
    logits, labels = _logits(2)
    verdict = export.judge_approximation(logits, fault(logits), labels)
    assert not verdict["faithful"]


@pytest.mark.parametrize("shifted", range(5))
def test_one_class_logit_raised_by_1_is_not_faithful(shifted):
    # centred per image, the old check saw offset 0 here and passed every class
    logits, labels = _logits(5)
    faulty = logits.copy()
    faulty[:, shifted] += 1.0
    names = list("abcde")
    verdict = export.judge_approximation(logits, faulty, labels, names)
    assert not verdict["faithful"], verdict
    assert any(
        p.startswith("shifted") and f"'{names[shifted]}' +" in p for p in verdict["problems"]
    )
