"""Shared fixtures: generated image folders in temporary directories, never ~/.keras.

Every test gets its own ``KERAS_HOME`` (where the sample set and converted copies are written),
so the suite neither reads nor writes the learner's caches, and never needs ../shared/data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import config, quiet, sample

# Mean colours the generated classes are drawn around, far apart so a converted image can be
# checked against its class colour (a conversion that swapped or inverted channels would fail).
CLASS_COLOURS = {"cat": (200, 120, 40), "dog": (40, 120, 200)}


@pytest.fixture(autouse=True)
def keras_home(tmp_path_factory, monkeypatch) -> Path:
    """Returns this test's private KERAS_HOME (the sample set and converted images go there)."""
    home = tmp_path_factory.mktemp("keras_home")
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def rgb_image(colour=(200, 120, 40), size=(40, 30), seed=0) -> Image.Image:
    """Returns a small noisy RGB image around ``colour`` (``size`` is width, height)."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = np.clip(rng.normal(colour, 10, size=(height, width, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def save_image(path: Path, kind: str = "jpeg", colour=(200, 120, 40), size=(40, 30), seed=0):
    """Writes one image of ``kind`` (jpeg, png, gif, bmp, gray, palette, rgba, cmyk) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sample.save_as(rgb_image(colour, size, seed), path, kind)
    return path


def make_folder(root: Path, counts: dict[str, int] | None = None, kind: str = "jpeg") -> Path:
    """Returns ``root`` after writing ``counts[name]`` images into one subfolder per class."""
    counts = counts or {"cat": 20, "dog": 20}
    for class_name, count in counts.items():
        colour = CLASS_COLOURS.get(class_name, (120, 120, 120))
        for index in range(count):
            size = (24 + 7 * (index % 5), 20 + 5 * (index % 3))  # varied sizes and aspect ratios
            save_image(root / class_name / f"{class_name}.{index}.jpg", kind, colour, size, index)
    return root


@pytest.fixture
def folder(tmp_path) -> Path:
    """Returns a clean two-class folder (cat/, dog/) of 20 small JPEGs each."""
    return make_folder(tmp_path / "photos")


def tree_hashes(root: Path) -> dict[str, str]:
    """Returns {relative path: sha256} for every file under ``root``, hidden ones included."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def ci_config(data: str | Path = "sample", **variables: str) -> config.Config:
    """Returns the ci profile's settings with TL_DATA=``data`` and other ``TL_*`` overrides."""
    env = {"TL_PROFILE": "ci", "TL_DATA": str(data), **variables}
    return config.load(env, gpu=False)


def colour_centroid_accuracy(folder: Path, class_names) -> float:
    """Returns how often a nearest-centroid rule on mean colour, fitted on every other image of
    the generated sample in ``folder``, names the class of the images it did not see."""
    features, labels = [], []
    for label, name in enumerate(class_names):
        for path in sorted((folder / name).glob(f"{name}.[0-9]*.jpg")):
            with Image.open(path) as image:
                features.append(np.asarray(image.convert("RGB"), dtype=float).mean(axis=(0, 1)))
            labels.append(label)
    features, labels = np.array(features), np.array(labels)
    fit, held_out = np.arange(len(labels)) % 2 == 0, np.arange(len(labels)) % 2 == 1
    classes = range(len(class_names))
    centroids = np.stack([features[fit & (labels == c)].mean(axis=0) for c in classes])
    distances = np.linalg.norm(features[held_out][:, None, :] - centroids[None], axis=-1)
    return float(np.mean(distances.argmin(axis=1) == labels[held_out]))


def noise_lines(texts) -> list[str]:
    """Returns the lines of ``texts`` (cell outputs) a learner should never see: C++ log lines
    and TensorFlow's start-up noise."""
    return [
        line
        for text in texts
        for line in text.splitlines()
        if quiet.is_cpp_log_line(line) or quiet.STARTUP_NOISE.match(line)
    ]
