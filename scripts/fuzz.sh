#!/usr/bin/env bash
# Fuzzes one of digits' input parsers with libFuzzer and the address sanitizer (Fuzz/README.md).
#
#   scripts/fuzz.sh TARGET SECONDS     TARGET: safetensors, idx, png, jpeg, modelspec, augspec, or all
#
# The library modules are built by SwiftPM with --sanitize=fuzzer --sanitize=address in
# .build-fuzz (cached); each target, Fuzz/TARGET.swift, is compiled and linked against them with
# swiftc -sanitize=fuzzer,address. A run works on a copy of the committed seeds,
# Fuzz/corpus/TARGET, in .build-fuzz/work/TARGET; crash reproducers go to
# .build-fuzz/work/TARGET/crashes and their paths are printed.
#
# Exit status: 0 no crash; 1 a crash, leak, out-of-memory (over 2048 MB), timeout (over 10 s for
# one input) or a build failure; 2 fuzzing cannot run on this machine ("fuzz: NOT RUN: reason").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
targets=(safetensors idx png jpeg modelspec augspec)

usage() { echo "usage: scripts/fuzz.sh {$(IFS=,; echo "${targets[*]}"),all} SECONDS" >&2; exit 1; }
[ $# -eq 2 ] || usage
case "$2" in ''|*[!0-9]*) usage ;; esac
if [ "$1" = all ]; then chosen=("${targets[@]}")
elif [[ " ${targets[*]} " == *" $1 "* ]]; then chosen=("$1")
else usage; fi
seconds=$2

build=.build-fuzz
release="$build/release"
not_run() { echo "fuzz: NOT RUN: $1"; exit 2; }

# The toolchain must link libFuzzer and the address sanitizer; a probe says so once per build folder.
command -v swiftc > /dev/null || not_run "swiftc is not on PATH"
mkdir -p "$build/probe"
if [ ! -f "$build/probe/ok" ]; then
  printf '%s\n' '@_cdecl("LLVMFuzzerTestOneInput") public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt { 0 }' \
    > "$build/probe/probe.swift"
  if ! swiftc -sanitize=fuzzer,address -parse-as-library "$build/probe/probe.swift" -o "$build/probe/probe" \
       > "$build/probe/log" 2>&1; then
    not_run "swiftc -sanitize=fuzzer,address does not link here ($(grep -m1 -i error "$build/probe/log" || head -1 "$build/probe/log"))"
  fi
  touch "$build/probe/ok"
fi

# The modules, instrumented. SwiftPM hands swiftc --sanitize=fuzzer and =address as two flags, of
# which the driver keeps only the last (no coverage); -Xswiftc gives it both at once.
# -enable-testing lets a target reach internal readers (@testable).
for module in Training ImageIO; do
  if ! swift build -c release --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing \
       --scratch-path "$build" \
       --target "$module" > "$build/build-$module.log" 2>&1; then
    echo "fuzz: building $module with the sanitizers failed:"; grep -E 'error' "$build/build-$module.log" | head -20
    exit 1
  fi
done

# What each target links: Swift and C modules (their objects), and system libraries.
modules_of() {
  case "$1" in
    safetensors) echo Training NeuralNet Datasets Collective Augmentation CounterRNG CKernels ;;
    idx)         echo Datasets CounterRNG ;;
    png|jpeg)    echo ImageIO ;;
    modelspec)   echo NeuralNet CounterRNG CKernels ;;
    augspec)     echo Augmentation CounterRNG ;;
  esac
}
packages_of() {
  case "$1" in
    safetensors) echo zlib mpi-c ;;
    idx)         echo zlib ;;
    png|jpeg)    echo libpng libjpeg zlib ;;
    *)           echo ;;
  esac
}

link() {
  local target=$1 binary="$build/fuzz-$1" objects=() module
  for module in $(modules_of "$target"); do
    while IFS= read -r object; do objects+=("$object"); done < <(find "$release/$module.build" -name '*.o' | sort)
  done
  # Relink only when the target or one of its objects changed.
  if [ -x "$binary" ] && [ -z "$(find "Fuzz/$target.swift" "${objects[@]}" -newer "$binary" | head -1)" ]; then return 0; fi
  local flags=() flag packages
  packages=$(packages_of "$target")
  if [ -n "$packages" ]; then
    for flag in $(pkg-config --cflags $packages); do flags+=(-Xcc "$flag"); done
    for flag in $(pkg-config --libs-only-L $packages); do flags+=("$flag"); done
  fi
  for map in Sources/CZlib/module.modulemap Sources/CPNG/module.modulemap Sources/CJPEG/module.modulemap Sources/CMPI/module.modulemap \
             "$release/CKernels.build/module.modulemap"; do
    flags+=(-Xcc "-fmodule-map-file=$map")
  done
  # ld.gold warns "Cannot export local symbol __asan..." for every sanitizer symbol; harmless.
  if ! swiftc -O -parse-as-library -sanitize=fuzzer,address -module-name "fuzz_$target" "Fuzz/$target.swift" \
       -I "$release/Modules" "${flags[@]}" "${objects[@]}" -o "$binary" > "$build/link-$target.log" 2>&1; then
    echo "fuzz: building the $target target failed:"; grep -v 'Cannot export local symbol' "$build/link-$target.log" | head -30
    exit 1
  fi
}

crashed=()
for target in "${chosen[@]}"; do
  link "$target"
  work="$build/work/$target"
  rm -rf "$work/corpus"; mkdir -p "$work/corpus" "$work/crashes"
  cp Fuzz/corpus/"$target"/* "$work/corpus/"
  # Path-based readers get their input as a file: one per process, in memory where possible.
  scratch=/dev/shm; [ -d "$scratch" ] && [ -w "$scratch" ] || scratch="$work"
  dictionary=(); [ -f "Fuzz/$target.dict" ] && dictionary=(-dict="Fuzz/$target.dict")
  before=$(ls "$work/crashes" | wc -l)
  status=0
  # The Swift runtime's backtracer reads memory the address sanitizer reports; libFuzzer prints the stack.
  SWIFT_BACKTRACE=enable=no FUZZ_SCRATCH="$scratch" "$build/fuzz-$target" "$work/corpus" "${dictionary[@]}" -max_total_time="$seconds" \
    -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$work/crashes/" > "$work/log" 2>&1 || status=$?
  rm -f "$scratch/$target-input-"* "$scratch/$target-partner-"*
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/log" | tail -1 || true)
  [ -n "$done_line" ] || done_line=$(grep -E '^#[0-9]+[[:space:]]' "$work/log" | tail -1 || true)
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$work/log")
  rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$work/log")
  rss=$(sed -nE 's/^stat::peak_rss_mb: *([0-9]+)/\1/p' "$work/log")
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line"); ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$done_line")
  summary="$target: ${seconds} s, ${runs:-?} executions (${rate:-?}/s), cov ${cov:-?}, ft ${ft:-?}, corpus $(ls "$work/corpus" | wc -l) inputs, peak RSS ${rss:-?} MB"
  if [ "$status" -eq 0 ]; then
    echo "fuzz: $summary, no crash"
  else
    crashed+=("$target")
    echo "fuzz: $summary: FAILED (libFuzzer exit status $status); log: $work/log"
    grep -E '^==[0-9]+==ERROR|^SUMMARY|Fatal error|Precondition failed|ERROR: libFuzzer' "$work/log" | head -5 | sed 's/^/  /'
    ls -t "$work/crashes" | head -n $(( $(ls "$work/crashes" | wc -l) - before )) | while IFS= read -r name; do
      echo "  reproducer: $work/crashes/$name (rerun: $build/fuzz-$target $work/crashes/$name)"
    done
  fi
done
[ ${#crashed[@]} -eq 0 ] || { echo "fuzz: crashes in: ${crashed[*]}"; exit 1; }
