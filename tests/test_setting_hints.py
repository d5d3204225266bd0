"""Every message naming a TL_* setting says both ways to change it (issue 10), and %env works."""

from __future__ import annotations

import pytest

from helpers import config, data, models
from helpers.errors import LearnerError


def both_ways(message: str, variable: str) -> bool:
    return f"%env {variable}=" in message and "make lab" in message and "Setup cell" in message


def test_load_reads_the_environment_at_each_call(monkeypatch):
    """What `%env TL_DATA=...` then re-running Setup relies on."""
    monkeypatch.setenv("TL_PROFILE", "ci")
    monkeypatch.setenv("TL_DATA", "tfds")
    assert config.load(gpu=False).data == "tfds"
    monkeypatch.setenv("TL_DATA", "sample")  # what %env does: os.environ of the kernel
    assert config.load(gpu=False).data == "sample"


@pytest.mark.parametrize(
    "variable, value",
    [
        ("TL_PROFILE", "fast"),
        ("TL_DATA", "kaggle"),
        ("TL_DATA", "/no/such/folder"),
        ("TL_BACKBONE", "resnet"),
        ("TL_ALPHA", "wide"),
        ("TL_WEIGHTS", "/no/such/file.h5"),
        ("TL_IMAGE_SIZE", "big"),
        ("TL_EPOCHS", "0"),
    ],
)
def test_config_errors_say_both_ways(variable, value):
    with pytest.raises(config.ConfigError) as caught:
        config.load({"TL_PROFILE": "ci", variable: value}, gpu=False)
    assert both_ways(str(caught.value), variable), str(caught.value)
    assert str(caught.value).count("%env") == 1


def test_data_and_weights_messages_say_both_ways(tmp_path):
    assert both_ways(data.TFDS_HELP, "TL_DATA")
    assert both_ways(models.WEIGHTS_HELP, "TL_WEIGHTS")
    with pytest.raises(LearnerError) as caught:
        data.scan_folder(tmp_path / "missing")
    assert both_ways(str(caught.value), "TL_DATA")
    with pytest.raises(LearnerError) as caught:
        models.backbone("resnet")
    assert both_ways(str(caught.value), "TL_BACKBONE")


def test_setup_report_names_the_active_profile():
    for profile in ("ci", "quick"):
        report = config.environment_report(config.load({"TL_PROFILE": profile}, gpu=False))
        assert f"the {profile} profile" in report, report
    report = config.environment_report(config.load({"TL_PROFILE": "full"}, gpu=False))
    assert "hours on a CPU" in report and both_ways(report, "TL_PROFILE")
