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
import argparse
import json
import os
import re
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf  # noqa: E402

PRESETS = {
    "seed-mlp": "flatten-dense128-relu-dense128-relu-dense10",
    "lenet5": "conv6k5p2-relu-pool2-conv16k5-relu-pool2-flatten-dense120-relu-dense84-relu-dense10",
    "convnet": "conv32k3-relu-pool2-conv64k3-relu-pool2-flatten-drop0.5-dense10",
    "reference": "conv32k5p2-bn-relu-pool2-conv64k5p2-bn-relu-pool2-flatten-dense256-relu-drop0.4-dense10",
    "default": "conv32k5p2-bn-relu-pool2-conv64k3p1-bn-relu-conv64k3p1-bn-relu-pool2-flatten-drop0.3-dense10",
}


def build(spec):
    """A Keras Sequential for a digits model spec (the subset the presets use)."""
    spec = PRESETS.get(spec, spec)
    layers = [tf.keras.Input(shape=(28, 28, 1))]
    for token in spec.split("-"):
        if m := re.fullmatch(r"conv(\d+)k(\d+)(?:s(\d+))?(?:p(\d+))?", token):
            out, k, s, p = int(m[1]), int(m[2]), int(m[3] or 1), int(m[4] or 0)
            if p:
                if 2 * p != k - 1:
                    raise SystemExit(f"tf_bench: padding {p} with kernel {k} has no Keras equivalent in '{spec}'")
                layers.append(tf.keras.layers.Conv2D(out, k, strides=s, padding="same"))
            else:
                layers.append(tf.keras.layers.Conv2D(out, k, strides=s))
        elif token == "bn":
            layers.append(tf.keras.layers.BatchNormalization())
        elif token == "relu":
            layers.append(tf.keras.layers.ReLU())
        elif m := re.fullmatch(r"pool(\d+)(?:s(\d+))?", token):
            layers.append(tf.keras.layers.MaxPooling2D(int(m[1]), int(m[2] or m[1])))
        elif token == "flatten":
            layers.append(tf.keras.layers.Flatten())
        elif m := re.fullmatch(r"dense(\d+)", token):
            layers.append(tf.keras.layers.Dense(int(m[1])))
        elif m := re.fullmatch(r"drop([0-9.]+)", token):
            layers.append(tf.keras.layers.Dropout(float(m[1])))
        else:
            raise SystemExit(f"tf_bench: unknown layer '{token}' in '{spec}'")
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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--latency-runs", type=int, default=300)
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
