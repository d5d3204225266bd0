"""Every numbered notebook follows the series' skeleton and is committed without outputs.

nbval executes the notebooks themselves (``make test``); these checks read them as files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest

import helpers
from course_tools import run

NOTEBOOKS = run.numbered_notebooks()
OWNER_REPO = urlparse(helpers.REPOSITORY_URL).path.strip("/").removesuffix(".git")
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def _markdown_lines(notebook) -> list[str]:
    """Returns the markdown lines outside fenced code blocks (where `#` is a comment)."""
    lines, fenced = [], False
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if line.lstrip().startswith("```"):
                fenced = not fenced
            elif not fenced:
                lines.append(line)
    return lines


@pytest.fixture(params=NOTEBOOKS, ids=lambda path: path.name)
def notebook_path(request) -> Path:
    return request.param


@pytest.fixture
def notebook(notebook_path):
    return nbformat.read(notebook_path, as_version=4)


def test_the_series_is_found():
    assert run.NOTEBOOKS.is_dir()
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name) for path in NOTEBOOKS)


def test_valid_json_and_nbformat(notebook_path):
    json.loads(notebook_path.read_text(encoding="utf-8"))
    nbformat.validate(nbformat.read(notebook_path, as_version=4))


def test_committed_without_outputs(notebook):
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"cells {dirty} carry outputs: python -m course_tools.run --strip <notebook>"


def test_opens_with_one_numbered_title(notebook_path, notebook):
    first = notebook.cells[0]
    assert first.cell_type == "markdown"
    title = first.source.splitlines()[0]
    number = notebook_path.name[:2]
    assert re.fullmatch(rf"# {number} · \S.*", title), title
    titles = [line for line in _markdown_lines(notebook) if re.match(r"#\s", line)]
    assert titles == [title], "exactly one H1 per notebook"


def test_colab_badge_points_at_this_notebook(notebook_path, notebook):
    first = notebook.cells[0].source
    url = (
        f"https://colab.research.google.com/github/{OWNER_REPO}/blob/main/notebooks/"
        f"{notebook_path.name}"
    )
    assert f"[![Open In Colab]({BADGE_IMAGE})]({url})" in first


def test_says_what_you_learn_and_how_long(notebook):
    first = notebook.cells[0].source
    assert "What you'll learn" in first
    bullets = [line for line in first.splitlines() if line.startswith(("- ", "* "))]
    assert 3 <= len(bullets) <= 5
    # "Time: ~N min on a laptop CPU (`quick`), ~N min on a GPU (`full`)", in any wording
    assert re.search(r"Time\b.*?\d+.*`quick`.*?\d+.*`full`", first, re.S)


def test_has_setup_summary_and_exercises_in_order(notebook):
    headings = [line.strip() for line in _markdown_lines(notebook) if line.startswith("## ")]
    for required in ("## Setup", "## Summary", "## Exercises"):
        assert required in headings, f"missing {required}"
    positions = [headings.index(h) for h in ("## Setup", "## Summary", "## Exercises")]
    assert positions == sorted(positions)
    assert positions[0] == 0, "Setup comes first"


def test_setup_installs_the_helpers_only_in_colab(notebook):
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    # The Colab block is a cell of its own, collapsed in JupyterLab; Setup's code follows it.
    colab = [cell for cell in notebook.cells if cell.cell_type == "code"][0]
    assert colab.metadata.get("jupyter", {}).get("source_hidden") is True
    setup = code[0] + code[1]
    assert 'if "google.colab" in sys.modules:' in code[0]
    # pip installs it (tests/test_colab.py runs the block)
    assert f'"tl-helpers @ git+{helpers.REPOSITORY_URL}"' in setup
    assert "config.load()" in setup
    assert "environment_report(cfg)" in setup
    # Nothing else installs packages: the one install line lives in Setup.
    assert not any("pip install" in source for source in code[2:])


def test_exercises_have_solutions(notebook):
    lines = _markdown_lines(notebook)
    after = lines[lines.index("## Exercises") :]
    exercises = [line for line in after if re.match(r"(\*\*)?\d+\.(\*\*)?\s", line)]
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    solutions = len(re.findall(r"solution", "\n".join(after) + code, re.I))
    assert exercises, "number the exercises"
    assert solutions >= len(exercises), "each exercise is followed by a marked solution"


# --- course_tools.run.strip -----------------------------------------------------------------------


def test_strip_removes_outputs_and_counts(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# 99 · Test"),
        nbformat.v4.new_code_cell(
            "print(1)",
            execution_count=3,
            outputs=[nbformat.v4.new_output("stream", name="stdout", text="1\n")],
        ),
        nbformat.v4.new_code_cell("x = 1", execution_count=4),
    ]
    path = tmp_path / "99_test.ipynb"
    nbformat.write(notebook, path)
    assert run.strip(path) is True
    stripped = nbformat.read(path, as_version=4)
    assert [c.get("outputs") for c in stripped.cells[1:]] == [[], []]
    assert [c.get("execution_count") for c in stripped.cells[1:]] == [None, None]
    assert stripped.cells[0].source == "# 99 · Test"
    before = path.read_bytes()
    assert run.strip(path) is False  # already clean: the file is not rewritten
    assert path.read_bytes() == before


def test_strip_command_line(tmp_path, capsys):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("1", execution_count=1)]
    path = tmp_path / "98_cli.ipynb"
    nbformat.write(notebook, path)
    assert run.main(["--strip", str(path)]) == 0
    assert "stripped" in capsys.readouterr().out
    assert nbformat.read(path, as_version=4).cells[0].execution_count is None


def test_make_run_refuses_bad_settings_with_one_line(monkeypatch, capsys):
    monkeypatch.setenv("TL_PROFILE", "ci")
    monkeypatch.setenv("TL_DATA", "/no/such/folder")
    assert run.main([]) == 2
    assert "TL_DATA='/no/such/folder'" in capsys.readouterr().err


def test_every_solution_is_tagged_so_a_teacher_can_remove_it(notebook):
    # A cell that starts like a solution must carry the tag nbconvert's TagRemovePreprocessor
    # removes (make student); a tagged cell must look like a solution, so nothing else is lost.
    looks_like = re.compile(r"(# Solution\b|\*\*Solution\b)")
    for index, cell in enumerate(notebook.cells):
        tagged = "solution" in cell.metadata.get("tags", [])
        starts_as_solution = bool(looks_like.match(cell.source.lstrip()))
        assert tagged == starts_as_solution, f"cell {index}: tagged={tagged}: {cell.source[:60]!r}"


def test_notebooks_with_exercises_have_solutions(notebook):
    tagged = [c for c in notebook.cells if "solution" in c.metadata.get("tags", [])]
    assert any("## Exercises" in c.source for c in notebook.cells if c.cell_type == "markdown")
    assert tagged, "no cell is tagged 'solution'"


def test_make_run_reports_a_hung_cell_in_one_line(tmp_path, monkeypatch, capsys):
    # A cell that outlives CELL_TIMEOUT stops the run with one line, not a hang or a traceback.
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(30)")]
    path = tmp_path / "01_hangs.ipynb"
    nbformat.write(notebook, path)
    monkeypatch.setattr(run, "CELL_TIMEOUT", 2)
    monkeypatch.setenv("TL_PROFILE", "ci")
    monkeypatch.setenv("TL_OUTPUT_DIR", str(tmp_path / "out"))
    assert run.main([str(path)]) == 1
    assert "01_hangs.ipynb stopped" in capsys.readouterr().err


def finish(coroutine):
    """Returns what a coroutine that never waits returns (no event loop: the browser tests' may be
    running in this thread)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the coroutine waited for something")


def test_make_run_asks_the_kernel_for_its_reply_in_short_polls():
    # A long poll can miss a reply that has arrived (jupyter/nbclient#312): run asks again.
    from queue import Empty

    asked = []

    async def get_msg(timeout=None):
        asked.append(timeout)
        if len(asked) < 3:
            raise Empty
        return {"msg_type": "execute_reply"}

    get_msg_in_slices = run.patient(get_msg, poll_seconds=0.01)
    assert finish(get_msg_in_slices(timeout=60))["msg_type"] == "execute_reply"
    assert len(asked) == 3 and all(t <= 0.01 for t in asked)

    async def never(timeout=None):
        raise Empty

    with pytest.raises(Empty):  # the overall timeout still ends the wait
        finish(run.patient(never, poll_seconds=0.01)(timeout=0.05))


# --- what the learner reads -----------------------------------------------------------------------


def _collapsed(cell) -> bool:
    return bool(cell.metadata.get("jupyter", {}).get("source_hidden"))


def test_collapsed_cells_are_marked_extra_code(notebook):
    """A collapsed cell holds only checks or plumbing, and says so on its first line."""
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    unmarked = [
        cell.source.splitlines()[0]
        for cell in code[1:]  # code[0] is the Colab block
        if _collapsed(cell) and "# extra code" not in cell.source.splitlines()[0]
    ]
    assert not unmarked, f"collapsed without '# extra code' on its first line: {unmarked}"


def test_the_lesson_is_no_longer_to_read_than_before_the_review():
    """Issue 15: 01-07 must not get longer to read than on 25 November (10,901 markdown words,
    1,532 lines of code in cells that are neither collapsed nor solutions). Raise these numbers
    only on purpose, with the reason in the commit."""
    words = lines = 0
    for path in NOTEBOOKS:
        if not "01" <= path.name[:2] <= "07":
            continue
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                words += len(cell.source.split())
            elif not _collapsed(cell) and "solution" not in cell.metadata.get("tags", []):
                lines += sum(1 for line in cell.source.splitlines() if line.strip())
    assert words <= 10_900, f"{words} markdown words in 01-07"
    assert lines <= 1_531, f"{lines} visible lines of code in 01-07"


def test_the_plain_recipe_uses_no_helpers_after_setup_and_stays_short():
    """Issue 26: 09's lesson is plain Keras a learner can copy. Only Setup and collapsed extra
    cells may use the course's helpers; the visible recipe stays within about 60 lines."""
    (path,) = [p for p in NOTEBOOKS if p.name.startswith("09_")]
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    setup = next(i for i, c in enumerate(cells) if "from helpers import" in c.source)
    helper_call = re.compile(r"(?<![\w.])(helpers|config|data|models|train)\.|from helpers")
    lesson = [
        c
        for c in cells[setup + 1 :]
        if not _collapsed(c) and "solution" not in c.metadata.get("tags", [])
    ]
    uses = [c.source.splitlines()[0] for c in lesson if helper_call.search(c.source)]
    assert lesson and not uses, f"lesson cells of 09 that use helpers: {uses}"
    code = [
        line
        for c in lesson
        for line in c.source.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(code) <= 65, f"09's recipe has {len(code)} lines of code"
