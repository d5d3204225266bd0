"""Keras's own work around the steps, side by side in one run: the two settings 04 relies on.

A. A head like 04's (Dropout + Dense on 256 features, 1,600 vectors, 30 epochs, validated on 200)
   compiled with ``steps_per_execution`` 1 and 50 in turn: seconds each, and their ratio.
B. A 3-step ``fit`` over a cached ``tf.data`` set, with tf.data's autotuning on and off in turn
   (``data.without_autotune``): how many epochs start late (their first step begins more than
   0.2 s after the epoch does), and the seconds of all epochs.
C. The head of A, 50 steps a call, given its vectors as arrays (``fit(x, y, validation_data=(x,
   y))``, which builds a new input pipeline from them every epoch) and as ``tf.data`` sets made
   once (``train.features_dataset``) in turn: seconds each, and their ratio.

Each pair alternates, so a machine that slows down during the run slows both sides. No real
photos are needed: the work measured does not depend on what the numbers are.

    flock /tmp/tf.lock .venv/bin/python benchmarks/fit_overhead.py
"""

from __future__ import annotations

import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from helpers import config, data, train

ROUNDS = 3
LATE = 0.2  # seconds between an epoch's start and its first step that count as late


def head_seconds(cfg, steps_per_execution: int, rng, *, datasets: bool = False) -> float:
    features = rng.normal(size=(1800, 256)).astype("float32")
    labels = (features[:, 0] > 0).astype("float32")
    head = train.head_on_features(256, 2)
    train.compile_for_logits(head, 1e-3, cfg, steps_per_execution=steps_per_execution)
    start = time.perf_counter()
    if datasets:
        head.fit(
            train.features_dataset(cfg, features[:1600], labels[:1600], shuffle=True),
            validation_data=train.features_dataset(cfg, features[1600:], labels[1600:]),
            epochs=cfg.epochs,
            verbose=0,
        )
    else:
        head.fit(
            features[:1600],
            labels[:1600],
            validation_data=(features[1600:], labels[1600:]),
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            verbose=0,
        )
    return time.perf_counter() - start


class EpochStarts(keras.callbacks.Callback):
    """Records, per epoch, the seconds from its start to its first step."""

    def on_train_begin(self, logs=None):
        self.delays, self.first = [], False

    def on_epoch_begin(self, epoch, logs=None):
        self.began, self.first = time.perf_counter(), True

    def on_train_batch_begin(self, batch, logs=None):
        if self.first:
            self.delays.append(time.perf_counter() - self.began)
            self.first = False


def short_epochs(autotune: bool, epochs: int = 24) -> tuple[int, float]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(3 * 32, 224, 224, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, size=len(images)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(32).cache()
    dataset = dataset if autotune else data.without_autotune(dataset)
    model = keras.Sequential(
        [
            keras.Input((224, 224, 3)),  # steps of about 0.1 s, as 08's on two CPU cores
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    starts, timer = EpochStarts(), train.EpochTimer()
    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[starts, timer])
    late = sum(delay > LATE for delay in starts.delays[1:])  # the first epoch traces
    return late, sum(timer.epoch_seconds[1:])


def main() -> None:
    cfg = config.load()
    rng = np.random.default_rng(0)
    print(f"A. a head, {cfg.epochs} epochs on 1,600 vectors, validated on 200 ({ROUNDS} rounds)")
    seconds = {1: [], 50: []}
    for _ in range(ROUNDS):
        for steps in seconds:
            seconds[steps].append(head_seconds(cfg, steps, rng))
    one, fifty = (statistics.median(seconds[steps]) for steps in (1, 50))
    print(f"   steps_per_execution=1: {one:.2f} s, 50: {fifty:.2f} s (medians)", end=" ")
    print(f"ratio {one / fifty:.2f}")
    print(f"B. 24 epochs of a 3-step fit, cached tf.data ({ROUNDS} rounds)")
    results = {True: [], False: []}
    for _ in range(ROUNDS):
        for autotune in results:
            results[autotune].append(short_epochs(autotune))
    for autotune, runs in results.items():
        late = [count for count, _ in runs]
        total = statistics.median(seconds for _, seconds in runs)
        print(f"   autotune {'on ' if autotune else 'off'}: epochs late {late}, {total:.2f} s")
    print(f"C. the head of A, 50 steps a call, on arrays and on tf.data sets ({ROUNDS} rounds)")
    given = {False: [], True: []}
    for _ in range(ROUNDS):
        for datasets in given:
            given[datasets].append(head_seconds(cfg, 50, rng, datasets=datasets))
    arrays, sets = (statistics.median(given[datasets]) for datasets in (False, True))
    print(f"   arrays: {arrays:.2f} s, tf.data sets: {sets:.2f} s (medians)", end=" ")
    print(f"ratio {arrays / sets:.2f}")


if __name__ == "__main__":
    main()
