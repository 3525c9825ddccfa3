#!/usr/bin/env bash
# The robustness report end to end: a tiny model trained 100 steps with the appearance variations of
# --augment (thickness, blur, lowres, contrast, noise); `evaluate --robustness --limit 500 --json
# --robustness-plot` names every perturbation with an accuracy per feed (straight in: null only for
# the inverted scan) and the worst of each, and draws a well-formed SVG with a bar per number; the
# table form and the example grid; the same counts from two ranks under mpirun; augment-preview of the
# new keys; bad --augment values, a plot not named .svg, --robustness with --logits-out or with
# --tta refused in one line each, with a non-zero exit.
#
#   scripts/robustness-test.sh BIN DATA_DIR      BIN: the digits binary; DATA_DIR: MNIST
#
# Works in a temporary directory (removed at the end). Needs python3 (JSON and XML checks); the
# two-rank check runs when mpirun is on the PATH, else it is skipped with a SKIP line. Prints
# PASS/FAIL lines; exits 1 if any check failed.
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: scripts/robustness-test.sh BIN DATA_DIR" >&2; exit 2; }
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
data="$(cd "$2" && pwd)" || { echo "robustness-test: no data directory $2" >&2; exit 2; }
[ -x "$bin" ] || { echo "robustness-test: no binary at $1" >&2; exit 2; }
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cd "$work"

passed=0; failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/     /' "$2" | tail -15; return 0; }

perturbations="clean thick thin blur faint grey-paper noise lowres-16 lowres-12 lowres-8 shift rotation inverted"
augment="default,thickness=0.3,blur=0.2,lowres=0.2,contrast=0.3,noise=0.3"

# A tiny model, 100 steps, with every new augmentation key.
if "$bin" train --data-dir "$data" --model conv8k3p1-bn-relu-pool2-conv16k3p1-bn-relu-pool2-flatten-dense10 \
     --max-steps 100 --no-eval --augment "$augment" --checkpoint-dir ck > train.out 2>&1 && [ -f ck/latest ] \
   && grep -q "^augmentation: rotation=10.0,scale=0.1,shift=2.0,thickness=0.3,blur=0.2,lowres=0.2,contrast=0.3,noise=0.3 " train.out; then
  pass "train --max-steps 100 --augment $augment (the augmentation line names every key)"
else
  fail "train with the appearance variations" train.out
  echo "robustness-test: $passed passed, $failed failed"; exit 1
fi

# The report as JSON, and its plot.
if "$bin" evaluate --checkpoint ck --data-dir "$data" --robustness --limit 500 --json --robustness-plot plot.svg > report.json 2> report.err \
   && python3 - report.json "$perturbations" > check.out 2>&1 <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
names = sys.argv[2].split()
assert report["images"] == 500, report["images"]
rows = {p["name"]: p for p in report["perturbations"]}
assert [p["name"] for p in report["perturbations"]] == names, list(rows)
for name, p in rows.items():
    assert p["description"], name
    for feed in ("raw_accuracy", "preprocessed_accuracy"):
        a = p[feed]
        if name == "inverted" and feed == "raw_accuracy":
            assert a is None, (name, feed, a)
        else:
            assert isinstance(a, float) and 0 <= a <= 1 and (a * 500) % 1 < 1e-6, (name, feed, a)
    assert isinstance(p["preprocessed_refused"], int) and p["preprocessed_refused"] >= 0
assert rows["clean"]["raw_accuracy"] > 0.5, rows["clean"]
for feed in ("raw", "preprocessed"):
    worst = report["worst_" + feed]
    candidates = [p for p in report["perturbations"] if p["name"] != "clean" and p[feed + "_accuracy"] is not None]
    assert worst["accuracy"] == min(p[feed + "_accuracy"] for p in candidates), (feed, worst)
    assert rows[worst["name"]][feed + "_accuracy"] == worst["accuracy"], worst
print(len(rows), "perturbations; worst raw", report["worst_raw"], "worst preprocessed", report["worst_preprocessed"])
EOF
then
  pass "evaluate --robustness --limit 500 --json: $(cat check.out)"
else cat report.err check.out >> report.json 2>/dev/null; fail "evaluate --robustness --json" report.json; fi

# The plot: well-formed SVG, one bar (a rect with a title) per number, every perturbation labelled.
if python3 - plot.svg "$perturbations" > svg.out 2>&1 <<'EOF'
import sys, xml.dom.minidom
svg = xml.dom.minidom.parse(sys.argv[1]).documentElement
assert svg.tagName == "svg", svg.tagName
bars = [r for r in svg.getElementsByTagName("rect") if r.getElementsByTagName("title")]
names = sys.argv[2].split()
assert len(bars) == 2 * len(names) - 1, len(bars)   # the inverted scan has no straight-in bar
labels = [t.firstChild.data for t in svg.getElementsByTagName("text") if t.firstChild is not None]
missing = [n for n in names if n not in labels]
assert not missing, missing
for r in bars:
    assert 0 <= float(r.getAttribute("height")) <= 260, r.toxml()
print(len(bars), "bars")
EOF
then pass "--robustness-plot: a well-formed SVG, $(cat svg.out), every perturbation labelled"
else fail "--robustness-plot SVG" svg.out; fi

# The table, and the example grid.
if "$bin" evaluate --checkpoint ck --data-dir "$data" --robustness --limit 500 --robustness-examples examples.png > table.out 2>&1 \
   && [ "$(grep -c '^| ' table.out)" -eq 15 ] && grep -q "^worst straight in: " table.out \
   && grep -q "^worst through predict's preprocessing: " table.out && grep -q '^| inverted | .* | n/a | ' table.out \
   && [ "$(head -c 8 examples.png | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; then
  pass "evaluate --robustness: a table of 13 perturbations (inverted n/a straight in), the worst of each feed, a PNG of examples"
else fail "evaluate --robustness table" table.out; fi

# Two ranks score their shards and sum: the same counts as one process.
if command -v mpirun > /dev/null 2>&1; then
  export OMPI_MCA_rmaps_base_oversubscribe=1
  if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  if mpirun -np 2 "$bin" evaluate --checkpoint ck --data-dir "$data" --robustness --limit 500 --json > two.json 2> two.err \
     && python3 -c "
import json, sys
one, two = json.load(open('report.json')), json.load(open('two.json'))
assert one['perturbations'] == two['perturbations'], 'the counts differ between 1 and 2 ranks'
" > two.out 2>&1; then
    pass "mpirun -np 2 evaluate --robustness: the same accuracies as one process"
  else cat two.err two.out >> two.json 2>/dev/null; fail "evaluate --robustness under mpirun -np 2" two.json; fi
else
  echo "SKIP evaluate --robustness under mpirun: no mpirun on the PATH"
fi

# augment-preview draws the new keys.
if "$bin" augment-preview --data-dir "$data" --augment "none,thickness=1,noise=0.5" --rows 3 --versions 4 --out preview.png > preview.out 2>&1 \
   && grep -q "augmentation rotation=0.0,scale=0.0,shift=0.0,thickness=1.0,noise=0.5" preview.out && [ -s preview.png ]; then
  pass "augment-preview --augment none,thickness=1,noise=0.5"
else fail "augment-preview with the new keys" preview.out; fi

# Mistakes: one line naming the problem, a non-zero exit.
"$bin" train --data-dir "$data" --max-steps 1 --augment "noise=2" --checkpoint-dir bad > noise.out 2>&1; s1=$?
"$bin" evaluate --checkpoint ck --data-dir "$data" --robustness --limit 10 --robustness-plot plot.png > png.out 2>&1; s2=$?
"$bin" evaluate --checkpoint ck --data-dir "$data" --robustness --limit 10 --logits-out l.npy > logits.out 2>&1; s3=$?
"$bin" evaluate --checkpoint ck --tta --data-dir "$data" --robustness --limit 10 > two-ck.out 2>&1; s4=$?
if [ $s1 -ne 0 ] && grep -q "noise=2 in --augment 'noise=2' is a probability; it must be at most 1" noise.out \
   && [ $s2 -ne 0 ] && grep -q "^digits: error: plot.png: the plot is an SVG drawing; name the file .svg$" png.out \
   && [ $s3 -ne 0 ] && grep -q "^digits: error: --robustness scores perturbed images; run --misclassified and --logits-out without it$" logits.out \
   && [ $s4 -ne 0 ] && grep -q "^digits: error: --robustness scores one model on each perturbed image: give one --checkpoint and no --tta$" two-ck.out; then
  pass "refused in one line: --augment noise=2, --robustness-plot plot.png, --robustness with --logits-out or --tta"
else fail "bad options (exit statuses $s1, $s2, $s3, $s4)" noise.out; cat png.out logits.out two-ck.out; fi

echo "robustness-test: $passed passed, $failed failed"
[ $failed -eq 0 ]
