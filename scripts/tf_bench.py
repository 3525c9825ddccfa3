#!/usr/bin/env python3
"""The same model in TensorFlow/Keras, timed the way `digits bench` times it, for side-by-side ratios.

Used by scripts/bench.sh when tensorflow is importable (never a dependency of digits). The model
is built from the same text spec as digits' ModelSpec, in Keras layers (NHWC, TensorFlow's CPU
layout), trained with Adam on batches of random 28x28 images in float32, one compiled
(tf.function) step per batch, as Keras' own fit loop runs it.

  tf_bench.py MODEL_SPEC --threads T [--steps N]   one JSON line on stdout

Reports training images/s, inference images/s at batch 64 over 10,000 images, and the median
single-image latency.
"""
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_spec  # noqa: E402



def build(spec):
    """A Keras Sequential for a digits model spec (model_spec.layers)."""
    layers = [tf.keras.Input(shape=(28, 28, 1))]
    for kind, values in model_spec.layers(spec, "tf_bench"):
        if kind == "conv":
            out, k, s, p = values
            if p and 2 * p != k - 1:
                raise SystemExit(f"tf_bench: padding {p} with kernel {k} has no Keras equivalent in '{spec}'")
            layers.append(tf.keras.layers.Conv2D(out, k, strides=s, padding="same" if p else "valid"))
        elif kind == "bn":
            layers.append(tf.keras.layers.BatchNormalization())
        elif kind == "relu":
            layers.append(tf.keras.layers.ReLU())
        elif kind == "pool":
            layers.append(tf.keras.layers.MaxPooling2D(*values))
        elif kind == "flatten":
            layers.append(tf.keras.layers.Flatten())
        elif kind == "dense":
            layers.append(tf.keras.layers.Dense(values[0]))
        else:
            layers.append(tf.keras.layers.Dropout(values[0]))
    return tf.keras.Sequential(layers)


def train_rate(model, batch, steps, warmup):
    optimizer = tf.keras.optimizers.Adam(2e-3)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x = tf.random.uniform((batch, 28, 28, 1))
    y = tf.random.uniform((batch,), maxval=10, dtype=tf.int32)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    for _ in range(warmup):
        step()
    step().numpy()   # wait for the warm-up to finish
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.numpy()
    return batch * steps / (time.perf_counter() - start)


def inference(model, runs):
    images = tf.random.uniform((10_000, 28, 28, 1))
    batches = [images[i:i + 64] for i in range(0, 10_000, 64)]
    forward = tf.function(lambda x: model(x, training=False))
    for b in batches[:10] + batches[-1:]:
        forward(b).numpy()
    start = time.perf_counter()
    for b in batches:
        out = forward(b)
    out.numpy()
    rate = 10_000 / (time.perf_counter() - start)
    one = images[:1]
    for _ in range(20):
        forward(one).numpy()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        forward(one).numpy()
        times.append(time.perf_counter() - t0)
    return rate, 1000 * statistics.median(times)


def main():
    parser = model_spec.bench_parser(__doc__)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.keras.utils.set_random_seed(1)
    model = build(args.model)
    result = {"tensorflow": tf.__version__, "model": args.model, "batch": args.batch_size, "ranks": 1,
              "threads": args.threads,
              "images_per_second": train_rate(model, args.batch_size, args.steps, args.warmup_steps)}
    rate, latency = inference(model, args.latency_runs)
    result.update(inference_images_per_second=rate, latency_ms=latency)
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    sys.exit(main())
