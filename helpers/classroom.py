"""``make student`` and ``make html``: copies of the series for a classroom.

``python -m helpers.classroom student`` writes the notebooks without their ``solution``-tagged
cells (and without outputs) to ``student/``, with nbconvert's TagRemovePreprocessor.
``python -m helpers.classroom html`` turns the executed notebooks of the last ``make run``
(``<output_dir>/notebooks/``) into a static site in ``<output_dir>/html/``: one page per notebook
(nbconvert's HTMLExporter, figures inline) and an index with the README's notebook table.
``python -m helpers.classroom grade FOLDER`` (``make grade SUBMISSIONS=FOLDER``) executes every
submitted notebook under FOLDER in a fresh kernel (the ``ci`` profile unless ``TL_PROFILE`` says
otherwise, a time limit per notebook), reads what its ``check`` cells printed and writes
``grades.csv`` and a summary. Described in TEACHING.md.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers import config
from helpers.errors import LearnerError
from helpers.run import NOTEBOOKS, numbered_notebooks, patient

PROJECT = NOTEBOOKS.parent
SOLUTION_TAG = "solution"
CHECK_TAG = "check"


def student_copies(source: Path = NOTEBOOKS, target: Path = PROJECT / "student") -> dict[Path, int]:
    """Returns {written copy: solution cells removed} for every numbered notebook in ``source``.

    Each copy has no cell tagged ``solution`` and no outputs; ``source`` is not changed.
    """
    import nbformat
    from nbconvert import NotebookExporter
    from nbconvert.preprocessors import ClearOutputPreprocessor, TagRemovePreprocessor
    from traitlets.config import Config

    settings = Config()
    settings.TagRemovePreprocessor.remove_cell_tags = {SOLUTION_TAG}
    settings.TagRemovePreprocessor.enabled = True
    exporter = NotebookExporter(config=settings)
    exporter.register_preprocessor(TagRemovePreprocessor(config=settings), enabled=True)
    exporter.register_preprocessor(ClearOutputPreprocessor(), enabled=True)
    target.mkdir(parents=True, exist_ok=True)
    written = {}
    for path in numbered_notebooks(source):
        notebook = nbformat.read(path, as_version=4)
        tagged = sum(SOLUTION_TAG in cell.metadata.get("tags", []) for cell in notebook.cells)
        body, _ = exporter.from_notebook_node(notebook)
        copy = target / path.name
        copy.write_text(body, encoding="utf-8")
        written[copy] = tagged
    return written


def notebook_table(readme: str, pages: dict[str, str]) -> str:
    """Returns the README's "The notebooks" section with links to ``pages`` ({notebook: page}).

    Links to notebooks that have no page become plain text.
    """
    match = re.search(r"^## The notebooks\n(.*?)(?=^## )", readme, flags=re.M | re.S)
    section = match.group(1) if match else ""

    def relink(link: re.Match) -> str:
        text, target = link.group(1), Path(link.group(2)).name
        return f"[{text}]({pages[target]})" if target in pages else f"{text} (not run)"

    return re.sub(r"\[([^\]]+)\]\((?:\.\./)?notebooks/([^)]+\.ipynb)\)", relink, section)


def html_site(executed: Path, target: Path, readme: str) -> Path:
    """Returns the index page of a static site made from the executed notebooks in ``executed``.

    One page per notebook (nbconvert's HTMLExporter, lab template, figures inline as data URIs),
    and ``index.html`` with the README's notebook table linking to them.
    """
    import mistune
    from nbconvert import HTMLExporter

    notebooks = numbered_notebooks(executed)
    if not notebooks:
        raise LearnerError(
            f"No executed notebooks in {executed}. Run the series first with make run "
            "(same TL_* settings), then make html."
        )
    target.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    pages = {}
    for path in notebooks:
        body, _ = exporter.from_filename(str(path))
        page = f"{path.stem}.html"
        (target / page).write_text(body, encoding="utf-8")
        pages[path.name] = page
    table = mistune.create_markdown(plugins=["table"])(notebook_table(readme, pages))
    title = "Transfer learning with Keras: cats vs dogs"
    index = target / "index.html"
    index.write_text(
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}"
        "td,th{border-bottom:1px solid #ddd;padding:.4em;text-align:left}</style></head>\n"
        f"<body><h1>{title}</h1>\n<p>The notebooks as executed by <code>make run</code> in "
        f"{executed}.</p>\n{table}</body></html>\n",
        encoding="utf-8",
    )
    return index


# --- make grade ---------------------------------------------------------------------------------

TIME_LIMIT = 600  # seconds per submitted notebook: ci notebooks take 10-60 s on 2 CPU cores
# What a check's status becomes in grades.csv
GRADE_OF = {
    "correct": "pass",
    "wrong": "fail",
    "not done yet": "not done",
    "for two classes only": "two classes only",  # not counted: the run had N classes
}
MAX_EXERCISES = 4


@dataclass
class Grade:
    """One row of grades.csv: a submitted notebook and what each of its exercises got."""

    file: str  # relative to the submissions folder
    notebook: str  # "01".."08", or "" when it is not one of the series'
    exercises: dict[int, str] = field(default_factory=dict)  # pass, fail, not done, error, ...
    error: str = ""  # the first error a cell raised, a time-out or why it could not run
    seconds: float = 0.0

    def row(self) -> dict[str, str]:
        passed = sum(grade == "pass" for grade in self.exercises.values())
        checked = sum(
            grade not in ("self-check", "two classes only") for grade in self.exercises.values()
        )
        row = {"file": self.file, "notebook": self.notebook}
        for number in range(1, MAX_EXERCISES + 1):
            row[f"exercise_{number}"] = self.exercises.get(number, "")
        row["passed"] = f"{passed}/{checked}" if checked else ""
        row["error"] = self.error
        row["seconds"] = f"{self.seconds:.0f}"
        return row


def _notebook_number(path: Path, notebook) -> str:
    match = re.match(r"(\d\d)_", path.name) or re.search(r"(?<!\d)(\d\d)_[a-z]", path.name)
    if match:
        return match.group(1)
    for cell in notebook.cells:  # a renamed file: its check cells say which notebook it is
        found = re.search(r'exercises\.check\("(\d\d)"', cell.source)
        if found:
            return found.group(1)
    return ""


def _first_error(notebook) -> str:
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"cell {index + 1}: {output.get('ename')}: {output.get('evalue')}"[:300]
    return ""


def _check_statuses(notebook, number: str) -> dict[int, str]:
    """Returns {exercise: grade} from the outputs of the notebook's check cells."""
    from helpers import exercises

    found: dict[int, str] = {}
    for cell in notebook.cells:
        if cell.cell_type != "code" or CHECK_TAG not in cell.metadata.get("tags", []):
            continue
        text = "".join(
            output.get("text", "")
            for output in cell.get("outputs", [])
            if output.get("output_type") == "stream"
        )
        for line in text.splitlines():
            match = exercises.LINE.match(line)
            if match and match.group(2) == number:
                found[int(match.group(1))] = GRADE_OF[match.group(3)]
    return found


def grade_notebook(
    path: Path, submissions: Path, executed: Path, env: dict[str, str], time_limit: float
) -> Grade:
    """Returns the grade of one submitted notebook, executed in a fresh kernel (used by grade).

    Every cell runs even after an error (as a learner's Run All would not, but a teacher wants
    each exercise graded); the run stops at ``time_limit`` seconds. The executed copy is written
    under ``executed``; the submitted file is only read.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError

    from helpers import exercises

    grade = Grade(str(path.relative_to(submissions)), "")
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # not JSON, not a notebook: a row, never a stop
        grade.error = f"not a readable notebook: {type(error).__name__}: {error}"[:300]
        return grade
    grade.notebook = _notebook_number(path, notebook)
    expected = exercises.exercises_of(grade.notebook)
    if not expected:
        grade.error = "not one of the series' notebooks (its name should start with 01_ .. 08_)"
        return grade
    deadline = time.monotonic() + time_limit

    class Client(NotebookClient):
        async def async_start_new_kernel_client(self):
            kernel_client = await super().async_start_new_kernel_client()
            shell = kernel_client.shell_channel
            shell.get_msg = patient(shell.get_msg)  # see helpers.run.patient
            return kernel_client

    client = Client(
        notebook,
        kernel_name="python3",
        allow_errors=True,
        timeout_func=lambda cell: max(1, math.ceil(deadline - time.monotonic())),
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    start = time.monotonic()
    try:
        client.execute(cwd=str(NOTEBOOKS), env=env)
    except Exception as error:  # a time-out, a dead kernel: this notebook's row says so
        if isinstance(error, CellTimeoutError) or time.monotonic() >= deadline:
            grade.error = f"stopped at the time limit of {time_limit:.0f} s"
        else:
            last = (str(error).strip().splitlines() or [""])[-1]
            grade.error = f"{type(error).__name__}: {last}"[:300]
    grade.seconds = time.monotonic() - start
    grade.error = grade.error or _first_error(notebook)
    found = _check_statuses(notebook, grade.notebook)
    for number in expected:
        if (grade.notebook, number) in exercises.SELF_CHECK:
            grade.exercises[number] = "self-check"
        else:
            grade.exercises[number] = found.get(number, "error")  # its check did not report
    copy = executed / grade.file
    copy.parent.mkdir(parents=True, exist_ok=True)
    temporary = copy.with_name(copy.name + ".tmp")
    nbformat.write(notebook, temporary)
    temporary.replace(copy)
    return grade


def submitted_notebooks(submissions: Path, exclude: Path | None = None) -> list[Path]:
    """Returns the notebooks under ``submissions`` (any depth) that ``make grade`` runs.

    Checkpoints (``.ipynb_checkpoints``) and anything under ``exclude`` (its output) are left out.
    """
    found = []
    for path in sorted(submissions.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        if exclude is not None and path.resolve().is_relative_to(exclude.resolve()):
            continue
        found.append(path)
    return found


def grade(
    submissions: Path,
    target: Path,
    time_limit: float = TIME_LIMIT,
    environ: dict[str, str] | None = None,
    echo=print,
) -> list[Grade]:
    """Returns one Grade per submitted notebook, after writing ``target/grades.csv``.

    Introduced in TEACHING.md (``make grade``). Each notebook runs in a fresh kernel with
    ``TL_PROFILE=ci`` unless ``environ`` sets it, ``TL_OUTPUT_DIR`` in ``target/outputs`` unless
    set, and checks that print instead of raising; executed copies go to ``target/executed``.
    """
    if not submissions.is_dir():
        raise LearnerError(
            f"No folder {submissions}. Say where the submitted notebooks are: "
            "make grade SUBMISSIONS=path/to/folder"
        )
    paths = submitted_notebooks(submissions, exclude=target)
    if not paths:
        raise LearnerError(f"No .ipynb files under {submissions}: nothing to grade.")
    env = dict(os.environ if environ is None else environ)
    env.setdefault("TL_PROFILE", "ci")
    env.setdefault("TL_OUTPUT_DIR", str(target / "outputs"))
    env["TL_STRICT_CHECKS"] = "0"  # a check reports; it must not stop the notebook
    target.mkdir(parents=True, exist_ok=True)
    grades = []
    for index, path in enumerate(paths, 1):
        echo(f"[{index}/{len(paths)}] {path.relative_to(submissions)} ...")
        grades.append(grade_notebook(path, submissions, target / "executed", env, time_limit))
    write_grades(grades, target / "grades.csv")
    return grades


def write_grades(grades: list[Grade], path: Path) -> Path:
    """Returns ``path`` after writing the grades to it as CSV, atomically (``make grade``)."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", newline="", encoding="utf-8") as file:
        fields = list(Grade("", "").row())
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        for one in grades:
            writer.writerow(one.row())
    temporary.replace(path)
    return path


def summary(grades: list[Grade]) -> str:
    """Returns make grade's one-screen summary: passes per notebook and exercise, then errors."""
    columns = range(1, MAX_EXERCISES + 1)
    lines = ["notebook  files  " + " ".join(f"ex{n}".ljust(5) for n in columns).rstrip()]
    for number in sorted({g.notebook for g in grades if g.notebook}):
        mine = [g for g in grades if g.notebook == number]
        cells = []
        for exercise in columns:
            given = [g.exercises.get(exercise, "") for g in mine]
            if not any(given):
                cells.append(" " * 5)
            elif all(one == "self-check" for one in given):
                cells.append("self ")
            else:
                cells.append(f"{sum(one == 'pass' for one in given):>2}/{len(mine):<2}")
        lines.append((f"{number:>8}  {len(mine):>5}  " + " ".join(cells)).rstrip())
    lines.append("(passed/files per exercise; self: a self-check list, not graded)")
    problems = [g for g in grades if g.error]
    if problems:
        lines.append(f"{len(problems)} with an error:")
        shown = problems[:10]
        lines += [f"  {g.file}: {g.error[:120]}" for g in shown]
        if len(problems) > len(shown):
            lines.append(f"  ... and {len(problems) - len(shown)} more in grades.csv")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["student", "html", "grade"])
    parser.add_argument("submissions", nargs="?", help="grade: the folder of submitted notebooks")
    parser.add_argument("--to", help="grade: where grades.csv goes (default <output_dir>/grades)")
    parser.add_argument(
        "--time-limit", type=float, default=TIME_LIMIT, help="grade: seconds per notebook"
    )
    args = parser.parse_args(argv)
    try:
        if args.what == "grade":
            return _grade_command(args)
        if args.what == "student":
            for copy, removed in student_copies().items():
                print(f"{copy.relative_to(PROJECT)}: {removed} solution cells removed")
            return 0
        cfg = config.load()
        readme = (PROJECT / "README.md").read_text(encoding="utf-8")
        index = html_site(cfg.output_dir / "notebooks", cfg.output_dir / "html", readme)
    except LearnerError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    print(f"open {index} (a static site: copy the folder to share it)")
    return 0


def _grade_command(args) -> int:
    if not args.submissions:
        raise LearnerError("Say where the submitted notebooks are: make grade SUBMISSIONS=folder")
    environ = dict(os.environ)
    environ.setdefault("TL_PROFILE", "ci")
    cfg = config.load(environ)
    target = Path(args.to) if args.to else cfg.output_dir / "grades"
    print(f"grading in the {cfg.profile} profile, at most {args.time_limit:.0f} s a notebook")
    grades = grade(Path(args.submissions), target, args.time_limit, environ, echo=print)
    print(summary(grades))
    print(f"grades: {target / 'grades.csv'}; executed copies: {target / 'executed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
