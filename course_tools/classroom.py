"""``make student`` and ``make html``: copies of the series for a classroom.

``python -m course_tools.classroom student`` writes the notebooks without their ``solution``-tagged
cells (and without outputs) to ``student/``, with nbconvert's TagRemovePreprocessor.
``python -m course_tools.classroom html`` turns the executed notebooks of the last ``make run``
(``<output_dir>/notebooks/``) into a static site in ``<output_dir>/html/``: one page per notebook
(nbconvert's HTMLExporter, figures inline) and an index with the README's notebook table.
``python -m course_tools.classroom grade FOLDER`` (``make grade SUBMISSIONS=FOLDER``) executes every
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

from course_tools.run import NOTEBOOKS, notebook_client, numbered_notebooks
from helpers import config, files
from helpers.errors import LearnerError

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


def notebook_table(readme: str, pages: dict[str, str], marks: dict[str, str] | None = None) -> str:
    """Returns the README's "The notebooks" section with links to ``pages`` ({notebook: page}).

    Links to notebooks that have no page become plain text marked "not run"; ``marks``
    ({notebook: text}) adds a mark after a link, e.g. that the notebook stopped with an error.
    """
    marks = marks or {}
    match = re.search(r"^## The notebooks\n(.*?)(?=^## )", readme, flags=re.M | re.S)
    section = match.group(1) if match else ""

    def relink(link: re.Match) -> str:
        text, target = link.group(1), Path(link.group(2)).name
        if target not in pages:
            return f"{text} **(not run)**"
        mark = marks.get(target, "").replace("|", "/")
        return f"[{text}]({pages[target]})" + (f" **({mark})**" if mark else "")

    return re.sub(r"\[([^\]]+)\]\((?:\.\./)?notebooks/([^)]+\.ipynb)\)", relink, section)


# The widget manager that draws stored widget state in a static page (the bundle nbconvert's pages
# otherwise load from a CDN): @jupyter-widgets/html-manager 1.x draws ipywidgets 8's state.
# dist/embed.js needs no require.js; its icon fonts sit beside it.
WIDGET_MANAGER = "@jupyter-widgets/html-manager@1.0.15"
WIDGET_MANAGER_URL = (
    "https://registry.npmjs.org/@jupyter-widgets/html-manager/-/html-manager-1.0.15.tgz"
)
WIDGET_MANAGER_SHA512 = (  # the registry's dist.integrity of that tarball
    "5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="
)
WIDGET_SCRIPT = "embed.js"
WIDGET_FOLDER = "widgets"  # in the site: widgets/embed.js and its fonts
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def widget_cache() -> Path:
    """Returns the folder where ``make html`` keeps the widget manager it downloaded once."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "transfer-learning-keras" / WIDGET_MANAGER.replace("/", "+")


def widget_manager(
    cache: Path | None = None,
    url: str = WIDGET_MANAGER_URL,
    sha512: str = WIDGET_MANAGER_SHA512,
    timeout: float = 20.0,
) -> Path | str:
    """Returns the folder holding the widget manager's ``embed.js``, or why it cannot be had.

    Used by ``make html`` (TEACHING.md). The first call downloads the package from the npm
    registry (a few MB), checks it against the registry's checksum and keeps ``embed.js``, its
    licence and its fonts in ``cache`` (default :func:`widget_cache`); later calls need no network.
    """
    import base64
    import hashlib
    import io
    import shutil
    import tarfile
    import tempfile
    import urllib.request

    cache = widget_cache() if cache is None else cache
    if (cache / WIDGET_SCRIPT).is_file():
        return cache
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            archive = response.read()
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        return f"could not download {WIDGET_MANAGER} from {url} ({reason})"
    digest = base64.b64encode(hashlib.sha512(archive).digest()).decode()
    if digest != sha512:
        return f"the download of {WIDGET_MANAGER} from {url} does not match its checksum"
    cache.parent.mkdir(parents=True, exist_ok=True)
    unpacked = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache.parent))
    unpacked.chmod(0o755)  # mkdtemp's 0700 would follow the copy into a shared site
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for member in tar.getmembers():
                name = Path(member.name)
                wanted = (
                    name.parts[:2] == ("package", "dist")
                    and len(name.parts) == 3
                    and (
                        name.name.startswith(WIDGET_SCRIPT)
                        and not name.name.endswith(".map")
                        or name.suffix == ".woff2"
                    )
                )
                if member.isfile() and (wanted or member.name == "package/LICENSE"):
                    data = tar.extractfile(member).read()
                    (unpacked / name.name).write_bytes(data)
        if not (unpacked / WIDGET_SCRIPT).is_file():
            return f"{WIDGET_MANAGER} from {url} has no dist/{WIDGET_SCRIPT}"
        try:
            unpacked.rename(cache)  # the whole folder appears at once
        except OSError:  # another make html got there first
            pass
        return cache
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)


def _run_record(notebook) -> dict:
    from course_tools.run import RUN_METADATA

    return dict(notebook.metadata.get(RUN_METADATA, {}))


def notebook_problem(notebook) -> str:
    """Returns why an executed notebook is not a complete run ("" when it is one).

    An error output ("stopped at cell N: ValueError: ..."), a run recorded as unfinished, or code
    cells that never ran (a run that was killed).
    """
    error = _first_error(notebook)
    if error:
        return f"stopped with an error in {error}"[:200]
    if _run_record(notebook).get("finished") is False:
        return "did not finish"
    if any(
        cell.cell_type == "code" and cell.source.strip() and cell.get("execution_count") is None
        for cell in notebook.cells
    ):
        return "not every cell ran"
    return ""


SETTINGS_SHOWN = ("profile", "data", "backbone", "image_size")


def _settings_line(settings: dict) -> str:
    if not settings:
        return "The settings of this run are not recorded."
    data = settings.get("data", "?")
    if str(data).startswith("sample"):
        data = f"{data} (images generated offline)"
    elif str(data).startswith("tfds"):
        data = f"{data} (TensorFlow Datasets)"
    return (
        f"Profile <b>{settings.get('profile', '?')}</b>, data <b>{_escape(data)}</b>, "
        f"base {settings.get('backbone', '?')} at {settings.get('image_size', '?')} px"
        + (f", executed {settings['executed']}" if settings.get("executed") else "")
        + "."
    )


CI_NOTE = (
    "The ci profile checks that the code runs: a base with random weights, one epoch, a few dozen "
    "generated images. Accuracies near chance (50% for two classes) are expected; run make run "
    "with TL_PROFILE=quick for results that mean something."
)


def _escape(text) -> str:
    import html

    return html.escape(str(text))


def _results_html(metrics_path: Path | None) -> str:
    import json

    from course_tools.run import RESULT_COLUMNS, results_rows

    if metrics_path is None or not metrics_path.is_file():
        return "<p>No results: no metrics.json beside the executed notebooks.</p>"
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return f"<p>No results: {_escape(metrics_path)} could not be read ({_escape(error)}).</p>"
    if not isinstance(metrics, dict):
        return f"<p>No results: {_escape(metrics_path)} is not a JSON object.</p>"
    head = "".join(f"<th>{_escape(column)}</th>" for column in RESULT_COLUMNS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_escape(value)}</td>" for value in row) + "</tr>"
        for row in results_rows(metrics)
    )
    return (
        f"<h2>Results</h2>\n<p>From {_escape(metrics_path.name)} (- : the stage did not run)."
        f"</p>\n<table><tr>{head}</tr>{rows}</table>\n"
    )


def _page_notes(notebook, problem: str, widgets: Path | str) -> list[str]:
    """Returns the lines shown above a notebook's page, changing its widget outputs if needed."""
    notes = []
    if problem:
        notes.append(f"**This executed copy is not a complete run: it {problem}.**")
    has_widgets = any(
        WIDGET_VIEW in output.get("data", {})
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )
    if has_widgets and isinstance(widgets, Path):
        notes.append(
            "**The widgets of this page are drawn as the run left them:** a slider moves, but "
            "what it computes (the answer beside it) needs a running kernel. Open the notebook "
            "in JupyterLab or Colab to use them."
        )
    if has_widgets and not isinstance(widgets, Path):
        notes.append(
            f"**The interactive widgets of this page are not drawn:** {widgets}. Run make html "
            "again with network once (it keeps a copy), or open the notebook in JupyterLab."
        )
        for cell in notebook.cells:  # a static fallback: one line where each widget would be
            for output in cell.get("outputs", []):
                if WIDGET_VIEW in output.get("data", {}):
                    output["data"] = {"text/plain": "[an interactive widget: not drawn here]"}
    return notes


# An image the page would load from the internet: Markdown's ![alt](http...) (or //host/...),
# with an optional title, and HTML's <img ... src="http...">.
REMOTE_MARKDOWN_IMAGE = re.compile(
    r"!\[(?P<alt>[^\]]*)\]\(\s*<?(?:https?:)?//[^\s)>]*>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)",
    re.IGNORECASE,
)
REMOTE_HTML_IMAGE = re.compile(
    r"<img\b(?=[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//)[^>]*>", re.IGNORECASE
)
HTML_ALT = re.compile(r"\balt\s*=\s*(?:\"([^\"]*)\"|'([^']*)')", re.IGNORECASE)


def offline_markdown(source: str) -> str:
    """Returns the Markdown ``source`` with each image from the internet replaced by its alt text.

    Introduced for ``make html``, whose pages are read offline: the Colab badge under each
    notebook's title (``[![Open In Colab](https://colab.research.google.com/assets/...svg)](...)``)
    would show as a broken image, and becomes a plain link, "Open In Colab". Local and inline
    (data URI) images are kept.
    """

    def html_alt(match: re.Match) -> str:
        alt = HTML_ALT.search(match.group(0))
        return ((alt.group(1) or alt.group(2)) if alt else "") or "image"

    text = REMOTE_MARKDOWN_IMAGE.sub(lambda match: match.group("alt") or "image", source)
    return REMOTE_HTML_IMAGE.sub(html_alt, text)


def collapsed_source(source: str) -> str:
    """Returns what JupyterLab shows of a collapsed cell (``jupyter.source_hidden``): its first
    line, ``# extra code: ...`` in the series, and a mark that the rest is folded away.

    Introduced for ``make html``, whose template would print every line: the pages read like the
    notebooks in JupyterLab, checks folded, their printed results in full.
    """
    lines = source.splitlines()
    return f"{lines[0]}  (collapsed)" if len(lines) > 1 else source


def html_site(
    executed: Path,
    target: Path,
    readme: str,
    widgets: Path | str = "the widget manager was not looked for",
    metrics: Path | None = None,
    settings: dict | None = None,
) -> Path:
    """Returns the index page of a static site made from the executed notebooks in ``executed``.

    Introduced in TEACHING.md (``make html``). One page per notebook (nbconvert's HTMLExporter,
    lab template, figures inline as data URIs, no script from the internet), and ``index.html``:
    the profile and data source of the run, the results table of ``metrics`` (metrics.json) and
    the README's notebook table linking to the pages, marking notebooks that stopped or did not
    run. ``widgets`` is the folder of the widget manager (:func:`widget_manager`), copied into the
    site so that widgets are drawn from their stored state, or why there is none: each page with
    widgets then says so in one line. ``settings`` (profile, data, ...) is used when the executed
    notebooks do not record theirs.
    """
    import shutil

    import mistune
    import nbformat
    from nbconvert import HTMLExporter

    notebooks = numbered_notebooks(executed)
    if not notebooks:
        raise LearnerError(
            f"No executed notebooks in {executed}. Run the series first with make run "
            "(same TL_* settings), then make html."
        )
    target.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    # Nothing from a CDN: the pages have no math and no JavaScript outputs, and draw widgets with
    # the local copy of the widget manager (an empty src loads nothing).
    exporter.require_js_url = ""
    exporter.mathjax_url = ""
    if isinstance(widgets, Path):
        shutil.copytree(widgets, target / WIDGET_FOLDER, dirs_exist_ok=True)
        exporter.widget_renderer_url = f"{WIDGET_FOLDER}/{WIDGET_SCRIPT}"
    pages, marks, records = {}, {}, {}
    for path in notebooks:
        notebook = nbformat.read(path, as_version=4)
        problem = notebook_problem(notebook)
        records[path.name] = _run_record(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "markdown":
                cell.source = offline_markdown(cell.source)
            elif cell.metadata.get("jupyter", {}).get("source_hidden"):
                cell.source = collapsed_source(cell.source)
        notes = _page_notes(notebook, problem, widgets)
        if notes:
            notebook.cells.insert(0, nbformat.v4.new_markdown_cell("\n\n".join(notes)))
        body, _ = exporter.from_notebook_node(notebook)
        page = f"{path.stem}.html"
        (target / page).write_text(body, encoding="utf-8")
        pages[path.name] = page
        marks[path.name] = problem
    recorded = [record for record in records.values() if record]
    shown = max(recorded, key=lambda r: r.get("executed", "")) if recorded else settings or {}
    for name, record in records.items():
        differ = [key for key in SETTINGS_SHOWN if record and record.get(key) != shown.get(key)]
        if differ and not marks[name]:
            marks[name] = "ran with other settings: " + ", ".join(
                f"{key} {record.get(key)}" for key in differ
            )
    table = mistune.create_markdown(plugins=["table"])(notebook_table(readme, pages, marks))
    title = "Transfer learning with Keras: cats vs dogs"
    ci_note = f"<p>{CI_NOTE}</p>\n" if shown.get("profile") == "ci" else ""
    index = target / "index.html"
    text = (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}"
        "td,th{border-bottom:1px solid #ddd;padding:.4em;text-align:left}</style></head>\n"
        f"<body><h1>{title}</h1>\n<p>The notebooks as executed by <code>make run</code> in "
        f"{_escape(executed)}. {_settings_line(shown)}</p>\n{ci_note}"
        f"{_results_html(metrics)}<h2>The notebooks</h2>\n{table}</body></html>\n"
    )
    return files.atomic_write_text(index, text)


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
# A check's printed line (helpers.exercises.evaluate writes it), as make grade parses it.
LINE = re.compile(
    r"^Exercise (\d+) \((\d\d)\): (correct|not done yet|wrong|for two classes only)\b"
)
# Exercises that ask for an explanation: a list of self-check questions, nothing run or graded.
SELF_CHECK = {("04", 1), ("05", 3), ("06", 3), ("09", 1), ("09", 2)}


def exercises_of(notebook: str) -> list[int]:
    """Returns the numbers of ``notebook``'s exercises (checked and self-check), in order.

    Used by ``make grade`` for the columns of a notebook's row.
    """
    from helpers.exercises import CHECKS

    numbers = {n for (nb, n) in CHECKS if nb == notebook} | {
        n for (nb, n) in SELF_CHECK if nb == notebook
    }
    return sorted(numbers)


@dataclass
class Grade:
    """One row of grades.csv: a submitted notebook and what each of its exercises got."""

    file: str  # relative to the submissions folder
    notebook: str  # "01".."08", or "" when it is not one of the series'
    exercises: dict[int, str] = field(default_factory=dict)  # pass, fail, not done, error, ...
    error: str = ""  # the first error a cell raised, a time-out or why it could not run
    seconds: float = 0.0

    def outcome(self) -> str:
        """Returns how the notebook went in one line, e.g. "2/4 passed (31 s)" or the error."""
        passed = self.row()["passed"]
        graded = f"{passed} passed" if passed else "nothing graded"
        if self.error:
            return f"{graded}; {self.error[:200]} ({self.seconds:.0f} s)"
        return f"{graded} ({self.seconds:.0f} s)"

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
            match = LINE.match(line)
            if match and match.group(2) == number:
                found[int(match.group(1))] = GRADE_OF[match.group(3)]
    return found


def grade_notebook(
    path: Path, submissions: Path, executed: Path, env: dict[str, str], time_limit: float
) -> Grade:
    """Returns the grade of one submitted notebook, executed in a fresh kernel (used by grade).

    Every cell runs even after an error (as a learner's Run All would not, but a teacher wants
    each exercise graded); the run stops at ``time_limit`` seconds. The executed copy is written
    under ``executed``; the submitted file is only read. The kernel talks over Unix sockets, as
    in ``make run`` (:func:`course_tools.run.kernel_transport`: no "running over TCP" warning), and
    is killed, not asked to shut down, when the notebook is over: asked while a cell still runs
    (the time limit), it printed a ``ZMQError`` traceback replying on its closed sockets.
    """

    import nbformat
    from nbclient.exceptions import CellTimeoutError

    grade = Grade(str(path.relative_to(submissions)), "")
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # not JSON, not a notebook: a row, never a stop
        grade.error = f"not a readable notebook: {type(error).__name__}: {error}"[:300]
        return grade
    grade.notebook = _notebook_number(path, notebook)
    expected = exercises_of(grade.notebook)
    if not expected:
        grade.error = "not one of the series' notebooks (its name should start with 01_ .. 08_)"
        return grade
    deadline = time.monotonic() + time_limit

    running = [0]  # the index of the cell being executed, for a time-out's message

    def on_cell_execute(cell, cell_index):
        running[0] = cell_index

    start = time.monotonic()
    try:
        with notebook_client(
            notebook,
            allow_errors=True,
            timeout_func=lambda cell: max(1, math.ceil(deadline - time.monotonic())),
            shutdown_kernel="immediate",  # nothing to save; see the docstring
            on_cell_execute=on_cell_execute,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        ) as client:
            # cleanup_kc: with its own kernel manager (km=), the client would leave it running
            client.execute(cleanup_kc=True, cwd=str(NOTEBOOKS), env=env)
    except Exception as error:  # a time-out, a dead kernel: this notebook's row says so
        if isinstance(error, CellTimeoutError) or time.monotonic() >= deadline:
            grade.error = (
                f"stopped at the time limit of {time_limit:.0f} s, in cell {running[0] + 1} "
                f"of {len(notebook.cells)}"
            )
        else:
            last = (str(error).strip().splitlines() or [""])[-1]
            grade.error = f"{type(error).__name__}: {last}"[:300]
    grade.seconds = time.monotonic() - start
    grade.error = grade.error or _first_error(notebook)
    found = _check_statuses(notebook, grade.notebook)
    for number in expected:
        if (grade.notebook, number) in SELF_CHECK:
            grade.exercises[number] = "self-check"
        else:
            grade.exercises[number] = found.get(number, "error")  # its check did not report
    copy = executed / grade.file
    copy.parent.mkdir(parents=True, exist_ok=True)
    with files.atomic_path(copy) as temporary:
        nbformat.write(notebook, temporary)
    return grade


def _left_out(path: Path, exclude: Path | None) -> bool:
    """Returns whether make grade leaves ``path`` alone: a checkpoint, or its own output."""
    if ".ipynb_checkpoints" in path.parts:
        return True
    return exclude is not None and path.resolve().is_relative_to(exclude.resolve())


def not_notebooks(submissions: Path, exclude: Path | None = None) -> list[Path]:
    """Returns the files under ``submissions`` that ``make grade`` does not run: not ``.ipynb``.

    A ``.py`` export, a ``.zip``, ``notebook.ipynb.txt``: each is listed by make grade, so a
    learner whose work came in another form is not silently missing from grades.csv. Hidden
    files (``.DS_Store``, macOS's ``._`` copies) and what :func:`submitted_notebooks` leaves out
    are not listed.
    """
    return [
        path
        for path in sorted(submissions.rglob("*"))
        if path.is_file()
        and path.suffix != ".ipynb"
        and not any(part.startswith(".") for part in path.relative_to(submissions).parts)
        and not _left_out(path, exclude)
    ]


def skipped_line(skipped: list[Path], submissions: Path, limit: int = 10) -> str:
    """Returns make grade's line naming the files it did not grade ("" when there are none)."""
    if not skipped:
        return ""
    names = [str(path.relative_to(submissions)) for path in skipped]
    shown = ", ".join(names[:limit]) + (
        f" and {len(names) - limit} more" if len(names) > limit else ""
    )
    count = f"{len(names)} file{'s' if len(names) > 1 else ''}"
    return f"not graded, not notebooks (.ipynb): {count}: {shown}"


def submitted_notebooks(submissions: Path, exclude: Path | None = None) -> list[Path]:
    """Returns the notebooks under ``submissions`` (any depth) that ``make grade`` runs.

    Checkpoints (``.ipynb_checkpoints``) and anything under ``exclude`` (its output) are left out.
    """
    return [
        path
        for path in sorted(submissions.rglob("*.ipynb"))
        if path.is_file() and not _left_out(path, exclude)
    ]


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
    ``echo`` gets one line naming the files that are not notebooks (not graded), then two lines
    per notebook: its name as it starts, and how it went (passes, or why it stopped).
    """
    if not submissions.is_dir():
        raise LearnerError(
            f"No folder {submissions}. Say where the submitted notebooks are: "
            "make grade SUBMISSIONS=path/to/folder"
        )
    paths = submitted_notebooks(submissions, exclude=target)
    skipped = skipped_line(not_notebooks(submissions, exclude=target), submissions)
    if not paths:
        raise LearnerError(
            f"No .ipynb files under {submissions}: nothing to grade"
            + (f" ({skipped})." if skipped else ".")
        )
    if skipped:
        echo(skipped)
    env = dict(os.environ if environ is None else environ)
    env.setdefault("TL_PROFILE", "ci")
    env.setdefault("TL_OUTPUT_DIR", str(target / "outputs"))
    env["TL_STRICT_CHECKS"] = "0"  # a check reports; it must not stop the notebook
    target.mkdir(parents=True, exist_ok=True)
    grades = []
    for index, path in enumerate(paths, 1):
        echo(f"[{index}/{len(paths)}] {path.relative_to(submissions)} ...")
        one = grade_notebook(path, submissions, target / "executed", env, time_limit)
        grades.append(one)
        echo(f"  {one.outcome()}")
    write_grades(grades, target / "grades.csv")
    return grades


def write_grades(grades: list[Grade], path: Path) -> Path:
    """Returns ``path`` after writing the grades to it as CSV, atomically (``make grade``)."""
    with (
        files.atomic_path(path) as temporary,
        temporary.open("w", newline="", encoding="utf-8") as file,
    ):
        writer = csv.DictWriter(file, fieldnames=list(Grade("", "").row()))
        writer.writeheader()
        for one in grades:
            writer.writerow(one.row())
    return path


def summary(grades: list[Grade], skipped: str = "") -> str:
    """Returns make grade's one-screen summary: passes per notebook and exercise, then errors,
    then ``skipped`` (:func:`skipped_line`: the files that are not notebooks)."""
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
    if skipped:
        lines.append(skipped)
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
        widgets = widget_manager()
        if not isinstance(widgets, Path):
            print(f"widgets will not be drawn: {widgets} (run make html once with network)")
        settings = {key: getattr(cfg, key) for key in SETTINGS_SHOWN}
        index = html_site(
            cfg.output_dir / "notebooks",
            cfg.output_dir / "html",
            readme,
            widgets=widgets,
            metrics=cfg.output_dir / "metrics.json",
            settings=settings,
        )
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
    submissions = Path(args.submissions)
    grades = grade(submissions, target, args.time_limit, environ, echo=print)
    print(summary(grades, skipped_line(not_notebooks(submissions, exclude=target), submissions)))
    print(f"grades: {target / 'grades.csv'}; executed copies: {target / 'executed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
