"""Loading images (introduced in 02): TFDS, your own folder, or the offline sample.

:func:`load` is :func:`load_raw` then :func:`prepare`, so 02 can show each step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, UnidentifiedImageError

from helpers import files, progress, sample
from helpers.config import Config
from helpers.errors import LearnerError, setting_hint

# TFDS cats_vs_dogs has one split, "train" (23,262 images). The seed recipe takes 40/10/10 of it;
# the smaller profiles take less so a laptop CPU finishes in minutes (same shape, fewer images).
TFDS_SPLITS = {
    "full": ("train[:40%]", "train[40%:50%]", "train[50%:60%]"),
    "quick": ("train[:10%]", "train[40%:45%]", "train[50%:55%]"),
    "ci": ("train[:1%]", "train[40%:41%]", "train[50%:51%]"),
}
VALIDATION_FRACTION = 0.1  # of a folder, per class
TEST_FRACTION = 0.1  # of a folder, per class, unless TL_TEST_DATA gives a test folder
# What a split gets of a folder when no folder of its own gives it (see split_folders).
SPLIT_FRACTIONS = {"validation": VALIDATION_FRACTION, "test": TEST_FRACTION}
# Subfolders that name splits rather than classes (the Kaggle layout), and the split each gives.
SPLIT_FOLDER_NAMES = {
    "train": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "test": "test",
}
IMBALANCE_RATIO = 3  # 02 warns when the largest class has more than this times the smallest
SHUFFLE_BUFFER = 1000
# What TensorFlow 2.21's decode_image(channels=3) decodes correctly itself, by (format, Pillow
# mode); measured on every pair listed, and 02 shows some. Everything else Pillow can read is
# converted to a PNG copy first, because TensorFlow refuses it (TIFF, ICO, 16-bit BMP, WebP with
# alpha or animation) or decodes it wrongly (an 8-bit palette BMP comes out as grey indices).
# BMP is converted whatever its mode: Pillow reports 16- and 24-bit BMPs both as "RGB".
_TF_READY = {
    ("JPEG", "RGB"),
    ("JPEG", "L"),
    ("JPEG", "CMYK"),  # TF applies Adobe's inverted CMYK correctly
    ("PNG", "RGB"),
    ("PNG", "L"),
    ("PNG", "RGBA"),
    ("PNG", "P"),
    ("PNG", "LA"),
    ("PNG", "1"),
    ("PNG", "I;16"),  # 16-bit grey: TF scales it to 8 bits; Pillow's convert("RGB") would clip
    ("GIF", "P"),  # the first frame, as decode_image(expand_animations=False) returns
    ("WEBP", "RGB"),
}


class DataError(LearnerError):
    """The data cannot be loaded as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Skipped:
    """A file left out of the data set, and why."""

    path: Path
    reason: str


@dataclass
class FolderScan:
    """What :func:`scan_folder` found: the usable images, their labels, and what was skipped."""

    root: Path
    class_names: list[str]
    files: list[Path]  # what the pipeline reads (a converted copy for odd formats)
    labels: list[int]
    skipped: list[Skipped] = field(default_factory=list)
    converted: list[Path] = field(default_factory=list)  # originals that were converted

    def counts(self) -> dict[str, int]:
        """Returns the number of usable images in each class."""
        found = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(n) for name, n in zip(self.class_names, found, strict=True)}

    def report(self, limit: int = 10) -> str:
        """Returns a few lines for people: images found per class, and which files were skipped."""
        lines = [
            f"{self.root}: {len(self.files)} usable images "
            + ", ".join(f"{name!r}: {n}" for name, n in self.counts().items())
        ]
        if self.converted:
            lines.append(
                f"  {len(self.converted)} converted to RGB PNG (a format TensorFlow refuses "
                "or decodes wrongly: TIFF, BMP, WebP with alpha ...); the originals are untouched"
            )
        if self.skipped:
            lines.append(f"  {len(self.skipped)} skipped (not usable images):")
            for item in self.skipped[:limit]:
                lines.append(f"    {item.path.relative_to(self.root)}: {item.reason}")
            if len(self.skipped) > limit:
                lines.append(f"    ... and {len(self.skipped) - limit} more")
        return "\n".join(lines)


@dataclass
class Splits:
    """The three data sets of a run, with what a learner needs to know about them."""

    train: object  # tf.data.Dataset
    validation: object
    test: object
    class_names: list[str]
    sizes: dict[str, int]  # images in each split
    source: str  # a sentence saying where the images came from
    scans: list[FolderScan] = field(default_factory=list)  # for folders: what was checked
    test_files: list[Path] | None = None  # for folders: each test image's file, in test order (06)
    # For folders: images of each class in each split, {"train": {"cat": 29, ...}, ...}; for TFDS
    # empty until count_classes() counts them.
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    # For folders: the splits carved from the first folder scanned, by SPLIT_FRACTIONS (the others
    # came from folders of their own: TL_TEST_DATA, or test/ and validation/ beside train/).
    carved: tuple[str, ...] = ()
    # For folders: each split's files and labels, {"train": ([Path, ...], [0, ...]), ...}
    files: dict[str, tuple[list[Path], list[int]]] = field(default_factory=dict)

    @property
    def skipped(self) -> list[Skipped]:
        """Returns every file skipped in every folder scanned."""
        return [item for scan in self.scans for item in scan.skipped]


def _check_image(path: Path | io.BytesIO) -> tuple[str | None, str | None]:
    """Returns (format, None) for a decodable image (file or bytes), (None, reason) otherwise."""
    try:
        in_memory = isinstance(path, io.BytesIO)
        if (path.getbuffer().nbytes if in_memory else path.stat().st_size) == 0:
            return None, "empty file"
        with Image.open(path) as image:
            image_format, mode = image.format, image.mode
            if image_format == "JPEG":
                image.draft("RGB", (64, 64))  # decode at reduced scale: fast, still reads it all
            image.load()
        return f"{image_format}/{mode}", None
    except UnidentifiedImageError:
        return None, "not an image"
    except Image.DecompressionBombError:  # not an OSError: it would stop the whole scan
        return None, "too large to decode safely (more than 2 x Image.MAX_IMAGE_PIXELS)"
    except (OSError, SyntaxError, ValueError) as error:  # truncated, corrupt, unreadable
        return None, f"cannot be decoded ({str(error).splitlines()[0][:80]})"


def checked_path() -> Path:
    """Returns the file that remembers which images passed :func:`scan_folder`'s check, by the
    SHA-1 of their bytes (never inside your folder)."""
    return sample.default_folder().parent / "tl_checked.json"


def _read_checked() -> dict[str, str]:
    """Returns {SHA-1 of a file's bytes: its "FORMAT/mode"} for images this Pillow decoded."""
    try:
        saved = json.loads(checked_path().read_text())
    except (OSError, ValueError):  # none yet, or damaged: check every file again
        return {}
    if not isinstance(saved, dict) or saved.get("pillow") != PIL.__version__:
        return {}
    checked = saved.get("checked")
    if not isinstance(checked, dict):
        return {}
    return {key: kind for key, kind in checked.items() if isinstance(kind, str) and "/" in kind}


def _check_file(path: Path, checked: dict[str, str]) -> tuple[str | None, str | None, str]:
    """Returns (format, reason, digest) for ``path``: decoded unless the same bytes passed."""
    try:
        content = path.read_bytes()
    except OSError as error:
        return None, f"cannot be read ({str(error).splitlines()[0][:80]})", ""
    digest = hashlib.sha1(content).hexdigest()
    if digest in checked:
        return checked[digest], None, digest
    return (*_check_image(io.BytesIO(content)), digest)


def converted_folder() -> Path:
    """Returns where converted copies of odd-format images are kept (never inside your folder)."""
    return sample.default_folder().parent / "tl_converted"


def _to_rgb(image: Image.Image) -> Image.Image:
    """Returns the first frame of ``image`` in RGB (how odd formats become 3 channels)."""
    image.seek(0)  # the first frame of an animation
    # Palette images may carry transparency: through RGBA, so Pillow applies it first.
    rgba_first = image.mode == "P"
    return (image.convert("RGBA") if rgba_first else image).convert("RGB")


def _convert(path: Path) -> Path:
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    target = converted_folder() / f"{key[:20]}.png"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            rgb = _to_rgb(image)
        with files.atomic_path(target) as partial:
            rgb.save(partial, "PNG")
    return target


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts[:-1])


def class_folders(folder: Path) -> list[Path]:
    """Returns the class subfolders of ``folder``, sorted by name, hidden ones left out."""
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))),
        key=lambda p: p.name,
    )


SCAN_BAR_MINIMUM = 500  # files: a progress bar for folders that take more than a few seconds


def scan_folder(folder: str | Path, *, cached: bool = True) -> FolderScan:
    """Returns every usable image in ``folder`` (one subfolder per class) and what was skipped.

    Each file is decoded once here, so a broken one cannot stop an epoch halfway. Formats
    TensorFlow refuses or decodes wrongly are converted to PNG copies elsewhere. A file whose
    bytes (SHA-1) passed an earlier check is not decoded again, unless ``cached=False``.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise DataError(
            f"The folder {root} does not exist. Check the path (TL_DATA or "
            "TL_TEST_DATA), or use TL_DATA=sample to run on the bundled sample. "
            + setting_hint("TL_DATA", "sample")
        )
    if not root.is_dir():
        raise DataError(f"{root} is a file; give a folder with one subfolder per class.")
    classes = class_folders(root)
    if not classes:
        raise DataError(
            f"{root} has no class folders. Put your images in one subfolder per "
            f"class, e.g. {root / 'cat'} and {root / 'dog'}."
        )
    if len(classes) == 1:
        inner = class_folders(classes[0])
        hint = (
            f" It looks like the classes are one level down: use {classes[0]} instead."
            if len(inner) >= 2
            else " Add a folder for each other class."
        )
        raise DataError(
            f"{root} has only one class folder ({classes[0].name}); a classifier "
            f"needs at least two.{hint}"
        )

    candidates: list[tuple[Path, int]] = []
    for label, class_dir in enumerate(classes):
        for path in sorted(class_dir.rglob("*")):
            if path.is_file() and not _is_hidden(path, class_dir):
                candidates.append((path, label))

    checked = _read_checked() if cached else {}
    with ThreadPoolExecutor(max_workers=4) as pool:  # Pillow decodes without holding the GIL
        checking = pool.map(lambda path: _check_file(path, checked), (p for p, _ in candidates))
        results = list(
            progress.bar(checking, len(candidates), "checking images", minimum=SCAN_BAR_MINIMUM)
        )
    checks = [(kind, reason) for kind, reason, _ in results]
    passed = {digest: kind for kind, reason, digest in results if reason is None}
    if passed.keys() - checked.keys():  # new images: remember them (another process may too)
        with contextlib.suppress(OSError):  # a read-only home: only the next scan is slower
            everything = {**_read_checked(), **passed}
            files.atomic_write_json(
                checked_path(), {"pillow": PIL.__version__, "checked": everything}, indent=None
            )

    scan = FolderScan(root=root, class_names=[c.name for c in classes], files=[], labels=[])
    for (path, label), (kind, reason) in zip(candidates, checks, strict=True):
        if reason is not None:
            scan.skipped.append(Skipped(path, reason))
            continue
        image_format, mode = kind.split("/")
        if (image_format, mode) in _TF_READY:
            scan.files.append(path)
        else:
            scan.files.append(_convert(path))
            scan.converted.append(path)
        scan.labels.append(label)

    empty = [name for name, n in scan.counts().items() if n == 0]
    if empty:
        skipped = {name: 0 for name in empty}
        for item in scan.skipped:
            name = item.path.relative_to(root).parts[0]
            if name in skipped:
                skipped[name] += 1
        named = ", ".join(f"{name!r} (0 usable, {skipped[name]} skipped)" for name in empty)
        raise DataError(
            f"{root}: the class folder(s) {named} hold no usable image. Add JPEG or PNG images "
            "to each class folder, or move the folder out of "
            f"{root} to leave that class out.\n" + scan.report()
        )
    return scan


def split_folders(folder: str | Path) -> dict[str, Path] | None:
    """Returns ``{"train": ..., "test": ..., "validation": ...}`` (those present) for a folder laid
    out in split folders (the Kaggle layout), or None for a folder of class folders (02)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        return None
    subfolders = class_folders(root)
    roles = [SPLIT_FOLDER_NAMES.get(path.name.lower()) for path in subfolders]
    if len(subfolders) < 2 or None in roles or "train" not in roles:
        return None
    layout: dict[str, Path] = {}
    for role, path in zip(roles, subfolders, strict=True):
        if role in layout:
            raise DataError(
                f"{root} has both {layout[role].name}/ and {path.name}/ as its {role} split; "
                "keep one (move the other out of the folder)."
            )
        if not class_folders(path):
            splits = ", ".join(f"{each.name}/" for each in subfolders)
            raise DataError(
                f"{path} holds no class folders: in a folder of splits ({splits}), each split "
                f"holds one subfolder per class, e.g. {path / 'cat'} and {path / 'dog'}. Sort "
                "its images into class "
                "folders (unlabelled images cannot be used to train or test), or move it out."
            )
        layout[role] = path
    return layout


def images_needed(fractions: tuple[float, ...]) -> int:
    """Returns the fewest images a class needs so :func:`split_indices` gives every part one."""
    for count in range(1, 1000):
        sizes = [int(round(count * f)) for f in fractions]
        if min(sizes, default=1) >= 1 and count - sum(sizes) >= 1:
            return count
    raise ValueError(f"fractions {fractions} leave nothing for training")


def split_indices(
    labels: Iterable[int], fractions: tuple[float, ...], seed: int
) -> list[np.ndarray]:
    """Returns index arrays, one per fraction (the rest goes first), stratified by label,
    the same for the same seed; each part shuffled."""
    labels = np.asarray(list(labels))
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        sizes = [int(round(len(members) * f)) for f in fractions]
        start = len(members) - sum(sizes)
        parts[0].extend(members[:start])
        for part, size in zip(parts[1:], sizes, strict=True):
            part.extend(members[start : start + size])
            start += size
    return [rng.permutation(np.asarray(part, dtype=np.int64)) for part in parts]


def decode_image(path, label):
    """Returns ``(image, label)``: the file at ``path`` decoded to a uint8 RGB tensor."""
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image, label


def read_image(source: str | Path | bytes) -> np.ndarray:
    """Returns the image in ``source`` (a file path, or a file's bytes) as uint8 RGB, (h, w, 3).

    Introduced in 07: decoded exactly as for training (TensorFlow, or :func:`scan_folder`'s
    Pillow conversion).
    """
    import tensorflow as tf

    if isinstance(source, bytes | bytearray | memoryview):
        content, name = bytes(source), "the file"
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            what = "is a folder, not an image" if path.is_dir() else "does not exist"
            raise DataError(f"{path} {what}; give the path of an image file.")
        content, name = path.read_bytes(), str(path)
    kind, reason = _check_image(io.BytesIO(content))
    if reason is not None:
        raise DataError(f"{name}: {reason}; give a JPEG, PNG, GIF or BMP image.")
    if tuple(kind.split("/")) in _TF_READY:
        image = tf.io.decode_image(content, channels=3, expand_animations=False)
        return image.numpy()
    with Image.open(io.BytesIO(content)) as image:
        return np.asarray(_to_rgb(image))


def files_dataset(files: list[Path], labels: list[int]):
    """Returns a dataset of ``(uint8 RGB image, label)`` read from ``files`` (02)."""
    import tensorflow as tf

    paths = tf.constant([str(p) for p in files])
    targets = tf.constant(labels, dtype=tf.int64)
    dataset = tf.data.Dataset.from_tensor_slices((paths, targets))
    return dataset.map(decode_image, num_parallel_calls=tf.data.AUTOTUNE)


def _check_same_classes(train: FolderScan, other: FolderScan, role: str) -> None:
    if other.class_names == train.class_names:
        return
    only_train = [name for name in train.class_names if name not in other.class_names]
    only_other = [name for name in other.class_names if name not in train.class_names]
    differ = "; ".join(
        f"only in {where}: {', '.join(names)}"
        for where, names in ((train.root, only_train), (other.root, only_other))
        if names
    )
    raise DataError(
        f"The {role} folder's classes {other.class_names} differ from the training "
        f"folder's {train.class_names} ({differ}); give both the same class subfolders, "
        "spelled the same way."
    )


def _check_enough_images(scan: FolderScan, carved: tuple[str, ...]) -> None:
    needed = images_needed(tuple(SPLIT_FRACTIONS[role] for role in carved))
    short = {name: n for name, n in scan.counts().items() if n < needed}
    if not short:
        return
    named = ", ".join(f"{name!r} ({n} usable)" for name, n in short.items())
    shares = " and ".join(f"{SPLIT_FRACTIONS[role]:.0%} to {role}" for role in carved)
    raise DataError(
        f"{scan.root}: too few images in the class folder(s) {named}. Each class needs at least "
        f"{needed} usable images, so that training and each split carved from it ({shares}, "
        "per class) get at least one; a few dozen a class is a sensible minimum. Add images to "
        f"those folders, or move a folder out of {scan.root} to leave that class out."
    )


def _folder_splits(cfg: Config, folder: str) -> Splits:
    layout = split_folders(folder) or {"train": Path(folder).expanduser()}
    scan = scan_folder(layout["train"])
    given = {role: scan_folder(path) for role, path in layout.items() if role != "train"}
    if cfg.test_data:  # TL_TEST_DATA wins over a test/ folder beside train/
        given["test"] = scan_folder(cfg.test_data)
    for role, other in given.items():
        _check_same_classes(scan, other, role)
    carved = tuple(role for role in ("validation", "test") if role not in given)
    _check_enough_images(scan, carved)
    files, labels = np.asarray(scan.files, dtype=object), np.asarray(scan.labels)
    train_idx, *carved_idx = split_indices(
        labels, tuple(SPLIT_FRACTIONS[role] for role in carved), cfg.seed
    )
    parts = {"train": (list(files[train_idx]), labels[train_idx].tolist())}
    for role, index in zip(carved, carved_idx, strict=True):
        parts[role] = (list(files[index]), labels[index].tolist())
    for role, other in given.items():  # a folder's own split keeps its file order
        parts[role] = (list(other.files), [int(label) for label in other.labels])
    parts = {role: parts[role] for role in ("train", "validation", "test")}
    for name, (part_files, _) in parts.items():
        if not part_files:
            raise DataError(
                f"{folder} has too few images for a {name} split; add images "
                "(a few dozen a class at least)."
            )
    scans = [scan, *given.values()]
    source = f"the folder {Path(folder).expanduser()}"
    if len(layout) > 1:
        source += " (" + ", ".join(f"{path.name}/ as {role}" for role, path in layout.items())
        source += ")"
    if cfg.test_data:
        source += f", tested on {cfg.test_data}"
    originals = {  # converted copies (odd formats) back to the learner's own file names
        copy: original
        for each in scans
        for copy, original in zip(
            [f for f in each.files if f.parent == converted_folder()], each.converted, strict=True
        )
    }
    return Splits(
        train=files_dataset(*parts["train"]),
        validation=files_dataset(*parts["validation"]),
        test=files_dataset(*parts["test"]),
        class_names=scan.class_names,
        sizes={name: len(part_files) for name, (part_files, _) in parts.items()},
        source=source,
        scans=scans,
        test_files=[originals.get(path, path) for path in parts["test"][0]],
        class_counts={
            name: _label_counts(part_labels, scan.class_names)
            for name, (_, part_labels) in parts.items()
        },
        carved=carved,
        files=parts,
    )


def _label_counts(labels: Iterable[int], names: list[str]) -> dict[str, int]:
    found = np.bincount(np.asarray(list(labels), dtype=np.int64), minlength=len(names))
    return {name: int(n) for name, n in zip(names, found, strict=True)}


def count_classes(splits: Splits) -> dict[str, dict[str, int]]:
    """Returns the images of each class in each split: ``{"train": {"cat": 29, ...}, ...}``.

    Introduced in 02. TFDS splits are counted here, in a pass over their labels.
    """
    if not splits.class_counts:
        import tensorflow as tf

        for name in ("train", "validation", "test"):
            labels = getattr(splits, name).map(
                lambda *pair: pair[-1], num_parallel_calls=tf.data.AUTOTUNE
            )
            found = [int(each) for label in labels.as_numpy_iterator() for each in np.ravel(label)]
            splits.class_counts[name] = _label_counts(found, splits.class_names)
    return splits.class_counts


def imbalance_warning(counts: dict[str, int]) -> str | None:
    """Returns a warning naming the counts when the largest class has more than
    ``IMBALANCE_RATIO`` times the images of the smallest, or None (02)."""
    if not counts:
        return None
    largest = max(counts, key=counts.get)
    smallest = min(counts, key=counts.get)
    if counts[largest] <= IMBALANCE_RATIO * counts[smallest]:
        return None
    listed = ", ".join(f"{name!r} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    factor = counts[largest] / max(counts[smallest], 1)
    return (
        f"Warning: the classes are unbalanced: {largest!r} has {counts[largest]} training images, "
        f"{smallest!r} only {counts[smallest]} ({factor:.1f}x; all: {listed}). Accuracy alone "
        f"flatters a model that leans towards {largest!r}: read the per-class recall in 06, and "
        f"add images of the small classes if you can."
    )


TFDS_HELP = (
    "Loading TFDS cats_vs_dogs (a download of about 787 MB the first time) failed: {error}\n"
    "What you can do:\n"
    "  - run offline on the generated sample: TL_DATA=sample\n"
    "  - use a folder of your own photos, one subfolder per class: TL_DATA=/path/to/folder\n"
    "    (the Microsoft / Kaggle 'Dogs vs. Cats' archive works once unzipped: "
    "TL_DATA=/path/to/PetImages)\n"
    "  - try again later: the download host has been down before.\n"
    + setting_hint("TL_DATA", "sample")
)
TFDS_HOST = "download.microsoft.com"  # where TFDS downloads cats_vs_dogs from
# Other data sets download from many hosts; this one (TFDS's own bucket, where many are kept) says
# whether there is a network at all. A host that is down shows up as tfds.load's own error.
TFDS_ANY_HOST = "storage.googleapis.com"
# Single-label image classification data sets a learner can name in TL_DATA=tfds:NAME.
TFDS_EXAMPLES = ("tf_flowers", "oxford_iiit_pet", "rock_paper_scissors", "cats_vs_dogs")
TFDS_ANY_HELP = (
    "Loading TFDS {name} (downloaded the first time) failed: {error}\n"
    "What you can do:\n"
    "  - run offline on the generated sample: TL_DATA=sample (or TL_DATA=sample:N for N classes)\n"
    "  - use a folder of your own photos, one subfolder per class: TL_DATA=/path/to/folder\n"
    "  - try again later, or where there is network (TFDS keeps what it downloads in "
    "~/tensorflow_datasets, or TFDS_DATA_DIR).\n" + setting_hint("TL_DATA", "sample")
)
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


class _NoVariantFolderWarning(logging.Filter):
    """Drops TFDS's "Variant folder ... has no dataset_info.json" (absl logger, WARNING)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Variant folder ")


@contextmanager
def quiet_tfds_lookup() -> Iterator[None]:
    """Silences TFDS's "has no dataset_info.json" while a builder is looked up (02, 04,
    ``make fetch``): before a data set is prepared, it is only red noise above the message."""
    logger = logging.getLogger("absl")
    quiet = _NoVariantFolderWarning()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _download_problem(builder, host: str = TFDS_HOST) -> str | None:
    """Returns why the download cannot start, or None (offline, tfds.load retries for minutes)."""
    import socket

    if builder.is_prepared() or any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return None  # nothing to download, or a proxy that only the download itself can try
    downloads = Path(builder.data_dir_root) / "downloads"
    if any(downloads.glob("*kagglecatsanddogs*")):
        return None  # the archive is already here
    try:
        socket.create_connection((host, 443), timeout=5.0).close()
    except OSError as error:
        return f"cannot reach {host} ({error.strerror or error}): no network, or the host is down"
    return None


def tfds_name(cfg: Config) -> str | None:
    """Returns the TFDS data set ``cfg.data`` names (``tfds`` is cats_vs_dogs), or None (02)."""
    if cfg.data == "tfds":
        return "cats_vs_dogs"
    return cfg.data.partition(":")[2] if cfg.data.startswith("tfds:") else None


def _tfds_not_usable(name: str, why: str) -> DataError:
    examples = ", ".join(f"tfds:{each}" for each in TFDS_EXAMPLES)
    return DataError(
        f"TL_DATA=tfds:{name}: {why}. The series needs a single-label image classification data "
        f"set (an image and one class label per example), e.g. TL_DATA={examples}. "
        + setting_hint("TL_DATA", "tfds:tf_flowers")
    )


def tfds_builder(name: str):
    """Returns the TFDS builder of ``name``, checked to be single-label image classification
    from its description, without downloading (02); else :class:`DataError` names some that are."""
    import difflib

    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name)
    except tfds.core.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(name.lower().split("/")[0].split(":")[0], known, n=3)
        guess = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise _tfds_not_usable(name, f"TFDS has no data set of that name{guess}") from None
    if name == "cats_vs_dogs":
        return builder
    info = builder.info
    features = info.features
    image, label = (features[key] if key in features else None for key in ("image", "label"))
    if tuple(info.supervised_keys or ()) != ("image", "label"):
        keys = info.supervised_keys
        why = f"its examples are {keys}, not (image, label)" if keys else "it has no labels"
        raise _tfds_not_usable(name, why)
    if not isinstance(image, tfds.features.Image) or not isinstance(
        label, tfds.features.ClassLabel
    ):
        raise _tfds_not_usable(name, "its examples are not an image with one class label")
    return builder


def _to_rgb_tensor(channels: int | None):
    import tensorflow as tf

    def to_rgb(image, label):
        if channels == 1:
            image = tf.image.grayscale_to_rgb(image)
        elif channels == 4:
            image = image[..., :3]
        return image, label

    return to_rgb


def _tfds_splits(cfg: Config) -> Splits:
    name = tfds_name(cfg)
    split = TFDS_SPLITS[cfg.profile]
    try:
        import tensorflow_datasets as tfds

        with quiet_tfds_lookup():
            if name == "cats_vs_dogs":
                problem = _download_problem(tfds.builder("cats_vs_dogs"))
            else:
                builder = tfds_builder(name)
                if builder.is_prepared() and "train" not in builder.info.splits:
                    splits_found = ", ".join(builder.info.splits)
                    raise _tfds_not_usable(name, f"it has no train split (only {splits_found})")
                problem = _download_problem(builder, host=TFDS_ANY_HOST)
        if problem is None:
            (train, validation, test), info = tfds.load(
                name, split=list(split), as_supervised=True, with_info=True
            )
    except DataError:
        raise
    except ImportError as error:  # e.g. TFDS 4.9.10 needs importlib_resources, undeclared
        problem = (
            f"TensorFlow Datasets could not start ({error}); install the missing "
            f"module with: pip install {error.name or 'tensorflow-datasets'}"
        )
        cause = error
    except Exception as error:  # host down, checksum mismatch, disk full ...
        problem = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
        cause = error
    else:
        cause = None
    if problem is not None:
        if name == "cats_vs_dogs":
            raise DataError(TFDS_HELP.format(error=problem)) from cause
        raise DataError(TFDS_ANY_HELP.format(name=name, error=problem)) from cause
    datasets = {"train": train, "validation": validation, "test": test}
    sizes = {}
    for part, dataset, slice_ in zip(datasets, datasets.values(), split, strict=True):
        known = int(dataset.cardinality())  # what TFDS read; info.splits as a fallback
        sizes[part] = known if known >= 0 else int(info.splits[slice_].num_examples)
    if name != "cats_vs_dogs":
        channels = info.features["image"].shape[-1]
        if channels != 3:  # grayscale (mnist ...) or RGBA: 3 channels, as from a folder
            datasets = {part: ds.map(_to_rgb_tensor(channels)) for part, ds in datasets.items()}
        empty = [part for part, size in sizes.items() if size == 0]
        if empty:
            raise DataError(
                f"TFDS {name}: the {cfg.profile} profile's slices {', '.join(split)} leave "
                f"{' and '.join(empty)} empty; use a larger data set or TL_PROFILE=full. "
                + setting_hint("TL_PROFILE", "full")
            )
    return Splits(
        **datasets,
        class_names=list(info.features["label"].names),
        sizes=sizes,
        source=f"TFDS {name}, splits {', '.join(split)}",
    )


def load_raw(cfg: Config) -> Splits:
    """Returns the splits of ``cfg.data`` as unbatched datasets of ``(uint8 image, label)`` (02)."""
    if tfds_name(cfg) is not None:
        return _tfds_splits(cfg)
    classes = sample_classes(cfg)
    folder = str(sample.ensure(classes=classes)) if classes else cfg.data
    splits = _folder_splits(cfg, folder)
    if classes:
        splits.source = f"the generated sample set in {folder}"
    return splits


def sample_classes(cfg: Config) -> int | None:
    """Returns the class count of ``TL_DATA=sample`` (2) or ``sample:N`` (N), or None (02)."""
    if cfg.data == "sample":
        return 2
    return int(cfg.data.partition(":")[2]) if cfg.data.startswith("sample:") else None


def resize(image, label, image_size: int):
    """Returns ``(image, label)``: the image's central square, resized to a uint8 square.

    Cropping to the central square (``crop_to_aspect_ratio``, as ``image_dataset_from_directory``
    offers) keeps the animal's proportions: squashing a wide photo into a square distorts it.
    """
    import keras
    import tensorflow as tf

    image = keras.ops.image.resize(image, (image_size, image_size), crop_to_aspect_ratio=True)
    return tf.cast(tf.round(tf.clip_by_value(image, 0, 255)), tf.uint8), label


def prepare_image(image, image_size: int) -> np.ndarray:
    """Returns one uint8 image (h, w, 3) as the model sees it, by the :func:`resize` the data
    sets use (07)."""
    return np.asarray(resize(image, None, image_size)[0])


def class_names(cfg: Config) -> list[str]:
    """Returns the class names of ``cfg.data`` without loading it (label ``i`` is name ``i``)."""
    if cfg.data == "tfds":
        return ["cat", "dog"]  # the label names of TFDS cats_vs_dogs
    if tfds_name(cfg) is not None:
        return list(tfds_builder(tfds_name(cfg)).info.features["label"].names)
    if sample_classes(cfg):
        return list(sample.class_names(sample_classes(cfg)))
    layout = split_folders(cfg.data) or {"train": Path(cfg.data)}
    return [folder.name for folder in class_folders(layout["train"])]


def prepare(dataset, image_size: int, batch_size: int, *, shuffle: bool, seed: int = 0):
    """Returns ``dataset`` resized, cached (uint8: a quarter of float32's memory), shuffled (if
    asked: evaluation sets keep their order), batched and prefetched (02).

    A ``dataset`` of unknown length (04's ``splits.train.unbatch()``) is counted at once, in one
    pass that also fills the cache: ``fit`` then knows how many batches an epoch has, and with
    ``steps_per_execution`` above 1 it does not warn "Your input ran out of data" every epoch.
    """
    import tensorflow as tf

    dataset = dataset.map(
        lambda x, y: resize(x, y, image_size), num_parallel_calls=tf.data.AUTOTUNE
    )
    dataset = dataset.cache()
    if dataset.cardinality() == tf.data.UNKNOWN_CARDINALITY:
        count = dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(count))
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    return without_autotune(dataset.prefetch(tf.data.AUTOTUNE))


def without_autotune(dataset):
    """Returns ``dataset`` with tf.data's autotuning off, for the cached, in-memory data sets of
    the series.

    With it on (TensorFlow 2.21, 2 CPU cores), 2 to 5 epochs in 23 of a 3-step ``fit`` began
    late (benchmarks/fit_overhead.py: 11.6 s against 10.0 s), and 3 in 16 of 04's convnet from
    scratch 0.5 s late: 1.5 s of 13. Decoding and resizing the photos is as fast without it
    (1.1 s for 1,600 photos either way).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def load(cfg: Config) -> Splits:
    """Returns train / validation / test batches of ``(uint8 squares, labels)`` (02)."""
    raw = load_raw(cfg)
    return dataclasses.replace(
        raw,
        train=prepare(raw.train, cfg.image_size, cfg.batch_size, shuffle=True, seed=cfg.seed),
        validation=prepare(raw.validation, cfg.image_size, cfg.batch_size, shuffle=False),
        test=prepare(raw.test, cfg.image_size, cfg.batch_size, shuffle=False),
    )


def as_folders(cfg: Config) -> dict[str, Path]:
    """Returns this run's train, validation and test split as folders of class folders (09).

    The series' images after its checks, for ``image_dataset_from_directory``: links (or copies)
    to a folder's files, PNG files for TFDS, under ``TL_OUTPUT_DIR/folders/``; reused while the
    split is the same.
    """
    import shutil

    raw = load_raw(cfg)
    root = Path(cfg.output_dir) / "folders"
    manifest = {
        role: [[str(path), int(label)] for path, label in zip(*raw.files[role], strict=True)]
        for role in raw.files
    } or {"source": raw.source, "sizes": raw.sizes}
    manifest = {"class_names": raw.class_names, **manifest}
    folders = {role: root / role for role in ("train", "validation", "test")}
    try:
        if files.read_json(root / "manifest.json", "") == manifest:
            return folders
    except (OSError, files.DamagedFileError):
        pass
    with files.atomic_path(root) as temporary:
        for role in folders:
            for name in raw.class_names:
                (temporary / role / name).mkdir(parents=True)
            if raw.files:
                for index, (path, label) in enumerate(zip(*raw.files[role], strict=True)):
                    link = temporary / role / raw.class_names[label] / f"{index:05d}_{path.name}"
                    try:
                        link.symlink_to(Path(path).resolve())
                    except OSError:  # no symbolic links here (some Windows set-ups)
                        shutil.copyfile(path, link)
            else:
                dataset = getattr(raw, role)
                for index, (image, label) in enumerate(dataset.as_numpy_iterator()):
                    name = raw.class_names[int(label)]
                    Image.fromarray(image).save(temporary / role / name / f"{index:05d}.png")
        files.atomic_write_json(temporary / "manifest.json", manifest)
    return folders
