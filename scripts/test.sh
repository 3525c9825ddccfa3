#!/usr/bin/env bash
# The test suite: unit tests (swift test), then the command-line and multi-rank checks that
# need real processes and mpirun.
#
# The suite runs OPTIMISED (-c release -Xswiftc -enable-testing) in its own build folder
# .build-test: the numeric tests train small networks, which a debug build runs 10-100x slower.
#
# Every kernel table a user's CPU can land on is tested here (Sources/CKernels/isa.h: reference,
# avx2, avx512, neon; dispatch.c picks one at start-up, DIGITS_ISA overrides):
#   * the table this CPU takes: all unit tests and every check below;
#   * on a CPU with AVX-512, the avx2 table too (DIGITS_ISA=avx2, what an AVX2 CPU such as Zen 3
#     takes): the kernel, determinism, training and end-to-end unit tests again, the --threads 1
#     vs 2 check and the bit-identical ranks under mpirun -np 2;
#   * the reference (plain C) table, and the neon table of a Raspberry Pi 4 under
#     qemu-aarch64-static -cpu cortex-a72, by the C kernel test (scripts/kernel-test.sh: every
#     table against the reference on odd sizes); not by the Swift suite, which would take too long;
#   * every C file compiled for aarch64 (scripts/check-aarch64-build.sh). The Swift code cannot be
#     built for aarch64 on x86-64; the first build on a Pi is the user's (cluster/README.md).
#     On an aarch64 machine the suite runs the neon table itself and the C kernel test natively.
# Without qemu-aarch64-static or the aarch64 C headers the aarch64 parts print "aarch64: NOT RUN"
# and count as a failure only in CI as root (CI=true), where install-packages.sh provides them.
set -euo pipefail
# A command failing outside a check would end the script silently; say where.
trap 'echo "test.sh: stopped at line $LINENO: $BASH_COMMAND" >&2' ERR
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scratch=.build-test
build_flags=(-c release -Xswiftc -enable-testing --scratch-path "$scratch")

# Open MPI refuses root unless told; CI runs as root.
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1   # more ranks than the 2 cores here

# The tools the checks use (mpirun, python3, pgrep, ip, ping, qemu-aarch64-static, the aarch64 C
# headers): installed as root, else named.
if ! bash scripts/install-packages.sh --test-tools; then
  echo "test.sh: continuing without the packages named above; a check that needs one of them fails or says why it is skipped"
fi
bash scripts/fetch-mnist.sh >/dev/null
export MNIST_DIR="$root/data/mnist"

# The second table, on a CPU that would otherwise take the AVX-512 kernels (the flags the tables'
# CPU checks ask for, Sources/CKernels/x86): the AVX2 kernels an AVX2-only CPU takes.
cpu_has() { grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | grep -qw "$1"; }
second_isa=()
if cpu_has avx512f && cpu_has avx512vl && cpu_has avx512dq && cpu_has f16c && cpu_has avx2 && cpu_has fma; then
  second_isa=(DIGITS_ISA=avx2)
fi
[ -n "${DIGITS_ISA:-}" ] && echo "test.sh: DIGITS_ISA=$DIGITS_ISA is set: the first pass runs that table, not the one this CPU would take"

swift build "${build_flags[@]}"
swift test "${build_flags[@]}"
if [ ${#second_isa[@]} -gt 0 ]; then
  echo "test.sh: the kernel, determinism, training and end-to-end tests again on the avx2 table (${second_isa[*]})"
  env "${second_isa[@]}" swift test "${build_flags[@]}" --skip-build --filter 'NeuralNetTests|TrainingTests|ONNXExportTests'
else
  echo "test.sh: this CPU has no AVX-512: the tests above ran the table it takes (avx2 on an AVX2 CPU, neon on aarch64), the only vector one it has; the reference table is checked by the C kernel test below"
fi
bin="$scratch/release"

passed=0; failed=0
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/     /' "$2" | tail -20; return 0; }

# --- The C kernels by themselves, and the code a Raspberry Pi compiles.
# Without the aarch64 tools a check cannot run: a failure in CI as root (install-packages.sh
# --test-tools installs them there), elsewhere a line that says so, repeated before the summary.
not_run=()
aarch64_not_run() {
  if [ "$(id -u)" -eq 0 ] && [ "${CI:-}" = true ]; then fail "aarch64: NOT RUN: $1 (CI as root: scripts/install-packages.sh --test-tools should have installed them)"
  else not_run+=("aarch64: NOT RUN: $1"); echo "aarch64: NOT RUN: $1"; fi
}
if [ "$(uname -m)" = aarch64 ]; then
  # On a Pi the native test is the neon one, and swift build above compiled every C file for aarch64.
  if bash scripts/kernel-test.sh --native-only > "$work/kernel-test" 2>&1; then
    pass "C kernel test: the neon and reference tables against the reference on odd sizes, natively on aarch64"
  else fail "C kernel test (scripts/kernel-test.sh --native-only)" "$work/kernel-test"; fi
else
  no_aarch64=""
  command -v qemu-aarch64-static > /dev/null || no_aarch64="qemu-aarch64-static is missing (Debian: qemu-user-static)"
  [ -f /usr/aarch64-linux-gnu/include/stdio.h ] \
    || no_aarch64="${no_aarch64:+$no_aarch64; }the aarch64 C library headers are missing (Debian: libc6-dev-arm64-cross)"
  if [ -z "$no_aarch64" ]; then
    if bash scripts/kernel-test.sh --require-aarch64 > "$work/kernel-test" 2>&1; then
      pass "C kernel test: every kernel table against the reference on odd sizes, natively and the neon table under qemu (Cortex-A72)"
    else fail "C kernel test (scripts/kernel-test.sh --require-aarch64)" "$work/kernel-test"; fi
  else
    if bash scripts/kernel-test.sh > "$work/kernel-test" 2>&1; then
      pass "C kernel test: every kernel table of this CPU against the reference on odd sizes"
    else fail "C kernel test (scripts/kernel-test.sh)" "$work/kernel-test"; fi
    aarch64_not_run "the neon kernels under qemu: $no_aarch64"
  fi
  build_status=0; bash scripts/check-aarch64-build.sh > "$work/aarch64-build" 2>&1 || build_status=$?
  if [ "$build_status" -eq 0 ]; then
    pass "every C file compiles for aarch64-linux-gnu ($(tail -1 "$work/aarch64-build" | sed -E 's/^check-aarch64-build: ([0-9]+) of.*/\1/') files, scripts/check-aarch64-build.sh)"
  elif [ "$build_status" -eq 2 ]; then aarch64_not_run "the C files compiled for aarch64: $(head -1 "$work/aarch64-build" | sed 's/^check-aarch64-build: //')"
  else fail "C files that do not compile for aarch64 (scripts/check-aarch64-build.sh)" "$work/aarch64-build"; fi
fi

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

# --- Options out of range get a sentence and a non-zero exit, not a silent cap; a kernel set the
# CPU cannot run, or a misspelt one, likewise.
if "$bin/digits" bench --fma-peak --threads 1000 > "$work/threads" 2>&1; then
  fail "bench --threads 1000 was accepted" "$work/threads"
elif grep -q -- "--threads 1000: use 1 to 64 kernel threads per process" "$work/threads" \
   && ! DIGITS_ISA=sse9 "$bin/digits" bench --fma-peak >> "$work/threads" 2>&1 \
   && grep -q "DIGITS_ISA=sse9: no such kernel set in this build" "$work/threads"; then
  pass "--threads 1000 and DIGITS_ISA=sse9: refused with a sentence, non-zero exit"
else fail "--threads 1000 / DIGITS_ISA=sse9 messages" "$work/threads"; fi
if "$bin/digits" train --data-dir data/mnist --epochs 100000000000000000 --stop-at-step 3 > "$work/huge" 2>&1 \
   || "$bin/digits" train --data-dir data/mnist --bucket-kb 9223372036854775807 --max-steps 3 >> "$work/huge" 2>&1; then
  fail "train accepted --epochs 1e17 or --bucket-kb 2^63-1" "$work/huge"
elif grep -q -- "--epochs must be from 1 to 1,000,000, not 100000000000000000" "$work/huge" \
   && grep -q -- "--bucket-kb must be from 0 to 4194304 (4 GiB), not 9223372036854775807" "$work/huge"; then
  pass "train --epochs 1e17 and --bucket-kb 2^63-1: refused with a sentence (they trapped on overflow)"
else fail "train --epochs 1e17 / --bucket-kb 2^63-1 messages" "$work/huge"; fi

# --- Fuzzing of the input parsers (Fuzz/README.md): every target 15 s on its seed corpus; a crash,
# leak, out-of-memory or timeout fails. Without the toolchain's libFuzzer it cannot run: a failure
# in CI (CI=true), elsewhere a line that says so, repeated before the summary.
fuzz_status=0; bash scripts/fuzz.sh all 15 > "$work/fuzz" 2>&1 || fuzz_status=$?
if [ "$fuzz_status" -eq 0 ]; then
  pass "fuzzing, 15 s per target, no crash: $(sed -nE 's/^fuzz: ([a-z]+): [0-9]+ s, ([0-9]+) executions.*/\1 \2/p' "$work/fuzz" | paste -sd, | sed 's/,/, /g') executions"
elif [ "$fuzz_status" -eq 2 ]; then
  reason="$(sed -n 's/^fuzz: NOT RUN: //p' "$work/fuzz" | head -1)"
  if [ "${CI:-}" = true ]; then fail "fuzz: NOT RUN: $reason (CI: the Swift toolchain brings libFuzzer)" "$work/fuzz"
  else not_run+=("fuzz: NOT RUN: $reason"); echo "fuzz: NOT RUN: $reason"; fi
else fail "fuzzing (scripts/fuzz.sh all 15; reproducers under .build-fuzz/work/*/crashes)" "$work/fuzz"; fi

# --- Data-parallel training under real mpirun.
base=("$bin/digits" train --data-dir data/mnist --no-eval --progress never)
# Runs that need no checkpoint write none (a checkpoint directory belongs to one run).
digits=("${base[@]}" --no-checkpoints)
bnnet="conv8k3p1-bn-relu-pool2-conv16k3p1-bn-relu-pool2-flatten-drop0.25-dense10"
for np in 2 3; do
  if mpirun -np "$np" "${digits[@]}" --model "$bnnet" --max-steps 300 --digest > "$work/ranks$np" 2>&1 \
     && [ "$(grep -c 'weights sha256' "$work/ranks$np")" -eq "$np" ] \
     && [ "$(grep 'weights sha256' "$work/ranks$np" | awk '{ print $5 }' | sort -u | wc -l)" -eq 1 ]; then
    pass "mpirun -np $np, 300 steps of a BatchNorm+dropout net: all ranks end with bit-identical weights"
  else fail "mpirun -np $np: ranks' weights differ or the run failed" "$work/ranks$np"; fi
done

# Results do not depend on --threads (a promise of docs/kernels.md), on every table this CPU can take; and
# on the second table too, ranks end bit-identical.
paths=("")
[ ${#second_isa[@]} -gt 0 ] && paths+=("${second_isa[*]}")
for path in "${paths[@]}"; do
  read -r -a env_path <<<"$path"
  label=${path:-"the kernels this CPU takes"}
  if env "${env_path[@]}" "${digits[@]}" --model lenet5 --max-steps 40 --digest --threads 1 > "$work/t1" 2>&1 \
     && env "${env_path[@]}" "${digits[@]}" --model lenet5 --max-steps 40 --digest --threads 2 > "$work/t2" 2>&1 \
     && [ -n "$(grep -m1 'weights sha256' "$work/t1" | awk '{ print $5 }')" ] \
     && [ "$(grep -m1 'weights sha256' "$work/t1" | awk '{ print $5 }')" = "$(grep -m1 'weights sha256' "$work/t2" | awk '{ print $5 }')" ]; then
    pass "$label: lenet5, 40 steps with --threads 1 and with --threads 2: the same weights SHA-256"
  else fail "$label: --threads 1 and 2 give different weights" "$work/t2"; fi
done
if [ ${#second_isa[@]} -gt 0 ]; then
  exported=(); for setting in "${second_isa[@]}"; do exported+=(-x "${setting%%=*}"); done
  if env "${second_isa[@]}" mpirun -np 2 "${exported[@]}" "${digits[@]}" --model "$bnnet" --max-steps 150 --digest --threads 2 \
       > "$work/ranks-second-isa" 2>&1 \
     && [ "$(grep -c 'weights sha256' "$work/ranks-second-isa")" -eq 2 ] \
     && [ "$(grep 'weights sha256' "$work/ranks-second-isa" | awk '{ print $5 }' | sort -u | wc -l)" -eq 1 ]; then
    pass "${second_isa[*]}: mpirun -np 2 x 2 threads, 150 steps of a BatchNorm+dropout net: bit-identical ranks"
  else fail "${second_isa[*]}: mpirun -np 2, ranks' weights differ or the run failed" "$work/ranks-second-isa"; fi
fi

# Gradients in fp16, in buckets overlapped with backward: still one set of weights on every rank,
# and a run stopped and resumed equals the uninterrupted one (the fp16 scales are checkpointed).
wire=(--gradient-compression fp16 --bucket-kb 4)
for np in 2 3; do
  if mpirun -np "$np" "${digits[@]}" --model "$bnnet" --max-steps 300 --digest "${wire[@]}" > "$work/fp16-$np" 2>&1 \
     && grep -q "fp16, 3 buckets, overlapped with backward" "$work/fp16-$np" \
     && [ "$(grep 'weights sha256' "$work/fp16-$np" | awk '{ print $5 }' | sort -u | wc -l)" -eq 1 ] \
     && [ "$(grep -c 'weights sha256' "$work/fp16-$np")" -eq "$np" ]; then
    pass "mpirun -np $np, fp16 gradients in 3 overlapped buckets: bit-identical weights on all ranks"
  else fail "mpirun -np $np with fp16 buckets" "$work/fp16-$np"; fi
done
fp=("${base[@]}" --model "$bnnet" --max-steps 300 --checkpoint-every 50 "${wire[@]}")
if mpirun -np 2 "${fp[@]}" --checkpoint-dir "$work/ck-fp-full" --digest > "$work/fp-full" 2>&1 \
   && mpirun -np 2 "${fp[@]}" --checkpoint-dir "$work/ck-fp-cut" --stop-at-step 150 > "$work/fp-cut1" 2>&1 \
   && mpirun -np 2 "${fp[@]}" --checkpoint-dir "$work/ck-fp-cut" --resume --digest > "$work/fp-cut2" 2>&1 \
   && [ "$(grep -m1 'weights sha256' "$work/fp-full" | awk '{ print $5 }')" = "$(grep -m1 'weights sha256' "$work/fp-cut2" | awk '{ print $5 }')" ]; then
  pass "mpirun -np 2 with fp16 gradients: stopped at step 150 and resumed = uninterrupted (same weights SHA-256)"
else fail "fp16 resume differs from the uninterrupted run" "$work/fp-cut2"; fi

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

# --- Checkpoints and resume under mpirun -np 2 (429 steps per epoch: 55,000 training images; checkpoints every 100 steps).
ck=(--model "$bnnet" --epochs 3 --checkpoint-every 100)
train=("$bin/digits" train --data-dir data/mnist --progress never)
if mpirun -np 2 "${train[@]}" "${ck[@]}" --checkpoint-dir "$work/ck-full" --metrics-out "$work/full.jsonl" --digest > "$work/full" 2>&1 \
   && mpirun -np 2 "${train[@]}" "${ck[@]}" --checkpoint-dir "$work/ck-cut" --metrics-out "$work/cut.jsonl" --stop-at-step 468 > "$work/cut1" 2>&1 \
   && mpirun -np 2 "${train[@]}" "${ck[@]}" --checkpoint-dir "$work/ck-cut" --metrics-out "$work/cut.jsonl" --stop-at-step 700 --resume > "$work/cut2" 2>&1 \
   && mpirun -np 2 "${train[@]}" "${ck[@]}" --checkpoint-dir "$work/ck-cut" --metrics-out "$work/cut.jsonl" --resume --digest > "$work/cut3" 2>&1 \
   && [ "$(grep -m1 'weights sha256' "$work/full" | awk '{ print $5 }')" = "$(grep -m1 'weights sha256' "$work/cut3" | awk '{ print $5 }')" ] \
   && diff <(sed -E 's/"(images_per_second|seconds|[a-z_]*_seconds|peak_rss_bytes)":[0-9.e+-]+//g' "$work/full.jsonl") \
           <(sed -E 's/"(images_per_second|seconds|[a-z_]*_seconds|peak_rss_bytes)":[0-9.e+-]+//g' "$work/cut.jsonl") > /dev/null; then
  pass "mpirun -np 2: 3 epochs = stopped after epoch 1 and at step 700, resumed twice (same weights SHA-256, same metrics lines)"
else fail "resumed run differs from the uninterrupted one" "$work/cut3"; diff "$work/full.jsonl" "$work/cut.jsonl" | head -5 || true; fi

if [ -f "$work/ck-cut/latest" ] && "$bin/digits" inspect "$work/ck-cut/$(cat "$work/ck-cut/latest")" > "$work/inspect-ck" 2>&1 \
   && grep -q "verified" "$work/inspect-ck" && grep -q "world_size  *2" "$work/inspect-ck"; then
  pass "digits inspect: metadata, tensors and a verified checksum"
else fail "digits inspect on a good checkpoint" "$work/inspect-ck"; fi

if python3 -c "import safetensors, numpy" 2>/dev/null; then
  if python3 scripts/check-safetensors.py "$work/ck-cut/$(cat "$work/ck-cut/latest")" > "$work/py" 2>&1; then
    pass "safetensors.numpy.load_file reads a checkpoint with the right names and shapes ($(grep -o '[0-9]* tensors' "$work/py"))"
  else fail "Python safetensors check" "$work/py"; fi
else
  echo "skip Python safetensors check: python3 lacks safetensors or numpy (.ci/run installs them)"
fi

# Bad checkpoints through the command line: a sentence, non-zero exit, nothing overwritten.
cp -r "$work/ck-cut" "$work/ck-bad"
newest="$work/ck-bad/$(cat "$work/ck-bad/latest")"
printf '\x01' | dd of="$newest" bs=1 seek=$(( $(stat -c %s "$newest") - 10 )) conv=notrunc 2>/dev/null
before="$(cd "$work/ck-bad" && sha256sum * | sha256sum)"
if "$bin/digits" train --data-dir data/mnist --model "$bnnet" --epochs 3 --checkpoint-every 100 --checkpoint-dir "$work/ck-other" \
     --resume "$newest" > "$work/bad-resume" 2>&1; then
  fail "resuming from a corrupt file succeeded" "$work/bad-resume"
elif grep -q "$newest: tensor checksum mismatch" "$work/bad-resume" && "$bin/digits" inspect "$newest" > /dev/null 2>&1; then
  fail "inspect accepted a corrupt checkpoint" "$work/bad-resume"
elif grep -q "$newest: tensor checksum mismatch" "$work/bad-resume" && [ "$before" = "$(cd "$work/ck-bad" && sha256sum * | sha256sum)" ]; then
  pass "a corrupt checkpoint: named with the problem, non-zero exit (train --resume and inspect), nothing overwritten"
else fail "corrupt checkpoint message" "$work/bad-resume"; fi

# Resuming from the directory when the newest is corrupt: the previous good one, with a warning.
# (ck-cut holds the three newest checkpoints, the last at the end of epoch 3; that one was damaged above.)
previous="$(basename "$(ls "$work/ck-bad"/step-*.safetensors | sort | tail -2 | head -1)")"
if mpirun -np 2 "${train[@]}" "${ck[@]}" --checkpoint-dir "$work/ck-bad" --resume > "$work/fallback" 2>&1 \
   && grep -q "warning: skipping .*$(basename "$newest"): tensor checksum mismatch" "$work/fallback" \
   && grep -q "resumed from .*$previous" "$work/fallback" && grep -qE "^ +3 " "$work/fallback"; then
  pass "the newest checkpoint corrupt: --resume falls back to the previous good one, with a warning"
else fail "fallback to the previous checkpoint" "$work/fallback"; fi

# Crash test: kill -9 a rank at random moments (the job dies with it), resume each time. Three
# epochs (about 30 s of training here), so that the sixth kill still lands before the job ends.
crash_ok=0; crash_runs=6; lost_max=0
rm -rf "$work/ck-crash"; mkdir -p "$work/ck-crash"
for run in $(seq $crash_runs); do
  rm -f "$work/crash.samples".*
  mpirun -np 2 "${train[@]}" --model reference --epochs 3 --no-eval --checkpoint-every 5 --keep 2 \
    --checkpoint-dir "$work/ck-crash" --record-samples "$work/crash.samples" $( [ -f "$work/ck-crash/latest" ] && echo --resume ) \
    > "$work/crash$run" 2>&1 &
  job=$!
  sleep "$(awk -v s="$run" 'BEGIN { srand(s * 7919); printf "%.2f", 2 + rand() * 3 }')"
  victim=$(pgrep -f "^[^ ]*digits train --data-dir data/mnist --progress never --model reference" | shuf -n1 --random-source=<(yes $run) || true)
  [ -n "$victim" ] && kill -9 "$victim"
  wait "$job" 2>/dev/null || true
  reached=$(( $(cat "$work/crash.samples.rank0" 2>/dev/null | wc -l) ))
  # Every file that looks like a checkpoint must verify; temporary files may remain and are ignored.
  good=1
  for f in "$work"/ck-crash/step-*.safetensors; do [ -e "$f" ] || continue; "$bin/digits" inspect "$f" > /dev/null 2>&1 || good=0; done
  newest_step=$(sed -nE 's/step-0*([0-9]+)\.safetensors/\1/p' "$work/ck-crash/latest" 2>/dev/null || echo 0)
  start_step=$(sed -nE 's/.*resumed from .*step-0*([0-9]+)\.safetensors.*/\1/p' "$work/crash$run"); start_step=${start_step:-0}
  lost=$(( start_step + reached - ${newest_step:-0} ))
  [ "$lost" -gt "$lost_max" ] && lost_max=$lost
  if [ "$good" = 1 ] && [ -n "$newest_step" ] && [ "$lost" -le 6 ]; then crash_ok=$((crash_ok + 1)); fi
done
if [ "$crash_ok" -eq "$crash_runs" ] && mpirun -np 2 "${train[@]}" --model reference --epochs 3 --no-eval --checkpoint-every 5 --keep 2 \
     --checkpoint-dir "$work/ck-crash" --resume --stop-at-step $(( newest_step + 3 )) > "$work/crash-final" 2>&1; then
  pass "crash test: $crash_runs runs killed with kill -9 at random moments; every checkpoint intact, every --resume worked, at most $lost_max steps lost (checkpoint every 5)"
else fail "crash test ($crash_ok of $crash_runs good, lost up to $lost_max)" "$work/crash-final"; fi

every_checkpoint_inspects() {
  local f
  for f in "$1"/step-*.safetensors; do [ -e "$f" ] || continue; "$bin/digits" inspect "$f" > /dev/null 2>&1 || return 1; done
}
# --- A checkpoint directory belongs to one run (issue 21): another run is refused with a sentence
# and loses nothing; --overwrite-checkpoints replaces; a second writer is refused at once.
own=("$bin/digits" train --data-dir data/mnist --no-eval --progress never --checkpoint-every 10)
"${own[@]}" --model lenet5 --max-steps 30 --checkpoint-dir "$work/ck-own" > "$work/own1" 2>&1 || true
before="$(cd "$work/ck-own" && sha256sum step-* latest | sha256sum)"
if "${own[@]}" --model default --max-steps 20 --checkpoint-dir "$work/ck-own" > "$work/own2" 2>&1; then
  fail "a new run in a directory holding another run's checkpoints was accepted" "$work/own2"
elif grep -q "ck-own: holds the checkpoints of another run: run [0-9a-f]*, model conv6k5p2.*, up to step 30 (3 files). Continue that run with --resume, give this run another --checkpoint-dir, or pass --overwrite-checkpoints" "$work/own2" \
   && [ "$before" = "$(cd "$work/ck-own" && sha256sum step-* latest | sha256sum)" ] \
   && "${own[@]}" --model lenet5 --max-steps 40 --checkpoint-dir "$work/ck-own" --resume > "$work/own3" 2>&1 \
   && [ "$(ls "$work/ck-own" | grep -c '^step-')" -eq 3 ] && [ "$(cat "$work/ck-own/latest")" = step-00000040.safetensors ] \
   && "${own[@]}" --model default --max-steps 20 --checkpoint-dir "$work/ck-own" --overwrite-checkpoints > "$work/own4" 2>&1 \
   && [ "$(ls "$work/ck-own" | grep '^step-' | tr '\n' ' ')" = "step-00000010.safetensors step-00000020.safetensors " ]; then
  pass "checkpoint directory of another run: refused with a sentence, nothing lost; --resume continues it; --overwrite-checkpoints replaces it"
else fail "checkpoint directory ownership" "$work/own2"; tail -3 "$work/own3" "$work/own4" 2>/dev/null || true; fi

# Long runs that a signal stops: started, then signalled once their first checkpoint exists (so
# training is under way on any machine, fast or slow); `timeout` ends them if a signal were lost.
long=(--model "$bnnet" --max-steps 100000)
until_checkpoint() { # DIR: wait up to 60 s for DIR/latest
  local i
  for i in $(seq 120); do [ -f "$1/latest" ] && return 0; sleep 0.5; done
  return 1
}

# A second writer while the first runs; then SIGTERM to the first: it finishes its step, writes a
# checkpoint, says how to go on and exits 143; resumed, it ends with the uninterrupted weights.
timeout 300 "${own[@]}" "${long[@]}" --checkpoint-dir "$work/ck-term" > "$work/term1" 2>&1 &
term_job=$!
until_checkpoint "$work/ck-term" || true
term_pid=$(pgrep -f -- "^$bin/digits train .*--checkpoint-dir $work/ck-term\$" | head -1 || true)
if "${own[@]}" --model "$bnnet" --max-steps 20 --checkpoint-dir "$work/ck-term" > "$work/term-second" 2>&1; then
  fail "a second run was allowed to write into a directory in use" "$work/term-second"
elif grep -q "ck-term: is in use by another digits run (pid ${term_pid:-?} on " "$work/term-second"; then
  pass "a second run in a directory in use: refused at once, naming the holder's pid and host"
else fail "second writer message" "$work/term-second"; fi
[ -n "$term_pid" ] && kill -TERM "$term_pid" 2>/dev/null || true
term_status=0; wait "$term_job" || term_status=$?
term_step=$(sed -nE 's/^interrupted by SIGTERM after step ([0-9]+) .*/\1/p' "$work/term1")
end_step=$(( ${term_step:-0} + 40 ))
if [ "$term_status" -eq 143 ] && [ -n "$term_step" ] && grep -q "checkpoint .*ck-term/step-0*$term_step.safetensors written. To continue, run the same command with --resume" "$work/term1" \
   && "${own[@]}" "${long[@]}" --checkpoint-dir "$work/ck-term" --resume --stop-at-step "$end_step" --digest > "$work/term2" 2>&1 \
   && grep -q "resumed from .*step-0*$term_step.safetensors" "$work/term2" \
   && "${own[@]}" "${long[@]}" --checkpoint-dir "$work/ck-term-full" --stop-at-step "$end_step" --digest > "$work/term-full" 2>&1 \
   && [ -n "$(grep -m1 'weights sha256' "$work/term2" | awk '{ print $5 }')" ] \
   && [ "$(grep -m1 'weights sha256' "$work/term2" | awk '{ print $5 }')" = "$(grep -m1 'weights sha256' "$work/term-full" | awk '{ print $5 }')" ]; then
  pass "SIGTERM: checkpoint at step $term_step, exit 143; resumed to step $end_step = uninterrupted to step $end_step (same weights SHA-256)"
else fail "SIGTERM stop and resume (exit $term_status, step ${term_step:-none})" "$work/term1"; tail -3 "$work/term2" 2>/dev/null || true; fi

# Ctrl-C (SIGINT) alone: the same, with exit 130.
timeout 300 "${own[@]}" "${long[@]}" --checkpoint-dir "$work/ck-int" > "$work/int" 2>&1 &
int_job=$!
until_checkpoint "$work/ck-int" || true
int_pid=$(pgrep -f -- "^$bin/digits train .*--checkpoint-dir $work/ck-int\$" | head -1 || true)
[ -n "$int_pid" ] && kill -INT "$int_pid" 2>/dev/null || true
int_status=0; wait "$int_job" || int_status=$?
if [ "$int_status" -eq 130 ] && grep -q "^interrupted by SIGINT after step [0-9]* (epoch [0-9]*); checkpoint .*ck-int/step-" "$work/int" \
   && every_checkpoint_inspects "$work/ck-int"; then
  pass "SIGINT: $(grep -o 'interrupted by SIGINT after step [0-9]*' "$work/int"), checkpoint written, exit 130"
else fail "SIGINT stop (exit $int_status)" "$work/int"; fi

# Under mpirun: SIGUSR1 to mpirun (which forwards it to every rank) stops the job with a checkpoint.
timeout 300 mpirun -np 2 "${own[@]}" "${long[@]}" --checkpoint-dir "$work/ck-usr1" > "$work/usr1" 2>&1 &
usr1_job=$!
until_checkpoint "$work/ck-usr1" || true
mpirun_pid=$(pgrep -f -- "^mpirun .*--checkpoint-dir $work/ck-usr1\$" | head -1 || true)
[ -n "$mpirun_pid" ] && kill -USR1 "$mpirun_pid" 2>/dev/null || true
usr1_status=0; wait "$usr1_job" || usr1_status=$?
usr1_step=$(sed -nE 's/^interrupted by SIGUSR1 after step ([0-9]+) .*/\1/p' "$work/usr1")
if [ -n "$usr1_step" ] && [ -f "$work/ck-usr1/step-$(printf %08d "$usr1_step").safetensors" ] && [ "$usr1_status" -eq 138 ]; then
  pass "mpirun -np 2 and SIGUSR1 to mpirun: both ranks stopped after step $usr1_step with a checkpoint (mpirun exit 138)"
else fail "SIGUSR1 under mpirun (exit $usr1_status)" "$work/usr1"; fi

# Kill-and-resume at random moments: SIGTERM to every rank, and kill -9 of one rank (the 20-run
# table is in docs/performance.md; here one of each).
if KILL_RESUME_SCRATCH="$work/kill-resume" DIGITS="$bin/digits" bash scripts/kill-resume.sh 1 > "$work/kill-resume.out" 2>&1; then
  pass "kill-resume: $(tail -1 "$work/kill-resume.out" | sed 's/^kill-resume: //')"
else fail "kill-resume" "$work/kill-resume.out"; fi

# Numbers stay numbers: a learning rate that diverges stops the run with a sentence and a non-zero
# exit, and no checkpoint holds NaN.
if "${own[@]}" --lr 1e30 --max-steps 50 --checkpoint-every 1 --checkpoint-dir "$work/ck-nan" > "$work/nan" 2>&1; then
  fail "a diverging run (--lr 1e30) exited 0" "$work/nan"
elif grep -q "training diverged. The usual cause is a learning rate too high" "$work/nan" \
   && every_checkpoint_inspects "$work/ck-nan"; then
  pass "--lr 1e30: stopped at $(grep -o 'step [0-9]*: the [a-z ]* are not finite' "$work/nan"), non-zero exit, every checkpoint written finite"
else fail "--lr 1e30 divergence" "$work/nan"; fi
for bad in "--lr inf" "--weight-decay nan" "--epochs -1" "--checkpoint-dir $work/nan/x" \
           "--model conv9223372036854775807k1-flatten-dense10" "--model flatten-dense100000-dense100000-dense10"; do
  read -r -a bad_args <<<"$bad"
  if "${own[@]}" "${bad_args[@]}" --max-steps 5 > "$work/badopt" 2>&1; then
    fail "train $bad was accepted" "$work/badopt"
  elif grep -qE -- "--lr must be a positive finite number, not inf|--weight-decay must be a finite number, 0 or more, not nan|--epochs must be from 1 to 1,000,000, not -1|nan/x: cannot be made: $work/nan is a file, not a directory|9223372036854775807 is more than the limit of 100000|layer 3 'dense100000' needs more than 100000000 parameters" "$work/badopt"; then
    pass "train $bad: $(grep -m1 -E 'Error|error' "$work/badopt" | sed -E 's/^(Error|digits: error): //' | cut -c1-110)"
  else fail "train $bad message" "$work/badopt"; fi
done

# A read-only file system and a full disk (small tmpfs mounts; root only): named before the first
# step / at the checkpoint that does not fit, non-zero exit, the checkpoints already written intact.
if [ "$(id -u)" -eq 0 ] && mkdir -p "$work/mnt-ro" "$work/mnt-full" && mount -t tmpfs -o ro,size=1m tmpfs "$work/mnt-ro" 2>/dev/null; then
  if mount -t tmpfs -o size=2600k tmpfs "$work/mnt-full" 2>/dev/null; then
    "${own[@]}" --max-steps 5 --checkpoint-dir "$work/mnt-ro/ck" > "$work/rofs" 2>&1 && echo "accepted" >> "$work/rofs"
    "${own[@]}" --max-steps 40 --checkpoint-dir "$work/mnt-full/ck" > "$work/fullfs" 2>&1 && echo "accepted" >> "$work/fullfs"
    if grep -q "mnt-ro/ck: cannot create the checkpoint directory .*: Read-only file system" "$work/rofs" && ! grep -q "^epoch" "$work/rofs" \
       && grep -q "write failed: No space left on device; the checkpoint of step 30 was not written, the newest written is .*mnt-full/ck/step-00000020.safetensors" "$work/fullfs" \
       && every_checkpoint_inspects "$work/mnt-full/ck" && [ "$(cat "$work/mnt-full/ck/latest")" = step-00000020.safetensors ] \
       && ! ls -a "$work/mnt-full/ck" | grep -q '^\.tmp-'; then
      pass "read-only checkpoint directory refused before the first step; a full disk stops the run at step 30 naming step 20, intact"
    else fail "read-only / full checkpoint directory" "$work/fullfs"; cat "$work/rofs"; fi
    umount "$work/mnt-full"
  else echo "skip full-disk check: cannot mount a tmpfs"; fi
  umount "$work/mnt-ro"
else
  echo "skip read-only and full-disk checks: they need root and tmpfs mounts"
fi

# A 2-rank checkpoint inside epoch 1, resumed on 1 and on 3 ranks: the epoch finishes and no sample is used twice in it.
rm -f "$work"/resize*.samples.*
if mpirun -np 2 "${train[@]}" --model "$bnnet" --epochs 2 --no-eval --checkpoint-every 100 --checkpoint-dir "$work/ck-resize" \
     --stop-at-step 200 --record-samples "$work/resize-a.samples" > "$work/resize0" 2>&1; then
  for np in 1 3; do
    rm -rf "$work/ck-resize$np"; cp -r "$work/ck-resize" "$work/ck-resize$np"
    if mpirun -np "$np" "${train[@]}" --model "$bnnet" --epochs 2 --no-eval --checkpoint-every 100 --checkpoint-dir "$work/ck-resize$np" \
         --resume --record-samples "$work/resize-$np.samples" > "$work/resize$np" 2>&1; then
      used=$(cat "$work"/resize-a.samples.* "$work"/resize-$np.samples.* | awk '$1 == 0 { for (i = 2; i <= NF; i++) print $i }' | sort -n)
      total=$(wc -l <<<"$used"); twice=$(uniq -d <<<"$used" | wc -l)
      # 55,000 training images (5,000 held out for validation); a few that do not fill a step wait for the next epoch.
      if [ "$twice" -eq 0 ] && [ "$total" -gt 54000 ] && grep -q "^ *2 " "$work/resize$np"; then
        pass "2-rank checkpoint at step 200 resumed on $np rank(s): ran to the end; epoch 1 used $total distinct samples, none twice"
      else fail "resume on $np ranks: $total samples in epoch 1, $twice used twice" "$work/resize$np"; fi
    else fail "resume on $np ranks failed" "$work/resize$np"; fi
  done
else fail "2-rank run for the resize test" "$work/resize0"; fi

# --- Using a trained model: evaluate, predict people's images, report.
model_ck="$work/ck-full/$(cat "$work/ck-full/latest" 2>/dev/null)"
if "$bin/digits" evaluate --data-dir data/mnist --checkpoint "$model_ck" --misclassified "$work/misses.png" > "$work/eval1" 2>&1 \
   && mpirun -np 2 "$bin/digits" evaluate --data-dir data/mnist --checkpoint "$model_ck" > "$work/eval2" 2>&1 \
   && [ "$(grep -m1 'test images: accuracy' "$work/eval1")" = "$(grep -m1 'test images: accuracy' "$work/eval2")" ] \
   && [ "$(awk '/^confusion/ { on = 1; next } on && NF == 11 { for (i = 2; i <= 11; i++) s += $i } END { print s }' "$work/eval1")" = 10000 ] \
   && [ "$(head -c 8 "$work/misses.png" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ]; then
  pass "evaluate: $(grep -m1 -o 'accuracy [0-9.]*%' "$work/eval1") on 1 and 2 ranks alike, confusion matrix sums to 10000, misclassified grid written"
else fail "evaluate" "$work/eval1"; cat "$work/eval2" | tail -3; fi

"$bin/digits" sample-images --data-dir data/mnist --count 100 --scale 3 --out "$work/digits" > /dev/null 2>&1 || true
if "$bin/digits" predict --checkpoint "$model_ck" --json "$work/digits" > "$work/predict" 2> "$work/predict.err" \
   && "$bin/digits" evaluate --data-dir data/mnist --checkpoint "$model_ck" --limit 100 --json > "$work/eval100" 2>&1; then
  right=$(python3 -c "
import json, re, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    n += r['digit'] == int(re.search(r'label-(\\d)', r['file']).group(1))
print(n)" "$work/predict")
  expected=$(python3 -c "import json, sys; print(round(100 * json.load(open(sys.argv[1]))['accuracy']))" "$work/eval100")
  if [ "$(wc -l < "$work/predict")" -eq 100 ] && [ $(( right - expected )) -le 1 ] && [ $(( expected - right )) -le 1 ]; then
    pass "predict on MNIST test images 0-99 drawn dark on light at 3x: $right/100 right; evaluate on the same 100: $expected/100"
  else fail "predict $right/100 vs evaluate $expected/100" "$work/predict"; fi
else fail "predict on sample images" "$work/predict.err"; fi

printf 'not a png' > "$work/digits/zz-bad.png"
if "$bin/digits" predict --checkpoint "$model_ck" "$work/digits/digit-00000-label-7.png" "$work/digits/zz-bad.png" \
     "$work/digits/digit-00001-label-2.png" > "$work/predict-bad" 2>&1; then
  fail "predict succeeded with a bad file among good ones" "$work/predict-bad"
elif [ "$(grep -c 'digit-0000[01]' "$work/predict-bad")" -eq 2 ] && grep -q "zz-bad.png: not a PNG file" "$work/predict-bad"; then
  pass "predict: one bad file is reported, the others are still read, exit status 1"
else fail "predict with a bad file" "$work/predict-bad"; fi
# With --json: one valid JSON record per input, the bad file's with an error field (stdout only).
if "$bin/digits" predict --json --checkpoint "$model_ck" "$work/digits/digit-00000-label-7.png" "$work/digits/zz-bad.png" \
     > "$work/predict-bad.json" 2> /dev/null; then
  fail "predict --json succeeded with a bad file among good ones" "$work/predict-bad.json"
elif python3 -c "
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
assert len(records) == 2, records
assert 'digit' in records[0] and records[1]['file'].endswith('zz-bad.png') and 'not a PNG file' in records[1]['error'], records
" "$work/predict-bad.json" 2> "$work/predict-bad.err"; then
  pass "predict --json: a record per input, valid JSON, the bad file's with its error, exit status 1"
else cat "$work/predict-bad.err" >> "$work/predict-bad.json"; fail "predict --json with a bad file" "$work/predict-bad.json"; fi

if "$bin/digits" report "$work/full.jsonl" --out "$work/report.svg" > /dev/null 2>&1 && grep -q "<polyline" "$work/report.svg" \
   && python3 -c "import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])" "$work/report.svg"; then
  pass "report: an SVG with loss and accuracy curves and the time breakdown (well-formed XML)"
else fail "report" "$work/report.svg"; fi

# --- Everyday paths (scripts/everyday-paths-test.sh): predict, evaluate and inspect with no checkpoint
# named after a train into ./checkpoints, --checkpoint as a directory or its latest, JPEG and PNG files
# and standard input, damaged JPEGs and a bad --checkpoint named in one line.
if bash scripts/everyday-paths-test.sh "$bin/digits" "$MNIST_DIR" > "$work/everyday" 2>&1; then
  pass "everyday paths: $(tail -1 "$work/everyday" | sed 's/^everyday-paths: //') (no --checkpoint, a directory, latest, JPEG, PNG, standard input, damaged files)"
else fail "everyday paths (scripts/everyday-paths-test.sh)" "$work/everyday"; fi

# --- Honest model selection and the accuracy tools (scripts/accuracy-test.sh): a validation split scored
# every epoch and the test set once at the end, --ema chosen on validation and used by evaluate, --seeds
# members in rank groups under mpirun, crossval --folds.
if bash scripts/accuracy-test.sh "$bin/digits" "$MNIST_DIR" > "$work/accuracy" 2>&1; then
  pass "accuracy tools: $(tail -1 "$work/accuracy" | sed 's/^accuracy-test: //') (validation split, test once, ema chosen on validation, --seeds, crossval)"
else fail "accuracy tools (scripts/accuracy-test.sh)" "$work/accuracy"; fi

# --- Why the model said what it said (scripts/explain-test.sh): a conv net and the seed MLP trained 100
# steps; predict --explain's pictures read back (size, the input, a heat map that is not constant; Grad-CAM
# or saliency said); evaluate --explain-misclassified; wrong uses named in one line.
if bash scripts/explain-test.sh "$bin/digits" "$MNIST_DIR" > "$work/explain" 2>&1; then
  pass "explanations: $(tail -1 "$work/explain" | sed 's/^explain-test: //') (predict --explain: Grad-CAM and saliency pictures; evaluate --explain-misclassified)"
else fail "explanations (scripts/explain-test.sh)" "$work/explain"; fi

# --- Ensembles and test-time augmentation (scripts/ensemble-test.sh): two tiny models evaluated and
# predicted together, with and without --tta, against the members' own logits; one checkpoint prints as
# before; the same counts under mpirun -np 2; a checkpoint named twice or of another image size refused.
if bash scripts/ensemble-test.sh "$bin/digits" "$MNIST_DIR" > "$work/ensemble" 2>&1; then
  pass "ensembles and --tta: $(tail -1 "$work/ensemble" | sed 's/^ensemble-test: //') (2 checkpoints against their own logits, --tta, mpirun -np 2, refusals)"
else fail "ensembles and test-time augmentation (scripts/ensemble-test.sh)" "$work/ensemble"; fi

# --- Robustness (scripts/robustness-test.sh): a tiny model trained 100 steps with the appearance
# variations of --augment; evaluate --robustness --limit 500 as JSON (every perturbation, both feeds,
# the worst), table, SVG plot and example grid; the same counts on 2 ranks; bad options in one line.
if bash scripts/robustness-test.sh "$bin/digits" "$MNIST_DIR" > "$work/robustness" 2>&1; then
  pass "robustness: $(tail -1 "$work/robustness" | sed 's/^robustness-test: //') (evaluate --robustness JSON, table, SVG, examples; 2 ranks = 1; --augment thickness/blur/lowres/contrast/noise)"
else fail "robustness report (scripts/robustness-test.sh)" "$work/robustness"; fi

# --- Any IDX classification set (scripts/idx-test.sh): a synthetic 5-class set of 20x24 images with a
# classes.txt trained, evaluated and predicted with names; a damaged MNIST refused; a model of one shape
# refused on images of another.
if bash scripts/idx-test.sh "$bin/digits" "$MNIST_DIR" > "$work/idx" 2>&1; then
  pass "any IDX set: $(tail -1 "$work/idx" | sed 's/^idx-test: //') (a 5-class 20x24 set with names, a damaged MNIST refused)"
else fail "any IDX set (scripts/idx-test.sh)" "$work/idx"; fi

# --- ONNX export (scripts/onnx-check.sh): every preset trained 20 steps, exported, and run by onnxruntime;
# the logits of 1,000 test images within 1e-4 of digits' own, and onnx.checker's full check. Without
# onnxruntime (pip) it cannot run: not a pass, and a failure in CI, whose .ci/run installs it.
onnx_status=0
bash scripts/onnx-check.sh "$bin/digits" "$MNIST_DIR" > "$work/onnx" 2>&1 || onnx_status=$?
if [ "$onnx_status" -eq 0 ]; then
  grep -E '^(ok|onnx:)' "$work/onnx" | sed 's/^/     /'
  pass "ONNX export: every preset's logits from onnxruntime within 1e-4 of digits' on 1,000 test images (scripts/onnx-check.sh)"
elif [ "$onnx_status" -eq 3 ]; then
  reason=$(grep -m1 '^onnx: SKIPPED' "$work/onnx" | sed 's/^onnx: SKIPPED //')
  if [ "${CI:-}" = true ]; then fail "onnx: NOT RUN $reason (CI: .ci/run should have installed onnxruntime and onnx)"
  else not_run+=("onnx: NOT RUN $reason"); echo "onnx: NOT RUN $reason"; fi
else fail "ONNX export against onnxruntime (scripts/onnx-check.sh)" "$work/onnx"; fi

# The same two checks on the second table: an AVX2-only CPU trains, evaluates, predicts and exports
# through these kernels.
if [ ${#second_isa[@]} -gt 0 ]; then
  if env "${second_isa[@]}" bash scripts/idx-test.sh "$bin/digits" "$MNIST_DIR" > "$work/idx-second" 2>&1; then
    pass "${second_isa[*]}: any IDX set: $(tail -1 "$work/idx-second" | sed 's/^idx-test: //')"
  else fail "${second_isa[*]}: any IDX set (scripts/idx-test.sh)" "$work/idx-second"; fi
  onnx_status=0
  env "${second_isa[@]}" bash scripts/onnx-check.sh "$bin/digits" "$MNIST_DIR" > "$work/onnx-second" 2>&1 || onnx_status=$?
  if [ "$onnx_status" -eq 0 ]; then
    pass "${second_isa[*]}: ONNX export: every preset's logits from onnxruntime within 1e-4 of digits' own"
  elif [ "$onnx_status" -ne 3 ]; then fail "${second_isa[*]}: ONNX export against onnxruntime" "$work/onnx-second"; fi
fi

# --- A real Slurm on this machine (Debian's slurmctld, slurmd and munge; cluster/slurm-local.sh): the job
# script cluster/digits.sbatch, 2 ranks by srun --mpi=pmix, stopped by its time limit's signal with a
# checkpoint, resubmitted, and equal bit for bit to an uninterrupted job (scripts/slurm-test.sh).
# Without root or the packages it cannot run: not a pass, and a failure in CI as root, where
# install-packages.sh --test-tools installs them.
slurm_status=0
bash scripts/slurm-test.sh "$bin/digits" "$MNIST_DIR" > "$work/slurm" 2>&1 || slurm_status=$?
if [ "$slurm_status" -eq 0 ]; then
  grep '^slurm: PASSED' "$work/slurm" | sed 's/^slurm: PASSED /     /'
  pass "Slurm: cluster/digits.sbatch stopped by its time-limit signal with a checkpoint; the resubmitted job = an uninterrupted one (same weights SHA-256)"
elif [ "$slurm_status" -eq 3 ]; then
  reason=$(grep -m1 '^slurm: SKIPPED' "$work/slurm" | sed 's/^slurm: SKIPPED //')
  if [ "$(id -u)" -eq 0 ] && [ "${CI:-}" = true ]; then fail "slurm: NOT RUN $reason (CI as root: install-packages.sh --test-tools should have installed Slurm)"
  else not_run+=("slurm: NOT RUN $reason"); echo "slurm: NOT RUN $reason"; fi
else fail "Slurm job script under a real Slurm (scripts/slurm-test.sh)" "$work/slurm"; fi

# --- A simulated cluster: 3 hosts in network namespaces, TCP between them, links shaped to 1 Gbit/s.
if [ "$(id -u)" -ne 0 ]; then
  echo "skip simulated cluster: needs root for network namespaces"
elif ! command -v ping > /dev/null || ! command -v ip > /dev/null; then
  echo "skip simulated cluster: ping (iputils-ping) or ip (iproute2) is missing; scripts/install-packages.sh --test-tools installs them"
elif ! ip netns add digits-probe 2>/dev/null; then
  echo "skip simulated cluster: ip netns does not work here"
else
  ip netns del digits-probe
  export SIM_DIR="$work/sim"
  trap 'bash cluster/simulate.sh down > /dev/null 2>&1; rm -rf "$work"' EXIT
  rate=(--rate 1gbit); command -v tc > /dev/null || { rate=(); echo "note: tc not found; simulated links are not shaped"; }
  if bash cluster/simulate.sh up 3 "${rate[@]}" > "$work/sim.log" 2>&1; then
    sim=(HOSTFILE="$SIM_DIR/hostfile" RSH_AGENT="$SIM_DIR/rsh" IFACE=10.77.0.0/24 BIND=none DIGITS="$root/$bin/digits")
    if env "${sim[@]}" CHECKPOINT_DIR="$work/sim-ck1" bash cluster/launch.sh --model "$bnnet" --max-steps 150 --no-eval --digest \
         --progress never > "$work/sim1" 2>&1 \
       && [ "$(grep -c 'weights sha256' "$work/sim1")" -eq 3 ] \
       && [ "$(grep 'weights sha256' "$work/sim1" | awk '{ print $5 }' | sort -u | wc -l)" -eq 1 ]; then
      pass "3 simulated hosts over TCP at 1 Gbit/s (cluster/launch.sh): 150 steps, all ranks end with identical weights"
    else fail "simulated 3-host run" "$work/sim1"; fi

    if env "${sim[@]}" DEST="$work/deployed" BINARY="$bin/digits" RSH="$SIM_DIR/rsh" bash cluster/deploy.sh > "$work/deploy" 2>&1 \
       && [ "$(grep -c 'binary ' "$work/deploy")" -eq 3 ]; then
      pass "cluster/deploy.sh copies binary, data and scripts to 3 hosts and finds the same version and SHA-256 on each"
    else fail "deploy to simulated hosts" "$work/deploy"; fi

    # Kill every process of host 3 mid-run; the job must end within 60 s naming it; resume on the 2 survivors.
    # Long enough (3 epochs, ~10 s) that the kill lands mid-run; every step of the check tolerates a
    # process that exits on its own while being killed.
    ( env "${sim[@]}" CHECKPOINT_DIR="$work/sim-ck2" bash cluster/launch.sh --model "$bnnet" --epochs 3 --no-eval \
        --checkpoint-every 40 --progress never > "$work/sim-loss" 2>&1; echo "exit $?" >> "$work/sim-loss" ) &
    job=$!
    # Kill once the job is well under way (a checkpoint past step 120): a daemon killed during
    # Open MPI's start-up phase gets its generic "unable to start" text, which names no host.
    for _ in $(seq 60); do
      step=$(sed -nE 's/step-0*([0-9]+)\.safetensors/\1/p' "$work/sim-ck2/latest" 2>/dev/null || true)
      [ -n "$step" ] && [ "$step" -gt 120 ] && break
      sleep 0.5
    done
    before_kill="$(cat "$work/sim-ck2/latest" 2>/dev/null || true)"
    killed_at=$(date +%s)
    # Host 3 goes away as a powered-off host does: its processes die and its link goes down.
    ip netns pids digits-h3 | xargs -r kill -9 2>/dev/null || true
    ip netns exec digits-h3 ip link set eth0 down
    ended=no
    for _ in $(seq 120); do if ! kill -0 "$job" 2>/dev/null; then ended=yes; break; fi; sleep 0.5; done
    took=$(( $(date +%s) - killed_at ))
    head -n 2 "$SIM_DIR/hostfile" > "$SIM_DIR/survivors"
    if [ "$ended" = yes ] && [ "$took" -le 60 ] && grep -q "10.77.0.3" "$work/sim-loss" && [ -n "$before_kill" ] \
       && "$bin/digits" inspect "$work/sim-ck2/$before_kill" > /dev/null 2>&1 \
       && env "${sim[@]}" HOSTFILE="$SIM_DIR/survivors" CHECKPOINT_DIR="$work/sim-ck2" bash cluster/launch.sh --model "$bnnet" \
            --epochs 3 --no-eval --checkpoint-every 40 --progress never > "$work/sim-resume" 2>&1 \
       && grep -q "resumed from .*saved by 3 rank(s), now 2" "$work/sim-resume" && grep -qE "^ +3 " "$work/sim-resume"; then
      pass "host 3 killed mid-run: job ended in ${took} s naming 10.77.0.3; $before_kill intact; resumed on the 2 survivors to the end"
    else kill -9 "$job" 2>/dev/null || true; fail "host loss (ended=$ended after ${took} s)" "$work/sim-loss"; tail -5 "$work/sim-resume" 2>/dev/null || true; fi
  else fail "cluster/simulate.sh up 3" "$work/sim.log"; fi
  bash cluster/simulate.sh down > /dev/null 2>&1 || true
fi

for line in "${not_run[@]}"; do echo "$line"; done
echo "scripts: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
