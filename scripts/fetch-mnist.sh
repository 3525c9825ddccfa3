#!/usr/bin/env bash
# Puts the four MNIST IDX files (gzip) into data/mnist/ and verifies each one.
#
# Sources, in order: $MNIST_DIR, ../shared/data/mnist (beside the checkout), the public mirrors.
# Every file is checked against scripts/mnist.sha256: the SHA-256 of its *uncompressed*
# content. A file that does not match is deleted and the script fails naming it and its source.
# Running it again when the files are present and correct does nothing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${DIGITS_DATA_DIR:-$root/data/mnist}"
sums="$root/scripts/mnist.sha256"
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
mirrors=(
  "https://ossci-datasets.s3.amazonaws.com/mnist"
  "https://storage.googleapis.com/cvdf-datasets/mnist"
)
mkdir -p "$dest"

expected_sum() { awk -v n="$1" '$2 == n { print $1 }' "$sums"; }
content_sum() { # SHA-256 of the uncompressed content of a .gz file
  gzip -dc -- "$1" | sha256sum | cut -d' ' -f1
}
verified() { # file name -> 0 when dest holds it with the right content
  local f="$dest/$1.gz"
  [ -s "$f" ] && [ "$(content_sum "$f" 2>/dev/null || true)" = "$(expected_sum "$1")" ]
}
download() { # url out
  if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 2 --connect-timeout 15 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1"
  else echo "fetch-mnist: neither curl nor wget is installed" >&2; return 1; fi
}

local_sources=()
[ -n "${MNIST_DIR:-}" ] && local_sources+=("$MNIST_DIR")
local_sources+=("$root/../shared/data/mnist")

for name in "${files[@]}"; do
  if verified "$name"; then continue; fi
  got=""
  for dir in "${local_sources[@]}"; do
    if [ -f "$dir/$name.gz" ]; then
      cp -f -- "$dir/$name.gz" "$dest/$name.gz.part" && got="$dir/$name.gz"; break
    elif [ -f "$dir/$name" ]; then
      gzip -c -- "$dir/$name" > "$dest/$name.gz.part" && got="$dir/$name"; break
    fi
  done
  if [ -z "$got" ]; then
    for mirror in "${mirrors[@]}"; do
      if download "$mirror/$name.gz" "$dest/$name.gz.part"; then got="$mirror/$name.gz"; break; fi
    done
  fi
  if [ -z "$got" ]; then
    rm -f -- "$dest/$name.gz.part"
    echo "fetch-mnist: could not find $name: looked in ${local_sources[*]} and ${mirrors[*]}" >&2
    exit 1
  fi
  found="$(content_sum "$dest/$name.gz.part" 2>/dev/null || echo "unreadable gzip")"
  if [ "$found" != "$(expected_sum "$name")" ]; then
    rm -f -- "$dest/$name.gz.part"
    echo "fetch-mnist: $name from $got has SHA-256 $found, expected $(expected_sum "$name"); deleted it" >&2
    exit 1
  fi
  mv -f -- "$dest/$name.gz.part" "$dest/$name.gz"
  echo "fetch-mnist: $name.gz from $got, verified"
done
echo "fetch-mnist: MNIST verified in $dest"
