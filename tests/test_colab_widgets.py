"""Widgets in Colab: its widget manager for ipywidgets 8, static views, ipywidgets 7 uploads."""

import sys
import types

import ipywidgets
import keras
import numpy as np
import pytest
from IPython.display import HTML
from matplotlib.figure import Figure

from helpers import colab, predict, widgets


@pytest.fixture
def fake_colab(monkeypatch):
    """Returns the calls to a stand-in google.colab.output.enable_custom_widget_manager."""
    calls = []
    output = types.SimpleNamespace(enable_custom_widget_manager=lambda: calls.append("enabled"))
    monkeypatch.setitem(sys.modules, "google.colab", types.SimpleNamespace(output=output))
    monkeypatch.setattr(colab, "_render", None)  # decide again
    return calls


def test_outside_colab_widgets_render_as_they_are(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(colab, "_render", None)
    assert colab.widgets_render()


def test_colab_draws_ipywidgets_7_without_help(fake_colab, monkeypatch):
    monkeypatch.setattr(ipywidgets, "__version__", "7.7.1")
    assert colab.widgets_render() and fake_colab == []


def test_colab_with_ipywidgets_8_enables_its_widget_manager_once(fake_colab, monkeypatch):
    monkeypatch.setattr(ipywidgets, "__version__", "8.1.5")
    assert colab.widgets_render() and colab.widgets_render()
    assert fake_colab == ["enabled"]


def test_colab_without_the_widget_manager_falls_back_to_static_views(fake_colab, monkeypatch):
    monkeypatch.setattr(ipywidgets, "__version__", "8.1.5")
    monkeypatch.setitem(sys.modules, "google.colab", types.SimpleNamespace(output=None))
    assert not colab.widgets_render()


@pytest.fixture
def no_widgets(monkeypatch):
    monkeypatch.setattr(colab, "_render", False)


def _note_in(html: HTML) -> bool:
    return "cannot be drawn here" in html.data and len(colab.static_note().splitlines()) == 1


def test_trainable_explorer_static_view_shows_the_counts(no_widgets):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    view = widgets.trainable_explorer(model)
    assert isinstance(view, HTML) and _note_in(view) and "trainable: 8" in view.data


def test_augmentation_explorer_static_view_is_a_figure(no_widgets):
    image = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    assert isinstance(widgets.augmentation_explorer([image]), Figure)


def test_upload_widget_static_view_says_what_to_do_instead(no_widgets):
    view = predict.upload_widget(predictor=None)
    assert isinstance(view, HTML) and _note_in(view) and "predict_image" in view.data


def test_upload_result_reads_ipywidgets_7_uploads(monkeypatch):
    def fake_predict(predictor, content, name, top=1):
        size = f"{len(content)} bytes"
        return predict.Prediction(file=name, class_name=size, probability=1.0, logit=9.0)

    monkeypatch.setattr(predict, "predict_image", fake_predict)
    uploads_7 = {"cat.jpg": {"metadata": {"name": "cat.jpg"}, "content": b"12345"}}
    uploads_8 = ({"name": "cat.jpg", "content": memoryview(b"12345")},)
    assert predict.upload_result(None, uploads_7) == predict.upload_result(None, uploads_8)
    assert "cat.jpg: <b>5 bytes</b>" in predict.upload_result(None, uploads_7)
