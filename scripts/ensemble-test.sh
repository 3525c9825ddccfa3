#!/usr/bin/env bash
# Ensembles and test-time augmentation end to end: two tiny models trained for a few steps, then
# evaluate and predict with both (--checkpoint twice) and with --tta. The ensemble's accuracy and
# --logits-out are recomputed in Python from each member's own logits (the mean of the softmaxes);
# each member's accuracy is the one evaluate gives it alone; one checkpoint prints as before; under
# mpirun -np 2 the counts equal one process's; a checkpoint named twice, or one of another image
# size, is refused with one line naming it and a non-zero exit.
#
#   scripts/ensemble-test.sh BIN DATA_DIR      BIN: the digits binary; DATA_DIR: MNIST
#
# Works in a temporary directory (removed at the end). Needs python3 (standard library only); the
# mpirun check is skipped with a SKIP line when mpirun is not installed. Prints PASS/FAIL lines;
# exits 1 if any check failed.
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: scripts/ensemble-test.sh BIN DATA_DIR" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
data="$(cd "$2" && pwd)" || { echo "ensemble-test: no data directory $2" >&2; exit 2; }
[ -x "$bin" ] || { echo "ensemble-test: no binary at $1" >&2; exit 2; }
# mpirun refuses root unless told (CI runs as root).
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cd "$work"

passed=0; failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/     /' "$2" | tail -15; return 0; }

# Two small models of different shapes and seeds, and one of another image size (20x24).
spec_a=conv8k3p1-bn-relu-pool2-conv16k3p1-bn-relu-pool2-flatten-dense10
spec_b=conv6k5p2-relu-pool2-flatten-dense10
for run in "a $spec_a 1" "b $spec_b 2"; do
  set -- $run
  if ! "$bin" train --data-dir "$data" --model "$2" --seed "$3" --max-steps 60 --no-eval --progress never \
       --checkpoint-dir "$1" > "train-$1.out" 2>&1 || [ ! -f "$1/latest" ]; then
    fail "digits train --max-steps 60 (model $1)" "train-$1.out"
    echo "ensemble-test: $passed passed, $failed failed"; exit 1
  fi
done
a="a/$(cat a/latest)"; b="b/$(cat b/latest)"
python3 "$root/scripts/synthetic_idx.py" shapes > /dev/null 2>&1 \
  && "$bin" train --data-dir shapes --model seed-mlp --max-steps 5 --no-eval --progress never \
       --checkpoint-dir c > train-c.out 2>&1 || fail "a 20x24 model for the mismatch check" train-c.out
c="c/$(cat c/latest 2>/dev/null)"

limit=1000
ev=("$bin" evaluate --data-dir "$data" --limit "$limit")

# One checkpoint: the output of before (no ensemble lines, "checkpoint" and "model" in the JSON).
if "${ev[@]}" --checkpoint a > one.out 2>&1 && head -1 one.out | grep -q "^checkpoint $a  (model $spec_a, " \
   && ! grep -q -e '^ensemble' -e '^test-time' one.out \
   && "${ev[@]}" --checkpoint a --json > a.json 2>&1 && grep -q "^{\"checkpoint\":\"$a\",\"model\":\"$spec_a\",\"weights\":\"raw\",\"images\":$limit," a.json \
   && ! grep -q '"members"' a.json && "${ev[@]}" --checkpoint b --json > b.json 2>&1; then
  pass "one --checkpoint: evaluate prints as before (checkpoint line, JSON checkpoint, model and weights, no ensemble fields)"
else fail "evaluate with one --checkpoint" one.out; cat a.json; fi

# Each member's logits alone, and the ensemble's (log-probabilities), with and without --tta.
"${ev[@]}" --checkpoint a --logits-out a.npy > /dev/null 2>&1
"${ev[@]}" --checkpoint b --logits-out b.npy > /dev/null 2>&1
"${ev[@]}" --checkpoint a --checkpoint b --json --logits-out ab.npy > ab.json 2> ab.err
ab_status=$?
"${ev[@]}" --checkpoint a --checkpoint b > ab.out 2>&1
"${ev[@]}" --checkpoint a --checkpoint b --tta --json > abtta.json 2> abtta.err
tta_status=$?
"${ev[@]}" --checkpoint a --checkpoint b --tta > abtta.out 2>&1
"${ev[@]}" --checkpoint a --tta-views shifts --json > shifts.json 2> shifts.err

cat > check.py <<'EOF'
import json, math, struct, sys

def npy(path):
    raw = open(path, "rb").read()
    assert raw[:6] == b"\x93NUMPY", path
    length = raw[8] | raw[9] << 8
    header = raw[10:10 + length].decode()
    shape = tuple(int(x) for x in header.split("(")[1].split(")")[0].split(",") if x.strip())
    values = struct.unpack("<%df" % (shape[0] * shape[1]), raw[10 + length:])
    return [values[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]

def softmax(row):
    m = max(row); e = [math.exp(v - m) for v in row]; s = sum(e)
    return [v / s for v in e]

def first_max(p): return max(range(len(p)), key=lambda k: (p[k], -k))

check = sys.argv[1]
if check == "ensemble":
    la, lb, lab = npy("a.npy"), npy("b.npy"), npy("ab.npy")
    alone_a, alone_b, ens = (json.load(open(f)) for f in ("a.json", "b.json", "ab.json"))
    mean = [[(x + y) / 2 for x, y in zip(softmax(ra), softmax(rb))] for ra, rb in zip(la, lb)]
    # --logits-out of an ensemble: the log of the mean probabilities.
    worst = max(abs(math.log(max(p, 1e-30)) - v) for row, out in zip(mean, lab) for p, v in zip(row, out) if p > 1e-6)
    assert worst < 1e-4, "log-probabilities differ from the mean of the softmaxes by %g" % worst
    # The members, and their order, as given; each one's accuracy as evaluate gives it alone.
    members = ens["members"]
    assert [m["checkpoint"] for m in members] == [alone_a["checkpoint"], alone_b["checkpoint"]], members
    assert [m["accuracy"] for m in members] == [alone_a["accuracy"], alone_b["accuracy"]], members
    assert ens["tta_views"] == ["identity"] and ens["images"] == len(la) and "checkpoint" not in ens, ens
    # The ensemble's predictions are the argmax of the mean: its confusion matrix's column sums.
    predicted = [0] * len(mean[0])
    for row in mean: predicted[first_max(row)] += 1
    columns = [sum(r[k] for r in ens["confusion"]) for k in range(len(predicted))]
    assert columns == predicted, (columns, predicted)
    print("log-probabilities within %.1e of log(mean softmax); member accuracies %.4f, %.4f; ensemble %.4f"
          % (worst, members[0]["accuracy"], members[1]["accuracy"], ens["accuracy"]))
elif check == "tta":
    tta, shifts = json.load(open("abtta.json")), json.load(open("shifts.json"))
    assert tta["tta_views"] == ["identity", "scale 0.9", "scale 1.1"], tta["tta_views"]
    assert len(tta["members"]) == 2 and all(m["images"] == tta["images"] for m in tta["members"]), tta["members"]
    assert sum(map(sum, tta["confusion"])) == tta["images"] and 0 < tta["accuracy"] <= 1, tta
    assert shifts["tta_views"] == ["identity", "shift +1,0", "shift -1,0", "shift 0,+1", "shift 0,-1"] and len(shifts["members"]) == 1, shifts
    print("ensemble with --tta %.4f (members %.4f, %.4f)" % (tta["accuracy"], tta["members"][0]["accuracy"], tta["members"][1]["accuracy"]))
elif check == "mpi":
    one, two = json.load(open("abtta.json")), json.load(open("mpi.json"))
    assert two["ranks"] == 2 and one["confusion"] == two["confusion"], (one, two)
    assert [m["accuracy"] for m in one["members"]] == [m["accuracy"] for m in two["members"]]
    assert abs(one["loss"] - two["loss"]) < 1e-6, (one["loss"], two["loss"])
elif check == "predict":
    records = [json.loads(line) for line in open("predict.json")]
    assert len(records) == 4 and all(len(r["members"]) == 2 and "digit" in r for r in records), records
    for r in records:
        top = [t["probability"] for t in r["top3"]]
        assert top == sorted(top, reverse=True) and r["probability"] == top[0] and r["digit"] == r["top3"][0]["digit"], r
        # A mean is at most its largest term: the ensemble is never surer than its surest member.
        assert r["probability"] <= max(m["probability"] for m in r["members"]) + 1e-6, r
EOF

if [ $ab_status -eq 0 ] && python3 check.py ensemble > ensemble.check 2>&1; then
  pass "two checkpoints: $(cat ensemble.check)"
else cat ab.err >> ensemble.check; fail "evaluate --checkpoint a --checkpoint b (against the members' own logits)" ensemble.check; fi

if grep -q '^ensemble of 2 checkpoints (their probabilities averaged):$' ab.out \
   && grep -q "^  1\. $a  (model $spec_a, .*: accuracy [0-9.]*% ([0-9]* wrong), loss " ab.out \
   && grep -q "^  2\. $b  (model $spec_b, " ab.out && grep -q "^$limit test images: accuracy " ab.out \
   && grep -q '^test-time augmentation: 3 views (identity, scale 0.9, scale 1.1), for the ensemble and each member$' abtta.out; then
  pass "evaluate's text: each member with its accuracy, then the ensemble's; --tta names its 3 views"
else fail "evaluate's text for an ensemble" ab.out; cat abtta.out; fi

if [ $tta_status -eq 0 ] && python3 check.py tta > tta.check 2>&1; then
  pass "--tta: $(cat tta.check); --tta-views shifts alone turns it on (5 views)"
else cat abtta.err shifts.err >> tta.check; fail "evaluate --tta" tta.check; fi

if "${ev[@]}" --checkpoint a --checkpoint b --logits-out x.npy > logits.out 2>&1 \
   && grep -q "^wrote x.npy: the log of the averaged probabilities (log-softmax logits) of $limit test images, float32 ($limit, 10)$" logits.out; then
  pass "--logits-out of an ensemble says it holds the log of the averaged probabilities"
else fail "--logits-out message for an ensemble" logits.out; fi

# Under mpirun the test set is split across ranks: the same counts as one process.
if command -v mpirun > /dev/null 2>&1; then
  if mpirun -np 2 "${ev[@]}" --checkpoint a --checkpoint b --tta --json > mpi.json 2> mpi.err && python3 check.py mpi > mpi.check 2>&1; then
    pass "mpirun -np 2 evaluate, 2 checkpoints and --tta: the same confusion matrix and member accuracies as one process"
  else cat mpi.err mpi.json >> mpi.check; fail "evaluate under mpirun -np 2 with an ensemble" mpi.check; fi
else
  echo "SKIP mpirun -np 2: mpirun is not installed"
fi

# predict: the header says what it averages; every JSON record has each member's answer.
"$bin" sample-images --data-dir "$data" --count 4 --out png > /dev/null 2>&1
if "$bin" predict --checkpoint a --checkpoint b --tta png > predict.out 2>&1 \
   && grep -q '^ensemble of 2 checkpoints' predict.out && grep -q '^test-time augmentation: 3 views' predict.out \
   && [ "$(grep -c '^png/digit-' predict.out)" -eq 4 ] \
   && "$bin" predict --checkpoint a --checkpoint b --tta --json png > predict.json 2>&1 && python3 check.py predict > predict.check 2>&1 \
   && "$bin" predict --checkpoint a png > predict-one.out 2>&1 && head -1 predict-one.out | grep -qx "checkpoint $a"; then
  pass "predict with 2 checkpoints and --tta: 4 images, the ensemble named, each member's answer in the JSON; one checkpoint prints as before"
else cat predict.check >> predict.out 2>/dev/null; fail "predict with an ensemble" predict.out; fi

# Refusals: one line naming the checkpoint and the problem, non-zero exit.
"${ev[@]}" --checkpoint a --checkpoint a/latest > twice.out 2>&1; s1=$?
"${ev[@]}" --checkpoint a --checkpoint c > shape.out 2>&1; s2=$?
"$bin" predict --checkpoint a --checkpoint c png > shape-predict.out 2>&1; s3=$?
if [ $s1 -ne 0 ] && grep -qx "digits: error: $a: named twice (--checkpoint a and --checkpoint a/latest); an ensemble's members are different checkpoints" twice.out \
   && [ $s2 -ne 0 ] && grep -qx "digits: error: $c: takes 1x20x24 images, but $a (the first checkpoint) takes 1x28x28; an ensemble's members must read the same images" shape.out \
   && [ $s3 -ne 0 ] && grep -q "^digits: error: $c: takes 1x20x24 images" shape-predict.out; then
  pass "refused: \"$(cat twice.out)\"; \"$(cat shape.out)\""
else fail "refusals (exit statuses $s1, $s2, $s3)" twice.out; cat shape.out shape-predict.out; fi

# A heat map explains one model on the image itself: --explain with two checkpoints or --tta is refused.
"$bin" predict --checkpoint a --checkpoint b --explain ex png > explain2.out 2>&1; e1=$?
"$bin" predict --checkpoint a --tta --explain ex png > explain-tta.out 2>&1; e2=$?
if [ $e1 -ne 0 ] && [ $e2 -ne 0 ] && [ ! -d ex ] \
   && grep -q "^Error: --explain explains one model on the image itself: give one --checkpoint and no --tta$" explain2.out \
   && grep -q "^Error: --explain explains one model on the image itself" explain-tta.out; then
  pass "predict --explain with 2 checkpoints or --tta refused: \"$(head -1 explain2.out)\""
else fail "--explain with an ensemble (exit statuses $e1, $e2)" explain2.out; cat explain-tta.out; fi

echo "ensemble-test: $passed passed, $failed failed"
[ $failed -eq 0 ]
