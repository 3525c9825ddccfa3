#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a working digits: system packages,
# MNIST (verified), a release build, and a check that the data reads.
# Running it again is fast and changes nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if ! command -v swift >/dev/null 2>&1; then
  echo "setup: no Swift toolchain on PATH; install Swift 6 from swift.org (Linux release for your architecture)" >&2
  exit 1
fi
bash scripts/install-packages.sh
bash scripts/fetch-mnist.sh
swift build -c release --product digits
.build/release/digits inspect-data --data-dir data/mnist
echo "setup: done. The binary is .build/release/digits"
