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

echo "scripts: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
