"""A small offline data set laid out like a real folder of cat and dog photos (02).

``TL_DATA=sample`` (``sample:N``: N classes) runs the series with no network: classes differ in
colour and shapes a tiny network can see. It also holds odd formats and broken files, so the
checks in :mod:`helpers.data` always run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASS_NAMES = ("cat", "dog")
# The classes of ``TL_DATA=sample:N``: the first N, in alphabetical order, so label i is name i
# (folders are numbered in sorted order) and the first two are always cat and dog.
ALL_CLASS_NAMES = ("cat", "dog", "fox", "hen", "owl", "pig", "rat", "seal", "wolf", "yak")
# Each class's background colour range per channel (R, G, B), far apart so the classes stay
# distinguishable by colour alone: cat warm, dog cool, then green, magenta, yellow, cyan, red,
# dark grey, light grey and violet.
_BACKGROUNDS = (
    ((170, 255), (90, 160), (20, 90)),
    ((20, 90), (90, 170), (170, 255)),
    ((20, 90), (170, 255), (20, 90)),
    ((170, 255), (20, 90), (170, 255)),
    ((200, 255), (200, 255), (20, 90)),
    ((20, 90), (200, 255), (200, 255)),
    ((170, 255), (0, 50), (0, 50)),
    ((10, 60), (10, 60), (10, 60)),
    ((190, 240), (190, 240), (190, 240)),
    ((90, 140), (20, 70), (150, 220)),
)
VERSION = 1  # bump when the generated files change, so old copies are replaced


def class_names(classes: int = 2) -> tuple[str, ...]:
    """Returns the names of the sample's ``classes`` classes, in label order (introduced in 02)."""
    if not 2 <= classes <= len(ALL_CLASS_NAMES):
        raise ValueError(f"the sample has 2 to {len(ALL_CLASS_NAMES)} classes, not {classes}")
    return ALL_CLASS_NAMES[:classes]


def default_folder(classes: int = 2) -> Path:
    """Returns where :func:`ensure` keeps the sample set, under ``~/.keras/datasets/`` (02)."""
    base = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    suffix = "" if classes == 2 else f"_{classes}classes"
    return base / "datasets" / f"tl_sample_v{VERSION}{suffix}"


def _draw(rng: np.random.Generator, label: int) -> Image.Image:
    width, height = (int(v) for v in rng.integers(48, 160, size=2))
    # cat: warm background, round blobs; dog: cool background, stripes and boxes; the others:
    # their own colour, with triangles
    ranges = _BACKGROUNDS[label]
    background = tuple(int(rng.integers(low, high)) for low, high in ranges)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 5))):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, size=2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, size=2))
        x1, y1 = max(x1, x0 + 8), max(y1, y0 + 8)
        shade = tuple(int(v) for v in rng.integers(0, 256, size=3))
        if label == 0:
            draw.ellipse((x0, y0, x1, y1), fill=shade)
        elif label == 1:
            draw.rectangle((x0, y0, x1, y1), fill=shade)
            draw.line((0, y0, width, y0), fill=(255, 255, 255), width=3)
        else:
            draw.polygon(((x0, y1), ((x0 + x1) // 2, y0), (x1, y1)), fill=shade)
    noise = rng.normal(0, 12, size=(height, width, 3))
    pixels = np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def save_as(image: Image.Image, path: str | Path, kind: str) -> None:
    """Writes ``image`` at ``path`` as ``kind``: jpeg, png, gif, bmp, gray, palette, rgba or cmyk.

    Used by :func:`generate` and by the tests, which write each kind a real folder may hold.
    """
    kinds = ("jpeg", "png", "gif", "bmp", "gray", "palette", "rgba", "cmyk")
    if kind not in kinds:
        raise ValueError(f"unknown image kind {kind!r}; use one of {', '.join(kinds)}")
    if kind == "png":
        image.save(path, "PNG")
    elif kind == "gif":
        image.convert("P", palette=Image.Palette.ADAPTIVE).save(path, "GIF")
    elif kind == "bmp":
        image.save(path, "BMP")
    elif kind == "gray":
        image.convert("L").save(path, "JPEG", quality=90)
    elif kind == "palette":
        image.convert("P", palette=Image.Palette.ADAPTIVE).save(path, "PNG")
    elif kind == "rgba":
        rgba = image.convert("RGBA")
        rgba.putalpha(200)
        rgba.save(path, "PNG")
    elif kind == "cmyk":
        image.convert("CMYK").save(path, "JPEG", quality=90)
    else:
        image.save(path, "JPEG", quality=90)


# The odd-format images: (class index, file name, kind). Each is a real, usable image.
_ODD_IMAGES = (
    (0, "cat.png.jpg", "png"),  # a PNG with a .jpg name: the content decides, not the extension
    (0, "cat.gif", "gif"),
    (0, "cat.bmp", "bmp"),
    (0, "cat.gray.jpg", "gray"),
    (1, "dog.palette.png", "palette"),
    (1, "dog.rgba.png", "rgba"),
    (1, "dog.cmyk.jpg", "cmyk"),
)

# Files that are not usable images, as real folders have them: (class folder, name, bytes).
BAD_FILES = (
    ("cat", "cat.truncated.jpg", None),  # a JPEG cut off halfway (filled in by generate)
    ("cat", "Thumbs.db", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(120)),
    ("dog", "dog.empty.jpg", b""),
    ("dog", "notes.txt", b"Photos from the shelter, spring batch.\n"),
)


def generate(
    folder: str | Path, images_per_class: int = 36, seed: int = 0, classes: int = 2
) -> Path:
    """Returns ``folder`` after writing the sample set into it (``cat/``, ``dog/`` ...), the same
    bytes for the same arguments; cat and dog the same whatever ``classes`` is (02)."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASS_NAMES):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(images_per_class):
            save_as(_draw(rng, label), folder / name / f"{name}.{index}.jpg", "jpeg")
    for label, file_name, kind in _ODD_IMAGES:
        save_as(_draw(rng, label), folder / CLASS_NAMES[label] / file_name, kind)
    for class_name, file_name, content in BAD_FILES:
        if content is None:
            path = folder / class_name / file_name
            save_as(_draw(rng, CLASS_NAMES.index(class_name)), path, "jpeg")
            content = path.read_bytes()[: path.stat().st_size // 2]
        (folder / class_name / file_name).write_bytes(content)
    extra = np.random.default_rng([seed, classes])  # the classes after cat and dog
    for label, name in enumerate(class_names(classes)[2:], start=2):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(images_per_class):
            save_as(_draw(extra, label), folder / name / f"{name}.{index}.jpg", "jpeg")
    (folder / ".ipynb_checkpoints").mkdir(exist_ok=True)  # Jupyter leaves these; not a class
    return folder


def ensure(folder: str | Path | None = None, images_per_class: int = 36, classes: int = 2) -> Path:
    """Returns the sample set's folder, generated first (in a temporary folder renamed into
    place) if it is not there yet (02)."""
    folder = Path(folder) if folder is not None else default_folder(classes)
    marker = folder / ".complete"
    if marker.is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    generate(staging, images_per_class=images_per_class, classes=classes)
    (staging / ".complete").write_text(f"tl sample v{VERSION}\n")
    if folder.exists():
        shutil.rmtree(folder)  # an incomplete earlier attempt of ours, never user data
    try:
        staging.rename(folder)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    return folder
