"""helpers.progress: a bar on long steps only (the folder check, the features pass)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from helpers import data, progress, train
from tests.conftest import make_folder


def test_short_work_gets_no_bar(capsys):
    items = [1, 2, 3]
    assert progress.bar(items, 3, "short", minimum=10) is items
    assert progress.bar(items, None, "unknown length", minimum=1) is items


def test_long_work_gets_a_bar_that_yields_everything(capsys):
    wrapped = progress.bar(range(30), 30, "long work", minimum=10)
    assert list(wrapped) == list(range(30))
    assert "long work" in capsys.readouterr().err  # tqdm writes to stderr on a terminal


def test_folder_check_shows_a_bar_only_for_big_folders(tmp_path, monkeypatch, capsys):
    folder = make_folder(tmp_path / "photos", {"cat": 6, "dog": 6})
    data.scan_folder(folder)
    assert "checking images" not in capsys.readouterr().err
    monkeypatch.setattr(data, "SCAN_BAR_MINIMUM", 10)
    scan = data.scan_folder(folder)
    assert len(scan.files) == 12
    assert "checking images" in capsys.readouterr().err


def test_features_pass_shows_a_bar_only_for_many_batches(monkeypatch, capsys):
    extractor = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    images = np.ones((12, 4), np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(12))).batch(3)
    train.extract_features(extractor, dataset)
    assert "computing features" not in capsys.readouterr().err
    monkeypatch.setattr(train, "FEATURES_BAR_MINIMUM", 4)
    features, labels = train.extract_features(extractor, dataset)
    assert features.shape == (12, 2) and list(labels) == list(range(12))
    assert "computing features" in capsys.readouterr().err
