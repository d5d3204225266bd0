"""Judging and explaining a trained classifier: introduced in 06.

One aligned pass over the test split (:func:`collect`), the numbers behind a decision threshold
(:func:`threshold_report`), the worst and the least certain predictions, Grad-CAM on the base
nested inside the classifier (:func:`gradcam`) and the deletion check that tests it
(:func:`deletion_check`). The plots live in :mod:`helpers.viz`, the threshold slider in
:mod:`helpers.widgets`.
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
    """The model's logits for every test image, with the labels (and files) in the same order."""

    logits: np.ndarray  # (n,) one logit per image: positive means class 1
    labels: np.ndarray  # (n,) 0 or 1
    files: list[Path] | None = None  # for folders: the file of each image

    @property
    def probabilities(self) -> np.ndarray:
        """Returns P(class 1) for each image: the sigmoid of its logit."""
        return 1.0 / (1.0 + np.exp(-self.logits.astype(np.float64)))

    @property
    def losses(self) -> np.ndarray:
        """Returns each image's binary cross-entropy (what ``fit`` minimised, image by image)."""
        signed = np.where(self.labels == 1, -self.logits, self.logits).astype(np.float64)
        return np.logaddexp(0.0, signed)  # log(1 + e^signed) without overflow

    def predicted(self, threshold: float = 0.5) -> np.ndarray:
        """Returns the predicted class of each image: 1 when P(class 1) > ``threshold``."""
        with np.errstate(divide="ignore"):
            cut = np.log(threshold) - np.log1p(-threshold)  # the logit of the threshold
        return (self.logits > cut).astype(np.int64)  # exact at 0.5: logit > 0, as Keras counts

    def correct(self, threshold: float = 0.5) -> np.ndarray:
        """Returns a boolean array: True where the prediction at ``threshold`` is right."""
        return self.predicted(threshold) == self.labels


def collect(model: keras.Model, dataset, files: Sequence[Path] | None = None) -> Predictions:
    """Returns the model's logits and the labels of every batch of ``dataset``, from one pass.

    Introduced in 06. Labels and logits come from the same batches, so they line up even for a
    shuffled dataset; ``files`` (``splits.test_files``) must list the images in dataset order.
    """
    logits, labels = [], []
    for images, batch_labels in dataset:
        logits.append(np.asarray(model.predict_on_batch(images), dtype=np.float32).reshape(-1))
        labels.append(np.asarray(batch_labels).reshape(-1).astype(np.int64))
    predictions = Predictions(np.concatenate(logits), np.concatenate(labels))
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

    Introduced in 06 (the threshold slider). ``matrix[i][j]`` counts images of true class ``i``
    predicted as class ``j``. A precision with no image predicted in that class is ``nan``.
    """
    predicted = predictions.predicted(threshold)
    matrix = np.zeros((2, 2), dtype=np.int64)
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


def worst_errors(predictions: Predictions, count: int = 9, threshold: float = 0.5) -> np.ndarray:
    """Returns the indices of up to ``count`` misclassified images, highest loss first (06)."""
    wrong = np.flatnonzero(~predictions.correct(threshold))
    order = np.argsort(-predictions.losses[wrong], kind="stable")
    return wrong[order][:count]


def least_certain(predictions: Predictions, count: int = 9) -> np.ndarray:
    """Returns the indices of the ``count`` images whose probability is closest to 0.5 (06)."""
    return np.argsort(np.abs(predictions.logits), kind="stable")[:count]


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


def gradcam_model(model: keras.Model, base_name: str | None = None) -> keras.Model:
    """Returns a model with two outputs: the base's feature map and the classifier's logit.

    Introduced in 06. The base of 04's classifier is one nested layer, so its last convolutional
    feature map (the base's output) is not an output of ``model``. This rebuilds the same graph
    from the same layers (same weights) and returns both; augmentation layers are left out.
    """
    from helpers import augment, models

    base_name = base_name or models.BASE_NAME
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
    # The head is a model of its own, so gradcam() can differentiate the logit with respect to
    # the feature map even when nothing before it is trainable (a frozen base).
    head_input = keras.Input(shape=feature_map.shape[1:], name="feature_map")
    y = head_input
    for layer in after_base:
        y = layer(y)
    head = keras.Model(head_input, y, name=HEAD_NAME)
    return keras.Model(inputs, [feature_map, head(feature_map)], name="gradcam")


def gradcam(
    cam_model: keras.Model, images, classes=None, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(heatmaps, logits)``: each image's Grad-CAM for its predicted class, and logit.

    Introduced in 06. The score explained is the logit for class 1 and minus the logit for
    class 0; ``classes`` (one 0 or 1 per image) explains those classes instead of the predicted
    ones. Each heatmap has the feature map's grid (e.g. 7x7) and is *not* rectified: positive
    cells pushed towards the class, negative ones away (Grad-CAM's ReLU is for display).
    """
    import tensorflow as tf

    heatmaps, logits = [], []
    images = np.asarray(images)
    for start in range(0, len(images), batch_size):
        feature_map, _ = cam_model(images[start : start + batch_size], training=False)
        with tf.GradientTape() as tape:
            tape.watch(feature_map)
            logit = cam_model.get_layer(HEAD_NAME)(feature_map, training=False)
            logit = tf.cast(tf.reshape(logit, [-1]), tf.float32)
            if classes is None:
                sign = tf.stop_gradient(tf.where(logit > 0, 1.0, -1.0))
            else:
                chosen = np.asarray(classes).reshape(-1)[start : start + batch_size]
                sign = tf.constant(np.where(chosen == 1, 1.0, -1.0), dtype=tf.float32)
            score = tf.reduce_sum(sign * logit)  # images are independent: one gradient for all
        gradients = tf.cast(tape.gradient(score, feature_map), tf.float32)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)  # one weight per channel
        heatmap = tf.reduce_sum(weights * tf.cast(feature_map, tf.float32), axis=-1)
        heatmaps.append(heatmap.numpy())
        logits.append(logit.numpy())
    return np.concatenate(heatmaps), np.concatenate(logits)


def cells_to_pixels(cells: np.ndarray, image_size: int) -> np.ndarray:
    """Returns a (n, size, size) boolean mask: each cell of a (n, h, w) grid over its pixels."""
    cells = np.asarray(cells, dtype=bool)
    _, height, width = cells.shape
    rows = np.minimum(np.arange(image_size) * height // image_size, height - 1)
    columns = np.minimum(np.arange(image_size) * width // image_size, width - 1)
    return cells[:, rows[:, None], columns[None, :]]


def hide_cells(images, cells: np.ndarray) -> np.ndarray:
    """Returns copies of ``images`` where the marked grid cells are filled with the image's mean.

    ``cells`` is a (n, h, w) boolean grid (the feature map's); each cell covers its share of the
    image. The mean colour carries no shape: what the model saw there is gone.
    """
    images = np.asarray(images)
    mask = cells_to_pixels(cells, images.shape[1])
    means = images.reshape(len(images), -1, images.shape[-1]).mean(axis=1)
    hidden = images.astype(np.float32).copy()
    for index in range(len(images)):
        hidden[index][mask[index]] = means[index]
    return np.round(hidden).astype(images.dtype)


def top_cells(heatmaps: np.ndarray, count: int) -> np.ndarray:
    """Returns a boolean (n, h, w) grid marking each heatmap's ``count`` highest cells."""
    flat = heatmaps.reshape(len(heatmaps), -1)
    order = np.argsort(-flat, axis=1, kind="stable")[:, :count]
    marks = np.zeros_like(flat, dtype=bool)
    np.put_along_axis(marks, order, True, axis=1)
    return marks.reshape(heatmaps.shape)


def random_cells(shape: tuple[int, int, int], count: int, rng: np.random.Generator) -> np.ndarray:
    """Returns a boolean (n, h, w) grid marking ``count`` random cells in each image."""
    n, height, width = shape
    marks = np.zeros((n, height * width), dtype=bool)
    for index in range(n):
        marks[index, rng.choice(height * width, size=count, replace=False)] = True
    return marks.reshape(shape)


def deletion_check(
    cam_model: keras.Model,
    images,
    *,
    fraction: float = 0.2,
    random_draws: int = 8,
    seed: int = 0,
) -> dict:
    """Returns how much hiding Grad-CAM's top cells lowers the predicted class's score, vs random.

    Introduced in 06. For each image, the ``fraction`` of grid cells Grad-CAM ranks highest are
    filled with the image's mean colour, and so are as many random cells (``random_draws`` times,
    a fixed ``seed``). The drop is the score before minus after (score: the logit for class 1,
    minus the logit for class 0). If Grad-CAM points at what the model uses, ``top_drop`` is
    larger than ``random_drop``.
    """
    images = np.asarray(images)
    heatmaps, logits = gradcam(cam_model, images)
    sign = np.where(logits > 0, 1.0, -1.0)
    cells = heatmaps.shape[1] * heatmaps.shape[2]
    count = max(1, int(round(fraction * cells)))

    rng = np.random.default_rng(seed)
    hidings = [top_cells(heatmaps, count)]
    hidings += [random_cells(heatmaps.shape, count, rng) for _ in range(random_draws)]
    # One predict call for every hidden copy: [top, random draw 1, random draw 2, ...]
    hidden = np.concatenate([hide_cells(images, marks) for marks in hidings])
    after = np.concatenate(  # called directly: predict() would retrace for every new length
        [
            keras.ops.convert_to_numpy(cam_model(hidden[start : start + 64], training=False)[1])
            for start in range(0, len(hidden), 64)
        ]
    )
    after = after.astype(np.float32).reshape(len(hidings), len(images))
    drops = sign * (logits - after)  # how much each hiding lowered the predicted class's score
    top, random = drops[0], drops[1:].mean(axis=0)
    return {
        "images": int(len(images)),
        "grid": [int(heatmaps.shape[1]), int(heatmaps.shape[2])],
        "cells_hidden": count,
        "top_drop": round(float(top.mean()), 4),
        "random_drop": round(float(random.mean()), 4),
        "top_beats_random": round(float(np.mean(top > random)), 4),  # share of images where it does
    }
