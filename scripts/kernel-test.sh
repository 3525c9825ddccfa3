#!/usr/bin/env bash
# Builds Tests/ckernels/kernel_test.c with every C file of Sources/CKernels and runs it: natively, then
# cross-compiled for aarch64 under qemu (a Raspberry Pi 4's Cortex-A72), and compares the two runs'
# digests (the same fixed workload must give the same bits on x86-64 and aarch64).
#
#   scripts/kernel-test.sh                    native and aarch64; a missing cross tool skips aarch64, said so
#   scripts/kernel-test.sh --native-only      this machine only
#   scripts/kernel-test.sh --require-aarch64  a missing cross tool or qemu is a failure
#   scripts/kernel-test.sh --asm              the GEMM micro-kernels' inner loops (NEON, AVX2) with their
#                                             FMA, load and store counts; fails when a loop spills
#   scripts/kernel-test.sh ... -- TABLE...    pass table names (reference, avx2, avx512, neon) to the test
#
# aarch64 needs Debian's qemu-user-static, libc6-dev-arm64-cross and libgcc-12-dev-arm64-cross (the
# static libgcc and crt files clang links with), and binutils-aarch64-linux-gnu or the toolchain's lld.
set -u -o pipefail

native_only=0
require_aarch64=0
asm=0
tables=()
while [ $# -gt 0 ]; do
    case "$1" in
        --native-only) native_only=1 ;;
        --require-aarch64) require_aarch64=1 ;;
        --asm) asm=1 ;;
        --) shift; tables=("$@"); break ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "kernel-test: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$native_only" = 1 ] && [ "$require_aarch64" = 1 ]; then
    echo "kernel-test: --native-only and --require-aarch64 contradict each other" >&2
    exit 2
fi

cd "$(dirname "$0")/.." || exit 2

# The toolchain's clang (the one SwiftPM compiles CKernels with), else whatever clang is on PATH.
clang_bin=clang
if command -v swift >/dev/null 2>&1; then
    candidate="$(dirname "$(readlink -f "$(command -v swift)")")/clang"
    [ -x "$candidate" ] && clang_bin="$candidate"
fi
if ! command -v "$clang_bin" >/dev/null 2>&1; then
    echo "kernel-test: no clang found (neither beside swift nor on PATH)" >&2
    exit 2
fi

includes=(-I Sources/CKernels/include -I Sources/CKernels)
mapfile -t sources < <(find Sources/CKernels -name '*.c' | sort)
work="$(mktemp -d "${TMPDIR:-/tmp}/kernel-test.XXXXXX")" || exit 2
trap 'rm -rf "$work"' EXIT

# MARK: --asm

# Prints each inner loop that holds FMAs (the function it is in, its instructions) and counts its
# FMAs, loads and stores; a store to or load from the stack inside the loop is a spill.
report_loops() {  # file fma-regex
    awk -v fma="$2" '
        /^[A-Za-z_][A-Za-z0-9_.$]*:/ { fn = $1; sub(/:.*/, "", fn); inloop = 0 }
        /^\.L[A-Za-z0-9_.$]+:/ { label = $1; sub(/:.*/, "", label) }
        /Inner Loop Header/ && !inloop { inloop = 1; header = label; n = 0 }
        inloop && /^\t[a-z]/ { lines[++n] = $0 }
        inloop && /^\t(b|b\.[a-z]+|cbz|cbnz|tbz|tbnz|j[a-z]+)\t/ && $NF == header {
            inloop = 0
            f = 0; ldr = 0; ldp = 0; ld1 = 0; st = 0; spill = 0; reload = 0
            for (i = 1; i <= n; i++) {
                line = lines[i]
                if (line ~ fma) f++
                if (line ~ /^\tldr\t/) ldr++
                if (line ~ /^\tldp\t/) ldp++
                if (line ~ /^\tld1/) ld1++
                if (line ~ /^\t(str|stp|st1)/) st++
                if (line ~ /^\t(str|stp|st1)\t.*\[sp/ || line ~ /^\tv?mov[a-z]*\t[^,]*, *-?[0-9]*\(%rsp\)/) spill++
                if (line ~ /^\t(ldr|ldp|ld1)\t.*\[sp/ || line ~ /^\t[a-z0-9]+\t-?[0-9]*\(%rsp\)/) reload++
            }
            if (f == 0) next
            loops++
            printf "%s, loop %s (%d instructions):\n", fn, header, n
            for (i = 1; i <= n; i++) print lines[i]
            printf "  fma %d  ldr %d  ldp %d  ld1 %d  stores %d  spills (stores to the stack) %d  reloads %d\n\n", \
                   f, ldr, ldp, ld1, st, spill, reload
            spills += spill + reload
        }
        END {
            if (loops == 0) { print "  no inner loop with FMAs found"; exit 3 }
            exit spills > 0 ? 1 : 0
        }' "$1"
}

if [ "$asm" = 1 ]; then
    status=0
    echo "== arm/neon.c: $clang_bin --target=aarch64-linux-gnu -O3 -mcpu=cortex-a72 -S"
    if "$clang_bin" --target=aarch64-linux-gnu -O3 -mcpu=cortex-a72 -S "${includes[@]}" Sources/CKernels/arm/neon.c \
        -o "$work/neon.s" 2>"$work/neon.err"; then
        report_loops "$work/neon.s" '^\tfmla\t' || status=1
    else
        echo "kernel-test: arm/neon.c did not compile for aarch64 (its headers come from libc6-dev-arm64-cross):"
        head -5 "$work/neon.err"
        status=1
    fi
    if [ -f Sources/CKernels/x86/avx2.c ]; then
        echo "== x86/avx2.c: $clang_bin --target=x86_64-linux-gnu -O3 -S"
        if "$clang_bin" --target=x86_64-linux-gnu -O3 -S "${includes[@]}" Sources/CKernels/x86/avx2.c \
            -o "$work/avx2.s" 2>"$work/avx2.err"; then
            report_loops "$work/avx2.s" '^\tvfmadd' || status=1
        else
            head -5 "$work/avx2.err"
            status=1
        fi
    fi
    if [ "$status" = 0 ]; then echo "kernel-test: no spills in the FMA loops"
    else echo "kernel-test: FAILED: see above (a spill, no loop found, or a compile error)"; fi
    exit "$status"
fi

# MARK: test runs

native_status=0
echo "== native ($(uname -m)): $clang_bin -O2 -std=gnu11 ... -lm -lpthread"
if "$clang_bin" -O2 -std=gnu11 "${includes[@]}" "${sources[@]}" Tests/ckernels/kernel_test.c \
    -o "$work/kernel_test" -lm -lpthread; then
    "$work/kernel_test" "${tables[@]}" | tee "$work/native.log"
    native_status=$?
else
    echo "kernel-test: the native build failed"
    native_status=1
fi

aarch64_status=0
aarch64_ran=0
not_run() {  # why
    echo "kernel-test: aarch64 run NOT done: $1"
    [ "$require_aarch64" = 1 ] && aarch64_status=1
}

if [ "$native_only" = 1 ]; then
    echo "kernel-test: aarch64 run not done: --native-only"
elif [ "$(uname -m)" = aarch64 ]; then
    echo "kernel-test: this machine is aarch64: the native run above was the aarch64 run"
else
    cross=(--target=aarch64-linux-gnu -mcpu=cortex-a72 -static)
    printf '#include <math.h>\n#include <stdio.h>\nint main(void) { printf("%%g\\n", fmaf(2.0f, 3.0f, 1.0f)); return 0; }\n' \
        >"$work/probe.c"
    if ! command -v qemu-aarch64-static >/dev/null 2>&1; then
        not_run "qemu-aarch64-static is not installed (Debian: apt-get install qemu-user-static)"
    elif ! "$clang_bin" "${cross[@]}" "$work/probe.c" -o "$work/probe" -lm 2>"$work/probe.err"; then
        packages="libc6-dev-arm64-cross libgcc-12-dev-arm64-cross binutils-aarch64-linux-gnu"
        not_run "$clang_bin cannot link a static aarch64 program (Debian: apt-get install $packages): $(grep -m1 error "$work/probe.err")"
    elif [ "$(qemu-aarch64-static -cpu cortex-a72 "$work/probe" 2>&1)" != 7 ]; then
        not_run "qemu-aarch64-static -cpu cortex-a72 does not run a static aarch64 program here"
    else
        echo "== aarch64 (qemu-aarch64-static -cpu cortex-a72):" \
             "$clang_bin ${cross[*]} -O2 -std=gnu11 ... -lm -lpthread"
        if "$clang_bin" "${cross[@]}" -O2 -std=gnu11 "${includes[@]}" "${sources[@]}" Tests/ckernels/kernel_test.c \
            -o "$work/kernel_test-aarch64" -lm -lpthread; then
            qemu-aarch64-static -cpu cortex-a72 "$work/kernel_test-aarch64" "${tables[@]}" | tee "$work/aarch64.log"
            aarch64_status=$?
            aarch64_ran=1
        else
            echo "kernel-test: the aarch64 build failed"
            aarch64_status=1
        fi
    fi
fi

# The same workload, the same bits: GEMM on every table, elementwise on every table but avx512.
digest_status=0
if [ "$aarch64_ran" = 1 ]; then
    [ -f "$work/native.log" ] &&
        read -r native_gemm native_ew < <(awk '$1 == "digest" && $2 == "reference" { print $4, $6 }' "$work/native.log")
    if [ -z "${native_gemm:-}" ]; then
        echo "kernel-test: digests not compared (the native run printed no reference digest)"
    else
        while read -r _ table _ gemm _ ew; do
            if [ "$gemm" != "$native_gemm" ] || { [ "$table" != avx512 ] && [ "$ew" != "$native_ew" ]; }; then
                echo "FAIL digest: aarch64 $table (gemm $gemm, elementwise $ew) differs from" \
                     "$(uname -m) reference (gemm $native_gemm, elementwise $native_ew)"
                digest_status=1
            else
                echo "ok   digest: aarch64 $table gives the same bits as $(uname -m) reference"
            fi
        done < <(grep '^digest ' "$work/aarch64.log")
        while read -r _ table _ gemm _ ew; do
            if [ "$gemm" != "$native_gemm" ] || { [ "$table" != avx512 ] && [ "$ew" != "$native_ew" ]; }; then
                echo "FAIL digest: $(uname -m) $table (gemm $gemm, elementwise $ew) differs from $(uname -m) reference"
                digest_status=1
            fi
        done < <(grep '^digest ' "$work/native.log")
    fi
fi

if [ "$native_status" != 0 ] || [ "$aarch64_status" != 0 ] || [ "$digest_status" != 0 ]; then
    echo "kernel-test: FAILED (native $native_status, aarch64 $aarch64_status, digests $digest_status)"
    exit 1
fi
echo "kernel-test: passed$([ "$aarch64_ran" = 1 ] && echo " natively and on aarch64" || echo " natively")"
