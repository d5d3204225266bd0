"""helpers.exercises: every exercise has a check that can say correct, not done yet and wrong.

nbval runs the solution notebooks with ``TL_STRICT_CHECKS=1`` (``make test``), so there every
check must say correct. Here, without executing notebooks: each check says "not done yet" in a
student copy (the names it reads are defined only by solution cells), and a wrong answer per
notebook is reported as wrong. test_classroom.py executes student copies of 01 under make grade.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from helpers import classroom, exercises
from helpers.run import NOTEBOOKS, numbered_notebooks

SERIES = {path.name[:2]: path for path in numbered_notebooks()}


def _cells(number: str):
    return nbformat.read(SERIES[number], as_version=4).cells


def _tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def _assigned_names(sources: list[str]) -> set[str]:
    """Returns every name the code assigns, defines or imports (magics replaced by ``pass``)."""
    names = set()
    for source in sources:
        lines = [
            re.sub(r"^(\s*)[%!].*", r"\1pass", line) for line in source.splitlines()
        ]  # %pip inside an if block stays a valid block
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.FunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
    return names


def _exercise_numbers(cells) -> list[int]:
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    after = text[text.index("## Exercises") :]
    return [int(n) for n in re.findall(r"^(?:\*\*)?(\d+)\.(?:\*\*)?\s", after, flags=re.M)]


@pytest.fixture(params=sorted(SERIES), ids=lambda number: f"notebook {number}")
def number(request) -> str:
    return request.param


def test_every_exercise_has_a_check_cell_after_its_solution(number):
    cells = _cells(number)
    numbered = _exercise_numbers(cells)
    assert numbered and numbered == exercises.exercises_of(number), "one entry per exercise"
    for exercise in numbered:
        (index,) = [i for i, c in enumerate(cells) if c.get("id") == f"check-{number}-{exercise}"]
        cell = cells[index]
        assert _tags(cell) == ["check"]
        if (number, exercise) in exercises.SELF_CHECK:
            assert cell.cell_type == "markdown" and cell.source.count("\n- ") >= 2
        else:
            assert cell.cell_type == "code"
            assert f'exercises.check("{number}", {exercise}, globals())' in cell.source
        assert "solution" in _tags(cells[index - 1]), "right after a solution cell"


def test_student_copies_keep_the_check_cells(tmp_path):
    for copy in classroom.student_copies(NOTEBOOKS, tmp_path):
        number = copy.name[:2]
        kept = [c.get("id") for c in nbformat.read(copy, as_version=4).cells if "check" in _tags(c)]
        assert kept == [f"check-{number}-{n}" for n in exercises.exercises_of(number)]


def test_a_check_reads_only_names_that_the_solutions_define(number):
    # So in a student copy (solution cells removed) every check finds its names missing.
    cells = _cells(number)
    code = [c for c in cells if c.cell_type == "code"]
    body = _assigned_names([c.source for c in code if "solution" not in _tags(c)])
    solutions = _assigned_names([c.source for c in code if "solution" in _tags(c)])
    for (notebook, exercise), entry in exercises.CHECKS.items():
        if notebook != number:
            continue
        assert not set(entry.needs) & body, f"exercise {exercise}: defined outside the solutions"
        assert set(entry.needs) <= solutions, f"exercise {exercise}: the solution defines them"


def test_without_the_answers_every_check_says_not_done_yet(number):
    cells = _cells(number)
    body = _assigned_names(
        [c.source for c in cells if c.cell_type == "code" and "solution" not in _tags(c)]
    )
    namespace = {name: object() for name in body}  # what a student copy has defined
    for (notebook, exercise), entry in exercises.CHECKS.items():
        if notebook == number:
            result = exercises.evaluate(notebook, exercise, namespace)
            assert result.status == exercises.NOT_DONE, result.line
            assert exercises.LINE.match(result.line)
            assert all(f"`{name}`" in result.line for name in entry.needs)


def _predictions(logits, labels):
    from helpers import evaluate

    return evaluate.Predictions(np.asarray(logits, "float32"), np.asarray(labels))


def _array_changes(before, after):
    return [name for name in before if before[name].all() != after[name].all()]


class History:
    def __init__(self, **history):
        self.history = history


class _Sizes:  # what 08's exercise 2 reads of `splits` and `cfg`
    sizes = {"train": 100}
    batch_size = 16


EIGHT = {
    "splits": _Sizes,
    "cfg": _Sizes,
    "steps_per_epoch": {1: 7, 2: 4, 8: 1},
    "scaled_rate": {1: 1e-3, 2: 2e-3, 8: 8e-3},
}


# One wrong answer per notebook (and, for the cheap ones, the right answer beside it).
WRONG = {
    "01": (2, {"changed_weights": _array_changes}),
    "02": (1, {"split_sizes": [9305, 2326, 2327], "cache_mb": 942.1}),
    "03": (
        2,
        {
            "one": np.ones((4, 5, 5, 3)),
            "again": np.ones((4, 5, 5, 3)),
            "other": np.ones((4, 5, 5, 3)),
        },
    ),
    "04": (
        2,
        {
            "flip_features": np.eye(4),
            "train_features": np.eye(4),
            "history_2": History(val_accuracy=[0.5]),
        },
    ),
    "05": (1, {"counts": {"all": 10, 0.5: 12, 4: 8, 1: 2}}),
    "06": (2, {"own": np.arange(8.0).reshape(2, 2, 2), "other": np.arange(8.0).reshape(2, 2, 2)}),
    "07": (
        3,
        {
            "small_logits": np.array([1.0, -0.1, 2.0]),
            "plain_logits": np.array([1.0, 0.1, -2.0]),
            "flipped": np.array([1]),
        },
    ),
    "08": (2, {**EIGHT, "scaled_rate": {1: 1e-3, 2: 1e-3, 8: 1e-3}}),  # not scaled
}
RIGHT = {
    "08": (2, EIGHT),
    "01": (3, {"learns_without_recompile": False, "learns_after_recompile": True}),
    "02": (1, {"split_sizes": [9305, 2326, 2326], "cache_mb": 942.1}),
    "05": (1, {"counts": {"all": 10, 0.5: 6, 4: 8, 1: 2}}),
    "06": (2, {"own": np.arange(8.0).reshape(2, 2, 2), "other": -np.arange(8.0).reshape(2, 2, 2)}),
    "07": (
        3,
        {
            "small_logits": np.array([1.0, -0.1, 2.0]),
            "plain_logits": np.array([1.0, 0.1, -2.0]),
            "flipped": np.array([1, 2]),
        },
    ),
}


def test_a_wrong_answer_is_reported_as_wrong_with_a_hint(number):
    exercise, namespace = WRONG[number]
    result = exercises.evaluate(number, exercise, namespace)
    assert result.status == exercises.WRONG, result.line
    assert exercises.LINE.match(result.line) and "Hint: " in result.line


@pytest.mark.parametrize("number", sorted(RIGHT))
def test_a_right_answer_is_reported_as_correct(number):
    exercise, namespace = RIGHT[number]
    result = exercises.evaluate(number, exercise, namespace)
    assert result.status == exercises.CORRECT, result.line


def test_06_precision_is_scikit_learns_at_the_chosen_threshold():
    predictions = _predictions([-3, -2, -1, 0.5, 1, 2, 3, 4], [0, 0, 1, 0, 1, 1, 1, 1])
    # sigmoid(0.5) = 0.62: at thresholds of 0.63 and above only true dogs are called dogs
    namespace = {"predictions": predictions, "chosen": (0.63, 1.0, 0.8)}
    assert exercises.evaluate("06", 1, namespace).status == exercises.CORRECT
    for chosen in [(0.63, 0.9, 0.8), (0.7, 1.0, 0.8), None, (0.5, 5 / 6, 1.0)]:
        result = exercises.evaluate("06", 1, {**namespace, "chosen": chosen})
        assert result.status == exercises.WRONG, chosen


def test_check_prints_one_line_and_raises_only_when_strict(monkeypatch, capsys):
    monkeypatch.delenv(exercises.STRICT_VARIABLE, raising=False)
    exercises.check("07", 3, {})
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "Exercise 3 (07): not done yet" in out
    monkeypatch.setenv(exercises.STRICT_VARIABLE, "1")
    with pytest.raises(exercises.CheckFailed, match="not done yet"):
        exercises.check("07", 3, {})
    exercises.check("07", 3, RIGHT["07"][1])  # correct: no error even when strict
    assert capsys.readouterr().out.endswith("correct.\n")


def test_an_answer_of_the_wrong_kind_is_wrong_not_a_crash():
    result = exercises.evaluate("05", 1, {"counts": 5})
    assert result.status == exercises.WRONG and "raised" in result.line


def test_the_checks_never_print_a_solution_value():
    # The lines a learner sees name what is wrong, not the expected answer's numbers.
    result = exercises.evaluate("02", 1, {"split_sizes": [1, 2, 3], "cache_mb": 1.0})
    assert "9305" not in result.line and "2326" not in result.line
    assert Path(exercises.__file__).name == "exercises.py"
