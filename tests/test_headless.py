"""Headless execution never idles: 03 (its widget explorer included) run by plain nbclient,
with its default single long poll per cell, as nbconvert, nbval and papermill use it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
LONGEST_GAP = 30  # seconds between a cell's reply and the next cell's start; a stall waits 600


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def cell_gaps(notebook) -> list[tuple[str, float]]:
    """Returns ``(cell id, seconds)``: the wait from each reply to the start of the next cell."""
    gaps, previous = [], None
    for cell in notebook.cells:
        timing = cell.get("metadata", {}).get("execution")
        if cell.cell_type != "code" or not timing:
            continue
        start = _time(timing["iopub.execute_input"])
        if previous is not None:
            gaps.append((cell.get("id"), (start - previous).total_seconds()))
        previous = _time(timing["shell.execute_reply"])
    return gaps


def test_03_runs_under_plain_nbclient_without_an_idle_wait(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("TL_PROFILE", "ci")
    monkeypatch.setenv("TL_OUTPUT_DIR", str(tmp_path / "runs"))
    notebook = nbformat.read(NOTEBOOKS / "03_augmentation.ipynb", as_version=4)
    client = NotebookClient(
        notebook,
        timeout=120,  # a stall fails the test in 2 minutes instead of nbconvert's 10
        kernel_name="python3",
        record_timing=True,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    gaps = cell_gaps(notebook)
    assert len(gaps) >= 15, "cell timings were not recorded"
    slow = [(cell, round(seconds)) for cell, seconds in gaps if seconds > LONGEST_GAP]
    assert not slow, f"the run idled before these cells (id, seconds): {slow}"


def test_cell_gaps_reads_nbclient_timestamps():
    def cell(start, reply):
        return nbformat.v4.new_code_cell(
            metadata={
                "execution": {
                    "iopub.execute_input": f"2026-01-01T06:{start}Z",
                    "shell.execute_reply": f"2026-01-01T06:{reply}Z",
                }
            }
        )

    notebook = nbformat.v4.new_notebook(cells=[cell("07:50", "07:56"), cell("17:54", "17:55")])
    assert cell_gaps(notebook) == [(notebook.cells[1].id, 598.0)]  # the stall the issue saw


def _notebook(path: Path, *sources: str) -> Path:
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path
    )
    return path


def test_make_run_prints_no_kernel_warning_and_no_colour_codes(tmp_path, monkeypatch, capfd):
    from helpers import run

    monkeypatch.setenv("TL_PROFILE", "ci")
    monkeypatch.setenv("TL_OUTPUT_DIR", str(tmp_path / "runs"))
    good = _notebook(tmp_path / "01_good.ipynb", "print('ok')")
    bad = _notebook(tmp_path / "02_bad.ipynb", "1 / 0")
    assert run.main([str(good), str(bad)]) == 1
    err = capfd.readouterr().err
    assert "without encryption" not in err, "the kernel's TCP warning"
    stopped = [line for line in err.splitlines() if "stopped:" in line]
    assert stopped == ["  02_bad.ipynb stopped: ZeroDivisionError: division by zero"], err
    assert not list(tmp_path.glob("kernel-ipc*")) and not list(Path.cwd().glob("kernel-ipc*"))


def test_make_lab_turns_off_the_jupyter_news_prompt():
    makefile = (NOTEBOOKS.parent / "Makefile").read_text()
    recipe = makefile.split("\nlab: setup\n", 1)[1].split("\n\n", 1)[0]
    disable = recipe.splitlines()[0]
    assert "labextension disable" in disable and "$(NEWS_PLUGIN)" in disable
    assert "NEWS_PLUGIN := @jupyterlab/apputils-extension:announcements" in makefile
    assert "jupyter lab" in recipe.splitlines()[1], "disabled before JupyterLab starts"
