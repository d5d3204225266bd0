"""helpers.data: the folder check, formats, splits, the pipeline and the TFDS failure message."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from conftest import CLASS_COLOURS, ci_config, make_folder, save_image, tree_hashes
from helpers import data
from helpers.errors import LearnerError

# --- files that must be skipped, and said so ---------------------------------------------------


def _truncated_jpeg(path: Path) -> None:
    save_image(path, "jpeg", size=(64, 48))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


BAD_FILES = {
    "empty.jpg": lambda p: p.write_bytes(b""),
    "truncated.jpg": _truncated_jpeg,
    "notes.jpg": lambda p: p.write_text("not a photo, whatever the extension says\n"),
    "Thumbs.db": lambda p: p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200)),
    ".DS_Store": lambda p: p.write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100)),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_skipped_and_reported(folder, name):
    bad = folder / "cat" / name
    BAD_FILES[name](bad)
    scan = data.scan_folder(folder)
    assert [item.path for item in scan.skipped] == [bad]
    assert bad not in scan.files
    assert scan.counts() == {"cat": 20, "dog": 20}  # every good image still there
    report = scan.report()
    assert "1 skipped" in report
    assert f"cat/{name}" in report  # which file, so the learner can find it


def test_reasons_say_why(folder):
    for name, write in BAD_FILES.items():
        write(folder / "dog" / name)
    reasons = {item.path.name: item.reason for item in data.scan_folder(folder).skipped}
    assert reasons["empty.jpg"] == "empty file"
    assert reasons["notes.jpg"] == "not an image"
    assert "truncated" in reasons["truncated.jpg"]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_huge_image_is_skipped_not_fatal(folder, monkeypatch):
    huge = save_image(folder / "dog" / "panorama.png", "png", size=(80, 60))
    # Pillow refuses images over 2 x MAX_IMAGE_PIXELS; lowered, 80 x 60 counts as huge while the
    # folder's other images (at most 52 x 30) still load.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    scan = data.scan_folder(folder)
    (skipped,) = scan.skipped
    assert skipped.path == huge and "too large" in skipped.reason
    assert scan.counts() == {"cat": 20, "dog": 20}


def test_report_lists_a_limited_number_of_files(folder):
    for index in range(12):
        (folder / "dog" / f"broken{index:02d}.jpg").write_bytes(b"")
    report = data.scan_folder(folder).report(limit=10)
    assert "12 skipped" in report
    assert "... and 2 more" in report


def test_skipped_files_never_reach_the_pipeline(folder):
    BAD_FILES["truncated.jpg"](folder / "cat" / "truncated.jpg")
    BAD_FILES["notes.jpg"](folder / "dog" / "notes.jpg")
    splits = data.load_raw(ci_config(folder))
    assert sum(splits.sizes.values()) == 40
    assert len(splits.skipped) == 2
    for dataset in (splits.train, splits.validation, splits.test):
        for _ in dataset:  # decoding a skipped file here would raise
            pass


# --- formats and colour modes --------------------------------------------------------------------

KINDS = ["png", "gif", "bmp", "gray", "palette", "rgba", "cmyk"]


@pytest.mark.parametrize("kind", KINDS)
def test_format_loads_with_three_channels(folder, kind):
    path = save_image(folder / "dog" / f"odd.{kind}", kind, CLASS_COLOURS["dog"], size=(33, 21))
    scan = data.scan_folder(folder)
    assert not scan.skipped
    # The file itself, or its converted copy (kept outside the folder) for what TF cannot decode.
    (odd,) = [f for f in scan.files if f == path or not f.is_relative_to(folder)]
    dataset = data.files_dataset(scan.files, scan.labels)
    image, label = next(iter(dataset.skip(scan.files.index(odd))))
    assert int(label) == 1
    assert image.shape == (21, 33, 3)
    assert image.dtype.name == "uint8"
    if kind != "gray":  # the colours survive (no channel swap, no CMYK inversion)
        mean = image.numpy().reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(mean, CLASS_COLOURS["dog"], atol=25)


@pytest.mark.parametrize("kind", ["gray", "palette", "rgba", "cmyk", "gif", "bmp"])
def test_whole_folder_of_one_kind_loads_through_load(tmp_path, kind):
    folder = make_folder(tmp_path / "photos", {"cat": 12, "dog": 12}, kind=kind)
    splits = data.load(ci_config(folder))
    images, labels = next(iter(splits.train))
    assert images.shape[1:] == (75, 75, 3)
    assert images.dtype.name == "uint8"
    assert set(labels.numpy()) <= {0, 1}


def _write(path: Path, image: Image.Image, image_format: str, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, image_format, **options)
    return path


def _two_colour(colour, size=(40, 30)) -> Image.Image:
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[:] = colour
    pixels[: size[1] // 3] = (20, 180, 90)  # a second colour, so a palette has two entries
    return Image.fromarray(pixels)


def _translucent(colour) -> Image.Image:
    image = _two_colour(colour).convert("RGBA")
    image.putalpha(200)  # an opaque alpha channel is dropped by the encoder
    return image


def _bmp_16bit(path: Path, colour, size=(33, 21)) -> Path:
    """Writes a 16-bit (RGB555) BMP, which Pillow reads and TensorFlow 2.21 refuses."""
    import struct

    width, height = size
    row = (width * 2 + 3) // 4 * 4
    red, green, blue = (c >> 3 for c in colour)
    pixel = ((red << 10) | (green << 5) | blue).to_bytes(2, "little")
    pixels = (pixel * width + bytes(row - 2 * width)) * height
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 16, 0, len(pixels), 2835, 2835, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"BM" + struct.pack("<IHHI", 54 + len(pixels), 0, 0, 54) + info + pixels)
    return path


# Each writer makes one file; the pipeline must decode it to the colour it holds, converted or not.
TF_READY_FILES = {  # TensorFlow 2.21 decodes these correctly: read as they are, no copy
    "cmyk.jpg": lambda p, c: save_image(p, "cmyk", c),
    "plain.webp": lambda p, c: _write(p, _two_colour(c), "WEBP", lossless=True),
    "palette.gif": lambda p, c: save_image(p, "gif", c),
    "grey16.png": lambda p, c: _write(
        p, Image.fromarray(np.full((30, 40), 200 * 257, np.uint16)), "PNG"
    ),
}
CONVERTED_FILES = {  # TensorFlow refuses these, or decodes them wrongly: a PNG copy is made
    "photo.tiff": lambda p, c: _write(p, _two_colour(c), "TIFF"),
    "alpha.webp": lambda p, c: _write(p, _translucent(c), "WEBP", lossless=True),
    "palette.bmp": lambda p, c: _write(p, _two_colour(c).convert("P"), "BMP"),
    "rgb16.bmp": lambda p, c: _bmp_16bit(p, c),
    "rgb24.bmp": lambda p, c: save_image(p, "bmp", c),  # fine for TF, but Pillow can't tell
}


def _expected_mean(path: Path) -> np.ndarray:
    if path.name == "grey16.png":
        return np.array([200.0, 200.0, 200.0])  # 16 bits scaled to 8, not clipped to 255
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=float).reshape(-1, 3).mean(axis=0)


@pytest.mark.parametrize("name", sorted(TF_READY_FILES) + sorted(CONVERTED_FILES))
def test_each_format_is_read_as_is_or_converted_and_keeps_its_colours(folder, keras_home, name):
    converts = name in CONVERTED_FILES
    write = CONVERTED_FILES[name] if converts else TF_READY_FILES[name]
    original = write(folder / "cat" / name, CLASS_COLOURS["cat"])
    scan = data.scan_folder(folder)
    assert not scan.skipped
    assert scan.converted == ([original] if converts else [])
    if converts:
        (copy,) = [f for f in scan.files if not f.is_relative_to(folder)]
        assert copy.is_relative_to(keras_home)  # never inside the learner's folder
        assert "1 converted" in scan.report()
    else:
        copy = original
        assert original in scan.files
    image, _ = next(iter(data.files_dataset([copy], [0])))
    mean = image.numpy().reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(mean, _expected_mean(original), atol=4)


def test_the_formats_left_to_tensorflow_are_the_ones_it_decodes(tmp_path):
    # If a TensorFlow update starts refusing one of them, this says which.
    import tensorflow as tf

    for name, write in TF_READY_FILES.items():
        path = write(tmp_path / name, CLASS_COLOURS["dog"])
        tf.io.decode_image(path.read_bytes(), channels=3, expand_animations=False)
    for name in ("photo.tiff", "alpha.webp", "rgb16.bmp"):
        path = CONVERTED_FILES[name](tmp_path / name, CLASS_COLOURS["dog"])
        with pytest.raises(tf.errors.InvalidArgumentError):
            tf.io.decode_image(path.read_bytes(), channels=3, expand_animations=False)


def test_png_named_jpg_loads(folder):
    path = save_image(folder / "cat" / "really_a_png.jpg", "png")
    with Image.open(path) as image:
        assert image.format == "PNG"
    scan = data.scan_folder(folder)
    assert path in scan.files and not scan.skipped


# --- folder layout -------------------------------------------------------------------------------


def test_classes_are_sorted_and_hidden_folders_ignored(folder):
    make_folder(folder, {"bird": 5})
    save_image(folder / ".ipynb_checkpoints" / "cat-checkpoint.jpg")
    save_image(folder / "__MACOSX" / "cat" / "._cat.jpg")
    save_image(folder / "cat" / ".ipynb_checkpoints" / "cat.0-checkpoint.jpg")
    scan = data.scan_folder(folder)
    assert scan.class_names == ["bird", "cat", "dog"]
    assert scan.counts() == {"bird": 5, "cat": 20, "dog": 20}
    assert not any(".ipynb_checkpoints" in str(f) for f in scan.files)


def test_images_in_nested_subfolders_count_for_their_class(folder):
    save_image(folder / "cat" / "2024" / "summer.jpg")
    assert data.scan_folder(folder).counts()["cat"] == 21


def test_missing_path_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(data.DataError) as caught:
        data.scan_folder(missing)
    assert f"{missing} does not exist" in str(caught.value)
    assert "TL_DATA=sample" in str(caught.value)  # and what to do instead


def test_no_class_folders(tmp_path):
    for index in range(3):
        save_image(tmp_path / f"loose{index}.jpg")
    with pytest.raises(data.DataError, match="no class folders"):
        data.scan_folder(tmp_path)


def test_only_one_class(tmp_path):
    make_folder(tmp_path, {"cat": 3})
    with pytest.raises(data.DataError, match="only one class folder.*Add a folder"):
        data.scan_folder(tmp_path)


def test_classes_one_level_down_get_a_hint(tmp_path):
    # The Microsoft archive unzipped, then TL_DATA pointed one level too high.
    make_folder(tmp_path / "PetImages", {"Cat": 3, "Dog": 3})
    with pytest.raises(data.DataError, match="one level down") as caught:
        data.scan_folder(tmp_path)
    assert str(tmp_path / "PetImages") in str(caught.value)
    assert data.scan_folder(tmp_path / "PetImages").class_names == ["Cat", "Dog"]


def test_a_class_with_no_usable_image(folder):
    (folder / "bird").mkdir()
    (folder / "bird" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + bytes(60))
    (folder / "bird" / "empty.jpg").write_bytes(b"")
    with pytest.raises(data.DataError) as caught:
        data.scan_folder(folder)
    message = str(caught.value)
    assert "bird" in message and "no usable image" in message
    assert "bird/empty.jpg" in message  # the report of what was skipped


def test_data_errors_are_learner_errors(tmp_path):
    with pytest.raises(LearnerError):
        data.scan_folder(tmp_path / "missing")


def test_the_folder_is_never_modified(folder, keras_home):
    for name, write in BAD_FILES.items():
        write(folder / "cat" / name)
    for kind in KINDS:
        save_image(folder / "dog" / f"odd.{kind}", kind)
    save_image(folder / ".ipynb_checkpoints" / "x.jpg")
    before = tree_hashes(folder)
    splits = data.load(ci_config(folder))
    for dataset in (splits.train, splits.validation, splits.test):
        for _ in dataset:
            pass
    assert tree_hashes(folder) == before  # same files, same bytes, nothing added or removed
    assert any(keras_home.rglob("*.png"))  # the conversions went to the cache instead


# --- splits --------------------------------------------------------------------------------------


def _file_order(splits: data.Splits) -> dict[str, list[bytes]]:
    """Returns each split's images as bytes, in dataset order (to compare splits and orders)."""
    return {
        name: [image.numpy().tobytes() for image, _ in getattr(splits, name)]
        for name in ("train", "validation", "test")
    }


def test_split_sizes_add_up_and_are_stratified(folder):
    splits = data.load_raw(ci_config(folder))
    assert splits.sizes == {"train": 32, "validation": 4, "test": 4}
    assert splits.class_names == ["cat", "dog"]
    for name in ("validation", "test"):
        labels = [int(label) for _, label in getattr(splits, name)]
        assert labels.count(0) == labels.count(1) == 2
    order = _file_order(splits)
    everything = [image for images in order.values() for image in images]
    assert len(set(everything)) == 40  # disjoint: no image in two splits


def test_splits_are_reproducible_from_the_seed(folder):
    first = _file_order(data.load_raw(ci_config(folder, TL_SEED="1")))
    again = _file_order(data.load_raw(ci_config(folder, TL_SEED="1")))
    other = _file_order(data.load_raw(ci_config(folder, TL_SEED="2")))
    assert first == again
    assert set(first["validation"]) != set(other["validation"])


def test_split_indices_directly():
    labels = [0] * 50 + [1] * 30
    a = data.split_indices(labels, (0.1, 0.1), seed=3)
    b = data.split_indices(labels, (0.1, 0.1), seed=3)
    c = data.split_indices(labels, (0.1, 0.1), seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])
    assert [len(part) for part in a] == [64, 8, 8]
    assert sorted(np.concatenate(a).tolist()) == list(range(80))


def test_separate_test_folder(tmp_path):
    train_folder = make_folder(tmp_path / "train", {"cat": 20, "dog": 20})
    test_folder = make_folder(tmp_path / "test", {"cat": 3, "dog": 4})
    splits = data.load_raw(ci_config(train_folder, TL_TEST_DATA=str(test_folder)))
    assert splits.sizes == {"train": 36, "validation": 4, "test": 7}
    assert [int(label) for _, label in splits.test] == [0, 0, 0, 1, 1, 1, 1]
    assert len(splits.scans) == 2
    assert str(test_folder) in splits.source


def test_test_folder_with_other_classes(tmp_path):
    train_folder = make_folder(tmp_path / "train", {"cat": 20, "dog": 20})
    test_folder = make_folder(tmp_path / "test", {"cats": 3, "dogs": 3})
    with pytest.raises(data.DataError, match="classes") as caught:
        data.load_raw(ci_config(train_folder, TL_TEST_DATA=str(test_folder)))
    assert "cats" in str(caught.value) and "'cat'" in str(caught.value)


def test_too_few_images_for_a_split(tmp_path):
    folder = make_folder(tmp_path / "tiny", {"cat": 3, "dog": 3})
    with pytest.raises(data.DataError, match="too few images"):
        data.load_raw(ci_config(folder))


# --- the pipeline --------------------------------------------------------------------------------


def test_load_gives_batches_of_squares(folder):
    splits = data.load(ci_config(folder, TL_BATCH_SIZE="8"))
    images, labels = next(iter(splits.train))
    assert images.shape == (8, 75, 75, 3)
    assert images.dtype.name == "uint8"
    assert labels.dtype.name == "int64"
    assert sum(int(tf_labels.shape[0]) for _, tf_labels in splits.validation) == 4


def test_evaluation_sets_keep_their_order_and_training_is_shuffled(folder):
    splits = data.load(ci_config(folder))

    def labels(dataset):
        return np.concatenate([y.numpy() for _, y in dataset]).tolist()

    def images(dataset):
        return np.concatenate([x.numpy() for x, _ in dataset])

    for dataset in (splits.validation, splits.test):
        assert labels(dataset) == labels(dataset)
        np.testing.assert_array_equal(images(dataset), images(dataset))
    first, second = images(splits.train), images(splits.train)
    assert first.shape == second.shape
    assert not np.array_equal(first, second)  # reshuffled every epoch


def test_prepare_keeps_order_without_shuffle():
    import tensorflow as tf

    images = tf.data.Dataset.from_tensor_slices(
        (np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, axis=-1), np.arange(10))
    )
    prepared = data.prepare(images, image_size=4, batch_size=3, shuffle=False)
    assert np.concatenate([y.numpy() for _, y in prepared]).tolist() == list(range(10))
    shuffled = data.prepare(images, image_size=4, batch_size=3, shuffle=True, seed=1)
    assert sorted(np.concatenate([y.numpy() for _, y in shuffled]).tolist()) == list(range(10))
    # autotuning off: with it, some epochs began 0.3 to 0.5 s late (data.without_autotune)
    assert prepared.options().autotune.enabled is False
    assert shuffled.options().autotune.enabled is False


def test_prepare_gives_an_unbatched_dataset_its_length_so_fit_does_not_warn():
    # 04's convnet from scratch: splits.train.unbatch() has no known length, and fit running 50
    # steps a call warned "Your input ran out of data; interrupting training" every epoch
    import warnings

    import keras
    import tensorflow as tf

    from conftest import ci_config
    from helpers import train

    cfg = ci_config()
    pixels = np.random.default_rng(0).integers(0, 255, size=(40, 8, 8, 3), dtype=np.uint8)
    batched = tf.data.Dataset.from_tensor_slices((pixels, np.arange(40) % 2)).batch(16)
    prepared = data.prepare(batched.unbatch(), 4, 16, shuffle=True, seed=1)
    assert int(prepared.cardinality()) == 3  # 16 + 16 + 8
    model = keras.Sequential(
        [keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    train.compile_for_logits(model, 1e-3, cfg, steps_per_execution=50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(prepared, validation_data=prepared, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert not [w for w in caught if "ran out of data" in str(w.message)]
    labels = np.concatenate([y.numpy() for _, y in prepared])
    assert sorted(labels.tolist()) == sorted((np.arange(40) % 2).tolist())


def test_resize_keeps_uint8_range():
    import tensorflow as tf

    image = tf.constant(np.full((5, 9, 3), 255, dtype=np.uint8))
    resized, label = data.resize(image, 1, 4)
    assert resized.shape == (4, 4, 3)
    assert resized.dtype == tf.uint8
    assert int(resized.numpy().min()) == 255
    assert label == 1


def test_sample_source(keras_home):
    splits = data.load_raw(ci_config("sample"))
    assert splits.class_names == ["cat", "dog"]
    assert splits.skipped  # the bad files of the sample always exercise the check
    assert "sample" in splits.source
    assert Path(splits.scans[0].root).is_relative_to(keras_home)


# --- TFDS ----------------------------------------------------------------------------------------


class _FakeBuilder:
    def __init__(self, root: Path, prepared: bool = False):
        self.data_dir_root = str(root)
        self._prepared = prepared

    def is_prepared(self) -> bool:
        return self._prepared


@pytest.fixture
def tfds(monkeypatch, tmp_path):
    """Returns tensorflow_datasets with builder() faked: nothing prepared, nothing downloaded."""
    import tensorflow_datasets

    for variable in data._PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(tensorflow_datasets, "builder", lambda name: _FakeBuilder(tmp_path))
    return tensorflow_datasets


def _assert_names_the_alternatives(message: str) -> None:
    assert "TL_DATA=sample" in message
    assert "PetImages" in message
    assert "TL_DATA=/path/to/folder" in message


def test_tfds_download_failure_is_one_clear_message(tfds, monkeypatch):
    monkeypatch.setattr(data, "_download_problem", lambda builder: None)

    def fail(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'download.microsoft.com'")

    monkeypatch.setattr(tfds, "load", fail)
    with pytest.raises(data.DataError) as caught:
        data.load(ci_config("tfds"))
    message = str(caught.value)
    assert "ConnectionError" in message and "download.microsoft.com" in message
    _assert_names_the_alternatives(message)
    assert caught.value._render_traceback_() == [f"DataError: {message}"]  # no stack trace


def test_tfds_offline_fails_fast_without_calling_load(tfds, monkeypatch):
    def unreachable(address, timeout=None):
        raise socket.gaierror(-2, "Name or service not known")

    def must_not_run(*args, **kwargs):
        raise AssertionError("tfds.load would retry for minutes")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(tfds, "load", must_not_run)
    with pytest.raises(data.DataError) as caught:
        data.load(ci_config("tfds"))
    assert "cannot reach download.microsoft.com" in str(caught.value)
    _assert_names_the_alternatives(str(caught.value))


def test_tfds_offline_prints_no_absl_warning(monkeypatch, tmp_path, capfd, caplog):
    """The real tfds.builder, offline, cats_vs_dogs not prepared: TFDS warns through absl
    "Variant folder ... has no dataset_info.json" (broken by removing quiet_tfds_lookup)."""
    import tensorflow_datasets as tfds

    from course_tools import fetch

    def unreachable(address, timeout=None):
        raise socket.gaierror(-2, "Name or service not known")

    for variable in data._PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    if tfds.builder("cats_vs_dogs").is_prepared():
        pytest.skip("cats_vs_dogs is prepared here: nothing to download, no warning to silence")
    caplog.clear()
    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(tfds, "load", lambda *args, **kwargs: pytest.fail("tfds.load ran"))
    with caplog.at_level(logging.WARNING), pytest.raises(data.DataError, match="cannot reach"):
        data.load(ci_config("tfds"))
    with caplog.at_level(logging.WARNING):
        assert "cannot reach" in " ".join(fetch.problems(ci_config("tfds")))  # make fetch
    shown = [record.getMessage() for record in caplog.records if record.name == "absl"]
    assert not shown, shown  # pytest's log capture sees what would be printed
    err = capfd.readouterr().err
    assert "absl" not in err and "Variant folder" not in err, err


def test_tfds_missing_module_says_what_to_install(tfds, monkeypatch):
    def broken(name):
        raise ModuleNotFoundError(
            "No module named 'importlib_resources'", name="importlib_resources"
        )

    monkeypatch.setattr(tfds, "builder", broken)
    with pytest.raises(data.DataError, match="pip install importlib_resources") as caught:
        data.load(ci_config("tfds"))
    _assert_names_the_alternatives(str(caught.value))


def test_tfds_uses_the_seed_split(tfds, monkeypatch, tmp_path):
    import tensorflow as tf

    monkeypatch.setattr(tfds, "builder", lambda name: _FakeBuilder(tmp_path, prepared=True))
    calls = []

    def fake_load(name, split, as_supervised, with_info):
        calls.append((name, split, as_supervised))
        images = tf.data.Dataset.from_tensor_slices(
            (np.zeros((4, 9, 7, 3), np.uint8), [0, 1, 0, 1])
        )
        info = SimpleNamespace(
            splits={s: SimpleNamespace(num_examples=4) for s in split},
            features={"label": SimpleNamespace(names=["cat", "dog"])},
        )
        return [images] * 3, info

    monkeypatch.setattr(tfds, "load", fake_load)
    splits = data.load(ci_config("tfds", TL_PROFILE="full"))
    assert calls == [("cats_vs_dogs", ["train[:40%]", "train[40%:50%]", "train[50%:60%]"], True)]
    assert splits.class_names == ["cat", "dog"]
    images, _ = next(iter(splits.validation))
    assert images.shape == (4, 150, 150, 3)


def test_as_folders_gives_the_runs_split_as_class_folders_and_leaves_the_photos_alone(
    folder, tmp_path
):
    (folder / "cat" / "broken.jpg").write_bytes(b"not a jpeg")  # skipped, as data.load does
    before = tree_hashes(folder)
    cfg = dataclasses.replace(ci_config(folder), output_dir=tmp_path / "run")
    folders = data.as_folders(cfg)
    splits = data.load_raw(cfg)
    for role, path in folders.items():
        linked = sorted(path.glob("*/*"))
        assert len(linked) == splits.sizes[role], role
        assert sorted(p.name for p in path.iterdir()) == ["cat", "dog"]
        assert sorted(p.resolve() for p in linked) == sorted(
            Path(f).resolve() for f in splits.files[role][0]
        )
        assert not any("broken" in p.name for p in linked)
    assert tree_hashes(folder) == before
    marker = folders["train"] / "cat"
    inode = marker.stat().st_ino
    assert data.as_folders(cfg) == folders and marker.stat().st_ino == inode  # made once


def test_a_checked_image_is_not_decoded_again_unless_its_bytes_change(folder, monkeypatch):
    decoded = []
    check = data._check_image
    monkeypatch.setattr(data, "_check_image", lambda source: decoded.append(1) or check(source))
    first = data.scan_folder(folder)
    assert len(decoded) == 40 and data.checked_path().is_file()
    decoded.clear()
    photo = folder / "cat" / sorted(p.name for p in (folder / "cat").iterdir())[0]
    _truncated_jpeg(photo)  # the same name, broken bytes: decoded again, and skipped
    again = data.scan_folder(folder)
    assert len(decoded) == 1 and [item.path for item in again.skipped] == [photo]
    assert again.files == [f for f in first.files if f != photo]
    decoded.clear()
    assert data.scan_folder(folder, cached=False).files == again.files and len(decoded) == 40


@pytest.mark.parametrize("damage", ["not json", "[1, 2]", "wrong values", "a folder"])
def test_a_damaged_or_unwritable_record_of_checks_means_checking_again(folder, monkeypatch, damage):
    first = data.scan_folder(folder)
    record = data.checked_path()
    if damage == "a folder":  # can be neither read nor replaced: every scan checks every file
        record.unlink()
        record.mkdir()
    elif damage == "wrong values":  # the files' own digests, answers that are not a format
        saved = json.loads(record.read_text())
        saved["checked"] = dict.fromkeys(saved["checked"], 3)
        record.write_text(json.dumps(saved))
    else:
        record.write_text(damage)
    decoded = []
    check = data._check_image
    monkeypatch.setattr(data, "_check_image", lambda source: decoded.append(1) or check(source))
    again = data.scan_folder(folder)
    assert len(decoded) == 40 and again.files == first.files and again.labels == first.labels
