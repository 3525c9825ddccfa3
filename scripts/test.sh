#!/usr/bin/env bash
# The test suite: unit tests (swift test), then the command-line and multi-rank checks that
# need real processes and mpirun.
#
# The suite runs OPTIMISED (-c release -Xswiftc -enable-testing) in its own build folder
# .build-test: the numeric tests train small networks, which a debug build runs 10-100x slower.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scratch=.build-test
build_flags=(-c release -Xswiftc -enable-testing --scratch-path "$scratch")

# Open MPI refuses root unless told; CI runs as root.
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1   # more ranks than the 2 cores here
export OPENBLAS_NUM_THREADS=1

bash scripts/fetch-mnist.sh >/dev/null
export MNIST_DIR="$root/data/mnist"

swift build "${build_flags[@]}"
swift test "${build_flags[@]}"
bin="$scratch/release"

passed=0; failed=0
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/     /' "$2" | tail -20; return 0; }

# --- CMPI under mpirun: rank, size and an allreduce on every rank.
if mpirun -np 3 "$bin/mpi-smoke" > "$work/smoke" 2>&1 && [ "$(grep -c ' ok$' "$work/smoke")" -eq 3 ]; then
  pass "mpi-smoke: 3 ranks see size 3 and allreduce sum 6"
else fail "mpi-smoke under mpirun -np 3" "$work/smoke"; fi

# --- inspect-data on the real files: counts, class counts, checksums.
if "$bin/digits" inspect-data --data-dir data/mnist > "$work/inspect" 2>&1 \
   && grep -qE '^train +60000 +28x28 +5923 +6742 +5958 +6131 +5842 +5421 +5918 +6265 +5851 +5949 ' "$work/inspect" \
   && grep -qE '^test +10000 ' "$work/inspect" && [ "$(grep -c ' verified$' "$work/inspect")" -eq 4 ]; then
  pass "inspect-data: 60000/10000 images, published class counts, 4 checksums verified"
else fail "inspect-data on data/mnist" "$work/inspect"; fi

# --- inspect-data on bad files: a sentence naming the file, non-zero exit, nothing written.
mkdir -p "$work/bad"
cp data/mnist/*.gz "$work/bad/"
head -c 5000 data/mnist/t10k-images-idx3-ubyte.gz > "$work/bad/t10k-images-idx3-ubyte.gz"
before="$(ls -l "$work/bad" | md5sum)"
if "$bin/digits" inspect-data --data-dir "$work/bad" > "$work/badout" 2>&1; then
  fail "inspect-data accepted a truncated file" "$work/badout"
elif grep -q "t10k-images-idx3-ubyte.gz: corrupt gzip stream" "$work/badout" && [ "$before" = "$(ls -l "$work/bad" | md5sum)" ]; then
  pass "inspect-data: truncated gzip named, non-zero exit, files untouched"
else fail "inspect-data error message for a truncated file" "$work/badout"; fi

rm "$work/bad/train-labels-idx1-ubyte.gz"
if "$bin/digits" inspect-data --data-dir "$work/bad" > "$work/missing" 2>&1; then
  fail "inspect-data accepted a missing file" "$work/missing"
elif "$bin/digits" inspect-data --data-dir "$work/nowhere" >> "$work/missing" 2>&1; then
  fail "inspect-data accepted a missing directory" "$work/missing"
elif grep -q "bad/train-labels-idx1-ubyte.gz: no such file" "$work/missing" \
   && grep -q "nowhere: no such directory" "$work/missing"; then
  pass "inspect-data: missing file and missing directory named, non-zero exit"
else fail "inspect-data error message for a missing file" "$work/missing"; fi

# --- Data-parallel training under real mpirun.
digits=("$bin/digits" train --data-dir data/mnist --no-eval --progress never)
bnnet="conv8k3p1-bn-relu-pool2-conv16k3p1-bn-relu-pool2-flatten-drop0.25-dense10"
for np in 2 3; do
  if mpirun -np "$np" "${digits[@]}" --model "$bnnet" --max-steps 300 --digest > "$work/ranks$np" 2>&1 \
     && [ "$(grep -c 'weights sha256' "$work/ranks$np")" -eq "$np" ] \
     && [ "$(grep 'weights sha256' "$work/ranks$np" | awk '{ print $5 }' | sort -u | wc -l)" -eq 1 ]; then
    pass "mpirun -np $np, 300 steps of a BatchNorm+dropout net: all ranks end with bit-identical weights"
  else fail "mpirun -np $np: ranks' weights differ or the run failed" "$work/ranks$np"; fi
done

if mpirun -np 2 "${digits[@]}" --model "$bnnet" --max-steps 300 --digest > "$work/ranks2b" 2>&1 \
   && [ "$(grep -m1 'weights sha256' "$work/ranks2" | awk '{ print $5 }')" = "$(grep -m1 'weights sha256' "$work/ranks2b" | awk '{ print $5 }')" ]; then
  pass "mpirun -np 2 twice with the same seed: bit-identical weights"
else fail "mpirun -np 2 twice: runs differ" "$work/ranks2b"; fi

# N ranks x batch b equals 1 rank x batch N*b (replicated data, so the global batches are the same
# samples; no BatchNorm or dropout, whose statistics and masks are per rank).
plain=(--model "conv8k5p2-relu-pool2-flatten-dense32-relu-dense10" --optimizer sgd --lr 0.05 --schedule constant
       --data-placement replicate --max-steps 60)
if mpirun -np 2 "${digits[@]}" "${plain[@]}" --batch-size 32 --parameters-out "$work/p2x32" > "$work/eq2" 2>&1 \
   && "${digits[@]}" "${plain[@]}" --batch-size 64 --parameters-out "$work/p1x64" > "$work/eq1" 2>&1 \
   && "${digits[@]}" "${plain[@]}" --batch-size 32 --parameters-out "$work/p1x32" > "$work/eq1b" 2>&1 \
   && python3 scripts/compare-parameters.py "$work/p2x32" "$work/p1x64" 1e-4 > "$work/cmp" \
   && ! python3 scripts/compare-parameters.py "$work/p1x32" "$work/p1x64" 1e-4 >> "$work/cmp"; then
  pass "2 ranks x batch 32 = 1 rank x batch 64 after 60 steps ($(head -1 "$work/cmp" | sed 's/.*max/max/')); 1 x 32 differs"
else fail "2 ranks x 32 vs 1 rank x 64" "$work/cmp"; cat "$work/eq2" "$work/eq1" | tail -5; fi

# One rank with another model: every rank stops quickly with the mismatch named.
start=$(date +%s)
if timeout 30 mpirun -np 1 "${digits[@]}" --model lenet5 --max-steps 50 : -np 1 "${digits[@]}" --model default --max-steps 50 \
     > "$work/mismatch" 2>&1; then
  fail "ranks with different models were not stopped" "$work/mismatch"
elif [ $(( $(date +%s) - start )) -le 10 ] && grep -q "rank 1 differs from rank 0 in model" "$work/mismatch"; then
  pass "a rank with a different --model stops all ranks in $(( $(date +%s) - start )) s, naming rank 1 and the model"
else fail "mismatch message or time ($(( $(date +%s) - start )) s)" "$work/mismatch"; fi

echo "scripts: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
