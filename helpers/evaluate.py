"""Judging and explaining a trained classifier (introduced in 06; the Grad-CAM tape stands in 06).

Plots live in :mod:`helpers.viz`, the threshold slider in :mod:`helpers.widgets`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from helpers.errors import LearnerError


@dataclass
class Predictions:
    """Logits for every test image, with labels (and files) in the same order.

    Two classes: ``(n,)``, positive for class 1; N classes: ``(n, N)``.
    """

    logits: np.ndarray
    labels: np.ndarray  # (n,) the class index of each image
    files: list[Path] | None = None  # for folders: the file of each image

    @property
    def binary(self) -> bool:
        """Returns True for one logit per image (two classes)."""
        return self.logits.ndim == 1

    @property
    def probabilities(self) -> np.ndarray:
        """Returns P(class 1) per image (two classes: a sigmoid), or (n, N) softmax rows."""
        logits = self.logits.astype(np.float64)
        if self.binary:
            return 1.0 / (1.0 + np.exp(-logits))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    @property
    def confidence(self) -> np.ndarray:
        """Returns each image's probability of its predicted class (0.5 to 1 for two classes)."""
        p = self.probabilities
        return np.maximum(p, 1.0 - p) if self.binary else p.max(axis=1)

    @property
    def losses(self) -> np.ndarray:
        """Returns each image's cross-entropy (what ``fit`` minimised, image by image)."""
        logits = self.logits.astype(np.float64)
        if self.binary:
            signed = np.where(self.labels == 1, -logits, logits)
            return np.logaddexp(0.0, signed)  # log(1 + e^signed) without overflow
        top = logits.max(axis=1)
        log_sum = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
        return log_sum - logits[np.arange(len(logits)), self.labels]

    def predicted(self, threshold: float = 0.5) -> np.ndarray:
        """Returns each image's class: P(class 1) > ``threshold`` for two, else the argmax."""
        if not self.binary:
            return np.argmax(self.logits, axis=1).astype(np.int64)
        with np.errstate(divide="ignore"):
            cut = np.log(threshold) - np.log1p(-threshold)  # the logit of the threshold
        return (self.logits > cut).astype(np.int64)  # exact at 0.5: logit > 0, as Keras counts

    def correct(self, threshold: float = 0.5) -> np.ndarray:
        """Returns a boolean array: True where the prediction at ``threshold`` is right."""
        return self.predicted(threshold) == self.labels


def collect(model: keras.Model, dataset, files: Sequence[Path] | None = None) -> Predictions:
    """Returns the logits and labels of ``dataset`` from one pass, so they line up (06).

    ``files`` (``splits.test_files``) must list the images in dataset order.
    """
    logits, labels = [], []
    for images, batch_labels in dataset:
        batch = np.asarray(model.predict_on_batch(images), dtype=np.float32)
        logits.append(batch.reshape(len(batch), -1))
        labels.append(np.asarray(batch_labels).reshape(-1).astype(np.int64))
    all_logits = np.concatenate(logits)
    if all_logits.shape[1] == 1:
        all_logits = all_logits[:, 0]
    predictions = Predictions(all_logits, np.concatenate(labels))
    if files is not None:
        if len(files) != len(predictions.labels):
            raise ValueError(
                f"{len(files)} files for {len(predictions.labels)} images: pass the files of "
                "this very dataset (splits.test_files for splits.test)."
            )
        predictions.files = [Path(f) for f in files]
    return predictions


def _ratio(numerator: int, denominator: int) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def threshold_report(
    predictions: Predictions, threshold: float, class_names: Sequence[str]
) -> dict:
    """Returns the confusion matrix and each class's precision, recall and F1 at ``threshold``.

    Introduced in 06 (N classes: the argmax's). ``matrix[i][j]``: true class ``i`` predicted as
    ``j``. A precision with no image predicted in that class is ``nan``.
    """
    predicted = predictions.predicted(threshold)
    count = len(class_names)
    matrix = np.zeros((count, count), dtype=np.int64)
    np.add.at(matrix, (predictions.labels, predicted), 1)
    classes = {}
    for index, name in enumerate(class_names):
        hits = int(matrix[index, index])
        precision = _ratio(hits, int(matrix[:, index].sum()))
        recall = _ratio(hits, int(matrix[index, :].sum()))
        f1 = _ratio(2 * hits, int(matrix[:, index].sum() + matrix[index, :].sum()))
        classes[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(matrix[index, :].sum()),
        }
    return {
        "threshold": float(threshold),
        "matrix": matrix.tolist(),
        "accuracy": _ratio(int(np.trace(matrix)), int(matrix.sum())),
        "classes": classes,
    }


def _take_in_turn(groups: Sequence[np.ndarray], count: int) -> np.ndarray:
    """Returns up to ``count`` indices taken from ``groups`` in turn: the first of each, then the
    second of each ...; a group that runs out leaves its turns to the others."""
    width = max((len(group) for group in groups), default=0)
    turns = [group[rank] for rank in range(width) for group in groups if rank < len(group)]
    return np.asarray(turns[:count], dtype=int)


def balanced_sample(labels, count: int, seed: int, among=None) -> np.ndarray:
    """Returns up to ``count`` indices of ``labels``: a seeded random sample, balanced over classes.

    Introduced in 06, used in 07. ``among``: the eligible indices (default: all). Test folders are
    read sorted by class, so the classes take turns rather than the first class filling it.
    """
    labels = np.asarray(labels)
    among = np.arange(len(labels)) if among is None else np.asarray(among, dtype=int)
    rng = np.random.default_rng(seed)
    groups = [rng.permutation(among[labels[among] == c]) for c in np.unique(labels[among])]
    return _take_in_turn(groups, count)


def worst_errors(predictions: Predictions, count: int = 9) -> np.ndarray:
    """Returns the indices of up to ``count`` misclassified images, highest loss first (06).

    The true classes take turns, so one class's errors cannot fill the panel.
    """
    wrong = np.flatnonzero(~predictions.correct())
    by_loss = wrong[np.argsort(-predictions.losses[wrong], kind="stable")]
    labels = predictions.labels[by_loss]
    chosen = _take_in_turn([by_loss[labels == c] for c in np.unique(labels)], count)
    return chosen[np.argsort(-predictions.losses[chosen], kind="stable")]


def least_certain(predictions: Predictions, count: int = 9) -> np.ndarray:
    """Returns the indices of the ``count`` images with the lowest top probability (06)."""
    return np.argsort(predictions.confidence, kind="stable")[:count]


def confidence_report(predictions: Predictions, minimum: float) -> dict:
    """Returns what abstaining below a top probability of ``minimum`` does (06, N classes):
    ``answered``, the share of images answered, and ``accuracy``, that of those answers."""
    answered = predictions.confidence >= minimum
    right = predictions.correct()
    return {
        "minimum": float(minimum),
        "answered": float(answered.mean()),
        "accuracy": _ratio(int(right[answered].sum()), int(answered.sum())),
        "images": int(answered.sum()),
    }


def most_confused(matrix, class_names: Sequence[str], count: int = 3) -> list[tuple]:
    """Returns up to ``count`` ``(true name, predicted name, images)`` off the confusion matrix's
    diagonal, most images first (06)."""
    matrix = np.asarray(matrix)
    cells = [
        (int(matrix[i, j]), i, j)
        for i in range(len(matrix))
        for j in range(len(matrix))
        if i != j and matrix[i, j] > 0
    ]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [(class_names[i], class_names[j], n) for n, i, j in cells[:count]]


def images_at(dataset, indices: Sequence[int]) -> np.ndarray:
    """Returns the images at ``indices`` of a batched, unshuffled dataset, in the order asked."""
    indices = [int(i) for i in indices]
    wanted, found, offset = set(indices), {}, 0
    for images, _ in dataset:
        batch = np.asarray(images)
        for position in range(len(batch)):
            if offset + position in wanted:
                found[offset + position] = batch[position]
        offset += len(batch)
        if len(found) == len(wanted):
            break
    missing = sorted(wanted - set(found))
    if missing:
        raise IndexError(f"the dataset has {offset} images; no image at {missing[:5]}")
    return np.stack([found[i] for i in indices]) if indices else np.zeros((0,))


# --- Grad-CAM -------------------------------------------------------------------------------------


HEAD_NAME = "head"  # in gradcam_model: what follows the base (pooling, dropout, logit)


def gradcam_model(model: keras.Model) -> keras.Model:
    """Returns a model with two outputs: the base's feature map and the classifier's logit.

    Introduced in 06. The nested base's output is not an output of ``model``: this rebuilds the
    graph from the same layers (same weights), without augmentation.
    """
    from helpers import augment, models

    base_name = models.BASE_NAME
    names = [layer.name for layer in model.layers]
    if base_name not in names:
        raise LearnerError(
            f"{model.name} has no nested base named {base_name!r} (its layers: {names}). "
            "Grad-CAM here needs 04's classifier: run 04 and 05, or train.fine_tuned_model(cfg)."
        )
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    x, feature_map, after_base = inputs, None, []
    for layer in model.layers[1:]:  # layers[0] is the input
        if layer.name == augment.NAME:
            continue
        if feature_map is not None:
            after_base.append(layer)  # pooling, dropout, logit: they go into the head
        elif layer.name == base_name:
            x = feature_map = layer(x, training=False)
        else:
            x = layer(x)
    # The head is a model of its own, so 06's Grad-CAM tape can differentiate the logit with
    # respect to the feature map even when nothing before it is trainable (a frozen base).
    head_input = keras.Input(shape=feature_map.shape[1:], name="feature_map")
    y = head_input
    for layer in after_base:
        y = layer(y)
    head = keras.Model(head_input, y, name=HEAD_NAME)
    return keras.Model(inputs, [feature_map, head(feature_map)], name="gradcam")


def cells_to_pixels(cells: np.ndarray, image_size: int) -> np.ndarray:
    """Returns a (n, size, size) boolean mask: each cell of a (n, h, w) grid over its pixels."""
    cells = np.asarray(cells, dtype=bool)
    _, height, width = cells.shape
    rows = np.minimum(np.arange(image_size) * height // image_size, height - 1)
    columns = np.minimum(np.arange(image_size) * width // image_size, width - 1)
    return cells[:, rows[:, None], columns[None, :]]


def hide_cells(images, cells: np.ndarray) -> np.ndarray:
    """Returns copies of ``images`` with the cells marked in a (n, h, w) grid filled with the
    image's mean colour, which carries no shape."""
    images = np.asarray(images)
    return _hide(images, cells, _mean_colours(images))


def _mean_colours(images: np.ndarray) -> np.ndarray:
    """Returns each image's mean colour, rounded, in the images' dtype: what hides a cell."""
    means = images.reshape(len(images), -1, images.shape[-1]).mean(axis=1)
    return np.round(means.astype(np.float32)).astype(images.dtype)


def _hide(images: np.ndarray, cells: np.ndarray, fill: np.ndarray) -> np.ndarray:
    mask = cells_to_pixels(cells, images.shape[1])
    kept = images if np.issubdtype(images.dtype, np.integer) else np.round(images)
    return np.where(mask[..., None], fill[:, None, None, :], kept)  # all images at once


def top_cells(heatmaps: np.ndarray, count: int) -> np.ndarray:
    """Returns a boolean (n, h, w) grid marking each heatmap's ``count`` highest cells."""
    flat = heatmaps.reshape(len(heatmaps), -1)
    order = np.argsort(-flat, axis=1, kind="stable")[:, :count]
    marks = np.zeros_like(flat, dtype=bool)
    np.put_along_axis(marks, order, True, axis=1)
    return marks.reshape(heatmaps.shape)


def centre_prior(grid: tuple[int, int]) -> np.ndarray:
    """Returns an (h, w) map highest in the centre: 06's control map that ignores the model."""
    height, width = grid
    rows = (np.arange(height) - (height - 1) / 2) / max(height, 1)
    columns = (np.arange(width) - (width - 1) / 2) / max(width, 1)
    return -(rows[:, None] ** 2 + columns[None, :] ** 2)


def deletion_drops(
    cam_model: keras.Model, images, maps: dict[str, np.ndarray], *, fraction: float = 0.2
) -> dict[str, np.ndarray]:
    """Returns, for each map, how much hiding its top cells lowers each image's predicted score.

    Introduced in 06. ``maps``: one ``(n, h, w)`` array per kind of map. The ``fraction`` of cells
    a map ranks highest are hidden (:func:`hide_cells`); the drop in :func:`class_score` for the
    class predicted before is one number per image, so maps compare image by image.
    """
    images = np.asarray(images)
    before = _logits(cam_model, images)
    chosen = (before > 0).astype(int) if before.ndim == 1 else before.argmax(axis=1)
    fill = _mean_colours(images)  # hide_cells's fill, computed once for every map
    drops = {}
    for name, heatmaps in maps.items():
        heatmaps = np.asarray(heatmaps)
        count = max(1, int(round(fraction * heatmaps.shape[1] * heatmaps.shape[2])))
        after = _logits(cam_model, _hide(images, top_cells(heatmaps, count), fill))
        drops[name] = class_score(before, chosen) - class_score(after, chosen)
    return drops


def class_score(logits: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Returns each image's logit for its class in ``classes`` (06); one logit: signed."""
    logits, classes = np.asarray(logits), np.asarray(classes)
    if logits.ndim == 1:
        return np.where(classes == 1, logits, -logits)
    return logits[np.arange(len(logits)), classes]


def _logits(cam_model: keras.Model, images: np.ndarray) -> np.ndarray:
    """Returns the logit ``cam_model`` (from :func:`gradcam_model`) gives each image."""
    parts = [  # predict_on_batch: compiled once per model (an eager call costs 2.5 times more)
        np.asarray(cam_model.predict_on_batch(images[start : start + 64])[1])
        for start in range(0, len(images), 64)
    ]
    logits = np.concatenate(parts).astype(np.float32)
    return logits[:, 0] if logits.shape[1] == 1 else logits


def paired(a, b) -> dict:
    """Returns the mean of ``a - b`` over images, its 95% interval, z and the share where a > b.

    Introduced in 06: comparing image by image removes what the images themselves contribute.
    """
    difference = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean = float(difference.mean())
    error = float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else 0
    return {
        "images": int(len(difference)),
        "mean": round(mean, 4),
        "interval_95": [round(mean - 1.96 * error, 4), round(mean + 1.96 * error, 4)],
        "z": round(mean / error, 2) if error > 0 else float("inf") * np.sign(mean),
        "a_better": round(float(np.mean(difference > 0)), 4),
    }


# --- Paired comparisons ---------------------------------------------------------------------------


def mcnemar(right_a, right_b) -> dict:
    """Returns McNemar's exact test of two classifiers right (or not) on the same images.

    Introduced in 05, used in 07. Only disagreements count (``a_only``, ``b_only``); ``p_value``
    is the two-sided binomial probability of a split this uneven, ``difference`` b's accuracy
    minus a's, with a 95% interval.
    """
    from scipy.stats import binomtest

    right_a, right_b = np.asarray(right_a, bool), np.asarray(right_b, bool)
    a_only, b_only = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    count = len(right_a)
    discordant = a_only + b_only
    p_value = binomtest(b_only, discordant, 0.5).pvalue if discordant else 1.0
    difference = (b_only - a_only) / count
    # Standard error of a paired difference of proportions (per image: +1, -1 or 0, over count).
    spread = np.sqrt(max(discordant / count - difference**2, 0.0) / count)
    return {
        "images": count,
        "a_only": a_only,
        "b_only": b_only,
        "difference": round(float(difference), 4),
        "interval_95": [
            round(float(difference - 1.96 * spread), 4),
            round(float(difference + 1.96 * spread), 4),
        ],
        "p_value": round(float(p_value), 4),
    }
