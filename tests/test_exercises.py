"""helpers.exercises: every exercise has a check that can say correct, not done yet and wrong.

nbval runs the solution notebooks with ``TL_STRICT_CHECKS=1`` (``make test``), so there every
check must say correct. Here, without executing notebooks: each check says "not done yet" in a
student copy (the names it reads are defined only by solution cells), and a wrong answer per
notebook is reported as wrong. test_classroom.py executes student copies of 01 under make grade.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from course_tools import classroom
from course_tools.run import NOTEBOOKS, numbered_notebooks
from helpers import exercises

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
    assert numbered and numbered == classroom.exercises_of(number), "one entry per exercise"
    for exercise in numbered:
        (index,) = [i for i, c in enumerate(cells) if c.get("id") == f"check-{number}-{exercise}"]
        cell = cells[index]
        assert _tags(cell) == ["check"]
        if (number, exercise) in classroom.SELF_CHECK:
            assert cell.cell_type == "markdown" and cell.source.count("\n- ") >= 2
        else:
            assert cell.cell_type == "code"
            assert f'exercises.check("{number}", {exercise}, globals())' in cell.source
        assert "solution" in _tags(cells[index - 1]), "right after a solution cell"


def test_student_copies_keep_the_check_cells(tmp_path):
    for copy in classroom.student_copies(NOTEBOOKS, tmp_path):
        number = copy.name[:2]
        kept = [c.get("id") for c in nbformat.read(copy, as_version=4).cells if "check" in _tags(c)]
        assert kept == [f"check-{number}-{n}" for n in classroom.exercises_of(number)]


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
            assert classroom.LINE.match(result.line)
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
    "05": (1, {"counts": {"all": 10, 0.5: 6, 4: 8}}),  # no count for TL_UNFREEZE=1
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


@pytest.mark.parametrize("number", sorted({notebook for notebook, _ in exercises.CHECKS}))
def test_a_wrong_answer_is_reported_as_wrong_with_a_hint(number):  # self-check ones: none
    exercise, namespace = WRONG[number]
    result = exercises.evaluate(number, exercise, namespace)
    assert result.status == exercises.WRONG, result.line
    assert classroom.LINE.match(result.line) and "Hint: " in result.line


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


# --- Each check rejects plausible wrong answers and accepts right ones written another way -------
# (issue 24, item 8: these cases passed when wrong, or failed when right, before.)


def _status(notebook: str, exercise: int, namespace: dict) -> str:
    return exercises.evaluate(notebook, exercise, namespace).status


def _built_conv_and_norm() -> dict:
    import keras

    conv, conv_norm = keras.layers.Conv2D(8, 3), keras.layers.BatchNormalization()
    conv.build((None, 32, 32, 3))
    conv_norm.build((None, 30, 30, 8))
    return {"conv": conv, "conv_norm": conv_norm}


def test_01_1_compares_the_written_prediction_with_the_built_layers():
    layers = _built_conv_and_norm()
    right = {"conv": (2, 0, 224, 0), "conv_norm": (2, 2, 16, 16)}
    # Building the layers the text names is not the answer: the prediction is.
    assert _status("01", 1, layers) == exercises.NOT_DONE
    assert _status("01", 1, {**layers, "predicted_counts": right}) == exercises.CORRECT
    written_otherwise = {
        "conv_norm": np.array([2, 2, 16, 16]),
        "conv": [np.int64(2), 0, 224.0, 0],
        "note": "extra keys are fine",
    }
    assert _status("01", 1, {**layers, "predicted_counts": written_otherwise}) == exercises.CORRECT
    for wrong in [
        {"conv": (2, 0, 224, 0), "conv_norm": (4, 0, 32, 0)},  # BatchNorm all trainable
        {"conv": (2, 0, 216, 0), "conv_norm": (2, 2, 16, 16)},  # no bias counted
        {"conv": (2, 0, 224, 0), "conv_norm": (2, 2, 16)},
        {"conv": (2, 0, 224, 0)},
        {"conv": "2, 0, 224, 0", "conv_norm": (2, 2, 16, 16)},
    ]:
        result = exercises.evaluate("01", 1, {**layers, "predicted_counts": wrong})
        assert result.status == exercises.WRONG, wrong
        assert "224" not in result.line and "16" not in result.line, "no solution value shown"


def test_03_1_accepts_two_flips_as_well_as_one_that_flips_both_ways():
    import keras

    def upside_down(*modes):
        return keras.Sequential([keras.layers.RandomFlip(mode) for mode in modes])

    for right in (("horizontal_and_vertical",), ("vertical", "horizontal")):
        assert _status("03", 1, {"upside_down": upside_down(*right)}) == exercises.CORRECT
    for wrong in (("horizontal",), ("vertical",), ("horizontal", "horizontal")):
        assert _status("03", 1, {"upside_down": upside_down(*wrong)}) == exercises.WRONG


def _changed_as_set(before, after):
    return {name for name in before if not np.array_equal(before[name], after[name])}


def _changed_reversed(before, after):
    return [name for name in reversed(before) if not np.array_equal(before[name], after[name])]


def test_01_2_accepts_the_names_in_any_order_or_as_a_set():
    for answer in (_changed_as_set, _changed_reversed):
        assert _status("01", 2, {"changed_weights": answer}) == exercises.CORRECT, answer
    for wrong in (
        _array_changes,  # a.all() != b.all()
        lambda before, after: [n for n in before if not np.allclose(before[n], after[n])],
        lambda before, after: [n for n in before if not np.array_equal(before[n], after[n])] * 2,
        lambda before, after: list(before),
        lambda before, after: "kernel",
    ):
        assert _status("01", 2, {"changed_weights": wrong}) == exercises.WRONG


def test_01_2_verdict_on_a_set_does_not_depend_on_the_hash_seed():
    # A set of strings iterates in an order PYTHONHASHSEED decides: one verdict for every seed.
    script = (
        "import numpy as np\n"
        "from helpers import exercises\n"
        "def changed_weights(before, after):\n"
        "    return {n for n in before if not np.array_equal(before[n], after[n])}\n"
        "print(exercises.evaluate('01', 2, {'changed_weights': changed_weights}).status)\n"
    )
    root = Path(__file__).resolve().parents[1]
    verdicts = set()
    for seed in range(6):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        verdicts.add(done.stdout.strip())
    assert verdicts == {exercises.CORRECT}


def test_01_3_accepts_numpy_and_tensor_booleans():
    import tensorflow as tf

    nothing, something = np.zeros(3), np.ones(3)
    answers = [
        (np.any(nothing), np.any(something)),  # numpy's bool_
        (np.array(False), np.array([True])[0]),
        (tf.constant(False), tf.reduce_any(tf.constant([False, True]))),
    ]
    for without, after in answers:
        namespace = {"learns_without_recompile": without, "learns_after_recompile": after}
        assert _status("01", 3, namespace) == exercises.CORRECT, (without, after)
    for without, after in [
        (np.any(something), np.any(something)),
        (np.True_, np.False_),
        (0, 1),
        ("False", "True"),
        (np.array([False]), np.array([True])),
    ]:
        namespace = {"learns_without_recompile": without, "learns_after_recompile": after}
        assert _status("01", 3, namespace) == exercises.WRONG, (without, after)


class _Splits:
    def __init__(self, train):
        self.train = train


def _training_split(count: int = 37, size: int = 20, batch: int = 8, seed: int = 0):
    """Returns data.load's kind of training set: random uint8 images, cached, reshuffled each pass,
    in several batches (the last one smaller)."""
    import tensorflow as tf

    from helpers import data

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, size=count)
    raw = tf.data.Dataset.from_tensor_slices((images, labels))
    return data.prepare(raw, size, batch, shuffle=True, seed=seed)


def test_03_4_rejects_a_pipeline_without_augmentation_or_one_that_replays_its_copies():
    import tensorflow as tf

    from helpers import augment

    train = _training_split()
    augmentation = augment.build()

    def augment_batch(images, labels):
        return augmentation(tf.cast(images, "float32"), training=True), labels

    rights = {
        "the solution": train.map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE),
        "layers called without training=": train.map(
            lambda x, y: (augmentation(tf.cast(x, tf.float32)), y)
        ),
        "tf.image": train.map(
            lambda x, y: (tf.image.rot90(tf.image.random_flip_up_down(tf.cast(x, tf.float32))), y)
        ),
    }
    for name, train_ds in rights.items():
        status = _status("03", 4, {"splits": _Splits(train), "train_ds": train_ds})
        assert status == exercises.CORRECT, name
    wrongs = {
        "only cast": train.map(lambda x, y: (tf.cast(x, tf.float32), y)),
        "cast and rescaled": train.map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y)),
        "augmented, then cached": train.map(augment_batch).cache(),
        "uint8": train,
    }
    for name, train_ds in wrongs.items():
        status = _status("03", 4, {"splits": _Splits(train), "train_ds": train_ds})
        assert status == exercises.WRONG, name


def _feature_extractor(size: int = 20):
    import keras

    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )


def test_04_2_compares_flip_features_with_features_of_mirrored_images():
    import tensorflow as tf

    from helpers import train

    splits = _Splits(_training_split())
    extractor = _feature_extractor()
    train_features, _ = train.extract_features(extractor, splits.train)
    history = History(val_accuracy=[0.5])
    base = {"splits": splits, "feature_extractor": extractor, "train_features": train_features}

    def features_of(transform):
        mapped = splits.train.map(lambda x, y: (transform(x), y))
        return train.extract_features(extractor, mapped)[0]

    rights = {
        "the solution": features_of(tf.image.flip_left_right),
        "reversed width axis": features_of(lambda x: x[:, :, ::-1, :]),
        "reversed with tf.reverse, one big batch": train.extract_features(
            extractor,
            splits.train.unbatch().batch(64).map(lambda x, y: (tf.reverse(x, axis=[2]), y)),
        )[0],
    }
    for name, flip_features in rights.items():
        namespace = {**base, "flip_features": flip_features, "history_2": history}
        assert _status("04", 2, namespace) == exercises.CORRECT, name
    rng = np.random.default_rng(0)
    half = features_of(tf.image.flip_left_right)
    half[: len(half) // 2] = train_features[: len(half) // 2]
    wrongs = {
        "zeros": 0 * train_features,
        "noise": rng.normal(size=train_features.shape).astype("float32"),
        "noise of the same spread": rng.permutation(train_features.ravel()).reshape(
            train_features.shape
        ),
        "unflipped": train_features,
        "upside down": features_of(tf.image.flip_up_down),
        "half unflipped": half,
    }
    for name, flip_features in wrongs.items():
        namespace = {**base, "flip_features": flip_features, "history_2": history}
        assert _status("04", 2, namespace) == exercises.WRONG, name


def _unfreeze_config(tmp_path):
    from conftest import ci_config

    return ci_config(
        TL_BACKBONE="mobilenet_v2", TL_IMAGE_SIZE="32", TL_OUTPUT_DIR=str(tmp_path / "runs")
    )


def test_05_1_compares_counts_with_the_counts_of_this_runs_base(tmp_path):
    import keras

    from helpers import models

    cfg = _unfreeze_config(tmp_path)
    base = models.build_base(cfg)
    counts = {}
    for how in ("all", 0.5, 4, 1):  # the notebook's freezing code, written out
        cut = models.first_trainable_index(base, how)
        base.trainable = True
        for layer in base.layers[:cut]:
            layer.trainable = False
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        counts[how] = len(base.trainable_weights)
    assert _status("05", 1, {"cfg": cfg, "counts": counts}) == exercises.CORRECT
    as_text = {str(how): np.int64(count) for how, count in counts.items()}
    assert _status("05", 1, {"cfg": cfg, "counts": as_text}) == exercises.CORRECT
    invented = {"all": 9, 0.5: 5, 4: 3, 1: 2}  # in the right order, but not this base's
    assert invented["all"] > invented[4] > invented[1] and invented["all"] > invented[0.5]
    shifted = {how: count + 2 for how, count in counts.items()}
    for wrong in (invented, shifted, {**counts, "0.5": counts[0.5]}):
        assert _status("05", 1, {"cfg": cfg, "counts": wrong}) == exercises.WRONG, wrong


def _classifier(base_trainable: bool = False):
    import keras

    from helpers import models

    keras.utils.set_random_seed(5)
    base = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(8, activation="relu"),
        ],
        name=models.BASE_NAME,
    )
    base.trainable = base_trainable
    return keras.Sequential([keras.Input((6,)), base, keras.layers.Dense(1)])


def _fit_one_epoch(model, x, y):
    return model.fit(x, y, validation_data=(x, y), epochs=1, batch_size=16, verbose=0)


def test_05_2_rejects_a_base_that_did_not_train(tmp_path, monkeypatch):
    import keras

    from helpers import models

    cfg = _unfreeze_config(tmp_path)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6)).astype("float32"), rng.integers(0, 2, 64)
    loss = keras.losses.BinaryCrossentropy(from_logits=True)

    start = _classifier()
    starting_weights = [w.numpy() for w in start.weights]

    def from_start():  # a copy of the starting model, as 05's solution loads 04's
        model = _classifier()
        model.set_weights(starting_weights)
        return model

    def namespace(model, history):
        return {"cfg": cfg, "model_2": model, "history_2": history}

    # Right: unfrozen (BatchNormalization kept frozen), compiled at 1e-3, one epoch.
    right = from_start()
    right.get_layer(models.BASE_NAME).trainable = True
    right.get_layer(models.BASE_NAME).layers[1].trainable = False
    right.compile(keras.optimizers.Adam(1e-3), loss)
    assert _status("05", 2, namespace(right, _fit_one_epoch(right, x, y))) == exercises.CORRECT

    # Wrong: never unfrozen.
    frozen = from_start()
    frozen.compile(keras.optimizers.Adam(1e-3), loss)
    assert _status("05", 2, namespace(frozen, _fit_one_epoch(frozen, x, y))) == exercises.WRONG

    # Wrong: unfrozen after a first fit, without compiling again (Keras trains the old set).
    stale = from_start()
    stale.compile(keras.optimizers.Adam(1e-3), loss)
    _fit_one_epoch(stale, x, y)
    stale.get_layer(models.BASE_NAME).trainable = True
    assert _status("05", 2, namespace(stale, _fit_one_epoch(stale, x, y))) == exercises.WRONG

    # Without Adam's count of arrays to go by, the comparison with 04's saved model catches it.
    monkeypatch.setattr(models, "load_saved", lambda cfg, name: (from_start(), ""))
    plain = from_start()
    plain.compile(keras.optimizers.SGD(1e-3), loss)
    _fit_one_epoch(plain, x, y)
    plain.get_layer(models.BASE_NAME).trainable = True
    assert _status("05", 2, namespace(plain, _fit_one_epoch(plain, x, y))) == exercises.WRONG
    moved = from_start()
    moved.get_layer(models.BASE_NAME).trainable = True
    moved.compile(keras.optimizers.SGD(1e-3), loss)
    assert _status("05", 2, namespace(moved, _fit_one_epoch(moved, x, y))) == exercises.CORRECT
