"""helpers.viz: every plotting helper returns a Figure with the expected panels, and saves it."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from conftest import ci_config
from helpers import viz


def test_image_grid_has_one_titled_panel_per_image_and_blank_rest():
    images = [np.full((8, 8, 3), v, dtype=np.uint8) for v in (0, 128, 255, 64)]
    figure = viz.image_grid(images, ["a", "b", "c", "d"], columns=3)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 6  # 2 rows of 3
    assert [axis.get_title() for axis in figure.axes[:4]] == ["a", "b", "c", "d"]
    assert [len(axis.images) for axis in figure.axes] == [1, 1, 1, 1, 0, 0]


def test_image_grid_accepts_float_images():
    figure = viz.image_grid([np.full((4, 4, 3), 300.0)])
    shown = figure.axes[0].images[0].get_array()
    assert shown.dtype == np.uint8 and shown.max() == 255


def test_class_grid_has_a_row_for_every_class():
    # Class 2 comes last and rarely: the first batch alone would miss it.
    labels = np.array([0, 1] * 10 + [2])
    images = np.zeros((len(labels), 6, 6, 3), dtype=np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    figure = viz.class_grid(dataset, ["cat", "dog", "fox"], per_class=2)
    titles = [axis.get_title() for axis in figure.axes]
    assert titles == ["cat", "cat", "dog", "dog", "fox", ""]  # one fox: its second panel blank
    assert [len(axis.images) for axis in figure.axes] == [1, 1, 1, 1, 1, 0]


def test_plot_history_draws_both_metrics_and_marks_fine_tuning():
    history = {
        "loss": [0.9, 0.5, 0.4, 0.3],
        "val_loss": [0.8, 0.6, 0.5, 0.4],
        "accuracy": [0.6, 0.8, 0.85, 0.9],
        "val_accuracy": [0.7, 0.8, 0.85, 0.88],
    }
    figure = viz.plot_history(history, phase_starts=[2])
    loss_axis, accuracy_axis = figure.axes
    assert (loss_axis.get_title(), accuracy_axis.get_title()) == ("loss", "accuracy")
    assert len(loss_axis.lines) == 3  # training, validation, the marker
    assert [line.get_xdata()[0] for line in loss_axis.lines[2:]] == [2.5]
    legend = [text.get_text() for text in accuracy_axis.get_legend().get_texts()]
    assert "fine-tune starts" in legend
    assert not accuracy_axis.texts, "a label on the plot overlaps the curves"


def test_plot_history_without_validation():
    figure = viz.plot_history({"loss": [1.0, 0.5], "accuracy": [0.5, 0.7]})
    assert [len(axis.lines) for axis in figure.axes] == [1, 1]


def test_save_writes_a_png_into_figures(tmp_path):
    cfg = dataclasses.replace(ci_config(), output_dir=tmp_path)
    path = viz.save(viz.image_grid([np.zeros((4, 4, 3), dtype=np.uint8)]), cfg, "grid")
    assert path == tmp_path / "figures" / "grid.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
