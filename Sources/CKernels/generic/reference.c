// The reference table: plain C for every kernel, the oracle the other tables are tested against
// (Tests/ckernels/kernel_test.c), and what a CPU with neither AVX2 nor NEON runs. It is built
// for the architecture's baseline, so its GEMM's fused multiply-adds are fmaf calls where the
// baseline has no FMA instruction: exact, and slow.
#include "../isa.h"
#include <math.h>

#define GEMM_MR 4
#define GEMM_NR 8
#define GEMM_A_IN_PLACE 1
#include "gemm_driver.h"

static void ukernel(long kc, const float *a, long a_ld, const float *b, long b_ld, float *c, long ldc, float beta,
                    long mr, long nr) {
    float acc[GEMM_MR * GEMM_NR] = {0};
    const long b_step = b_ld ? b_ld : GEMM_NR;
    for (long p = 0; p < kc; p++) {
        for (long i = 0; i < mr; i++) {
            const float ai = a_ld ? a[i * a_ld + p] : a[p * GEMM_MR + i];
            for (int j = 0; j < GEMM_NR; j++) acc[i * GEMM_NR + j] = fmaf(ai, b[p * b_step + j], acc[i * GEMM_NR + j]);
        }
    }
    gd_store_partial(acc, c, ldc, beta, mr, nr);
}

#include "elementwise.h"

// Eight independent scalar chains; the rate of plain C multiply-adds on this CPU.
static float reference_fma_chains(long rounds, double *flops_per_round) {
    volatile float x = 0.999999f, y = 1e-7f;
    float acc[8];
    for (int i = 0; i < 8; i++) acc[i] = (float)i;
    const float vx = x, vy = y;
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < 8; i++) acc[i] = acc[i] * vx + vy;
    }
    float s = 0;
    for (int i = 0; i < 8; i++) s += acc[i];
    *flops_per_round = 8.0 * 2;
    return s;
}

static int reference_cpu_supports(void) { return 1; }

const ck_kernel_table ck_reference_kernels = {
    .name = "reference",
    CK_GEMM_ENTRIES,
    CK_ELEMENTWISE_ENTRIES,
    .fma_chains = reference_fma_chains,
    .cpu_supports = reference_cpu_supports,
};
