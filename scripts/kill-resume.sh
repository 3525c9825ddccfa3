#!/usr/bin/env bash
# Kill-and-resume: runs of `mpirun -np 2 digits train` stopped at random moments, each resumed to
# the end, compared with one uninterrupted run.
#
#   scripts/kill-resume.sh [N]      N runs stopped by SIGTERM and N by kill -9 (default 10)
#
# SIGTERM goes to every rank, as Slurm (at a time limit or preemption) and srun deliver it: the ranks
# agree on a step through the gradient allreduce, write a checkpoint there and exit with status 143.
# kill -9 goes to one rank at random (the job dies with it); the resume starts from the last
# periodic checkpoint (--checkpoint-every 25). Every resumed run must end with the weights of the
# uninterrupted run, bit for bit (SHA-256 of parameters and buffers); a SIGTERM run may lose no step
# and a kill -9 run at most 25. Prints a Markdown table; exits non-zero on any failure.
#
# Environment: DIGITS (default .build/release/digits, built if missing), KILL_RESUME_SCRATCH
# (default a temporary directory, removed at the end).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs=${1:-10}
case "$runs" in ''|*[!0-9]*) echo "usage: scripts/kill-resume.sh [N]  (N runs per signal, a whole number)" >&2; exit 2 ;; esac
bin=${DIGITS:-.build/release/digits}
[ -x "$bin" ] || swift build -c release --product digits >/dev/null
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1
scratch=${KILL_RESUME_SCRATCH:-$(mktemp -d)}
mkdir -p "$scratch"
[ -z "${KILL_RESUME_SCRATCH:-}" ] && trap 'rm -rf "$scratch"' EXIT

every=25
model="conv8k3p1-bn-relu-pool2-conv16k3p1-bn-relu-pool2-flatten-drop0.25-dense10"
train=("$bin" train --data-dir "${MNIST_DIR:-data/mnist}" --progress never --no-eval --model "$model" --max-steps 800
       --checkpoint-every "$every" --keep 2 --gradient-compression fp16 --bucket-kb 4)
digest_of() { grep -m1 'weights sha256' "$1" | awk '{ print $5 }'; }

start=$(date +%s.%N)
mpirun -np 2 "${train[@]}" --checkpoint-dir "$scratch/reference" --digest > "$scratch/reference.out" 2>&1
seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
reference=$(digest_of "$scratch/reference.out")
[ -n "$reference" ] || { echo "kill-resume: the uninterrupted run failed" >&2; tail -5 "$scratch/reference.out" >&2; exit 1; }
echo "uninterrupted: 800 steps in ${seconds} s, weights sha256 ${reference:0:16}…"
echo
echo "| run | signal | after (s) | steps begun | resumed from step | steps lost | exit status | final weights |"
echo "|---|---|---|---|---|---|---|---|"

failures=0
for i in $(seq $((2 * runs))); do
  if [ "$i" -le "$runs" ]; then how=SIGTERM; else how="kill -9"; fi
  dir="$scratch/run$i"
  rm -rf "$dir" "$scratch/samples$i".*
  # A moment inside the run, from start-up (before the first step) to 90% of its length, spread
  # evenly over the runs of each kind (golden-ratio sequence) and in another order for each.
  delay=$(awk -v s="$i" -v t="$seconds" 'BEGIN { f = s * 0.6180339887; f -= int(f); printf "%.2f", 0.5 + f * (0.9 * t - 0.5) }')
  mpirun -np 2 "${train[@]}" --checkpoint-dir "$dir" --record-samples "$scratch/samples$i" > "$scratch/cut$i.out" 2>&1 &
  job=$!
  sleep "$delay"
  # The ranks only (not mpirun, whose own answer to SIGTERM is to kill them).
  ranks=$(pgrep -f -- "^$bin train .*--checkpoint-dir $dir " || true)
  if [ "$how" = SIGTERM ]; then
    [ -n "$ranks" ] && kill -TERM $ranks 2>/dev/null || true
  else
    victim=$(shuf -n1 --random-source=<(yes "$i") <<<"$ranks" || true)
    [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null || true
  fi
  status=0; wait "$job" || status=$?
  done_steps=$(cat "$scratch/samples$i.rank0" 2>/dev/null | wc -l)
  if [ -f "$dir/latest" ] || ls "$dir"/step-*.safetensors > /dev/null 2>&1; then
    mpirun -np 2 "${train[@]}" --checkpoint-dir "$dir" --resume --digest > "$scratch/resume$i.out" 2>&1 || true
    from=$(sed -nE 's/^resumed from .*step-0*([0-9]+)\.safetensors.*/\1/p' "$scratch/resume$i.out")
  else
    # Stopped before any checkpoint existed: the same command starts again from step 0.
    mpirun -np 2 "${train[@]}" --checkpoint-dir "$dir" --digest > "$scratch/resume$i.out" 2>&1 || true
    from=0
  fi
  from=${from:-0}
  lost=$(( done_steps - from ))
  final=$(digest_of "$scratch/resume$i.out")
  verdict="equal"; [ "$final" = "$reference" ] || verdict="DIFFERENT (${final:-none})"
  ok=1
  [ "$final" = "$reference" ] || ok=0
  if [ "$how" = SIGTERM ]; then
    # Stopped cleanly (143 from each rank, which mpirun passes on) unless the run had already ended.
    if [ "$done_steps" -lt 800 ]; then
      [ "$lost" -eq 0 ] || ok=0
      grep -q "interrupted by SIGTERM after step $done_steps" "$scratch/cut$i.out" || ok=0
    fi
  else
    [ "$lost" -le "$every" ] || ok=0
  fi
  [ "$ok" = 1 ] || { failures=$((failures + 1)); verdict="$verdict FAIL"; }
  echo "| $i | $how | $delay | $done_steps | $from | $lost | $status | $verdict |"
done
echo
if [ "$failures" -eq 0 ]; then
  echo "kill-resume: all $((2 * runs)) runs resumed to the uninterrupted weights; SIGTERM lost no step, kill -9 at most $every"
else
  echo "kill-resume: $failures of $((2 * runs)) runs FAILED (outputs in $scratch)" >&2
  [ -z "${KILL_RESUME_SCRATCH:-}" ] && trap - EXIT
  exit 1
fi
