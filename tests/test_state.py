"""Files of state: atomic writes (a save killed midway loses nothing), damaged or missing files
detected and recovered before work, the output folder checked when settings load, and a saved
model reused only with the settings that trained it. Tiny models; no training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import ci_config
from helpers import config, files, models, predict, train

ROOT = Path(__file__).resolve().parents[1]


def tiny_model(seed: int = 0) -> keras.Model:
    """Returns a two-class, one-logit model on 32x32 images (what predict.load accepts)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="logit")(x))


@pytest.fixture
def cfg(tmp_path):
    return ci_config(TL_OUTPUT_DIR=str(tmp_path / "run"))


# --- helpers.files --------------------------------------------------------------------------


def test_atomic_write_replaces_and_a_failed_write_leaves_the_old_file(tmp_path):
    path = files.atomic_write_text(tmp_path / "state.txt", "old")
    with pytest.raises(RuntimeError), files.atomic_path(path) as temporary:
        temporary.write_text("half of the new")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.txt"], "the temporary is removed"
    files.atomic_write_json(path, {"new": 1})
    assert json.loads(path.read_text()) == {"new": 1}


def test_atomic_path_replaces_a_folder_whole(tmp_path):
    folder = tmp_path / "saved_model"
    with files.atomic_path(folder) as temporary:
        temporary.mkdir()
        (temporary / "a").write_text("1")
    with pytest.raises(ValueError), files.atomic_path(folder) as temporary:
        temporary.mkdir()
        (temporary / "b").write_text("half")
        raise ValueError
    assert [p.name for p in folder.iterdir()] == ["a"], "a failed export leaves the old folder"
    with files.atomic_path(folder) as temporary:
        temporary.mkdir()
        (temporary / "b").write_text("2")
    assert [p.name for p in folder.iterdir()] == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved_model"]


# --- a save killed midway -------------------------------------------------------------------

# Runs in a subprocess: saves a second model over the first, stopping (to be killed) at one
# point of the save: in the middle of writing the model file, or between model and sidecar.
KILLED_SAVE = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from conftest import ci_config
from helpers import files, models
import keras
from test_state import tiny_model

cfg = ci_config(TL_OUTPUT_DIR={output!r})
where = {where!r}

def stop_here():
    print("stopped", flush=True)
    time.sleep(120)

if where == "model":
    real_save = keras.Model.save
    def half_save(self, path, *args, **kwargs):
        real_save(self, path, *args, **kwargs)
        data = Path(path).read_bytes()
        with open(path, "r+b") as file:  # the file half written when the kill comes
            file.truncate(len(data) // 2)
        stop_here()
    keras.Model.save = half_save
else:
    def stopped_write(path, obj, **kwargs):
        stop_here()
    files.atomic_write_json = stopped_write
models.save(tiny_model(seed=1), cfg, "fine_tuned_model")
"""


def kill_a_save(output: Path, where: str) -> int:
    """Returns the process id of a save into ``output`` killed (SIGKILL) at ``where``."""
    script = KILLED_SAVE.format(tests=str(ROOT / "tests"), output=str(output), where=where)
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    try:
        assert process.stdout.readline().strip() == "stopped", "the save did not reach its stop"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    return process.pid


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if files.TEMPORARY_NAME.match(p.name))


def age(*paths: Path, seconds: float = files.STALE_AFTER + 60) -> None:
    """Sets the modification times of ``paths`` (and all they hold) ``seconds`` back."""
    import time

    then = time.time() - seconds
    for path in paths:
        for item in [path, *(path.rglob("*") if path.is_dir() else [])]:
            os.utime(item, (then, then), follow_symlinks=False)


def test_a_save_killed_while_writing_the_model_leaves_the_previous_model(cfg):
    old = tiny_model(seed=0)
    path = models.save(old, cfg, "fine_tuned_model")
    killed = kill_a_save(cfg.output_dir, "model")
    loaded, why = models.load_saved(cfg, "fine_tuned_model")
    assert loaded is not None, why
    for a, b in zip(loaded.get_weights(), old.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert predict.load(path).model is not None

    # The killed save's half-written model is left behind (nothing runs at a SIGKILL) ...
    folder = cfg.output_dir
    (leftover,) = temporaries(folder)
    assert leftover.startswith(f".fine_tuned_model.keras.atomic-{killed}-"), leftover
    # ... files of the user's that look alike, all as old as it, with the dead writer's pid:
    unrelated = [
        f".fine_tuned_model.keras.atomic-{killed}-mine.tmp.keras",  # not 8 random characters
        f"fine_tuned_model.keras.atomic-{killed}-abcdefgh.tmp.keras",  # no leading dot
        f".notes.txt.atomic-{killed}-abcdefgh.tmp.md",  # not the suffix of the file it replaces
        f".fine_tuned_model.keras.{killed}.tmp.keras",
    ]
    for name in unrelated:
        (folder / name).write_text("the user's")
    age(folder / leftover, *(folder / name for name in unrelated))
    with files.atomic_path(folder / "history.json") as live:  # a writer still writing
        live.write_text("{}")
        age(live)
        files.atomic_write_json(folder / "metrics.json", {})  # the next save into the folder
        assert not (folder / leftover).exists(), "the killed save's temporary is cleaned up"
        assert live.exists(), "a live writer's temporary is left alone, however old"
    assert json.loads((folder / "history.json").read_text()) == {}
    assert all((folder / name).read_text() == "the user's" for name in unrelated)
    state = ["fine_tuned_model.json", "fine_tuned_model.keras", "history.json", "metrics.json"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(state + unrelated)


def dead_pid() -> int:
    """Returns the process id of a process that has ended (and was waited for)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_dead_writers_temporary_is_kept_until_it_is_old(tmp_path):
    """A process id means nothing on another machine sharing the folder: age is checked too."""
    recent = tmp_path / f".state.json.atomic-{dead_pid()}-abcdefgh.tmp.json"
    recent.write_text("half")
    files.atomic_write_text(tmp_path / "other.txt", "x")
    assert recent.exists(), "kept: its writer may run on another machine"
    age(recent)
    files.atomic_write_text(tmp_path / "other.txt", "x")
    assert not recent.exists(), "removed once nothing changed in it for STALE_AFTER"


def test_a_folder_moved_aside_by_a_killed_save_is_put_back(tmp_path):
    """Killed between its two renames, a folder's save leaves the previous folder aside only."""
    pid = dead_pid()
    aside = tmp_path / f".saved_model.atomic-{pid}-abcdefgh.old"
    (aside / "variables").mkdir(parents=True)
    (aside / "saved_model.pb").write_text("the previous export")
    new = tmp_path / f".saved_model.atomic-{pid}-ijklmnop.tmp"  # complete or not: unknown
    new.mkdir()
    (tmp_path / f".model.tflite.atomic-{pid}-qrstuvwx.old").mkdir()  # replaced already
    (tmp_path / "model.tflite").write_text("the new file")
    age(aside, new, tmp_path / f".model.tflite.atomic-{pid}-qrstuvwx.old")
    files.atomic_write_text(tmp_path / "metrics.json", "{}")
    assert (tmp_path / "saved_model" / "saved_model.pb").read_text() == "the previous export"
    assert (tmp_path / "model.tflite").read_text() == "the new file"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.json",
        "model.tflite",
        "saved_model",
    ]


def test_a_save_killed_between_model_and_sidecar_is_detected(cfg):
    path = models.save(tiny_model(seed=0), cfg, "fine_tuned_model")
    kill_a_save(cfg.output_dir, "sidecar")
    loaded, why = models.load_saved(cfg, "fine_tuned_model")
    assert loaded is None and "does not match its settings file" in why and str(path) in why
    with pytest.raises(predict.PredictError, match="does not match"):
        predict.load(path)


# --- damaged state -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda p: p.write_bytes(b""), "is empty (0 bytes"),
        (lambda p: p.write_bytes(p.read_bytes()[:300]), "not a complete .keras archive"),
        (lambda p: p.with_suffix(".json").write_text('{"backbone": "x",'), "is damaged"),
        (lambda p: p.with_suffix(".json").unlink(), "has no settings file"),
    ],
    ids=["empty model", "truncated model", "truncated sidecar", "no sidecar"],
)
def test_a_damaged_model_or_sidecar_is_named_and_treated_as_absent(cfg, damage, expected):
    path = models.save(tiny_model(), cfg, "fine_tuned_model")
    damage(path)
    model, why = models.load_saved(cfg, "fine_tuned_model")
    assert model is None and expected in why and path.stem in why, why
    assert "File not found" not in why


def test_the_command_line_names_a_damaged_model_or_sidecar(cfg):
    path = models.save(tiny_model(), cfg, "fine_tuned_model")
    sidecar = path.with_suffix(".json")
    sidecar.write_text(sidecar.read_text()[:40])
    with pytest.raises(predict.PredictError, match=f"{sidecar}.*damaged.*05_fine_tuning"):
        predict.load(path)
    path.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(predict.PredictError, match="not a complete .keras") as error:
        predict.load(path)
    assert "File not found" not in str(error.value) and str(path) in str(error.value)


def test_a_damaged_metrics_file_is_set_aside_with_a_warning(cfg, capsys):
    train.record_metrics(cfg, "transfer_learning", test_accuracy=0.9)
    path = train.metrics_path(cfg)
    damaged = path.read_text()[:-5]
    path.write_text(damaged)
    metrics = train.record_metrics(cfg, "evaluation", test_accuracy=0.8)
    assert metrics == {"evaluation": {"test_accuracy": 0.8}}
    assert path.with_name("metrics.json.damaged").read_text() == damaged, "nothing lost"
    warning = capsys.readouterr().err
    assert "Warning:" in warning and str(path) in warning and "metrics.json.damaged" in warning


def test_settings_load_sets_a_damaged_metrics_file_aside_before_any_work(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text('{"transfer_learning": {')
    ci_config(TL_OUTPUT_DIR=str(tmp_path))
    assert not (tmp_path / "metrics.json").exists()
    assert (tmp_path / "metrics.json.damaged").is_file()
    assert "metrics.json.damaged" in capsys.readouterr().err


@pytest.mark.parametrize("content", [None, "{not json"], ids=["missing", "damaged"])
def test_a_missing_history_plots_what_exists_and_says_what_is_missing(cfg, capsys, content):
    path = train.history_path(cfg, "transfer_learning")
    if content is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    head = train.load_history(cfg, "transfer_learning")
    assert head is None
    assert str(path) in capsys.readouterr().err
    fine = {"accuracy": [0.7, 0.8], "loss": [0.5, 0.4]}
    combined, starts = train.combine_histories(head, fine)
    assert starts == [1] and np.isnan(combined["accuracy"][0])
    assert combined["accuracy"][1:] == [0.7, 0.8]
    head_end, fine_start = starts[0] - 1, starts[0]  # what 05 prints from them
    assert np.isnan(combined["loss"][head_end]) and combined["loss"][fine_start] == 0.5


# --- the output folder ---------------------------------------------------------------------


def test_an_output_folder_that_cannot_be_written_stops_at_settings(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(config.ConfigError) as error:
        ci_config(TL_OUTPUT_DIR=str(blocker / "runs"))
    message = str(error.value)
    assert "TL_OUTPUT_DIR=" in message and "cannot be written" in message
    assert "make lab" in message and "%env TL_OUTPUT_DIR" in message, "both ways to change it"


def test_a_read_only_output_folder_stops_at_settings(tmp_path, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)  # root can write anywhere
    with pytest.raises(config.ConfigError, match="TL_OUTPUT_DIR=.*Permission denied"):
        ci_config(TL_OUTPUT_DIR=str(tmp_path))


# --- stale reuse ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable, value",
    [
        ("TL_EPOCHS", "3"),
        ("TL_FINE_TUNE_EPOCHS", "3"),
        ("TL_SEED", "7"),
        ("TL_BATCH_SIZE", "8"),
        ("TL_TEST_DATA", "TEST_FOLDER"),
    ],
)
def test_a_saved_model_is_not_reused_when_a_training_setting_changed(cfg, folder, variable, value):
    models.save(tiny_model(), cfg, "fine_tuned_model")
    assert models.load_saved(cfg, "fine_tuned_model")[0] is not None
    value = str(folder) if value == "TEST_FOLDER" else value
    other = ci_config(TL_OUTPUT_DIR=str(cfg.output_dir), **{variable: value})
    model, why = models.load_saved(other, "fine_tuned_model")
    assert model is None and variable in why and "other settings" in why, why


def test_an_old_sidecar_without_the_new_settings_is_not_reused(cfg):
    path = models.save(tiny_model(), cfg, "transfer_model")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    for key in ("epochs", "seed", "model_file"):
        del sidecar[key]
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    model, why = models.load_saved(cfg, "transfer_model")
    assert model is None and "TL_EPOCHS was 'not recorded'" in why


# --- the command line ----------------------------------------------------------------------


@pytest.mark.parametrize("size", ["-3", "0", "many"])
def test_predict_refuses_a_batch_size_below_one(size, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "helpers.predict", str(tmp_path), "--batch-size", size],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--batch-size" in result.stderr and "1 or more" in result.stderr
    assert "Traceback" not in result.stderr
