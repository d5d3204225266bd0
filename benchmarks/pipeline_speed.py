"""The input pipeline with and without cache, parallel map and prefetch, side by side in one run.

Measures images per second over a few epochs of the training split, without a model, so only
the pipeline is timed: A. a plain ``map`` (decode + resize every epoch, one image at a time);
B. ``data.prepare`` (parallel map, ``cache()``, ``prefetch``). Also times one epoch of the
frozen base's forward pass to show whether the pipeline can keep up with the model.

    TL_DATA=../shared/data/catsdogs-real TL_IMAGE_SIZE=224 \
    .venv/bin/python benchmarks/pipeline_speed.py
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf

from helpers import config, data, models

EPOCHS = 3


def images_per_second(dataset, epochs: int = EPOCHS) -> list[float]:
    rates = []
    for _ in range(epochs):
        start, count = time.perf_counter(), 0
        for images, _ in dataset:
            count += int(images.shape[0])
        rates.append(count / (time.perf_counter() - start))
    return rates


def main() -> None:
    cfg = config.load()
    raw = data.load_raw(cfg)
    print(f"data: {raw.source}, {raw.sizes['train']} training images, size {cfg.image_size}")

    def plain_resize(image, label):
        return data.resize(image, label, cfg.image_size)

    plain = raw.train.map(plain_resize).batch(cfg.batch_size)  # no parallelism, no cache
    prepared = data.prepare(raw.train, cfg.image_size, cfg.batch_size, shuffle=True)
    rate_plain = images_per_second(plain)
    rate_prepared = images_per_second(prepared)

    base_model = models.build_base(cfg)
    extractor = keras.Sequential([models.backbone(cfg).scaling(), base_model])
    step = tf.function(lambda x: extractor(x, training=False), reduce_retracing=True)
    start, count = time.perf_counter(), 0
    for images, _ in prepared:
        step(images)
        count += int(images.shape[0])
    rate_model = count / (time.perf_counter() - start)

    print(f"\n{'images per second':24}" + "".join(f"{f'epoch {i + 1}':>10}" for i in range(EPOCHS)))
    print(f"{'A. plain map':24}" + "".join(f"{r:10.0f}" for r in rate_plain))
    print(f"{'B. data.prepare':24}" + "".join(f"{r:10.0f}" for r in rate_prepared))
    print(
        f"{'ratio B / A':24}"
        + "".join(f"{b / a:9.1f}x" for a, b in zip(rate_plain, rate_prepared, strict=True))
    )
    print(f"\nthe frozen {cfg.backbone} base consumes {rate_model:.0f} images per second here;")
    print(
        f"after the first epoch the pipeline supplies {rate_prepared[-1] / rate_model:.0f}x that."
    )


if __name__ == "__main__":
    main()
