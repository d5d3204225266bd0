"""The series' settings: one profile's defaults overridden by ``TL_*`` environment variables.

Introduced in every notebook's Setup cell (``cfg = config.load()``); the contract is in README.md.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from helpers.errors import LearnerError, setting_hint

# The TensorFlow/Keras ranges `make compat` (course_tools/compat.py) ran the notebooks with, in one
# place: pyproject.toml's dependencies say the same (a test checks) and the Setup cell's report
# warns outside them (version_warning). TEACHING.md has the table.
TESTED_VERSIONS = {"tensorflow": ">=2.20,<2.22", "keras": ">=3.13.2,<3.16"}

PROFILES = ("ci", "quick", "full")
BACKBONES = ("xception", "mobilenet_v2", "mobilenet", "efficientnet_b0")

# TL_UNFREEZE and TL_STORED_VIEWS of the quick profile, chosen with benchmarks/fine_tune_speed.py
# on 2,000 real photos (MobileNet 0.25, 224 px, 2 CPU cores, 10 epochs): the table in 05, "How much
# to unfreeze". Training the top 2 blocks on stored activations of each image and its mirror took
# 0.7 s an epoch against 10.0 s for the whole base (15x; 16 s against 107 s for 10 epochs, the
# storing pass included), at 0.943 test accuracy against 0.946 (means of 6 seeds); 4 views (with
# 2 rotated ones) took twice the time for 0.944.
QUICK_UNFREEZE = 2
QUICK_STORED_VIEWS = 2

# Starting points for each profile. Every value can be overridden by its TL_* variable.
_DEFAULTS: dict[str, dict[str, object]] = {
    # Offline, generated data, an untrained Xception at its smallest practical size: seconds a
    # notebook.
    "ci": dict(
        data="sample",
        backbone="xception",
        alpha=1.0,
        weights="none",
        image_size=75,
        batch_size=16,
        epochs=1,
        fine_tune_epochs=1,
        seed=1337,
        unfreeze=2,  # the top 2 blocks: the cheapest run that still exercises the cut
        stored_views=2,  # as quick: 05's stored-activations path runs in every test
        scratch_epochs=2,
    ),
    # A laptop CPU: real photos, a small pretrained base, a few epochs; minutes a notebook.
    "quick": dict(
        data="tfds",
        backbone="mobilenet_v2",
        alpha=1.0,
        weights="imagenet",
        image_size=160,
        batch_size=32,
        epochs=30,  # epochs of the head on cached features: a fraction of a second each
        fine_tune_epochs=10,  # EarlyStopping ends it sooner when validation stops improving
        seed=1337,
        unfreeze=QUICK_UNFREEZE,  # measured: benchmarks/fine_tune_speed.py
        stored_views=QUICK_STORED_VIEWS,
        # 04's baseline: about 1 s an epoch on 1,600 photos at 64 px (models.SCRATCH_SIZE); at
        # 112 px its validation accuracy on the real cat/dog split still rose at epoch 8 (0.65)
        # and levelled off from 12 (0.68-0.70)
        scratch_epochs=16,
    ),
    # A GPU (e.g. Colab): the seed recipe, Xception at 150x150 with 20 + 10 epochs.
    "full": dict(
        data="tfds",
        backbone="xception",
        alpha=1.0,
        weights="imagenet",
        image_size=150,
        batch_size=32,
        epochs=20,
        fine_tune_epochs=10,
        seed=1337,
        unfreeze="all",  # the seed recipe fine-tunes the whole base
        stored_views=0,  # nothing is frozen, so there is nothing to store
        scratch_epochs=20,
    ),
}

_INT_FIELDS = ("image_size", "batch_size", "epochs", "fine_tune_epochs", "seed", "stored_views")
_ZERO_ALLOWED = ("seed", "stored_views")
_MIN_IMAGE_SIZE = {"xception": 71, "mobilenet_v2": 32, "mobilenet": 32, "efficientnet_b0": 32}


class ConfigError(LearnerError, ValueError):
    """A TL_* setting has a value the series cannot use; the message says which and what to do."""


@dataclass(frozen=True)
class Config:
    """The settings every notebook reads (returned by :func:`load`)."""

    profile: str
    data: str  # "tfds", "tfds:NAME", "sample", "sample:N", or an absolute folder path
    test_data: str | None  # an absolute folder path, or None
    backbone: str
    alpha: float
    weights: str  # "imagenet", "none", or an absolute file path
    image_size: int
    batch_size: int
    epochs: int
    fine_tune_epochs: int
    seed: int
    output_dir: Path
    gpu: bool  # a GPU is visible: mixed precision, and XLA where every layer supports it
    # How much of the base 05 fine-tunes: "all", a fraction in (0, 1) of its layers (the top
    # ones), or a whole number N >= 1 of its top blocks. See parse_unfreeze and
    # models.first_trainable_index.
    unfreeze: str | float | int = "all"
    # How 05 trains the top when there is a frozen bottom (TL_UNFREEZE is not "all"): 0 runs every
    # image through the whole base each epoch; K >= 1 runs the bottom once over K views of each
    # training image (the image, its mirror, then random augmentations) and trains the top on
    # those stored activations. See train.store_views.
    stored_views: int = 0
    # Epochs of 04's from-scratch baseline (a profile default, no TL_* variable): enough for its
    # validation accuracy to leave chance level, so the comparison with transfer is fair.
    scratch_epochs: int = 2
    # The tf.distribute strategy 08 (and python -m helpers.distributed) trains with: "none",
    # "mirrored" (every local GPU), "mirrored:N" (N replicas: N logical CPU devices without
    # GPUs), "multiworker" (the cluster TF_CONFIG describes) or "tpu". See parse_distribute.
    distribute: str = "none"

    @property
    def jit_compile(self) -> bool | str:
        """Returns ``compile(jit_compile=...)``'s value: "auto" on a GPU, False on a CPU.

        "auto" uses XLA only where every layer supports it: the head on cached features, not
        models holding ``RandomRotation``. On a CPU it buys little.
        """
        return "auto" if self.gpu else False

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Returns the model's input shape, ``(image_size, image_size, 3)``."""
        return (self.image_size, self.image_size, 3)

    def describe(self) -> str:
        """Returns the settings as aligned ``name = value`` lines, for the Setup cell."""
        rows = dataclasses.asdict(self)
        width = max(map(len, rows))
        return "\n".join(f"{name:<{width}} = {value}" for name, value in rows.items())


# What "no GPU" means for each profile, in the Setup cell's words.
_CPU_NOTE = {
    "ci": "fine: the ci profile runs in seconds on any CPU",
    "quick": "fine: the quick profile is sized for a laptop CPU",
    "full": "the full profile takes hours on a CPU; the quick profile is sized for one",
}


def version_warning(versions: dict[str, str]) -> str | None:
    """Returns one line naming the ``{package: version}`` outside ``TESTED_VERSIONS``, or None."""
    from packaging.specifiers import SpecifierSet

    outside = [
        f"{name} {versions[name]} (tested: {spec})"
        for name, spec in TESTED_VERSIONS.items()
        if name in versions and not SpecifierSet(spec).contains(versions[name], prereleases=True)
    ]
    if not outside:
        return None
    return (
        f"Warning: {', '.join(outside)} is outside the versions this series is tested with; "
        "if a cell fails, install a tested version (pip install -e . in the project folder)."
    )


def environment_report(cfg: Config) -> str:
    """Returns the Setup cell's lines: versions (warned outside ``TESTED_VERSIONS``), the GPU,
    and the active profile's settings."""
    import sys

    import keras
    import tensorflow as tf

    in_colab = "google.colab" in sys.modules
    if cfg.gpu:
        device = "GPU: yes (mixed precision; XLA only for models without augmentation layers)"
    elif in_colab:
        device = "GPU: none. In Colab: Runtime > Change runtime type > T4 GPU, then run again."
    else:
        device = f"GPU: none ({_CPU_NOTE[cfg.profile]})"
        if cfg.profile == "full":
            device += "\n" + setting_hint("TL_PROFILE", "quick")
    warning = version_warning({"tensorflow": tf.__version__, "keras": keras.__version__})
    return "\n".join(
        [
            f"TensorFlow {tf.__version__}, Keras {keras.__version__} "
            f"(backend {keras.backend.backend()}), "
            f"Python {sys.version.split()[0]}",
            *([warning] if warning else []),
            device,
            f"Settings (profile {cfg.profile!r}; change them with TL_* environment variables):",
            cfg.describe(),
        ]
    )


def project_root(start: Path | None = None) -> Path | None:
    """Returns the folder holding this project's pyproject.toml above ``start`` (or None)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "helpers").is_dir():
            return folder
    return None


def resolve_path(value: str, variable: str, *, must_exist: bool = True) -> Path:
    """Returns ``value`` as an absolute path, tried from the current folder, then the project root
    (notebooks run in ``notebooks/``, the README's commands at the root)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [Path.cwd() / path]
        root = project_root()
        if root is not None and root != Path.cwd():
            candidates.append(root / path)
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    if not must_exist:  # something to create: anchor it at the project root when there is one
        return candidates[-1].resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"{variable}={value!r}: no such file or folder (looked at {tried}). "
        "Check the spelling, or give an absolute path."
    )


def gpu_available() -> bool:
    """Returns True when TensorFlow sees a GPU."""
    from helpers import quiet

    return bool(quiet.list_gpus())  # without the "failed call to cuInit" line when there is none


def _choose(variable: str, value: str, accepted: tuple[str, ...]) -> str:
    choice = value.strip().lower()
    if choice not in accepted:
        raise ConfigError(
            f"{variable}={value!r} is not a known value; use one of: {', '.join(accepted)}."
        )
    return choice


UNFREEZE_ACCEPTED = (
    "all (the whole base), a fraction between 0 and 1 (that top share of the base's layers, "
    "e.g. 0.3), or a whole number N of 1 or more (the top N blocks of the base, e.g. 2)"
)


def parse_unfreeze(raw: str) -> str | float | int:
    """Returns ``TL_UNFREEZE``'s value: "all", a fraction in (0, 1), or a block count >= 1 (05)."""
    value = raw.strip().lower()
    if value == "all":
        return "all"
    problem = None
    try:
        number = int(value)
    except ValueError:
        try:
            fraction = float(value)
        except ValueError:
            problem = "is neither all nor a number"
        else:
            if 0 < fraction < 1:
                return fraction
            problem = "is not a fraction between 0 and 1 (exclusive), nor a whole number"
    else:
        if number >= 1:
            return number
        problem = "is too small: fine-tuning needs at least 1 block"
    raise ConfigError(
        f"TL_UNFREEZE={raw!r} {problem}; use {UNFREEZE_ACCEPTED}. "
        + setting_hint("TL_UNFREEZE", "all")
    )


SAMPLE_MAX_CLASSES = 10  # the generated sample draws each class around its own colour
_TFDS_NAME = re.compile(r"[a-z][a-z0-9_]*(/[A-Za-z0-9_.+-]+)?(:[0-9.*]+)?")
DATA_ACCEPTED = (
    "tfds (cats_vs_dogs), tfds:NAME (a TFDS image classification data set, e.g. "
    "tfds:tf_flowers), sample or sample:N (the generated offline set with N classes, "
    f"2 to {SAMPLE_MAX_CLASSES}), or a path to a folder with one subfolder per class "
    "(or train/ and test/ subfolders holding the same class folders)"
)


def parse_data(raw: str) -> str:
    """Returns ``TL_DATA``'s value: "tfds", "tfds:NAME", "sample", "sample:N" (N > 2) or an
    absolute folder path (02)."""
    value = raw.strip()
    kind, colon, rest = value.partition(":")
    kind = kind.strip().lower()
    if kind == "tfds" and not colon:
        return "tfds"
    if kind == "sample" and not colon:
        return "sample"
    if kind == "sample":
        try:
            classes = int(rest.strip())
        except ValueError:
            classes = None
        if classes is None or not 2 <= classes <= SAMPLE_MAX_CLASSES:
            raise ConfigError(
                f"TL_DATA={raw!r}: the generated sample has 2 to {SAMPLE_MAX_CLASSES} classes; "
                "use e.g. TL_DATA=sample:3 (or TL_DATA=sample for cat and dog)."
            )
        return "sample" if classes == 2 else f"sample:{classes}"
    if kind == "tfds":
        name = rest.strip()
        if name == "cats_vs_dogs":
            return "tfds"
        if not _TFDS_NAME.fullmatch(name):
            raise ConfigError(
                f"TL_DATA={raw!r}: {name!r} is not a TFDS data set name (lower-case letters, "
                "digits and _, e.g. TL_DATA=tfds:tf_flowers, tfds:oxford_iiit_pet, "
                "tfds:rock_paper_scissors)."
            )
        return f"tfds:{name}"
    if any(sep in value for sep in ("/", "\\", "~")) or Path(value).exists():
        folder = resolve_path(value, "TL_DATA")
        if not folder.is_dir():
            raise ConfigError(
                f"TL_DATA={raw!r} is a file; give a folder with one "
                "subfolder per class (e.g. cat/ and dog/)."
            )
        return str(folder)
    raise ConfigError(
        f"TL_DATA={raw!r} is neither a data source nor an existing folder; use {DATA_ACCEPTED}."
    )


DISTRIBUTE_ACCEPTED = (
    "none (one device), mirrored (every GPU of this machine), mirrored:N (N replicas, e.g. "
    "mirrored:2: N logical CPU devices when there is no GPU, for practice), multiworker (several "
    "machines, from TF_CONFIG) or tpu"
)


def parse_distribute(raw: str) -> str:
    """Returns ``TL_DISTRIBUTE``'s value: "none", "mirrored", "mirrored:N", "multiworker", "tpu"."""
    value = raw.strip().lower().replace(" ", "")
    if value in ("none", "mirrored", "multiworker", "tpu"):
        return value
    problem = "is not a known strategy"
    if value.startswith("mirrored:"):
        count = value.split(":", 1)[1]
        if count.isdigit() and int(count) >= 1:
            return f"mirrored:{int(count)}"
        problem = "needs a whole number of replicas of 1 or more after mirrored:"
    raise ConfigError(f"TL_DISTRIBUTE={raw!r} {problem}; use {DISTRIBUTE_ACCEPTED}.")


def gpu_count() -> int:
    """Returns how many GPUs TensorFlow sees (without the ``cuInit`` line when there is none)."""
    from helpers import quiet

    return len(quiet.list_gpus())


# A value to show in the "how to change it" sentence each ConfigError ends with.
_EXAMPLES = {
    "TL_PROFILE": "quick",
    "TL_DATA": "sample",
    "TL_TEST_DATA": "/path/to/test_photos",
    "TL_BACKBONE": "mobilenet_v2",
    "TL_ALPHA": "1.0",
    "TL_WEIGHTS": "none",
    "TL_IMAGE_SIZE": "160",
    "TL_BATCH_SIZE": "32",
    "TL_EPOCHS": "5",
    "TL_FINE_TUNE_EPOCHS": "5",
    "TL_SEED": "1337",
    "TL_OUTPUT_DIR": "runs/mine",
    "TL_STORED_VIEWS": "0",
    "TL_DISTRIBUTE": "none",
}


def load(
    env: Mapping[str, str] | None = None, *, gpu: bool | None = None, writable: bool = True
) -> Config:
    """Returns the settings: a profile's defaults, overridden by the ``TL_*`` variables in ``env``.

    Introduced in 01. ``env`` (default ``os.environ``) is read at each call, so ``%env`` then
    Setup again works. A bad value raises :class:`ConfigError` saying how to change it.
    ``writable=False``: the output folder is only read (``python -m helpers.predict``).
    """
    try:
        cfg = _load(os.environ if env is None else env, gpu)
        if writable:
            check_output_dir(cfg.output_dir)
        return cfg
    except ConfigError as error:
        named = re.match(r"(TL_\w+)=", str(error))
        if named is None or "%env" in str(error):
            raise
        variable = named.group(1)
        hint = setting_hint(variable, _EXAMPLES.get(variable, "<value>"))
        raise ConfigError(f"{error} {hint}") from None


METRICS_ADVICE = (
    "A fresh metrics.json is started; run the earlier notebooks again to fill in their results."
)


def check_output_dir(output_dir: Path) -> None:
    """Raises :class:`ConfigError` unless ``output_dir`` can be created and written to, and
    sets a damaged ``metrics.json`` aside: in Setup, before any work."""
    import tempfile

    from helpers import files

    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output_dir):
            pass
    except OSError as error:
        raise ConfigError(
            f"TL_OUTPUT_DIR={str(output_dir)!r}: the output folder cannot be written to "
            f"({error.strerror or type(error).__name__}); models, metrics and figures go there. "
            "Choose a folder you can write to (e.g. one in your home folder), or fix its "
            "permissions."
        ) from None
    files.read_json_or_set_aside(output_dir / "metrics.json", METRICS_ADVICE)


def _load(env: Mapping[str, str], gpu: bool | None) -> Config:
    gpu = gpu_available() if gpu is None else gpu

    profile_value = env.get("TL_PROFILE", "").strip()
    if profile_value:
        profile = _choose("TL_PROFILE", profile_value, PROFILES)
    else:
        profile = "full" if gpu else "quick"
    settings = dict(_DEFAULTS[profile])

    for name in _INT_FIELDS:
        variable = f"TL_{name.upper()}"
        raw = env.get(variable, "").strip()
        if not raw:
            continue
        try:
            number = int(raw)
        except ValueError:
            raise ConfigError(
                f"{variable}={raw!r} is not a whole number; use e.g. {variable}="
                + f"{settings[name]}."
            ) from None
        smallest = 0 if name in _ZERO_ALLOWED else 1
        if number < smallest:
            raise ConfigError(f"{variable}={raw!r} is too small; use {smallest} or more.")
        settings[name] = number

    raw_alpha = env.get("TL_ALPHA", "").strip()
    if raw_alpha:
        try:
            settings["alpha"] = float(raw_alpha)
        except ValueError:
            raise ConfigError(
                f"TL_ALPHA={raw_alpha!r} is not a number; use e.g. TL_ALPHA=0.25 or TL_ALPHA=1.0."
            ) from None
        if not 0 < settings["alpha"] <= 1.4:
            raise ConfigError(
                f"TL_ALPHA={raw_alpha!r} is out of range; MobileNets accept "
                "0.25, 0.35, 0.5, 0.75, 1.0 (and 1.3, 1.4 for v2)."
            )

    backbone_value = env.get("TL_BACKBONE", "").strip()
    if backbone_value:
        settings["backbone"] = _choose("TL_BACKBONE", backbone_value, BACKBONES)

    data_value = env.get("TL_DATA", "").strip()
    if data_value:
        settings["data"] = parse_data(data_value)

    test_value = env.get("TL_TEST_DATA", "").strip()
    test_data = None
    if test_value:
        test_folder = resolve_path(test_value, "TL_TEST_DATA")
        if not test_folder.is_dir():
            raise ConfigError(
                f"TL_TEST_DATA={test_value!r} is a file; give a folder with one "
                "subfolder per class."
            )
        test_data = str(test_folder)

    weights_value = env.get("TL_WEIGHTS", "").strip()
    if weights_value:
        if weights_value.lower() in ("imagenet", "none"):
            settings["weights"] = weights_value.lower()
        else:
            weights_file = resolve_path(weights_value, "TL_WEIGHTS")
            if not weights_file.is_file():
                raise ConfigError(
                    f"TL_WEIGHTS={weights_value!r} is a folder; give imagenet, "
                    "none, or the path of a weights file (.h5)."
                )
            settings["weights"] = str(weights_file)

    unfreeze_value = env.get("TL_UNFREEZE", "").strip()
    if unfreeze_value:
        settings["unfreeze"] = parse_unfreeze(unfreeze_value)

    distribute_value = env.get("TL_DISTRIBUTE", "").strip()
    if distribute_value:
        settings["distribute"] = parse_distribute(distribute_value)
    else:  # several GPUs: use them all; one device otherwise
        settings["distribute"] = "mirrored" if gpu and gpu_count() > 1 else "none"

    minimum = _MIN_IMAGE_SIZE[settings["backbone"]]
    if settings["image_size"] < minimum:
        raise ConfigError(
            f"TL_IMAGE_SIZE={settings['image_size']} is too small for "
            f"{settings['backbone']}; use at least {minimum}."
        )

    output_value = env.get("TL_OUTPUT_DIR", "").strip()
    if output_value:
        output_dir = resolve_path(output_value, "TL_OUTPUT_DIR", must_exist=False)
    else:
        output_dir = (project_root() or Path.cwd()) / "runs" / profile

    return Config(
        profile=profile,
        test_data=test_data,
        output_dir=output_dir,
        gpu=gpu,
        **settings,
    )
