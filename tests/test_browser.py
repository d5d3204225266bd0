"""Browser tests: JupyterLab in the system's chromium, driven by Playwright, as a learner uses it.

What only a browser shows, for the notebooks with widgets (01 checkboxes, 03 sliders, 06 threshold
slider, 07 upload): Run All in JupyterLab, then the page shows no error, no traceback and no
TensorFlow C++ log line; the widget is drawn as a widget (not as text like ``VBox(children=...)``),
and a click, a key press or an upload changes what it shows. Where these tests can run, this Run
All is the two-class run of these four notebooks: the root conftest.py leaves them out of nbval,
which would only run them again (an error shows here as a traceback and stops the cells after
it; ``TL_STRICT_CHECKS`` reaches this server's kernels too). The other notebooks have no widget:
nbval runs them, and tests/test_three_classes.py checks that 02 and 04-09 show no C++ log line.

One JupyterLab server (on a free port, with a generated token, ``TL_PROFILE=ci`` and a temporary
``TL_OUTPUT_DIR``) and one browser serve the whole session. The tests skip with one line when
there is no chromium (``apt-get install chromium``) or no ``playwright`` package. About 2 minutes
on 2 CPU cores."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from conftest import noise_lines
from course_tools.run import NOTEBOOKS, numbered_notebooks

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RUN_TIMEOUT = 300  # seconds for one notebook's Run All (ci: well under a minute each)
# JupyterLab settings for the test server: every cell in the page (no virtual scrolling, so all
# outputs can be read), no autosave (the notebooks in the project stay as they are), no news.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}
# What an error looks like in an output: a traceback, or the one line a LearnerError shows.
ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^\w*(Error|Exception)\b: ", re.M)
# A widget the frontend could not draw falls back to its text representation.
WIDGET_AS_TEXT = re.compile(r"\b(VBox|HBox|Box|Checkbox|FloatSlider|FileUpload|interactive)\(")


def find_chromium() -> str | None:
    """Returns the path of the system's chromium, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def can_run() -> bool:
    """Returns True when the tests below can run here: a chromium and the playwright package.

    The root conftest.py asks, before it leaves the notebooks run here out of nbval."""
    return find_chromium() is not None and importlib.util.find_spec("playwright") is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """A JupyterLab server started for the tests, and the REST calls the tests need."""

    def __init__(self, tmp: Path):
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = tmp / "lab-settings"
        for plugin, values in LAB_SETTINGS.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
        env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a plain `jupyter lab` has it
        env.update(
            TL_PROFILE="ci",
            TL_OUTPUT_DIR=str(tmp / "runs"),
            KERAS_HOME=str(tmp / "keras_home"),
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(tmp / "lab-workspaces"),
        )
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--port={self.port}",
            "--ip=127.0.0.1",
            f"--ServerApp.root_dir={NOTEBOOKS}",
            f"--IdentityProvider.token={self.token}",
        ]
        if hasattr(os, "getuid") and os.getuid() == 0:
            command.append("--allow-root")
        self.log = open(tmp / "lab.log", "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 120
        while True:
            try:
                self.api("GET", "/api/status")
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    log = (tmp / "lab.log").read_text()[-2000:]
                    raise RuntimeError(f"JupyterLab did not start:\n{log}") from None
                time.sleep(0.5)

    def api(self, method: str, path: str):
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="session")
def browser():
    """Returns a Playwright chromium browser, or skips when there is none."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def lab(browser, tmp_path_factory):
    """Returns a running JupyterLab (root: notebooks/) with the ci profile; stops it afterwards."""
    before = {p.name: p.read_bytes() for p in numbered_notebooks()}
    server = Lab(tmp_path_factory.mktemp("lab"))
    yield server
    server.stop()
    after = {p.name: p.read_bytes() for p in numbered_notebooks()}
    assert after == before, "the browser tests changed notebooks/ (autosave should be off)"


@pytest.fixture(scope="session")
def executed(lab, browser):
    """Returns a function: notebook name -> its page after Run All (each notebook runs once)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    pages = {}

    def run(name: str):
        if name not in pages:
            pages[name] = run_all(context, lab, name)
        return pages[name]

    yield run
    context.close()


def run_all(context, lab: Lab, name: str):
    """Returns the page of ``name`` after Run All has finished (or stopped at an error)."""
    cells = nbformat.read(NOTEBOOKS / name, 4).cells
    code_cells = sum(c.cell_type == "code" for c in cells)
    # A collapsed cell (the Colab block: jupyter.source_hidden) shows no input prompt to read.
    hidden = sum(c.metadata.get("jupyter", {}).get("source_hidden", False) for c in cells)
    page = context.new_page()
    page.goto(f"{lab.url}/lab/tree/{name}?token={lab.token}")
    prompts = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt")
    idle = page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
    deadline = time.monotonic() + 120
    while prompts.count() < code_cells - hidden or not idle.count():  # loaded, kernel started
        if time.monotonic() > deadline:
            pytest.fail(f"{name}: {prompts.count()} of {code_cells} cells loaded in 120 s")
        time.sleep(0.5)
    deadline = time.monotonic() + RUN_TIMEOUT
    started, clicked = False, -1e9
    while True:
        texts = [text for text in prompts.all_inner_texts() if text.strip()]  # visible ones
        busy = any("*" in text for text in texts)
        done = all(re.search(r"\[\d+\]", text) for text in texts)
        started = started or busy or any(re.search(r"\[\d+\]", text) for text in texts)
        if started and not busy and (done or error_texts(page)) and idle.count():
            return page
        if not started and time.monotonic() - clicked > 15:
            # Run All (again: a click while the kernel is still connecting can be ignored; no
            # cell has been queued then, so clicking again cannot run anything twice).
            page.locator('.lm-MenuBar-itemLabel:text-is("Run")').click()
            page.locator('.lm-Menu-itemLabel:text-is("Run All Cells")').click()
            clicked = time.monotonic()
        if time.monotonic() > deadline:
            pytest.fail(f"{name}: Run All did not finish in {RUN_TIMEOUT} s; prompts: {texts}")
        time.sleep(1)


def output_texts(page, mime: str = "") -> list[str]:
    selector = ".jp-OutputArea-output" + (f'[data-mime-type="{mime}"]' if mime else "")
    return page.locator(selector).all_inner_texts()


def error_texts(page) -> list[str]:
    """Returns the page's outputs that show an error (a traceback or an error line)."""
    texts = output_texts(page, "application/vnd.jupyter.stderr")
    return [text for text in texts if ERROR_TEXT.search(text)]


NOTEBOOK_NAMES = [path.name for path in numbered_notebooks()]
# The notebooks with widgets: what the browser alone shows (the others: nbval, see the docstring)
EXPLORERS = [n for n in NOTEBOOK_NAMES if n.startswith(("01_", "03_", "06_", "07_"))]


@pytest.mark.parametrize("name", EXPLORERS)
def test_run_all_shows_no_error_and_no_log_noise(executed, name):
    page = executed(name)
    errors = error_texts(page)
    assert not errors, f"{name} shows an error:\n{errors[0][-1500:]}"
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
    prompts = [p for p in prompts if p.strip()]  # a collapsed cell's prompt shows nothing
    not_run = [p for p in prompts if not re.search(r"\[\d+\]", p)]
    assert not not_run, f"{name}: {len(not_run)} of {len(prompts)} code cells did not run"
    log_lines = noise_lines(output_texts(page))
    assert not log_lines, f"{name} shows TensorFlow C++ log lines:\n" + "\n".join(log_lines[:5])
    as_text = [t for t in output_texts(page, "text/plain") if WIDGET_AS_TEXT.search(t)]
    assert not as_text, f"{name}: a widget is shown as text, not drawn: {as_text[0][:200]}"


def notebook_named(prefix: str) -> str:
    """Returns the notebook whose name starts with ``prefix``, or skips while it does not exist."""
    for name in NOTEBOOK_NAMES:
        if name.startswith(prefix):
            return name
    pytest.skip(f"no notebook {prefix}_*.ipynb yet")


def wait_for_change(read, before: str, what: str, timeout: float = 60) -> str:
    """Returns ``read()`` once it differs from ``before``; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = read()
        if now != before:
            return now
        time.sleep(0.25)
    pytest.fail(f"{what} did not change within {timeout:.0f} s (still {before[:200]!r})")


def test_01_checkboxes_change_the_counts(executed):
    page = executed(notebook_named("01"))
    explorer = page.locator(".jp-OutputArea-output .widget-vbox").filter(
        has=page.locator(".widget-checkbox")
    )
    assert explorer.count() >= 1, "01: the trainable explorer is not drawn as a widget"
    explorer = explorer.last
    boxes = explorer.locator(".widget-checkbox input[type=checkbox]")
    assert boxes.count() >= 2, "01: the explorer shows fewer than two layer checkboxes"
    counts = explorer.locator(".widget-html").filter(has_text="trainable:").last
    before = counts.inner_text()
    assert re.search(r"trainable: [\d,]+ \| non-trainable: [\d,]+", before), before
    boxes.first.click()
    after = wait_for_change(counts.inner_text, before, "01: the parameter counts")
    assert re.search(r"trainable: [\d,]+", after), after


def test_03_slider_redraws_the_grid(executed):
    page = executed(notebook_named("03"))
    sliders = page.locator(".jp-OutputArea-output .widget-slider")
    assert sliders.count() >= 3, "03: the augmentation sliders are not drawn as widgets"
    rotation = page.locator(".widget-slider", has_text="rotation")
    explorer = page.locator(".jp-OutputArea-output .widget-vbox").filter(has=rotation).last
    rotation = explorer.locator(".widget-slider", has_text="rotation").first
    figure = explorer.locator("img.widget-image").first
    figure.wait_for()
    before = figure.get_attribute("src")
    rotation.locator(".noUi-handle").first.focus()
    page.keyboard.press("ArrowRight")
    wait_for_change(
        lambda: explorer.locator("img.widget-image").first.get_attribute("src") or "",
        before,
        "03: the augmented grid after moving the rotation slider",
    )


def test_06_threshold_slider_changes_precision_and_recall(executed):
    page = executed(notebook_named("06"))
    slider = page.locator(".jp-OutputArea-output .widget-slider").filter(has_text="threshold")
    assert slider.count() >= 1, "06: no threshold slider drawn as a widget"
    output = (
        page.locator(".jp-OutputArea-output")
        .filter(has=page.locator(".widget-slider", has_text="threshold"))
        .last
    )
    slider = output.locator(".widget-slider", has_text="threshold").first
    numbers = re.compile(r"precision\D{0,20}\d.*recall\D{0,20}\d|recall\D{0,20}\d.*precision", re.S)

    def live_text() -> str:
        texts = output.locator(".widget-html, .widget-output").all_inner_texts()
        return "\n".join(t for t in texts if "precision" in t and "recall" in t)

    before = live_text()
    assert numbers.search(before), f"06: no precision and recall numbers: {before!r}"
    slider.locator(".noUi-handle").first.focus()
    page.keyboard.press("End")  # the highest threshold: fewer images called positive
    after = wait_for_change(live_text, before, "06: precision and recall after moving the slider")
    assert numbers.search(after), after


def test_07_upload_classifies_a_photo(executed, tmp_path):
    from PIL import Image

    page = executed(notebook_named("07"))
    upload = page.locator(".jp-OutputArea-output .widget-upload")
    assert upload.count() >= 1, "07: no upload button drawn as a widget"
    output = page.locator(".jp-OutputArea").filter(has=page.locator(".widget-upload")).last
    before = output.inner_text()
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (96, 96), (200, 120, 40)).save(photo)
    # ipywidgets' FileUpload keeps its <input type=file> out of the page and clicks it from the
    # button: choose the file the way a learner does, through the file chooser the click opens.
    with page.expect_file_chooser() as chooser_info:
        output.locator(".widget-upload").last.click()
    chooser = chooser_info.value
    accept = chooser.element.get_attribute("accept") or ""
    assert "image" in accept, f"07: upload accepts any file (accept={accept!r})"
    chooser.set_files(str(photo))
    # The button's count changes at once; the answer follows when the kernel has classified it.
    answer = re.compile(r"\b(cat|dog)\b\W+\d+(\.\d+)?\s*%", re.I)
    deadline, after = time.monotonic() + 60, before
    while time.monotonic() < deadline and not answer.search(after):
        time.sleep(0.25)
        after = output.inner_text()
    assert answer.search(after), (
        f"07: no answer naming cat or dog with a percentage after an upload: {after[-300:]!r}"
    )
