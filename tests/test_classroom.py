"""course_tools.classroom: make student (solution cells removed, copies still run) and make html."""

from __future__ import annotations

import base64
import csv
import os
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_tools import classroom
from course_tools.run import NOTEBOOKS, numbered_notebooks
from helpers.errors import LearnerError

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


def _insert_before(notebook, cell_id: str, source: str):
    """Returns ``notebook`` with a new code cell holding ``source`` before the cell ``cell_id``."""
    index = [cell.get("id") for cell in notebook.cells].index(cell_id)
    notebook.cells.insert(index, new_code_cell(source))
    return notebook


def test_grade_gives_each_submission_its_row(tmp_path):
    """make grade over 01 submitted four ways, plus a broken file (about 45 s in ci).

    Solved (the teacher's notebook), an empty student copy (which also proves a student copy
    runs top to bottom), two answers right and one wrong, and a notebook that raises: each gets
    its row, and nothing in the submissions folder changes.
    """
    from conftest import tree_hashes

    teacher = NOTEBOOKS / "01_trainable_layers.ipynb"
    student = classroom.student_copies(NOTEBOOKS, tmp_path / "student")
    empty = next(path for path in student if path.name == teacher.name)
    submissions = tmp_path / "submissions"
    for name in ("ana", "ben", "cleo", "dan"):
        (submissions / name).mkdir(parents=True)
    nbformat.write(nbformat.read(teacher, as_version=4), submissions / "ana" / teacher.name)
    nbformat.write(nbformat.read(empty, as_version=4), submissions / "ben" / teacher.name)
    solutions = [
        c.source
        for c in nbformat.read(teacher, as_version=4).cells
        if "solution" in c.metadata.get("tags", [])
    ]
    partly = nbformat.read(empty, as_version=4)
    _insert_before(partly, "check-01-1", solutions[0])  # right
    _insert_before(partly, "check-01-2", solutions[1])  # right
    wrong_order = (
        solutions[3]
        .replace(
            "base.trainable = False  # first",
            "base.layers[-1].trainable = True\nbase.trainable = False  #",
        )
        .replace("base.layers[-1].trainable = True  # ...then", "# ...then")
    )
    wrong_order = wrong_order.split("trainable = [w.path")[0]  # without the solution's asserts
    _insert_before(partly, "check-01-4", wrong_order)
    nbformat.write(partly, submissions / "cleo" / "01_trainable_layers_cleo.ipynb")
    raising = nbformat.read(empty, as_version=4)
    raising.cells.insert(3, new_code_cell('raise RuntimeError("my own bug")'))
    nbformat.write(raising, submissions / "dan" / teacher.name)
    (submissions / "dan" / "02_data.ipynb").write_text("{ not json", encoding="utf-8")
    before = tree_hashes(submissions)

    target = tmp_path / "grades"
    env = {**os.environ, "TL_PROFILE": "ci"}
    env.pop("TL_OUTPUT_DIR", None)
    grades = classroom.grade(submissions, target, time_limit=300, environ=env, echo=lambda _: None)

    rows = {row["file"]: row for row in csv.DictReader((target / "grades.csv").open())}
    exercises = ["exercise_1", "exercise_2", "exercise_3", "exercise_4"]

    def marks(file):
        return [rows[file][column] for column in exercises]

    assert marks("ana/01_trainable_layers.ipynb") == ["pass"] * 4
    assert rows["ana/01_trainable_layers.ipynb"]["error"] == ""
    assert marks("ben/01_trainable_layers.ipynb") == ["not done"] * 4
    assert rows["ben/01_trainable_layers.ipynb"]["error"] == "", "a student copy runs"
    assert marks("cleo/01_trainable_layers_cleo.ipynb") == ["pass", "pass", "not done", "fail"]
    assert rows["cleo/01_trainable_layers_cleo.ipynb"]["passed"] == "2/4"
    assert marks("dan/01_trainable_layers.ipynb") == ["not done"] * 4
    assert "RuntimeError: my own bug" in rows["dan/01_trainable_layers.ipynb"]["error"]
    assert "not a readable notebook" in rows["dan/02_data.ipynb"]["error"]
    assert len(rows) == len(grades) == 5
    assert tree_hashes(submissions) == before, "the submitted files are only read"
    executed = nbformat.read(target / "executed" / "cleo" / "01_trainable_layers_cleo.ipynb", 4)
    assert any("wrong" in str(c.get("outputs")) for c in executed.cells), "the learner's view"
    text = classroom.summary(grades)
    assert len(text.splitlines()) < 25
    assert " 1/4" in text and "RuntimeError" in text


def test_grade_stops_a_notebook_at_the_time_limit(tmp_path, capfd):
    """The limit is per notebook: a cell that outlives it ends that notebook's run, not the
    grading, with one line that says so and nothing from the kernel (issue 25, item 10).

    The kernel writes to make grade's own stderr: it used to print "Kernel is running over TCP
    without encryption" for each notebook, and at the time limit a ZMQError traceback.
    """
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    cells = [new_code_cell("import time\ntime.sleep(120)"), new_code_cell("print('after')")]
    nbformat.write(new_notebook(cells=cells), submissions / "01_slow.ipynb")
    env = {**os.environ, "TL_PROFILE": "ci"}
    said = []
    (row,) = classroom.grade(
        submissions, tmp_path / "grades", time_limit=8, environ=env, echo=said.append
    )
    assert "time limit of 8 s, in cell 1 of 2" in row.error
    assert row.exercises == {1: "error", 2: "error", 3: "error", 4: "error"}
    assert row.seconds < 60
    assert [line for line in said if "time limit" in line] == [
        f"  0/4 passed; stopped at the time limit of 8 s, in cell 1 of 2 ({row.seconds:.0f} s)"
    ]
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "ZMQError" not in out + err
    assert "TCP" not in out + err


def test_grade_lists_the_files_that_are_not_notebooks(tmp_path, capsys, monkeypatch):
    """A .py export or a .txt is named (as it starts and in the summary), never silently
    skipped (issue 25, item 9); hidden files and checkpoints are not listed."""
    submissions = tmp_path / "submissions"
    (submissions / "bob").mkdir(parents=True)
    (submissions / "ana" / ".ipynb_checkpoints").mkdir(parents=True)
    nbformat.write(new_notebook(cells=[]), submissions / "ana" / "99_mine.ipynb")  # no kernel
    (submissions / "bob" / "01_trainable_layers.py").write_text("print(1)\n")
    (submissions / "bob" / "01_trainable_layers.ipynb.txt").write_text("{}")
    (submissions / "notes.txt").write_text("hi\n")
    (submissions / ".DS_Store").write_bytes(b"\0")
    (submissions / "ana" / ".ipynb_checkpoints" / "99_mine-checkpoint.txt").write_text("x")
    expected = (
        "not graded, not notebooks (.ipynb): 3 files: bob/01_trainable_layers.ipynb.txt, "
        "bob/01_trainable_layers.py, notes.txt"
    )
    monkeypatch.setenv("TL_OUTPUT_DIR", str(tmp_path / "runs"))
    assert classroom.main(["grade", str(submissions), "--to", str(tmp_path / "grades")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out.count(expected) == 2, out  # before grading, and in the summary at the end
    assert out.index(expected) < out.index("[1/1] ana/99_mine.ipynb ...")
    assert out[-2] == expected
    # with no notebook at all, the error names what is there
    (submissions / "ana" / "99_mine.ipynb").unlink()
    with pytest.raises(LearnerError, match="nothing to grade .not graded, not notebooks"):
        classroom.grade(submissions, tmp_path / "grades")
    many = [submissions / f"extra{i:02}.txt" for i in range(12)]
    line = classroom.skipped_line(many, submissions)
    assert line.startswith("not graded, not notebooks (.ipynb): 12 files: extra00.txt,")
    assert line.endswith("extra09.txt and 2 more")


def test_grade_summary_of_a_class_fits_one_screen():
    grades = [
        classroom.Grade(
            f"learner{i}/0{n}_x.ipynb", f"0{n}", {1: "pass", 2: "fail", 3: "self-check"}
        )
        for i in range(30)
        for n in (4, 5)
    ]
    grades += [
        classroom.Grade(f"late{i}.ipynb", "", error="not one of the series'") for i in range(15)
    ]
    text = classroom.summary(grades).splitlines()
    assert len(text) <= 25
    assert text[1].split() == ["04", "30", "30/30", "0/30", "self"]
    assert "15 with an error:" in text and text[-1].endswith("5 more in grades.csv")


def test_grade_without_a_folder_says_what_to_pass(tmp_path, capsys):
    assert classroom.main(["grade"]) == 2
    assert "make grade SUBMISSIONS=" in capsys.readouterr().err
    with pytest.raises(LearnerError, match="No .ipynb files"):
        classroom.grade(tmp_path, tmp_path / "grades")


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
    index = classroom.html_site(executed, tmp_path / "html", README, widgets="offline")
    page = (tmp_path / "html" / "01_tiny.html").read_text()
    assert f"data:image/png;base64,{PNG}" in page.replace("\n", "")
    assert "the solution" in page  # the teacher's copy keeps the solutions
    html = index.read_text()
    assert '<a href="01_tiny.html">Tiny</a>' in html
    assert "<table>" in html and "Later **(not run)**" not in html and "Other" not in html
    assert "Later <strong>(not run)</strong>" in html
    assert 'src="http' not in page, "a page loads nothing from the internet"


def test_html_without_a_run_says_to_run_first(tmp_path):
    with pytest.raises(classroom.LearnerError, match="make run"):
        classroom.html_site(tmp_path / "empty", tmp_path / "html", README)


# --- make html offline: widgets from a local copy of the widget manager, the run on the index ---


def _fake_widget_package(folder):
    """Returns (file:// URL, sha512) of a tarball shaped like @jupyter-widgets/html-manager's."""
    import hashlib
    import io
    import tarfile

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, text in [
            ("package/dist/embed.js", "/* the widget manager */"),
            ("package/dist/embed.js.map", "{}"),
            ("package/dist/abc.woff2", "font"),
            ("package/dist/abc.svg", "big font"),
            ("package/LICENSE", "BSD"),
        ]:
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    path = folder / "html-manager.tgz"
    path.write_bytes(archive.getvalue())
    digest = base64.b64encode(hashlib.sha512(archive.getvalue()).digest()).decode()
    return path.as_uri(), digest


def test_widget_manager_is_downloaded_once_checked_and_kept(tmp_path):
    url, digest = _fake_widget_package(tmp_path)
    cache = tmp_path / "cache" / "html-manager"
    assert classroom.widget_manager(cache, url="file:///nowhere.tgz").startswith(
        "could not download"
    )
    # one character changed, always: "x" + digest[1:] matched when the digest began with x
    # (1 run in 64: the gzip header holds the time it was written)
    other = "A" if digest[0] != "A" else "B"
    wrong = classroom.widget_manager(cache, url=url, sha512=other + digest[1:])
    assert "checksum" in wrong and not cache.exists()
    assert classroom.widget_manager(cache, url=url, sha512=digest) == cache
    assert sorted(p.name for p in cache.iterdir()) == ["LICENSE", "abc.woff2", "embed.js"]
    assert cache.stat().st_mode & 0o755 == 0o755  # readable by a web server, once copied
    # kept: the next make html needs no network
    assert classroom.widget_manager(cache, url="file:///nowhere.tgz") == cache
    assert not [p for p in cache.parent.iterdir() if p.name.startswith(".tmp")]


SLIDER = "import ipywidgets\nipywidgets.IntSlider(value=7, description='epochs')"


def test_make_html_draws_stored_widgets_and_shows_the_run(tmp_path, monkeypatch):
    """run.execute stores widget state and the run; html_site shows both, offline."""
    import json

    from course_tools import run

    monkeypatch.setenv("TL_PROFILE", "ci")
    monkeypatch.setenv("TL_OUTPUT_DIR", str(tmp_path / "runs"))
    source = tmp_path / "source"
    source.mkdir()
    readme = README.replace(
        "| not run yet |", "| fails |\n| 03 | [Never](notebooks/03_x.ipynb) | - |"
    )
    for name, code in [("01_tiny.ipynb", SLIDER), ("02_later.ipynb", "1 / 0")]:
        nbformat.write(new_notebook(cells=[new_code_cell(code)]), source / name)
    executed = tmp_path / "runs" / "notebooks"
    run.execute(source / "01_tiny.ipynb", executed)
    with pytest.raises(run.CellExecutionError):
        run.execute(source / "02_later.ipynb", executed)
    tiny = nbformat.read(executed / "01_tiny.ipynb", as_version=4)
    assert tiny.metadata[run.RUN_METADATA]["finished"] is True
    assert tiny.metadata[run.RUN_METADATA]["profile"] == "ci"
    state = tiny.metadata.widgets[classroom.WIDGET_STATE]["state"]
    assert any(model["state"].get("value") == 7 for model in state.values())
    metrics = tmp_path / "runs" / "metrics.json"
    metrics.write_text(json.dumps({"transfer_learning": {"test_accuracy": 0.5, "seconds": 3}}))

    url, digest = _fake_widget_package(tmp_path)
    widgets = classroom.widget_manager(tmp_path / "cache", url=url, sha512=digest)
    site = tmp_path / "html"
    index = classroom.html_site(executed, site, readme, widgets=widgets, metrics=metrics)
    page = (site / "01_tiny.html").read_text()
    assert (site / "widgets" / "embed.js").is_file()
    assert "'widgets/embed.js'" in page and classroom.WIDGET_VIEW in page
    assert classroom.WIDGET_STATE in page and 'src="http' not in page
    assert "not drawn" not in page
    assert "needs a running kernel" in page  # a slider moves offline, its answer cannot
    html = index.read_text()
    assert "Profile <b>ci</b>" in html and "sample (images generated offline)" in html
    assert "near chance" in html  # a ci site says why it shows 50%
    assert "<td>head on cached features (04)</td><td>0.500</td><td>3</td>" in html
    assert '<a href="01_tiny.html">Tiny</a></td>' in html  # no mark: it ran to the end
    assert "<strong>(stopped with an error in cell 1: ZeroDivisionError" in html
    assert "Never <strong>(not run)</strong>" in html
    failed = (site / "02_later.html").read_text()
    assert "not a complete run: it stopped with an error in cell 1" in failed

    # without the widget manager: one line says so, and each widget is a line of text
    offline = tmp_path / "offline"
    classroom.html_site(executed, offline, readme, widgets="could not download it (offline)")
    page = (offline / "01_tiny.html").read_text()
    said = [line for line in page.splitlines() if "widgets of this page are not drawn" in line]
    assert len(said) == 1 and "could not download it (offline)" in said[0]
    assert "[an interactive widget: not drawn here]" in page
    assert not (offline / "widgets").exists()


def test_html_index_says_when_metrics_are_missing_or_damaged(tmp_path):
    executed = tmp_path / "runs" / "notebooks"
    tagged_notebook(executed)
    index = classroom.html_site(executed, tmp_path / "a", README, metrics=tmp_path / "none.json")
    assert "No results: no metrics.json" in index.read_text()
    damaged = tmp_path / "metrics.json"
    damaged.write_text('{"transfer_learning": {')
    index = classroom.html_site(executed, tmp_path / "b", README, metrics=damaged)
    assert "could not be read" in index.read_text()
    assert "not every cell ran" in index.read_text()  # tagged_notebook's cells have no count


REMOTE_IMAGE = re.compile(r"<img\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//", re.IGNORECASE)


def test_html_pages_of_the_series_load_no_image_from_the_internet(tmp_path):
    """The Colab badge under each title becomes a plain link (offline it was a broken image)."""
    executed = tmp_path / "runs" / "notebooks"
    executed.mkdir(parents=True)
    for path in numbered_notebooks(NOTEBOOKS):  # the real first cells, badge included
        (executed / path.name).write_bytes(path.read_bytes())
    readme = (NOTEBOOKS.parent / "README.md").read_text(encoding="utf-8")
    classroom.html_site(executed, tmp_path / "html", readme, widgets="offline")
    pages = sorted((tmp_path / "html").glob("[0-9][0-9]_*.html"))
    assert len(pages) == len(numbered_notebooks(NOTEBOOKS)) >= 8
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not REMOTE_IMAGE.search(text), f"{page.name} shows an image from the internet"
        colab = f'https://colab.research.google.com/github/[^"]*/notebooks/{page.stem}.ipynb'
        assert re.search(f'<a href="{colab}">Open In Colab</a>', text), f"{page.name}: no link"


def test_offline_markdown_replaces_only_remote_images():
    source = (
        '[![Open In Colab](https://example.org/badge.svg "a title")](https://example.org/x)\n'
        '<img alt="logo" src="http://example.org/logo.png"> <img src=//cdn.example.org/a.png>\n'
        "![local figure](figures/curves.png) ![inline](data:image/png;base64,AAAA)"
    )
    assert classroom.offline_markdown(source) == (
        "[Open In Colab](https://example.org/x)\nlogo image\n"
        "![local figure](figures/curves.png) ![inline](data:image/png;base64,AAAA)"
    )


def test_html_pages_fold_collapsed_cells_as_jupyterlab_does(tmp_path):
    """A collapsed cell (``# extra code``) shows its first line only; its output stays."""
    executed = tmp_path / "runs" / "notebooks"
    executed.mkdir(parents=True)
    hidden = nbformat.v4.new_code_cell(
        "# extra code: the check\nassert_this_line_is_folded = True\nprint('the result')",
        metadata={"jupyter": {"source_hidden": True}},
        outputs=[nbformat.v4.new_output("stream", text="the result\n")],
        execution_count=1,
    )
    shown = nbformat.v4.new_code_cell("visible_line = 1", execution_count=2)
    nbformat.write(nbformat.v4.new_notebook(cells=[hidden, shown]), executed / "01_tiny.ipynb")
    classroom.html_site(executed, tmp_path / "html", README, widgets="offline")
    page = (tmp_path / "html" / "01_tiny.html").read_text(encoding="utf-8")
    assert "extra code: the check" in page and "(collapsed)" in page
    assert "assert_this_line_is_folded" not in page, "the folded lines are on the page"
    assert "the result" in page and "visible_line" in page
