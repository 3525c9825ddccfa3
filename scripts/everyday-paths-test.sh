#!/usr/bin/env bash
# The everyday paths of issue 19: after a plain `digits train` (checkpoints in ./checkpoints),
# predict and the other readers of a checkpoint find it with no --checkpoint; --checkpoint takes a
# directory or its latest file; predict reads JPEG as well as PNG, and one image from standard
# input (-); a bad JPEG or a bad --checkpoint is one line naming the path, and a non-zero exit.
#
#   scripts/everyday-paths-test.sh BIN DATA_DIR      BIN: the digits binary; DATA_DIR: MNIST
#
# Works in a temporary directory (removed at the end). The JPEGs come from `digits sample-images
# --format jpeg` (libjpeg); when Python's Pillow can be imported (or pip-installed into the
# temporary directory) a progressive JPEG from another encoder is read too, else that check is
# skipped with a SKIP line. Prints PASS/FAIL lines; exits 1 if any check failed.
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: scripts/everyday-paths-test.sh BIN DATA_DIR" >&2; exit 2; }
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
data="$(cd "$2" && pwd)" || { echo "everyday-paths: no data directory $2" >&2; exit 2; }
[ -x "$bin" ] || { echo "everyday-paths: no binary at $1" >&2; exit 2; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cd "$work"

passed=0; failed=0; png_digit=""
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/     /' "$2" | tail -15; return 0; }
# The lines of a file that are digits' error lines.
errors() { grep -c '^digits: error: ' "$1"; }

# Nothing trained yet: the default checkpoint is missing, and the message says what to do.
mkdir fresh
"$bin" sample-images --data-dir "$data" --count 3 --out png > /dev/null 2>&1
"$bin" sample-images --data-dir "$data" --count 3 --out jpeg --format jpeg > /dev/null 2>&1
if (cd fresh && "$bin" predict ../png/digit-00000-label-7.png > ../nothing.out 2>&1); then
  fail "predict with no checkpoint anywhere succeeded" nothing.out
elif grep -q '^digits: error: checkpoints/latest: no such file or directory (nothing trained in this directory yet' nothing.out; then
  pass "before training: predict says checkpoints/latest is missing and to train first"
else fail "before training: predict's message" nothing.out; fi

# The README's main command, made short: checkpoints go to ./checkpoints.
if ! "$bin" train --data-dir "$data" --model conv8k3p1-bn-relu-pool2-conv16k3p1-bn-relu-pool2-flatten-dense10 \
     --max-steps 40 --no-eval > train.out 2>&1 || [ ! -f checkpoints/latest ]; then
  fail "digits train --max-steps 40 (default checkpoint directory)" train.out
  echo "everyday-paths: $passed passed, $failed failed"; exit 1
fi
newest="checkpoints/$(cat checkpoints/latest)"

# No --checkpoint: checkpoints/latest. A PNG and the JPEG of the same digit read the same.
if "$bin" predict png/digit-00000-label-7.png jpeg/digit-00000-label-7.jpg > default.out 2>&1; then
  png_digit=$(awk '$1 == "png/digit-00000-label-7.png" { print $2 }' default.out)
  jpeg_digit=$(awk '$1 == "jpeg/digit-00000-label-7.jpg" { print $2 }' default.out)
  if grep -qx "checkpoint $newest" default.out && [ -n "$png_digit" ] && [ "$png_digit" = "$jpeg_digit" ]; then
    pass "predict with no --checkpoint reads $newest; the PNG and the JPEG of test digit 0 both read $png_digit"
  else fail "predict with no --checkpoint: output" default.out; fi
else fail "predict with no --checkpoint" default.out; fi

# --checkpoint DIR (and a directory of JPEGs), --checkpoint DIR/latest, the file itself: the same answers.
ok=1
for ck in checkpoints checkpoints/ checkpoints/latest "$newest"; do
  "$bin" predict --checkpoint "$ck" --json jpeg > "dir.json" 2> dir.err || { ok=0; fail "predict --checkpoint $ck jpeg/" dir.err; continue; }
  [ "$(grep -c '"digit"' dir.json)" -eq 3 ] || { ok=0; fail "predict --checkpoint $ck: 3 records" dir.json; continue; }
  [ -f first.json ] || cp dir.json first.json
  cmp -s <(sed 's/"model_seconds":[^}]*//' dir.json) <(sed 's/"model_seconds":[^}]*//' first.json) \
    || { ok=0; fail "predict --checkpoint $ck answers differently" dir.json; }
done
[ $ok -eq 1 ] && pass "predict --checkpoint checkpoints, checkpoints/, checkpoints/latest and the file: the same 3 answers for a directory of JPEGs"

# Standard input: a JPEG and a PNG, named <stdin>.
if "$bin" predict --json - < jpeg/digit-00001-label-2.jpg > stdin-jpeg.json 2>&1 \
   && "$bin" predict - < png/digit-00001-label-2.png > stdin-png.out 2>&1 \
   && grep -q '^{"file":"<stdin>","digit":' stdin-jpeg.json && grep -q '^<stdin> ' stdin-png.out; then
  pass "predict - reads a JPEG and a PNG from standard input (named <stdin>)"
else fail "predict - (standard input)" stdin-jpeg.json; cat stdin-png.out; fi

# The other readers of a checkpoint: evaluate and inspect with no checkpoint named.
if "$bin" evaluate --data-dir "$data" --limit 200 > evaluate.out 2>&1 && grep -q "^checkpoint $newest " evaluate.out \
   && "$bin" inspect > inspect.out 2>&1 && grep -qx "checkpoint $newest" inspect.out \
   && "$bin" inspect checkpoints > inspect-dir.out 2>&1; then
  pass "evaluate and inspect with no checkpoint named read $newest; inspect takes the directory too"
else fail "evaluate / inspect with the default checkpoint" evaluate.out; cat inspect.out; fi

# A cut JPEG: one line naming the file and the problem, exit status 1 (not a crash), the others still read.
head -c 400 jpeg/digit-00000-label-7.jpg > cut.jpg
"$bin" predict png/digit-00002-label-1.png cut.jpg > cut.out 2>&1; status=$?
if [ $status -eq 1 ] && [ "$(errors cut.out)" -eq 1 ] \
   && grep -q '^digits: error: cut.jpg: truncated or corrupt JPEG (libjpeg: Premature end of JPEG file)$' cut.out \
   && grep -q '^png/digit-00002-label-1.png ' cut.out; then
  pass "a cut JPEG: \"$(grep '^digits: error: ' cut.out)\", exit status 1, the other file still read"
else fail "a cut JPEG (exit status $status)" cut.out; fi

# A JPEG whose scan data is overwritten, through standard input.
{ head -c 300 jpeg/digit-00001-label-2.jpg; head -c 300 /dev/zero | tr '\0' '\377'; } > garbled.jpg
"$bin" predict - < garbled.jpg > garbled.out 2>&1; status=$?
if [ $status -eq 1 ] && [ "$(errors garbled.out)" -eq 1 ] && grep -q '^digits: error: <stdin>: truncated or corrupt JPEG (libjpeg: ' garbled.out; then
  pass "a garbled JPEG on standard input: \"$(grep '^digits: error: ' garbled.out)\", exit status 1"
else fail "a garbled JPEG on standard input (exit status $status)" garbled.out; fi

# A bad --checkpoint: a missing path, and a latest naming a deleted file.
"$bin" predict --checkpoint no/such/dir png > bad-ck.out 2>&1; status=$?
mkdir stale; cp "$newest" stale/; echo "step-99999999.safetensors" > stale/latest
"$bin" predict --checkpoint stale png > stale.out 2>&1; status2=$?
if [ $status -ne 0 ] && [ "$(errors bad-ck.out)" -eq 1 ] && grep -q '^digits: error: no/such/dir: no such file or directory$' bad-ck.out \
   && [ $status2 -ne 0 ] && grep -q "^digits: error: stale/latest: names step-99999999.safetensors, which is not there; the newest checkpoint beside it is stale/" stale.out; then
  pass "a bad --checkpoint: \"$(grep '^digits: error: ' bad-ck.out)\"; \"$(grep '^digits: error: ' stale.out)\""
else fail "a bad --checkpoint (exit statuses $status, $status2)" bad-ck.out; cat stale.out; fi

# A JPEG from another encoder (Pillow): progressive, colour.
pillow=""
if python3 -c "import PIL" > /dev/null 2>&1; then pillow=system
elif timeout 120 python3 -m pip install --quiet --disable-pip-version-check --target "$work/pylib" pillow > pip.out 2>&1 \
     && PYTHONPATH="$work/pylib" python3 -c "import PIL" > /dev/null 2>&1; then pillow=installed
fi
if [ -n "$pillow" ]; then
  PYTHONPATH="$work/pylib${PYTHONPATH:+:$PYTHONPATH}" python3 - > pillow.out 2>&1 <<'EOF'
from PIL import Image
digit = Image.open("png/digit-00000-label-7.png").convert("RGB")
tinted = Image.merge("RGB", [band.point(lambda v, k=k: min(255, v + k)) for band, k in zip(digit.split(), (0, 10, 40))])
tinted.resize((336, 336)).save("pillow-7.jpg", "JPEG", quality=85, progressive=True)
EOF
  if "$bin" predict --json pillow-7.jpg > pillow.json 2>> pillow.out \
     && [ "$(grep -o '"digit":[0-9]' pillow.json | head -1 | cut -d: -f2)" = "$png_digit" ]; then
    pass "a progressive colour JPEG written by Pillow (336x336, blue-tinted paper) reads as $png_digit, like its PNG"
  else fail "a Pillow JPEG" pillow.out; cat pillow.json; fi
else
  echo "SKIP a JPEG from another encoder: Python's Pillow is not importable and pip could not install it"
fi

echo "everyday-paths: $passed passed, $failed failed"
[ $failed -eq 0 ]
