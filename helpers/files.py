"""Files of state written atomically: a temporary name in the same folder, then a rename.

Introduced in 04, used in 07 around ``model.export``. An interrupted write leaves the previous
file or folder (``os.replace`` within one folder is atomic on POSIX and Windows); the temporary
of a killed process is removed by a later save into the same folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from helpers.errors import LearnerError


class DamagedFileError(LearnerError):
    """A file of state exists but cannot be read; the message names it and says what to do."""


# The names atomic_path gives its temporaries, beside the file it replaces:
#   .<name>.atomic-<pid>-<8 random>.tmp<suffix>   the new file or folder being written
#   .<name>.atomic-<pid>-<8 random>.old           a folder being replaced, moved aside
# The writer's process id is in the name so that a temporary left by a killed writer can be told
# from one still being written (see remove_stale_temporaries).
TEMPORARY_NAME = re.compile(
    r"^\.(?P<name>.+)\.atomic-(?P<pid>[0-9]+)-[a-z0-9_]{8}\.(?P<kind>tmp|old)(?P<suffix>\.[^.]+)?$"
)
STALE_AFTER = 10 * 60  # seconds without a change before a dead writer's temporary is removed


def _temporary_name(path: Path, suffix: str) -> Path:
    """Returns a fresh name beside ``path`` (same folder, so the final rename is atomic)."""
    handle, name = tempfile.mkstemp(
        prefix=f".{path.name}.atomic-{os.getpid()}-", suffix=suffix, dir=path.parent
    )
    os.close(handle)
    os.unlink(name)  # only the name is wanted: the caller creates a file or a folder there
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _process_exists(pid: int) -> bool:
    """Returns whether a process ``pid`` runs on this machine (True when it cannot be told)."""
    if os.name == "nt":  # os.kill(pid, 0) would end the process there: assume it runs
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, and belongs to another user
        return True
    return True


def _last_change(path: Path) -> float:
    """Returns the newest modification time of ``path`` and, for a folder, of all it holds."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for folder, names, file_names in os.walk(path):
            for name in names + file_names:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
    return newest


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Returns the temporaries of killed saves found in ``folder``, after cleaning them up.

    Only when the writer is gone: its process does not exist and nothing changed for
    ``STALE_AFTER`` seconds (both: a folder shared with another machine or container holds live
    writers whose process ids mean nothing here). A folder moved aside is put back if the new one
    never took its place. Never raises.
    """
    folder = Path(folder)
    now = time.time()
    cleaned = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return cleaned
    for entry in entries:
        match = TEMPORARY_NAME.match(entry.name)
        if not match:
            continue
        name, kind, suffix = match["name"], match["kind"], match["suffix"] or ""
        if suffix != (Path(name).suffix if kind == "tmp" else ""):
            continue  # not a name atomic_path makes
        try:
            if _process_exists(int(match["pid"])) or now - _last_change(entry) < STALE_AFTER:
                continue
            target = folder / name
            if kind == "old" and not target.exists() and not target.is_symlink():
                os.replace(entry, target)  # the previous folder, moved aside: it is all there is
            else:
                _remove(entry)
        except OSError:
            continue
        cleaned.append(entry)
    return cleaned


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    Introduced in 07: write a file or a folder (a SavedModel) there. It keeps ``path``'s suffix
    (``.keras`` writers look at it). If the block raises, ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    temporary = _temporary_name(path, ".tmp" + path.suffix)
    try:
        yield temporary
        if not temporary.exists():
            raise FileNotFoundError(f"nothing was written to {temporary} for {path}")
        if temporary.is_dir() and path.exists():
            old = _temporary_name(path, ".old")
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
    """Returns the JSON in ``path``; a damaged file raises :class:`DamagedFileError` naming it
    and ending with ``what_to_do`` (05)."""
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
    """Returns the JSON object in ``path``, or None when there is none or it was damaged: then
    it is kept as ``<name>.damaged``, with a warning ending with ``what_to_do`` (04)."""
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
