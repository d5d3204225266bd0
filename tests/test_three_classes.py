"""02 and 04-09 once more with three classes (``TL_DATA=sample:3``), as ``make run`` runs them.

Part of ``make test`` when it runs the ci profile on the sample (the two-class run is nbval's):
each notebook in a fresh kernel, in order, with ``TL_STRICT_CHECKS=1`` (an exercise check that
fails on its solution stops the notebook). It takes the quick profile's backbone, MobileNetV2
(random weights, the ci size), where nbval's takes ``full``'s Xception (unless ``TL_BACKBONE`` is
given): so 02 and 04-09 run on both kinds of base in CI, and took 224 s here against 269 s with
Xception (in one process, one after the other). The kernels start as a plain ``jupyter lab``
starts them (no ``TF_CPP_MIN_LOG_LEVEL``, and ipykernel copies what TensorFlow writes to file
descriptor 2 into the cells, which it does not under nbval), and no cell may show a TensorFlow
C++ log line: with the browser's Run All of 01, 03, 06 and 07 (tests/test_browser.py), every
notebook is checked for them.

Two chains, each in its own output folder and kept in one process, in order, by the root
conftest.py (the ``@`` in a test's id names its group): 02, 04, 05, 06, 07, where 05 starts from
04's model and 06 and 07 from 05's; and 08, 09, which need no earlier notebook (08 builds its own
model, 09 says that 05 has recorded nothing). The two chains can run in the two processes at once.
"""

from __future__ import annotations

import os

import nbformat
import pytest

from conftest import noise_lines
from course_tools import run
from helpers import config

# the quick profile's backbone, unless make test was given one
BACKBONE = (
    os.environ.get("TL_BACKBONE")
    or config.load({"TL_PROFILE": "quick"}, gpu=False, writable=False).backbone
)
CHAINS = {"a": ("02", "04", "05", "06", "07"), "b": ("08", "09")}
RUNS = [
    (chain, p)
    for p in run.numbered_notebooks()
    for chain, numbers in CHAINS.items()
    if p.name[:2] in numbers
]
ALONE = os.environ.get("TL_PROFILE", "ci") != "ci" or os.environ.get("TL_DATA")

pytestmark = pytest.mark.skipif(
    bool(ALONE), reason="the three-class run is part of the ci profile on the sample only"
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Returns the output folder of each chain, made when its first notebook runs."""
    made = {}

    def folder(chain: str):
        if chain not in made:
            made[chain] = tmp_path_factory.mktemp(f"ci-3-classes-{chain}")
        return made[chain]

    return folder


@pytest.mark.parametrize(
    ("chain", "path"), RUNS, ids=[f"{p.stem}@three-classes-{chain}" for chain, p in RUNS]
)
def test_runs_with_three_classes(chain, path, folders, monkeypatch):
    three_classes = folders(chain)
    monkeypatch.setenv("TL_PROFILE", "ci")
    monkeypatch.setenv("TL_DATA", "sample:3")
    monkeypatch.setenv("TL_BACKBONE", BACKBONE)
    monkeypatch.setenv("TL_OUTPUT_DIR", str(three_classes))
    monkeypatch.setenv("TL_STRICT_CHECKS", "1")
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)  # else ipykernel hides C++ output
    run.execute(path, three_classes / "notebooks")  # a failing cell raises with its traceback
    executed = nbformat.read(three_classes / "notebooks" / path.name, 4)
    texts = [
        out.get("text", "")
        for cell in executed.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    ]
    noise = noise_lines(texts)
    assert not noise, f"{path.name} shows TensorFlow log lines:\n" + "\n".join(noise[:5])
