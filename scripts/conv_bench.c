// Winograd against the direct convolution, one layer shape at a time, on the kernel table in use
// (Sources/CKernels: the CPU's own, or the one DIGITS_ISA names; built and run by
// `scripts/bench.sh conv`). For each shape: the largest
// difference from the convolution summed in double precision, then the median time of 7 rounds in
// which the two run alternately (100 calls each), and their ratio.
//
//   conv_bench C OUT H W K PAD SAMPLES   (one image shape; prints one markdown table row)
#include "ckernels.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static float *floats(long count) {
    float *p = aligned_alloc(64, sizeof(float) * (size_t)((count + 15) / 16 * 16));
    if (!p) { fprintf(stderr, "conv_bench: out of memory\n"); exit(1); }
    return p;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int ascending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: conv_bench C OUT H W K PAD SAMPLES\n");
        return 2;
    }
    long c = atol(argv[1]), m = atol(argv[2]), h = atol(argv[3]), w = atol(argv[4]), k = atol(argv[5]),
         pad = atol(argv[6]), n = atol(argv[7]);
    ck_conv_geometry g = {c, h, w, k, 1, pad, h + 2 * pad - k + 1, w + 2 * pad - k + 1};
    if (ck_isa_problem()) {
        fprintf(stderr, "conv_bench: %s\n", ck_isa_problem());
        return 2;
    }
    if (!ck_winograd_supported(&g) || n < 1) {
        fprintf(stderr, "conv_bench: not a Winograd geometry for the %s kernels: %s %s %s %s %s %s %s\n", ck_isa(),
                argv[1], argv[2], argv[3], argv[4], argv[5], argv[6], argv[7]);
        return 2;
    }
    const long oh = g.output_height, ow = g.output_width, patch = c * k * k, out_count = m * oh * ow;
    float *weights = floats(m * patch), *x = floats(n * c * h * w), *bias = floats(m), *y = floats(n * out_count);
    srand(1);
    for (long i = 0; i < m * patch; i++) weights[i] = rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < n * c * h * w; i++) x[i] = rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < m; i++) bias[i] = 0.1f * (float)i;
    float *u = floats(ck_winograd_weights_floats(m, c, k)), *scratch = floats(ck_winograd_scratch_floats(&g, m));
    float *packed = floats(ck_packed_a_floats(m, patch)), *columns = floats(ck_conv_columns_floats(&g));
    ck_winograd_weights(weights, m, c, k, 0, u);
    ck_pack_a(0, weights, patch, m, patch, 1.0f, packed);

    ck_winograd_conv(&g, m, u, x, n, bias, y, scratch);
    double worst = 0;
    for (long s = 0; s < n; s++) {
        for (long o = 0; o < m; o++) {
            for (long oy = 0; oy < oh; oy++) {
                for (long ox = 0; ox < ow; ox++) {
                    double sum = bias[o];
                    for (long ch = 0; ch < c; ch++) {
                        for (long ky = 0; ky < k; ky++) {
                            for (long kx = 0; kx < k; kx++) {
                                long iy = oy + ky - pad, ix = ox + kx - pad;
                                if (iy < 0 || ix < 0 || iy >= h || ix >= w) continue;
                                sum += (double)weights[((o * c + ch) * k + ky) * k + kx] * x[((s * c + ch) * h + iy) * w + ix];
                            }
                        }
                    }
                    double e = fabs(sum - y[s * out_count + (o * oh + oy) * ow + ox]);
                    if (e > worst) worst = e;
                }
            }
        }
    }

    enum { ROUNDS = 7, CALLS = 100 };
    double winograd[ROUNDS], direct[ROUNDS];
    for (int round = 0; round < ROUNDS; round++) {
        double t0 = seconds();
        for (int i = 0; i < CALLS; i++) ck_winograd_conv(&g, m, u, x, n, bias, y, scratch);
        double t1 = seconds();
        for (int i = 0; i < CALLS; i++) {
            for (long s = 0; s < n; s++) {
                ck_conv_columns cols;
                ck_conv_columns_prepare(&g, x + s * c * h * w, columns, &cols);
                float *ys = y + s * out_count;
                for (long o = 0; o < m; o++) {
                    for (long p = 0; p < oh * ow; p++) ys[o * oh * ow + p] = bias[o];
                }
                ck_conv_forward_gemm(m, oh * ow, patch, packed, &cols, 1.0f, ys, oh * ow);
            }
        }
        double t2 = seconds();
        winograd[round] = (t1 - t0) / CALLS;
        direct[round] = (t2 - t1) / CALLS;
    }
    qsort(winograd, ROUNDS, sizeof(double), ascending);
    qsort(direct, ROUNDS, sizeof(double), ascending);
    printf("| %ld -> %ld, %ld x %ld, %ldx%ld pad %ld, %ld samples | %.2g | %.3f | %.3f | %.2fx |\n", c, m, h, w, k, k, pad, n,
           worst, 1e3 * direct[ROUNDS / 2], 1e3 * winograd[ROUNDS / 2], direct[ROUNDS / 2] / winograd[ROUNDS / 2]);
    return 0;
}
