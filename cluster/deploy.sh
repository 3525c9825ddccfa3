#!/usr/bin/env bash
# Builds digits once and copies the binary, MNIST and the scripts to every host of a hostfile,
# then checks that every host runs the same binary.
#
#   cluster/deploy.sh [--no-build]
#
# Environment: HOSTFILE (default cluster/hostfile), DEST (directory on every host; default this
# checkout's path, so launch.sh finds the same paths everywhere), RSH (default ssh), BINARY (a
# binary to deploy instead of building one).
#
# The build links the Swift runtime statically (--static-swift-stdlib), so the nodes need only
# Debian's openmpi-bin, libpng16-16 and libjpeg62-turbo, not a Swift toolchain. Build on a node of
# the same architecture as the cluster (an aarch64 Pi for a Pi cluster). Copies go through
# `tar | RSH host tar x`, so rsync is not needed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
HOSTFILE="${HOSTFILE:-cluster/hostfile}"
DEST="${DEST:-$root}"
RSH="${RSH:-ssh}"
[ -f "$HOSTFILE" ] || { echo "deploy: no hostfile at $HOSTFILE" >&2; exit 1; }

binary="${BINARY:-}"
if [ -z "$binary" ]; then
  if [ "${1:-}" = "--no-build" ]; then binary=".build-static/release/digits"
  else
    swift build -c release --product digits --static-swift-stdlib --scratch-path .build-static
    binary=".build-static/release/digits"
  fi
fi
[ -x "$binary" ] || { echo "deploy: no binary at $binary" >&2; exit 1; }
bash scripts/fetch-mnist.sh > /dev/null
version="$("$binary" --version)"
digest="$(sha256sum "$binary" | cut -d' ' -f1)"

stage="$(mktemp -d)"; trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/data/mnist" "$stage/cluster" "$stage/scripts"
cp "$binary" "$stage/bin/digits"
cp data/mnist/*.gz "$stage/data/mnist/"
cp cluster/*.sh cluster/*.example "$stage/cluster/" 2>/dev/null || true
cp scripts/*.sh scripts/mnist.sha256 "$stage/scripts/"

hosts=$(awk '!/^#/ && NF { print $1 }' "$HOSTFILE" | sort -u)
failed=0
for host in $hosts; do
  if ! tar -C "$stage" -cf - . | $RSH "$host" "mkdir -p '$DEST' && tar -C '$DEST' -xf -"; then
    echo "deploy: $host: copy failed" >&2; failed=1; continue
  fi
  remote="$($RSH "$host" "'$DEST/bin/digits' --version && sha256sum '$DEST/bin/digits'" 2>&1 || true)"
  if [[ "$remote" == "$version"*"$digest"* ]]; then
    echo "deploy: $host: digits $version, binary $digest"
  else
    echo "deploy: $host: does not run the deployed binary: $remote" >&2; failed=1
  fi
done
[ "$failed" -eq 0 ] && echo "deploy: every host runs digits $version from $DEST/bin/digits"
exit "$failed"
