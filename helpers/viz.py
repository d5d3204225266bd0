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


def image_grid(
    images: Sequence, titles: Sequence[str] | None = None, *, columns: int = 3, size: float = 2.2
):
    """Returns a Figure showing ``images`` (0-255 values) in a grid, with optional titles.

    Introduced in 02 (a 3x3 grid of samples) and used again in 03 (augmented copies).
    """
    images = list(images)
    rows = max(1, -(-len(images) // columns))
    figure = Figure(figsize=(columns * size, rows * size))
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < len(images):
            axis.imshow(_to_uint8(images[index]))
            if titles is not None:
                axis.set_title(str(titles[index]), fontsize=10)
    figure.tight_layout()
    return figure


def batch_grid(dataset, class_names: Sequence[str], count: int = 9):
    """Returns a grid Figure of the first ``count`` images of a batched dataset, titled by label."""
    images, labels = next(iter(dataset.unbatch().batch(count)))
    titles = [class_names[int(label)] for label in labels]
    return image_grid(images.numpy(), titles)


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
    phase_names: Sequence[str] = ("train the head", "fine-tune"),
    title: str = "",
):
    """Returns a Figure of loss and accuracy per epoch, training and validation side by side.

    Introduced in 04 (one phase); 05 passes a history joined by ``train.combine_histories`` and
    the epoch where fine-tuning starts, which is marked with a dashed line.
    """
    figure = Figure(figsize=(10, 3.6))
    axes = figure.subplots(1, 2)
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label in ((metric, "training"), (f"val_{metric}", "validation")):
            if key in history:
                epochs = np.arange(1, len(history[key]) + 1)
                axis.plot(epochs, history[key], marker="o", markersize=3, label=label)
        for index, start in enumerate(phase_starts):
            name = phase_names[min(index + 1, len(phase_names) - 1)]
            axis.axvline(start + 0.5, color="gray", linestyle="--")
            axis.text(
                start + 0.6,
                0.98,
                f"{name} starts",
                transform=axis.get_xaxis_transform(),
                va="top",
                fontsize=9,
                color="gray",
            )
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend(loc="best")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def results_table(rows: Sequence[Sequence[str]], columns: Sequence[str], *, title: str = ""):
    """Returns a Figure showing ``rows`` of text under ``columns`` as a table (``make run``'s end).

    Introduced by ``make run`` (helpers/run.py): every stage's test accuracy and seconds.
    """
    figure = Figure(figsize=(7.5, 0.5 + 0.4 * (len(rows) + 1)))
    axis = figure.subplots()
    axis.axis("off")
    table = axis.table(
        cellText=[list(row) for row in rows], colLabels=list(columns), loc="center", cellLoc="left"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(10)
    table.scale(1, 1.4)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
    if title:
        axis.set_title(title)
    figure.tight_layout()
    return figure
