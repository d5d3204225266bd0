"""Files of state written atomically: a temporary name in the same folder, then a rename.

Introduced in 04 (models, metrics and histories are saved through it) and used in 07 around
``model.export`` and the LiteRT converter. A write interrupted midway (a killed kernel, a full
disk, an exception) leaves the previous file or folder as it was, never a half-written one:
``os.replace`` within one folder is atomic on POSIX and Windows file systems.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from helpers.errors import LearnerError


class DamagedFileError(LearnerError):
    """A file of state exists but cannot be read; the message names it and says what to do."""


def _temporary_name(path: Path) -> Path:
    """Returns a fresh name beside ``path`` (same folder, so the final rename is atomic)."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    os.unlink(name)  # only the name is wanted: the caller creates a file or a folder there
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    Introduced in 07: write a file or a whole folder (a SavedModel) to the yielded path, e.g.
    ``with files.atomic_path(folder / "model.tflite") as tmp: model.export(tmp, ...)``. The
    temporary path keeps ``path``'s suffix, for writers that look at it (``.keras``). If the
    block raises, the temporary file or folder is removed and ``path`` is left as it was. A
    folder being replaced is first moved aside, then deleted once the new one is in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_name(path).with_suffix(".tmp" + path.suffix)
    try:
        yield temporary
        if not temporary.exists():
            raise FileNotFoundError(f"nothing was written to {temporary} for {path}")
        if temporary.is_dir() and path.exists():
            old = _temporary_name(path).with_suffix(".old")
            os.replace(path, old)  # os.replace cannot put a folder over a non-empty folder
            os.replace(temporary, path)
            _remove(old)
        else:
            os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Returns ``path`` after replacing its contents with ``text`` atomically (introduced in 04)."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())  # on disk before the rename makes it the real file
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj, *, indent: int = 1) -> Path:
    """Returns ``path`` after writing ``obj`` to it as JSON, atomically (introduced in 04)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def read_json(path: str | os.PathLike, what_to_do: str) -> object:
    """Returns the JSON in ``path``; a damaged file raises :class:`DamagedFileError` naming it.

    Introduced in 05. ``what_to_do`` ends the message (e.g. "run 04 again, or delete it").
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DamagedFileError(
            f"{path} is damaged (not valid JSON: {error}); {what_to_do}"
        ) from None


def warn(message: str) -> None:
    """Prints ``message`` as one ``Warning:`` line on stderr (shown in red in Jupyter)."""
    import sys

    print(f"Warning: {message}", file=sys.stderr, flush=True)


def read_json_or_set_aside(path: str | os.PathLike, what_to_do: str) -> dict | None:
    """Returns the JSON object in ``path``, or None when there is no file or it was damaged.

    Introduced in 04 (``metrics.json``). A damaged file (not a JSON object) is not lost: it is
    renamed ``<name>.damaged`` beside it, with a warning naming both and ``what_to_do``, and the
    caller starts a fresh one.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        value = None
    if isinstance(value, dict):
        return value
    aside = path.with_name(path.name + ".damaged")
    os.replace(path, aside)
    warn(f"{path} was damaged (not a JSON object); it is kept as {aside.name}. {what_to_do}")
    return None
