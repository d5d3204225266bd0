"""helpers.evaluate (and 06's additions to viz, widgets and data): small models, generated data."""

from __future__ import annotations

from pathlib import Path

import ipywidgets
import keras
import numpy as np
import pytest
import tensorflow as tf
from matplotlib.figure import Figure
from sklearn.metrics import classification_report

from conftest import CLASS_COLOURS, ci_config, make_folder, save_image
from helpers import augment, data, evaluate, models, viz, widgets
from helpers.errors import LearnerError

CLASSES = ["cat", "dog"]


def predictions(logits, labels, files=None) -> evaluate.Predictions:
    return evaluate.Predictions(
        np.asarray(logits, dtype=np.float32), np.asarray(labels, dtype=np.int64), files
    )


# --- Predictions and one aligned pass -------------------------------------------------------------


def test_probabilities_losses_and_predictions():
    p = predictions([-2.0, 0.0, 3.0, 0.5], [0, 1, 1, 0])
    np.testing.assert_allclose(p.probabilities, 1 / (1 + np.exp(-np.array([-2.0, 0.0, 3.0, 0.5]))))
    keras_loss = keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)(
        p.labels[:, None].astype("float32"), p.logits[:, None]
    )
    np.testing.assert_allclose(p.losses, keras.ops.convert_to_numpy(keras_loss), rtol=1e-5)
    assert p.predicted(0.5).tolist() == [0, 0, 1, 1]  # a logit of exactly 0 is not "dog", as Keras
    assert p.predicted(0.7).tolist() == [0, 0, 1, 0]  # sigmoid(0.5) = 0.62 < 0.7
    assert p.predicted(0.1).tolist() == [1, 1, 1, 1]  # sigmoid(-2) = 0.12 > 0.1
    assert p.correct().tolist() == [True, False, True, False]


def test_huge_logits_do_not_overflow():
    p = predictions([-1000.0, 1000.0], [1, 0])
    assert np.all(np.isfinite(p.losses)) and np.allclose(p.losses, 1000.0)


def tiny_model() -> keras.Model:
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(1)(x))


def test_collect_keeps_logits_labels_and_files_aligned():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (10, 4, 4, 3)).astype("float32")
    labels = np.arange(10) % 2
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(3)  # a smaller last batch
    model = tiny_model()
    files = [Path(f"img{i}.jpg") for i in range(10)]
    result = evaluate.collect(model, dataset, files)
    expected = model.predict(images, verbose=0).ravel()  # one batch of 10, not batches of 3
    # Another batching moves a logit by float rounding (6.5e-6 measured, on logits up to 78); a
    # misaligned image would differ by the gap between two images' logits (more than 1 here).
    np.testing.assert_allclose(result.logits, expected, atol=1e-5 * np.abs(expected).max())
    assert result.labels.tolist() == labels.tolist()
    assert result.files == files
    with pytest.raises(ValueError, match="9 files for 10 images"):
        evaluate.collect(model, dataset, files[:9])


def test_images_at_returns_the_images_in_the_order_asked():
    images = np.arange(7)[:, None, None, None] * np.ones((7, 2, 2, 3))
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(7))).batch(3)
    picked = evaluate.images_at(dataset, [5, 0, 3])
    assert picked[:, 0, 0, 0].tolist() == [5, 0, 3]
    with pytest.raises(IndexError, match="7 images"):
        evaluate.images_at(dataset, [7])


# --- the threshold ----------------------------------------------------------------------------


def test_threshold_report_counts_by_hand():
    # true:      cat   cat  cat  dog  dog   dog
    p = predictions([-3.0, -1.0, 2.0, 1.0, -0.5, 4.0], [0, 0, 0, 1, 1, 1])
    report = evaluate.threshold_report(p, 0.5, CLASSES)
    assert report["matrix"] == [[2, 1], [1, 2]]
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["classes"]["dog"] == pytest.approx(
        {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
    )
    high = evaluate.threshold_report(p, 0.99, CLASSES)  # nothing is called a dog
    assert high["matrix"] == [[3, 0], [3, 0]]
    assert np.isnan(high["classes"]["dog"]["precision"])
    assert high["classes"]["dog"]["recall"] == 0.0
    assert high["classes"]["cat"]["recall"] == 1.0


@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.8])
def test_threshold_report_agrees_with_scikit_learn(threshold):
    rng = np.random.default_rng(1)
    p = predictions(rng.normal(size=200), rng.integers(0, 2, 200))
    report = evaluate.threshold_report(p, threshold, CLASSES)
    expected = classification_report(
        p.labels, p.predicted(threshold), target_names=CLASSES, output_dict=True
    )
    for name in CLASSES:
        for key in ("precision", "recall"):
            assert report["classes"][name][key] == pytest.approx(expected[name][key])
        assert report["classes"][name]["f1"] == pytest.approx(expected[name]["f1-score"])


def test_threshold_html_shows_the_matrix_precision_and_recall():
    p = predictions([-3.0, -1.0, 2.0, 1.0, -0.5, 4.0], [0, 0, 0, 1, 1, 1])
    text = widgets.threshold_html(p, 0.5, CLASSES)
    assert "threshold 0.50" in text
    assert ">2</td><td style='padding: 0 0.8em'>1</td>" in text  # the cat row
    assert "<th style='padding: 0 0.8em'>predicted cat</th>" in text  # headers kept apart
    assert "dog: precision 0.667, recall 0.667" in text
    text = widgets.threshold_html(p, 0.99, CLASSES)
    assert "dog: precision n/a, recall 0.000" in text
    assert "cat: precision 0.500, recall 1.000" in text


def test_threshold_explorer_slider_updates_the_text():
    p = predictions([-3.0, -1.0, 2.0, 1.0, -0.5, 4.0], [0, 0, 0, 1, 1, 1])
    box = widgets.threshold_explorer(p, CLASSES)
    slider, text = box.children
    assert isinstance(slider, ipywidgets.FloatSlider) and slider.description == "threshold"
    assert isinstance(text, ipywidgets.HTML)
    assert text.value == widgets.threshold_html(p, 0.5, CLASSES)
    slider.value = 0.9  # what dragging the slider does
    assert text.value == widgets.threshold_html(p, 0.9, CLASSES)
    assert "threshold 0.90" in text.value


# --- worst errors, least certain --------------------------------------------------------------


def test_worst_errors_are_misclassified_and_sorted_by_loss():
    p = predictions([5.0, -0.2, 0.3, -4.0, 2.0, -1.0], [0, 1, 0, 1, 1, 0])
    worst = evaluate.worst_errors(p, count=10)
    assert worst.tolist() == [0, 3, 2, 1]  # wrong ones only, most confident first
    assert evaluate.worst_errors(p, count=2).tolist() == [0, 3]
    assert not evaluate.worst_errors(predictions([1.0, -1.0], [1, 0])).size


def test_worst_errors_take_the_classes_in_turn():
    # all the largest losses are cats': a panel of 4 still shows the two worst dogs
    p = predictions([9.0, 8.0, 7.0, 6.0, -1.0, -0.5], [0, 0, 0, 0, 1, 1])
    assert evaluate.worst_errors(p, count=4).tolist() == [0, 1, 4, 5]


def test_balanced_sample_of_a_class_sorted_test_set():
    labels = np.repeat([0, 1, 2], [500, 300, 40])  # a test folder read sorted by class
    sample = evaluate.balanced_sample(labels, 90, seed=3)
    assert np.bincount(labels[sample]).tolist() == [30, 30, 30]
    assert len(set(sample.tolist())) == 90
    assert sample.tolist() == evaluate.balanced_sample(labels, 90, seed=3).tolist()  # seeded
    assert sample.tolist() != evaluate.balanced_sample(labels, 90, seed=4).tolist()
    # a class with too few leaves its turns to the others
    assert np.bincount(labels[evaluate.balanced_sample(labels, 200, 0)]).tolist() == [80, 80, 40]
    among = np.flatnonzero(labels != 1)
    assert set(labels[evaluate.balanced_sample(labels, 50, 0, among=among)]) == {0, 2}
    assert len(evaluate.balanced_sample(labels, 10_000, 0)) == len(labels)


def test_least_certain_are_closest_to_one_half():
    p = predictions([5.0, -0.2, 0.3, -4.0, 0.05], [0, 1, 0, 1, 1])
    assert evaluate.least_certain(p, count=3).tolist() == [4, 1, 2]


# --- Grad-CAM ---------------------------------------------------------------------------------


def pooled_classifier(augmentation=None) -> keras.Model:
    """04's classifier with a tiny base: 32x32 images, a 4x4 grid of mean colours, one logit.

    The logit is (mean red, scaled to [-1, 1]) + 0.5: red regions push towards "dog".
    """
    cfg = ci_config(TL_BACKBONE="mobilenet", TL_IMAGE_SIZE="32")
    base = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.AveragePooling2D(8)], name=models.BASE_NAME
    )
    model = models.build_classifier(cfg, base, augmentation)
    model.get_layer("logit").set_weights([np.array([[1.0], [0.0], [0.0]]), np.array([0.5])])
    return model


def red_patch_images(count: int = 6) -> np.ndarray:
    """Grey images with a red patch over a different 2x2 block of grid cells in each."""
    images = np.full((count, 32, 32, 3), 40, dtype=np.uint8)
    for index in range(count):
        row, column = (index % 3) * 8, (index // 3) * 16
        images[index, row : row + 16, column : column + 16, 0] = 255
    return images


def test_gradcam_model_matches_the_classifier_and_leaves_augmentation_out():
    model = pooled_classifier(augment.build(seed=0))
    cam_model = evaluate.gradcam_model(model)
    images = red_patch_images()
    feature_map, logits = cam_model.predict(images, verbose=0)
    assert feature_map.shape == (6, 4, 4, 3)
    np.testing.assert_allclose(logits, model.predict(images, verbose=0), rtol=1e-5)
    again = cam_model(images)[1]  # called directly: no random flip or rotation
    np.testing.assert_allclose(again, logits, rtol=1e-5)


def test_gradcam_model_without_a_nested_base_says_what_to_do():
    with pytest.raises(LearnerError, match="run 04 and 05"):
        evaluate.gradcam_model(tiny_model())


def test_cells_to_pixels_and_hide_cells():
    cells = np.zeros((1, 3, 3), dtype=bool)
    cells[0, 0, 2] = True
    mask = evaluate.cells_to_pixels(cells, 75)
    assert mask.sum() == 25 * 25 and mask[0, :25, 50:].all()
    images = np.zeros((1, 6, 6, 3), dtype=np.uint8)
    images[0, :3, :3] = 90  # top-left cell of a 2x2 grid; the image's mean is 22.5
    marks = np.array([[[True, False], [False, False]]])
    hidden = evaluate.hide_cells(images, marks)
    assert hidden.dtype == np.uint8
    assert np.all(hidden[0, :3, :3] == 22) and np.all(hidden[0, 3:] == 0)  # 22.5 rounds to 22
    assert images[0, 0, 0, 0] == 90  # the original is untouched


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_hide_cells_fills_each_image_with_its_own_mean(dtype):
    rng = np.random.default_rng(0)
    images = (rng.random((5, 14, 14, 3)) * 255).astype(dtype)
    cells = rng.random((5, 7, 7)) < 0.3
    hidden = evaluate.hide_cells(images, cells)
    mask = evaluate.cells_to_pixels(cells, 14)
    assert hidden.dtype == dtype and hidden.shape == images.shape
    for index, image in enumerate(images):  # one image at a time, the slow way
        expected = np.round(image.astype(np.float32))
        expected[mask[index]] = np.round(image.reshape(-1, 3).mean(axis=0).astype(np.float32))
        np.testing.assert_array_equal(hidden[index], expected.astype(dtype))


def test_top_cells():
    heatmaps = np.arange(18, dtype=float).reshape(2, 3, 3)
    heatmaps[1] *= -1
    top = evaluate.top_cells(heatmaps, 2)
    assert top[0].ravel().tolist()[-2:] == [True, True] and top[0].sum() == 2
    assert top[1].ravel().tolist()[:2] == [True, True]


def test_centre_prior_is_highest_in_the_middle():
    prior = evaluate.centre_prior((5, 5))
    assert np.unravel_index(prior.argmax(), prior.shape) == (2, 2)
    assert prior[0, 0] == prior.min()
    np.testing.assert_array_equal(prior, prior.T)


def red_patch_maps(images) -> np.ndarray:
    """The right map for pooled_classifier: each 8x8 cell's red share (red raises the logit)."""
    return images[:, ::8, ::8, 0].astype(float)


def test_deletion_drops_the_right_map_beats_its_controls():
    images = red_patch_images()
    cam_model = evaluate.gradcam_model(pooled_classifier())
    right = red_patch_maps(images)
    rng = np.random.default_rng(3)
    maps = {
        "right": right,
        "inverted": -right,
        "centre": np.broadcast_to(evaluate.centre_prior((4, 4)), right.shape),
        "random": rng.random(right.shape),
    }
    drops = evaluate.deletion_drops(cam_model, images, maps)
    assert set(drops) == set(maps) and all(d.shape == (6,) for d in drops.values())
    for control in ("inverted", "centre", "random"):
        assert np.all(drops["right"] >= drops[control])
    assert drops["right"].mean() > drops["centre"].mean()
    # The check can fail: a map pointing away from the red patch loses to every control.
    assert drops["inverted"].mean() < min(drops["centre"].mean(), drops["random"].mean())


def test_paired_compares_image_by_image():
    a = np.array([3.0, 2.0, 5.0, 4.0])
    result = evaluate.paired(a, a - np.array([1.0, 1.2, 0.8, 1.0]))
    assert result["images"] == 4 and result["mean"] == 1.0 and result["a_better"] == 1.0
    assert result["z"] > 5 and result["interval_95"][0] > 0
    even = evaluate.paired(a, a[::-1])  # as often better as worse
    assert even["mean"] == 0 and even["interval_95"][0] < 0 < even["interval_95"][1]


def test_mcnemar_counts_only_the_disagreements():
    right_a = np.array([True] * 90 + [False] * 10)
    right_b = right_a.copy()
    right_b[:2] = False  # b loses 2 images a had
    right_b[90:100] = True  # and wins all 10 that a missed
    result = evaluate.mcnemar(right_a, right_b)
    assert (result["a_only"], result["b_only"]) == (2, 10)
    assert result["difference"] == 0.08
    assert 0.03 < result["p_value"] < 0.04  # two-sided binomial: P(X <= 2 or >= 10 | 12, 1/2)
    same = evaluate.mcnemar(right_a, right_a)
    assert same["p_value"] == 1.0 and same["difference"] == 0.0


# --- plots ------------------------------------------------------------------------------------


def test_evaluation_figure_has_both_matrices_and_the_roc():
    labels = np.array([0, 0, 0, 1, 1, 1])
    figure = viz.evaluation_figure(labels, np.array([0.1, 0.4, 0.7, 0.6, 0.3, 0.9]), CLASSES)
    assert isinstance(figure, Figure)
    counts, normalised, roc = figure.axes[:3]
    assert [t.get_text() for t in counts.texts] == ["2", "1", "1", "2"]
    assert [t.get_text() for t in normalised.texts] == ["0.67", "0.33", "0.33", "0.67"]
    assert "ROC" in roc.get_title()
    marker = roc.lines[-1]  # the threshold's point: 1 of 3 cats and 2 of 3 dogs called dogs
    assert marker.get_xdata()[0] == pytest.approx(1 / 3) and marker.get_ydata()[0] == 2 / 3


def test_prediction_grid_colours_wrong_red_and_right_green():
    images = [np.zeros((8, 8, 3), dtype=np.uint8)] * 3
    figure = viz.prediction_grid(images, ["a", "b", "c"], [True, False, True], columns=2)
    assert len(figure.axes) == 4
    assert [a.get_title() for a in figure.axes[:3]] == ["a", "b", "c"]
    assert figure.axes[1].title.get_color() == "tab:red"
    assert figure.axes[0].title.get_color() == "tab:green"
    assert len(figure.axes[3].images) == 0


def test_upsample_and_gradcam_grid():
    heat = np.array([[0.0, 1.0], [2.0, 3.0]])
    big = viz.upsample(heat, 8)
    assert big.shape == (8, 8) and big.min() >= 0 and big.max() <= 3
    assert big[0, 0] < big[-1, -1]
    images = [np.full((8, 8, 3), 100, dtype=np.uint8)] * 2
    figure = viz.gradcam_grid(images, [heat, -heat], ["one", "two"])
    assert len(figure.axes) == 4  # photos above, overlays below
    assert [a.get_title() for a in figure.axes[:2]] == ["one", "two"]
    hot = figure.axes[2].images[0].get_array()
    assert not np.array_equal(hot, images[0])  # coloured where the map is high
    cold = figure.axes[3].images[0].get_array()  # a negative map: nothing to highlight
    np.testing.assert_array_equal(cold, images[1])


def test_feature_scatter_has_one_panel_per_base_and_both_classes():
    points = np.random.default_rng(0).normal(size=(10, 2))
    labels = np.array([0, 1] * 5)
    figure = viz.feature_scatter({"a": points, "b": points}, labels, CLASSES)
    assert [a.get_title() for a in figure.axes] == ["a", "b"]
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == CLASSES
    assert len(figure.axes[0].collections[0].get_offsets()) == 5


# --- data: the test split's files ---------------------------------------------------------------


def test_test_files_follow_the_test_order(folder):
    splits = data.load(ci_config(folder))
    labels = np.concatenate([y.numpy() for _, y in splits.test]).tolist()
    assert len(splits.test_files) == splits.sizes["test"] == len(labels)
    assert [CLASSES.index(path.parent.name) for path in splits.test_files] == labels
    assert all(path.is_relative_to(folder) for path in splits.test_files)


def test_test_files_name_the_original_of_a_converted_image(tmp_path):
    test_folder = make_folder(tmp_path / "test", {"cat": 2, "dog": 2})
    original = save_image(test_folder / "cat" / "odd.gif", "gif", CLASS_COLOURS["cat"])
    train_folder = make_folder(tmp_path / "train", {"cat": 20, "dog": 20})
    splits = data.load_raw(ci_config(train_folder, TL_TEST_DATA=str(test_folder)))
    assert original in splits.test_files
    assert all(path.is_relative_to(test_folder) for path in splits.test_files)
