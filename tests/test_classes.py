"""Any number of classes (issue 16): one logit for two classes, N logits for N, decided in one
place (models.output_units), and every helper that reads logits follows the model."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix

from conftest import ci_config
from helpers import evaluate, export, models, predict, train, viz, widgets
from helpers.errors import LearnerError

TINY = dict(TL_BACKBONE="mobilenet", TL_ALPHA="0.25", TL_IMAGE_SIZE="32", TL_WEIGHTS="none")


def test_output_units_one_logit_for_two_classes_else_one_per_class():
    assert models.output_units(2) == 1
    assert models.output_units(3) == 3 and models.output_units(37) == 37
    with pytest.raises(LearnerError, match="at least two classes"):
        models.output_units(1)


@pytest.mark.parametrize("class_count, units", [(2, 1), (5, 5)])
def test_every_builder_follows_the_class_count(class_count, units):
    cfg = ci_config(**TINY)
    base = models.build_base(cfg)
    assert models.build_classifier(cfg, base, None, class_count).output_shape == (None, units)
    assert models.from_scratch(cfg, class_count).output_shape == (None, units)
    assert train.head_on_features(8, class_count).output_shape == (None, units)


def test_loss_and_accuracy_follow_the_logits():
    loss, accuracy = train.loss_and_accuracy(train.head_on_features(4, 2))
    assert isinstance(loss, keras.losses.BinaryCrossentropy) and loss.from_logits
    assert isinstance(accuracy, keras.metrics.BinaryAccuracy) and accuracy.threshold == 0.0
    loss, accuracy = train.loss_and_accuracy(train.head_on_features(4, 3))
    assert isinstance(loss, keras.losses.SparseCategoricalCrossentropy) and loss.from_logits
    assert isinstance(accuracy, keras.metrics.SparseCategoricalAccuracy)


def test_a_three_class_head_learns_separable_features():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 60)
    features = np.eye(3)[labels] * 3 + rng.normal(0, 0.3, (180, 3))
    head = train.head_on_features(3, 3)
    train.compile_for_logits(head, 1e-2, ci_config())
    head.fit(features, labels, epochs=40, batch_size=30, verbose=0)
    loss, accuracy = head.evaluate(features, labels, verbose=0)
    assert accuracy > 0.9 and loss < 0.5  # binary cross-entropy on labels 0-2 would go negative


def three_class_predictions() -> evaluate.Predictions:
    logits = np.array([[3.0, 0, 0], [0, 2, 0], [0, 0, 1], [2, 1, 0], [0.1, 0, 0.2], [0, 3, 0]])
    return evaluate.Predictions(logits.astype(np.float32), np.array([0, 1, 2, 1, 0, 2]))


def test_predictions_for_n_classes_are_the_softmax_and_the_argmax():
    predictions = three_class_predictions()
    assert not predictions.binary
    np.testing.assert_allclose(predictions.probabilities.sum(axis=1), 1.0)
    np.testing.assert_array_equal(predictions.predicted(), [0, 1, 2, 0, 2, 1])
    np.testing.assert_array_equal(predictions.predicted(0.9), predictions.predicted())  # no cut
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)(
        predictions.labels, predictions.logits
    )
    np.testing.assert_allclose(predictions.losses, np.asarray(expected), rtol=1e-5)
    assert evaluate.least_certain(predictions, 1)[0] == 4  # the flattest softmax


def test_threshold_report_for_n_classes_agrees_with_scikit_learn():
    predictions = three_class_predictions()
    report = evaluate.threshold_report(predictions, 0.5, ["a", "b", "c"])
    expected = confusion_matrix(predictions.labels, predictions.predicted(), labels=[0, 1, 2])
    np.testing.assert_array_equal(report["matrix"], expected)
    assert report["accuracy"] == 0.5
    assert evaluate.most_confused(expected, ["a", "b", "c"]) == [
        ("a", "c", 1),
        ("b", "a", 1),
        ("c", "b", 1),
    ]


def test_confidence_report_answers_fewer_images_the_higher_the_minimum():
    predictions = three_class_predictions()
    everything = evaluate.confidence_report(predictions, 0.0)
    assert everything["answered"] == 1.0 and everything["accuracy"] == 0.5
    strict = evaluate.confidence_report(predictions, 0.75)  # rows 0, 1 and 5: 2 of 3 right
    assert strict["answered"] == 0.5 and strict["accuracy"] == pytest.approx(2 / 3)
    assert "answered" in widgets.confidence_html(predictions, 0.8)


def test_class_score_is_the_signed_logit_or_the_class_logit():
    np.testing.assert_array_equal(evaluate.class_score(np.array([2.0, -1.0]), [0, 1]), [-2, -1])
    logits = np.array([[1.0, 5.0, 2.0]])
    assert evaluate.class_score(logits, [2])[0] == 2.0


def test_interpret_top_k_for_three_classes_and_one_logit_unchanged():
    names = ["daisy", "rose", "tulip"]
    answer = predict.interpret(np.array([0.0, 2.0, 1.0]), names, "x.jpg", top=2)
    assert answer.class_name == "rose" and [n for n, _ in answer.top] == ["rose", "tulip"]
    assert answer.line().split("\t")[:4] == ["x.jpg", "rose", f"{answer.probability:.1%}", "tulip"]
    binary = predict.interpret(-2.0, ["cat", "dog"], "y.jpg")
    assert binary.class_name == "cat" and binary.logit == -2.0
    assert binary.line() == f"y.jpg\tcat\t{binary.probability:.1%}"
    np.testing.assert_array_equal(predict.classes(np.array([[0.5], [-1.0]])), [1, 0])
    np.testing.assert_array_equal(predict.classes(np.array([[0.5, 2.0], [3.0, -1.0]])), [1, 0])


def test_export_accuracy_and_agreement_for_n_logits():
    logits = np.array([[3.0, 0, 0], [0, 2, 0], [0, 0, 1]])
    assert export.accuracy(logits, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert export.agreement(logits + 0.01, logits) == 1.0


def test_evaluation_figure_for_n_classes_has_two_matrices_and_no_roc():
    predictions = three_class_predictions()
    figure = viz.evaluation_figure(predictions.labels, predictions.probabilities, ["a", "b", "c"])
    assert len(figure.axes) == 2


def test_predict_refuses_a_model_whose_outputs_disagree_with_its_class_names(tmp_path):
    cfg = ci_config(TL_OUTPUT_DIR=str(tmp_path), **TINY)
    model = models.build_classifier(cfg, models.build_base(cfg), None, 3)
    path = models.save(model, cfg, "fine_tuned_model", class_names=["a", "b", "c"])
    assert predict.load(path).class_names == ["a", "b", "c"]
    sidecar = json.loads(path.with_suffix(".json").read_text())
    sidecar["class_names"] = ["a", "b"]
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    with pytest.raises(predict.PredictError, match="outputs 3 logit.*list 2 classes"):
        predict.load(path)
