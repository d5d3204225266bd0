"""helpers.quiet: TensorFlow's C++ start-up lines never reach a notebook's output (issue 10)."""

from __future__ import annotations

import os
import re

import nbformat
import pytest

from course_tools.run import NOTEBOOKS, numbered_notebooks
from helpers import quiet

ONEDNN = (
    "I0000 00:00:1795614791.592478   14747 port.cc:153] oneDNN custom operations are on. "
    "You may see slightly different numerical results"
)
CUINIT = (
    "E0000 00:00:1795614796.281537   14747 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)"
)


def test_log_line_shape():
    assert quiet.is_cpp_log_line(ONEDNN)
    assert quiet.is_cpp_log_line(CUINIT)
    assert not quiet.is_cpp_log_line("UserWarning: I0000 is not at the start")


def test_filtered_stderr_drops_startup_lines_and_keeps_the_rest(capfd):
    with quiet.filtered_stderr(quiet.STARTUP_NOISE):
        os.write(2, f"{ONEDNN}\na real problem\n{CUINIT}\n".encode())
    # The ERROR line is kept here: only the GPU query drops the cuInit line.
    assert capfd.readouterr().err == f"a real problem\n{CUINIT}\n"


def test_filtered_stderr_for_the_gpu_query_drops_cuinit(capfd):
    with quiet.filtered_stderr(quiet.NO_GPU_NOISE):
        os.write(2, f"{CUINIT}\nE0000 00:00:1.5  1 other.cc:1] another error\n".encode())
    assert capfd.readouterr().err == "E0000 00:00:1.5  1 other.cc:1] another error\n"


def _setup_source(path) -> str:
    notebook = nbformat.read(path, as_version=4)
    code = [
        cell.source
        for cell in notebook.cells
        if cell.cell_type == "code" and not cell.metadata.get("jupyter", {}).get("source_hidden")
    ]
    return code[0]  # the collapsed Colab block comes before it


@pytest.mark.parametrize("path", numbered_notebooks(), ids=lambda p: p.stem)
def test_setup_cell_imports_helpers_before_tensorflow(path):
    """Importing helpers first is what keeps the start-up lines out (see helpers/quiet.py)."""
    source = _setup_source(path)
    imports = re.findall(r"^(?:from|import) (\w+)", source, flags=re.MULTILINE)
    heavy = [name for name in imports if name in ("keras", "tensorflow", "tensorflow_datasets")]
    assert "helpers" in imports, f"{path.name}: the Setup cell does not import helpers"
    assert not heavy or imports.index("helpers") < imports.index(heavy[0]), (
        f"{path.name}: the Setup cell imports {heavy[0]} before helpers, so TensorFlow's C++ "
        "start-up lines show under it"
    )


def test_a_kernel_that_imports_helpers_first_prints_no_cpp_lines(monkeypatch):
    """One real kernel (about 10 s): what JupyterLab would show under the Setup cell."""
    from nbclient import NotebookClient

    # ipykernel does not forward C++ output when PYTEST_CURRENT_TEST is set: unset it for the
    # kernel, as JupyterLab's kernels do not have it.
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(TL_PROFILE="ci", TF_CPP_MIN_LOG_LEVEL="")  # the default a plain `jupyter lab` has
    env.pop("TF_CPP_MIN_LOG_LEVEL")
    setup = (
        "from helpers import config\n\nimport keras\n\ncfg = config.load()\n"
        "print(config.environment_report(cfg))\n"
        "import warnings\nwarnings.warn('a Python warning stays visible')"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup)])
    client = NotebookClient(notebook, kernel_name="python3", timeout=120)
    client.execute(cwd=str(NOTEBOOKS), env=env)
    streams = [o for o in notebook.cells[0].outputs if o.output_type == "stream"]
    stderr = "".join(o.text for o in streams if o.name == "stderr")
    stdout = "".join(o.text for o in streams if o.name == "stdout")
    assert "a Python warning stays visible" in stderr
    assert not [line for line in stderr.splitlines() if quiet.is_cpp_log_line(line)], stderr
    assert "absl::InitializeLog" not in stderr, stderr
    assert "profile 'ci'" in stdout and "the ci profile" in stdout, stdout


def test_the_retracing_warning_is_dropped_and_other_tensorflow_warnings_are_not(caplog):
    import logging

    import helpers  # noqa: F401  (installs the filter)

    logger = logging.getLogger("tensorflow")
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        logger.warning("5 out of the last 15 calls to <f> triggered tf.function retracing. ...")
        logger.warning("a real warning")
    assert [r.getMessage() for r in caplog.records] == ["a real warning"]


def test_another_keras_backend_stops_every_setup_cell_with_one_line():
    """KERAS_BACKEND=jax (as some Colab users set it): one line in Setup, not a failure deep in
    tf.data later. The Setup cells of all notebooks run in one kernel (about 5 s)."""
    from nbclient import NotebookClient

    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env.update(TL_PROFILE="ci", KERAS_BACKEND="jax")
    cells = [nbformat.v4.new_code_cell(_setup_source(path)) for path in numbered_notebooks()]
    cells.append(nbformat.v4.new_code_cell("import sys\nprint('keras' in sys.modules)"))
    notebook = nbformat.v4.new_notebook(cells=cells)
    client = NotebookClient(notebook, kernel_name="python3", timeout=120, allow_errors=True)
    client.execute(cwd=str(NOTEBOOKS), env=env)
    for path, cell in zip(numbered_notebooks(), notebook.cells, strict=False):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert len(errors) == 1 and len(errors[0].traceback) == 1, (path.name, cell.outputs)
        assert "'jax' backend" in errors[0].traceback[0], errors[0].traceback
        assert "KERAS_BACKEND=tensorflow" in errors[0].traceback[0]
    assert notebook.cells[-1].outputs[0].text.strip() == "False", "keras was imported anyway"
