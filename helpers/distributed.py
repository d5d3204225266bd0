"""tf.distribute plumbing for 08: devices, local worker processes, and the multi-worker run.

The strategies, the custom step and ``BackupAndRestore`` are the lesson and stand in 08. This
module makes logical CPU devices, starts and stops local workers, and is the worker program
(``python -m helpers.distributed --workers N``, or with a real cluster's ``TF_CONFIG``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers.config import Config
from helpers.errors import LearnerError, setting_hint

PRACTICE_REPLICAS = 2  # logical CPU devices 08 practises on when there are not several GPUs
START_TIMEOUT = 180.0  # seconds for a worker to import TensorFlow and join the cluster
RUN_TIMEOUT = 1800.0  # seconds for the whole multi-worker run


class DistributedError(LearnerError):
    """A distributed run cannot start or finish; the message names the worker or port and why."""


# --- devices --------------------------------------------------------------------------------


def setup_devices(cfg: Config) -> list[str]:
    """Returns the devices ``tf.distribute.MirroredStrategy`` should mirror over (08's Setup).

    Several GPUs when ``TL_DISTRIBUTE`` asks for them, else the CPU split into logical devices
    (2, or N for ``mirrored:N``), which must happen before TensorFlow initialises its devices.
    """
    from helpers import quiet

    quiet.import_tensorflow()
    import tensorflow as tf

    # tf.distribute logs every all-reduce it sets up at INFO level: not for the learner's eyes
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    gpus = [f"/gpu:{i}" for i in range(len(quiet.list_gpus()))]
    wanted = int(cfg.distribute.split(":")[1]) if ":" in cfg.distribute else None
    if cfg.distribute.startswith("mirrored") and len(gpus) >= max(2, wanted or 2):
        return gpus[: wanted or len(gpus)]
    replicas = wanted or PRACTICE_REPLICAS
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)]
        )
    except RuntimeError:  # devices initialised already: fine if they are the ones we want
        have = len(tf.config.list_logical_devices("CPU"))
        if have != replicas:
            raise DistributedError(
                f"TensorFlow started with {have} CPU device(s) before 08's Setup cell could make "
                f"{replicas}. Restart the kernel (Kernel > Restart Kernel) and run the Setup cell "
                "first: logical devices can only be made before TensorFlow uses its devices."
            ) from None
    return [f"/cpu:{i}" for i in range(replicas)]


def batch_that_fits(cfg: Config, replicas: int, workers: int = 2) -> int:
    """Returns the images each replica gets in 08: ``TL_BATCH_SIZE``, or fewer when the training
    or the validation images would share a batch unevenly (63 sample photos in ``quick``).

    Keras 3's ``fit``, ``evaluate`` and ``predict`` under a strategy build the model from the first
    batch averaged over the replicas, which fails deep in TensorFlow when the replicas' shares
    differ in size (63 images in a global batch of 64 on 2 replicas: 32 and 31). So the first
    batch of each split must divide evenly, and no replica may get nothing of the last one (a
    mean over no images). The ``workers`` processes of 08's last part take one replica each and
    need one full batch of training images.
    """
    from helpers import data

    sizes = data.load_raw(cfg).sizes
    for batch in range(cfg.batch_size, 0, -1):
        global_batch = batch * replicas
        firsts = [min(n, global_batch) for n in (sizes["train"], sizes["validation"])]
        lasts = [n % global_batch for n in (sizes["train"], sizes["validation"])]
        if (
            all(first % replicas == 0 for first in firsts)
            and all(last == 0 or last >= replicas for last in lasts)
            and sizes["train"] >= batch * workers
        ):
            return batch
    raise DistributedError(
        f"{sizes['train']} training and {sizes['validation']} validation images cannot be shared "
        f"evenly by {replicas} replicas and {workers} workers: add images to TL_DATA."
    )


# --- the multi-worker program -------------------------------------------------------------------


def images_dataset(cfg: Config, global_batch: int, steps: int | None = None):
    """Returns the training images as a ``tf.data.Dataset`` of global batches (the first
    ``steps`` when given), for 08's custom step.

    Unshuffled and without the smaller last batch, so every worker and one device see the same
    batches. Its cardinality is asserted: a resumed run needs the steps an epoch. Sharded by
    ``DATA``: each worker keeps its part of each global batch.
    """
    import tensorflow as tf

    from helpers import data

    raw = data.load_raw(cfg)
    full_batches = raw.sizes["train"] // global_batch
    steps = full_batches if steps is None else min(steps, full_batches)
    if steps < 1:
        raise DistributedError(
            f"{raw.sizes['train']} training images do not fill one global batch of "
            f"{global_batch} ({cfg.batch_size} a replica): lower TL_BATCH_SIZE or add images."
        )
    # take() before prepare's cache(): the cache then holds only these images and is complete
    # after one epoch (cut short after it, tf.data would drop it and decode every epoch again)
    images = raw.train.take(steps * global_batch)
    dataset = data.prepare(images, cfg.image_size, global_batch, shuffle=False)
    dataset = dataset.unbatch().batch(global_batch, drop_remainder=True)
    # unbatch() makes the count unknown; assert_cardinality restores it, and fails if it is wrong
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def per_example_loss(model):
    """Returns the loss of ``train.loss_and_accuracy(model)`` with one value per image (08):
    the custom step averages it over the global batch itself."""
    from helpers import train

    loss, _ = train.loss_and_accuracy(model)
    return loss.from_config({**loss.get_config(), "reduction": None})


def starting_model(cfg: Config, model_path: str | Path | None = None):
    """Returns ``(model, why)``: the classifier the multi-worker run fine-tunes, and its source.

    ``model_path``, else 04's saved model, else a new seeded classifier; without augmentation
    and dropout (comparable with one device's), unfrozen as in 05. A model for other classes is
    refused (``model_path``) or replaced (04's).
    """
    import keras

    from helpers import data, models

    class_names = data.class_names(cfg)
    if model_path is not None:
        model, why = keras.saving.load_model(model_path, compile=False), f"loaded {model_path}"
        misfit = _class_misfit(model, Path(model_path), cfg, class_names)
        if misfit:
            raise DistributedError(
                f"{misfit}: it cannot be trained on these images. Give a model trained on "
                f"this data (--model), or leave --model out to start from 04's. "
                + setting_hint("TL_DATA", cfg.data)
            )
    else:
        model, why = models.load_saved(cfg, "transfer_model")
        path = Path(cfg.output_dir) / "transfer_model.keras"
        misfit = model is not None and _class_misfit(model, path, cfg, class_names)
        if misfit:
            model, why = None, misfit
        if model is None:
            keras.utils.set_random_seed(cfg.seed)
            base = models.build_base(cfg)
            model = models.build_classifier(cfg, base, class_count=len(class_names))
            why += "; a new classifier instead (its head is untrained)"
    model = models.for_inference(model)
    model.get_layer("dropout").rate = 0.0
    models.unfreeze(model.get_layer(models.BASE_NAME), cfg.unfreeze)
    return model, why


def _class_misfit(model, path: Path, cfg: Config, class_names: list[str]) -> str:
    """Returns why ``model`` (saved at ``path``) does not fit ``class_names``, or ""."""
    from helpers import models

    sidecar, _ = models.check_pair(path)
    mismatch = models.class_mismatch(sidecar or {}, cfg)  # the check load_saved makes
    if mismatch:
        return f"{path} {mismatch}"
    units, expected = model.output_shape[-1], models.output_units(len(class_names))
    if units != expected:
        return (
            f"{path} outputs {units} logit(s), the data's {len(class_names)} classes "
            f"{class_names} need {expected}"
        )
    return ""


def _say(kind: str, *values) -> None:
    """Prints one line the launcher reads: a keyword, then a JSON list of values."""
    print(kind, json.dumps(list(values)), flush=True)


def backup_folder(cfg: Config) -> Path:
    """Returns where the multi-worker run keeps its BackupAndRestore files (introduced in 08):
    the chief writes, every worker restores (on a cluster: shared storage)."""
    return Path(cfg.output_dir) / "backup" / "distributed"


def run_worker(
    cfg: Config,
    folder: Path,
    epochs: int,
    model_path: str | None = None,
    steps: int | None = None,
) -> None:
    """Runs this process's worker of the cluster in ``TF_CONFIG``: 08's custom step, resumable.

    The chief (worker 0) saves the model; every worker writes its weights to ``folder``.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    index = int(task.get("index", 0))
    replicas = strategy.num_replicas_in_sync
    _say("READY", index, replicas)
    global_batch = cfg.batch_size * replicas
    dataset = images_dataset(cfg, global_batch, steps)
    steps = int(dataset.cardinality())  # known: images_dataset asserts it
    distributed_data = strategy.experimental_distribute_dataset(dataset)
    with strategy.scope():
        model, why = starting_model(cfg, model_path)
        model.compile(optimizer=keras.optimizers.Adam(1e-5))  # 05's learning rate
        model.optimizer.build(model.trainable_variables)  # its variables mirrored, made here
    _say("MODEL", why)
    loss_fn = per_example_loss(model)  # from the model's outputs: 1 logit or N

    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            per_example = loss_fn(labels, logits)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        gradients = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    @tf.function
    def distributed_step(images, labels):
        losses = strategy.run(step, args=(images, labels))
        return strategy.reduce("SUM", losses, axis=None)

    # double_checkpoint: a worker lost while the chief writes the backup leaves the one before
    backup = keras.callbacks.BackupAndRestore(str(backup_folder(cfg)), double_checkpoint=True)
    callbacks = keras.callbacks.CallbackList([backup], model=model)
    callbacks.on_train_begin()  # restores weights and optimizer from the backup, if any
    chief = index == 0
    # the backup restored the optimizer's step count: whole epochs of `steps` steps are done
    first = int(model.optimizer.iterations.numpy()) // steps
    if first:
        _say("RESUMED", first)
    for epoch in range(first, epochs):
        losses = [float(distributed_step(images, labels)) for images, labels in distributed_data]
        if chief:  # only the chief writes the backup, before it reports the epoch
            callbacks.on_epoch_end(epoch)
        _say("EPOCH", epoch + 1, float(np.mean(losses)), len(losses))  # the mean of its steps
    if chief:
        callbacks.on_train_end()  # a finished run removes its backup
    weights = {str(i): w for i, w in enumerate(model.get_weights())}
    np.savez(folder / f"weights_worker{index}.npz", **weights)
    if chief:  # only the chief writes the model
        path = folder / "model.keras"
        partial = folder / "model.partial.keras"
        model.save(partial)
        partial.replace(path)
        _say("SAVED", str(path))


# --- starting and stopping local workers ------------------------------------------------------


def port_is_free(port: int) -> bool:
    """Returns True when nothing listens on ``port`` of 127.0.0.1 (we can bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_ports(workers: int, first_port: int | None = None) -> list[int]:
    """Returns ``workers`` ports on 127.0.0.1: free ones, or ``first_port`` and the next ones.

    A given port that is in use raises :class:`DistributedError` naming it.
    """
    if first_port is not None:
        ports = list(range(first_port, first_port + workers))
        for port in ports:
            if not port_is_free(port):
                raise DistributedError(
                    f"Port {port} on 127.0.0.1 is in use, so a worker cannot listen there. Give "
                    "another --port, or leave it out to use free ports."
                )
        return ports
    sockets, ports = [], []
    try:
        for _ in range(workers):  # hold each until all are chosen, so they differ
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.bind(("127.0.0.1", 0))
            sockets.append(probe)
            ports.append(probe.getsockname()[1])
    finally:
        for probe in sockets:
            probe.close()
    return ports


def tf_config(ports: list[int], index: int) -> str:
    """Returns the ``TF_CONFIG`` of worker ``index`` of a local cluster on ``ports``."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def settings_environment(cfg: Config) -> dict[str, str]:
    """Returns the ``TL_*`` variables that give a worker process the settings ``cfg`` holds."""
    env = {
        "TL_PROFILE": cfg.profile,
        "TL_DATA": cfg.data,
        "TL_BACKBONE": cfg.backbone,
        "TL_ALPHA": str(cfg.alpha),
        "TL_WEIGHTS": cfg.weights,
        "TL_IMAGE_SIZE": str(cfg.image_size),
        "TL_BATCH_SIZE": str(cfg.batch_size),
        "TL_EPOCHS": str(cfg.epochs),
        "TL_FINE_TUNE_EPOCHS": str(cfg.fine_tune_epochs),
        "TL_SEED": str(cfg.seed),
        "TL_OUTPUT_DIR": str(cfg.output_dir),
        "TL_UNFREEZE": str(cfg.unfreeze),
        "TL_STORED_VIEWS": str(cfg.stored_views),
        "TL_DISTRIBUTE": "multiworker",
    }
    if cfg.test_data:
        env["TL_TEST_DATA"] = cfg.test_data
    return env


@dataclass
class Run:
    """What a multi-worker run did (returned by :func:`run_workers`)."""

    workers: int
    replicas: int
    losses: dict[int, float]  # epoch (from 1) -> mean loss of its steps, as the chief saw it
    steps: dict[int, int]  # epoch (from 1) -> the steps it took
    resumed_after: int  # epochs restored from a backup (0: a fresh start)
    model_path: Path
    weights: list[list]  # each worker's final weights (arrays)
    seconds: float
    started_from: str
    output: list[list[str]] = field(default_factory=list)  # each worker's stdout lines


def resume_hint(cfg: Config) -> str:
    """Returns a sentence for a stopped run: the same command resumes from the backup, if any."""
    folder = backup_folder(cfg)
    if folder.is_dir() and any(folder.iterdir()):
        return (
            "Run the same command (or cell) again: it resumes from the backup in "
            f"{folder}, after the last finished epoch."
        )
    return (
        "No epoch had finished, so there is no backup: the same command (or cell) run again "
        "starts from epoch 1."
    )


def _reader(stream, lines: queue.Queue, index: int) -> None:
    for line in stream:
        lines.put((index, line.rstrip("\n")))
    lines.put((index, None))


def _tail(path: Path) -> str:
    from helpers import quiet

    text = path.read_text(errors="replace") if path.is_file() else ""
    kept = [line for line in text.splitlines() if line.strip() and not quiet.is_cpp_log_line(line)]
    return "\n".join(kept[-8:]) or "(it wrote nothing)"


def run_workers(
    cfg: Config,
    workers: int = 2,
    *,
    epochs: int | None = None,
    model_path: str | Path | None = None,
    steps: int | None = None,
    first_port: int | None = None,
    start_timeout: float = START_TIMEOUT,
    command: list[str] | None = None,
    report: bool = False,
) -> Run:
    """Returns the :class:`Run` of ``workers`` local processes training with TF_CONFIG clusters.

    Introduced in 08. A worker not joined within ``start_timeout``, one that fails, or a run past
    ``RUN_TIMEOUT`` stops every worker and raises :class:`DistributedError` naming the worker:
    never a hang. ``command`` replaces the worker's (tests start failing ones); ``report`` prints
    each epoch's loss.
    """
    import numpy as np

    from helpers import data

    if workers < 1:
        raise DistributedError(f"--workers {workers}: start at least 1 worker.")
    epochs = cfg.fine_tune_epochs if epochs is None else epochs
    folder = Path(cfg.output_dir) / "distributed"
    folder.mkdir(parents=True, exist_ok=True)
    if command is None:
        data.load_raw(cfg)  # generate / convert the images once, before the workers read them
    ports = choose_ports(workers, first_port)
    worker_command = command or [
        sys.executable,
        "-m",
        "helpers.distributed",
        "--worker",
        "--epochs",
        str(epochs),
        *(["--model", str(model_path)] if model_path else []),
        *(["--steps", str(steps)] if steps else []),
    ]
    base_env = {**os.environ, **settings_environment(cfg), "TF_CPP_MIN_LOG_LEVEL": "2"}
    lines: queue.Queue = queue.Queue()
    processes, logs = [], []
    start = time.perf_counter()
    try:
        for index in range(workers):
            log = folder / f"worker{index}.log"
            logs.append(log)
            process = subprocess.Popen(
                worker_command,
                env={**base_env, "TF_CONFIG": tf_config(ports, index)},
                cwd=Path(__file__).resolve().parents[1],
                stdout=subprocess.PIPE,
                stderr=log.open("w"),
                text=True,
            )
            processes.append(process)
            threading.Thread(
                target=_reader, args=(process.stdout, lines, index), daemon=True
            ).start()
        output: list[list[str]] = [[] for _ in range(workers)]
        ready, finished = set(), set()
        while len(finished) < workers:
            elapsed = time.perf_counter() - start
            waiting = [i for i in range(workers) if i not in ready]
            if waiting and elapsed > start_timeout:
                raise DistributedError(
                    f"worker {waiting[0]} (127.0.0.1:{ports[waiting[0]]}) did not join the "
                    f"cluster within {start_timeout:.0f} s; its last lines:\n"
                    + _tail(logs[waiting[0]])
                )
            if elapsed > RUN_TIMEOUT:
                running = [i for i in range(workers) if i not in finished]
                raise DistributedError(
                    f"worker {running[0]} was still running after {RUN_TIMEOUT:.0f} s; stopped all "
                    f"workers. {resume_hint(cfg)} Its last lines:\n{_tail(logs[running[0]])}"
                )
            try:
                index, line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:  # its stdout closed: it has exited, or is about to
                code = processes[index].wait()
                if code != 0:
                    raise DistributedError(
                        f"worker {index} (127.0.0.1:{ports[index]}) exited with status {code}; "
                        f"stopped the others. {resume_hint(cfg)} Its last lines:\n"
                        + _tail(logs[index])
                    )
                finished.add(index)
                ready.add(index)
                continue
            output[index].append(line)
            if line.startswith("READY"):
                ready.add(index)
            if report and index == 0 and line.startswith(("EPOCH", "RESUMED")):
                _report(*line.split(" ", 1))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
    seconds = time.perf_counter() - start
    chief = [line.split(" ", 1) for line in output[0] if " " in line]
    said = {kind: [] for kind in ("READY", "EPOCH", "RESUMED", "SAVED", "MODEL")}
    for kind, rest in chief:
        if kind in said:
            said[kind].append(json.loads(rest))
    if not said["SAVED"]:
        raise DistributedError(
            "the chief (worker 0) finished without saving the model; its last lines:\n"
            + _tail(logs[0])
        )
    weights = []
    for index in range(workers):
        with np.load(folder / f"weights_worker{index}.npz") as saved:
            weights.append([saved[str(i)] for i in range(len(saved.files))])
    return Run(
        workers=workers,
        replicas=said["READY"][0][1],
        losses={int(epoch): float(loss) for epoch, loss, _ in said["EPOCH"]},
        steps={int(epoch): int(steps) for epoch, _, steps in said["EPOCH"]},
        resumed_after=said["RESUMED"][0][0] if said["RESUMED"] else 0,
        model_path=Path(said["SAVED"][0][0]),
        weights=weights,
        seconds=seconds,
        started_from=said["MODEL"][0][0] if said["MODEL"] else "",
        output=output,
    )


def _report(kind: str, values: str) -> None:
    if kind == "RESUMED":
        print(f"resumed from the backup after epoch {json.loads(values)[0]}", flush=True)
    else:
        epoch, loss, steps = json.loads(values)
        print(f"epoch {epoch}: loss {loss:.4f} (the mean of {steps} step{_s(steps)})", flush=True)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def largest_difference(first: list, second: list) -> float:
    """Returns the largest absolute difference between two lists of weight arrays."""
    import numpy as np

    return max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(first, second, strict=True)
    )


# --- the command line -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.distributed``: the multi-worker fine-tuning from the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.distributed",
        description="Fine-tune the top of the classifier with MultiWorkerMirroredStrategy: "
        "--workers N starts N local worker processes on 127.0.0.1; without it, this process is "
        "the worker TF_CONFIG describes (a real cluster). Settings come from the TL_* variables.",
    )
    parser.add_argument("--workers", type=int, help="local worker processes to start")
    parser.add_argument("--epochs", type=int, help="epochs (default: TL_FINE_TUNE_EPOCHS)")
    parser.add_argument("--port", type=int, help="first of the workers' ports (default: free)")
    parser.add_argument("--model", help="a .keras classifier to start from (default: 04's)")
    parser.add_argument("--steps", type=int, help="steps an epoch (default: every image)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from helpers import config

    try:
        cfg = config.load()
        if args.workers is None:  # this process is one worker of a cluster
            if "TF_CONFIG" not in os.environ:
                raise DistributedError(
                    "No TF_CONFIG: give --workers N to start N local workers, or set TF_CONFIG "
                    "to this machine's part of the cluster. "
                    + setting_hint("TL_DISTRIBUTE", "multiworker")
                )
            folder = Path(cfg.output_dir) / "distributed"
            folder.mkdir(parents=True, exist_ok=True)
            run_worker(cfg, folder, args.epochs or cfg.fine_tune_epochs, args.model, args.steps)
            return 0
        print(f"starting {args.workers} workers on 127.0.0.1 ...", flush=True)
        run = run_workers(
            cfg,
            args.workers,
            epochs=args.epochs,
            model_path=args.model,
            steps=args.steps,
            first_port=args.port,
            report=True,
        )
    except LearnerError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    print(
        f"{run.workers} workers, {run.replicas} replicas in sync; started from: {run.started_from}"
    )
    print(f"the chief saved the model to {run.model_path} ({run.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
