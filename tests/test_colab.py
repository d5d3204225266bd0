"""The Colab install block (identical everywhere, one message when it fails); tested versions."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
import tomllib
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

import helpers
from course_tools import compat
from helpers import config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_the_colab_block_is_identical_in_every_notebook():
    blocks = {path.name: compat.colab_block(path) for path in NOTEBOOKS}
    first = blocks[NOTEBOOKS[0].name]
    assert f'"tl-helpers @ git+{helpers.REPOSITORY_URL}"' in first
    assert 'if "google.colab" in sys.modules:' in first
    different = [name for name, block in blocks.items() if block != first]
    assert not different, f"the Colab block of {different} differs from {NOTEBOOKS[0].name}'s"


# A kernel that looks like Colab without the helpers package: google.colab importable, and
# importlib.metadata saying tl-helpers (installed here in editable mode) is absent.
FAKE_COLAB = """
import importlib.metadata, sys, types
sys.modules["google.colab"] = types.ModuleType("google.colab")
real_version = importlib.metadata.version
def version_without_helpers(name):
    if name == "tl-helpers":
        raise importlib.metadata.PackageNotFoundError(name)
    return real_version(name)
importlib.metadata.version = version_without_helpers
"""


def test_a_failed_install_stops_the_notebook_with_one_message(monkeypatch, tmp_path):
    # git fetches the repository URL from a folder that does not exist: the install fails as it
    # does offline or before the repository is published, without any network.
    missing = tmp_path / "no-such-repository"
    for key, value in compat.simulated_colab_env(missing).items():
        monkeypatch.setenv(key, value)
    block = compat.colab_block(NOTEBOOKS[0])
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(FAKE_COLAB),
            nbformat.v4.new_code_cell(block + "print('the rest of the Setup cell')"),
            nbformat.v4.new_code_cell("print('a later cell')"),
        ]
    )
    client = NotebookClient(notebook, timeout=120, kernel_name="python3")
    with pytest.raises(CellExecutionError):
        client.execute()
    setup, later = notebook.cells[1], notebook.cells[2]
    assert len(setup.outputs) == 1, setup.outputs
    error = setup.outputs[0]
    assert error.output_type == "error" and error.ename == "ColabSetupError"
    assert len(error.traceback) == 1, "one message, no Python traceback"
    message = error.traceback[0]
    assert "could not be installed" in message and "no-such-repository" in message
    assert "published repository" in message and "%pip install" in message
    assert later.get("execution_count") is None and not later.outputs, "Run All went on"


def test_pyproject_states_the_tested_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = {Requirement(line).name: line for line in project["dependencies"]}
    for name, spec in config.TESTED_VERSIONS.items():
        assert Requirement(requirements[name]).specifier == SpecifierSet(spec), name


def test_version_warning_names_what_is_outside_the_tested_range():
    assert config.version_warning({"tensorflow": "2.21.0", "keras": "3.15.1"}) is None
    warning = config.version_warning({"tensorflow": "2.15.1", "keras": "3.15.1"})
    assert warning is not None and len(warning.splitlines()) == 1
    assert "tensorflow 2.15.1" in warning and "keras" not in warning.split("outside")[0]
    assert config.version_warning({"tensorflow": "2.21.0", "keras": "4.0.0"}) is not None


def test_setup_report_warns_outside_the_tested_range(monkeypatch):
    cfg = config.load({"TL_PROFILE": "ci"}, gpu=False)
    assert "Warning" not in config.environment_report(cfg)  # the versions this venv has
    monkeypatch.setitem(config.TESTED_VERSIONS, "keras", ">=99")
    report = config.environment_report(cfg)
    warnings = [line for line in report.splitlines() if line.startswith("Warning")]
    assert len(warnings) == 1 and "keras" in warnings[0] and "(tested: >=99)" in warnings[0]


def _run_block_with(monkeypatch, versions_before: dict, versions_after: dict) -> str:
    """Returns what the Colab block prints when pip succeeds and turns ``before`` into ``after``."""
    import importlib.metadata
    import subprocess
    import types
    from contextlib import redirect_stdout
    from io import StringIO

    state = {"versions": {**versions_before, "tl-helpers": None}}

    def version(name):
        found = state["versions"].get(name)
        if found is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return found

    def pip(command, **kwargs):
        assert command[-1] == f"tl-helpers @ git+{helpers.REPOSITORY_URL}"
        state["versions"] = {**versions_after, "tl-helpers": "0.1.0"}
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(subprocess, "run", pip)
    printed = StringIO()
    with redirect_stdout(printed):
        exec(compile(compat.colab_block(NOTEBOOKS[0]), "block", "exec"), {})
    return printed.getvalue()


COLAB = {"tensorflow": "2.20.0", "keras": "3.13.2", "ipywidgets": "7.7.1"}


def test_the_colab_block_is_silent_when_it_keeps_colabs_versions(monkeypatch):
    assert _run_block_with(monkeypatch, COLAB, COLAB) == ""


def test_the_colab_block_says_in_one_line_what_pip_changed(monkeypatch):
    printed = _run_block_with(monkeypatch, {**COLAB, "tensorflow": "2.15.0"}, COLAB)
    assert len(printed.strip().splitlines()) == 1
    assert "tensorflow 2.15.0 -> 2.20.0" in printed and "keras" not in printed
