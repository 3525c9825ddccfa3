#!/usr/bin/env bash
# A one-node Slurm on this machine, for trying cluster/digits.sbatch and for scripts/slurm-test.sh:
# Debian's munged, slurmctld and slurmd (packages slurmctld slurmd slurm-client munge), as root.
#
#   cluster/slurm-local.sh up      write a config, start the three daemons, wait until the node is idle
#   cluster/slurm-local.sh down    cancel every job, stop the daemons, check none is left (safe to repeat)
#   cluster/slurm-local.sh env     print the export line the Slurm commands need (SLURM_CONF)
#
# Everything lives in one directory of its own, SLURM_LOCAL_DIR (default /tmp/digits-slurm): slurm.conf,
# a munge key and socket, the daemons' pid files, spool and state, and their logs in log/. Nothing is
# written under /etc: the daemons take their config with -f, munged its key and socket by option, and
# the commands (sbatch, srun, squeue…) find the config through SLURM_CONF, which `up` prints. Jobs
# inherit it from sbatch. `down` leaves the directory (the logs) in place; `up` starts it afresh.
#
# The node is this machine (NodeName = hostname, address 127.0.0.1) with its CPUs and memory as
# `slurmd -C` reads them, in one partition `local`. No cgroups, so it runs inside containers:
# processes are tracked through /proc (proctrack/linuxproc), and each task is bound to its cores by
# sched_setaffinity (task/affinity; SLURM_LOCAL_TASK_PLUGIN=task/none where that is refused).
# Unbound, two busy-polling ranks on two cores ran a step about half as fast here.
# Ports: SLURM_LOCAL_PORT (default 16817) for slurmctld and the next one for slurmd.
set -euo pipefail
dir="${SLURM_LOCAL_DIR:-/tmp/digits-slurm}"
port="${SLURM_LOCAL_PORT:-16817}"
conf="$dir/slurm.conf"
log="$dir/log"
say() { echo "slurm-local: $*"; }

pid_of() { # a daemon's pid: from its pid file, or (the file gone) by the command line `up` gave it
  local file="$dir/run/$1.pid" pid=""
  [ -f "$file" ] && pid=$(cat "$file" 2>/dev/null)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; return 0; fi
  case "$1" in
    munged) pid=$(pgrep -f -x "munged --socket=$dir/munge/socket .*" | head -1) ;;
    *) pid=$(pgrep -f -x "$1 -f $conf .*" | head -1) ;;
  esac
  [ -n "$pid" ] && echo "$pid"
}

stop_daemons() { # SIGTERM to each, up to 15 s to exit (slurmctld takes about 5), then SIGKILL
  local name pid pids=() names=()
  for name in "$@"; do
    pid=$(pid_of "$name") || continue
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid"); names+=("$name")
  done
  for i in "${!pids[@]}"; do
    for _ in $(seq 150); do kill -0 "${pids[$i]}" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "${pids[$i]}" 2>/dev/null; then
      say "${names[$i]} (pid ${pids[$i]}) did not stop on SIGTERM; killing it"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
    rm -f "$dir/run/${names[$i]}.pid"
  done
}

# The slurmstepd processes of this slurmd's jobs (they run in its log directory).
step_daemons() {
  local pid
  for pid in $(ps -eo pid=,comm= | awk '$2 == "slurmstepd" { print $1 }'); do
    if [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$log" ]; then echo "$pid"; fi
  done
}

descendants() { # every process under $1
  ps -eo pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2 }
    END { for (p in parent) { q = parent[p]; while (q > 1) { if (q == root) { print p; break } q = parent[q] } } }'
}

down() {
  export SLURM_CONF="$conf"
  if pid_of slurmctld > /dev/null && [ -S "$dir/munge/socket" ]; then
    # Let running jobs end the way Slurm ends them (SIGTERM, then SIGKILL after KillWait), for 15 s.
    timeout 10 scancel --quiet --user="$(id -un)" 2>/dev/null || true
    local until=$((SECONDS + 15)) active
    while [ "$SECONDS" -lt "$until" ]; do
      active=$(timeout 5 squeue --noheader --states=PENDING,CONFIGURING,RUNNING,COMPLETING --format=%i 2>/dev/null) || break
      [ -z "$active" ] && break
      sleep 0.2
    done
  fi
  local steps
  steps=$(step_daemons)
  stop_daemons slurmd slurmctld
  stop_daemons munged
  # Steps of this slurmd that outlived the cancel (they end once their tasks do): up to 5 s more,
  # then SIGKILL to each and to the tasks under it.
  for pid in $steps; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      # shellcheck disable=SC2046
      kill -KILL "$pid" $(descendants "$pid") 2>/dev/null || true
    fi
  done
  local left=0
  for name in munged slurmctld slurmd; do
    if pid_of "$name" > /dev/null; then say "$name is still running"; left=1; fi
  done
  [ "$left" -eq 0 ] || exit 1
  say "stopped (logs in $log)"
}

up() {
  if [ "$(id -u)" -ne 0 ]; then say "needs root (the daemons run as root)" >&2; exit 3; fi
  for tool in munged mungekey slurmctld slurmd sbatch srun scontrol; do
    command -v "$tool" > /dev/null || { say "$tool not found: apt-get install slurmctld slurmd slurm-client munge" >&2; exit 3; }
  done
  if pid_of slurmctld > /dev/null || pid_of slurmd > /dev/null || pid_of munged > /dev/null; then
    say "already up in $dir; run 'down' first" >&2; exit 1
  fi
  rm -rf "$dir"
  mkdir -p "$dir"/{run,log,state,spool,munge}
  chmod 700 "$dir" "$dir/munge"

  mungekey --create --keyfile="$dir/munge/munge.key" > /dev/null
  munged --socket="$dir/munge/socket" --key-file="$dir/munge/munge.key" --pid-file="$dir/run/munged.pid" \
         --log-file="$log/munged.log" --seed-file="$dir/munge/seed" --force

  local host node
  host=$(hostname -s)
  # "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105"
  node=$(slurmd -C | head -1)
  cat > "$conf" <<EOF
# Written by cluster/slurm-local.sh up: one node, this machine, for tests and trials.
ClusterName=digits-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$log/slurmctld.log
SlurmdLogFile=$log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=${SLURM_LOCAL_TASK_PLUGIN:-task/affinity}
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Jobs stay in squeue this long after they end (for the test to read their state).
MinJobAge=300
KillWait=10
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$conf"
  slurmctld -f "$conf" -i
  slurmd -f "$conf" -N "$host"
  local state=""
  for _ in $(seq 150); do
    state=$(sinfo --noheader --nodes="$host" --format=%T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.2
  done
  if [ "$state" != idle ]; then
    say "the node did not become idle (state '${state:-none}'); logs in $log" >&2
    tail -5 "$log/slurmctld.log" "$log/slurmd.log" >&2 2>/dev/null || true
    exit 1
  fi
  say "up: node $host idle, config $conf, logs in $log"
  say "use it with: export SLURM_CONF=$conf"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) echo "export SLURM_CONF=$conf" ;;
  *) echo "usage: cluster/slurm-local.sh up|down|env" >&2; exit 2 ;;
esac
