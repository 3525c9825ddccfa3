#!/usr/bin/env bash
# Honest model selection and the accuracy tools, end to end on short runs: a validation split held
# out of the training set scores every epoch and the test set is scored once, after the last
# epoch; --ema's average is scored beside the weights and a checkpoint names the better one on
# validation, which evaluate then uses; `train --seeds` under mpirun trains members side by side
# in rank groups, sharing one validation split; `crossval --folds` reports mean ± sd per fold.
#
#   scripts/accuracy-test.sh BIN DATA_DIR      BIN: the digits binary; DATA_DIR: MNIST
#
# Works in a temporary directory (removed at the end). Prints PASS/FAIL lines; exits 1 if any failed.
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: scripts/accuracy-test.sh BIN DATA_DIR" >&2; exit 2; }
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
data="$(cd "$2" && pwd)" || { echo "accuracy-test: no data directory $2" >&2; exit 2; }
[ -x "$bin" ] || { echo "accuracy-test: no binary at $1" >&2; exit 2; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cd "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
model=conv8k3p1-bn-relu-pool2-conv16k3p1-bn-relu-pool2-flatten-drop0.2-dense10

passed=0; failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/     /' "$2" | tail -15; return 0; }
json() { python3 -c "import json, sys; $1" "${@:2}"; }

# 1. Validation every epoch, the test set once at the end, with the weight average beside.
if "$bin" train --data-dir "$data" --model "$model" --epochs 2 --batch-size 512 --validation 2000 --ema 0.99 \
     --label-smoothing 0.1 --augment default --augment-off-epochs 1 --checkpoint-dir ck --metrics-out m.jsonl > train.out 2>&1 \
   && grep -q '^validation: 2000 training images held out (chosen by seed 1)' train.out \
   && grep -q 'val loss  val acc  ema val acc' train.out \
   && [ "$(grep -c '^test: ' train.out)" -eq 1 ] && [ "$(grep -c '^test, weight average: ' train.out)" -eq 1 ] \
   && json 'import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
epochs, final = lines[:-1], lines[-1]
assert len(epochs) == 2 and all("validation_accuracy" in l and "ema_validation_accuracy" in l for l in epochs)
assert not any("test_accuracy" in l for l in epochs), "an epoch was scored on the test set"
assert final["final"] and final["test_images"] == 10000 and final["selected_weights"] in ("ema", "raw")
assert 0.8 < final["test_accuracy"] <= 1 and 0.8 < final["ema_test_accuracy"] <= 1' m.jsonl 2> check.err; then
  pass "train: 2,000 validation images scored each epoch (live and ema), the test set once, after the last epoch ($(grep '^test: ' train.out | cut -d' ' -f2))"
else cat check.err >> train.out 2>/dev/null; fail "train with --validation 2000 --ema" train.out; fi

# 2. The checkpoint names the weights chosen on validation, and evaluate uses them: its accuracy is
#    the run's final test figure for those weights.
chosen=$(json 'import json, sys; print(json.loads(open(sys.argv[1]).readlines()[-1])["selected_weights"])' m.jsonl 2>/dev/null)
expected=$(json 'import json, sys; f = json.loads(open(sys.argv[1]).readlines()[-1]); print(round(100 * f["ema_test_accuracy" if sys.argv[2] == "ema" else "test_accuracy"], 2))' m.jsonl "$chosen" 2>/dev/null)
"$bin" evaluate --data-dir "$data" --checkpoint ck --json > eval.json 2> eval.err
got=$(json 'import json, sys; print(round(100 * json.load(open(sys.argv[1]))["accuracy"], 2))' eval.json 2>/dev/null)
if [ -n "$got" ] && [ "$got" = "$expected" ] && "$bin" inspect ck/latest 2>/dev/null | grep -q "selected_weights.*$chosen"; then
  pass "evaluate uses the $chosen weights the run chose on validation: $got%, as train reported"
else fail "evaluate of the chosen weights: got ${got:-?}%, train said ${expected:-?}% ($chosen)" eval.err; fi

# 3. A bad --validation is refused before anything runs.
if "$bin" train --data-dir "$data" --validation 60000 --max-steps 1 --no-checkpoints > bad.out 2>&1; then
  fail "--validation 60000 (the whole training set) was accepted" bad.out
elif grep -q "would leave none to train on" bad.out; then pass "--validation 60000 refused: it would leave nothing to train on"
else fail "--validation 60000's message" bad.out; fi

# 4. Ensemble members: 2 seeds on 2 ranks train side by side, one rank each, on the same validation images.
if mpirun -np 2 "$bin" train --data-dir "$data" --model "$model" --seeds 3,4 --max-steps 60 --validation 1000 \
     --checkpoint-dir members --metrics-out members.jsonl > members.out 2>&1 \
   && grep -q '^member 1 of 2: seed 3, ranks 0-0 of 2' members.out && grep -q '^member 2 of 2: seed 4, ranks 1-1 of 2' members.out \
   && [ -f members/seed-3/latest ] && [ -f members/seed-4/latest ] && [ -f members.seed-3.jsonl ] && [ -f members.seed-4.jsonl ] \
   && [ "$("$bin" inspect members/seed-3/latest | grep -o 'validation split.*')" = "$("$bin" inspect members/seed-4/latest | grep -o 'validation split.*')" ] \
   && "$bin" inspect members/seed-4/latest | grep -q 'validation split.*1000 records, seed 3'; then
  pass "train --seeds 3,4 under mpirun -np 2: one member per rank, both holding out the validation images of seed 3"
else fail "train --seeds under mpirun" members.out; fi

# 4b. --weights ema on a checkpoint trained without --ema: one line naming it; --weights raw on one with an average works.
if "$bin" evaluate --data-dir "$data" --checkpoint members/seed-3 --weights ema --limit 100 > noavg.out 2>&1; then
  fail "evaluate --weights ema on a checkpoint without an average succeeded" noavg.out
elif grep -q '^digits: error: .*members/seed-3/step-.*holds no weight average' noavg.out \
     && "$bin" evaluate --data-dir "$data" --checkpoint ck --weights raw --limit 100 --json > raw.json 2>&1 \
     && grep -q '"weights":"raw"' raw.json; then
  pass "--weights ema without an average is refused naming the checkpoint; --weights raw reads the live weights"
else fail "--weights" noavg.out; fi

# 5. Cross-validation: 3 folds on 2 ranks (groups finish at different times), mean ± sd of the folds.
if mpirun -np 2 "$bin" crossval --folds 3 --data-dir "$data" --model "$model" --max-steps 40 --no-checkpoints \
     --checkpoint-dir cv > cv.out 2>&1 \
   && [ "$(grep -cE '^ +[123] +[0-9.]+%$' cv.out)" -eq 3 ] && grep -qE '^mean ± standard deviation: [0-9.]+% ± [0-9.]+$' cv.out \
   && [ "$(grep -c '^validation: 20000 training images held out' cv.out)" -eq 3 ] && ! grep -q '^test: ' cv.out; then
  pass "crossval --folds 3 under mpirun -np 2: $(grep '^mean' cv.out | sed 's/mean ± standard deviation: //'), the test set untouched"
else fail "crossval --folds 3" cv.out; fi

echo "accuracy-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
