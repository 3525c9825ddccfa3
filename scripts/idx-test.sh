#!/usr/bin/env bash
# Issue 19, part 1: any classification set in MNIST's IDX layout. A small synthetic set of a shape
# that is not MNIST's (5 classes, 20x24 images, with classes.txt; scripts/synthetic_idx.py) is
# accepted as an unknown set with its one-line notice, trained a few hundred steps, evaluated
# (accuracy far above chance) and read back by predict from PNGs, with the class names in the text
# and in --json. A damaged known set (MNIST with one byte flipped) is refused by inspect-data and
# train, naming the file.
#
#   scripts/idx-test.sh BIN [MNIST_DIR]      BIN: the digits binary; MNIST_DIR: default data/mnist
#
# Works in a temporary directory (removed at the end). Prints PASS/FAIL lines; exits 1 if any failed.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: scripts/idx-test.sh BIN [MNIST_DIR]" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
[ -x "$bin" ] || { echo "idx-test: no binary at $1" >&2; exit 2; }
mnist="$(cd "${2:-$root/data/mnist}" 2>/dev/null && pwd)" || mnist=""
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cd "$work"

passed=0; failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/     /' "$2" | tail -15; return 0; }

python3 "$root/scripts/synthetic_idx.py" set png || { echo "idx-test: could not write the synthetic set" >&2; exit 2; }

# An unknown set: inspect-data names its shape and classes and says it is unknown, exit 0.
if "$bin" inspect-data --data-dir set > inspect.out 2>&1 \
   && grep -q '^unknown set in set' inspect.out && grep -q '^20x24 images, 5 classes: ring, square, cross, bar, triangle$' inspect.out \
   && grep -qE '^train +1500 +20x24 +300 +300 +300 +300 +300 ' inspect.out; then
  pass "inspect-data: an unknown 20x24 set of 5 named classes, accepted"
else fail "inspect-data on the synthetic set" inspect.out; fi

# Train a few hundred steps: one notice line with the four hashes, the model's last layer dense5.
if "$bin" train --data-dir set --max-steps 200 --epochs 20 --checkpoint-dir ck > train.out 2>&1 \
   && [ "$(grep -c '^unknown set in set .*accepted: 20x24 images, 5 classes; SHA-256 of the content: ' train.out)" -eq 1 ] \
   && [ "$(grep '^unknown set' train.out | grep -oE '[0-9a-f]{64}' | wc -l)" -eq 4 ]; then
  pass "train: 200 steps on the unknown set, one notice line with its 4 hashes"
else fail "train on the synthetic set" train.out; fi

# Evaluate: far above chance (20%), class names in the text and in --json.
if "$bin" evaluate --data-dir set --checkpoint ck --json > eval.json 2> eval.err \
   && "$bin" evaluate --data-dir set --checkpoint ck > eval.out 2>&1; then
  accuracy=$(python3 -c "import json, sys; r = json.load(open(sys.argv[1])); assert r['classes'] == ['ring', 'square', 'cross', 'bar', 'triangle']; print(round(100 * r['accuracy'], 2))" eval.json 2>> eval.err)
  if [ -n "$accuracy" ] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) >= 90 else 1)" "$accuracy" \
     && grep -qE '^triangle +[0-9.]+% ' eval.out && grep -q 'dense5' eval.out; then
    pass "evaluate: $accuracy% on 300 test images of 5 classes (chance 20%), names in the text and --json"
  else fail "evaluate accuracy ${accuracy:-?}%" eval.out; cat eval.err; fi
else fail "evaluate on the synthetic set" eval.err; fi

# Predict on PNGs of test images (dark on light, 3x): names in the output, mostly right.
if "$bin" predict --checkpoint ck --json png > predict.json 2> predict.err && "$bin" predict --checkpoint ck png > predict.out 2>&1; then
  right=$(python3 -c "
import json, re, sys
names = ['ring', 'square', 'cross', 'bar', 'triangle']
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    label = int(re.search(r'label-(\d)', r['file']).group(1))
    assert r['class'] == names[r['digit']]
    n += r['digit'] == label
print(n)" predict.json 2>> predict.err)
  line=$(grep -m1 'img-000' predict.out)
  if [ -n "$right" ] && [ "$right" -ge 16 ] && grep -qE '^png/img-000-label-1.png +square ' predict.out; then
    pass "predict: $right/20 PNGs right, named: $line"
  else fail "predict ${right:-?}/20 right" predict.out; cat predict.err; fi
else fail "predict on the synthetic PNGs" predict.err; fi

if [ -n "$mnist" ]; then
  # A damaged known set: MNIST with one byte of the test labels changed is refused, naming the file.
  mkdir damaged
  cp "$mnist"/* damaged/ && chmod u+w damaged/*
  python3 - damaged <<'PY'
import glob, gzip, os, sys
path = glob.glob(os.path.join(sys.argv[1], "t10k-labels-idx1-ubyte*"))[0]
opener = gzip.open if path.endswith(".gz") else open
data = bytearray(opener(path, "rb").read())
data[100] ^= 1
with opener(path, "wb") as f:
    f.write(bytes(data))
PY
  if "$bin" inspect-data --data-dir damaged > damaged.out 2>&1; then
    fail "inspect-data accepted a damaged MNIST" damaged.out
  elif grep -q '^digits: error: damaged/t10k-labels-idx1-ubyte[.gz]*: SHA-256 of the uncompressed content is .*damaged download of MNIST' damaged.out \
     && grep -q 'MISMATCH' damaged.out; then
    pass "inspect-data: a damaged MNIST refused, naming damaged/t10k-labels-idx1-ubyte"
  else fail "inspect-data on a damaged MNIST" damaged.out; fi
  if "$bin" train --data-dir damaged --max-steps 1 --checkpoint-dir ck2 > damaged-train.out 2>&1; then
    fail "train accepted a damaged MNIST" damaged-train.out
  elif grep -q 't10k-labels-idx1-ubyte.*damaged download of MNIST' damaged-train.out \
     && [ -z "$(find ck2 -name '*.safetensors' 2>/dev/null)" ]; then
    pass "train: a damaged MNIST refused, naming the file, no checkpoint written"
  else fail "train on a damaged MNIST" damaged-train.out; fi
  # The synthetic model on MNIST's images: refused with a sentence, not a crash.
  if "$bin" evaluate --data-dir "$mnist" --checkpoint ck > wrong-shape.out 2>&1; then
    fail "evaluate ran a 20x24 model on 28x28 images" wrong-shape.out
  elif grep -q 'images are 28x28, but .* was trained on 20x24' wrong-shape.out; then
    pass "evaluate: a 20x24 model on MNIST's 28x28 images refused with a sentence"
  else fail "evaluate with the wrong image size" wrong-shape.out; fi
else
  echo "SKIP damaged known set: no MNIST directory (give it as the second argument)"
fi

# The 20x24, 5-class model exported to ONNX: input (N, 1, 20, 24), output (N, 5), and onnxruntime's
# logits of the 300 test images within 1e-4 of digits' own (skipped without onnxruntime).
if python3 -c "import onnxruntime, numpy" 2> /dev/null; then
  if "$bin" export --checkpoint ck --format onnx set.onnx > export.out 2>&1 \
     && "$bin" evaluate --data-dir set --checkpoint ck --logits-out set-logits.npy >> export.out 2>&1 \
     && python3 - set.onnx set-logits.npy set/t10k-images-idx3-ubyte.gz >> export.out 2>&1 <<'PY'
import gzip, sys, numpy as np, onnxruntime
raw = gzip.open(sys.argv[3]).read()
n, h, w = (int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
images = np.frombuffer(raw, np.uint8, offset=16).reshape(n, 1, h, w).astype(np.float32)
session = onnxruntime.InferenceSession(sys.argv[1])
shapes = (session.get_inputs()[0].shape, session.get_outputs()[0].shape)
assert shapes == (["N", 1, 20, 24], ["N", 5]), shapes
logits, reference = session.run(["logits"], {"image": images})[0], np.load(sys.argv[2])
difference = float(np.abs(logits - reference).max())
print(f"onnx: input {shapes[0]}, output {shapes[1]}, max |logit difference| {difference:.3g} over {n} images")
sys.exit(0 if difference <= 1e-4 else 1)
PY
  then
    pass "export: the 20x24 5-class model as ONNX; $(grep '^onnx:' export.out | sed 's/^onnx: //')"
  else fail "ONNX export of the synthetic model" export.out; fi
else
  echo "SKIP ONNX export of the synthetic model: python3 cannot import onnxruntime and numpy"
fi

echo "idx-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
