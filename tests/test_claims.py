"""benchmarks/claims.py starts cleanly without the reference photos (which tests never need)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "claims.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )


def test_help_runs_without_tensorflow():
    result = run("--help")
    assert result.returncode == 0, result.stderr
    assert "--data-root" in result.stdout and "--only" in result.stdout


def test_missing_data_exits_with_one_line(tmp_path):
    result = run("--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "c.json"))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "nowhere" in lines[0] and "--data-root" in lines[0]
    assert not (tmp_path / "c.json").exists()


def test_a_missing_weights_file_is_named(tmp_path):
    for name in ("catsdogs-real", "flowers-real"):
        (tmp_path / name).mkdir()
    result = run("--data-root", str(tmp_path), "--only", "flowers")
    assert result.returncode == 1
    assert "mobilenet_2_5_224_tf_no_top.h5" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_table_reprints_a_saved_run_and_refuses_other_files(tmp_path):
    row = {"key": "z_centre", "claim": "06 deletion z: Grad-CAM vs centre prior", "data": "flowers"}
    row |= {"values": [1.0, None], "min": 1.0, "max": 1.0, "mean": 1.0, "n": 2, "not_reached": 1}
    row |= {"per_run": "85-110", "quoted": "2.1"}
    saved = tmp_path / "claims.json"
    saved.write_text(json.dumps({"command": "claims.py", "folds": 2, "rows": [row]}))
    result = run("--table", str(saved))
    assert result.returncode == 0, result.stderr
    assert "1.0 to 1.0 (1 never)" in result.stdout and "85-110" in result.stdout
    saved.write_text("[]")
    result = run("--table", str(saved))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1


def test_a_reference_claim_that_fails_on_one_fold_is_named():
    import importlib.util

    spec = importlib.util.spec_from_file_location("claims", SCRIPT)
    claims = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(claims)
    holds = {"catsdogs": {"values": {"z_centre": [5.6, 7.5], "int8_faithful": [1.0, 1.0]}}}
    assert claims.check_reference_claims(holds) == []
    one_fold = {"catsdogs": {"values": {"z_centre": [5.6, 2.9]}}}
    (failed,) = claims.check_reference_claims(one_fold)
    assert "centre prior" in failed and "2.9" in failed


def test_a_comparison_that_fails_on_one_fold_is_named():
    import importlib.util

    spec = importlib.util.spec_from_file_location("claims", SCRIPT)
    claims = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(claims)
    values = {"transfer_test": [0.95, 0.92], "scratch_test": [0.7, 0.93]}
    (failed,) = claims.check_reference_claims({"catsdogs": {"values": values}})
    assert "beats the convnet from scratch" in failed
