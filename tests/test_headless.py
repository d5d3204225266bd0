"""Headless execution never idles: 03 (its widget explorer included) run by plain nbclient,
with its default single long poll per cell, as nbconvert, nbval and papermill use it."""

from __future__ import annotations

import os
import subprocess
import sys
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
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path
    )
    return path


def test_make_run_prints_no_kernel_warning_and_no_colour_codes(tmp_path, monkeypatch, capfd):
    from course_tools import run

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


def test_make_run_shuts_each_kernel_down_after_its_notebook(tmp_path, monkeypatch):
    """A kernel left running holds its memory (GBs after 04-05) until make run ends."""
    from course_tools import run

    monkeypatch.setenv("TL_PROFILE", "ci")
    monkeypatch.setenv("TL_OUTPUT_DIR", str(tmp_path / "runs"))
    path = _notebook(tmp_path / "01_pid.ipynb", "import os\nprint(os.getpid())")
    run.execute(path, tmp_path / "executed")
    executed = nbformat.read(tmp_path / "executed" / path.name, as_version=4)
    pid = int(executed.cells[0].outputs[0].text)
    try:
        os.kill(pid, 0)  # signal 0: does the process exist (shut down kernels are reaped)?
    except ProcessLookupError:
        return
    raise AssertionError(f"the kernel (pid {pid}) still runs after its notebook finished")


def test_make_lab_turns_off_the_jupyter_news_prompt():
    makefile = (NOTEBOOKS.parent / "Makefile").read_text()
    recipe = makefile.split("\nlab: setup\n", 1)[1].split("\n\n", 1)[0]
    disable = recipe.splitlines()[0]
    assert "labextension disable" in disable and "$(NEWS_PLUGIN)" in disable
    assert "NEWS_PLUGIN := @jupyterlab/apputils-extension:announcements" in makefile
    assert "jupyter lab" in recipe.splitlines()[1], "disabled before JupyterLab starts"


TCP_WARNING = "Kernel is running over TCP without encryption"


def test_plain_nbconvert_in_the_venv_prints_no_kernel_warning(tmp_path):
    """make setup's config file: `jupyter nbconvert --execute` starts kernels on Unix sockets."""
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".ready").touch()  # a .venv make setup made already: only the config file is copied
    make_env = {
        k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    }
    subprocess.run(
        ["make", "-C", str(NOTEBOOKS.parent), "setup", f"VENV={venv}", "PYTHON=false"],
        env=make_env,
        check=True,
        capture_output=True,
    )
    config = venv / "etc" / "jupyter"  # where a fresh make setup (CI's) puts it
    assert (config / "jupyter_nbconvert_config.py").is_file(), "make setup wrote no config"
    notebook = _notebook(tmp_path / "notebooks" / "tiny.ipynb", "print(1)")

    def nbconvert(*options: str) -> subprocess.CompletedProcess:
        # the venv's jupyter, run from another folder than the notebook's (as in the issue)
        command = [str(Path(sys.executable).with_name("jupyter")), "nbconvert", "--to", "notebook"]
        return subprocess.run(
            [*command, "--execute", str(notebook), "--output-dir", str(tmp_path / "out")]
            + ["--ExecutePreprocessor.timeout=60", *options],
            cwd=tmp_path,
            env={**os.environ, "JUPYTER_CONFIG_PATH": str(config)},
            capture_output=True,
            text=True,
            timeout=300,
        )

    over_tcp = nbconvert("--KernelManager.transport=tcp", "--KernelManager.ip=127.0.0.1")
    assert over_tcp.returncode == 0 and TCP_WARNING in over_tcp.stderr, "the control shows it"
    quiet = nbconvert()
    assert quiet.returncode == 0, quiet.stderr
    assert TCP_WARNING not in quiet.stderr, quiet.stderr
    executed = nbformat.read(tmp_path / "out" / "tiny.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "1\n"
    assert [p.name for p in notebook.parent.iterdir()] == ["tiny.ipynb"], "no socket files left"
