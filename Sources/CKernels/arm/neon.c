// The NEON table (aarch64: the Raspberry Pi 4's Cortex-A72, the Pi 5's A76, Apple silicon). NEON
// is part of the aarch64 baseline, so there is no run-time check; the plain-C kernels
// (generic/elementwise.h) are compiled here for NEON as well.
#if defined(__aarch64__)
#include "../isa.h"
#include <arm_neon.h>

// 8 x 12 register tile: 24 accumulators + 3 B vectors + 2 A vectors = 29 of the 32 q registers.
// Each A element is used through a lane-indexed FMA (fmla v.4s, v.4s, v.s[lane]), so the 8 values
// of A cost two loads and no broadcasts: 5 loads feed 24 FMAs.
#define GEMM_MR 8
#define GEMM_NR 12
#include "../generic/gemm_driver.h"

#define NEON_ROW(i, av, lane)                                \
    acc##i##0 = vfmaq_laneq_f32(acc##i##0, b0, av, lane);   \
    acc##i##1 = vfmaq_laneq_f32(acc##i##1, b1, av, lane);   \
    acc##i##2 = vfmaq_laneq_f32(acc##i##2, b2, av, lane);
#define NEON_STORE(i)                                                                   \
    if (beta == 0.0f) {                                                                 \
        vst1q_f32(c + i * ldc, acc##i##0);                                              \
        vst1q_f32(c + i * ldc + 4, acc##i##1);                                          \
        vst1q_f32(c + i * ldc + 8, acc##i##2);                                          \
    } else {                                                                            \
        vst1q_f32(c + i * ldc, vfmaq_f32(acc##i##0, vb, vld1q_f32(c + i * ldc)));        \
        vst1q_f32(c + i * ldc + 4, vfmaq_f32(acc##i##1, vb, vld1q_f32(c + i * ldc + 4)));\
        vst1q_f32(c + i * ldc + 8, vfmaq_f32(acc##i##2, vb, vld1q_f32(c + i * ldc + 8)));\
    }

static inline __attribute__((always_inline)) void neon_tile_8x12(long kc, const float *restrict a,
                                                                   const float *restrict b, long b_step, float *c,
                                                                   long ldc, float beta) {
    float32x4_t acc00 = vdupq_n_f32(0), acc01 = acc00, acc02 = acc00, acc10 = acc00, acc11 = acc00, acc12 = acc00;
    float32x4_t acc20 = acc00, acc21 = acc00, acc22 = acc00, acc30 = acc00, acc31 = acc00, acc32 = acc00;
    float32x4_t acc40 = acc00, acc41 = acc00, acc42 = acc00, acc50 = acc00, acc51 = acc00, acc52 = acc00;
    float32x4_t acc60 = acc00, acc61 = acc00, acc62 = acc00, acc70 = acc00, acc71 = acc00, acc72 = acc00;
    for (long p = 0; p < kc; p++) {
        const float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
        const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
        NEON_ROW(0, a0, 0) NEON_ROW(1, a0, 1) NEON_ROW(2, a0, 2) NEON_ROW(3, a0, 3)
        NEON_ROW(4, a1, 0) NEON_ROW(5, a1, 1) NEON_ROW(6, a1, 2) NEON_ROW(7, a1, 3)
        a += GEMM_MR;
        b += b_step;
    }
    const float32x4_t vb = vdupq_n_f32(beta);
    NEON_STORE(0) NEON_STORE(1) NEON_STORE(2) NEON_STORE(3) NEON_STORE(4) NEON_STORE(5) NEON_STORE(6) NEON_STORE(7)
}

// Out of line, so the inner loop can be read in the assembly (scripts/kernel-test.sh --asm).
__attribute__((noinline)) static void neon_tile_packed(long kc, const float *a, const float *b, float *c, long ldc,
                                                       float beta) {
    neon_tile_8x12(kc, a, b, GEMM_NR, c, ldc, beta);
}

__attribute__((noinline)) static void neon_tile_b_rows(long kc, const float *a, const float *b, long ldb, float *c,
                                                       long ldc, float beta) {
    neon_tile_8x12(kc, a, b, ldb, c, ldc, beta);
}

// A is always packed here (the driver packs row-major A: lane-indexed FMAs need A in vectors). A
// partial tile is computed whole into a buffer and its corner stored.
static void ukernel(long kc, const float *a, long a_ld, const float *b, long b_ld, float *c, long ldc, float beta,
                    long mr, long nr) {
    (void)a_ld;
    if (mr == GEMM_MR && nr == GEMM_NR) {
        if (b_ld) neon_tile_b_rows(kc, a, b, b_ld, c, ldc, beta);
        else neon_tile_packed(kc, a, b, c, ldc, beta);
        return;
    }
    float acc[GEMM_MR * GEMM_NR];
    if (b_ld) neon_tile_b_rows(kc, a, b, b_ld, acc, GEMM_NR, 0.0f);
    else neon_tile_packed(kc, a, b, acc, GEMM_NR, 0.0f);
    gd_store_partial(acc, c, ldc, beta, mr, nr);
}

#include "../generic/elementwise.h"

// Sixteen independent chains of 4-lane FMAs (an A76 has 2 FMA pipes of latency 4: 8 in flight).
static float neon_fma_chains(long rounds, double *flops_per_round) {
    float32x4_t acc[16];
    const float32x4_t x = vdupq_n_f32(0.999999f), y = vdupq_n_f32(1e-7f);
    for (int i = 0; i < 16; i++) acc[i] = vdupq_n_f32((float)i);
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < 16; i++) acc[i] = vfmaq_f32(acc[i], x, y);
        __asm__ volatile("" : "+w"(acc[0]), "+w"(acc[1]), "+w"(acc[2]), "+w"(acc[3]), "+w"(acc[4]), "+w"(acc[5]),
                         "+w"(acc[6]), "+w"(acc[7]), "+w"(acc[8]), "+w"(acc[9]), "+w"(acc[10]), "+w"(acc[11]),
                         "+w"(acc[12]), "+w"(acc[13]), "+w"(acc[14]), "+w"(acc[15]));
    }
    float32x4_t s = acc[0];
    for (int i = 1; i < 16; i++) s = vaddq_f32(s, acc[i]);
    *flops_per_round = 16.0 * 4 * 2;
    return vgetq_lane_f32(s, 0);
}

static int neon_cpu_supports(void) { return 1; }

const ck_kernel_table ck_neon_kernels = {
    .name = "neon",
    CK_GEMM_ENTRIES,
    CK_ELEMENTWISE_ENTRIES,
    .fma_chains = neon_fma_chains,
    .cpu_supports = neon_cpu_supports,
};
#endif
