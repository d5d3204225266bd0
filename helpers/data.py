"""Loading images for the series: TFDS ``cats_vs_dogs``, your own folder, or the offline sample.

Introduced in 02. One call, :func:`load`, returns train / validation / test datasets ready for
``fit``; :func:`load_raw` and :func:`prepare` are its two halves, so 02 can show each step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from helpers import progress, sample
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
            + ", ".join(f"{name}={n}" for name, n in self.counts().items())
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
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        rgb.save(partial, "PNG")
        partial.replace(target)
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


def scan_folder(folder: str | Path) -> FolderScan:
    """Returns every usable image in ``folder`` (one subfolder per class) and what was skipped.

    Each file is opened and decoded once before any training, so a broken file is reported here
    instead of stopping an epoch halfway. Nothing in ``folder`` is changed: images TensorFlow
    refuses or decodes wrongly (TIFF, BMP, WebP with alpha ...) are converted to PNG copies
    elsewhere; JPEG (CMYK too), PNG, GIF and plain WebP are read as they are.
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

    with ThreadPoolExecutor(max_workers=4) as pool:  # Pillow decodes without holding the GIL
        checking = pool.map(_check_image, (path for path, _ in candidates))
        checks = list(
            progress.bar(checking, len(candidates), "checking images", minimum=SCAN_BAR_MINIMUM)
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
        raise DataError(
            f"{root}: the class folder(s) {', '.join(empty)} hold no usable image "
            f"({len(scan.skipped)} files skipped). Add JPEG or PNG images to each class folder.\n"
            + scan.report()
        )
    return scan


def split_indices(
    labels: Iterable[int], fractions: tuple[float, ...], seed: int
) -> list[np.ndarray]:
    """Returns index arrays, one per fraction (the rest goes first), stratified by label.

    The same labels and seed always give the same split; each part is shuffled, so classes are
    mixed in file order too.
    """
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

    Introduced in 07: a photo is decoded exactly as for training. JPEG and PNG go through
    TensorFlow, as in :func:`files_dataset`; other formats (GIF, BMP, CMYK ...) through the same
    Pillow conversion :func:`scan_folder` applies. Anything else raises :class:`DataError`.
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
    """Returns a dataset of ``(uint8 image, label)`` read from ``files`` (checked by scan_folder).

    Introduced in 02; every image comes out with 3 channels, whatever its format or colour mode.
    """
    import tensorflow as tf

    paths = tf.constant([str(p) for p in files])
    targets = tf.constant(labels, dtype=tf.int64)
    dataset = tf.data.Dataset.from_tensor_slices((paths, targets))
    return dataset.map(decode_image, num_parallel_calls=tf.data.AUTOTUNE)


def _folder_splits(cfg: Config, folder: str) -> Splits:
    scan = scan_folder(folder)
    scans = [scan]
    files, labels = np.asarray(scan.files, dtype=object), np.asarray(scan.labels)
    if cfg.test_data:
        test_scan = scan_folder(cfg.test_data)
        if test_scan.class_names != scan.class_names:
            raise DataError(
                f"The test folder's classes {test_scan.class_names} differ from the training "
                f"folder's {scan.class_names}; give both the same class subfolders."
            )
        scans.append(test_scan)
        train_idx, val_idx = split_indices(labels, (VALIDATION_FRACTION,), cfg.seed)
        test_files, test_labels = test_scan.files, test_scan.labels
        order = np.arange(len(test_files))
    else:
        train_idx, val_idx, order = split_indices(
            labels, (VALIDATION_FRACTION, TEST_FRACTION), cfg.seed
        )
        test_files, test_labels = list(files), list(labels)
    parts = {
        "train": (list(files[train_idx]), labels[train_idx].tolist()),
        "validation": (list(files[val_idx]), labels[val_idx].tolist()),
        "test": ([test_files[i] for i in order], [int(test_labels[i]) for i in order]),
    }
    for name, (part_files, _) in parts.items():
        if not part_files:
            raise DataError(
                f"{folder} has too few images for a {name} split; add images "
                "(a few dozen a class at least)."
            )
    source = f"the folder {scan.root}" + (f", tested on {cfg.test_data}" if cfg.test_data else "")
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
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def _download_problem(builder, timeout: float = 5.0) -> str | None:
    """Returns why the download cannot start, or None when it can (or is not needed).

    Without this, an offline ``tfds.load`` retries for minutes before it fails.
    """
    import socket

    if builder.is_prepared() or any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return None  # nothing to download, or a proxy that only the download itself can try
    downloads = Path(builder.data_dir_root) / "downloads"
    if any(downloads.glob("*kagglecatsanddogs*")):
        return None  # the archive is already here
    try:
        socket.create_connection((TFDS_HOST, 443), timeout=timeout).close()
    except OSError as error:
        return (
            f"cannot reach {TFDS_HOST} ({error.strerror or error}): no network, or the host is down"
        )
    return None


def _tfds_splits(cfg: Config) -> Splits:
    split = TFDS_SPLITS[cfg.profile]
    try:
        import tensorflow_datasets as tfds

        problem = _download_problem(tfds.builder("cats_vs_dogs"))
        if problem is None:
            (train, validation, test), info = tfds.load(
                "cats_vs_dogs", split=list(split), as_supervised=True, with_info=True
            )
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
        raise DataError(TFDS_HELP.format(error=problem)) from cause
    sizes = {
        name: int(info.splits[s].num_examples)
        for name, s in zip(("train", "validation", "test"), split, strict=True)
    }
    return Splits(
        train=train,
        validation=validation,
        test=test,
        class_names=list(info.features["label"].names),
        sizes=sizes,
        source=f"TFDS cats_vs_dogs, splits {', '.join(split)}",
    )


def load_raw(cfg: Config) -> Splits:
    """Returns the splits as unbatched datasets of ``(uint8 image of any size, label)``.

    The source is ``cfg.data``: ``tfds``, ``sample`` (generated on first use) or a folder path.
    """
    if cfg.data == "tfds":
        return _tfds_splits(cfg)
    folder = str(sample.ensure()) if cfg.data == "sample" else cfg.data
    splits = _folder_splits(cfg, folder)
    if cfg.data == "sample":
        splits.source = f"the generated sample set in {folder}"
    return splits


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
    """Returns one uint8 image (h, w, 3) as the model sees it: :func:`resize`'s central square.

    Introduced in 07. The same function :func:`prepare` maps over every data set, so a photo gets
    exactly the pixels it would get in the test split.
    """
    return np.asarray(resize(image, None, image_size)[0])


def class_names(cfg: Config) -> list[str]:
    """Returns the class names of ``cfg.data`` without loading it (label ``i`` is name ``i``).

    Introduced in 07: saved models record them (``models.save``), so prediction needs only the
    model. Folders: the class subfolders, sorted, as :func:`scan_folder` numbers them.
    """
    if cfg.data == "tfds":
        return ["cat", "dog"]  # the label names of TFDS cats_vs_dogs
    if cfg.data == "sample":
        return list(sample.CLASS_NAMES)
    return [folder.name for folder in class_folders(Path(cfg.data))]


def prepare(dataset, image_size: int, batch_size: int, *, shuffle: bool, seed: int = 0):
    """Returns ``dataset`` resized, cached, shuffled (if asked), batched and prefetched.

    Cached images are uint8 (a quarter of the memory of float32). Only the training set is
    shuffled: evaluation sets keep one fixed order, so predictions line up with labels.
    """
    import tensorflow as tf

    dataset = dataset.map(
        lambda x, y: resize(x, y, image_size), num_parallel_calls=tf.data.AUTOTUNE
    )
    dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


def load(cfg: Config) -> Splits:
    """Returns train / validation / test datasets of ``(uint8 image batch, label batch)``.

    Images are ``cfg.image_size`` squares; only ``train`` is shuffled. Introduced in 02.
    """
    raw = load_raw(cfg)
    return dataclasses.replace(
        raw,
        train=prepare(raw.train, cfg.image_size, cfg.batch_size, shuffle=True, seed=cfg.seed),
        validation=prepare(raw.validation, cfg.image_size, cfg.batch_size, shuffle=False),
        test=prepare(raw.test, cfg.image_size, cfg.batch_size, shuffle=False),
    )
