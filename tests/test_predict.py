"""helpers.predict and ``python -m helpers.predict``: one preparation path, the model's sidecar,
good and bad files, missing paths, empty folders, no model. A tiny untrained model (MobileNet
alpha 0.25 at 32x32, random weights) saved in a temporary folder stands in for 05's."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from conftest import CLASS_COLOURS, ci_config, make_folder, save_image
from helpers import data, models, predict

TINY = dict(TL_BACKBONE="mobilenet", TL_ALPHA="0.25", TL_IMAGE_SIZE="32", TL_WEIGHTS="none")
KINDS = ("jpeg", "png", "gif", "bmp", "gray", "palette", "rgba", "cmyk")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Returns (cfg, path): a tiny classifier saved the way 05 saves its model."""
    output = tmp_path_factory.mktemp("runs")
    cfg = ci_config(TL_OUTPUT_DIR=str(output), **TINY)
    model = models.build_classifier(cfg, models.build_base(cfg))
    # A head with large weights, so logits are spread out and both classes occur.
    rng = np.random.default_rng(0)
    kernel, bias = model.get_layer("logit").get_weights()
    model.get_layer("logit").set_weights([rng.normal(0, 5, kernel.shape), bias])
    return cfg, models.save(model, cfg, predict.MODEL_NAME)


@pytest.fixture(scope="module")
def predictor(saved):
    return predict.load(saved[1])


def run_cli(*args, capsys):
    """Returns (exit status, stdout, stderr) of ``python -m helpers.predict`` run in-process."""
    status = predict.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def pipeline_image(path: Path, image_size: int) -> np.ndarray:
    """Returns ``path`` as training prepares it (scan_folder, files_dataset, resize)."""
    root = path.parent.parent
    scan = data.scan_folder(root)
    index = [p.name for p in scan.files].index(path.name) if path in scan.files else None
    if index is None:  # converted: the scan keeps the original in .converted, in the same order
        converted = [p for p in scan.files if p.parent == data.converted_folder()]
        index = scan.files.index(converted[scan.converted.index(path)])
    dataset = data.files_dataset([scan.files[index]], [0])
    (image,) = [np.asarray(x) for x, _ in dataset.map(lambda x, y: data.resize(x, y, image_size))]
    return image


# --- one preparation path -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_format_is_prepared_exactly_as_for_training(tmp_path, predictor, kind):
    """JPEG, PNG, GIF, BMP, grayscale, palette, RGBA, CMYK: same pixels, same logit."""
    path = save_image(tmp_path / "photos" / "cat" / f"x.{kind}", kind, size=(57, 31))
    save_image(tmp_path / "photos" / "dog" / "other.jpg", "jpeg", CLASS_COLOURS["dog"])
    expected = pipeline_image(path, predictor.image_size)
    prepared = data.prepare_image(data.read_image(path), predictor.image_size)
    assert prepared.shape == (32, 32, 3) and prepared.dtype == np.uint8
    np.testing.assert_array_equal(prepared, expected)
    (prediction,), problems = predict.predict_files(predictor, [path])
    assert problems == []
    (logit,) = predict.logits(predictor.model, expected[None])
    assert prediction.logit == logit


def test_a_file_gets_exactly_its_test_pipeline_logit(tmp_path, saved):
    """The test split through data.load, and the same files through predict: identical logits."""
    cfg, path = saved
    folder = make_folder(tmp_path / "photos", {"cat": 30, "dog": 30})
    for index, kind in enumerate(("png", "gif", "gray", "cmyk")):
        save_image(folder / "cat" / f"odd.{index}", kind, CLASS_COLOURS["cat"], (70, 40), index)
    cfg = ci_config(folder, TL_OUTPUT_DIR=str(path.parent), **TINY)
    splits = data.load(cfg)
    predictor = predict.load(path)
    expected = np.asarray(predictor.model.predict(splits.test, verbose=0)).reshape(-1)
    # The test split's files, in its order (the same split_indices call as data.load).
    scan = data.scan_folder(folder)
    originals = {
        copy: original
        for copy, original in zip(
            [p for p in scan.files if p.parent == data.converted_folder()],
            scan.converted,
            strict=True,
        )
    }
    _, _, order = data.split_indices(
        scan.labels, (data.VALIDATION_FRACTION, data.TEST_FRACTION), cfg.seed
    )
    files = [originals.get(scan.files[i], scan.files[i]) for i in order]
    predictions, problems = predict.predict_files(predictor, files, batch_size=cfg.batch_size)
    assert problems == []
    np.testing.assert_array_equal([p.logit for p in predictions], expected)


# --- the model knows what it needs ----------------------------------------------------------


def test_the_sidecar_records_class_names_size_and_backbone(saved, predictor):
    cfg, path = saved
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["class_names"] == ["cat", "dog"]
    assert sidecar["image_size"] == 32 and sidecar["backbone"] == "mobilenet"
    assert predictor.class_names == ["cat", "dog"] and predictor.image_size == 32
    assert predictor.notes == []


def test_load_saved_still_checks_settings_with_the_longer_sidecar(saved):
    cfg, _ = saved
    model, why = models.load_saved(cfg, predict.MODEL_NAME)
    assert model is not None, why
    other = ci_config(TL_OUTPUT_DIR=str(cfg.output_dir), **{**TINY, "TL_IMAGE_SIZE": "48"})
    model, why = models.load_saved(other, predict.MODEL_NAME)
    assert model is None and "other settings" in why


def test_class_names_come_from_the_folder(tmp_path):
    folder = make_folder(tmp_path / "pets", {"kitten": 3, "puppy": 3})
    assert data.class_names(ci_config(folder)) == ["kitten", "puppy"]


def test_an_old_sidecar_without_class_names_reads_them_from_its_data(tmp_path, saved):
    _, path = saved
    folder = make_folder(tmp_path / "pets", {"kitten": 2, "puppy": 2})
    copy = tmp_path / "old.keras"
    copy.write_bytes(path.read_bytes())
    sidecar = json.loads(path.with_suffix(".json").read_text())
    del sidecar["class_names"]
    copy.with_suffix(".json").write_text(json.dumps({**sidecar, "data": str(folder)}))
    loaded = predict.load(copy)
    assert loaded.class_names == ["kitten", "puppy"]
    assert any("kitten" in note for note in loaded.notes)


def test_a_model_without_sidecar_takes_its_size_from_the_model(tmp_path, saved):
    _, path = saved
    copy = tmp_path / "bare.keras"
    copy.write_bytes(path.read_bytes())
    loaded = predict.load(copy)
    assert loaded.image_size == 32 and loaded.class_names == ["cat", "dog"]
    (note,) = loaded.notes
    # Says plainly that the file is not there, and what is assumed instead (issue 25, item 6).
    assert "there is no sidecar bare.json" in note and "assumed to be 'cat' and 'dog'" in note
    assert "models.save" in note


def tiny_model(path: Path, units: int) -> Path:
    """Returns ``path`` after saving a bare model (no sidecar): 32x32 images in, ``units`` out."""
    import keras

    model = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(units)]
    )
    model.save(path)
    return path


def test_a_bare_model_of_n_classes_is_refused_naming_the_missing_sidecar(tmp_path, capsys):
    """No sidecar, five logits: no file says what the classes are, and the message says so.

    It used to say "its class names (x.json) list 2 classes ['cat', 'dog']" about a file that
    is not there (issue 25, item 6).
    """
    model = tiny_model(tmp_path / "x.keras", 5)
    photo = save_image(tmp_path / "a.jpg")
    status, out, err = run_cli(photo, "--model", model, capsys=capsys)
    assert status == 1 and out == ""
    assert "outputs 5 logits per image (5 classes)" in err
    assert "there is no sidecar x.json beside it" in err and "models.save" in err
    assert "list 2 classes" not in err and "cat" not in err


def test_class_names_read_from_the_data_are_named_as_such_when_they_do_not_fit(tmp_path, saved):
    """An old sidecar's data folder has three classes, the model one logit: the message names
    the folder the names came from, not the sidecar (which records none)."""
    _, path = saved
    folder = make_folder(tmp_path / "pets", {"a": 1, "b": 1, "c": 1})
    copy = tmp_path / "old.keras"
    copy.write_bytes(path.read_bytes())
    sidecar = json.loads(path.with_suffix(".json").read_text())
    del sidecar["class_names"]
    copy.with_suffix(".json").write_text(json.dumps({**sidecar, "data": str(folder)}))
    with pytest.raises(predict.PredictError, match=f"the class folders of {folder} list 3"):
        predict.load(copy)


def test_interpret_gives_the_probability_of_the_chosen_class():
    dog = predict.interpret(2.0, ["cat", "dog"])
    cat = predict.interpret(-2.0, ["cat", "dog"])
    assert dog.class_name == "dog" and cat.class_name == "cat"
    assert dog.probability == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert cat.probability == pytest.approx(dog.probability)


# --- the command line -----------------------------------------------------------------------


def test_cli_prints_one_line_per_image(tmp_path, saved, capsys):
    _, path = saved
    files = [save_image(tmp_path / f"a.{k}", k, size=(50, 40), seed=i) for i, k in enumerate(KINDS)]
    status, out, err = run_cli(*files, "--model", path, capsys=capsys)
    assert status == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == len(KINDS)
    for line, file in zip(lines, files, strict=True):
        name, class_name, probability = line.split("\t")
        assert name == str(file) and class_name in ("cat", "dog")
        assert 50.0 <= float(probability.rstrip("%")) <= 100.0


def test_cli_json(tmp_path, saved, capsys):
    _, path = saved
    file = save_image(tmp_path / "a.jpg")
    status, out, _ = run_cli(file, "--model", path, "--json", capsys=capsys)
    (entry,) = json.loads(out)
    assert status == 0 and entry["file"] == str(file)
    assert entry["class_name"] in ("cat", "dog") and 0.5 <= entry["probability"] <= 1.0
    assert entry["probability"] == predict.interpret(entry["logit"], ["cat", "dog"]).probability


def test_cli_folder_mixing_good_and_bad_files(tmp_path, saved, capsys):
    _, path = saved
    folder = tmp_path / "mixed"
    good = [save_image(folder / "good.jpg"), save_image(folder / "sub" / "good.png", "png")]
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "empty.jpg").write_bytes(b"")
    truncated = save_image(folder / "cut.jpg", size=(200, 150))
    truncated.write_bytes(truncated.read_bytes()[:300])
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    status, out, err = run_cli(folder, "--model", path, capsys=capsys)
    assert status == 0
    assert sorted(line.split("\t")[0] for line in out.strip().splitlines()) == sorted(
        map(str, good)
    )
    for name in ("notes.txt", "empty.jpg", "cut.jpg"):
        assert name in err
    assert ".DS_Store" not in err and "Traceback" not in err


def test_cli_missing_path_is_named_and_the_others_run(tmp_path, saved, capsys):
    _, path = saved
    good = save_image(tmp_path / "a.jpg")
    missing = tmp_path / "no_such_photo.jpg"
    status, out, err = run_cli(missing, good, "--model", path, capsys=capsys)
    assert status == 0 and str(good) in out
    assert f"{missing}: no such file or folder" in err
    status, out, err = run_cli(missing, "--model", path, capsys=capsys)
    assert status == 1 and out.strip() == "" and "no image could be classified" in err


def test_cli_empty_folder(tmp_path, saved, capsys):
    _, path = saved
    (tmp_path / "empty").mkdir()
    status, out, err = run_cli(tmp_path / "empty", "--model", path, capsys=capsys)
    assert status == 1 and out.strip() == ""
    assert f"{tmp_path / 'empty'}: folder holds no files" in err


def test_cli_no_model_says_run_05_or_pass_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TL_PROFILE", "ci")
    monkeypatch.setenv("TL_OUTPUT_DIR", str(tmp_path / "nothing_here"))
    status, out, err = run_cli(save_image(tmp_path / "a.jpg"), capsys=capsys)
    assert status == 1 and out == ""
    assert "05_fine_tuning" in err and "--model" in err and "Traceback" not in err
    status, _, err = run_cli(tmp_path / "a.jpg", "--model", tmp_path / "x.keras", capsys=capsys)
    assert status == 1 and "x.keras" in err


def test_cli_not_a_model_file(tmp_path, capsys):
    fake = tmp_path / "fake.keras"
    fake.write_text("hello")
    status, _, err = run_cli(save_image(tmp_path / "a.jpg"), "--model", fake, capsys=capsys)
    assert status == 1 and str(fake) in err and "not a complete .keras archive" in err
    assert "File not found" not in err


def test_cli_default_model_is_the_active_profiles(tmp_path, saved, capsys, monkeypatch):
    cfg, _ = saved
    monkeypatch.setenv("TL_PROFILE", "ci")
    monkeypatch.setenv("TL_OUTPUT_DIR", str(cfg.output_dir))
    status, out, _ = run_cli(save_image(tmp_path / "a.jpg"), capsys=capsys)
    assert status == 0 and out.count("\n") == 1


def test_cli_refuses_the_profiles_model_when_the_folder_has_other_classes_now(
    tmp_path, capsys, monkeypatch
):
    # 05 saved a model for three class folders; then two were added to the same TL_DATA.
    photos = make_folder(tmp_path / "photos", {"a": 2, "b": 2, "c": 2})
    env = dict(TL_DATA=str(photos), TL_OUTPUT_DIR=str(tmp_path / "run"), **TINY)
    cfg = ci_config(**env)
    model = models.build_classifier(cfg, models.build_base(cfg), class_count=3)
    models.save(model, cfg, predict.MODEL_NAME)
    for name, value in {"TL_PROFILE": "ci", **env}.items():
        monkeypatch.setenv(name, value)
    image = save_image(tmp_path / "x.jpg")
    assert run_cli(image, capsys=capsys)[0] == 0
    make_folder(photos, {"d": 2, "e": 2})
    status, out, err = run_cli(image, capsys=capsys)
    assert status == 1 and not out
    assert "3 classes ['a', 'b', 'c']" in err and "5: ['a', 'b', 'c', 'd', 'e']" in err, err
    model_path = tmp_path / "run" / f"{predict.MODEL_NAME}.keras"
    assert run_cli(image, "--model", model_path, capsys=capsys)[0] == 0  # a named model is used


@pytest.fixture
def read_only(monkeypatch):
    """Returns a function making a folder read-only: its mode, and for root (whom the mode does
    not stop) every creation of a file or folder in it fails as it would for a learner."""
    import builtins
    import errno
    import os

    folders = []

    def inside(path) -> bool:
        try:
            resolved = Path(os.fsdecode(path)).resolve()
        except (TypeError, ValueError):
            return False
        return any(resolved.is_relative_to(folder) for folder in folders)

    def refuse(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir
    writing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | getattr(os, "O_TMPFILE", 0)

    def guarded_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+"):
            if inside(file):
                refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        if flags & writing and inside(path):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if inside(path):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    def make(folder: Path) -> Path:
        folder.chmod(0o555)
        folders.append(folder.resolve())
        if os.geteuid() == 0:
            monkeypatch.setattr(builtins, "open", guarded_open)
            monkeypatch.setattr(io, "open", guarded_open)  # pathlib's write_text, ...
            monkeypatch.setattr(os, "open", guarded_os_open)
            monkeypatch.setattr(os, "mkdir", guarded_mkdir)
        return folder

    yield make
    for folder in folders:
        folder.chmod(0o755)


def test_cli_uses_the_model_of_a_read_only_output_folder(
    tmp_path, saved, capsys, monkeypatch, read_only
):
    """Prediction only reads TL_OUTPUT_DIR: a read-only one (a teacher's shared runs) will do.

    It used to stop with "the output folder cannot be written to" (issue 25, item 7); the
    notebooks, which write there, still stop at their Setup cell.
    """
    from helpers import config

    _, path = saved
    shared = tmp_path / "shared_runs"
    shared.mkdir()
    for file in (path, path.with_suffix(".json")):
        (shared / file.name).write_bytes(file.read_bytes())
    photo = save_image(tmp_path / "a.jpg")
    monkeypatch.setenv("TL_PROFILE", "ci")
    monkeypatch.setenv("TL_OUTPUT_DIR", str(shared))
    before = sorted(p.name for p in shared.iterdir())
    read_only(shared)
    with pytest.raises(config.ConfigError, match="cannot be written to"):
        config.load(gpu=False)  # what a notebook's Setup cell does
    status, out, err = run_cli(photo, capsys=capsys)
    assert status == 0, err
    assert out.startswith(f"{photo}\t") and "cannot be written" not in err
    assert sorted(p.name for p in shared.iterdir()) == before


def test_cli_as_a_program_help_and_no_traceback(tmp_path, saved):
    """The real command: --help documents it; bad files give messages, not a traceback."""
    _, path = saved
    root = Path(__file__).resolve().parents[1]
    shown = subprocess.run(
        [sys.executable, "-m", "helpers.predict", "--help"],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert shown.returncode == 0
    assert "--model" in shown.stdout and "--json" in shown.stdout and "Exit status" in shown.stdout
    (tmp_path / "bad.jpg").write_text("not an image")
    good = save_image(tmp_path / "good.jpg")
    ran = subprocess.run(
        [sys.executable, "-m", "helpers.predict", str(tmp_path), "--model", str(path)],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith(f"{good}\t")
    assert "bad.jpg" in ran.stderr and "Traceback" not in ran.stderr
    # Only our messages: TensorFlow's C++ start-up lines (CUDA probing, oneDNN) are hidden.
    assert all(line.startswith(("error:", "note:")) for line in ran.stderr.splitlines())


# --- the upload widget's logic --------------------------------------------------------------


def test_upload_result_names_the_class_and_probability(tmp_path, predictor):
    buffer = io.BytesIO()
    from conftest import rgb_image

    rgb_image(size=(60, 40)).save(buffer, "PNG")
    html = predict.upload_result(predictor, [{"name": "my_pet.png", "content": buffer.getvalue()}])
    expected = predict.predict_image(predictor, buffer.getvalue())
    assert "my_pet.png" in html and expected.class_name in html
    assert f"{expected.probability:.1%}" in html


def test_upload_result_with_digit_class_names_reads_as_classes(tmp_path):
    """Folders named 1, 2, 7: "a.png: 1 (80.0%), 2 (15.0%), 7 (5.0%)" read as numbers; the
    answer is in bold, the next classes are quoted (issue 25, item 10)."""
    import keras

    model = keras.models.load_model(tiny_model(tmp_path / "digits.keras", 3), compile=False)
    digits = predict.Predictor(model, ["1", "2", "7"], 32, "none", tmp_path / "digits.keras")
    buffer = io.BytesIO()
    from conftest import rgb_image

    rgb_image(size=(40, 40)).save(buffer, "PNG")
    html = predict.upload_result(digits, [{"name": "a.png", "content": buffer.getvalue()}])
    pattern = r"a\.png: <b>[127]</b> \(\d+\.\d%\), then '[127]' \(\d+\.\d%\), '[127]' \("
    assert re.fullmatch(pattern + r"\d+\.\d%\)", html), html


def test_upload_result_for_a_file_that_is_not_an_image(predictor):
    html = predict.upload_result(predictor, [{"name": "notes.txt", "content": b"hello"}])
    assert "notes.txt" in html and "not a usable image" in html
    assert "Choose a photo" in predict.upload_result(predictor, ())


def test_upload_widget_updates_its_text(predictor):
    buffer = io.BytesIO()
    from conftest import rgb_image

    rgb_image().save(buffer, "JPEG")
    box = predict.upload_widget(predictor)
    upload, result = box.children
    assert upload.accept == "image/*"
    upload.value = (
        {
            "name": "pet.jpg",
            "type": "image/jpeg",
            "size": 1,
            "content": memoryview(buffer.getvalue()),
            "last_modified": datetime.now(timezone.utc),
        },
    )
    assert "pet.jpg" in result.value and "%" in result.value


def test_tta_averages_an_image_and_its_mirror(predictor):
    ramp = np.linspace(0, 255, 32)[None, :, None] * np.ones((32, 1, 3))  # dark left, light right
    images = np.stack([ramp, ramp**2 / 255, 255 - ramp]).astype(np.uint8)
    plain = predict.logits(predictor.model, images)
    mirrored = predict.logits(predictor.model, images[:, :, ::-1])
    np.testing.assert_allclose(predict.tta_logits(predictor.model, images), (plain + mirrored) / 2)
    assert not np.array_equal(plain, mirrored)  # the mirror is a different input
    given = predict.tta_logits(predictor.model, images, plain=plain)  # only the mirrors predicted
    np.testing.assert_allclose(given, (plain + mirrored) / 2)
