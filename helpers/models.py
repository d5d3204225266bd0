"""Pretrained bases and the classifier built on them (introduced in 04, reused in 05)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from helpers import files
from helpers.config import Config
from helpers.errors import LearnerError, setting_hint


class WeightsError(LearnerError):
    """The pretrained weights could not be loaded; the message says how to provide them."""


@dataclass(frozen=True)
class Backbone:
    """One pretrained base: how to build it and what input scale it expects."""

    name: str
    constructor: Callable[..., keras.Model]
    input_range: tuple[float, float]  # the pixel range its ImageNet weights expect
    has_alpha: bool = False  # MobileNets take a width multiplier
    # Keras adds a stem layer only when weights="imagenet" (EfficientNet): see _like_imagenet
    imagenet_only_stem: bool = False

    def scaling(self) -> keras.layers.Layer:
        """Returns the layer that maps 0-255 pixels to this backbone's input range."""
        if self.input_range == (-1.0, 1.0):
            return keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale_to_minus1_1")
        return keras.layers.Identity(name="keep_0_255")  # the model rescales by itself


BASE_NAME = "base_model"  # how the classifier's nested base is named: model.get_layer(BASE_NAME)

BACKBONES: dict[str, Backbone] = {
    "xception": Backbone("xception", keras.applications.Xception, (-1.0, 1.0)),
    "mobilenet_v2": Backbone("mobilenet_v2", keras.applications.MobileNetV2, (-1.0, 1.0), True),
    "mobilenet": Backbone("mobilenet", keras.applications.MobileNet, (-1.0, 1.0), True),
    "efficientnet_b0": Backbone(
        "efficientnet_b0", keras.applications.EfficientNetB0, (0.0, 255.0), imagenet_only_stem=True
    ),
}

# keras/src/applications/efficientnet.py: IMAGENET_STDDEV_RGB, used by the stem layer it adds
# for weights="imagenet" only
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)


def backbone(cfg_or_name: Config | str) -> Backbone:
    """Returns the registry entry for ``cfg.backbone`` (or a backbone name)."""
    name = cfg_or_name if isinstance(cfg_or_name, str) else cfg_or_name.backbone
    try:
        return BACKBONES[name]
    except KeyError:
        raise LearnerError(
            f"Unknown backbone {name!r}; use one of: {', '.join(BACKBONES)} (TL_BACKBONE). "
            + setting_hint("TL_BACKBONE", "mobilenet_v2")
        ) from None


WEIGHTS_HELP = (
    "Could not download the ImageNet weights for {name}: {error}\n"
    "What you can do:\n"
    "  - download the weights file elsewhere and pass its path: TL_WEIGHTS=/path/to/file.h5\n"
    "    (or put it in ~/.keras/models/ under the name Keras asks for above);\n"
    "  - run without pretrained weights (the code runs, accuracy will be poor): TL_WEIGHTS=none;\n"
    "  - check your network connection and try again.\n" + setting_hint("TL_WEIGHTS", "none")
)


def build_base(cfg: Config) -> keras.Model:
    """Returns the pretrained base for ``cfg``: no classifier on top, weights per ``TL_WEIGHTS``.

    Introduced in 04. From a file, an EfficientNet gets the layers ``imagenet`` adds
    (:func:`_like_imagenet`).
    """
    entry = backbone(cfg)
    kwargs = dict(input_shape=cfg.image_shape, include_top=False, name=BASE_NAME)
    if entry.has_alpha:
        kwargs["alpha"] = cfg.alpha
    weights = None if cfg.weights == "none" else cfg.weights
    try:
        if entry.imagenet_only_stem and weights not in (None, "imagenet"):
            base_model = _like_imagenet(entry.constructor(weights=None, **kwargs))
            base_model.load_weights(weights)
        else:
            base_model = entry.constructor(weights=weights, **kwargs)
    except ValueError as error:
        if weights in (None, "imagenet"):
            raise LearnerError(
                f"{entry.name} cannot be built with these settings: {error}"
            ) from error
        raise WeightsError(
            f"The weights file {weights} does not fit {entry.name} (alpha={cfg.alpha}, "
            f"{cfg.image_size}x{cfg.image_size}): {str(error).splitlines()[0][:200]}\n"
            "Pass the file made for this backbone and width (TL_BACKBONE, TL_ALPHA), "
            "a 'no_top' file, or TL_WEIGHTS=imagenet. " + setting_hint("TL_WEIGHTS", "imagenet")
        ) from error
    except Exception as error:  # no network, host down, truncated download ...
        if weights != "imagenet":
            raise
        message = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
        raise WeightsError(WEIGHTS_HELP.format(name=entry.name, error=message)) from error
    return base_model


def _like_imagenet(efficientnet: keras.Model) -> keras.Model:
    """Returns a copy of an EfficientNet built with ``weights=None``, with the imagenet stem added.

    For ``weights="imagenet"`` only, Keras adds ``Rescaling(1 / sqrt(stddev))`` after the stem's
    ``Normalization`` (which divides by the variance). Without it, a file's weights get inputs
    about 2x too large, silently.
    """
    added = []

    def call(layer, *args, **kwargs):
        outputs = layer(*args, **kwargs)
        if isinstance(layer, keras.layers.Normalization) and not added:
            added.append(keras.layers.Rescaling([1 / math.sqrt(s) for s in IMAGENET_STDDEV_RGB]))
            return added[0](outputs)
        return outputs

    model = keras.models.clone_model(efficientnet, call_function=call)
    assert len(added) == 1, "no Normalization layer in the EfficientNet stem"
    model.name = efficientnet.name
    return model


def output_units(class_count: int) -> int:
    """Returns how many logits a classifier of ``class_count`` classes outputs (introduced in 04):
    one for two classes (positive for class 1), else one per class. The one place that decides."""
    if class_count < 2:
        raise LearnerError(
            f"{class_count} class: a classifier needs at least two classes (two or more class "
            "folders with images)."
        )
    return 1 if class_count == 2 else class_count


def build_classifier(
    cfg: Config,
    base_model: keras.Model,
    augmentation: keras.layers.Layer | None = None,
    class_count: int = 2,
) -> keras.Model:
    """Returns the classifier of 04: augmentation, scaling, the base in inference mode, logits.

    The same code stands, step by step, in 04.
    """
    inputs = keras.Input(shape=cfg.image_shape, name="image")
    x = inputs if augmentation is None else augmentation(inputs)
    x = backbone(cfg).scaling()(x)
    x = base_model(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    units = output_units(class_count)
    outputs = keras.layers.Dense(units, dtype="float32", name="logit")(x)  # no sigmoid: logits
    return keras.Model(inputs, outputs, name="classifier")


def feature_extractor(cfg: Config, base_model: keras.Model) -> keras.Model:
    """Returns scaling, the base and pooling as one model: pixels in, features out (04)."""
    return keras.Sequential(
        [backbone(cfg).scaling(), base_model, keras.layers.GlobalAveragePooling2D()],
        name="feature_extractor",
    )


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Returns every BatchNormalization layer inside ``model``, nested models included."""
    found = []
    for layer in model.layers:  # public API only: nested models are walked through .layers
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += batchnorm_layers(layer)
    return found


def _copy(variable) -> np.ndarray:
    return np.array(keras.ops.convert_to_numpy(variable), copy=True)


def batchnorm_statistics(model: keras.Model) -> list[np.ndarray]:
    """Returns copies of every BatchNormalization moving mean and variance in ``model``."""
    return [
        _copy(variable)
        for layer in batchnorm_layers(model)
        for variable in (layer.moving_mean, layer.moving_variance)
    ]


def weights_snapshot(model: keras.Model, *, trainable_only: bool = False) -> list[np.ndarray]:
    """Returns copies of ``model``'s weights (or its trainable ones), to compare around ``fit``."""
    return [_copy(w) for w in (model.trainable_weights if trainable_only else model.weights)]


def count_changed(before: list[np.ndarray], after: list[np.ndarray]) -> int:
    """Returns how many arrays differ between two snapshots (compared exactly, element-wise)."""
    assert len(before) == len(after), "snapshots of different models"
    return sum(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def _split(cfg: Config) -> str:
    """Returns how the images are split into train / validation / test, in a few words."""
    from helpers import data

    if cfg.data == "tfds":
        return "tfds " + " ".join(data.TFDS_SPLITS[cfg.profile])
    test = "a test folder" if cfg.test_data else f"test {data.TEST_FRACTION}"
    return f"validation {data.VALIDATION_FRACTION}, {test}"


# The TL_* variable behind each recorded setting, to say which one differs.
SETTING_VARIABLES = {
    "backbone": "TL_BACKBONE",
    "alpha": "TL_ALPHA",
    "weights": "TL_WEIGHTS",
    "image_size": "TL_IMAGE_SIZE",
    "data": "TL_DATA",
    "test_data": "TL_TEST_DATA",
    "split": "TL_DATA / TL_TEST_DATA / TL_PROFILE",
    "seed": "TL_SEED",
    "batch_size": "TL_BATCH_SIZE",
    "epochs": "TL_EPOCHS",
    "fine_tune_epochs": "TL_FINE_TUNE_EPOCHS",
    "unfreeze": "TL_UNFREEZE",
    "stored_views": "TL_STORED_VIEWS",
}


def _settings(cfg: Config, name: str = "") -> dict:
    """Returns every setting that changes a saved model's weights (a later notebook must match).

    Fine-tuning's settings count for 05's model only, so changing them keeps 04's usable.
    """
    settings = {
        "backbone": cfg.backbone,
        "alpha": cfg.alpha,
        "weights": cfg.weights,
        "image_size": cfg.image_size,
        "data": cfg.data,
        "test_data": cfg.test_data,
        "split": _split(cfg),
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "epochs": cfg.epochs,
    }
    if name == "fine_tuned_model":
        settings.update(
            fine_tune_epochs=cfg.fine_tune_epochs,
            unfreeze=cfg.unfreeze,
            stored_views=cfg.stored_views,
        )
    return settings


def _fingerprint(path: Path) -> dict:
    """Returns the size and SHA-256 of a file: the sidecar names the model it belongs to."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def save(model: keras.Model, cfg: Config, name: str, class_names: list[str] | None = None) -> Path:
    """Returns the path of ``model`` saved as ``<output_dir>/<name>.keras`` (introduced in 04).

    A ``<name>.json`` beside it records its settings and class names. Both are written
    atomically, the model first, then the sidecar with the model's SHA-256: an interrupted save
    leaves the previous pair, or a mismatched one that :func:`load_saved` treats as absent.
    """
    from helpers import data

    path = Path(cfg.output_dir) / f"{name}.keras"
    with files.atomic_path(path) as temporary:
        model.save(temporary)
    sidecar = {
        **_settings(cfg, name),
        "class_names": list(class_names or data.class_names(cfg)),
        "model_file": _fingerprint(path),
    }
    files.atomic_write_json(path.with_suffix(".json"), sidecar)
    return path


def check_pair(path: Path) -> tuple[dict | None, str]:
    """Returns ``(sidecar, "")`` for a saved ``.keras`` file and its matching ``.json`` sidecar,
    else ``(None, problem)`` naming the file missing, damaged or not matching (05)."""
    settings_path = path.with_suffix(".json")
    if not path.is_file():
        return None, f"no {path.name} in {path.parent}"
    damage = keras_file_damage(path)
    if damage:
        return None, damage
    if not settings_path.is_file():
        return None, f"{path} has no settings file beside it ({settings_path.name} is missing)"
    try:
        sidecar = files.read_json(settings_path, "")
    except files.DamagedFileError:
        return None, f"{settings_path} is damaged (not valid JSON)"
    if not isinstance(sidecar, dict):
        return None, f"{settings_path} is damaged (not a JSON object)"
    recorded = sidecar.get("model_file")
    if recorded is not None and recorded != _fingerprint(path):
        return None, (
            f"{path} does not match its settings file {settings_path.name} (a save was "
            "interrupted, or one of the two files was replaced)"
        )
    return sidecar, ""


def keras_file_damage(path: Path) -> str:
    """Returns why ``path`` is not a complete ``.keras`` file (a zip archive), or "" (05).

    Keras reports a truncated or empty ``.keras`` file as "File not found".
    """
    import zipfile

    size = path.stat().st_size
    if size == 0:
        return f"{path} is empty (0 bytes: a save was interrupted)"
    if not zipfile.is_zipfile(path):
        return f"{path} is damaged ({size:,} bytes, not a complete .keras archive)"
    return ""


def differences(saved: dict, expected: dict) -> list[str]:
    """Returns one ``TL_X: saved -> now`` phrase per setting that differs (introduced in 05)."""
    return [
        f"{SETTING_VARIABLES.get(key, key)} was {saved.get(key, 'not recorded')!r}, now {value!r}"
        for key, value in expected.items()
        if saved.get(key, object()) != value
    ]


def class_mismatch(sidecar: dict, cfg: Config) -> str:
    """Returns how the classes a model was saved for differ from ``cfg.data``'s now, or "" (05).

    A folder can gain or lose class folders under the same ``TL_DATA``.
    """
    from helpers import data

    if data.tfds_name(cfg) is not None:  # a TFDS data set's classes are fixed by its version
        return ""
    saved, now = sidecar.get("class_names"), data.class_names(cfg)
    if saved is None or list(saved) == now:
        return ""
    return f"was trained for {len(saved)} classes {saved}; the data now has {len(now)}: {now}"


def load_saved(cfg: Config, name: str) -> tuple[keras.Model | None, str]:
    """Returns ``(model, why)``: a model a notebook saved (uncompiled), or None and why not (05).

    A model saved with other settings or classes, or a missing, damaged or mismatched file, is
    not used, and ``why`` says which: changing ``TL_*`` between notebooks never mixes two runs.
    """
    path = Path(cfg.output_dir) / f"{name}.keras"
    notebook = {"transfer_model": "04", "fine_tuned_model": "05"}.get(name, "the notebook")
    retrain = f"run {notebook} again to save a new one, or let this notebook train it"
    sidecar, problem = check_pair(path)
    if sidecar is None:
        if not path.is_file():
            return None, f"{problem} (run {notebook} first to reuse its model)"
        return None, f"{problem}; not used ({retrain})"
    expected = _settings(cfg, name)
    differ = differences(sidecar, expected)
    if differ:
        return None, f"{path} was trained with other settings ({'; '.join(differ)})"
    mismatch = class_mismatch(sidecar, cfg)
    if mismatch:
        return None, f"{path} {mismatch}; not used"
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # truncated, not a zip, saved by another Keras ...
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        return None, f"{path} is damaged and cannot be loaded ({first}); not used ({retrain})"
    return model, f"loaded {path}"


def for_inference(model: keras.Model) -> keras.Model:
    """Returns the classifier without its augmentation layers, sharing the trained weights (05).

    Keras 3's random layers augment whenever called without ``training=False``, as ``model(x)``
    and an exported model call them.
    """
    from helpers import augment

    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    x = inputs
    for layer in model.layers[1:]:  # layers[0] is the input
        if layer.name == augment.NAME:
            continue
        x = layer(x, training=False) if layer.name == BASE_NAME else layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_inference")


# How each backbone's layer names say which block they belong to (the group is the block's name).
# Layers outside every block are the stem (before the first block: stays frozen unless "all") or
# the top (after the last block: always trained) or, in Xception, a block's residual branch.
_BLOCK_PATTERNS = (
    re.compile(r"^(block\d+[a-z])_"),  # EfficientNet: block1a, block2a, block2b ... block7a
    re.compile(r"^(block\d+)_"),  # Xception: block1 ... block14
    re.compile(r"^(block_\d+)_"),  # MobileNetV2: block_1 ... block_16
    re.compile(r"^conv_(?:dw|pw|pad)_(\d+)(?:_|$)"),  # MobileNet v1: conv_dw_N + conv_pw_N
)


def base_blocks(base_model: keras.Model) -> list[str]:
    """Returns the names of the base's blocks, bottom to top (e.g. ``block1`` ... ``block14``),
    read from its layer names (05); an empty list for a base without named blocks."""
    names = [layer.name for layer in base_model.layers]
    for pattern in _BLOCK_PATTERNS:
        blocks: list[str] = []
        for name in names:
            match = pattern.match(name)
            if match and match.group(1) not in blocks:
                blocks.append(match.group(1))
        if blocks:
            return blocks
    return []


def _block_of(name: str) -> str | None:
    for pattern in _BLOCK_PATTERNS:
        match = pattern.match(name)
        if match:
            return match.group(1)
    return None


def first_trainable_index(base_model: keras.Model, unfreeze: str | float | int) -> int:
    """Returns the index in ``base_model.layers`` of the first layer fine-tuning trains (05).

    ``unfreeze`` (``TL_UNFREEZE``): ``"all"`` gives 0; a fraction keeps that share of the top
    layers (at least one); a whole number N gives the first layer of the N-th block from the top.
    """
    layers = base_model.layers
    if unfreeze == "all":
        return 0
    if isinstance(unfreeze, float):
        if not 0 < unfreeze < 1:
            raise LearnerError(f"unfreeze={unfreeze!r}: a fraction must lie between 0 and 1.")
        trained = max(1, round(unfreeze * len(layers)))
        return len(layers) - trained
    if isinstance(unfreeze, int) and not isinstance(unfreeze, bool) and unfreeze >= 1:
        blocks = base_blocks(base_model)
        if not blocks:
            raise LearnerError(
                f"TL_UNFREEZE={unfreeze} counts blocks, but this base ({base_model.name}) has no "
                "named blocks; use a fraction such as 0.3, or all. "
                + setting_hint("TL_UNFREEZE", "0.3")
            )
        if unfreeze > len(blocks):
            raise LearnerError(
                f"TL_UNFREEZE={unfreeze} asks for the top {unfreeze} blocks, but this base "
                f"({base_model.name}) has only {len(blocks)}. Use a number from 1 to "
                f"{len(blocks)}, a fraction such as 0.3, or all. "
                + setting_hint("TL_UNFREEZE", "2")
            )
        first_kept = blocks[len(blocks) - unfreeze]
        return next(i for i, layer in enumerate(layers) if _block_of(layer.name) == first_kept)
    raise LearnerError(
        f"unfreeze={unfreeze!r}: use 'all', a fraction in (0, 1) or a whole number of blocks >= 1."
    )


# The largest side 04's convnet from scratch sees: it has no pretrained input size to respect.
# Measured with benchmarks/claims.py (5 folds of the real photos, 1,600 training and 200 test
# each, 16 epochs, 2 CPU cores): at 64 px cats/dogs 0.60-0.765 and flowers 0.565-0.64 in 12-14 s
# (two runs: the random start moves a fold by up to 0.1);
# at 112 px 0.66-0.73 and 0.57-0.645 in 30-43 s (8 epochs at 224 px: 0.62-0.71 in 40-47 s).
SCRATCH_SIZE = 64


def scratch_size(cfg: Config) -> int:
    """Returns the side of the images 04's convnet from scratch sees: ``SCRATCH_SIZE`` at most."""
    return min(cfg.image_size, SCRATCH_SIZE)


def from_scratch(cfg: Config, class_count: int = 2) -> keras.Model:
    """Returns a small convnet with random weights: 04's baseline without pretraining.

    0-255 images of any size in (resized to ``SCRATCH_SIZE`` when ``cfg.image_size`` is larger;
    04 gives it its photos at ``scratch_size(cfg)``), logits out, the transfer model's head.
    """
    from helpers import augment

    inputs = keras.Input(shape=(None, None, 3), name="image")
    x = inputs
    if cfg.image_size > SCRATCH_SIZE:  # a twelfth of the pixels of 224 px
        x = keras.layers.Resizing(SCRATCH_SIZE, SCRATCH_SIZE, name="resize")(x)
    x = augment.build()(x)
    x = keras.layers.Rescaling(1 / 255, name="scale_to_0_1")(x)
    # A strided first convolution: at full resolution, convolutions cost most of the time.
    # No BatchNormalization: after the one or two epochs a short budget allows, its moving
    # statistics are still near their initial values and inference would be broken by them.
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv0")(x)
    for index, filters in enumerate((32, 64, 128, 128), start=1):
        x = keras.layers.MaxPooling2D(name=f"pool{index - 1}")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{index}")(
            x
        )
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    outputs = keras.layers.Dense(output_units(class_count), dtype="float32", name="logit")(x)
    return keras.Model(inputs, outputs, name="from_scratch")


def unfreeze(base_model: keras.Model, how: str | float | int) -> int:
    """Returns the cut after unfreezing ``base_model`` 05's way for ``how`` (``TL_UNFREEZE``):
    trainable from the cut up, every BatchNormalization layer frozen. 05 writes these steps out."""
    base_model.trainable = True
    cut = first_trainable_index(base_model, how)
    for layer in base_model.layers[:cut]:
        layer.trainable = False
    for layer in batchnorm_layers(base_model):
        layer.trainable = False
    return cut


def split_base(base_model: keras.Model, cut: int) -> tuple[keras.Model, keras.Model]:
    """Returns ``(bottom, top)``: the base cut below ``base_model.layers[cut]``, in two models.

    Introduced in 05. ``bottom`` outputs every tensor the layers from ``cut`` up read from below
    (two when a cut splits a residual block); both share the base's weights, and
    ``top(bottom(x))`` equals ``base_model(x)``.
    """
    layers = base_model.layers
    if not 0 < cut < len(layers):
        raise LearnerError(
            f"cut={cut}: there is no frozen bottom to store below layer {cut} "
            f"(use 1 to {len(layers) - 1}; TL_UNFREEZE=all trains the whole base)."
        )
    # Public API only: each layer's symbolic ``input`` and ``output`` (every layer of a
    # pretrained base is called once, so each has one of each).
    below = [t for layer in layers[:cut] for t in keras.tree.flatten(layer.output)]
    crossing: list = []
    for layer in layers[cut:]:
        for tensor in keras.tree.flatten(layer.input):
            if any(tensor is t for t in below) and all(tensor is not t for t in crossing):
                crossing.append(tensor)
    bottom = keras.Model(base_model.input, crossing, name="bottom")
    top = keras.Model(crossing, base_model.output, name="top")
    return bottom, top


def top_classifier(model: keras.Model, top: keras.Model) -> keras.Model:
    """Returns the classifier from the stored activations up: ``top``, then ``model``'s head.

    Introduced in 05. Its layers are ``model``'s own: training it trains ``model``.
    """
    inputs = [
        keras.Input(tensor.shape[1:], name=f"stored_{i}") for i, tensor in enumerate(top.inputs)
    ]
    x = top(inputs if len(inputs) > 1 else inputs[0])
    for name in ("pool", "dropout", "logit"):
        x = model.get_layer(name)(x)
    return keras.Model(inputs, x, name=f"{model.name}_top")


def with_statistics_of(base_model: keras.Model, images) -> keras.Model:
    """Returns ``base_model`` with each BatchNormalization layer's statistics set from ``images``.

    Introduced in 06: a random base's statistics (0 and 1) do not fit its outputs, and its
    features shrink layer after layer. One training-mode pass with momentum 0 sets them.
    """
    layers = batchnorm_layers(base_model)
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    base_model(images, training=True)
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum
    return base_model
