"""helpers.sample: the generated offline data set is deterministic, realistic and learnable."""

from __future__ import annotations

from PIL import Image

from conftest import colour_centroid_accuracy, tree_hashes
from helpers import data, sample


def test_same_bytes_every_time(tmp_path):
    first = tree_hashes(sample.generate(tmp_path / "a", images_per_class=6))
    second = tree_hashes(sample.generate(tmp_path / "b", images_per_class=6))
    assert first == second
    other = tree_hashes(sample.generate(tmp_path / "c", images_per_class=6, seed=1))
    assert other != first


def test_laid_out_like_a_real_folder(tmp_path):
    folder = sample.generate(tmp_path / "s", images_per_class=6)
    assert sorted(p.name for p in folder.iterdir()) == [".ipynb_checkpoints", "cat", "dog"]
    scan = data.scan_folder(folder)
    assert scan.class_names == list(sample.CLASS_NAMES)
    assert scan.counts() == {"cat": 6 + 4, "dog": 6 + 3}  # plus the odd-format images


def test_holds_the_bad_files_and_they_are_skipped(tmp_path):
    folder = sample.generate(tmp_path / "s", images_per_class=4)
    scan = data.scan_folder(folder)
    skipped = {item.path.relative_to(folder).as_posix(): item.reason for item in scan.skipped}
    assert set(skipped) == {f"{cls}/{name}" for cls, name, _ in sample.BAD_FILES}
    assert "truncated" in skipped["cat/cat.truncated.jpg"]  # a corrupt image
    assert skipped["dog/notes.txt"] == "not an image"  # a non-image file
    assert skipped["dog/dog.empty.jpg"] == "empty file"


def test_odd_formats_are_all_usable(tmp_path):
    folder = sample.generate(tmp_path / "s", images_per_class=2)
    scan = data.scan_folder(folder)
    usable = set(scan.files) | set(scan.converted)
    for label, name, _ in sample._ODD_IMAGES:
        assert folder / sample.CLASS_NAMES[label] / name in usable
    with Image.open(folder / "dog" / "dog.cmyk.jpg") as image:
        assert image.mode == "CMYK"
    converted = {path.relative_to(folder).as_posix() for path in scan.converted}
    # TensorFlow decodes the GIF and the CMYK JPEG itself; only the BMP needs a PNG copy.
    assert converted == {"cat/cat.bmp"}


def test_varied_sizes_and_aspect_ratios(tmp_path):
    folder = sample.generate(tmp_path / "s", images_per_class=12)
    sizes = set()
    for path in folder.glob("*/*.[0-9]*.jpg"):
        with Image.open(path) as image:
            sizes.add(image.size)
    ratios = [width / height for width, height in sizes]
    assert len(sizes) >= 20
    assert min(ratios) < 0.8 and max(ratios) > 1.25  # portrait and landscape


def test_classes_are_learnable(tmp_path):
    # A nearest-centroid rule on mean colour, fitted on half the images, must beat chance clearly.
    folder = sample.generate(tmp_path / "s", images_per_class=30)
    accuracy = colour_centroid_accuracy(folder, sample.CLASS_NAMES)
    assert accuracy >= 0.9


def test_ensure_generates_once_under_keras_home(keras_home):
    folder = sample.ensure()
    assert folder == sample.default_folder()
    assert folder.is_relative_to(keras_home)
    assert (folder / ".complete").is_file()
    stamp = (folder / "cat" / "cat.0.jpg").stat().st_mtime_ns
    assert sample.ensure() == folder
    assert (folder / "cat" / "cat.0.jpg").stat().st_mtime_ns == stamp  # not written again


def test_ensure_replaces_an_interrupted_set(tmp_path):
    folder = tmp_path / "sample"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "half-written.jpg").write_bytes(b"\xff\xd8")  # no .complete marker
    sample.ensure(folder, images_per_class=3)
    assert not (folder / "cat" / "half-written.jpg").exists()
    assert (folder / ".complete").is_file()
    assert not [p for p in tmp_path.iterdir() if p != folder]  # no staging folder left behind
