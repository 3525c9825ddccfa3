#!/usr/bin/env python3
"""Opens a digits checkpoint with the `safetensors` package, as any Python user would.

usage: check-safetensors.py CHECKPOINT
Checks the tensor names and shapes against the model spec in the metadata (for specs made of
conv/dense/bn/relu/pool/flatten/drop tokens), that every tensor is float32 and finite, and
prints a summary. Exits 0 when all holds, 1 otherwise, 2 when safetensors or numpy is missing.
"""
import re
import sys

try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file
except ImportError as error:
    print(f"check-safetensors: {error}")
    sys.exit(2)

path = sys.argv[1]
tensors = load_file(path)
with safe_open(path, framework="numpy") as f:
    metadata = f.metadata()

expected = {}
channels, height, width, vector = 1, 28, 28, False
for index, token in enumerate(metadata["model"].split("-")):
    name = f"layers.{index}"
    if m := re.fullmatch(r"conv(\d+)k(\d+)(?:s(\d+))?(?:p(\d+))?", token):
        out, k, s, p = int(m[1]), int(m[2]), int(m[3] or 1), int(m[4] or 0)
        expected[name + ".weight"] = (out, channels, k, k)
        expected[name + ".bias"] = (out,)
        channels, height, width = out, (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1
    elif m := re.fullmatch(r"pool(\d+)(?:s(\d+))?", token):
        k, s = int(m[1]), int(m[2] or m[1])
        height, width = (height - k) // s + 1, (width - k) // s + 1
    elif token == "bn":
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            expected[f"{name}.{suffix}"] = (channels,)
    elif token == "flatten":
        channels, height, width, vector = channels * height * width, 1, 1, True
    elif token == "gap":
        height, width = 1, 1
    elif m := re.fullmatch(r"dense(\d+)", token):
        expected[name + ".weight"] = (int(m[1]), channels * height * width)
        expected[name + ".bias"] = (int(m[1]),)
        channels, height, width = int(m[1]), 1, 1

# Several ranks: each rank's own BatchNorm statistics, (ranks, all running_* values), for an exact resume.
buffer_values = sum(shape[0] for name, shape in expected.items() if ".running_" in name)
world = int(metadata.get("world_size", "1"))
if world > 1 and buffer_values > 0:
    expected["ranks.buffers"] = (world, buffer_values)
# fp16 gradients: the per-bucket scales of the next step.
if "exchange.fp16_scales" in tensors and tensors["exchange.fp16_scales"].ndim == 1:
    expected["exchange.fp16_scales"] = tensors["exchange.fp16_scales"].shape

problems = []
for name, shape in expected.items():
    if name not in tensors:
        problems.append(f"missing {name}")
    elif tensors[name].shape != shape:
        problems.append(f"{name} has shape {tensors[name].shape}, expected {shape}")
for name, array in tensors.items():
    if array.dtype != np.float32:
        problems.append(f"{name} is {array.dtype}")
    if not np.all(np.isfinite(array)):
        problems.append(f"{name} has non-finite values")
    base = name.split(".", 2)[-1] if name.startswith("optimizer.") else name
    if base not in expected:
        problems.append(f"unexpected tensor {name}")

parameters = sum(tensors[n].size for n in expected if n.startswith("layers.") and "running_" not in n and n in tensors)
print(f"{path}: {len(tensors)} tensors, {parameters} parameters, model {metadata['model']}, "
      f"epoch {metadata.get('epoch')}, step {metadata.get('global_step')}")
for problem in problems:
    print("  problem:", problem)
sys.exit(1 if problems else 0)
