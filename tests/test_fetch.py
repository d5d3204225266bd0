"""course_tools.fetch (make fetch): downloads faked, offline failure fast and in one message."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from course_tools import fetch
from tests.conftest import ci_config


class FakeBuilder:
    """What fetch uses of a TFDS builder; download_and_prepare writes a small file."""

    def __init__(self, root: Path, prepared: bool = False):
        self.data_dir_root = str(root)
        self.prepared = prepared
        self.downloads = 0
        self.info = SimpleNamespace(splits={"train": SimpleNamespace(num_examples=23262)})

    def is_prepared(self) -> bool:
        return self.prepared

    def download_and_prepare(self) -> None:
        self.downloads += 1
        folder = Path(self.data_dir_root) / "cats_vs_dogs" / "4.0.1"
        folder.mkdir(parents=True)
        (folder / "cats_vs_dogs-train.tfrecord-00000-of-00001").write_bytes(b"x" * 3000)
        self.prepared = True


def quick_config(**variables):
    settings = {"TL_WEIGHTS": "imagenet", "TL_BACKBONE": "mobilenet_v2", **variables}
    return ci_config("tfds", **settings)


def test_offline_fails_in_one_message_before_downloading(monkeypatch, tmp_path):
    monkeypatch.setattr(fetch, "reachable", lambda host, timeout=5.0: f"cannot reach {host}")
    monkeypatch.setattr(fetch, "download_weights", lambda cfg: pytest.fail("tried to download"))
    builder = FakeBuilder(tmp_path / "tfds")
    with pytest.raises(fetch.FetchError) as caught:  # before any download (both are faked)
        fetch.fetch(quick_config(), builder)
    message = str(caught.value)
    assert "download.microsoft.com" in message and fetch.WEIGHTS_HOST in message
    assert "TL_DATA=sample" in message and "%env TL_DATA=sample" in message
    assert builder.downloads == 0


def test_cached_weights_need_no_network(monkeypatch, tmp_path, keras_home):
    (keras_home / "models").mkdir()
    cached = (
        keras_home / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5"
    )
    cached.write_bytes(b"w" * 10)
    monkeypatch.setattr(fetch, "reachable", lambda host, timeout=5.0: f"cannot reach {host}")
    cfg = ci_config("sample", TL_WEIGHTS="imagenet", TL_BACKBONE="mobilenet_v2")
    assert fetch.cached_weights(cfg) == cached
    assert fetch.problems(cfg) == []
    assert fetch.cached_weights(ci_config("sample", TL_BACKBONE="xception")) is None


def test_fetch_downloads_verifies_and_reports(monkeypatch, tmp_path):
    monkeypatch.setattr(fetch, "reachable", lambda host, timeout=5.0: None)
    weights = (
        tmp_path / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5"
    )
    weights.parent.mkdir()
    weights.write_bytes(b"w" * 2_500_000)
    monkeypatch.setattr(fetch, "download_weights", lambda cfg: weights)
    builder = FakeBuilder(tmp_path / "tensorflow_datasets")
    fetched = fetch.fetch(quick_config(), builder)
    assert builder.downloads == 1
    assert [item.size for item in fetched] == [3000, 2_500_000]
    text = fetch.report(fetched)
    assert "23,262 images" in text and "3.0 KB" in text and "2.5 MB" in text
    assert str(tmp_path / "tensorflow_datasets") in text and str(weights) in text
    for variable in ("TFDS_DATA_DIR", "KERAS_HOME", "TL_WEIGHTS", "~/.keras/models"):
        assert variable in text


def test_a_tfds_that_prepares_nothing_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setattr(fetch, "reachable", lambda host, timeout=5.0: None)
    builder = FakeBuilder(tmp_path / "tfds")
    builder.info.splits["train"].num_examples = 0
    with pytest.raises(fetch.FetchError, match="no images"):
        fetch.fetch(quick_config(TL_WEIGHTS="none"), builder)


def test_nothing_to_fetch_in_ci():
    assert fetch.fetch(ci_config()) == []
    assert "Nothing to download" in fetch.report([])


def test_download_weights_returns_the_file_keras_loaded(monkeypatch, tmp_path):
    from keras.src.utils import file_utils

    from helpers import models

    weights = tmp_path / "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"
    weights.write_bytes(b"w")
    monkeypatch.setattr(file_utils, "get_file", lambda *args, **kwargs: str(weights))
    monkeypatch.setattr(models, "build_base", lambda cfg: file_utils.get_file("x", "https://x"))
    assert fetch.download_weights(ci_config()) == weights


def test_human_sizes():
    assert fetch.human(512) == "512 B"
    assert fetch.human(787_000_000) == "787.0 MB"
