#!/usr/bin/env bash
# `digits export --format onnx` against onnxruntime. For every preset that `digits train --help`
# lists: 20 training steps (BatchNorm statistics away from their start), the export, and the logits
# of the first 1,000 MNIST test images from onnxruntime (fed the raw pixel values, 0-255) and from
# `digits evaluate --logits-out`. The largest difference must be at most 1e-4. With the `onnx`
# package installed, each model also passes onnx.checker.check_model(full_check=True).
#
# usage: scripts/onnx-check.sh DIGITS_BINARY MNIST_DIR
# One line per preset. Exit 0: every preset matches; 1: one does not, or a command failed;
# 3, after "onnx: SKIPPED (...)": python3 cannot import onnxruntime and numpy (pip install onnxruntime onnx).
set -euo pipefail
bin="${1:?usage: onnx-check.sh DIGITS_BINARY MNIST_DIR}"
data="${2:?usage: onnx-check.sh DIGITS_BINARY MNIST_DIR}"
tolerance=1e-4

if ! problem="$(python3 -c 'import numpy, onnxruntime' 2>&1)"; then
  echo "onnx: SKIPPED ($(tail -1 <<<"$problem"))"
  exit 3
fi
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

# The presets as train --help names them ("Models: a preset (a, b, c) or ..."), however it wraps.
presets="$("$bin" train --help | tr '\n' ' ' | sed -nE 's/.*Models: a preset \(([^)]*)\).*/\1/p' | tr -d ',')"
[ -n "$presets" ] || { echo "onnx: no presets found in '$bin train --help'"; exit 1; }

cat > "$work/compare.py" <<'PY'
import gzip, os, sys
import numpy as np
import onnxruntime

model_path, logits_path, data_dir, tolerance, preset = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
digits_logits = np.load(logits_path)
count = digits_logits.shape[0]

# The first `count` test images as MNIST stores them, bytes 0-255, raw or gzip.
name = os.path.join(data_dir, "t10k-images-idx3-ubyte")
raw = open(name, "rb").read() if os.path.exists(name) else gzip.open(name + ".gz").read()
assert int.from_bytes(raw[0:4], "big") == 0x803, f"{name}: not an IDX image file"
rows, columns = int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:16], "big")
images = np.frombuffer(raw, np.uint8, count * rows * columns, offset=16).reshape(count, 1, rows, columns).astype(np.float32)

options = onnxruntime.SessionOptions()
options.intra_op_num_threads = 2
session = onnxruntime.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
onnx_logits = session.run(["logits"], {"image": images})[0]
assert onnx_logits.shape == digits_logits.shape, f"onnxruntime gave {onnx_logits.shape}, digits {digits_logits.shape}"
difference = float(np.abs(onnx_logits - digits_logits).max())
same = int((onnx_logits.argmax(1) == digits_logits.argmax(1)).sum())

try:
    import onnx
    onnx.checker.check_model(onnx.load(model_path), full_check=True)
    checker = f"onnx.checker (onnx {onnx.__version__}): valid"
except ImportError:
    checker = "onnx.checker: not run (no onnx package)"
except Exception as error:
    checker = f"onnx.checker: INVALID: {error}"

verdict = "ok  " if difference <= tolerance and "INVALID" not in checker else "FAIL"
print(f"onnx: {verdict} {preset}: max |logit difference| {difference:.2e} (limit {tolerance:g}) over {count} test images, "
      f"same class for {same}; onnxruntime {onnxruntime.__version__}; {checker}")
sys.exit(0 if verdict == "ok  " else 1)
PY

status=0
for preset in $presets; do
  ck="$work/ck-$preset" log="$work/$preset.log"
  if "$bin" train --data-dir "$data" --model "$preset" --max-steps 20 --no-eval --progress never --checkpoint-dir "$ck" > "$log" 2>&1 \
     && checkpoint="$ck/$(cat "$ck/latest")" \
     && "$bin" export --checkpoint "$checkpoint" --format onnx "$work/$preset.onnx" >> "$log" 2>&1 \
     && "$bin" evaluate --data-dir "$data" --checkpoint "$checkpoint" --limit 1000 --logits-out "$work/$preset.npy" >> "$log" 2>&1; then
    python3 "$work/compare.py" "$work/$preset.onnx" "$work/$preset.npy" "$data" "$tolerance" "$preset" 2>&1 || status=1
  else
    echo "onnx: FAIL $preset: a digits command failed"; tail -5 "$log" | sed 's/^/     /'
    status=1
  fi
done
exit "$status"
