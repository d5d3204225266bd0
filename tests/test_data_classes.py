"""helpers.data with any number of classes: sample:N, tfds:NAME (TFDS's mock data), the Kaggle
train/test layout, classes too small for the splits, names with spaces or accents, counts."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from conftest import ci_config, colour_centroid_accuracy, make_folder, tree_hashes
from helpers import config, data, sample

# --- TL_DATA=sample:N ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sample:3", "sample:3"),
        ("Sample:10", "sample:10"),
        ("sample:2", "sample"),
        ("tfds", "tfds"),
    ],
)
def test_sample_and_tfds_values(value, expected):
    assert config.parse_data(value) == expected


@pytest.mark.parametrize("value", ["sample:1", "sample:11", "sample:three", "sample:"])
def test_sample_class_count_out_of_range_is_refused(value):
    with pytest.raises(config.ConfigError) as caught:
        ci_config(value)
    message = str(caught.value)
    assert f"TL_DATA={value!r}" in message and "sample:3" in message and "%env" in message


def test_sample_with_three_classes_keeps_cat_and_dog_byte_for_byte(tmp_path):
    two = tree_hashes(sample.generate(tmp_path / "two", images_per_class=4))
    three = tree_hashes(sample.generate(tmp_path / "three", images_per_class=4, classes=3))
    assert {path: digest for path, digest in three.items() if not path.startswith("fox/")} == two
    assert sorted(path for path in three if path.startswith("fox/")) == [
        f"fox/fox.{index}.jpg" for index in range(4)
    ]


def test_sample_n_loads_n_classes_in_label_order(keras_home):
    cfg = ci_config("sample:4")
    splits = data.load_raw(cfg)
    assert splits.class_names == ["cat", "dog", "fox", "hen"] == data.class_names(cfg)
    assert splits.scans[0].root.name.endswith("_4classes")  # not the two-class set's folder
    assert {name for name, n in splits.class_counts["test"].items() if n > 0} == set(
        splits.class_names
    )
    assert splits.skipped  # the corrupt and non-image files are still there
    labels = {int(label) for _, label in splits.validation}
    assert labels == {0, 1, 2, 3}


def test_ten_sample_classes_are_distinguishable_by_colour(tmp_path):
    # A nearest-centroid rule on mean colour, fitted on half the images, must beat chance clearly.
    folder = sample.generate(tmp_path / "s", images_per_class=12, classes=10)
    assert colour_centroid_accuracy(folder, sample.class_names(10)) >= 0.9


# --- the Kaggle layout: train/ beside test/ (and validation/ or val/) --------------------------


def test_train_and_test_folders_are_splits_not_classes(tmp_path):
    root = tmp_path / "kaggle"
    make_folder(root / "train", {"cat": 20, "dog": 20})
    make_folder(root / "test", {"cat": 3, "dog": 4})
    before = tree_hashes(root)
    cfg = ci_config(root)
    splits = data.load_raw(cfg)
    assert splits.class_names == ["cat", "dog"] == data.class_names(cfg)
    assert splits.sizes == {"train": 36, "validation": 4, "test": 7}  # validation carved
    assert splits.carved == ("validation",)
    assert [int(label) for _, label in splits.test] == [0, 0, 0, 1, 1, 1, 1]
    assert splits.class_counts["test"] == {"cat": 3, "dog": 4}
    assert "test/ as test" in splits.source
    assert tree_hashes(root) == before


def test_val_folder_is_the_validation_split_and_test_is_carved(tmp_path):
    root = tmp_path / "kaggle"
    make_folder(root / "Train", {"cat": 20, "dog": 20})
    make_folder(root / "val", {"cat": 2, "dog": 3})
    splits = data.load_raw(ci_config(root))
    assert splits.sizes == {"train": 36, "validation": 5, "test": 4}
    assert splits.carved == ("test",)


def test_split_folders_with_different_classes_are_named(tmp_path):
    root = tmp_path / "kaggle"
    make_folder(root / "train", {"cat": 20, "dog": 20, "fox": 20})
    make_folder(root / "validation", {"cat": 2, "dog": 2, "owl": 2})
    with pytest.raises(data.DataError, match="classes") as caught:
        data.load_raw(ci_config(root))
    message = str(caught.value)
    assert f"only in {root / 'train'}: fox" in message
    assert f"only in {root / 'validation'}: owl" in message


def test_a_split_folder_without_class_folders_is_explained(tmp_path):
    root = tmp_path / "kaggle"
    make_folder(root / "train", {"cat": 20, "dog": 20})
    make_folder(root, {"test": 3})  # unlabelled images straight in test/
    with pytest.raises(data.DataError, match="holds no class folders") as caught:
        data.load_raw(ci_config(root))
    assert str(root / "test") in str(caught.value)


# --- classes that are empty or too small, and their names ---------------------------------------


def test_a_class_too_small_for_the_splits_is_named_with_its_count(tmp_path):
    folder = make_folder(tmp_path / "photos", {"cat": 20, "dog": 20, "rose": 5})
    with pytest.raises(data.DataError) as caught:
        data.load_raw(ci_config(folder))
    message = str(caught.value)
    assert "'rose' (5 usable)" in message and "at least 6" in message
    assert "cat" not in message.split("at least")[0].split(str(folder))[-1]  # only rose named
    make_folder(folder, {"rose": 6})  # one more image: every split gets a rose
    assert data.load_raw(ci_config(folder)).class_counts["test"]["rose"] == 1


def test_an_empty_class_folder_is_named_with_its_count(folder):
    (folder / "bird").mkdir()
    (folder / "bird" / "notes.txt").write_text("not a photo")
    with pytest.raises(data.DataError) as caught:
        data.scan_folder(folder)
    assert "'bird' (0 usable, 1 skipped)" in str(caught.value)


def test_class_names_with_spaces_and_accents_work_as_they_are(tmp_path):
    folder = make_folder(tmp_path / "photos", {"crème brûlée": 10, "golden retriever": 10})
    before = tree_hashes(folder)
    splits = data.load(ci_config(folder))
    assert splits.class_names == ["crème brûlée", "golden retriever"]
    assert "'crème brûlée': 10" in splits.scans[0].report()
    images = sum(int(images.shape[0]) for images, _ in splits.train)
    assert images == splits.sizes["train"] == 16
    assert tree_hashes(folder) == before


# --- counts and the imbalance warning -----------------------------------------------------------


def test_class_counts_add_up_to_the_split_sizes(folder):
    splits = data.load_raw(ci_config(folder))
    counts = data.count_classes(splits)
    assert {name: sum(c.values()) for name, c in counts.items()} == splits.sizes
    assert counts["train"] == {"cat": 16, "dog": 16}


def test_count_classes_counts_a_dataset_without_counts():
    import tensorflow as tf

    labels = [0, 2, 2, 1, 2]
    dataset = tf.data.Dataset.from_tensor_slices((np.zeros((5, 2, 2, 3), np.uint8), labels))
    splits = data.Splits(dataset, dataset, dataset, ["a", "b", "c"], {}, "test")
    assert data.count_classes(splits)["validation"] == {"a": 1, "b": 1, "c": 3}


def test_imbalance_warning_names_the_counts():
    assert data.imbalance_warning({"a": 30, "b": 10, "c": 12}) is None  # 3x exactly: fine
    warning = data.imbalance_warning({"daisy": 31, "rose": 10, "tulip": 12})
    assert "'daisy' has 31" in warning and "'rose' only 10" in warning and "'tulip' 12" in warning
    # digit class names read as names, not as counts
    assert "'1' has 31 training images, '2' only 10" in data.imbalance_warning({"1": 31, "2": 10})


# --- TL_DATA=tfds:NAME, offline with TFDS's mock data ---------------------------------------------


@pytest.fixture
def tfds_mock(monkeypatch):
    """Returns tensorflow_datasets with tfds.load answering from random examples, offline."""
    import tensorflow_datasets as tfds

    monkeypatch.setattr(data, "_download_problem", lambda builder, host=None: None)
    with tfds.testing.mock_data(num_examples=12):
        yield tfds


def test_tfds_name_loads_with_class_names_from_info(tfds_mock):
    cfg = ci_config("tfds:tf_flowers", TL_PROFILE="quick")
    splits = data.load(cfg)
    names = ["dandelion", "daisy", "tulips", "sunflowers", "roses"]  # TFDS's label order
    assert splits.class_names == names == data.class_names(cfg)
    assert splits.sizes == {"train": 12, "validation": 12, "test": 12}
    assert "TFDS tf_flowers" in splits.source and "train[:10%]" in splits.source
    images, labels = next(iter(splits.train))
    assert images.shape[1:] == cfg.image_shape and images.dtype.name == "uint8"
    assert set(data.count_classes(splits)["train"]) == set(names)


def test_tfds_grayscale_images_get_three_channels(tfds_mock):
    splits = data.load_raw(ci_config("tfds:mnist", TL_PROFILE="full"))
    image, _ = next(iter(splits.train))
    assert image.shape == (28, 28, 3)
    assert len(splits.class_names) == 10


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("tf_flower", "no data set of that name (did you mean tf_flowers"),
        ("coco", "has no labels"),
        ("imdb_reviews", "not (image, label)"),
    ],
)
def test_tfds_names_that_cannot_work_are_refused_with_examples(name, why):
    with pytest.raises(data.DataError) as caught:
        data.load_raw(ci_config(f"tfds:{name}"))
    message = str(caught.value)
    assert why in message
    assert "tfds:tf_flowers" in message and "tfds:rock_paper_scissors" in message


def test_tfds_name_offline_gives_the_failed_download_message(monkeypatch):
    import tensorflow_datasets as tfds

    def unreachable(address, timeout=None):
        raise socket.gaierror(-2, "Name or service not known")

    def must_not_run(*args, **kwargs):
        raise AssertionError("tfds.load would retry for minutes")

    for variable in data._PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(tfds, "load", must_not_run)
    with pytest.raises(data.DataError) as caught:
        data.load(ci_config("tfds:rock_paper_scissors"))
    message = str(caught.value)
    assert "Loading TFDS rock_paper_scissors" in message
    assert f"cannot reach {data.TFDS_ANY_HOST}" in message
    assert "TL_DATA=sample" in message and "TL_DATA=/path/to/folder" in message


def test_tfds_names_are_checked_for_their_form():
    assert config.parse_data("tfds:cats_vs_dogs") == "tfds"
    assert config.parse_data("TFDS:oxford_iiit_pet") == "tfds:oxford_iiit_pet"
    with pytest.raises(config.ConfigError, match="tfds:tf_flowers"):
        config.parse_data("tfds:Flowers 102")
