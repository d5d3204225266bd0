"""helpers.classroom: make student (solution cells removed, copies still run) and make html."""

from __future__ import annotations

import base64
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from helpers import classroom
from helpers.run import NOTEBOOKS, numbered_notebooks

# A 1x1 PNG: the smallest figure an executed notebook can hold.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5e3a4"
        "c90000000049454e44ae426082"
    )
).decode()


def tagged_notebook(folder, name="01_tiny.ipynb"):
    cells = [
        new_markdown_cell("# 01 · Tiny\n\n## Exercises\n\n1. Print two."),
        new_code_cell("print(1)"),
        new_code_cell("print(2)  # the solution", metadata={"tags": ["solution"]}),
        new_code_cell("x = 3", metadata={"tags": ["other"]}),
    ]
    cells[1].outputs = [new_output("stream", name="stdout", text="1\n")]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=cells), folder / name)
    return folder / name


def test_student_copies_lose_solution_cells_and_outputs(tmp_path):
    source = tagged_notebook(tmp_path / "notebooks")
    before = source.read_bytes()
    written = classroom.student_copies(tmp_path / "notebooks", tmp_path / "student")
    copy = tmp_path / "student" / "01_tiny.ipynb"
    assert written == {copy: 1}
    cells = nbformat.read(copy, as_version=4).cells
    assert [cell.source for cell in cells[1:]] == ["print(1)", "x = 3"]
    assert not any(cell.get("outputs") for cell in cells)
    assert source.read_bytes() == before, "the teacher's notebook must not change"


def test_student_copies_of_the_series_have_no_solutions(tmp_path):
    written = classroom.student_copies(NOTEBOOKS, tmp_path)
    assert len(written) == len(numbered_notebooks())
    for copy, removed in written.items():
        original = nbformat.read(NOTEBOOKS / copy.name, as_version=4)
        cells = nbformat.read(copy, as_version=4).cells
        assert len(cells) == len(original.cells) - removed
        assert not [c for c in cells if "solution" in c.metadata.get("tags", [])]


def test_a_student_copy_runs_top_to_bottom(tmp_path):
    """The first notebook's student copy, executed in the ci profile (about 15 s)."""
    from nbclient import NotebookClient

    written = classroom.student_copies(NOTEBOOKS, tmp_path / "student")
    copy = min(written)
    notebook = nbformat.read(copy, as_version=4)
    env = {**os.environ, "TL_PROFILE": "ci", "TL_OUTPUT_DIR": str(tmp_path / "runs")}
    client = NotebookClient(notebook, kernel_name="python3", timeout=300)
    client.execute(cwd=str(NOTEBOOKS), env=env)  # raises CellExecutionError on any error
    assert all(c.execution_count for c in notebook.cells if c.cell_type == "code")


README = """# Title

## The notebooks

| # | notebook | you learn |
|---|---|---|
| 01 | [Tiny](notebooks/01_tiny.ipynb) | printing |
| 02 | [Later](notebooks/02_later.ipynb) | not run yet |

## Other
"""


def test_html_site_has_an_index_table_and_inline_figures(tmp_path):
    executed = tmp_path / "runs" / "notebooks"
    path = tagged_notebook(executed)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[1].outputs.append(
        new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})
    )
    notebook.cells[1].execution_count = 1
    nbformat.write(notebook, path)
    index = classroom.html_site(executed, tmp_path / "html", README)
    page = (tmp_path / "html" / "01_tiny.html").read_text()
    assert f"data:image/png;base64,{PNG}" in page.replace("\n", "")
    assert "the solution" in page  # the teacher's copy keeps the solutions
    html = index.read_text()
    assert '<a href="01_tiny.html">Tiny</a>' in html
    assert "<table>" in html and "Later (not run)" in html and "Other" not in html


def test_html_without_a_run_says_to_run_first(tmp_path):
    with pytest.raises(classroom.LearnerError, match="make run"):
        classroom.html_site(tmp_path / "empty", tmp_path / "html", README)
