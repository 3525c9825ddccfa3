#!/usr/bin/env bash
# Puts a known data set's four IDX files (gzip, MNIST's names) into data/NAME/ and verifies each.
#
#   scripts/fetch-data.sh NAME        NAME: mnist, fashion-mnist, kmnist,
#                                     emnist-byclass|bymerge|balanced|letters|digits|mnist
#
# mnist is scripts/fetch-mnist.sh (MNIST_DIR, ../shared/data/mnist, the mirrors; SHA-256 of the
# uncompressed content). The others publish checksums of their .gz files only, so each file is
# checked against the SHA-256 of the .gz as published (the values `digits` carries in
# Sources/Datasets/KnownSets.swift); sources, in order: $DATA_MIRROR_DIR/NAME, $DATA_MIRROR_DIR,
# ../shared/data/NAME (beside the checkout), the public mirrors. A file that does not match is
# deleted and the script fails naming it and where it came from. DIGITS_DATA_DIR overrides the
# destination. Running it again when the files are present and correct does nothing.
#
# EMNIST publishes its splits in one zip (gzip.zip, 536 MB) whose MD5 is published (none for the
# files inside): the zip is found in $DATA_MIRROR_DIR/emnist, $DATA_MIRROR_DIR,
# ../shared/data/emnist or NIST's site, kept in data/emnist/, checked against that MD5, and the
# split's four files are extracted under EMNIST's own names (digits knows a split by them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="${1:-}"
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
case "$name" in
  mnist) exec "$root/scripts/fetch-mnist.sh" ;;
  fashion-mnist)
    mirrors=("https://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
             "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion")
    sums=(3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84
          a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845
          346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073
          67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5) ;;
  kmnist)
    mirrors=("https://codh.rois.ac.jp/kmnist/dataset/kmnist")
    sums=(51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4
          e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17
          edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5
          20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c) ;;
  emnist-byclass|emnist-bymerge|emnist-balanced|emnist-letters|emnist-digits|emnist-mnist)
    zip_md5=58c8d27c78d21e728a6bc7b3cc06412e
    cache="${DIGITS_DATA_DIR:-$root/data/$name}/../emnist"
    dest="${DIGITS_DATA_DIR:-$root/data/$name}"
    mkdir -p "$cache" "$dest"
    zip="$cache/gzip.zip"
    if [ ! -s "$zip" ] || [ "$(md5sum < "$zip" | cut -d' ' -f1)" != "$zip_md5" ]; then
      got=""
      for dir in ${DATA_MIRROR_DIR:+"$DATA_MIRROR_DIR/emnist" "$DATA_MIRROR_DIR"} "$root/../shared/data/emnist"; do
        if [ -f "$dir/gzip.zip" ]; then cp -f -- "$dir/gzip.zip" "$zip.part" && got="$dir/gzip.zip"; break; fi
      done
      if [ -z "$got" ]; then
        url="https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
        if command -v curl >/dev/null 2>&1 && curl -fsSL --retry 2 --connect-timeout 15 -o "$zip.part" "$url"; then got="$url"
        elif command -v wget >/dev/null 2>&1 && wget -q -O "$zip.part" "$url"; then got="$url"
        else rm -f -- "$zip.part"; echo "fetch-data: could not find EMNIST's gzip.zip: looked in ${DATA_MIRROR_DIR:-(no DATA_MIRROR_DIR)}, $root/../shared/data/emnist and $url" >&2; exit 1; fi
      fi
      found="$(md5sum < "$zip.part" | cut -d' ' -f1)"
      if [ "$found" != "$zip_md5" ]; then
        rm -f -- "$zip.part"
        echo "fetch-data: gzip.zip from $got has MD5 $found, expected $zip_md5 (the published EMNIST zip); deleted it" >&2
        exit 1
      fi
      mv -f -- "$zip.part" "$zip"
      echo "fetch-data: EMNIST's gzip.zip from $got, verified"
    fi
    python3 - "$zip" "$name" "$dest" <<'PY' || { echo "fetch-data: could not extract $name from $zip" >&2; exit 1; }
import os, sys, zipfile
archive, name, dest = sys.argv[1:4]
wanted = {f"{name}-{split}-{kind}-ubyte.gz" for split in ("train", "test") for kind in ("images-idx3", "labels-idx1")}
with zipfile.ZipFile(archive) as z:
    members = {os.path.basename(m): m for m in z.namelist()}
    missing = wanted - members.keys()
    if missing:
        sys.exit(f"fetch-data: {archive} holds no {', '.join(sorted(missing))}")
    for file in sorted(wanted):
        with z.open(members[file]) as src, open(os.path.join(dest, file + ".part"), "wb") as out:
            out.write(src.read())
        os.replace(os.path.join(dest, file + ".part"), os.path.join(dest, file))
PY
    echo "fetch-data: $name extracted into $dest (EMNIST's names; known by them, no per-file checksums are published)"
    exit 0 ;;
  *) echo "usage: scripts/fetch-data.sh mnist|fashion-mnist|kmnist|emnist-{byclass,bymerge,balanced,letters,digits,mnist}" >&2; exit 2 ;;
esac
dest="${DIGITS_DATA_DIR:-$root/data/$name}"
mkdir -p "$dest"

file_sum() { sha256sum -- "$1" | cut -d' ' -f1; }
download() { # url out
  if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 2 --connect-timeout 15 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" "$1"
  else echo "fetch-data: neither curl nor wget is installed" >&2; return 1; fi
}

local_sources=()
if [ -n "${DATA_MIRROR_DIR:-}" ]; then local_sources+=("$DATA_MIRROR_DIR/$name" "$DATA_MIRROR_DIR"); fi
local_sources+=("$root/../shared/data/$name")

for i in "${!files[@]}"; do
  file="${files[$i]}.gz" expected="${sums[$i]}"
  if [ -s "$dest/$file" ] && [ "$(file_sum "$dest/$file")" = "$expected" ]; then continue; fi
  got=""
  for dir in "${local_sources[@]}"; do
    if [ -f "$dir/$file" ]; then cp -f -- "$dir/$file" "$dest/$file.part" && got="$dir/$file"; break; fi
  done
  if [ -z "$got" ]; then
    for mirror in "${mirrors[@]}"; do
      if download "$mirror/$file" "$dest/$file.part"; then got="$mirror/$file"; break; fi
    done
  fi
  if [ -z "$got" ]; then
    rm -f -- "$dest/$file.part"
    echo "fetch-data: could not find $file: looked in ${local_sources[*]} and ${mirrors[*]}" >&2
    exit 1
  fi
  found="$(file_sum "$dest/$file.part")"
  if [ "$found" != "$expected" ]; then
    rm -f -- "$dest/$file.part"
    echo "fetch-data: $file from $got has SHA-256 $found, expected $expected (the published $name file); deleted it" >&2
    exit 1
  fi
  mv -f -- "$dest/$file.part" "$dest/$file"
  echo "fetch-data: $file from $got, verified"
done
echo "fetch-data: $name verified in $dest"
