"""helpers.config: profiles, TL_* overrides, and one clear error for each bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import config
from helpers.errors import LearnerError


def load(gpu: bool = False, **variables: str) -> config.Config:
    return config.load(variables, gpu=gpu)


@pytest.mark.parametrize(("gpu", "profile"), [(True, "full"), (False, "quick")])
def test_profile_is_chosen_from_the_gpu_when_unset(gpu, profile):
    cfg = load(gpu=gpu)
    assert cfg.profile == profile
    assert cfg.gpu is gpu


def test_explicit_profile_wins_over_the_gpu():
    assert load(gpu=True, TL_PROFILE="ci").profile == "ci"
    assert load(gpu=False, TL_PROFILE=" Full ").profile == "full"


def test_profiles_keep_their_purpose():
    ci, quick, full = (load(TL_PROFILE=name) for name in ("ci", "quick", "full"))
    assert (ci.data, ci.weights) == ("sample", "none")  # offline, nothing to download
    assert (full.backbone, full.image_size, full.epochs, full.fine_tune_epochs) == (
        "xception",
        150,
        20,
        10,
    )
    assert full.data == quick.data == "tfds"
    assert ci.image_shape == (ci.image_size, ci.image_size, 3)


def test_variables_override_the_profile(tmp_path):
    weights = tmp_path / "base.h5"
    weights.write_bytes(b"weights")
    cfg = load(
        TL_PROFILE="ci",
        TL_BACKBONE="MobileNet",
        TL_ALPHA="0.25",
        TL_WEIGHTS=str(weights),
        TL_IMAGE_SIZE="96",
        TL_BATCH_SIZE="8",
        TL_EPOCHS="3",
        TL_FINE_TUNE_EPOCHS="2",
        TL_SEED="7",
        TL_DATA="TFDS",
        TL_OUTPUT_DIR=str(tmp_path / "out"),
    )
    assert (cfg.backbone, cfg.alpha, cfg.weights) == ("mobilenet", 0.25, str(weights.resolve()))
    assert (cfg.image_size, cfg.batch_size, cfg.epochs, cfg.fine_tune_epochs, cfg.seed) == (
        96,
        8,
        3,
        2,
        7,
    )
    assert cfg.data == "tfds"
    assert cfg.output_dir == (tmp_path / "out").resolve()


def test_describe_lists_every_setting():
    text = load(TL_PROFILE="ci").describe()
    for name in ("profile", "data", "backbone", "image_size", "seed", "output_dir"):
        assert name in text


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("TL_PROFILE", "Fast", ("ci", "quick", "full")),
        ("TL_BACKBONE", "ResNet50", ("xception", "mobilenet_v2", "mobilenet", "efficientnet_b0")),
        ("TL_DATA", "imagenette", ("tfds", "sample")),
    ],
)
def test_unknown_choice_names_variable_value_and_accepted_values(variable, value, accepted):
    with pytest.raises(config.ConfigError) as caught:
        load(**{variable: value})
    message = str(caught.value)
    assert variable in message
    assert repr(value) in message  # the value exactly as the learner typed it
    for choice in accepted:
        assert choice in message


@pytest.mark.parametrize("variable", ["TL_IMAGE_SIZE", "TL_BATCH_SIZE", "TL_EPOCHS", "TL_SEED"])
@pytest.mark.parametrize("value", ["big", "150.5", "1e3"])
def test_non_integer_names_variable_and_value(variable, value):
    with pytest.raises(config.ConfigError) as caught:
        load(TL_PROFILE="ci", **{variable: value})
    message = str(caught.value)
    assert f"{variable}={value!r}" in message
    assert "whole number" in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TL_IMAGE_SIZE", "0"),
        ("TL_BATCH_SIZE", "-4"),
        ("TL_EPOCHS", "0"),
        ("TL_FINE_TUNE_EPOCHS", "0"),
    ],
)
def test_sizes_and_epochs_must_be_positive(variable, value):
    with pytest.raises(config.ConfigError, match=f"{variable}.*1 or more"):
        load(TL_PROFILE="ci", **{variable: value})


def test_seed_zero_is_allowed():
    assert load(TL_PROFILE="ci", TL_SEED="0").seed == 0


def test_image_size_too_small_for_the_backbone():
    with pytest.raises(config.ConfigError, match="TL_IMAGE_SIZE=64.*xception.*71"):
        load(TL_PROFILE="ci", TL_IMAGE_SIZE="64")
    assert load(TL_PROFILE="ci", TL_IMAGE_SIZE="64", TL_BACKBONE="mobilenet_v2").image_size == 64


@pytest.mark.parametrize("value", ["abc", "2"])
def test_bad_alpha(value):
    with pytest.raises(config.ConfigError, match="TL_ALPHA"):
        load(TL_ALPHA=value)


def test_missing_data_folder_is_named(tmp_path):
    missing = tmp_path / "no" / "such" / "photos"
    with pytest.raises(config.ConfigError) as caught:
        load(TL_DATA=str(missing))
    assert "TL_DATA" in str(caught.value)
    assert str(missing) in str(caught.value)


def test_data_must_be_a_folder(tmp_path):
    a_file = tmp_path / "cat.jpg"
    a_file.write_bytes(b"not a folder")
    with pytest.raises(config.ConfigError, match="TL_DATA=.*is a file"):
        load(TL_DATA=str(a_file))
    with pytest.raises(config.ConfigError, match="TL_TEST_DATA=.*is a file"):
        load(TL_TEST_DATA=str(a_file))


def test_missing_test_folder_is_named(tmp_path):
    with pytest.raises(config.ConfigError, match="TL_TEST_DATA"):
        load(TL_TEST_DATA=str(tmp_path / "missing"))


def test_folders_become_absolute_paths(tmp_path, monkeypatch):
    (tmp_path / "photos").mkdir()
    (tmp_path / "holdout").mkdir()
    monkeypatch.chdir(tmp_path)
    cfg = load(TL_DATA="./photos", TL_TEST_DATA="holdout")
    assert cfg.data == str((tmp_path / "photos").resolve())
    assert cfg.test_data == str((tmp_path / "holdout").resolve())


def test_relative_paths_work_from_the_notebooks_folder(monkeypatch):
    root = config.project_root(Path(__file__).parent)
    assert root is not None
    monkeypatch.chdir(root / "notebooks")  # where Jupyter runs the notebooks
    cfg = load(TL_DATA="./helpers")  # relative to the project root, as in the README's commands
    assert cfg.data == str(root / "helpers")


def test_weights_must_be_a_file_or_a_keyword(tmp_path):
    assert load(TL_WEIGHTS="ImageNet").weights == "imagenet"
    assert load(TL_WEIGHTS="none").weights == "none"
    with pytest.raises(config.ConfigError, match="TL_WEIGHTS"):
        load(TL_WEIGHTS=str(tmp_path))  # a folder
    with pytest.raises(config.ConfigError, match="TL_WEIGHTS"):
        load(TL_WEIGHTS="imagnet")  # a typo that is no file either


def test_config_errors_are_learner_errors():
    with pytest.raises(LearnerError):
        load(TL_PROFILE="nope")
    assert issubclass(config.ConfigError, ValueError)


def test_default_output_dir_is_per_profile():
    cfg = load(TL_PROFILE="ci")
    assert cfg.output_dir.parts[-2:] == ("runs", "ci")
