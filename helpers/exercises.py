"""The checks after each exercise: one printed line, Kaggle Learn style (introduced in 01).

``exercises.check("01", 2, globals())`` looks at what the answer left in the notebook and prints
"correct", "not done yet: ..." or "wrong: <what>. Hint: <where to look>" (never the solution);
``make grade`` reads those lines. ``TL_STRICT_CHECKS=1`` (``make test``) makes anything but
correct raise ``CheckFailed``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from helpers.errors import LearnerError

CORRECT, NOT_DONE, WRONG = "correct", "not done yet", "wrong"
TWO_CLASSES = "for two classes only"  # an exercise about one logit, in a run with N classes
STRICT_VARIABLE = "TL_STRICT_CHECKS"
# Exercises about one logit and a threshold: with more than two classes they do not apply.
TWO_CLASSES_ONLY = {("04", 3), ("06", 1), ("06", 2)}


class CheckFailed(LearnerError):
    """A check that is not correct while ``TL_STRICT_CHECKS=1`` (the test run) asks for strict."""


class Wrong(Exception):
    """Raised by a check function: the answer is there but does not have the property checked."""

    def __init__(self, what: str, hint: str):
        super().__init__(what)
        self.what, self.hint = what, hint


@dataclass(frozen=True)
class Result:
    """What one check found: ``status`` (correct, not done yet, wrong) and the printed ``line``."""

    notebook: str
    exercise: int
    status: str
    line: str


@dataclass(frozen=True)
class Exercise:
    needs: tuple[str, ...]  # the names the learner's answer defines
    test: Callable[[dict], None]  # raises Wrong when the answer lacks the property
    todo: str  # what "not done yet" asks for


CHECKS: dict[tuple[str, int], Exercise] = {}


def _exercise(notebook: str, number: int, needs: tuple[str, ...], todo: str):
    def register(test: Callable[[dict], None]) -> Callable[[dict], None]:
        CHECKS[(notebook, number)] = Exercise(needs, test, todo)
        return test

    return register


def evaluate(notebook: str, exercise: int, namespace: dict) -> Result:
    """Returns the result of exercise ``exercise`` of ``notebook`` in ``namespace`` (globals)."""
    entry = CHECKS[(notebook, exercise)]
    head = f"Exercise {exercise} ({notebook}): "
    if (notebook, exercise) in TWO_CLASSES_ONLY and len(_class_names(namespace)) > 2:
        line = f"{head}{TWO_CLASSES}: this run has {len(_class_names(namespace))} classes."
        return Result(notebook, exercise, TWO_CLASSES, line)
    missing = [name for name in entry.needs if name not in namespace]
    if missing:
        names = ", ".join(f"`{name}`" for name in missing)
        line = (
            f"{head}{NOT_DONE}: {entry.todo} (this notebook has no {names} yet). Write your "
            "answer in a cell above, run it, then run this cell again."
        )
        return Result(notebook, exercise, NOT_DONE, line)
    try:
        entry.test(namespace)
    except Wrong as wrong:
        line = f"{head}{WRONG}: {wrong.what}. Hint: {wrong.hint}"
        return Result(notebook, exercise, WRONG, line)
    except Exception as error:  # an answer of the wrong kind (a string for a model, ...)
        line = (
            f"{head}{WRONG}: checking your answer raised {type(error).__name__}: {error}. "
            f"Hint: {entry.todo}."
        )
        return Result(notebook, exercise, WRONG, line)
    return Result(notebook, exercise, CORRECT, f"{head}{CORRECT}.")


def check(notebook: str, exercise: int, namespace: dict) -> None:
    """Prints one line: whether your answer to the exercise works, never the solution (01)."""
    result = evaluate(notebook, exercise, namespace)
    print(result.line, flush=True)
    failed = result.status not in (CORRECT, TWO_CLASSES)
    if failed and os.environ.get(STRICT_VARIABLE, "") not in ("", "0"):
        raise CheckFailed(f"{result.line} ({STRICT_VARIABLE} is set: checks must pass)")


def _class_names(namespace: dict) -> list:
    """Returns the class names of the notebook's data (``splits.class_names``), or []."""
    splits = namespace.get("splits")
    return list(getattr(splits, "class_names", []) or [])


def _need(condition: bool, what: str, hint: str) -> None:
    if not condition:
        raise Wrong(what, hint)


def _array(value) -> np.ndarray:
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


# --- 01 · Trainable layers --------------------------------------------------------------------


# The four numbers exercise 01/1 asks a learner to predict for each layer, in this order.
COUNTS_OF_A_LAYER = (
    "trainable weights",
    "non-trainable weights",
    "trainable parameters",
    "non-trainable parameters",
)


def _counts_of_layer(layer) -> tuple[int, ...]:
    """Returns the four numbers of COUNTS_OF_A_LAYER, read from a built Keras layer."""
    trainable, frozen = layer.trainable_weights, layer.non_trainable_weights

    def size(weights) -> int:
        return int(sum(np.prod(weight.shape) for weight in weights))

    return len(trainable), len(frozen), size(trainable), size(frozen)


def _whole_numbers(value) -> tuple[int, ...] | None:
    """Returns ``value`` as a tuple of ints (a list, tuple or array of whole numbers), or None."""
    numbers = _array(value)
    if numbers.ndim != 1 or numbers.dtype.kind not in "iuf":
        return None
    if not np.all(np.isfinite(numbers)) or not np.all(numbers == np.round(numbers)):
        return None
    return tuple(int(number) for number in numbers)


@_exercise(
    "01",
    1,
    ("predicted_counts", "conv", "conv_norm"),
    "write `predicted_counts`, then build `conv` (Conv2D) and `conv_norm` (BatchNorm)",
)
def _counts_of_conv_and_batchnorm(ns: dict) -> None:
    import keras

    conv, norm = ns["conv"], ns["conv_norm"]
    _need(
        isinstance(conv, keras.layers.Conv2D) and isinstance(norm, keras.layers.BatchNormalization),
        "`conv` must be a Conv2D layer and `conv_norm` a BatchNormalization layer",
        "keras.layers.Conv2D(8, 3) and keras.layers.BatchNormalization()",
    )
    _need(
        conv.built and norm.built,
        "a layer has no weights until it is built",
        "call .build(input_shape) on each, or call it on a batch of images",
    )
    _need(
        tuple(conv.kernel.shape) == (3, 3, 3, 8),
        f"the kernel of `conv` has shape {tuple(conv.kernel.shape)}",
        "8 filters of 3x3 over 3 input channels (build it on shape (None, 32, 32, 3))",
    )
    _need(
        (len(conv.trainable_weights), len(conv.non_trainable_weights)) == (2, 0)
        and conv.count_params() == 3 * 3 * 3 * 8 + 8,
        "`conv` does not have its trainable kernel and bias",
        "is it frozen? A Conv2D has two trainable weights",
    )
    _need(
        (len(norm.trainable_weights), len(norm.non_trainable_weights)) == (2, 2)
        and norm.count_params() == 4 * 8,
        "`conv_norm` should normalize the 8 channels that `conv` outputs, with 2 trainable and "
        "2 non-trainable weights",
        "build it on the output shape of `conv`, (None, 30, 30, 8)",
    )
    # The exercise is the prediction: compare it with what the built layers report.
    predicted = ns["predicted_counts"]
    order = ", ".join(COUNTS_OF_A_LAYER)
    _need(
        hasattr(predicted, "keys") and {"conv", "conv_norm"} <= set(predicted.keys()),
        '`predicted_counts` should have an entry for "conv" and one for "conv_norm"',
        f'predicted_counts = {{"conv": (...), "conv_norm": (...)}}, each holding: {order}',
    )
    for name, layer in (("conv", conv), ("conv_norm", norm)):
        numbers = _whole_numbers(predicted[name])
        _need(
            numbers is not None and len(numbers) == len(COUNTS_OF_A_LAYER),
            f"`predicted_counts[{name!r}]` is not four whole numbers",
            f"write four numbers for each layer, in this order: {order}",
        )
        _need(
            numbers == _counts_of_layer(layer),
            f"your prediction for `{name}` differs from what the built layer reports",
            "compare it with len(layer.trainable_weights), len(layer.non_trainable_weights) and "
            "the sizes (np.prod of the shapes) of those weights; which did you expect otherwise?",
        )


@_exercise("01", 2, ("changed_weights",), "define the function `changed_weights(before, after)`")
def _changed_weights(ns: dict) -> None:
    changed_weights = ns["changed_weights"]
    # Weights of order 1, as trained ones are: np.allclose would call a change of 1e-6 no change.
    kernel = np.linspace(-1.0, 1.5, 6, dtype="float32").reshape(3, 2)
    before = {"kernel": kernel, "bias": np.array([0.25, -0.5], "float32")}
    same = {name: value.copy() for name, value in before.items()}
    nudged = {name: value.copy() for name, value in before.items()}
    nudged["kernel"][1, 1] += np.float32(1e-6)
    assert not np.array_equal(nudged["kernel"], kernel)
    moved = {name: value + 1.0 for name, value in before.items()}
    hint = "compare each pair of arrays with np.array_equal (a.all() == b.all() proves nothing)"

    def names(after: dict) -> list[str]:
        # Any collection of names will do (a list in any order, a set, a tuple): sorted, so the
        # verdict does not depend on the order a set iterates in (PYTHONHASHSEED).
        answer = changed_weights(before, after)
        _need(
            not isinstance(answer, str | bytes) and answer is not None,
            f"`changed_weights` returned {answer!r}, not a collection of names",
            "return a list (or a set) of the names whose arrays differ",
        )
        answer = [str(name) for name in answer]
        _need(
            len(answer) == len(set(answer)),
            "`changed_weights` named a weight twice",
            "name each weight that changed once",
        )
        return sorted(answer)

    _need(names(same) == [], "two equal snapshots gave changes", hint)
    _need(
        names(nudged) == ["kernel"],
        "a change of 1e-6 in one element of a kernel was not reported as the kernel alone",
        hint,
    )
    _need(
        names(moved) == ["bias", "kernel"],
        "when every weight changed, the answer did not name both the kernel and the bias",
        "return the names of the weights (the keys of the snapshots), not their values",
    )


@_exercise(
    "01",
    3,
    ("learns_without_recompile", "learns_after_recompile"),
    "set `learns_without_recompile` and `learns_after_recompile` to True or False",
)
def _recompile(ns: dict) -> None:
    values = ns["learns_without_recompile"], ns["learns_after_recompile"]
    # True or False in any form: np.any and == on arrays give numpy's bool, TF a 0-d tensor.
    _need(
        all(_array(value).shape == () and _array(value).dtype == bool for value in values),
        "both answers must be True or False",
        "what did changed_weights say after each fit?",
    )
    values = tuple(bool(_array(value)) for value in values)
    _need(
        values == (False, True),
        "one of your two answers does not match what the experiment shows",
        "snapshot the first layer before each fit and compare with changed_weights afterwards",
    )


@_exercise("01", 4, ("base", "classifier"), "build `base` and `classifier`, then freeze")
def _freeze_all_but_last(ns: dict) -> None:
    import keras

    base, classifier = ns["base"], ns["classifier"]
    kinds = [type(layer) for layer in getattr(base, "layers", [])]
    _need(
        kinds == [keras.layers.Dense, keras.layers.BatchNormalization, keras.layers.Dense],
        "`base` should hold Dense, BatchNormalization, Dense",
        "keras.Sequential([keras.Input((8,)), Dense(16), BatchNormalization(), Dense(16)])",
    )
    _need(
        any(layer is base for layer in classifier.layers),
        "`base` is not a layer of `classifier`",
        "put `base` inside a model with a Dense(1) head",
    )
    _need(
        [layer.trainable for layer in base.layers] == [False, False, True],
        "in `base`, only the last Dense layer should be trainable",
        "the order of the two assignments matters: the base's flag reaches every layer inside",
    )
    count = len(classifier.trainable_weights)
    _need(
        count == 4,
        f"`classifier` has {count} trainable weights",
        "count the trainable weights of the base's last Dense layer and of the head",
    )


# --- 02 · Data ----------------------------------------------------------------------------------

TFDS_IMAGES = 23_262


@_exercise("02", 1, ("split_sizes", "cache_mb"), "compute `split_sizes` and `cache_mb`")
def _split_sizes(ns: dict) -> None:
    sizes = [int(size) for size in _array(ns["split_sizes"]).ravel()]
    bounds = [round(TFDS_IMAGES * percent / 100) for percent in (0, 40, 50, 60)]
    expected = np.diff(bounds).tolist()
    _need(
        sizes == expected,
        f"`split_sizes` is {sizes}",
        "TFDS turns a percentage into an index by rounding: train[:40%] ends at round(0.4 * N)",
    )
    megabytes = sum(expected) * 150 * 150 * 3
    _need(
        any(
            abs(float(ns["cache_mb"]) - megabytes / unit) < 0.01 * megabytes / unit
            for unit in (1e6, 2**20)
        ),
        f"`cache_mb` is {float(ns['cache_mb']):.0f}",
        "the cache holds every image as uint8: height x width x 3 bytes each",
    )


@_exercise("02", 2, ("holiday_scan",), "scan your copied folder into `holiday_scan`")
def _holiday_scan(ns: dict) -> None:
    scan = ns["holiday_scan"]
    skipped = [item.path for item in scan.skipped]
    _need(
        any(path.name == "holiday.jpg" and path.parent.name == "cat" for path in skipped),
        "the report does not list cat/holiday.jpg as skipped",
        "write a text file named holiday.jpg into the copy's cat/ folder before scanning",
    )
    listed = [str(path) for path in list(scan.files) + skipped]
    _need(
        not any(".ipynb_checkpoints" in path for path in listed),
        "a file inside .ipynb_checkpoints was used or reported",
        "data.scan_folder ignores hidden folders: scan the copy, not the original",
    )


@_exercise("02", 3, ("has_jpeg_signature",), "define the function `has_jpeg_signature(path)`")
def _jpeg_signature(ns: dict) -> None:
    import io
    import tempfile
    from pathlib import Path

    from PIL import Image

    has_signature = ns["has_jpeg_signature"]
    jpeg, png = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (8, 8), (200, 120, 40)).save(jpeg, "JPEG")
    Image.new("RGB", (8, 8), (200, 120, 40)).save(png, "PNG")
    files = {
        "whole.jpg": (jpeg.getvalue(), True),
        "cut.jpg": (jpeg.getvalue()[:40], True),
        "picture.jpg": (png.getvalue(), False),
        "note.jpg": (b"not a photo", False),
        "empty.jpg": (b"", False),
    }
    with tempfile.TemporaryDirectory() as scratch:
        for name, (content, expected) in files.items():
            path = Path(scratch) / name
            path.write_bytes(content)
            answer = has_signature(path)
            _need(
                bool(answer) == expected,
                f"for {'a' if expected else 'a non-JPEG'} file like {name} it says {answer!r}",
                "read the first 3 bytes in binary mode ('rb') and compare with b'\\xff\\xd8\\xff'",
            )


@_exercise("02", 4, ("shuffled_ds",), "build `shuffled_ds` from `validation_ds`")
def _reshuffled(ns: dict) -> None:
    def contents(dataset) -> np.ndarray:
        return np.concatenate(
            [_array(images).reshape(len(images), -1).sum(axis=1) for images, _ in dataset]
        )

    reference = contents(ns["validation_ds"])
    first = contents(ns["shuffled_ds"])
    _need(
        sorted(first) == sorted(reference),
        "`shuffled_ds` does not hold the validation images",
        "start from validation_ds: unbatch(), shuffle(...), batch(...)",
    )
    _need(
        len(reference) < 2  # up to 19 more passes, drawn only while the order repeats
        or any(not np.array_equal(first, contents(ns["shuffled_ds"])) for _ in range(19)),
        "20 passes over `shuffled_ds` all gave the same order",
        "shuffle() must come after any cache() and reshuffles each pass by default",
    )


# --- 03 · Augmentation --------------------------------------------------------------------------


def _layers_in(model) -> list:
    return list(getattr(model, "layers", [model]))


@_exercise("03", 1, ("upside_down",), "build the augmentation `upside_down`")
def _vertical_flip(ns: dict) -> None:
    import keras

    flips = [
        layer
        for layer in _layers_in(ns["upside_down"])
        if isinstance(layer, keras.layers.RandomFlip)
    ]
    _need(bool(flips), "`upside_down` has no RandomFlip layer", "start from augment.build's layers")
    # One RandomFlip("horizontal_and_vertical"), or a "horizontal" one and a "vertical" one.
    directions = set()
    for layer in flips:
        directions |= set(layer.get_config()["mode"].split("_and_"))
    _need(
        {"horizontal", "vertical"} <= directions,
        "its RandomFlip layers do not flip both horizontally and vertically",
        "RandomFlip takes a mode: see its documentation for the one that flips both ways",
    )


@_exercise("03", 2, ("one", "again", "other"), "make the copies `one`, `again` and `other`")
def _repeatable(ns: dict) -> None:
    one, again, other = (_array(ns[name]) for name in ("one", "again", "other"))
    _need(
        one.size > 0 and one.shape == again.shape == other.shape,
        "the copies differ in shape",
        "make the same number of copies of the same image each time",
    )
    _need(
        np.array_equal(one, again),
        "two augmentations built with the same seed gave different images",
        "build each augmentation afresh with the same seed, and make the same calls",
    )
    _need(
        not np.array_equal(one, other),
        "another seed gave the same images",
        "is the transformation random at all? (a factor of 0 changes nothing)",
    )


@_exercise("03", 3, ("constant", "reflect"), "rotate `image` into `constant` and `reflect`")
def _fill_modes(ns: dict) -> None:
    constant, reflect = _array(ns["constant"]), _array(ns["reflect"])
    _need(
        constant.shape == reflect.shape and constant.ndim == 3,
        "`constant` and `reflect` should be two images of the same shape",
        "call the layer on image[tf.newaxis] and take [0]",
    )
    _need(
        np.all(constant[0, 0] == 0),
        "the corner of `constant` is not black",
        'fill_mode="constant" fills with fill_value, 0 by default; training=True applies it',
    )
    _need(
        not np.array_equal(constant, reflect),
        "the two rotations are identical",
        "the default fill_mode is 'reflect': leave it out for `reflect`",
    )


def _unit_vectors(images) -> np.ndarray:
    """Returns each image as a flat float64 vector of mean 0 and length 1 (for correlations)."""
    flat = _array(images).reshape(len(images), -1).astype(np.float64)
    flat -= flat.mean(axis=1, keepdims=True)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)


# An image of the pipeline whose correlation with an image of splits.train exceeds this is that
# image unchanged, or only cast or rescaled (1 up to float rounding, about 1e-14). Augmented
# copies stay below it: measured in ci, the closest of 80 copies (flip + RandomRotation(0.1), up
# to 36 degrees) reached 0.9998 (a tiny angle), the median 0.76 (on 32 real cat/dog photos 0.981
# and 0.57); the check asks only that one image of a whole batch is new, so such a rare
# near-copy cannot fail it.
SAME_IMAGE = 1 - 1e-6
# The correlations use every 4th row and column (a 16th of the pixels), which takes 0.4 s instead
# of 6 s for a batch against 1,600 real photos: an unchanged, rescaled image still correlates
# 1 - 3e-15 with its original; 80 augmented copies of real photos at most 0.981 (median 0.36).
PIXEL_STRIDE = 4


def _strided(images) -> np.ndarray:
    """Returns every ``PIXEL_STRIDE``-th row and column of the images, in their own dtype."""
    return _array(images)[:, ::PIXEL_STRIDE, ::PIXEL_STRIDE]


@_exercise("03", 4, ("train_ds",), "map the augmentation over `splits.train` into `train_ds`")
def _augmented_pipeline(ns: dict) -> None:
    import tensorflow as tf

    train_ds, originals = ns["train_ds"], ns["splits"].train
    images_spec = train_ds.element_spec[0]
    before = originals.element_spec[0]
    _need(
        images_spec.dtype == tf.float32,
        f"the images of `train_ds` are {images_spec.dtype.name}, not float32",
        "map augment_batch over splits.train (the augmentation layers return float32)",
    )
    _need(
        images_spec.shape[1:] == before.shape[1:],
        f"the images have shape {images_spec.shape[1:]}, not {before.shape[1:]}",
        "augmentation keeps the image size: map it over batches of splits.train",
    )
    # Augmented: the first batch holds images that are in no batch of splits.train. The order of
    # the two passes differs (splits.train reshuffles), so each image is compared with them all.
    # splits.train is read in full first, which completes its cache before train_ds reads it (two
    # iterators filling one cache at once decode the photos twice and compete for the CPU).
    kept = [_strided(images) for images, _ in originals]  # uint8: 15 MB for 1,600 photos
    batches = len(kept)
    passing = iter(train_ds)
    first = _array(next(passing)[0])
    sample = _unit_vectors(_strided(first))
    closest = np.full(len(sample), -1.0)
    for images in kept:
        closest = np.maximum(closest, (sample @ _unit_vectors(images).T).max(axis=1))
    _need(
        bool(np.any(closest < SAME_IMAGE)),
        "every image of a batch of `train_ds` is an image of splits.train, unchanged apart from "
        "its type or scale",
        "map the function that calls the augmentation with training=True (augment_batch)",
    )
    # New copies each pass: a cache() after the augmentation would replay the first pass's.
    for _ in range(batches - 1):  # the rest of the first pass, as an epoch of fit reads it
        if next(passing, None) is None:
            break
    again = _array(next(iter(train_ds))[0])
    _need(
        not np.array_equal(first, again),
        "the second pass over `train_ds` began with exactly the images of the first",
        "cache() before the augmentation, never after it (data.load has already cached)",
    )


# --- 04 · Transfer learning ---------------------------------------------------------------------


def _farthest_nearest(rows: np.ndarray, reference: np.ndarray, chunk: int = 512) -> float:
    """Returns the largest distance from a row of ``rows`` to its nearest row of ``reference``."""
    reference = reference.astype(np.float64)
    squared = np.sum(reference**2, axis=1)
    farthest = 0.0
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk].astype(np.float64)
        distances = np.sum(part**2, axis=1)[:, None] + squared[None, :] - 2 * part @ reference.T
        farthest = max(farthest, float(np.sqrt(max(np.max(np.min(distances, axis=1)), 0.0))))
    return farthest


# 04/2: a row of `flip_features` is the feature vector of a mirrored training image when it lies
# within this fraction of the typical feature vector's length of one the check computes itself.
# Measured in ci (63 images, untrained Xception) and on 1,600 real cat/dog photos (MobileNet 0.25,
# 224 px): the same image in batches of another size lies 6e-8 and 7e-8 away (float rounding);
# the nearest mirrored image to an unflipped one 0.05 and 0.15 (medians 0.17 and 0.24).
SAME_FEATURES = 1e-3
# The check mirrors this many training images itself, not all: a pass over the 1,600 photos took
# about 5 s (2 CPU cores), and an answer that lacks even a tenth of the mirrors misses a twin here
# with probability 1 - 0.9**64 (0.999).
CHECKED_MIRRORS = 64


@_exercise("04", 2, ("flip_features", "history_2"), "compute `flip_features` and train `head_2`")
def _flipped_features(ns: dict) -> None:
    import tensorflow as tf

    from helpers import train

    flipped, original = _array(ns["flip_features"]), _array(ns["train_features"])
    _need(
        flipped.shape == original.shape,
        f"`flip_features` has shape {flipped.shape}, the training features {original.shape}",
        "one feature vector per training image, from the same feature_extractor",
    )
    # The features of some mirrored training images, computed here. A training pass is shuffled,
    # so each must have its twin among the answer's vectors (the shapes already match).
    sample = ns["splits"].train.unbatch().take(CHECKED_MIRRORS).batch(CHECKED_MIRRORS)
    mirrored = sample.map(lambda images, labels: (tf.image.flip_left_right(images), labels))
    expected, _ = train.extract_features(ns["feature_extractor"], mirrored)
    scale = float(np.median(np.linalg.norm(expected, axis=1))) or 1.0
    _need(
        _farthest_nearest(expected, flipped) <= SAME_FEATURES * scale,
        "some mirrored training images have no feature vector in `flip_features`",
        "map tf.image.flip_left_right over splits.train, then extract with feature_extractor",
    )
    _need(
        "val_accuracy" in ns["history_2"].history,
        "`history_2` has no validation accuracy",
        "pass validation_data=val_set (the validation features) to fit",
    )


@_exercise("04", 3, ("double_sigmoid", "reported_3"), "train `double_sigmoid`, keep `reported_3`")
def _double_sigmoid(ns: dict) -> None:
    model = ns["double_sigmoid"]
    _need(
        model.layers[-1].get_config().get("activation") == "sigmoid",
        "the last layer of `double_sigmoid` has no sigmoid",
        'Dense(1, activation="sigmoid")',
    )
    _need(
        getattr(model.loss, "get_config", dict)().get("from_logits") is True,
        "its loss does not say from_logits=True",
        "compile it as the logit head was compiled (train.compile_for_logits)",
    )
    share = float(np.mean(_array(ns["val_labels"])))
    _need(
        abs(float(ns["reported_3"]) - share) < 1e-6,
        f"`reported_3` ({float(ns['reported_3']):.3f}) is not the accuracy Keras reports",
        "keep the accuracy from double_sigmoid.evaluate(val_features, val_labels)",
    )


# --- 05 · Fine-tuning ---------------------------------------------------------------------------


UNFREEZE_VALUES = ("all", 0.5, 4, 1)


def _unfreeze_value(key) -> str | float | int:
    """Returns a key of 05/1's `counts` as a TL_UNFREEZE value: "all", "0.5" and 0.5 alike."""
    if isinstance(key, str) and key.strip().lower() == "all":
        return "all"
    number = float(key)
    return int(number) if number.is_integer() else number


@_exercise("05", 1, ("counts",), "fill `counts` ({TL_UNFREEZE value: trainable weight arrays})")
def _unfreeze_counts(ns: dict) -> None:
    from helpers import models

    answer = {}
    for key, value in ns["counts"].items():
        answer.setdefault(_unfreeze_value(key), []).append(value)
    _need(
        set(answer) == set(UNFREEZE_VALUES) and all(len(v) == 1 for v in answer.values()),
        f"`counts` has the keys {sorted(map(str, ns['counts']))}",
        'one entry for each of "all", 0.5, 4 and 1',
    )
    # The counts the notebook's freezing code gives on this run's base (models.unfreeze
    # writes out the same steps), recomputed rather than judged by their order alone.
    base = models.build_base(ns["cfg"])
    for how in UNFREEZE_VALUES:
        models.unfreeze(base, how)
        (value,) = answer[how]
        _need(
            float(value) == len(base.trainable_weights),
            f"`counts[{how!r}]` is {value}, not the number of trainable weight arrays that "
            f"TL_UNFREEZE={how} leaves in this base",
            "for each value: base.trainable = True, freeze the layers below the cut and every "
            "BatchNormalization layer, then count len(base.trainable_weights)",
        )


@_exercise("05", 2, ("model_2", "history_2"), "fine-tune `model_2` at 1e-3 into `history_2`")
def _high_learning_rate(ns: dict) -> None:
    import keras

    from helpers import models

    model = ns["model_2"]
    rate = float(_array(model.optimizer.learning_rate))
    _need(
        np.isclose(rate, 1e-3),
        f"the optimizer's learning rate is {rate:g}",
        "compile with Adam(1e-3) after unfreezing",
    )
    losses = ns["history_2"].history.get("val_loss", [])
    _need(
        len(losses) == 1,
        f"`history_2` has {len(losses)} epochs of validation loss",
        "one epoch, with validation_data",
    )
    base = model.get_layer(models.BASE_NAME)
    unfreeze_hint = "set base.trainable = True (BatchNormalization stays frozen), then compile"
    _need(
        len(base.trainable_weights) > 0,
        "no weight of the base is trainable: only the head was fine-tuned",
        unfreeze_hint,
    )
    # Adam keeps two arrays per weight it trains: built before the unfreezing, it has too few
    # (Keras 3 keeps training the old set of weights until compile() is called again).
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    if isinstance(optimizer, keras.optimizers.Adam):
        _need(
            len(optimizer.variables) >= 2 * len(model.trainable_weights),
            "the optimizer that ran the fit does not train the base's weights",
            "compile again after changing trainable, then fit",
        )
    # The base moved away from 04's (when 04 saved its model, and its settings are this run's).
    start, _ = models.load_saved(ns["cfg"], "transfer_model")
    if start is not None:
        trained = {id(weight) for weight in base.trainable_weights}
        pairs = zip(base.weights, start.get_layer(models.BASE_NAME).weights, strict=True)
        moved = [
            not np.array_equal(_array(now), _array(then))
            for now, then in pairs
            if id(now) in trained
        ]
        _need(
            any(moved),
            "no trainable weight of the base differs from 04's model after the epoch",
            unfreeze_hint,
        )


# --- 06 · Evaluation ----------------------------------------------------------------------------


@_exercise("06", 1, ("chosen",), "set `chosen` to (threshold, precision, recall), or None")
def _lowest_threshold(ns: dict) -> None:
    from sklearn.metrics import precision_score, recall_score

    predictions = ns["predictions"]
    labels = _array(predictions.labels)

    def scores(threshold: float) -> tuple[float, float]:
        predicted = predictions.predicted(threshold)
        return (
            precision_score(labels, predicted, zero_division=0),
            recall_score(labels, predicted, zero_division=0),
        )

    reaching = [t for t in np.arange(0.01, 1.0, 0.01) if scores(t)[0] >= 0.98]
    chosen = ns["chosen"]
    if chosen is None:
        _need(
            not reaching,
            "`chosen` is None, but a threshold reaches a dog precision of 0.98",
            "try every threshold from 0.01 to 0.99 in steps of 0.01",
        )
        return
    threshold, precision, recall = (float(value) for value in chosen)
    right_precision, right_recall = scores(threshold)
    _need(
        np.isclose(precision, right_precision, atol=1e-6)
        and np.isclose(recall, right_recall, atol=1e-6),
        f"at {threshold:g}, scikit-learn gives a dog precision of {right_precision:.4f} and a "
        f"recall of {right_recall:.4f}",
        "read the dog class (class_names[1]) from threshold_report at your threshold",
    )
    _need(
        right_precision >= 0.98,
        f"the precision at {threshold:g} is below 0.98",
        "keep the first threshold whose precision reaches 0.98",
    )
    _need(
        threshold <= reaching[0] + 1e-9,
        f"{threshold:g} is not the lowest threshold that reaches 0.98",
        "go up from 0.01 and stop at the first one",
    )


@_exercise("06", 2, ("own", "other"), "compute the heatmaps `own` and `other`")
def _other_class(ns: dict) -> None:
    own, other = _array(ns["own"]), _array(ns["other"])
    _need(
        own.shape == other.shape and own.size > 0,
        "`own` and `other` differ in shape",
        "explain the same images twice",
    )
    scale = 1e-5 + 1e-4 * float(np.max(np.abs(own)))  # near 0 with random weights (ci)
    _need(
        float(np.max(np.abs(own))) <= 2 * scale or not np.allclose(own, other, atol=scale),
        "`other` is the predicted class's heatmap again",
        "grad_cam takes `classes`: one 0 or 1 per image, the class to explain",
    )
    _need(
        np.allclose(other, -own, atol=scale),
        "`other` is not what explaining the other class gives",
        "pass the class each image was not predicted as (own_logits > 0 says which was)",
    )


# --- 07 · Use your model ------------------------------------------------------------------------


@_exercise("07", 1, ("answers", "counts"), "read the JSON answers into `answers`, fill `counts`")
def _counts_from_json(ns: dict) -> None:
    answers, counts = ns["answers"], ns["counts"]
    _need(
        isinstance(answers, list) and answers and all("class_name" in a for a in answers),
        "`answers` is not the list the command prints with --json",
        "json.loads what it prints: one entry per photo, each with a class_name",
    )
    for name in {answer["class_name"] for answer in answers}:
        expected = sum(answer["class_name"] == name for answer in answers)
        _need(
            int(counts.get(name, 0)) == expected,
            f"`counts[{name!r}]` is {counts.get(name, 0)}, not the number of answers of that class",
            "count the entries of each class_name",
        )


@_exercise("07", 2, ("probability",), "compute `probability` from the SavedModel's logit")
def _saved_model_probability(ns: dict) -> None:
    from helpers import predict

    probability = float(ns["probability"])
    _need(
        0.0 <= probability <= 1.0,
        f"`probability` is {probability:g}, not a probability",
        "serve returns a logit: apply the sigmoid, 1 / (1 + exp(-logit))",
    )
    keras_answer = predict.predict_image(ns["predictor"], ns["photo_paths"][0])
    names = ns["predictor"].class_names
    if len(names) == 2:  # one logit: the probability of class_names[1]
        keras_probability, of = 1 / (1 + np.exp(-float(keras_answer.logit))), names[1]
    else:  # N logits: the probability of the likeliest class
        keras_probability, of = keras_answer.probability, keras_answer.class_name
    _need(
        abs(probability - keras_probability) < 0.01,
        f"Keras gives P({of}) = {keras_probability:.3f} for {ns['photo_paths'][0].name}",
        "call serve on the first photo, decoded with 3 channels, as a batch of one",
    )


@_exercise("07", 3, ("flipped",), "find the indices `flipped` where the 8-bit model disagrees")
def _disagreements(ns: dict) -> None:
    from helpers import predict

    small, plain = _array(ns["small_logits"]), _array(ns["plain_logits"])
    expected = np.flatnonzero(predict.classes(small) != predict.classes(plain))
    answer = np.sort(_array(ns["flipped"]).ravel().astype(np.int64))
    _need(
        np.array_equal(answer, expected),
        f"`flipped` holds {answer.size} indices; the two models disagree on {expected.size} images",
        "compare the classes the two logit arrays give (predict.classes)",
    )


# --- 08 · Scale up ------------------------------------------------------------------------------


@_exercise("08", 1, ("parts_1",), "split a batch of 9 with `strategy` into `parts_1`")
def _uneven_batch(ns: dict) -> None:
    parts = [_array(part).ravel() for part in ns["parts_1"]]
    replicas = ns["strategy"].num_replicas_in_sync
    _need(
        len(parts) == replicas,
        f"`parts_1` has {len(parts)} parts for {replicas} replicas",
        "strategy.experimental_local_results gives one part per replica",
    )
    _need(
        sorted(np.concatenate(parts).tolist()) == list(range(9)),
        "the parts do not hold the 9 numbers once each",
        "distribute one batch of all 9: Dataset.range(9).batch(9)",
    )
    sizes = [len(part) for part in parts]
    _need(max(sizes) - min(sizes) <= 1, f"the parts have sizes {sizes}", "split one batch of 9")


@_exercise("08", 2, ("steps_per_epoch", "scaled_rate"), "fill `steps_per_epoch`, `scaled_rate`")
def _steps_and_rates(ns: dict) -> None:
    steps, rates = ns["steps_per_epoch"], ns["scaled_rate"]
    images, batch = int(ns["splits"].sizes["train"]), int(ns["cfg"].batch_size)
    _need(
        set(steps) == set(rates) == {1, 2, 8},
        "one entry for each of 1, 2 and 8 replicas is missing",
        "key both dictionaries by the number of replicas: 1, 2 and 8",
    )
    for count in (1, 2, 8):
        _need(
            int(steps[count]) == -(-images // (batch * count)),
            f"{steps[count]} steps for {count} replica(s) do not cover the training set once",
            "a global batch holds TL_BATCH_SIZE images per replica; the last batch may be smaller",
        )
        _need(
            np.isclose(float(rates[count]), 1e-3 * count),
            f"the rate for {count} replica(s) does not follow the linear scaling rule",
            "the rule multiplies the rate by how many times larger the global batch is",
        )
