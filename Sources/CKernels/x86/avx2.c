// The AVX2+FMA table (x86-64 without AVX-512: Intel client CPUs, AMD Zen 1-3). Compiled with
// per-function target attributes, so the one x86-64 binary carries it and dispatch.c picks it
// from cpuid; the plain-C kernels (generic/elementwise.h) are compiled here for AVX2 as well.
#if defined(__x86_64__)
#include "../isa.h"
#include <immintrin.h>

#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)

// 6 x 16 register tile: 12 accumulators + 2 B vectors + 1 broadcast of A = 15 of the 16 ymm. A
// broadcast reads memory directly (vbroadcastss), so A is read in place as cheaply as packed.
#define GEMM_MR 6
#define GEMM_NR 16
#define GEMM_A_IN_PLACE 1
#include "../generic/gemm_driver.h"

static inline __m256 avx2_lane_mask(long count) {  // lanes [0, count) set
    const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), index));
}

static inline __attribute__((always_inline)) void avx2_tile_6x16(long kc, const float *restrict a, long a_ld,
                                                                   const float *restrict b, long b_ld, float *c,
                                                                   long ldc, float beta, long mr, long nr) {
    const float *row[GEMM_MR];
    for (int i = 0; i < GEMM_MR; i++) row[i] = a + (i < mr ? i : 0) * a_ld;
    const long b_step = b_ld ? b_ld : GEMM_NR;
    __m256 acc[GEMM_MR][2];
    for (int i = 0; i < GEMM_MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (long p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        for (int i = 0; i < GEMM_MR; i++) {
            const __m256 ai = _mm256_broadcast_ss(a_ld ? row[i] + p : a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        if (!a_ld) a += GEMM_MR;
        b += b_step;
    }
    const __m256 vb = _mm256_set1_ps(beta);
    if (mr == GEMM_MR && nr == GEMM_NR) {
        for (int i = 0; i < GEMM_MR; i++) {
            float *out = c + i * ldc;
            if (beta == 0.0f) {
                _mm256_storeu_ps(out, acc[i][0]);
                _mm256_storeu_ps(out + 8, acc[i][1]);
            } else {
                _mm256_storeu_ps(out, _mm256_fmadd_ps(vb, _mm256_loadu_ps(out), acc[i][0]));
                _mm256_storeu_ps(out + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(out + 8), acc[i][1]));
            }
        }
        return;
    }
    const __m256i m0 = _mm256_castps_si256(avx2_lane_mask(nr)), m1 = _mm256_castps_si256(avx2_lane_mask(nr - 8));
    for (int i = 0; i < GEMM_MR; i++) {
        if (i >= mr) break;
        float *out = c + i * ldc;
        __m256 x0 = acc[i][0], x1 = acc[i][1];
        if (beta != 0.0f) {
            x0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(out, m0), x0);
            x1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(out + 8, m1), x1);
        }
        _mm256_maskstore_ps(out, m0, x0);
        _mm256_maskstore_ps(out + 8, m1, x1);
    }
}

// One function per operand layout, so the layout flags cost nothing inside the loop.
static void ukernel(long kc, const float *a, long a_ld, const float *b, long b_ld, float *c, long ldc, float beta,
                    long mr, long nr) {
    if (a_ld) {
        if (b_ld) avx2_tile_6x16(kc, a, a_ld, b, b_ld, c, ldc, beta, mr, nr);
        else avx2_tile_6x16(kc, a, a_ld, b, 0, c, ldc, beta, mr, nr);
    } else {
        if (b_ld) avx2_tile_6x16(kc, a, 0, b, b_ld, c, ldc, beta, mr, nr);
        else avx2_tile_6x16(kc, a, 0, b, 0, c, ldc, beta, mr, nr);
    }
}

#include "../generic/elementwise.h"

// Twelve independent chains of 8-lane FMAs: more than FMA latency x ports on every AVX2 core.
static float avx2_fma_chains(long rounds, double *flops_per_round) {
    __m256 acc[12];
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
        __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]), "+x"(acc[4]), "+x"(acc[5]),
                         "+x"(acc[6]), "+x"(acc[7]), "+x"(acc[8]), "+x"(acc[9]), "+x"(acc[10]), "+x"(acc[11]));
    }
    __m256 s = acc[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, acc[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    *flops_per_round = 12.0 * 8 * 2;
    return out[0];
}

#pragma clang attribute pop

static int avx2_cpu_supports(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

#include "avx2.h"  // the kernels of x86/avx2_*.c

const ck_kernel_table ck_avx2_kernels = {
    .name = "avx2",
    CK_GEMM_ENTRIES,
    CK_ELEMENTWISE_ENTRIES,
    .winograd_supported = avx2_winograd_supported,
    .winograd_weights_floats = avx2_winograd_weights_floats,
    .winograd_weights = avx2_winograd_weights,
    .winograd_scratch_floats = avx2_winograd_scratch_floats,
    .winograd_conv = avx2_winograd_conv,
    .fma_chains = avx2_fma_chains,
    .cpu_supports = avx2_cpu_supports,
};
#endif
