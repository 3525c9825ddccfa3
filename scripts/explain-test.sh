#!/usr/bin/env bash
# Why the model said what it said, end to end: a small conv net and the seed MLP are trained 100
# steps each; `predict --explain DIR` writes one PNG per input (named after it), which is read
# back (Python's zlib, no other module): its size is the documented layout's, the left panel is the
# preprocessed digit and the right one a heat map that is not constant. The MLP's pictures and
# output say saliency, the conv net's Grad-CAM. `evaluate --misclassified --explain-misclassified`
# draws heat maps beside the misses; wrong uses are one line naming the problem and a non-zero exit.
#
#   scripts/explain-test.sh BIN DATA_DIR      BIN: the digits binary; DATA_DIR: MNIST
#
# Works in a temporary directory (removed at the end). Prints PASS/FAIL lines; exits 1 if any failed.
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: scripts/explain-test.sh BIN DATA_DIR" >&2; exit 2; }
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
data="$(cd "$2" && pwd)" || { echo "explain-test: no data directory $2" >&2; exit 2; }
[ -x "$bin" ] || { echo "explain-test: no binary at $1" >&2; exit 2; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cd "$work"

passed=0; failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/     /' "$2" | tail -15; return 0; }

# Reads a PNG written by digits (8-bit grey or RGB, any filter) and checks an explanation picture:
# check-picture.py FILE WIDTH HEIGHT. The layout for a 28x28 input: margin 8, the input magnified 8x
# at (8, 8), the heat map laid over it at (240, 8), each 224x224. The right panel is 0.55 of the heat
# colour and 0.45 of the grey input: the heat is read back through the colour ramp (HeatColors in
# Sources/ImageIO/HeatOverlay.swift) and must take many values over at least half of 0...1.
cat > check-picture.py <<'PY'
import struct, sys, zlib

def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR": header = struct.unpack(">IIBBBBB", body)
        if kind == b"IDAT": idat += body
        pos += 12 + length
    width, height, depth, colour = header[:4]
    assert depth == 8 and colour in (0, 2), f"bit depth {depth}, colour type {colour}"
    channels = 3 if colour == 2 else 1
    raw, stride = zlib.decompress(idat), width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1: line[i] = (line[i] + a) & 255
            elif kind == 2: line[i] = (line[i] + b) & 255
            elif kind == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        previous = line
    return width, height, channels, rows

path, want_w, want_h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
w, h, channels, rows = read_png(path)
assert (w, h, channels) == (want_w, want_h, 3), f"{w}x{h} with {channels} channels, want {want_w}x{want_h} RGB"
pixel = lambda x, y: tuple(rows[y][3 * x:3 * x + 3])
left = [pixel(8 + x, 8 + y) for y in range(224) for x in range(224)]
assert all(r == g == b for r, g, b in left), "the left panel (the input) is not grey"
assert len({p[0] for p in left}) > 2, "the left panel holds no digit"
stops = [(0.00, 20, 20, 110), (0.25, 30, 110, 255), (0.50, 40, 220, 200), (0.75, 250, 220, 40), (1.00, 220, 30, 20)]
def ramp(v):
    for (a, *ca), (b, *cb) in zip(stops, stops[1:]):
        if v <= b: return [x + (v - a) / (b - a) * (y - x) for x, y in zip(ca, cb)]
ramp_table = [(i / 200, ramp(i / 200)) for i in range(201)]
def heat(overlay, grey):
    colour = [(o - 0.45 * grey) / 0.55 for o in overlay]
    value, miss = min(((v, sum((c - r) ** 2 for c, r in zip(colour, rgb))) for v, rgb in ramp_table), key=lambda t: t[1])
    assert miss < 50, f"a right-panel pixel {overlay} over grey {grey} is no heat colour"
    return value
heats = [heat(pixel(240 + x, 8 + y), left[y * 224 + x][0]) for y in range(0, 224, 4) for x in range(0, 224, 4)]
levels = {round(v, 2) for v in heats}
assert len(levels) >= 8, f"the heat map is (nearly) constant: {len(levels)} levels"
assert max(heats) - min(heats) >= 0.5, f"the heat map spans only {min(heats)}..{max(heats)}"
print(f"{w}x{h}, heat {min(heats):.2f}..{max(heats):.2f} in {len(levels)} levels")
PY

"$bin" sample-images --data-dir "$data" --count 4 --out png > /dev/null 2>&1 || { echo "explain-test: sample-images failed" >&2; exit 2; }

for model in conv8k3p1-bn-relu-pool2-conv16k3p1-bn-relu-pool2-flatten-dense10 seed-mlp; do
  name=$([ "$model" = seed-mlp ] && echo mlp || echo conv)
  if ! "$bin" train --data-dir "$data" --model "$model" --max-steps 100 --no-eval --checkpoint-dir "ck-$name" \
       > "train-$name.out" 2>&1; then
    fail "$name: digits train --max-steps 100" "train-$name.out"; continue
  fi
  if ! "$bin" predict --checkpoint "ck-$name" --explain "explain-$name" png > "predict-$name.out" 2>&1; then
    fail "$name: predict --explain" "predict-$name.out"; continue
  fi
  # The method, said once before the answers.
  if [ $name = conv ]; then said="Grad-CAM of the predicted class at the output of layer 8 'pool2' (16, 7, 7)"
  else said="input-gradient saliency |d logit / d pixel| of the predicted class (the model has no convolution for Grad-CAM)"; fi
  grep -qF "explanations in explain-$name/: $said" "predict-$name.out" \
    && pass "$name: predict says how it explains: $said" || fail "$name: predict's explanation line" "predict-$name.out"
  ok=1; report=""
  for input in png/*.png; do
    picture="explain-$name/$(basename "$input")"
    [ -f "$picture" ] || { ok=0; fail "$name: no $picture for $input" "predict-$name.out"; continue; }
    if python3 check-picture.py "$picture" 472 304 > check.out 2>&1; then report=$(cat check.out)
    else ok=0; fail "$name: $picture" check.out; fi
  done
  [ $ok -eq 1 ] && pass "$name: predict --explain wrote 4 pictures, 472x304, input beside a heat map that is not constant (last: $report)"
done

# The explanation agrees with the answer: the same class and probability in the printed line.
if [ -f explain-conv/digit-00000-label-7.png ]; then
  "$bin" predict --checkpoint ck-conv --json --explain explain-json png/digit-00000-label-7.png > json.out 2>&1
  if [ "$(wc -l < json.out)" -eq 1 ] && grep -q '^{"file":"png/digit-00000-label-7.png","digit":' json.out && [ -f explain-json/digit-00000-label-7.png ]; then
    pass "predict --json --explain: one JSON line per image (no extra line), the picture written"
  else fail "predict --json --explain" json.out; fi
fi

# evaluate: heat maps beside the misses.
if [ -d ck-mlp ]; then
  "$bin" evaluate --checkpoint ck-mlp --data-dir "$data" --limit 300 --misclassified plain.png > plain.out 2>&1
  if "$bin" evaluate --checkpoint ck-mlp --data-dir "$data" --limit 300 --misclassified misses.png --explain-misclassified \
       > misses.out 2>&1 && grep -q "misclassified test images, labelled true>predicted and confidence, each beside its heat map: input-gradient saliency" misses.out \
     && size=$(python3 -c "
import struct, sys
for f in sys.argv[1:]:
    d = open(f, 'rb').read(24); print('%dx%d' % struct.unpack('>II', d[16:24]), end=' ')" plain.png misses.png | sed 's/ $//') \
     && [ "$(echo "$size" | cut -d' ' -f1)" != "$(echo "$size" | cut -d' ' -f2)" ]; then
    pass "evaluate --misclassified --explain-misclassified: heat maps beside the misses (plain grid and explained grid: $size)"
  else fail "evaluate --explain-misclassified" misses.out; fi
fi

# Wrong uses: one line naming the problem, a non-zero exit.
"$bin" evaluate --checkpoint ck-conv --data-dir "$data" --explain-misclassified > alone.out 2>&1; status=$?
touch afile
"$bin" predict --checkpoint ck-conv --explain afile png/digit-00001-label-2.png > afile.out 2>&1; status2=$?
if [ $status -ne 0 ] && grep -q "explain-misclassified draws into the --misclassified picture" alone.out \
   && [ $status2 -ne 0 ] && grep -q "^digits: error: afile: is a file, not a directory to write explanations into$" afile.out; then
  pass "wrong uses: \"$(grep -o 'explain-misclassified draws.*' alone.out | head -1)\"; \"$(grep '^digits: error' afile.out)\""
else fail "wrong uses (exit statuses $status, $status2)" alone.out; cat afile.out; fi

echo "explain-test: $passed passed, $failed failed"
[ $failed -eq 0 ]
