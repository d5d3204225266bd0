"""Keeps TensorFlow's C++ start-up log lines out of the notebooks (used by every Setup cell).

Without a GPU, TensorFlow 2.21 writes C++ log lines to file descriptor 2 (red in JupyterLab)
while it loads, before it reads ``TF_CPP_MIN_LOG_LEVEL``, and when it looks for a GPU. So stderr
goes to a temporary file then, and every other line is written back. It works when ``helpers``
is imported before ``keras`` or ``tensorflow``.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# absl's C++ log line after its severity letter: date, time, thread, file:line] message.
_CPP_LINE = r"\d{4} \d+:\d+:\d+\.\d+\s+\d+ [\w.\-]+:\d+\] "
# What TensorFlow writes while it loads: INFO and WARNING lines (never needed by a learner) and
# the two plain lines around them.
_STARTUP = (
    rf"[IW]{_CPP_LINE}"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions: "
)
STARTUP_NOISE = re.compile(rf"^(?:{_STARTUP})")
# What it writes when it looks for a GPU on a machine without a GPU driver: an ERROR line that
# only means "no GPU" (the Setup cell says so in words).
NO_GPU_NOISE = re.compile(rf"^(?:{_STARTUP}|E{_CPP_LINE}failed call to cuInit)")
# What TensorFlow's JPEG decoder logs when it refuses a truncated file, besides raising
# InvalidArgumentError with the same words (introduced in 02, which decodes one on purpose).
DECODE_NOISE = re.compile(rf"^E{_CPP_LINE}Premature end of JPEG data")
ALL_LINES = re.compile("")  # the converters' (07) and python -m helpers.predict's: nothing shows


def is_cpp_log_line(line: str) -> bool:
    """Returns True when ``line`` looks like a C++ (absl) log line, e.g. ``I0000 00:00:...``."""
    return re.match(rf"[IWEF]{_CPP_LINE}", line) is not None


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern[str]) -> Iterator[None]:
    """Runs the ``with`` block with file descriptor 2 captured, then replays the lines that are
    not ``noise`` to ``sys.stderr`` (where it cannot be redirected, nothing is hidden)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, AttributeError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not noise.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow() -> None:
    """Imports TensorFlow without its C++ start-up lines, and ``TF_CPP_MIN_LOG_LEVEL=2`` unless
    set (later INFO and WARNING lines hidden too)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    with filtered_stderr(STARTUP_NOISE):
        import tensorflow  # noqa: F401


def list_gpus() -> list:
    """Returns TensorFlow's physical GPU devices, without the ``cuInit`` error line when none."""
    import_tensorflow()
    import tensorflow as tf

    with filtered_stderr(NO_GPU_NOISE):
        return tf.config.list_physical_devices("GPU")
