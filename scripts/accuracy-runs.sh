#!/usr/bin/env bash
# Trains one recipe candidate over several seeds, data-parallel on 2 ranks (the two cores of the
# machines these figures come from), and prints its row of the recipe table: validation and test
# accuracy per seed (live weights and, with --ema, the moving average), then median and min-max.
#
#   scripts/accuracy-runs.sh NAME "1 2 3" [train options...]
#
# Each seed's run goes to runs/accuracy/NAME/seed-S/ (checkpoints, metrics.jsonl, train.log).
# A seed whose metrics already end with the final test line is not trained again; one that was
# interrupted resumes from its newest checkpoint. The test set is scored once per run, after its
# last epoch (digits train does that); nothing here reads it to choose anything.
#
# Environment: DIGITS (binary, default .build/release/digits), MNIST_DIR (default data/mnist),
# RANKS (default 2), EPOCHS (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/accuracy-runs.sh NAME "SEEDS" [train options...]}
seeds=${2:?usage: scripts/accuracy-runs.sh NAME "SEEDS" [train options...]}
shift 2
digits=${DIGITS:-.build/release/digits}
data=${MNIST_DIR:-data/mnist}
ranks=${RANKS:-2}
epochs=${EPOCHS:-30}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1

for seed in $seeds; do
  dir=runs/accuracy/$name/seed-$seed
  mkdir -p "$dir"
  if [ -f "$dir/metrics.jsonl" ] && tail -1 "$dir/metrics.jsonl" | grep -q '"final":true'; then continue; fi
  resume=()
  if [ -f "$dir/checkpoints/latest" ]; then resume=(--resume); fi
  start=$(date +%s)
  mpirun -np "$ranks" --oversubscribe "$digits" train --data-dir "$data" --threads 1 --epochs "$epochs" --seed "$seed" \
    --checkpoint-dir "$dir/checkpoints" --checkpoint-every 0 --keep 1 --metrics-out "$dir/metrics.jsonl" --progress never \
    "${resume[@]}" "$@" >> "$dir/train.log" 2>&1
  echo "$(( $(date +%s) - start ))" >> "$dir/wall-seconds"
done

# The row: per seed, the last epoch's validation accuracy and the final test accuracy.
python3 - "$name" $seeds <<'EOF'
import json, statistics, sys
name, seeds = sys.argv[1], sys.argv[2:]
rows = {k: [] for k in ("validation_accuracy", "test_accuracy", "ema_validation_accuracy", "ema_test_accuracy")}
for seed in seeds:
    lines = [json.loads(l) for l in open(f"runs/accuracy/{name}/seed-{seed}/metrics.jsonl") if l.strip()]
    epochs = [l for l in lines if not l.get("final")]
    final = [l for l in lines if l.get("final")][-1]
    for key in rows:
        source = final if "test" in key else epochs[-1]
        if key in source: rows[key].append(100 * source[key])
def cell(values):
    if not values: return "-"
    return f"{statistics.median(values):.2f}% ({min(values):.2f}-{max(values):.2f})"
print(f"| {name} | " + " | ".join(cell(rows[k]) for k in rows) + f" | {len(seeds)} |")
EOF
