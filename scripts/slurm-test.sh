#!/usr/bin/env bash
# cluster/digits.sbatch under a real Slurm on this machine: a job stopped by its time limit's signal
# writes a checkpoint, the resubmitted job resumes from it, and ends with the weights of an
# uninterrupted job bit for bit.
#
#   scripts/slurm-test.sh DIGITS_BINARY DATA_DIR
#
# Needs root and Debian's packages: slurmctld slurmd slurm-client munge libpmix-dev. The first four
# bring slurm-wlm-basic-plugins, which holds srun's pmix plugin; that plugin opens
# /usr/lib/<arch>/pmix2/lib/libpmix.so, a name only libpmix-dev installs (libopenmpi-dev depends on
# it). Without them it prints "slurm: SKIPPED (…)" and exits 3, which is not a pass.
# Exit 0: passed; 1: failed (the jobs' outputs and the daemons' logs are kept, and named).
# SLURM_TEST_KEEP=1 keeps them after a pass too.
#
# The steps, on a one-node Slurm of 2 CPUs (cluster/slurm-local.sh, stopped again on any exit):
#  1. job 1: 2 ranks, --time=1 --signal=USR1@55, a plan far longer than a minute. slurmctld looks at
#     time limits every 30 s (counted from its start), so the signal comes 5 to 35 s after the job
#     starts, mid-run. The job must print digits' "interrupted by SIGUSR1 after step N" line, leave
#     step-N as checkpoints/latest and end before its limit, FAILED with exit code 138.
#  2. job 2: the same script and options resubmitted, plus --stop-at-step N+300 (the plan is unchanged;
#     it only ends the run there) and a longer --time, so that no second signal comes: it must resume
#     from step N and complete.
#  3. job 3: the same, uninterrupted from step 0 in a directory of its own, stopping at the same step.
#     Jobs 2 and 3 must print the same weights SHA-256 (`--digest`) on both ranks.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ $# -ne 2 ]; then echo "usage: scripts/slurm-test.sh DIGITS_BINARY DATA_DIR" >&2; exit 2; fi
bin="$(cd "$(dirname "$1")" 2>/dev/null && pwd)/$(basename "$1")"
data="$(cd "$2" 2>/dev/null && pwd)" || data="$2"

skip() { echo "slurm: SKIPPED ($*)"; exit 3; }
[ "$(id -u)" -eq 0 ] || skip "not root: the Slurm and munge daemons need root"
for tool in munged mungekey slurmctld slurmd sbatch srun squeue sinfo scontrol scancel; do
  command -v "$tool" > /dev/null || skip "$tool not found: apt-get install slurmctld slurmd slurm-client munge libpmix-dev"
done
compgen -G "/usr/lib/*/pmix2/lib/libpmix.so" > /dev/null || skip "no libpmix.so for srun's pmix plugin: apt-get install libpmix-dev"
[ -x "$bin" ] || { echo "slurm: FAILED (no digits binary at $1)"; exit 1; }
[ -d "$data" ] || { echo "slurm: FAILED (no MNIST directory at $2)"; exit 1; }

started=$(date +%s)
scratch=$(mktemp -d /tmp/slurm-test.XXXXXX)
export SLURM_LOCAL_DIR="$scratch/slurm"
failed=0
cleanup() {
  "$root/cluster/slurm-local.sh" down > "$scratch/down.log" 2>&1 || { cat "$scratch/down.log"; failed=1; }
  if [ "$failed" -eq 0 ] && [ -z "${SLURM_TEST_KEEP:-}" ]; then rm -rf "$scratch"; else echo "slurm: job outputs and daemon logs kept in $scratch"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() { failed=1; echo "slurm: FAILED ($*)"; exit 1; }

"$root/cluster/slurm-local.sh" up > "$scratch/up.log" 2>&1
status=$?
up_at=$(date +%s)
case $status in
  0) ;;
  3) failed=0; skip "$(tail -1 "$scratch/up.log")" ;;
  *) cat "$scratch/up.log"; fail "the one-node Slurm did not start; logs in $SLURM_LOCAL_DIR/log" ;;
esac
export SLURM_CONF="$SLURM_LOCAL_DIR/slurm.conf"
echo "slurm: a one-node Slurm is up ($(sinfo --version)); sinfo:"
sinfo | sed 's/^/    /'

# Options every job shares; the #SBATCH lines of the script are for a real cluster.
export DIGITS="$bin" DATA_DIR="$data" MODEL=conv8k3p1-bn-relu-pool2-flatten-dense10 EPOCHS=200 \
       CHECKPOINT_EVERY=1000 THREADS=1 OPENBLAS_NUM_THREADS=1
job_options=(--parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --signal=USR1@55)
train_options=(--no-eval --progress never --digest)
cd "$root" || fail "cannot enter $root"

field() { scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p"; }
wait_job() { # until job $1 has ended (at most $2 s); prints its final state
  local state=""
  for _ in $(seq $(($2 * 4))); do
    state=$(field "$1" JobState)
    # Only final states: while Slurm delivers --signal the state reads SIGNALING, and so on.
    case "$state" in
      COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE) echo "$state"; return 0 ;;
    esac
    sleep 0.25
  done
  echo "still ${state:-unknown} after $2 s"
}
digest() { # the weights SHA-256 when every rank printed the same one
  local sums
  sums=$(sed -nE 's/^rank [0-9]+ weights sha256 ([0-9a-f]{64})$/\1/p' "$1" | sort -u)
  [ "$(grep -c 'weights sha256' "$1")" -eq 2 ] && [ "$(wc -l <<<"$sums")" -eq 1 ] && echo "$sums"
}

# 1. Stopped by the signal that comes before the time limit. slurmctld's first look at time limits
# was 30 s after it started (seen with Debian's 22.05): a job submitted 18 s after `up` is signalled
# about 10 s into its run rather than 27, and job 3 repeats fewer steps. Were the looks elsewhere,
# the signal would come at most 30 s later: slower, no less sure.
ckpt="$scratch/checkpoints"
sleep $((up_at + 18 - $(date +%s))) 2> /dev/null || true
job1=$(CHECKPOINT_DIR="$ckpt" sbatch "${job_options[@]}" --time=1 --output="$scratch/job1.out" \
       cluster/digits.sbatch "${train_options[@]}") || fail "sbatch refused job 1"
for _ in $(seq 40); do [ "$(field "$job1" JobState)" = RUNNING ] && break; sleep 0.25; done
sleep 2
echo "slurm: job $job1 submitted with --time=1 --signal=USR1@55; squeue while it runs:"
squeue --format="%.7i %.9P %.8j %.6u %.2t %.8M %.10l %.6D %.5C %R" | sed 's/^/    /'
state=$(wait_job "$job1" 120)
out1="$scratch/job1.out"
line=$(grep -m1 '^interrupted by SIGUSR1 after step' "$out1")
[ -n "$line" ] || fail "job $job1 ($state) did not print an 'interrupted by SIGUSR1' line; see $out1"
step=$(sed -nE 's/^interrupted by SIGUSR1 after step ([0-9]+) .*/\1/p' <<<"$line")
file=$(printf 'step-%08d.safetensors' "$step")
[[ "$line" == *"checkpoint $ckpt/$file written"* ]] || fail "job $job1 names another checkpoint: $line"
[ -s "$ckpt/$file" ] || fail "job $job1 said it wrote $ckpt/$file, which is missing"
[ "$(cat "$ckpt/latest" 2>/dev/null)" = "$file" ] || fail "$ckpt/latest is not $file"
grep -q '^digits.sbatch: stopped on a signal (status 138)' "$out1" || fail "digits.sbatch did not report the stop; see $out1"
exit_code=$(field "$job1" ExitCode)
runtime=$(field "$job1" RunTime)
if [ "$state" != FAILED ] || [ "$exit_code" != 138:0 ]; then
  fail "job $job1 ended $state with exit code $exit_code, not FAILED 138:0"
fi
[[ "$runtime" < "00:01:00" ]] || fail "job $job1 ran $runtime: it reached its time limit"
echo "slurm: PASSED job $job1 stopped by the time-limit signal after $runtime of a 1-minute limit, $state $exit_code:"
echo "    $line"

# 2. The same script resubmitted: it resumes, and runs 300 steps more.
stop=$((step + 300))
job2=$(CHECKPOINT_DIR="$ckpt" sbatch "${job_options[@]}" --time=5 --output="$scratch/job2.out" \
       cluster/digits.sbatch "${train_options[@]}" --stop-at-step "$stop") || fail "sbatch refused job 2"
state=$(wait_job "$job2" 120)
[ "$state" = COMPLETED ] || fail "job $job2 ended $state; see $scratch/job2.out"
grep -qE "^resumed from .*$file" "$scratch/job2.out" || fail "job $job2 did not resume from $file; see $scratch/job2.out"
resumed=$(digest "$scratch/job2.out") || fail "job $job2's ranks did not print one weights digest"
echo "slurm: PASSED job $job2, resubmitted, resumed from $file and stopped at step $stop: weights sha256 $resumed"

# 3. Uninterrupted, from step 0 to the same step, under the same Slurm, world size and options.
job3=$(CHECKPOINT_DIR="$scratch/uninterrupted" sbatch "${job_options[@]}" --time=5 --output="$scratch/job3.out" \
       cluster/digits.sbatch "${train_options[@]}" --stop-at-step "$stop") || fail "sbatch refused job 3"
state=$(wait_job "$job3" 150)
[ "$state" = COMPLETED ] || fail "job $job3 ended $state; see $scratch/job3.out"
! grep -qE '^(resumed|interrupted)' "$scratch/job3.out" || fail "job $job3 was not a run from step 0; see $scratch/job3.out"
reference=$(digest "$scratch/job3.out") || fail "job $job3's ranks did not print one weights digest"
[ "$resumed" = "$reference" ] || fail "interrupted and resumed: $resumed; uninterrupted: $reference"
echo "slurm: PASSED job $job3, uninterrupted to step $stop: weights sha256 $reference, the same bit for bit"
echo "slurm: PASSED in $(($(date +%s) - started)) s (2 ranks by srun --mpi=pmix)"
