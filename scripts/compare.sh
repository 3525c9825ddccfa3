#!/usr/bin/env bash
# Side-by-side training throughput of two digits binaries on this machine: the runs alternate
# (A, B, A, B, …) so that both see the same machine state, and the medians and their ratio are
# printed. For judging a change to the kernels on a shared, noisy machine.
#
#   scripts/compare.sh BINARY_A BINARY_B [MODEL] [THREADS] [RUNS] [STEPS]
#   e.g. scripts/compare.sh /tmp/before/digits .build/release/digits reference 1 5 300
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: scripts/compare.sh BINARY_A BINARY_B [MODEL] [THREADS] [RUNS] [STEPS]" >&2
  exit 2
fi
a="$1" b="$2" model="${3:-reference}" threads="${4:-1}" runs="${5:-5}" steps="${6:-300}"
data="${MNIST_DIR:-$(cd "$(dirname "$0")/.." && pwd)/data/mnist}"
[ -d "$data" ] || data="$(cd "$(dirname "$0")/../.." && pwd)/shared/data/mnist"
for binary in "$a" "$b"; do
  [ -x "$binary" ] || { echo "compare: $binary is not an executable" >&2; exit 2; }
done
rate() {
  "$1" bench --data-dir "$data" --model "$model" --threads "$threads" --steps "$steps" --json |
    python3 -c 'import json, sys; print(round(json.load(sys.stdin)["images_per_second"]))'
}
declare -a ra rb
for _ in $(seq "$runs"); do
  ra+=("$(rate "$a")")
  rb+=("$(rate "$b")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ma=$(median "${ra[@]}") mb=$(median "${rb[@]}")
echo "$model, $threads thread(s), $runs alternating runs of $steps steps (images/s):"
echo "  A $a: median $ma (${ra[*]})"
echo "  B $b: median $mb (${rb[*]})"
awk -v a="$ma" -v b="$mb" 'BEGIN { printf "  B / A = %.3f\n", b / a }'
