"""Cached features vs end-to-end frozen training, side by side in one run (the fast path of 04).

Both train the same head (dropout, one logit) on the same frozen base for ``cfg.epochs`` epochs:
  A. end to end: every epoch runs the augmented images through the frozen base again;
  B. cached features: the base runs once over the (unaugmented) images, the head trains on the
     stored feature vectors.
Prints seconds per epoch, validation and test accuracy of each, and the ratios.

    TL_PROFILE=quick TL_DATA=../shared/data/catsdogs-real TL_BACKBONE=mobilenet TL_ALPHA=0.25 \\
    TL_WEIGHTS=../shared/data/keras-models/mobilenet_2_5_224_tf_no_top.h5 TL_IMAGE_SIZE=224 \\
    .venv/bin/python benchmarks/transfer_speed.py
"""

from __future__ import annotations

import time

import keras

from helpers import augment, config, data, models, train


def main() -> None:
    cfg = config.load()
    print(config.environment_report(cfg), flush=True)
    keras.utils.set_random_seed(cfg.seed)
    train.use_fast_settings(cfg)
    splits = data.load(cfg)
    print(f"data: {splits.source}, sizes {splits.sizes}", flush=True)
    for _ in splits.train:  # fill the cache once, outside both timings
        pass
    for _ in splits.validation:
        pass

    base_model = models.build_base(cfg)
    base_model.trainable = False

    # A. end to end, with augmentation
    model = models.build_classifier(cfg, base_model, augment.build(), len(splits.class_names))
    train.compile_for_logits(model, 1e-3, cfg)
    timer_a = train.EpochTimer()
    history_a = model.fit(
        splits.train,
        validation_data=splits.validation,
        epochs=cfg.epochs,
        callbacks=[timer_a],
        verbose=0,
    )
    test_a = model.evaluate(splits.test, verbose=0)[1]

    # B. cached features
    start = time.perf_counter()
    extractor = models.feature_extractor(cfg, base_model)
    train_x, train_y = train.extract_features(extractor, splits.train)
    val_x, val_y = train.extract_features(extractor, splits.validation)
    extract_seconds = time.perf_counter() - start
    head = train.head_on_features(train_x.shape[-1], len(splits.class_names))
    train.compile_for_logits(head, 1e-3, cfg)
    timer_b = train.EpochTimer()
    history_b = head.fit(
        train_x,
        train_y,
        validation_data=(val_x, val_y),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        callbacks=[timer_b],
        verbose=0,
    )
    model_b = models.build_classifier(cfg, base_model, augment.build(), len(splits.class_names))
    train.copy_head(head, model_b)
    train.compile_for_logits(model_b, 1e-3, cfg)
    test_b = model_b.evaluate(splits.test, verbose=0)[1]

    epoch_a = sum(timer_a.epoch_seconds[1:]) / max(1, len(timer_a.epoch_seconds) - 1)
    epoch_b = sum(timer_b.epoch_seconds[1:]) / max(1, len(timer_b.epoch_seconds) - 1)
    total_a = sum(timer_a.epoch_seconds)
    total_b = extract_seconds + sum(timer_b.epoch_seconds)
    print(f"\n{'':28}{'end to end':>12}{'cached':>12}{'ratio':>8}")
    print(f"{'seconds per epoch':28}{epoch_a:12.2f}{epoch_b:12.3f}{epoch_a / epoch_b:8.0f}x")
    print(
        f"{'seconds in all (B: +extract)':28}{total_a:12.1f}{total_b:12.1f}"
        f"{total_a / total_b:8.1f}x"
    )
    print(
        f"{'final val accuracy':28}{history_a.history['val_accuracy'][-1]:12.3f}"
        f"{history_b.history['val_accuracy'][-1]:12.3f}"
    )
    print(f"{'test accuracy':28}{test_a:12.3f}{test_b:12.3f}")


if __name__ == "__main__":
    main()
