#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into Fuzz/corpus (run from the repository root).

The JPEG seeds need Pillow (pip install pillow); without it they are left as they are.

The two real checkpoints, Fuzz/corpus/safetensors/real-*, are not made here: they
come from `digits train --model gap-dense10 --max-steps 2 --no-eval` and
`--model conv2k5s4-bn-relu-pool2-flatten-dense10` (see Fuzz/README.md).
"""
import gzip, hashlib, json, os, struct, sys, zlib

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


# --- safetensors: digits' sealing (tensor_sha256 over the data, header_sha256 over the header
# with its own digits zeroed), with tensors that need not match the model.
def checkpoint(tensors, metadata):
    data, header = b"", {}
    for name, shape, values in tensors:
        start = len(data)
        data += struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [start, len(data)]}
    meta = dict(metadata, tensor_sha256=hashlib.sha256(data).hexdigest(), header_sha256="0" * 64)
    header["__metadata__"] = meta
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    text = text.replace(b'"header_sha256":"' + b"0" * 64, b'"header_sha256":"' + hashlib.sha256(text).hexdigest().encode())
    return struct.pack("<Q", len(text)) + text + data

put("safetensors", "tiny", checkpoint(
    [("layers.0.weight", [2, 3], [0.5, -1, 2, 0, 1e-3, 3]), ("layers.0.bias", [2], [0, 1])],
    {"format_version": "1", "model": "gap-dense10"}))
put("safetensors", "empty-tensor", checkpoint(
    [("a", [0, 4], []), ("b", [1, 1, 1], [7])], {"format_version": "1", "model": "flatten-drop0.5-dense10"}))
put("safetensors", "no-tensors", checkpoint([], {"format_version": "1", "model": "lenet5"}))

# --- idx: labels (magic 0x801) and images (0x803), raw and gzip, and a two-member gzip.
def idx(magic, dims, payload):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + bytes(payload)

labels = idx(0x801, [6], [3, 1, 4, 1, 5, 9])
images = idx(0x803, [2, 28, 28], [(i * 7) % 256 if 8 < i % 28 < 20 else 0 for i in range(2 * 784)])
put("idx", "labels", labels)
put("idx", "labels.gz", gzip.compress(labels, mtime=0))
put("idx", "labels-two-members.gz", gzip.compress(labels[:7], mtime=0) + gzip.compress(labels[7:], mtime=0))
put("idx", "images.gz", gzip.compress(images, mtime=0))
put("idx", "images-3x4", idx(0x803, [1, 3, 4], range(12)))

# --- png: several colour types and depths (written by hand: signature, IHDR, IDAT, IEND).
def png(width, height, colour, depth, rows, extra=b""):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")

def seven(x, y, size):   # a stroke shaped like a 7, dark on light
    s = size
    return (y in (s // 5, s // 5 + 1) and s // 5 <= x < 4 * s // 5) or (s // 5 <= y < 4 * s // 5 and abs(x - (4 * s // 5 - (y - s // 5) // 2)) <= 1)

put("png", "grey8.png", png(28, 28, 0, 8, [[0 if seven(x, y, 28) else 255 for x in range(28)] for y in range(28)]))
put("png", "grey16.png", png(12, 12, 0, 16, [sum(([0, 0] if seven(x, y, 12) else [255, 255] for x in range(12)), []) for y in range(12)]))
put("png", "rgba.png", png(16, 16, 6, 8, [sum(([20, 30, 40, 255] if seven(x, y, 16) else [0, 0, 0, 0] for x in range(16)), []) for y in range(16)]))
put("png", "rgb-light-on-dark.png", png(20, 20, 2, 8, [sum(([250, 250, 240] if seven(x, y, 20) else [10, 10, 10] for x in range(20)), []) for y in range(20)]))
palette = b"\x00\x00\x00\xff\xff\xff"
def packbits(bits):
    return [int("".join(map(str, bits[i:i + 8])).ljust(8, "0"), 2) for i in range(0, len(bits), 8)]
put("png", "palette1.png", png(12, 10, 3, 1, [packbits([0 if seven(x, y, 12) else 1 for x in range(12)]) for y in range(10)],
    extra=struct.pack(">I", 6) + b"PLTE" + palette + struct.pack(">I", zlib.crc32(b"PLTE" + palette))))
put("png", "blank.png", png(4, 4, 0, 8, [[255] * 4] * 4))

# --- modelspec: the presets by name and as text, and other token forms.
presets = {
    "seed-mlp": "flatten-dense128-relu-dense128-relu-dense10",
    "lenet5": "conv6k5p2-relu-pool2-conv16k5-relu-pool2-flatten-dense120-relu-dense84-relu-dense10",
    "convnet": "conv32k3-relu-pool2-conv64k3-relu-pool2-flatten-drop0.5-dense10",
    "reference": "conv32k5p2-bn-relu-pool2-conv64k5p2-bn-relu-pool2-flatten-dense256-relu-drop0.4-dense10",
    "default": "conv32k5p2-bn-relu-pool2-conv64k3p1-bn-relu-conv64k3p1-bn-relu-pool2-flatten-drop0.3-dense10",
}
for name, spec in presets.items():
    put("modelspec", "preset-" + name, spec)
put("modelspec", "name-default", "default")
put("modelspec", "strided", "conv8k3s2p1-bn-relu-pool3s2-gap-dense10")
put("modelspec", "bn-vector", "flatten-dense32-bn-relu-drop0.25-dense10")

# --- augspec: the --augment text, optionally a newline and the --elastic text.
for i, text in enumerate(["default", "none", "rotation=10,scale=0.1,shift=2",
                          "rotation=15, scale=0.2 ,xyscale=1,shift=3,shear=10\n34,4", "shift=1\n8,2.5", "scale=0\n0,0.5"]):
    put("augspec", "seed-%d" % i, text)

# --- jpeg: grey and colour, baseline and progressive, 4:2:0 and 4:4:4, restart markers, CMYK
# (refused with a sentence), all written by Pillow's libjpeg.
try:
    from PIL import Image
except ImportError:
    print("make-corpus: Pillow is not installed; Fuzz/corpus/jpeg left as it is", file=sys.stderr)
else:
    import io

    def jpeg(image, **options):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", **options)
        return buffer.getvalue()

    grey = Image.new("L", (28, 28))
    grey.putdata([0 if seven(x, y, 28) else 255 for y in range(28) for x in range(28)])
    colour = Image.new("RGB", (24, 24))
    colour.putdata([(40, 30, 120) if seven(x, y, 24) else (250, 240, 200) for y in range(24) for x in range(24)])
    put("jpeg", "grey-baseline.jpg", jpeg(grey, quality=90))
    put("jpeg", "rgb-progressive-420.jpg", jpeg(colour, quality=80, progressive=True))
    put("jpeg", "rgb-444-restarts.jpg", jpeg(colour, quality=95, subsampling=0, restart_marker_blocks=2))
    put("jpeg", "cmyk.jpg", jpeg(Image.new("CMYK", (8, 8), (0, 200, 200, 30)), quality=75))

