"""Interactive explorers (ipywidgets) for 01, 03 and 06; their logic is in plain functions,
tested without a browser, which the ``*_explorer`` functions wire to widgets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np
from matplotlib.figure import Figure

from helpers import augment, colab, viz


def _static_view(html: str = ""):
    """Returns the note that widgets cannot be drawn here, above ``html``, as displayable HTML."""
    from IPython.display import HTML

    return HTML(f"<p><i>{colab.static_note()}</i></p>{html}")


def _count(weights) -> int:
    return int(sum(int(np.prod(w.shape)) for w in weights))


def trainable_counts(model: keras.Model) -> dict[str, int]:
    """Returns ``{"trainable": n, "non_trainable": n, "total": n}``: ``model``'s parameters (01)."""
    trainable = _count(model.trainable_weights)
    non_trainable = _count(model.non_trainable_weights)
    return {
        "trainable": trainable,
        "non_trainable": non_trainable,
        "total": trainable + non_trainable,
    }


def apply_trainable(model: keras.Model, states: Mapping[str, bool]) -> dict[str, int]:
    """Returns :func:`trainable_counts` after setting ``trainable`` per layer name (01)."""
    names = [layer.name for layer in model.layers]
    for name, trainable in states.items():
        if name not in names:
            raise KeyError(f"{model.name} has no layer {name!r}; its layers are {names}.")
        model.get_layer(name).trainable = bool(trainable)
    return trainable_counts(model)


def format_counts(counts: Mapping[str, int]) -> str:
    """Returns the counts as one line for people, e.g. ``trainable: 9 | ... | total: 9`` (01)."""
    return (
        f"trainable: {counts['trainable']:,} | non-trainable: {counts['non_trainable']:,} | "
        f"total: {counts['total']:,}"
    )


def trainable_explorer(model: keras.Model):
    """Returns an ipywidgets box of per-layer ``trainable`` checkboxes, which change ``model``
    itself, and live parameter counts (01)."""
    if not colab.widgets_render():
        return _static_view(f"<b>{format_counts(trainable_counts(model))}</b>")
    import ipywidgets as w

    boxes = {
        layer.name: w.Checkbox(value=layer.trainable, description=layer.name, indent=False)
        for layer in model.layers
    }
    label = w.HTML(f"<b>{format_counts(trainable_counts(model))}</b>")

    def on_change(_change) -> None:
        counts = apply_trainable(model, {name: box.value for name, box in boxes.items()})
        label.value = f"<b>{format_counts(counts)}</b>"

    for box in boxes.values():
        box.observe(on_change, names="value")
    return w.VBox(
        [
            w.HTML(f"Layers of <code>{model.name}</code> (checked = trainable):"),
            *boxes.values(),
            label,
        ]
    )


def augmentation_figure(
    image,
    *,
    rotation: float = 0.1,
    zoom: float = 0.0,
    contrast: float = 0.0,
    flip: bool = True,
    count: int = 9,
    seed: int | None = 0,
) -> Figure:
    """Returns a grid Figure: the original ``image`` then ``count - 1`` copies augmented by
    :func:`helpers.augment.build` with these factors (03)."""
    augmentation = augment.build(
        flip=flip, rotation=rotation, zoom=zoom, contrast=contrast, seed=seed
    )
    augmented = augment.copies(augmentation, image, count=count - 1) if count > 1 else []
    images = [np.asarray(image), *augmented]
    titles = ["original", *(f"augmented {i}" for i in range(1, count))]
    return viz.image_grid(images, titles)


def figure_png(figure: Figure) -> bytes:
    """Returns ``figure`` rendered as PNG bytes, for an ``ipywidgets.Image`` (03)."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def augmentation_explorer(images: Sequence, titles: Sequence[str] | None = None):
    """Returns an ipywidgets box: an image picker and sliders that redraw an augmented grid (03).

    The grid is an ``Image`` widget, not an ``Output`` one: under a headless runner (nbconvert,
    nbval) an Output widget can make the cell's reply be missed until its timeout
    (jupyter/nbclient#312).
    """
    from IPython.display import display

    if not colab.widgets_render():  # the first image's grid with the default settings
        display(_static_view())
        return augmentation_figure(images[0])
    import ipywidgets as w

    titles = list(titles) if titles is not None else [f"image {i}" for i in range(len(images))]
    picker = w.Dropdown(
        options=[(title, i) for i, title in enumerate(titles)], value=0, description="image"
    )
    style = {"description_width": "initial"}

    def slider(name: str, value: float, maximum: float, step: float) -> w.FloatSlider:
        return w.FloatSlider(
            value=value,
            min=0.0,
            max=maximum,
            step=step,
            description=name,
            style=style,
            continuous_update=False,
        )

    sliders = {
        "rotation": slider("rotation", 0.1, 0.5, 0.05),
        "zoom": slider("zoom", 0.0, 0.5, 0.05),
        "contrast": slider("contrast", 0.0, 0.9, 0.1),
    }
    flip = w.Checkbox(value=True, description="horizontal flip", indent=False)

    def grid_png() -> bytes:
        settings = {name: box.value for name, box in sliders.items()}
        figure = augmentation_figure(images[picker.value], flip=flip.value, **settings)
        return figure_png(figure)

    grid = w.Image(value=grid_png(), format="png", layout=w.Layout(max_width="100%"))

    def redraw(_change) -> None:
        grid.value = grid_png()

    for control in (picker, flip, *sliders.values()):
        control.observe(redraw, names="value")
    return w.VBox([w.HBox([picker, flip]), w.HBox(list(sliders.values())), grid])


# --- 06: the decision threshold ---------------------------------------------------------------


def _number(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.3f}"


def threshold_html(predictions, threshold: float, class_names: Sequence[str]) -> str:
    """Returns the live text of the threshold slider: :func:`helpers.evaluate.threshold_report`
    at ``threshold`` (06)."""
    from helpers import evaluate

    report = evaluate.threshold_report(predictions, threshold, class_names)
    cell = "style='padding: 0 0.8em'"  # padded: the headers must not run together
    header = "".join(f"<th {cell}>predicted {name}</th>" for name in class_names)
    rows = "".join(
        f"<tr><th {cell}>true {name}</th>" + "".join(f"<td {cell}>{n}</td>" for n in row) + "</tr>"
        for name, row in zip(class_names, report["matrix"], strict=True)
    )
    lines = "".join(
        f"<li>{name}: precision {_number(values['precision'])}, "
        f"recall {_number(values['recall'])}, F1 {_number(values['f1'])} "
        f"({values['support']} images)</li>"
        for name, values in report["classes"].items()
    )
    return (
        f"<b>threshold {threshold:.2f}</b>: accuracy {_number(report['accuracy'])}"
        f"<table style='border-collapse: collapse; text-align: right'>"
        f"<tr><th></th>{header}</tr>{rows}</table><ul>{lines}</ul>"
    )


def _slider_explorer(render, value: float, low: float, description: str):
    """Returns a slider over [low, 0.99] and an HTML text that ``render(value)`` redraws, live."""
    if not colab.widgets_render():
        return _static_view(render(value))
    import ipywidgets as w

    slider = w.FloatSlider(
        value=value,
        min=low,
        max=0.99,
        step=0.01,
        description=description,
        readout_format=".2f",
        continuous_update=True,
    )
    text = w.HTML(render(value))

    def on_change(change) -> None:
        text.value = render(change["new"])

    slider.observe(on_change, names="value")
    return w.VBox([slider, text])


def threshold_explorer(predictions, class_names: Sequence[str]):
    """Returns an ipywidgets box: a ``threshold`` slider and the numbers it changes, live (06)."""
    return _slider_explorer(
        lambda threshold: threshold_html(predictions, threshold, class_names),
        0.5,
        0.01,
        "threshold",
    )


# --- 06: abstaining below a confidence (N classes) ------------------------------------------------


def confidence_html(predictions, minimum: float) -> str:
    """Returns the live text of the confidence slider (06, N classes): the share of images
    answered at ``minimum`` and their accuracy (:func:`helpers.evaluate.confidence_report`)."""
    from helpers import evaluate

    report = evaluate.confidence_report(predictions, minimum)
    everything = evaluate.confidence_report(predictions, 0.0)
    return (
        f"<b>answer only above a top probability of {minimum:.2f}</b>: "
        f"{report['images']} of {everything['images']} images answered "
        f"({report['answered']:.0%}), accuracy of the answers {_number(report['accuracy'])} "
        f"(all images: {_number(everything['accuracy'])})"
    )


def confidence_explorer(predictions):
    """Returns an ipywidgets box: a minimum-confidence slider and what it changes, live (06)."""
    return _slider_explorer(
        lambda minimum: confidence_html(predictions, minimum), 0.0, 0.0, "minimum"
    )
