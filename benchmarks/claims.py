"""Every number the notebooks' prose quotes about the reference photos, measured over 5 folds.

The reference photos are the two real sets in ``../shared/data/`` (not part of the project):
``catsdogs-real`` (cat, dog: 1,000 each) and ``flowers-real`` (5 classes, about 400 each), with
the README's real-data settings (``quick``, MobileNet 0.25 at 224x224 from the weights file
``keras-models/mobilenet_2_5_224_tf_no_top.h5``).

Each class's photos are cut, at random (seeded), into 10 equal chunks. Fold k (k = 0..4) tests on
chunk k, validates on chunk k + 5 and trains on the other 8: the notebooks' 80/10/10 split
(1,600 / 200 / 200 cats and dogs), with the 5 test subsets disjoint and class-balanced, and each
fold trained afresh with its own seed (TL_SEED + k). So a quantity about a trained model (an
accuracy, a z value, an export's slope) is measured on 5 disjoint test subsets, and a quantity
about training (epochs, seconds) over 5 seeds and training sets. Per fold, as the notebooks do:

  04  the head on cached features of the frozen base (cfg.epochs); the convnet from scratch
      (cfg.scratch_epochs, timed); when the head's validation accuracy passed the scratch's best
  05  the head alone to convergence (EarlyStopping, patience 10); Solution 2 (the whole base at
      Adam 1e-3 for one epoch of 10 batches); 05's fine-tuning (train.fine_tune: top 2 blocks,
      stored views)
  06  the deletion check on a seeded, class-balanced random sample of the correctly classified
      test photos (up to 256): Grad-CAM against the centre prior, a random head and random cells;
      the linear probe on the test photos (fine-tuned base, random weights, raw pixels)
  07  the 8-bit LiteRT export against Keras: slope, offset, correlation, answers changed,
      accuracy change, lowest per-class agreement, file size against float32

One table row per quantity and data set: min-max over the folds, mean, n, what each fold
measured on, and what the prose says. Written as JSON to --out too.

    flock /tmp/tf.lock .venv/bin/python benchmarks/claims.py              # both sets, 5 folds
    flock /tmp/tf.lock .venv/bin/python benchmarks/claims.py --only catsdogs --quick
    ... --parts transfer,scratch   (only 04's numbers; fine-tuning runs when 06/07's parts do)
    .venv/bin/python benchmarks/claims.py --table runs/claims.json   (the table again, no run)

Measured on 2 CPU cores: the convnet from scratch (16 epochs at 64 px, 5 times) takes about 70 s
of a set, the rest a fold about a minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = PROJECT.parent / "shared" / "data"
DATA_SETS = {"catsdogs": "catsdogs-real", "flowers": "flowers-real"}
WEIGHTS = Path("keras-models") / "mobilenet_2_5_224_tf_no_top.h5"
CHUNKS = 10  # per class: fold k tests on chunk k and validates on chunk k + FOLDS_MAX
FOLDS_MAX = CHUNKS // 2
PARTS = ("transfer", "scratch", "solution2", "finetune", "deletion", "probe", "export")
NEEDS_FINE_TUNING = {"deletion", "probe", "export"}
DELETION_MAX = 256  # 06: up to 256 correctly classified photos take part
SOLUTION2_BATCHES = 10  # 05's Solution 2: one epoch of the first 10 batches of the training set

# The claims, in table order: key, the notebook's wording of the quantity, number format, and
# what the prose says about it (per data set; "" where it says nothing about that set).
CLAIMS = [
    ("scratch_test", "04 from scratch: test accuracy after 16 epochs", ".3f",
     {"catsdogs": "0.60 to 0.765", "flowers": "0.565 to 0.64"}),
    ("scratch_best_val", "04 from scratch: best validation accuracy", ".3f", {}),
    ("scratch_seconds", "04 from scratch: seconds for 16 epochs", ".0f",
     {"catsdogs": "12 to 14 s"}),
    ("transfer_passed_seconds", "04 transfer passed scratch's best val acc after (s)", ".1f",
     {"catsdogs": "within 6 s"}),
    ("transfer_test", "04 transfer (head, cached features): test accuracy", ".3f",
     {"catsdogs": "0.92 to 0.965", "flowers": "0.58 to 0.725"}),
    ("control_epochs", "05 head alone: epochs until EarlyStopping (patience 10)", ".0f",
     {"catsdogs": "13 to 44", "flowers": "13 to 44"}),
    ("control_test", "05 head alone: test accuracy", ".3f", {}),
    ("solution2_before", "05 Solution 2: validation accuracy before", ".3f",
     {"catsdogs": "0.925 to 0.96"}),
    ("solution2_after", "05 Solution 2: val accuracy after 10 batches at Adam 1e-3", ".3f",
     {"catsdogs": "0.50 to 0.585", "flowers": "0.20 to 0.25"}),
    ("solution2_loss_before", "05 Solution 2: validation loss before", ".3f",
     {"catsdogs": "0.12 to 0.19"}),
    ("solution2_loss_after", "05 Solution 2: val loss after 10 batches at Adam 1e-3", ".3f",
     {"catsdogs": "0.69 to 0.73"}),
    ("fine_tuned_test", "05 fine-tuned (quick: top 2, stored views): test accuracy", ".3f",
     {"catsdogs": "0.943 (table, 6 seeds)"}),
    ("fine_tune_epochs", "05 fine-tuning: epochs run (of 10, patience 3)", ".0f", {}),
    ("deletion_images", "06 deletion check: photos (correct, class-balanced)", ".0f", {}),
    ("z_centre", "06 deletion z: Grad-CAM vs centre prior", ".1f",
     {"catsdogs": "5.5 to 8.0", "flowers": "-1.5 to 3.9"}),
    ("z_head", "06 deletion z: Grad-CAM vs random head", ".1f",
     {"catsdogs": "9.6 to 11.6", "flowers": "3.4 to 6.5"}),
    ("z_cells", "06 deletion z: Grad-CAM vs random cells", ".1f",
     {"catsdogs": "9.5 to 11.7", "flowers": "-0.4 to 4.4"}),
    ("probe_pretrained", "06 linear probe: pretrained (fine-tuned) base", ".3f",
     {"catsdogs": "0.915 to 0.955", "flowers": "0.48 to 0.63"}),
    ("probe_random", "06 linear probe: random weights", ".3f", {"catsdogs": "0.465 to 0.575"}),
    ("probe_pixels", "06 linear probe: raw pixels 16x16", ".3f",
     {"catsdogs": "0.45 to 0.54", "flowers": "at most 0.45"}),
    ("int8_slope", "07 8-bit: slope farthest from 1 (of its logits)", ".3f",
     {"catsdogs": "1.007 to 1.016"}),
    ("int8_offset", "07 8-bit: largest offset", "+.3f", {}),
    ("int8_typical", "07 8-bit: typical |logit| (Keras)", ".2f", {}),
    ("int8_offset_share", "07 8-bit: |largest offset| / typical |logit|", ".3f",
     {}),
    ("int8_correlation", "07 8-bit: correlation with Keras's logits", ".4f", {}),
    ("int8_changed", "07 8-bit: answers changed", ".0f",
     {"catsdogs": "0 to 4", "flowers": "19 to 39"}),
    ("int8_accuracy_change", "07 8-bit: accuracy minus Keras's (points)", "+.1f",
     {"flowers": "up to -4.5"}),
    ("int8_lowest_class_agreement", "07 8-bit: lowest per-class agreement", ".3f",
     {"flowers": "as low as 0.49"}),
    ("int8_faithful", "07 8-bit: judged faithful (1) or not (0)", ".0f",
     {"catsdogs": "faithful", "flowers": "not faithful"}),
    ("halved_shifted_wrong", "07 Keras's logits x 0.5 - 3: share of photos wrong", ".3f",
     {"catsdogs": "22% to 36%"}),
    ("int8_size_ratio", "07 float32 / 8-bit LiteRT file size", ".2f",
     {"catsdogs": "about 3 times smaller"}),
]  # fmt: skip

# The series' claims about its reference photos, asserted here (the real-photo run), not in a
# learner's kernel: (data set, key, test on every fold's value, what the prose says).
REFERENCE_CLAIMS = [
    ("catsdogs", "z_centre", lambda z: z > 3, "Grad-CAM clearly beats the centre prior"),
    ("catsdogs", "z_head", lambda z: z > 3, "Grad-CAM clearly beats a random head"),
    ("catsdogs", "z_cells", lambda z: z > 3, "Grad-CAM clearly beats random cells"),
    ("catsdogs", "int8_faithful", lambda f: f == 1, "the 8-bit export is faithful"),
    ("catsdogs", "transfer_test", lambda a: a >= 0.9, "the head on the pretrained base: >= 0.9"),
    ("flowers", "int8_faithful", lambda f: f == 0, "07's check calls it not faithful"),
]


# Claims that compare two quantities fold by fold: (data set, larger, smaller, what is claimed).
REFERENCE_COMPARISONS = [
    (
        "catsdogs",
        "transfer_test",
        "scratch_test",
        "the pretrained base beats the convnet from scratch",
    ),
    ("catsdogs", "probe_pretrained", "probe_random", "pretrained features beat random weights"),
    ("catsdogs", "probe_pretrained", "probe_pixels", "pretrained features beat raw pixels"),
]


def check_reference_claims(results: dict[str, dict]) -> list[str]:
    """Returns the reference claims that failed on some fold (each with its values)."""
    failed = []
    for name, larger, smaller, claim in REFERENCE_COMPARISONS:
        values = results.get(name, {}).get("values", {})
        pairs = list(zip(values.get(larger, []), values.get(smaller, []), strict=False))
        if pairs and not all(a > b for a, b in pairs):
            failed.append(f"{name}: {claim}: not on every fold ({pairs})")
    for name, key, holds, claim in REFERENCE_CLAIMS:
        values = results.get(name, {}).get("values", {}).get(key, [])
        if values and not all(holds(v) for v in values):
            failed.append(f"{name}: {claim}: not on every fold ({[round(v, 3) for v in values]})")
    return failed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Run TensorFlow under the machine's lock: flock /tmp/tf.lock .venv/bin/python ...",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=DEFAULT_DATA_ROOT,
        help=f"folder holding {', '.join(DATA_SETS.values())} and {WEIGHTS} "
        f"(default: {DEFAULT_DATA_ROOT})",
    )
    parser.add_argument("--only", choices=sorted(DATA_SETS), help="one data set")
    parser.add_argument(
        "--folds", type=int, default=FOLDS_MAX, help=f"folds (1 to {FOLDS_MAX}; default 5)"
    )
    parser.add_argument("--quick", action="store_true", help="2 folds, to try the script")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated, of {','.join(PARTS)} (transfer always runs: the others start "
        "from its head; deletion, probe and export need finetune, which then runs)",
    )
    parser.add_argument(
        "--out", type=Path, default=PROJECT / "runs" / "claims.json", help="the JSON written"
    )
    parser.add_argument(
        "--table",
        type=Path,
        metavar="JSON",
        help="print the table of a JSON file this script wrote, and measure nothing",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.folds = min(args.folds, 2)
    if not 1 <= args.folds <= FOLDS_MAX:
        parser.error(f"--folds {args.folds}: use 1 to {FOLDS_MAX}")
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"--parts: unknown {sorted(unknown)}; use {','.join(PARTS)}")
    parts.add("transfer")
    if parts & NEEDS_FINE_TUNING:
        parts.add("finetune")
    args.parts = [p for p in PARTS if p in parts]
    args.sets = [args.only] if args.only else list(DATA_SETS)
    return args


def check_data(args: argparse.Namespace) -> None:
    """Exits with one line when a reference set or the weights file is not where it should be."""
    root = args.data_root.expanduser()
    for path in [root / DATA_SETS[name] for name in args.sets] + [root / WEIGHTS]:
        if not path.exists():
            raise SystemExit(
                f"claims.py: {path} not found: the reference photos and weights are not part of "
                "the project; give --data-root, the folder holding "
                f"{', '.join(DATA_SETS.values())} and {WEIGHTS.parent}/."
            )


# --- the notebooks' code --------------------------------------------------------------------------


def make_grad_cam(cam_model):
    """Returns 06's grad_cam (copied from 06's cell after "See where the model looks")."""
    import numpy as np
    import tensorflow as tf

    from helpers import evaluate

    head = cam_model.get_layer(evaluate.HEAD_NAME)

    def grad_cam(images, classes=None):
        """Returns (heatmaps, logits): each image's Grad-CAM for `classes` (default: predicted)."""
        feature_map = tf.cast(cam_model.predict_on_batch(images)[0], "float32")  # compiled once
        with tf.GradientTape() as tape:
            tape.watch(feature_map)  # a constant to the tape unless watched (the base is frozen)
            logits = tf.cast(head(feature_map, training=False), "float32")
            if logits.shape[-1] == 1:  # one logit: its value for class 1, minus it for class 0
                logits = logits[:, 0]
                explained = logits > 0 if classes is None else tf.constant(np.asarray(classes) == 1)
                score = tf.where(explained, logits, -logits)
            else:  # N logits: the chosen class's own
                explained = tf.argmax(logits, axis=1) if classes is None else tf.constant(classes)
                score = tf.gather(logits, explained, batch_dims=1)
        gradients = tape.gradient(score, feature_map)  # images are independent: one call for all
        channel_weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        return tf.reduce_sum(channel_weights * feature_map, axis=-1).numpy(), logits.numpy()

    return grad_cam


def classifier_with_head(cfg, class_count: int, head_weights):
    """Returns 04's classifier (fresh pretrained base, frozen) with the head's trained weights."""
    from helpers import augment, models

    base_model = models.build_base(cfg)
    base_model.trainable = False
    model = models.build_classifier(cfg, base_model, augment.build(), class_count)
    model.get_layer("logit").set_weights(head_weights)
    return model


# --- one data set ---------------------------------------------------------------------------------


class Clock:
    """Seconds per part, summed over folds."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def add(self, part: str, start: float) -> float:
        took = time.perf_counter() - start
        self.seconds[part] = self.seconds.get(part, 0.0) + took
        return took


def fold_indices(labels, seed: int, fold: int):
    """Returns (train, validation, test) index arrays of one fold (see the module docstring)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chunk = np.empty(len(labels), dtype=int)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        for index, part in enumerate(np.array_split(members, CHUNKS)):
            chunk[part] = index
    test = chunk == fold
    validation = chunk == fold + FOLDS_MAX
    order = np.random.default_rng(seed + fold)  # each part shuffled, as data.split_indices does
    return tuple(
        order.permutation(np.flatnonzero(mask)) for mask in (~test & ~validation, validation, test)
    )


def run_set(name: str, args: argparse.Namespace, clock: Clock) -> dict[str, list]:
    import keras
    import numpy as np
    import tensorflow as tf

    from helpers import config, data, evaluate, export, models, predict, train

    root = args.data_root.expanduser().resolve()
    work = Path(tempfile.mkdtemp(prefix=f"claims-{name}-"))
    env = {
        "TL_PROFILE": "quick",
        "TL_BACKBONE": "mobilenet",
        "TL_ALPHA": "0.25",
        "TL_WEIGHTS": str(root / WEIGHTS),
        "TL_IMAGE_SIZE": "224",
        "TL_DATA": str(root / DATA_SETS[name]),
        "TL_OUTPUT_DIR": str(work / "output"),
    }
    cfg = config.load(env)
    train.use_fast_settings(cfg)

    start = time.perf_counter()
    scan = data.scan_folder(cfg.data)
    labels = np.asarray(scan.labels, dtype=np.int64)
    class_names, class_count = scan.class_names, len(scan.class_names)
    everything = data.prepare(
        data.files_dataset(scan.files, scan.labels), cfg.image_size, cfg.batch_size, shuffle=False
    )
    images = np.concatenate([np.asarray(batch) for batch, _ in everything])
    took = clock.add("load", start)
    counts = dict(zip(class_names, np.bincount(labels).tolist(), strict=True))
    print(
        f"\n== {name}: {len(labels)} photos, {counts}, decoded and resized in {took:.0f} s",
        flush=True,
    )

    # 04's fast path, once for every photo: the frozen base's features do not depend on the fold
    start = time.perf_counter()
    keras.utils.set_random_seed(cfg.seed)
    base = models.build_base(cfg)
    base.trainable = False
    all_features, _ = train.extract_features(models.feature_extractor(cfg, base), everything)
    extract_seconds_all = clock.add("features", start)
    print(f"features of every photo in {extract_seconds_all:.1f} s", flush=True)

    def batches(index, *, shuffle: bool, seed: int = 0):
        dataset = tf.data.Dataset.from_tensor_slices((images[index], labels[index]))
        if shuffle:  # as data.prepare: after the cache, shuffled every epoch, then batched
            dataset = dataset.shuffle(data.SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(cfg.batch_size).prefetch(tf.data.AUTOTUNE)

    values: dict[str, list] = {key: [] for key, *_ in CLAIMS}
    sizes: dict[str, list] = {key: [] for key, *_ in CLAIMS}

    def record(key, value, size):
        values[key].append(float(value))
        sizes[key].append(int(size))

    for fold in range(args.folds):
        seed = cfg.seed + fold
        fold_cfg = dataclasses.replace(cfg, seed=seed, output_dir=work / f"fold{fold}")
        fold_cfg.output_dir.mkdir(parents=True)
        train_i, val_i, test_i = fold_indices(labels, cfg.seed, fold)
        n_train, n_val, n_test = len(train_i), len(val_i), len(test_i)
        splits = SimpleNamespace(
            train=batches(train_i, shuffle=True, seed=seed),
            validation=batches(val_i, shuffle=False),
            test=batches(test_i, shuffle=False),
            class_names=class_names,
        )
        test_images, test_labels = images[test_i], labels[test_i]
        line = [f"fold {fold} (seed {seed}, {n_train}/{n_val}/{n_test}):"]

        # 04: the head on cached features, cfg.epochs epochs
        start = time.perf_counter()
        keras.utils.set_random_seed(seed)
        head = train.head_on_features(all_features.shape[-1], class_count)
        train.compile_for_logits(head, 1e-3, fold_cfg, steps_per_execution=50)
        head_timer = train.EpochTimer()
        train_set = train.features_dataset(
            fold_cfg, all_features[train_i], labels[train_i], shuffle=True
        )
        val_set = train.features_dataset(fold_cfg, all_features[val_i], labels[val_i])
        head_history = head.fit(
            train_set, validation_data=val_set, epochs=cfg.epochs, callbacks=[head_timer], verbose=0
        )
        head_weights = head.get_layer("logit").get_weights()
        transfer_test = head.evaluate(all_features[test_i], test_labels, verbose=0)[1]
        record("transfer_test", transfer_test, n_test)
        # 04's clock: the features of train and validation (their share of the pass), then epochs
        extract_seconds = extract_seconds_all * (n_train + n_val) / len(labels)
        transfer_seconds = extract_seconds + np.cumsum(head_timer.epoch_seconds)

        # 05: the head alone to convergence, from 04's head
        keras.utils.set_random_seed(seed)
        control = train.head_on_features(all_features.shape[-1], class_count)
        control.get_layer("logit").set_weights(head_weights)
        train.compile_for_logits(control, 1e-3, fold_cfg, steps_per_execution=50)
        control_stop = keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True)
        control_history = control.fit(
            train_set,
            validation_data=val_set,
            epochs=10 * cfg.epochs + 50,
            callbacks=[control_stop],
            verbose=0,
        )
        record("control_epochs", len(control_history.history["loss"]), n_train)
        control_logits = control.predict(all_features[test_i], verbose=0)
        record("control_test", np.mean(predict.classes(control_logits) == test_labels), n_test)
        took = clock.add("transfer", start)
        line.append(
            f"head {transfer_test:.3f} ({took:.0f} s), alone "
            f"{len(control_history.history['loss'])} epochs"
        )

        if "scratch" in args.parts:  # 04: the convnet from scratch, cfg.scratch_epochs, timed
            start = time.perf_counter()
            keras.utils.set_random_seed(seed)
            scratch = models.from_scratch(fold_cfg, class_count)
            train.compile_for_logits(scratch, 1e-3, fold_cfg, steps_per_execution=50)
            scratch_timer = train.EpochTimer()
            small, batch = models.scratch_size(fold_cfg), cfg.batch_size  # as 04: resized once
            small_val = data.prepare(splits.validation.unbatch(), small, batch, shuffle=False)
            scratch_history = scratch.fit(
                data.prepare(splits.train.unbatch(), small, batch, shuffle=True, seed=seed),
                validation_data=small_val,
                epochs=cfg.scratch_epochs,
                callbacks=[scratch_timer],
                verbose=0,
            )
            scratch_test = scratch.evaluate(splits.test, verbose=0)[1]
            scratch_best = max(scratch_history.history["val_accuracy"])
            record("scratch_test", scratch_test, n_test)
            record("scratch_best_val", scratch_best, n_val)
            record("scratch_seconds", sum(scratch_timer.epoch_seconds), n_train)
            reached = np.flatnonzero(np.array(head_history.history["val_accuracy"]) >= scratch_best)
            passed = transfer_seconds[reached[0]] if len(reached) else math.nan
            record("transfer_passed_seconds", passed, n_train)
            took = clock.add("scratch", start)
            line.append(
                f"scratch {scratch_test:.3f} in {sum(scratch_timer.epoch_seconds):.0f} s "
                f"({took:.0f} s)"
            )
            del scratch

        if "solution2" in args.parts:  # 05 Solution 2: the whole base at 1e-3, 10 batches
            start = time.perf_counter()
            keras.utils.set_random_seed(seed)
            model_2 = classifier_with_head(fold_cfg, class_count, head_weights)
            base_2 = model_2.get_layer(models.BASE_NAME)
            base_2.trainable = True
            for layer in base_2.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False
            train.compile_for_logits(model_2, 1e-3, fold_cfg)
            loss_before, before = model_2.evaluate(splits.validation, verbose=0)
            history_2 = model_2.fit(
                splits.train.take(SOLUTION2_BATCHES),
                validation_data=splits.validation,
                epochs=1,
                verbose=0,
            )
            after = history_2.history["val_accuracy"][-1]
            record("solution2_before", before, n_val)
            record("solution2_after", after, n_val)
            record("solution2_loss_before", loss_before, n_val)
            record("solution2_loss_after", history_2.history["val_loss"][-1], n_val)
            took = clock.add("solution2", start)
            line.append(f"solution 2 {before:.3f} -> {after:.3f} ({took:.0f} s)")
            del model_2

        if "finetune" in args.parts:  # 05: fine-tuning as train.fine_tuned_model does it
            start = time.perf_counter()
            keras.utils.set_random_seed(seed)
            model = classifier_with_head(fold_cfg, class_count, head_weights)
            stopping = train.fine_tune(model, fold_cfg, splits)
            model = models.for_inference(model)
            predictions = evaluate.collect(model, splits.test)
            predicted = predictions.predicted(0.5)
            record("fine_tuned_test", np.mean(predicted == test_labels), n_test)
            record("fine_tune_epochs", len(stopping.records), n_train)
            took = clock.add("finetune", start)
            line.append(f"fine-tuned {np.mean(predicted == test_labels):.3f} ({took:.0f} s)")

        if "deletion" in args.parts:  # 06: the deletion check against three controls
            start = time.perf_counter()
            correct = evaluate.balanced_sample(  # as 06: seeded, the classes in turn
                test_labels, DELETION_MAX, seed, among=np.flatnonzero(predicted == test_labels)
            )
            check_images = test_images[correct]
            cam_model = evaluate.gradcam_model(model)
            grad_cam = make_grad_cam(cam_model)
            parts = [grad_cam(check_images[i : i + 64]) for i in range(0, len(correct), 64)]
            cams = np.concatenate([heatmaps for heatmaps, _ in parts])
            features = cam_model.predict(check_images, verbose=0)[0].astype("float32")
            rng = np.random.default_rng(seed)
            random_weights = rng.normal(size=(len(correct), features.shape[-1]))
            maps = {
                "Grad-CAM": cams,
                "centre prior": np.broadcast_to(evaluate.centre_prior(cams.shape[1:]), cams.shape),
                "random head": np.einsum("nhwc,nc->nhw", features, random_weights),
                "random cells": rng.random(cams.shape),
            }
            drops = evaluate.deletion_drops(cam_model, check_images, maps)
            record("deletion_images", len(correct), n_test)
            zs = []
            for key, control_name in (
                ("z_centre", "centre prior"),
                ("z_head", "random head"),
                ("z_cells", "random cells"),
            ):
                z = evaluate.paired(drops["Grad-CAM"], drops[control_name])["z"]
                record(key, z, len(correct))
                zs.append(z)
            took = clock.add("deletion", start)
            line.append(
                f"deletion {len(correct)} photos z " + "/".join(f"{z:.1f}" for z in zs)
                + f" ({took:.0f} s)"
            )  # fmt: skip

        if "probe" in args.parts:  # 06: linear probes on the test photos, 5-fold CV
            from sklearn.linear_model import LogisticRegression
            from sklearn.model_selection import StratifiedKFold, cross_val_score
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            start = time.perf_counter()
            keras.utils.set_random_seed(seed)
            train_images = next(iter(splits.train.unbatch().batch(128)))[0]
            random_base = models.build_base(dataclasses.replace(fold_cfg, weights="none"))
            models.with_statistics_of(
                random_base, models.backbone(fold_cfg).scaling()(tf.cast(train_images, "float32"))
            )
            feature_sets = {
                "probe_pretrained": train.extract_features(
                    models.feature_extractor(fold_cfg, model.get_layer(models.BASE_NAME)),
                    splits.test,
                )[0],
                "probe_random": train.extract_features(
                    models.feature_extractor(fold_cfg, random_base), splits.test
                )[0],
                "probe_pixels": tf.image.resize(test_images, (16, 16)).numpy().reshape(n_test, -1),
            }
            folds = min(5, int(np.bincount(test_labels, minlength=2).min()))
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            accuracies = []
            for key, features in feature_sets.items():
                cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
                accuracy = cross_val_score(probe, features, test_labels, cv=cv).mean()
                record(key, accuracy, n_test)
                accuracies.append(accuracy)
            took = clock.add("probe", start)
            line.append("probe " + "/".join(f"{a:.3f}" for a in accuracies) + f" ({took:.0f} s)")
            del random_base

        if "export" in args.parts:  # 07: LiteRT float32 and 8-bit weights, against Keras
            start = time.perf_counter()
            folder = fold_cfg.output_dir / "export"
            folder.mkdir()
            float_path, small_path = folder / "float32.tflite", folder / "int8.tflite"
            with export.quiet():
                model.export(str(float_path), format="litert", verbose=False)
                model.export(
                    str(small_path),
                    format="litert",
                    verbose=False,
                    optimizations=[tf.lite.Optimize.DEFAULT],
                )
            plain_logits = predict.logits(model, test_images)
            small_logits = export.LiteRTModel(small_path).logits(test_images)
            judged = export.judge_approximation(plain_logits, small_logits, test_labels)
            slope = max(judged["slopes"], key=lambda s: abs(s - 1))  # the farthest from 1
            offset = max(judged["offsets"], key=abs)
            typical = judged["typical_logit"]
            record("int8_slope", slope, n_test)
            record("int8_offset", offset, n_test)
            record("int8_typical", typical, n_test)
            record("int8_offset_share", abs(offset) / typical, n_test)
            record("int8_correlation", judged["correlation"], n_test)
            record("int8_changed", judged["changed"], n_test)
            record("int8_accuracy_change", 100 * judged["accuracy_change"], n_test)
            record(
                "int8_lowest_class_agreement", min(judged["agreement_per_class"].values()), n_test
            )
            record("int8_faithful", float(judged["faithful"]), n_test)
            if plain_logits.ndim == 1:  # 07's counter-example: correlation 1, a shifted scale
                wrong = predict.classes(0.5 * plain_logits - 3) != test_labels
                record("halved_shifted_wrong", np.mean(wrong), n_test)
            record("int8_size_ratio", export.size_mb(float_path) / export.size_mb(small_path), 0)
            took = clock.add("export", start)
            line.append(
                f"8-bit slope {slope:.3f} offset {offset:+.3f} r {judged['correlation']:.4f} "
                f"changed {judged['changed']}, faithful {judged['faithful']} ({took:.0f} s)"
            )

        print(" ".join(line[:1]) + "\n  " + "\n  ".join(line[1:]), flush=True)
        keras.backend.clear_session()

    shutil.rmtree(work, ignore_errors=True)  # the folds' exports and fine-tuning backups
    return {
        "values": values,
        "sizes": sizes,
        "photos": len(labels),
        "classes": class_names,
        "seeds": [cfg.seed + fold for fold in range(args.folds)],
    }


# --- the table ------------------------------------------------------------------------------------


def summarise(results: dict[str, dict]) -> list[dict]:
    rows = []
    for key, label, fmt, quoted in CLAIMS:
        for name, result in results.items():
            measured = [v for v in result["values"][key] if not math.isnan(v)]
            if not result["values"][key]:
                continue
            sizes = result["sizes"][key]
            rows.append(
                {
                    "key": key,
                    "claim": label,
                    "data": name,
                    "values": [round(v, 4) for v in result["values"][key]],
                    "min": min(measured, default=math.nan),
                    "max": max(measured, default=math.nan),
                    "mean": statistics.mean(measured) if measured else math.nan,
                    "n": len(result["values"][key]),
                    "not_reached": len(result["values"][key]) - len(measured),
                    "per_run": "-" if not max(sizes) else f"{min(sizes)}"
                    if min(sizes) == max(sizes) else f"{min(sizes)}-{max(sizes)}",
                    "format": fmt,
                    "quoted": quoted.get(name, ""),
                }
            )  # fmt: skip
    return rows


def no_nan(value):
    """Returns ``value`` with NaN as None (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [no_nan(v) for v in value]
    return value


def print_table(rows: list[dict]) -> None:
    header = f"{'claim':58}{'data':>9}{'min-max':>17}{'mean':>9}{'n':>3}{'per run':>9}  prose says"
    print(header)
    print("-" * len(header))
    for row in rows:
        fmt = row["format"]
        if row["n"] == row["not_reached"]:
            span, mean = "never", ""
        else:
            span = f"{row['min']:{fmt}} to {row['max']:{fmt}}"
            mean = f"{row['mean']:{fmt}}"
        if row["not_reached"]:
            span += f" ({row['not_reached']} never)"
        print(
            f"{row['claim']:58}{row['data']:>9}{span:>17}{mean:>9}{row['n']:>3}"
            f"{row['per_run']:>11}  {row['quoted']}"
        )
    print(
        "per run: the images each fold measured on (test photos; validation photos for val "
        "accuracy; training photos for epochs and seconds; photos for the deletion check)"
    )


def print_saved(path: Path) -> None:
    """Prints the table of a JSON file written by this script (no measuring, no TensorFlow)."""
    try:
        saved = json.loads(path.read_text())
        formats = {key: fmt for key, _, fmt, _ in CLAIMS}
        rows = []
        for row in saved["rows"]:
            nan = {k: math.nan if row[k] is None else row[k] for k in ("min", "max", "mean")}
            rows.append({**row, **nan, "format": formats.get(row["key"], ".3f")})
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"claims.py: {path} is not a table this script wrote ({error})") from None
    seconds = saved.get("total_seconds", 0)
    print(f"{saved.get('command', '')}: {saved.get('folds')} folds, {seconds:.0f} s\n")
    print_table(rows)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.table:
        print_saved(args.table)
        return
    check_data(args)
    began = time.perf_counter()
    os.environ.setdefault("TQDM_DISABLE", "1")  # the helpers' progress bars: noise in a table
    from helpers import quiet

    quiet.import_tensorflow()
    import keras
    import tensorflow as tf

    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}; folds {args.folds}; "
        f"parts {','.join(args.parts)}; data {args.data_root.expanduser().resolve()}",
        flush=True,
    )
    results, clocks = {}, {}
    for name in args.sets:
        clocks[name] = Clock()
        start = time.perf_counter()
        results[name] = run_set(name, args, clocks[name])
        clocks[name].seconds["total"] = time.perf_counter() - start
    rows = summarise(results)

    print(f"\nThe reference photos' numbers: {args.folds} folds (disjoint class-balanced test")
    print("subsets of 10% of each class; training on 80%, validating on 10%; seeds TL_SEED + k)\n")
    print_table(rows)
    print("\nseconds per part (all folds): ")
    for name, clock in clocks.items():
        print(f"  {name}: " + ", ".join(f"{part} {s:.0f}" for part, s in clock.seconds.items()))
    total = time.perf_counter() - began
    print(f"total {total:.0f} s")

    settings = {
        "profile": "quick",
        "backbone": "mobilenet",
        "alpha": 0.25,
        "image_size": 224,
        "weights": str(WEIGHTS),
        "seeds": {name: r["seeds"] for name, r in results.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": " ".join(["benchmarks/claims.py", *(argv or sys.argv[1:])]),
                "settings": settings,
                "folds": args.folds,
                "parts": args.parts,
                "data_sets": {
                    name: {"photos": r["photos"], "classes": r["classes"]}
                    for name, r in results.items()
                },
                "rows": [{k: no_nan(v) for k, v in row.items() if k != "format"} for row in rows],
                "seconds": {name: clock.seconds for name, clock in clocks.items()},
                "total_seconds": total,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {args.out}")
    failed = check_reference_claims(results)
    for line in failed:
        print("CLAIM FAILED:", line)
    if failed:
        sys.exit(1)
    print("the series' claims about its reference photos hold on every fold")


if __name__ == "__main__":
    main()
