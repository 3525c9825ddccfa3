#!/usr/bin/env bash
# A cluster of N hosts on this machine: each host a network namespace (digits-h1 … digits-hN)
# with its own address on a bridge, optionally shaped to a Pi's 1 Gbit/s Ethernet.
#
#   cluster/simulate.sh up N [--rate 1gbit]   create hosts 10.77.0.1 … 10.77.0.N (+ 10.77.0.254 for this host)
#   cluster/simulate.sh down                  remove everything it made
#   cluster/simulate.sh status                list the simulated hosts
#
# It writes $SIM_DIR/hostfile (one slot per host) and $SIM_DIR/rsh, an rsh agent that runs a
# command "on" a host with `ip netns exec`, so cluster/launch.sh runs against it unchanged:
#   HOSTFILE=$SIM_DIR/hostfile RSH_AGENT=$SIM_DIR/rsh IFACE=10.77.0.0/24 cluster/launch.sh …
# Only addresses inside these namespaces are used. Needs root and iproute2; tc's tbf qdisc for --rate.
set -euo pipefail
SIM_DIR="${SIM_DIR:-/tmp/digits-sim}"
PREFIX=digits-h
BRIDGE=digits-br0
SUBNET=10.77.0

die() { echo "simulate: $*" >&2; exit 1; }

down() {
  for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep "^$PREFIX" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1 | grep -E "^(dsim[0-9]+|$BRIDGE)$" || true); do
    ip link del "$link" 2>/dev/null || true
  done
  rm -rf "$SIM_DIR"
}

up() {
  local n="$1" rate="${2:-}"
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 32 ] || die "N must be 1-32"
  down
  mkdir -p "$SIM_DIR"
  ip link add "$BRIDGE" type bridge
  ip addr add "$SUBNET.254/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  : > "$SIM_DIR/hostfile"
  for i in $(seq "$n"); do
    local ns="$PREFIX$i"
    ip netns add "$ns"
    ip link add "dsim$i" type veth peer name eth0 netns "$ns"
    ip link set "dsim$i" master "$BRIDGE" up
    ip -n "$ns" addr add "$SUBNET.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    if [ -n "$rate" ]; then
      # Both directions: the host's egress inside the namespace, its ingress at the bridge port.
      ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$rate" burst 256kb latency 50ms
      tc qdisc add dev "dsim$i" root tbf rate "$rate" burst 256kb latency 50ms
    fi
    echo "$SUBNET.$i slots=1" >> "$SIM_DIR/hostfile"
  done
  cat > "$SIM_DIR/rsh" <<AGENT
#!/usr/bin/env bash
# rsh agent for the simulated cluster: "rsh [options] HOST command…" runs the command in HOST's namespace.
while [ "\${1:-}" != "\${1#-}" ]; do shift; done
host="\$1"; shift
ns="$PREFIX\${host##*.}"
# The hosts share this machine's /tmp and hostname; Open MPI's session directories would collide
# (orted: "mkdir … File exists"), so each host gets its own, as separate machines would have.
mkdir -p "$SIM_DIR/tmp-\$ns"
# Like ssh, fail when the host cannot be reached over the simulated network (its link is down).
ping -c 1 -W 2 "\$host" > /dev/null 2>&1 || { echo "rsh: \$host: no route to host" >&2; exit 255; }
exec ip netns exec "\$ns" env TMPDIR="$SIM_DIR/tmp-\$ns" OMPI_MCA_orte_tmpdir_base="$SIM_DIR/tmp-\$ns" /bin/sh -c "\$*"
AGENT
  chmod +x "$SIM_DIR/rsh"
  echo "simulate: $n host(s) $SUBNET.1-$SUBNET.$n on $BRIDGE${rate:+, links shaped to $rate}; hostfile $SIM_DIR/hostfile, rsh agent $SIM_DIR/rsh"
}

case "${1:-}" in
  up)
    shift
    n="${1:-}"; shift || true
    rate=""
    while [ $# -gt 0 ]; do
      case "$1" in
        --rate) rate="${2:-}"; shift 2 ;;
        *) die "unknown option $1" ;;
      esac
    done
    up "$n" "$rate" ;;
  down) down; echo "simulate: removed" ;;
  status) ip netns list | grep "^$PREFIX" || echo "simulate: no hosts" ;;
  *) echo "usage: cluster/simulate.sh up N [--rate 1gbit] | down | status" >&2; exit 2 ;;
esac
