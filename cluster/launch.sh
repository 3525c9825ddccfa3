#!/usr/bin/env bash
# Starts `digits train` across the hosts of a hostfile, with Open MPI settings for TCP clusters.
# Run it on the first host of the hostfile (rank 0's host): that is where checkpoints are written,
# and where this script looks for one to resume from.
#
#   cluster/launch.sh [digits train options…]
#
# Environment (all optional):
#   HOSTFILE        hostfile (default cluster/hostfile); NP  ranks (default: the slots in it)
#   IFACE           network to use: an interface name (eth0) or a CIDR (192.168.1.0/24)
#   THREADS         kernel threads per rank, digits train --threads (default 1: one rank per core, with
#                   slots = cores in the hostfile; the default from cluster/README.md section 3). For one
#                   rank per node: slots=1 and THREADS = the node's cores (4 on a Pi 4 or 5)
#   MAP_BY, BIND    --map-by and --bind-to (default slot, or slot:PE=THREADS so that each rank is bound to
#                   THREADS cores rather than one; and core. BIND=none when hosts share cores)
#   DIGITS          the binary (default bin/digits as cluster/deploy.sh puts it, else .build/release/digits)
#   DATA_DIR        MNIST directory on every host (default data/mnist)
#   CHECKPOINT_DIR  checkpoints on rank 0's host (default checkpoints); --resume is added when it holds one
#   RSH_AGENT       how mpirun starts its daemons (default ssh; cluster/simulate.sh makes one for namespaces)
#   MPIRUN_EXTRA    more mpirun arguments
# Unless given, it adds --gradient-compression fp16 --bucket-kb 256 (halved traffic, overlapped).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
HOSTFILE="${HOSTFILE:-cluster/hostfile}"
[ -f "$HOSTFILE" ] || { echo "launch: no hostfile at $HOSTFILE (copy cluster/hostfile.example)" >&2; exit 1; }
NP="${NP:-$(awk '!/^#/ && NF { n = 1; for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) { split($i, a, "="); n = a[2] } s += n } END { print s }' "$HOSTFILE")}"
THREADS="${THREADS:-1}"
# --bind-to core alone pins a rank and all its threads to one core (Open MPI 4.1: a 2-thread rank got
# Cpus_allowed_list 0); PE=THREADS gives each rank THREADS cores of its own.
if [ "$THREADS" -gt 1 ]; then default_map_by="slot:PE=$THREADS"; else default_map_by=slot; fi
if [ -x "$root/bin/digits" ]; then default_binary="$root/bin/digits"; else default_binary="$root/.build/release/digits"; fi
DIGITS="${DIGITS:-$default_binary}"
DATA_DIR="${DATA_DIR:-$root/data/mnist}"
CHECKPOINT_DIR="${CHECKPOINT_DIR:-$root/checkpoints}"
args=(--hostfile "$HOSTFILE" -np "$NP"
      --mca btl tcp,self,vader
      --map-by "${MAP_BY:-$default_map_by}" --bind-to "${BIND:-core}")
if [ -n "${IFACE:-}" ]; then args+=(--mca btl_tcp_if_include "$IFACE" --mca oob_tcp_if_include "$IFACE"); fi
if [ -n "${RSH_AGENT:-}" ]; then args+=(--mca plm_rsh_agent "$RSH_AGENT"); fi
if [ "$(id -u)" -eq 0 ]; then args+=(--allow-run-as-root); fi
# A lost host must end the job, not leave it waiting: abort when any rank fails, and notice a
# silent daemon (link cut, power lost) within ~25 s by TCP keepalive on mpirun's control links.
args+=(--mca orte_abort_on_non_zero_status 1
       --mca oob_tcp_keepalive_time 10 --mca oob_tcp_keepalive_intvl 5 --mca oob_tcp_keepalive_probes 3)
# shellcheck disable=SC2206
[ -n "${MPIRUN_EXTRA:-}" ] && args+=(${MPIRUN_EXTRA})

train=("$DIGITS" train --data-dir "$DATA_DIR" --threads "$THREADS" --checkpoint-dir "$CHECKPOINT_DIR")
# Over Ethernet the gradient exchange is the bottleneck: fp16 on the wire, in buckets overlapped
# with backward (measured in docs/performance.md: scripts/bench.sh wire), unless the options say otherwise.
[[ " $* " == *" --gradient-compression"* ]] || train+=(--gradient-compression fp16)
[[ " $* " == *" --bucket-kb"* ]] || train+=(--bucket-kb 256)
train+=("$@")
if [ -f "$CHECKPOINT_DIR/latest" ] && [[ " $* " != *" --resume"* ]]; then
  echo "launch: resuming from $CHECKPOINT_DIR (latest: $(cat "$CHECKPOINT_DIR/latest"))"
  train+=(--resume)
fi
echo "launch: $NP rank(s) from $HOSTFILE, $THREADS kernel thread(s) each"
# mpirun in a session of its own, so a Ctrl-C reaches only this script: the first SIGINT/SIGTERM
# becomes SIGUSR1 for mpirun, which forwards it to every rank (each finishes its step, rank 0
# writes a checkpoint, all exit 138); mpirun's own answer to SIGINT/SIGTERM is to kill the ranks
# within about a second, too soon to save. A second request stops at once.
setsid mpirun "${args[@]}" "${train[@]}" &
job=$!
requests=0
stop_request() {
  requests=$((requests + 1))
  if [ "$requests" -eq 1 ]; then
    echo "launch: stop requested: every rank finishes its step and rank 0 writes a checkpoint (again to stop at once)" >&2
    kill -USR1 "$job" 2>/dev/null || true
  else
    kill -TERM "$job" 2>/dev/null || true
  fi
}
trap stop_request INT TERM
status=0
# `wait` returns early when a trapped signal arrives; wait again until mpirun has really ended.
while true; do
  status=0; wait "$job" || status=$?
  kill -0 "$job" 2>/dev/null || break
done
trap - INT TERM
if [ "$status" -eq 138 ] || { [ "$requests" -gt 0 ] && [ "$status" -ne 0 ]; }; then
  echo "launch: stopped on request (mpirun exit status $status). Run this script again to resume from $CHECKPOINT_DIR." >&2
elif [ "$status" -ne 0 ]; then
  echo "launch: the job stopped (mpirun exit status $status)." >&2
  # Open MPI does not always say which host went away; ask each one (as mpirun reaches them).
  agent="${RSH_AGENT:-ssh}"
  for host in $(awk '!/^#/ && NF { print $1 }' "$HOSTFILE"); do
    if ! timeout 10 $agent -oBatchMode=yes -oConnectTimeout=5 "$host" true > /dev/null 2>&1; then
      echo "launch: host $host does not answer: it is down or unreachable." >&2
    fi
  done
  if [ -f "$CHECKPOINT_DIR/latest" ]; then
    echo "launch: the last checkpoint is $CHECKPOINT_DIR/$(cat "$CHECKPOINT_DIR/latest"). If a host was lost, list the" >&2
    echo "launch: remaining hosts in a hostfile and run this script again with it: it resumes there, on fewer ranks." >&2
  fi
fi
exit "$status"
