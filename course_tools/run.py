"""``make run`` and ``make strip``: execute the series headless, or strip notebook outputs.

``python -m course_tools.run`` executes every numbered notebook in order with the current ``TL_*``
settings and writes the executed copies to ``<output_dir>/notebooks/``;
``python -m course_tools.run --strip`` removes outputs and execution counts from ``notebooks/``.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from helpers import config
from helpers.errors import LearnerError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT = 3600  # seconds for one cell: far above the full profile's longest (training)


def numbered_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """Returns the series' notebooks (``NN_name.ipynb``) in order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def strip(path: Path) -> bool:
    """Returns True if ``path`` had outputs or execution counts, after removing them."""
    notebook = nbformat.read(path, as_version=4)
    changed = False
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None:
            changed = True
        cell["outputs"], cell["execution_count"] = [], None
    if changed:
        nbformat.write(notebook, path)
    return changed


POLL_SECONDS = 1.0  # the longest single wait for a kernel's reply; waits repeat until the timeout


def patient(get_msg, poll_seconds: float = POLL_SECONDS):
    """Returns ``get_msg`` (an async channel's) waiting in slices of ``poll_seconds``.

    nbclient waits for each cell's reply in one long poll of the shell channel, and that poll can
    miss a reply that has arrived: the kernel sits idle while the run waits for the cell timeout
    (seen after 03's widget cell; jupyter/nbclient#312). Short polls, repeated up to the same
    deadline, look at the socket again each time. ``Empty`` is raised at the deadline as before.
    """
    from queue import Empty

    async def get_msg_in_slices(timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = poll_seconds if deadline is None else deadline - time.monotonic()
            try:
                return await get_msg(timeout=max(0.0, min(poll_seconds, left)))
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return get_msg_in_slices


def kernel_transport(folder: str) -> dict[str, str]:
    """Returns the kernel manager's transport settings: local sockets in ``folder`` on POSIX.

    Over TCP (the default) ipykernel warns "Kernel is running over TCP without encryption" in
    every run; Unix sockets in a private temporary folder need no encryption and print nothing.
    Windows has no Unix-socket transport in ZeroMQ, so it keeps TCP.
    """
    import os

    if os.name == "nt":
        return {}
    return {"transport": "ipc", "ip": os.path.join(folder, "kernel")}


@contextlib.contextmanager
def notebook_client(notebook, **options):
    """Yields an nbclient client for ``notebook`` (``options``: NotebookClient's) whose python3
    kernel listens on Unix sockets in a temporary folder (:func:`kernel_transport`, removed
    afterwards) and whose shell channel waits patiently (:func:`patient`): the one ``make run``
    and ``make grade`` use.
    """
    import tempfile

    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    class Client(NotebookClient):
        async def async_start_new_kernel_client(self):
            kernel_client = await super().async_start_new_kernel_client()
            shell = kernel_client.shell_channel
            shell.get_msg = patient(shell.get_msg)
            return kernel_client

    # Once the last cell has replied, the kernel has nothing left to do: a graceful shutdown waits
    # about 0.85 s more per notebook for TensorFlow to tear down (measured: 4.5 s against 3.65 s
    # for a notebook that only imports it), which make run and make grade would add up.
    options.setdefault("shutdown_kernel", "immediate")
    with tempfile.TemporaryDirectory(prefix="tl-kernel-") as sockets:
        kernel_manager = AsyncKernelManager(kernel_name="python3", **kernel_transport(sockets))
        yield Client(notebook, km=kernel_manager, kernel_name="python3", **options)


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colour codes in tracebacks


def plain(text: str) -> str:
    """Returns ``text`` without ANSI colour codes (for a line written to a file or a pipe)."""
    return ANSI.sub("", text)


RUN_METADATA = "transfer_learning_run"  # the executed copy's record of its run (make html)


def execute(path: Path, output_folder: Path) -> float:
    """Returns the seconds it took to execute ``path``, saving the executed copy.

    The copy keeps the widgets' state (``store_widget_state``: ``make html`` draws them without a
    kernel) and, in its metadata under ``RUN_METADATA``, the profile, data source, backbone and
    image size it ran with and whether it finished.
    """
    from datetime import datetime

    notebook = nbformat.read(path, as_version=4)
    cfg = config.load()
    notebook.metadata[RUN_METADATA] = {
        "profile": cfg.profile,
        "data": cfg.data,
        "backbone": cfg.backbone,
        "image_size": cfg.image_size,
        "executed": datetime.now().isoformat(timespec="seconds"),
        "finished": False,  # True once the last cell has run
    }
    start = time.perf_counter()
    try:
        with notebook_client(
            notebook,
            timeout=CELL_TIMEOUT,  # a lost kernel stops the run instead of hanging it forever
            store_widget_state=True,
            resources={"metadata": {"path": str(path.parent)}},
        ) as client:
            # cleanup_kc: a client given its kernel manager (km=) leaves the kernel running by
            # default; without it every notebook's kernel stayed alive until make run ended
            client.execute(cleanup_kc=True)
        notebook.metadata[RUN_METADATA]["finished"] = True
    finally:
        output_folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, output_folder / path.name)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--strip", action="store_true", help="strip outputs instead of running")
    parser.add_argument("notebooks", nargs="*", help="run only these (default: all, in order)")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.notebooks] or numbered_notebooks()
    if args.strip:
        for path in paths:
            if strip(path):
                print(f"stripped {path}")
        return 0
    try:
        cfg = config.load()
    except LearnerError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    print(cfg.describe(), flush=True)
    output_folder = cfg.output_dir / "notebooks"
    total = 0.0
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        try:
            seconds = execute(path, output_folder)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
            # the learner-facing part is the cell's own error (or why the kernel stopped)
            last_line = (plain(str(error)).strip().splitlines() or [type(error).__name__])[-1]
            print(f"  {path.name} stopped: {last_line}", file=sys.stderr)
            print(
                f"  the executed copy, with the full error, is in {output_folder}", file=sys.stderr
            )
            return 1
        total += seconds
        print(f"  {path.name}: {seconds:.0f} s (executed copy in {output_folder})", flush=True)
    print(f"series finished in {total:.0f} s")
    print_results(cfg)
    return 0


# The stages of metrics.json the results table shows, in order (each with test_accuracy, seconds).
RESULT_STAGES = {
    "from_scratch": "from scratch (04)",
    "transfer_learning": "head on cached features (04)",
    "end_to_end": "head trained end to end (04)",
    "head_only": "head alone, to convergence (05)",
    "fine_tuning": "fine-tuning (05)",
    "plain_keras": "plain Keras, all of it (09)",
}
RESULT_COLUMNS = ("stage", "test accuracy", "seconds")


def results_rows(metrics: dict) -> list[tuple[str, str, str]]:
    """Returns one row per stage of ``RESULT_STAGES``: its name, test accuracy and seconds.

    A stage or value missing from ``metrics`` (the contents of metrics.json) is shown as "-".
    """

    def shown(stage: str, key: str, digits: int) -> str:
        value = metrics.get(stage, {}).get(key)
        return "-" if value is None else f"{float(value):.{digits}f}"

    return [
        (name, shown(stage, "test_accuracy", 3), shown(stage, "seconds", 0))
        for stage, name in RESULT_STAGES.items()
    ]


def results_table(rows: Sequence[Sequence[str]], columns: Sequence[str], *, title: str = ""):
    """Returns a Figure showing ``rows`` of text under ``columns`` as a table (``make run``'s end).

    Every stage's test accuracy and seconds, saved by :func:`print_results`.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 0.5 + 0.4 * (len(rows) + 1)))
    axis = figure.subplots()
    axis.axis("off")
    # each column as wide as its longest text (equal widths cut "head alone, to convergence (05)")
    longest = [
        max(len(str(text)) for text in column) + 4 for column in zip(columns, *rows, strict=True)
    ]
    table = axis.table(
        cellText=[list(row) for row in rows],
        colLabels=list(columns),
        colWidths=[length / sum(longest) for length in longest],
        loc="center",
        cellLoc="left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(10)
    table.scale(1, 1.4)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
    if title:
        axis.set_title(title)
    figure.tight_layout()
    return figure


def print_results(cfg: config.Config) -> Path:
    """Returns the path of the results figure, after printing the table of every stage's results.

    Reads ``<output_dir>/metrics.json`` (rows missing from it show "-") and saves the same table
    as ``figures/results_table.png``. Called at the end of ``make run``.
    """
    import json

    from helpers import viz

    path = cfg.output_dir / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    rows = results_rows(metrics)
    width = max(len(row[0]) for row in rows)
    print(f"\nresults ({path}):")
    print(f"{RESULT_COLUMNS[0]:<{width}}  {RESULT_COLUMNS[1]:>13}  {RESULT_COLUMNS[2]:>7}")
    for name, accuracy, seconds in rows:
        print(f"{name:<{width}}  {accuracy:>13}  {seconds:>7}")
    figure = results_table(
        rows, RESULT_COLUMNS, title=f"{cfg.profile} profile: {cfg.backbone}, {cfg.image_size} px"
    )
    saved = viz.save(figure, cfg, "results_table")
    print(f"table saved to {saved}", flush=True)
    return saved


if __name__ == "__main__":
    sys.exit(main())
