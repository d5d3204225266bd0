"""Plots for the series: image grids and training curves (the dull plotting code, out of sight).

Every function returns a matplotlib Figure (shown when it is a cell's last expression);
:func:`save` writes one into ``<output_dir>/figures/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

# Figures are built with matplotlib.figure.Figure, not pyplot: Jupyter shows a returned figure
# once (pyplot would show it twice), and nothing piles up in pyplot's global state.


def _show_figures_inline() -> None:
    """In a Jupyter kernel (Colab included), makes returned Figures display as pictures."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and hasattr(shell, "kernel"):
        shell.run_line_magic("matplotlib", "inline")


_show_figures_inline()


def _to_uint8(image) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return array


def image_grid(images: Sequence, titles: Sequence[str] | None = None, *, columns: int = 3):
    """Returns a Figure showing ``images`` (0-255 values) in a grid, with optional titles (03)."""
    images = list(images)
    rows = max(1, -(-len(images) // columns))
    figure = Figure(figsize=(columns * 2.2, rows * 2.2))
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(_to_uint8(images[index]))
            if titles is not None:
                axis.set_title(str(titles[index]), fontsize=10)
    figure.tight_layout()
    return figure


def class_grid(dataset, class_names: Sequence[str], per_class: int = 3):
    """Returns a grid Figure with a row of ``per_class`` images for every class, titled by name,
    from ``dataset`` (batched or not), read until every class has its images (02)."""
    wanted = {label: [] for label in range(len(class_names))}
    dataset = dataset.unbatch() if len(dataset.element_spec[0].shape) == 4 else dataset
    for image, label in dataset.as_numpy_iterator():
        row = wanted[int(label)]
        if len(row) < per_class:
            row.append(image)
            if all(len(each) == per_class for each in wanted.values()):
                break
    figure = Figure(figsize=(per_class * 1.8, len(class_names) * 1.8))
    axes = figure.subplots(len(class_names), per_class, squeeze=False)
    for label, row in wanted.items():
        for column, axis in enumerate(axes[label]):
            axis.axis("off")
            if column < len(row):
                axis.imshow(_to_uint8(row[column]))
                axis.set_title(str(class_names[label]), fontsize=9)
    figure.tight_layout()
    return figure


def save(figure, cfg, name: str) -> Path:
    """Returns the path of ``figure`` saved as ``<output_dir>/figures/<name>.png``."""
    folder = Path(cfg.output_dir) / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    figure.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_history(
    history: dict[str, list[float]],
    *,
    phase_starts: Sequence[int] = (),
    title: str = "",
):
    """Returns a Figure of loss and accuracy per epoch, training and validation side by side (04);
    05 marks where fine-tuning starts (``phase_starts``) with a dashed line."""
    figure = Figure(figsize=(10, 3.6))
    axes = figure.subplots(1, 2)
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
            if key in history:
                epochs = np.arange(1, len(history[key]) + 1)
                axis.plot(epochs, history[key], marker="o", markersize=3, label=label)
        for start in phase_starts:
            # named in the legend, which matplotlib places clear of the curves: a label
            # written on the plot overlapped them and was clipped at the edge
            axis.axvline(start + 0.5, color="gray", linestyle="--", label="fine-tune starts")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend(loc="best")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def accuracy_over_time(curves: dict[str, tuple[Sequence[float], Sequence[float]]], title: str = ""):
    """Returns a Figure of validation accuracy against seconds of training, one line per model:
    ``curves`` maps a name to ``(seconds, accuracies)`` at the end of each epoch (04)."""
    figure = Figure(figsize=(6.4, 3.6))
    axis = figure.subplots()
    for name, (seconds, accuracies) in curves.items():
        axis.plot(seconds, accuracies, marker="o", markersize=3, label=name)
    axis.set_xlabel("seconds of training (features included)")
    axis.set_ylabel("validation accuracy")
    axis.grid(alpha=0.3)
    axis.legend(loc="best")
    if title:
        axis.set_title(title)
    figure.tight_layout()
    return figure


# --- 06: judging and explaining the classifier ------------------------------------------------


def evaluation_figure(labels, probabilities, class_names: Sequence[str]):
    """Returns a Figure: the confusion matrix in counts, the same normalised by row, and (two
    classes: ``probabilities`` are P(class 1)) the ROC curve with threshold 0.5 marked (06)."""
    from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    binary = probabilities.ndim == 1
    predicted = (probabilities > 0.5).astype(int) if binary else probabilities.argmax(1)
    count = len(class_names)
    size = max(4.0, 0.55 * count + 2)
    figure = Figure(figsize=(13 if binary else 2 * size + 1, size))
    axes = figure.subplots(1, 3 if binary else 2)
    for axis, normalize, title, values_format in (
        (axes[0], None, "counts", "d"),
        (axes[1], "true", "each row sums to 1 (recall on the diagonal)", ".2f"),
    ):
        ConfusionMatrixDisplay.from_predictions(
            labels,
            predicted,
            labels=list(range(count)),
            display_labels=list(class_names),
            normalize=normalize,
            values_format=values_format,
            cmap="Blues",
            colorbar=False,
            ax=axis,
        )
        axis.set_title(f"confusion matrix: {title}", fontsize=10)
        if count > 3:
            axis.tick_params(axis="x", labelrotation=45)
    if not binary:
        figure.tight_layout()
        return figure
    RocCurveDisplay.from_predictions(
        labels, probabilities, ax=axes[2], name=f"P({class_names[1]})", plot_chance_level=True
    )
    false_rate, true_rate = predicted[labels == 0].mean(), predicted[labels == 1].mean()
    axes[2].plot(false_rate, true_rate, "o", color="red", label="threshold 0.50")
    axes[2].legend(loc="lower right", fontsize=9)
    axes[2].set_title("ROC curve", fontsize=10)
    figure.tight_layout()
    return figure


def prediction_grid(
    images: Sequence,
    titles: Sequence[str],
    correct: Sequence[bool],
    *,
    columns: int = 4,
    title: str = "",
):
    """Returns a grid Figure of ``images``, framed and titled red when wrong, green when right."""
    images = list(images)
    rows = max(1, -(-len(images) // columns))
    figure = Figure(figsize=(columns * 2.6, rows * 3.1), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            colour = "tab:green" if correct[index] else "tab:red"
            axis.imshow(_to_uint8(images[index]))
            axis.set_title(str(titles[index]), fontsize=9, color=colour)
            for spine in axis.spines.values():
                spine.set(visible=True, color=colour, linewidth=3)
            axis.set_xticks([])
            axis.set_yticks([])
            axis.axis("on")
    if title:
        figure.suptitle(title)
    return figure


def upsample(heatmap: np.ndarray, image_size: int) -> np.ndarray:
    """Returns a heatmap on its feature grid, resized smoothly to ``image_size`` pixels (06)."""
    from PIL import Image

    resized = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F").resize(
        (image_size, image_size), Image.Resampling.BILINEAR
    )
    return np.asarray(resized)


def gradcam_grid(images: Sequence, heatmaps: Sequence, titles: Sequence[str]):
    """Returns a Figure: each photo above its Grad-CAM heatmap overlaid in colour (06).

    Heatmaps are rectified and scaled to [0, 1] per image (Grad-CAM's ReLU); near zero, the photo
    shows through unchanged.
    """
    from matplotlib import colormaps

    images = list(images)
    columns = len(images)
    figure = Figure(figsize=(columns * 2.6, 5.8))
    axes = figure.subplots(2, columns, squeeze=False)
    for index in range(columns):
        image = _to_uint8(images[index])
        heat = np.maximum(np.asarray(heatmaps[index], dtype=np.float32), 0)
        heat = heat / heat.max() if heat.max() > 0 else heat
        heat = upsample(heat, image.shape[0])[..., None]
        colours = colormaps["jet"](heat[..., 0])[..., :3] * 255
        overlay = (image + 0.6 * heat * (colours - image)).astype(np.uint8)  # opaque where hot
        axes[0, index].imshow(image)
        axes[0, index].set_title(str(titles[index]), fontsize=9)
        axes[1, index].imshow(overlay)
        for axis in axes[:, index]:
            axis.axis("off")
    axes[1, 0].text(
        -0.05, 0.5, "Grad-CAM", rotation=90, va="center", ha="right", transform=axes[1, 0].transAxes
    )
    figure.tight_layout()
    return figure


def _class_colours(class_names: Sequence[str]) -> list:
    """Returns one colour per class: matplotlib's tab10 in turn, tab20 past ten classes."""
    from matplotlib import colormaps

    colours = colormaps["tab10" if len(class_names) <= 10 else "tab20"].colors
    return [colours[index % len(colours)] for index in range(len(class_names))]


def feature_scatter(panels: dict[str, np.ndarray], labels, class_names: Sequence[str]):
    """Returns a Figure of 2-D points, one panel per entry of ``panels``, coloured by class (06)."""
    labels = np.asarray(labels)
    figure = Figure(figsize=(5 * len(panels), 4.2))
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (name, points) in zip(axes, panels.items(), strict=True):
        # orange and blue for two classes (as before); tab10's colours in turn for more
        colours = (
            ("tab:orange", "tab:blue") if len(class_names) == 2 else _class_colours(class_names)
        )
        for label, (class_name, colour) in enumerate(zip(class_names, colours, strict=True)):
            chosen = labels == label
            axis.scatter(*points[chosen].T, s=14, alpha=0.7, color=colour, label=class_name)
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("first principal component")
        axis.set_ylabel("second principal component")
        axis.legend(loc="best")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure
