#!/usr/bin/env bash
# Installs the Debian packages digits builds and runs with; skips what is installed.
# As root it runs apt-get; otherwise it prints the exact command to run and fails.
#   scripts/install-packages.sh [--test-tools]   (also what scripts/test.sh uses: iproute2 for the
#                                                 simulated cluster, procps for pgrep, python3, and
#                                                 for the aarch64 (Raspberry Pi) checks the C library
#                                                 headers, libgcc and binutils for aarch64 and qemu-aarch64-static,
#                                                 and a one-node Slurm for scripts/slurm-test.sh)
set -euo pipefail
packages=(libopenmpi-dev openmpi-bin libpng-dev libjpeg-dev zlib1g-dev pkg-config)
if [ "${1:-}" = "--test-tools" ]; then
  packages+=(iproute2 iputils-ping procps python3 qemu-user-static libc6-dev-arm64-cross binutils-aarch64-linux-gnu libgcc-12-dev-arm64-cross
             slurmctld slurmd slurm-client munge libpmix-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-packages: all present (${packages[*]})"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-packages: missing ${missing[*]}. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y "${missing[@]}"
