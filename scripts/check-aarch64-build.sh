#!/usr/bin/env bash
# Compiles every C file of the package for aarch64-linux-gnu (a Raspberry Pi 4 or 5 on 64-bit
# Raspberry Pi OS or Debian) with the Swift toolchain's clang, the compiler SwiftPM uses: a real
# -O2 compile to an object, not only a syntax check, so that an x86 header, an intrinsic or a
# target attribute aarch64 does not have fails here instead of on the first build on a Pi.
# The Swift code cannot be cross-built here (the toolchain has x86-64 Swift modules only).
#
#   scripts/check-aarch64-build.sh
#
# Files: Sources/**/*.c, each target's public headers (Swift imports them on the Pi too), and the
# C kernel test Tests/ckernels/*.c when present. The system-library shims (Sources/C*/shim.h for
# MPI, OpenBLAS, zlib, png) are left out: they only include the libraries' own headers.
# Include path: the target's include/, the file's own directory, the target's C settings from
# Package.swift (headerSearchPath, define, unsafeFlags, as SwiftPM would apply them on Linux in a
# release build), and the C library headers of Debian's libc6-dev-arm64-cross
# (/usr/aarch64-linux-gnu/include), never the host's /usr/include.
# One line per file; exit status 0 when every file compiles, 1 when any fails, 2 when the cross
# headers are missing (scripts/install-packages.sh --test-tools installs them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target=aarch64-linux-gnu
cross_include="${CROSS_INCLUDE:-/usr/$target/include}"

if [ ! -f "$cross_include/stdio.h" ]; then
  echo "check-aarch64-build: no C library headers for $target at $cross_include (Debian: apt-get install libc6-dev-arm64-cross)"
  exit 2
fi
swift_path="$(command -v swift || true)"
clang="${CLANG:-${swift_path:+$(dirname "$(readlink -f "$swift_path")")/clang}}"
if [ -z "$clang" ] || [ ! -x "$clang" ]; then
  echo "check-aarch64-build: no clang beside swift (${swift_path:-swift is not on the PATH}); set CLANG to the toolchain's clang" >&2
  exit 1
fi

work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

# Each C target's directory, public-header directory and C flags, from the manifest.
# Fields, tab-separated: directory, public headers, then one flag per field.
declare -A target_public target_flags
manifest="$(swift package --scratch-path "$work/scratch" dump-package 2>/dev/null | python3 -c '
import json, sys
package = json.load(sys.stdin)
for t in package["targets"]:
    if t["type"] not in ("regular", "executable", "test"):
        continue
    directory = t.get("path") or ("Tests/" if t["type"] == "test" else "Sources/") + t["name"]
    public = directory + "/" + (t.get("publicHeadersPath") or "include")
    flags = []
    for s in t.get("settings", []):
        c = s.get("condition") or {}
        if s.get("tool") != "c" or (c.get("platformNames") and "linux" not in c["platformNames"]) \
           or c.get("config") not in (None, "release"):
            continue
        kind, value = next(iter(s["kind"].items()))
        value = value["_0"]
        if kind == "headerSearchPath": flags.append("-I" + directory + "/" + value)
        elif kind == "define": flags.append("-D" + value)
        elif kind == "unsafeFlags": flags.extend(value)
    print("\t".join([directory, public] + flags))
' 2>/dev/null || true)"
if [ -z "$manifest" ]; then
  echo "check-aarch64-build: note: could not read Package.swift's C settings (swift package dump-package, python3); using include/ and each file's directory only"
fi
while IFS=$'\t' read -r -a fields; do
  [ ${#fields[@]} -ge 2 ] || continue
  target_public["${fields[0]}"]="${fields[1]}"
  target_flags["${fields[0]}"]="$(printf '%s\t' "${fields[@]:2}")"
done <<<"$manifest"

common=(--target="$target" -O2 -fPIC -fblocks -DSWIFT_PACKAGE=1 -nostdlibinc -isystem "$cross_include")
compiled=0; failed=0

# check FILE TARGET_DIR [compile|header]
check() {
  local file="$1" dir="$2" mode="$3" flags=() public extra
  public="${target_public[$dir]:-$dir/include}"
  [ -d "$public" ] && flags+=(-I "$public")
  flags+=(-I "$(dirname "$file")")
  if [ -n "${target_flags[$dir]:-}" ]; then IFS=$'\t' read -r -a extra <<<"${target_flags[$dir]}"; flags+=("${extra[@]}"); fi
  local object="$work/$(echo "$file" | tr '/' '_').o" log="$work/log"
  local what=(-c "$file" -o "$object")
  [ "$mode" = header ] && what=(-fsyntax-only -x c "$file")
  if "$clang" "${common[@]}" "${flags[@]}" "${what[@]}" > "$log" 2>&1; then
    compiled=$((compiled + 1))
    local note=""
    if [ "$mode" = header ]; then note=" (header, as Swift imports it)"
    elif ! "$(dirname "$clang")/llvm-nm" --defined-only "$object" 2>/dev/null | grep -q ' [TtDdBbRr] '; then
      note=" (no code for aarch64: compiled out)"
    fi
    local warnings; warnings=$(grep -c ': warning:' "$log" || true)
    [ "$warnings" -gt 0 ] && note="$note ($warnings warning(s): $(grep -m1 ': warning:' "$log" | sed 's/.*warning: //'))"
    echo "ok   $file$note"
  else
    failed=$((failed + 1))
    echo "FAIL $file"
    grep -E ': (error|fatal error):' "$log" | head -5 | sed 's/^/     /'
  fi
}

shopt -s globstar nullglob
for file in Sources/**/*.c; do
  check "$file" "$(echo "$file" | cut -d/ -f1-2)" compile
done
for header in Sources/*/include/**/*.h; do
  dir="$(echo "$header" | cut -d/ -f1-2)"
  ls "$dir"/**/*.c > /dev/null 2>&1 || continue   # a system-library shim, not a C target
  check "$header" "$dir" header
done
# The C kernel test is built with every kernel source: it sees CKernels' headers and its root.
for file in Tests/ckernels/*.c; do
  target_public[Tests/ckernels]="Sources/CKernels/include"
  target_flags[Tests/ckernels]="$(printf '%s\t' -ISources/CKernels "${target_flags[Sources/CKernels]:-}")"
  check "$file" Tests/ckernels compile
done

echo "check-aarch64-build: $compiled of $((compiled + failed)) file(s) compiled for $target with $("$clang" --version | head -1 | sed 's/ (.*//')"
[ "$failed" -eq 0 ]
