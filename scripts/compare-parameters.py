#!/usr/bin/env python3
"""Compares two raw float32 parameter files (digits train --parameters-out).

usage: compare-parameters.py A B TOLERANCE   exits 0 when max |a-b| <= TOLERANCE, prints the figures.
Standard library only, so it runs on a bare machine.
"""
import array
import sys


def load(path):
    values = array.array("f")
    with open(path, "rb") as f:
        values.frombytes(f.read())
    if sys.byteorder != "little":
        values.byteswap()
    return values


a, b, tolerance = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
if len(a) != len(b):
    print(f"different sizes: {len(a)} and {len(b)} values")
    sys.exit(1)
worst = max(abs(x - y) for x, y in zip(a, b))
scale = max(abs(x) for x in a)
print(f"{len(a)} parameters, max |difference| {worst:.3g} (largest |parameter| {scale:.3g}), tolerance {tolerance:g}")
sys.exit(0 if worst <= tolerance else 1)
