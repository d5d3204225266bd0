"""Tests for helpers.widgets: the explorers' update logic, run without a browser."""

import ipywidgets
import keras
import numpy as np
import pytest
from matplotlib.figure import Figure

from helpers import widgets


def small_model() -> keras.Sequential:
    return keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, name="hidden"),  # 3*4 + 4 = 16 parameters
            keras.layers.BatchNormalization(name="norm"),  # 4 + 4 trainable, 4 + 4 not
            keras.layers.Dense(1, name="out"),  # 4 + 1 = 5
        ],
        name="small",
    )


def test_trainable_counts():
    model = small_model()
    assert widgets.trainable_counts(model) == {"trainable": 29, "non_trainable": 8, "total": 37}


def test_apply_trainable_moves_parameters_and_back():
    model = small_model()
    counts = widgets.apply_trainable(model, {"hidden": False, "norm": False})
    assert counts == {"trainable": 5, "non_trainable": 32, "total": 37}
    assert not model.get_layer("hidden").trainable
    assert model.get_layer("out").trainable  # not named: left alone
    counts = widgets.apply_trainable(model, {"hidden": True, "norm": True, "out": False})
    assert counts == {"trainable": 24, "non_trainable": 13, "total": 37}


def test_apply_trainable_unknown_layer_names_the_layers():
    with pytest.raises(KeyError, match="hidden"):
        widgets.apply_trainable(small_model(), {"nope": False})


def test_format_counts():
    text = widgets.format_counts({"trainable": 1234, "non_trainable": 56, "total": 1290})
    assert text == "trainable: 1,234 | non-trainable: 56 | total: 1,290"


def test_trainable_explorer_checkboxes_drive_the_model_and_the_label():
    model = small_model()
    box = widgets.trainable_explorer(model)
    assert isinstance(box, ipywidgets.VBox)
    checkboxes = [c for c in box.children if isinstance(c, ipywidgets.Checkbox)]
    assert [c.description for c in checkboxes] == ["hidden", "norm", "out"]
    label = box.children[-1]
    assert "trainable: 29 " in label.value
    checkboxes[0].value = False  # what a click does
    assert not model.get_layer("hidden").trainable
    assert "trainable: 13 " in label.value and "non-trainable: 24 " in label.value


def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(20, 20, 3)).astype("uint8")


def test_augmentation_figure_returns_a_grid():
    figure = widgets.augmentation_figure(image(), rotation=0.2, zoom=0.1, contrast=0.3)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 9
    assert figure.axes[0].get_title() == "original"
    shown = [axis.images[0].get_array() for axis in figure.axes]
    np.testing.assert_array_equal(shown[0], image())
    assert not np.array_equal(shown[1], shown[2])


def test_augmentation_figure_with_no_augmentation_shows_the_image_unchanged():
    figure = widgets.augmentation_figure(image(), rotation=0.0, flip=False, count=4)
    shown = [axis.images[0].get_array() for axis in figure.axes if axis.images]
    assert len(shown) == 4
    for pixels in shown:
        np.testing.assert_array_equal(pixels, image())


def test_augmentation_figure_is_repeatable_with_a_seed():
    def pixels(seed):
        figure = widgets.augmentation_figure(image(), rotation=0.3, count=3, seed=seed)
        return [np.asarray(axis.images[0].get_array()) for axis in figure.axes]

    assert all(np.array_equal(a, b) for a, b in zip(pixels(1), pixels(1), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(pixels(1), pixels(2), strict=True))


def test_augmentation_explorer_builds_without_a_browser():
    box = widgets.augmentation_explorer([image(), image()], ["a", "b"])
    assert isinstance(box, ipywidgets.VBox)
    picker = box.children[0].children[0]
    assert picker.options == (("a", 0), ("b", 1))


def test_augmentation_explorer_redraws_an_image_without_an_output_widget():
    # An Output widget filled while the cell runs can stall headless runs (jupyter/nbclient#312)
    box = widgets.augmentation_explorer([image(), image()], ["a", "b"])

    def all_widgets(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from all_widgets(child)

    assert not any(isinstance(x, ipywidgets.Output) for x in all_widgets(box))
    grid = box.children[-1]
    assert isinstance(grid, ipywidgets.Image) and bytes(grid.value).startswith(b"\x89PNG")
    before = bytes(grid.value)
    rotation = box.children[1].children[0]
    rotation.value = 0.4
    assert bytes(grid.value) != before, "moving the rotation slider redraws the grid"
