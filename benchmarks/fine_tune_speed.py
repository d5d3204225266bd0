"""How much of the base to fine-tune, and how: seconds per epoch and test accuracy, side by side.

One run, the same data, the same starting head (trained once on cached features, then copied
into every variant), the same learning rate (Adam 1e-5) and number of epochs:

  head           the control: no fine-tuning; the same starting head trains on, on cached
                 features, for HEAD_EPOCHS more epochs (the head alone, near convergence)
  all            the whole base trains (the seed recipe; the reference of every ratio)
  top N          only the top N blocks train (TL_UNFREEZE=N); BatchNorm frozen everywhere
  top N stored   05's TL_STORED_VIEWS=2: the frozen bottom runs once over every training image and
                 its horizontal flip; each epoch trains only the top on those stored
                 activations, picking the image or its flip at random (no rotation: that is
                 the augmentation it gives up)
  ... storedK    TL_STORED_VIEWS=K: the image, its flip, and K - 2 draws of the model's own
                 augmentation (random flip and rotation); each epoch picks one
  bf16 ...       the same in mixed_bfloat16 (only on CPUs with avx512_bf16 or AMX)
  ... xla        augmentation moved into the tf.data pipeline, so the model has no random
                 layers and compiles with jit_compile=True

Seconds per epoch leave out the first epoch, which also traces and compiles (shown apart).
Accuracy is measured on the test split and, as a less noisy second figure, on validation + test
(validation plays no part in this benchmark's training).

    source /work/real.env
    flock /tmp/tl-heavy.lock .venv/bin/python benchmarks/fine_tune_speed.py --epochs 5
    ... --variants all,top2,top2-stored --seeds 1,2,3 --repeat all,top2   (more seeds)
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import keras
import tensorflow as tf

from helpers import augment, config, data, models, train

LEARNING_RATE = 1e-5  # 05's fine-tuning rate
HEAD_EPOCHS = 100  # the control's further epochs of the head (an epoch takes milliseconds)


def bf16_supported() -> tuple[bool, str]:
    """Returns (supported, why): bfloat16 pays only with hardware support for it."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False, "no /proc/cpuinfo to check the CPU's bfloat16 support"
    found = [flag for flag in ("amx_bf16", "avx512_bf16") if flag in flags]
    if found:
        return True, "CPU flags: " + ", ".join(found)
    return False, "the CPU has neither avx512_bf16 nor AMX"


@dataclasses.dataclass
class Variant:
    name: str
    unfreeze: str | int
    stored: int = 0  # views stored per training image (0: none, train through the bottom)
    policy: str = "float32"
    xla: bool = False  # augmentation in tf.data, jit_compile=True


def parse_variant(name: str) -> Variant:
    """Returns the variant a name means: ``all``, ``top2``, ``top2-stored``, ``bf16-top2-xla``."""
    if name == "head":
        return Variant(name, "none")
    parts = name.split("-")
    policy = "float32"
    if parts[0] == "bf16":
        policy, parts = "mixed_bfloat16", parts[1:]
    how = parts[0]
    unfreeze: str | int = "all" if how == "all" else int(how.removeprefix("top"))
    flags = set(parts[1:])
    stored = 0
    for flag in [f for f in flags if f.startswith("stored")]:
        stored = int(flag.removeprefix("stored") or 2)
        flags.discard(flag)
    unknown = flags - {"xla"}
    if unknown or (how != "all" and not how.startswith("top")) or stored == 1:
        raise SystemExit(f"unknown variant {name!r}")
    return Variant(name, unfreeze, stored, policy, "xla" in flags)


def accuracy(model: keras.Model, dataset) -> float:
    return float(model.evaluate(dataset, verbose=0)[1])


def run_variant(cfg, splits, head_weights, variant: Variant, epochs: int, seed: int) -> dict:
    keras.mixed_precision.set_global_policy(variant.policy)
    keras.utils.set_random_seed(seed)
    base_model = models.build_base(cfg)
    base_model.trainable = False
    in_model = not variant.xla and not variant.stored
    model = models.build_classifier(
        cfg, base_model, augment.build() if in_model else None, len(splits.class_names)
    )
    model.get_layer("logit").set_weights(head_weights)
    timer = train.EpochTimer()
    setup = 0.0

    if variant.name == "head":  # the control: the same head, trained on; the base untouched
        start = time.perf_counter()
        features, labels = train.extract_features(
            models.feature_extractor(cfg, base_model), splits.train
        )
        setup = time.perf_counter() - start
        head = train.head_on_features(features.shape[-1], len(splits.class_names))
        head.get_layer("logit").set_weights(head_weights)
        train.compile_for_logits(head, 1e-3, cfg)
        head.fit(
            features,
            labels,
            epochs=HEAD_EPOCHS,
            batch_size=cfg.batch_size,
            callbacks=[timer],
            verbose=0,
        )
        train.copy_head(head, model)
    elif variant.stored:  # 05's path: helpers.models.split_base, helpers.train.store_views
        start = time.perf_counter()
        bottom, top = models.split_base(base_model, models.unfreeze(base_model, variant.unfreeze))
        stored, labels = train.store_views(cfg, bottom, splits.train, variant.stored)
        setup = time.perf_counter() - start
        top_model = models.top_classifier(model, top)
        train.compile_for_logits(top_model, LEARNING_RATE, cfg)
        stored_ds = train.views_dataset(cfg, stored, labels, shuffle=True)
        top_model.fit(stored_ds, epochs=epochs, callbacks=[timer], verbose=0)
    else:
        models.unfreeze(base_model, variant.unfreeze)
        train_ds = splits.train
        if variant.xla:
            augmentation = augment.build()
            train_ds = train_ds.map(
                lambda x, y: (augmentation(tf.cast(x, "float32"), training=True), y),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        loss, accuracy_metric = train.loss_and_accuracy(model)
        model.compile(
            optimizer=keras.optimizers.Adam(LEARNING_RATE),
            loss=loss,
            metrics=[accuracy_metric],
            jit_compile=variant.xla,
        )
        model.fit(train_ds, epochs=epochs, callbacks=[timer], verbose=0)
        if variant.xla and not model.jit_compile:
            print(f"  {variant.name}: Keras turned jit_compile off", flush=True)

    train.compile_for_logits(model, LEARNING_RATE, dataclasses.replace(cfg, gpu=False))
    test = accuracy(model, splits.test)
    held_out = (
        test * splits.sizes["test"]
        + accuracy(model, splits.validation) * (splits.sizes["validation"])
    ) / (splits.sizes["test"] + splits.sizes["validation"])
    seconds = timer.epoch_seconds
    result = dict(
        variant=variant.name,
        seed=seed,
        trained_arrays=len(model.trainable_weights),
        setup=setup,
        first=seconds[0],
        per_epoch=statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0],
        total=setup + sum(seconds),
        test=test,
        held_out=held_out,
    )
    keras.mixed_precision.set_global_policy("float32")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs per variant")
    parser.add_argument(
        "--variants",
        default="head,all,top2,top4,top2-stored,top2-xla,bf16-all,bf16-top2,bf16-top2-xla",
        help="comma-separated: head (the control), all, topN, topN-stored (2 views), "
        "topN-storedK (K views), topN-xla, bf16-<any of those>",
    )
    parser.add_argument(
        "--seeds", default="", help="comma-separated seeds (default: TL_SEED); the first runs all"
    )
    parser.add_argument(
        "--repeat",
        default="all,top2",
        help="the variants that also run with the other seeds (accuracy within noise?)",
    )
    args = parser.parse_args()

    cfg = config.load()
    print(config.environment_report(cfg), flush=True)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [cfg.seed]
    variants = [parse_variant(name) for name in args.variants.split(",")]
    supported, why = bf16_supported()
    if not supported:
        skipped = [v.name for v in variants if v.policy != "float32"]
        if skipped:
            print(f"skipping {', '.join(skipped)}: {why}")
        variants = [v for v in variants if v.policy == "float32"]
    else:
        print(f"bfloat16: {why}")

    keras.utils.set_random_seed(cfg.seed)
    splits = data.load(cfg)
    print(f"data: {splits.source}, sizes {splits.sizes}", flush=True)
    for dataset in (splits.train, splits.validation, splits.test):
        for _ in dataset:  # fill the caches once, outside every timing
            pass

    # The starting head, trained once on cached features (as 04 does), copied into each variant.
    start = time.perf_counter()
    head_model, _ = train.transfer_model(cfg, splits)
    print(f"head trained in {time.perf_counter() - start:.0f} s", flush=True)
    head_weights = head_model.get_layer("logit").get_weights()

    results = []
    repeat = set(args.repeat.split(","))
    for seed in seeds:
        for variant in variants:
            if seed != seeds[0] and variant.name not in repeat:
                continue
            result = run_variant(cfg, splits, head_weights, variant, args.epochs, seed)
            results.append(result)
            print(
                f"  seed {seed} {variant.name:16} {result['per_epoch']:6.2f} s/epoch "
                f"(first {result['first']:.1f} s, setup {result['setup']:.1f} s), "
                f"test {result['test']:.4f}, val+test {result['held_out']:.4f}",
                flush=True,
            )

    reference = statistics.mean(r["per_epoch"] for r in results if r["variant"] == "all")
    print(
        f"\n{args.epochs} epochs; seeds {seeds} for {sorted(repeat)}, {seeds[0]} for the others; "
        "means over seeds; "
        "ratio = whole base's seconds per epoch / the variant's"
    )
    header = (
        f"{'variant':16}{'arrays':>7}{'setup s':>9}{'1st epoch':>10}{'s/epoch':>9}"
        f"{'ratio':>7}{'total s':>9}{'test acc':>10}{'val+test':>10}"
    )
    print(header)
    print("-" * len(header))
    for variant in variants:
        rows = [r for r in results if r["variant"] == variant.name]
        mean = {
            k: statistics.mean(r[k] for r in rows) for k in ("setup", "first", "per_epoch", "total")
        }
        tests = " / ".join(f"{r['test']:.3f}" for r in rows)
        test = statistics.mean(r["test"] for r in rows)
        held = statistics.mean(r["held_out"] for r in rows)
        print(
            f"{variant.name:16}{rows[0]['trained_arrays']:>7}{mean['setup']:>9.1f}"
            f"{mean['first']:>10.1f}{mean['per_epoch']:>9.2f}"
            f"{reference / mean['per_epoch']:>6.1f}x{mean['total']:>9.1f}{test:>10.4f}"
            f"{held:>10.4f}   tests: {tests}"
        )


if __name__ == "__main__":
    main()
