"""TL_DISTRIBUTE, helpers.distributed (08) and training that resumes after a lost process.

The slow tests run real subprocesses on the ci data with a small base (MobileNet 0.25 at 32 px),
so they cost seconds, not the ci Xception's minutes.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from helpers import config, distributed

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"TL_BACKBONE": "mobilenet", "TL_ALPHA": "0.25", "TL_IMAGE_SIZE": "32"}


def load(gpu: bool = False, **variables: str) -> config.Config:
    return config.load(variables, gpu=gpu)


# --- TL_DISTRIBUTE ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("none", "none"),
        ("Mirrored", "mirrored"),
        ("mirrored:2", "mirrored:2"),
        (" mirrored:03 ", "mirrored:3"),
        ("multiworker", "multiworker"),
        ("TPU", "tpu"),
    ],
)
def test_distribute_values_are_accepted(value, expected):
    assert load(TL_PROFILE="ci", TL_DISTRIBUTE=value).distribute == expected


def test_distribute_defaults_to_one_device_without_several_gpus():
    assert load(TL_PROFILE="ci").distribute == "none"
    assert load(TL_PROFILE="quick").distribute == "none"


@pytest.mark.parametrize("value", ["horovod", "mirrored:0", "mirrored:two", "mirrored:", "multi"])
def test_bad_distribute_is_refused_with_what_to_do(value):
    with pytest.raises(config.ConfigError) as caught:
        load(TL_PROFILE="ci", TL_DISTRIBUTE=value)
    message = str(caught.value)
    assert f"TL_DISTRIBUTE={value!r}" in message
    for accepted in ("none", "mirrored:N", "multiworker", "tpu"):
        assert accepted in message
    assert "%env TL_DISTRIBUTE=" in message  # the two ways to change it


def test_workers_get_the_settings_of_the_run(tmp_path):
    cfg = load(TL_PROFILE="ci", TL_OUTPUT_DIR=str(tmp_path), TL_UNFREEZE="0.3", **SMALL)
    env = distributed.settings_environment(cfg)
    again = config.load(env, gpu=False)
    for name in ("data", "backbone", "alpha", "image_size", "unfreeze", "output_dir", "seed"):
        assert getattr(again, name) == getattr(cfg, name), name
    assert again.distribute == "multiworker"


# --- starting workers: refusals, never a hang -------------------------------------------------


def test_a_port_in_use_is_refused_by_number():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(distributed.DistributedError, match=f"Port {port} .* in use"):
            distributed.choose_ports(2, first_port=port)


def test_free_ports_differ():
    ports = distributed.choose_ports(3)
    assert len(set(ports)) == 3 and all(distributed.port_is_free(p) for p in ports)


def test_a_worker_that_fails_to_start_is_named(tmp_path):
    cfg = load(TL_PROFILE="ci", TL_OUTPUT_DIR=str(tmp_path))
    crash = [
        sys.executable,
        "-c",
        "import sys; print('no such module', file=sys.stderr); sys.exit(3)",
    ]
    with pytest.raises(distributed.DistributedError) as caught:
        distributed.run_workers(cfg, 2, command=crash, start_timeout=60)
    message = str(caught.value)
    assert "exited with status 3" in message and "no such module" in message
    assert message.startswith("worker ")


def test_a_worker_that_never_joins_times_out_by_name(tmp_path):
    cfg = load(TL_PROFILE="ci", TL_OUTPUT_DIR=str(tmp_path))
    stuck = [sys.executable, "-c", "import time; time.sleep(120)"]
    with pytest.raises(
        distributed.DistributedError, match=r"worker 0 \(127\.0\.0\.1:\d+\) did not"
    ):
        distributed.run_workers(cfg, 2, command=stuck, start_timeout=1)


# --- the real thing: subprocesses on the ci data ------------------------------------------------


def _environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    return {
        **os.environ,
        "TL_PROFILE": "ci",
        "TL_OUTPUT_DIR": str(tmp_path / "out"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **SMALL,
        **variables,
    }


def test_two_workers_lost_after_epoch_1_resume_from_the_command_line(tmp_path):
    command = [sys.executable, "-m", "helpers.distributed", "--workers", "2", "--epochs", "2"]
    first = subprocess.Popen(
        command,
        env=_environment(tmp_path),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: the launcher and both workers
    )
    try:
        lines = _lines(first)
        seen = []
        while not (seen and seen[-1].startswith("epoch 1: loss")):
            seen.append(lines.get(timeout=300))
            assert seen[-1] is not None, f"the run ended before epoch 1: {seen}"
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # every process lost at once, no clean-up
        first.wait()

    result = subprocess.run(
        command, env=_environment(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "resumed from the backup after epoch 1" in out
    assert "epoch 1: loss" not in out and "epoch 2: loss" in out  # only the 2nd epoch ran
    assert "2 workers, 2 replicas in sync" in out
    folder = tmp_path / "out" / "distributed"
    assert f"saved the model to {folder / 'model.keras'}" in out
    with np.load(folder / "weights_worker0.npz") as a, np.load(folder / "weights_worker1.npz") as b:
        assert a.files == b.files
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])
    assert not list((tmp_path / "out" / "backup").glob("*")), "a finished run keeps no backup"


RESUMABLE = textwrap.dedent(
    """
    import json, os, time
    import keras
    from helpers import config, data, train

    cfg = config.load()
    splits = data.load(cfg)
    model, _ = train.transfer_model(cfg, splits)

    class Pause(keras.callbacks.Callback):  # after BackupAndRestore has saved the epoch
        def on_epoch_end(self, epoch, logs=None):
            print("EPOCH", epoch + 1, flush=True)
            if os.environ.get("PAUSE_AFTER") == str(epoch + 1):
                time.sleep(600)  # the test kills the process here

    early_stopping = train.fine_tune(model, cfg, splits, callbacks=(Pause(),))
    print("HISTORY", json.dumps(early_stopping.history["loss"]), flush=True)
    """
)


def _lines(process: subprocess.Popen) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def read():
        for line in process.stdout:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def test_fine_tuning_killed_after_epoch_1_resumes_at_epoch_2(tmp_path):
    script = tmp_path / "resumable.py"
    script.write_text(RESUMABLE)
    env = _environment(tmp_path, TL_FINE_TUNE_EPOCHS="3")
    cfg = config.load({k: v for k, v in env.items() if k.startswith("TL_")}, gpu=False)
    from helpers import train

    backup = train.backup_folder(cfg, "fine_tuning")

    first = subprocess.Popen(
        [sys.executable, str(script)],
        env={**env, "PAUSE_AFTER": "1"},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert _lines(first).get(timeout=300) == "EPOCH 1"
        assert backup.is_dir(), "no backup after the first epoch"
    finally:
        first.send_signal(signal.SIGKILL)  # a lost kernel: no clean-up runs
        first.wait()

    second = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert [line for line in second.stdout.splitlines() if line.startswith("EPOCH")] == [
        "EPOCH 2",
        "EPOCH 3",
    ]
    history = json.loads(second.stdout.split("HISTORY", 1)[1])
    assert len(history) == 3  # every epoch once: the one before the kill and the two after
    assert not backup.exists(), "a finished run removes its backup"


DEVICES = textwrap.dedent(
    """
    import dataclasses
    from helpers import config, distributed
    import tensorflow as tf

    cfg = config.load({"TL_PROFILE": "ci", "TL_DISTRIBUTE": "mirrored:3"}, gpu=False)
    print(distributed.setup_devices(cfg))
    print(len(tf.config.list_logical_devices("CPU")), "logical CPU devices")
    print(distributed.setup_devices(cfg))  # the Setup cell run again: the same devices
    try:
        distributed.setup_devices(dataclasses.replace(cfg, distribute="mirrored:2"))
    except distributed.DistributedError as error:
        print("refused:", error)
    """
)


def test_logical_devices_are_made_once_and_a_late_change_asks_for_a_restart():
    result = subprocess.run(
        [sys.executable, "-c", DEVICES],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == lines[2] == "['/cpu:0', '/cpu:1', '/cpu:2']"
    assert lines[1] == "3 logical CPU devices"
    assert lines[3].startswith("refused: TensorFlow started with 3 CPU device(s)")
    assert "Restart the kernel" in lines[3]
