#!/usr/bin/env bash
# Benchmarks (never part of the tests). Builds release and prints tables to paste into the README.
#   scripts/bench.sh [section…]     sections: data (default: all)
# Each figure is the median of several runs, with min-max, measured in this invocation.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs="${BENCH_RUNS:-5}"
sections=("$@"); [ ${#sections[@]} -eq 0 ] && sections=(data)

swift build -c release --product digits >/dev/null
bash scripts/fetch-mnist.sh >/dev/null
bin=.build/release/digits

# median/min/max of numbers on stdin -> "median (min-max)"
stats() { sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
  printf "%.3f (%.3f-%.3f)", m, v[1], v[NR] }'; }

bench_data() {
  local inner=() whole=()
  for _ in $(seq "$runs"); do
    local t0 t1 out
    t0=$(date +%s.%N)
    out=$("$bin" inspect-data --data-dir data/mnist)
    t1=$(date +%s.%N)
    inner+=("$(sed -nE 's/.*read and checksummed in ([0-9.]+) s.*/\1/p' <<<"$out")")
    whole+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
  done
  echo "### Reading MNIST (4 gzip IDX files, 70,000 images, inflate + validate + SHA-256), $runs runs"
  echo
  echo "| what | seconds, median (min-max) |"
  echo "| --- | --- |"
  echo "| read + verify, inside \`digits inspect-data\` | $(printf '%s\n' "${inner[@]}" | stats) |"
  echo "| whole \`digits inspect-data\` process | $(printf '%s\n' "${whole[@]}" | stats) |"
  echo
}

for s in "${sections[@]}"; do
  case "$s" in
    data) bench_data ;;
    *) echo "bench: unknown section '$s' (known: data)" >&2; exit 2 ;;
  esac
done
