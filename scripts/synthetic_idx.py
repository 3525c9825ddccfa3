#!/usr/bin/env python3
"""A small learnable classification set in MNIST's IDX layout, of a shape that is not MNIST's.

    python3 scripts/synthetic_idx.py OUT_DIR [PNG_DIR]

Writes OUT_DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (1500 and 300 images of 20x24,
height by width) and OUT_DIR/classes.txt for 5 classes: ring, square, cross, bar, triangle, each
drawn light on black, jittered in size, stroke and position, with a little noise, its ink box
fitting 20/28 of the field as MNIST's digits do. With PNG_DIR, also writes the first 20 test
images there as PNGs, dark on light and enlarged 3x (like photos), named img-NNN-label-K.png.
Standard library only; the same files on every run (fixed seed)."""
import gzip, math, os, random, struct, sys, zlib

H, W = 20, 24
NAMES = ["ring", "square", "cross", "bar", "triangle"]


def draw(label, rng):
    img = [[0.0] * W for _ in range(H)]
    # The ink box: up to 20/28 of the field (14 x 17), scaled 0.75-1, shifted a little.
    s = rng.uniform(0.75, 1.0)
    bh, bw = 14 * s, 17 * s
    cy, cx = H / 2 + rng.uniform(-1, 1), W / 2 + rng.uniform(-1, 1)
    t = rng.uniform(1.0, 1.8)  # stroke half-width
    top, left = cy - bh / 2, cx - bw / 2
    for y in range(H):
        for x in range(W):
            py, px = y + 0.5, x + 0.5
            u, v = (px - left) / bw, (py - top) / bh  # 0..1 inside the box
            inside = 0 <= u <= 1 and 0 <= v <= 1
            on = False
            if label == 0:  # ring (an ellipse's outline)
                r = math.hypot((u - 0.5) * bw, (v - 0.5) * bh * bw / bh)
                on = abs(r - bw / 2 + t) < t
            elif label == 1:  # square outline
                d = min(px - left, left + bw - px, py - top, top + bh - py)
                on = inside and d < 2 * t
            elif label == 2:  # cross (both diagonals)
                on = inside and (abs(u - v) * bw < t or abs(u + v - 1) * bw < t)
            elif label == 3:  # a thick horizontal bar
                on = 0 <= u <= 1 and abs(py - cy) < 2 * t
            else:  # filled triangle, point up
                on = inside and abs(u - 0.5) <= v / 2
            if on:
                img[y][x] = rng.uniform(0.8, 1.0)
    return [[min(255, max(0, int(255 * img[y][x] + rng.uniform(0, 25)))) for x in range(W)] for y in range(H)]


def idx(path, magic, dims, data):
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data))


def png(path, rows):
    h, w = len(rows), len(rows[0])
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = random.Random(19)
    for split, count in (("train", 1500), ("t10k", 300)):
        labels = [i % 5 for i in range(count)]
        rng.shuffle(labels)
        images = [draw(k, rng) for k in labels]
        idx(f"{out}/{split}-images-idx3-ubyte.gz", 0x803, (count, H, W), [p for im in images for row in im for p in row])
        idx(f"{out}/{split}-labels-idx1-ubyte.gz", 0x801, (count,), labels)
        if split == "t10k" and len(sys.argv) > 2:
            os.makedirs(sys.argv[2], exist_ok=True)
            for n in range(20):
                big = [[255 - images[n][y // 3][x // 3] for x in range(3 * W)] for y in range(3 * H)]
                png(f"{sys.argv[2]}/img-{n:03d}-label-{labels[n]}.png", big)
    with open(f"{out}/classes.txt", "w") as f:
        f.write("\n".join(NAMES) + "\n")


main()
