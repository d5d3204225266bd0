"""``make fetch``: download what the active profile needs, for a room without network.

``python -m course_tools.fetch`` downloads, for the current ``TL_*`` settings, the TFDS data set
(``cats_vs_dogs``) and the backbone's ImageNet weights into their standard caches, checks them,
and prints their sizes, their locations and how to copy them to machines without network.
Offline it stops within seconds with one message. Described in TEACHING.md ("An offline room").
"""

from __future__ import annotations

import os
import re
import socket
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from helpers import config
from helpers.data import quiet_tfds_lookup
from helpers.errors import LearnerError, setting_hint

WEIGHTS_HOST = "storage.googleapis.com"  # where keras.applications downloads its weights from
# The file names Keras gives each backbone's no-top ImageNet weights in ~/.keras/models.
WEIGHTS_FILES = {
    "xception": r"xception_weights_tf_dim_ordering_tf_kernels_notop\.h5",
    "mobilenet_v2": r"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_[\d.]+_\d+_no_top\.h5",
    "mobilenet": r"mobilenet_[\d_]+_tf_no_top\.h5",
    "efficientnet_b0": r"efficientnetb0_notop\.h5",
}


class FetchError(LearnerError):
    """Something the room needs could not be downloaded; the message says what to do instead."""


@dataclass(frozen=True)
class Fetched:
    """One downloaded item: what it is, where it is, its size, and how to point the series at it."""

    what: str
    location: Path
    size: int  # bytes
    copy_hint: str


def reachable(host: str, timeout: float = 5.0) -> str | None:
    """Returns why ``host`` cannot be reached on port 443, or None when it can."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as error:
        return f"cannot reach {host} ({error.strerror or error})"
    return None


def size_of(path: Path) -> int:
    """Returns the bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def human(size: int) -> str:
    """Returns ``size`` bytes as e.g. ``787.0 MB``."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def keras_models_dir() -> Path:
    """Returns where Keras keeps downloaded weights: ``$KERAS_HOME/models``, ``~/.keras/models``."""
    return Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "models"


def cached_weights(cfg: config.Config) -> Path | None:
    """Returns the cached ImageNet weights file of ``cfg.backbone``, or None."""
    folder = keras_models_dir()
    pattern = re.compile(WEIGHTS_FILES[cfg.backbone])
    found = sorted(p for p in folder.glob("*.h5") if pattern.fullmatch(p.name))
    return found[0] if found else None


def tfds_builder():
    """Returns TFDS's builder for cats_vs_dogs (its data_dir honours ``TFDS_DATA_DIR``)."""
    import tensorflow_datasets as tfds

    return tfds.builder("cats_vs_dogs")


@contextmanager
def _recording_downloads(paths: list[Path]):
    """Records every file keras.utils.get_file returns (the weights Keras loads) in ``paths``."""
    from keras.src.utils import file_utils

    real = file_utils.get_file

    def recording(*args, **kwargs):
        path = real(*args, **kwargs)
        paths.append(Path(path))
        return path

    with mock.patch.object(file_utils, "get_file", recording):
        yield


def download_weights(cfg: config.Config) -> Path:
    """Returns the path of the backbone's ImageNet weights, downloading them if needed."""
    from helpers import models

    paths: list[Path] = []
    with _recording_downloads(paths):
        models.build_base(cfg)
    if not paths or not paths[-1].is_file():
        raise FetchError(f"Keras built {cfg.backbone} but no weights file was found in the cache.")
    return paths[-1]


def problems(cfg: config.Config, builder=None) -> list[str]:
    """Returns what cannot be downloaded for ``cfg`` (empty when everything can, or is cached)."""
    found = []
    if cfg.data == "tfds":
        with quiet_tfds_lookup():  # no red absl warning above the offline message
            builder = builder or tfds_builder()
            prepared = builder.is_prepared()
        if not prepared:
            problem = reachable(_tfds_host())
            if problem:
                found.append(f"the data set (TFDS cats_vs_dogs): {problem}")
    if cfg.weights == "imagenet" and cached_weights(cfg) is None:
        problem = reachable(WEIGHTS_HOST)
        if problem:
            found.append(f"the ImageNet weights of {cfg.backbone}: {problem}")
    return found


def _tfds_host() -> str:
    from helpers import data

    return data.TFDS_HOST


def fetch(cfg: config.Config, builder=None) -> list[Fetched]:
    """Returns what was downloaded (or found in the caches) for ``cfg``, after checking it.

    Raises :class:`FetchError` within seconds, before downloading anything, when something
    cannot be reached.
    """
    builder = builder if builder is not None or cfg.data != "tfds" else tfds_builder()
    found = problems(cfg, builder)
    if found:
        raise FetchError(
            "Cannot download what this profile needs:\n"
            + "".join(f"  - {problem}\n" for problem in found)
            + "Run make fetch on a machine with network and copy its caches (TEACHING.md, "
            "'An offline room'), or run without them: TL_DATA=sample (generated images) and "
            "TL_WEIGHTS=none (no pretrained weights). " + setting_hint("TL_DATA", "sample")
        )
    fetched = []
    if cfg.data == "tfds":
        builder.download_and_prepare()
        if not builder.is_prepared():
            raise FetchError("TFDS finished, but cats_vs_dogs is not prepared; run it again.")
        images = builder.info.splits["train"].num_examples
        if not images:
            raise FetchError("TFDS prepared cats_vs_dogs, but it holds no images; run it again.")
        root = Path(builder.data_dir_root)
        fetched.append(
            Fetched(
                f"TFDS cats_vs_dogs ({images:,} images)",
                root,
                size_of(root / "cats_vs_dogs") + size_of(root / "downloads"),
                "copy the folder to ~/tensorflow_datasets on each machine, or anywhere and set "
                "TFDS_DATA_DIR=/that/folder (the downloads/ subfolder can be left out)",
            )
        )
    if cfg.weights == "imagenet":
        weights = download_weights(cfg)
        fetched.append(
            Fetched(
                f"ImageNet weights of {cfg.backbone}",
                weights,
                size_of(weights),
                "copy the file to ~/.keras/models/ on each machine, or set KERAS_HOME to a "
                "folder holding models/, or pass it directly: TL_WEIGHTS=/path/to/" + weights.name,
            )
        )
    return fetched


def report(fetched: list[Fetched]) -> str:
    """Returns the lines ``make fetch`` prints: each item's size, location and how to copy it."""
    if not fetched:
        return (
            "Nothing to download: these settings use no TFDS data and no ImageNet weights "
            "(e.g. TL_DATA=sample, TL_WEIGHTS=none). For what the quick profile needs: "
            "TL_PROFILE=quick make fetch."
        )
    lines = ["Ready for a room without network:"]
    for item in fetched:
        lines += [f"  {item.what}: {human(item.size)}", f"    at {item.location}"]
        lines.append(f"    {item.copy_hint}")
    lines.append(
        "Copy the same folders to every machine (a USB stick, a shared drive), keeping the "
        "TL_* settings used here (same profile, backbone and image size)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from helpers import quiet

    try:
        cfg = config.load()
        print(f"profile {cfg.profile}: data={cfg.data}, {cfg.backbone} weights={cfg.weights}")
        quiet.import_tensorflow()
        fetched = fetch(cfg)
    except LearnerError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    print(report(fetched))
    return 0


if __name__ == "__main__":
    sys.exit(main())
