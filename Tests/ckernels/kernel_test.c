// Every kernel table this CPU can run, checked entry by entry against the reference table on odd
// sizes and edges, and the reference itself against the naive loops below (the contracts of
// ckernels.h written out as plainly as possible). Not a SwiftPM target: scripts/kernel-test.sh
// builds it from Sources/CKernels/**/*.c for this machine and, cross-compiled, for aarch64 under qemu.
//
// Exactness:
// - GEMM entries of every table (sgemm, pack_a/pack_b + sgemm_packed, the implicit-column GEMMs):
//   bit-identical to naive_gemm, whose summation order is the contract (k in ceil(k/256) equal
//   chunks, each summed from 0 by fmaf and added to C in turn), on 1 and 2 threads.
// - Non-GEMM entries of avx2 and neon (generic/elementwise.h, the reference's own source):
//   bit-identical to the reference, NaN payloads included.
// - The reference's non-GEMM entries: bit-identical to the naive loops, but for its double sums
//   (within 1e-12 of the sum of |terms| of long double sums); its halves against the hardware's
//   conversions (F16C on x86-64, fcvt on aarch64), NaN payloads included.
// - The hand-written avx512 entries, which fuse multiply-adds and sum in float lanes: the tolerances
//   of avx512_tolerance below; indices, argmax, dropout masks, halves and maxima exact, but a NaN
//   result may be another NaN (a "note" line counts them).
// - Winograd: within 1e-4 of the sum of |terms| of a direct convolution in double.
// Each table ends with a line "digest TABLE gemm X elementwise Y": a fixed workload's results
// hashed, which scripts/kernel-test.sh compares between the x86-64 and the aarch64 run.
//
// Usage: kernel_test [table ...]   (default: every table this CPU supports)
#pragma STDC FP_CONTRACT OFF
#include "isa.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// MARK: bookkeeping

typedef struct {
    const ck_kernel_table *table;
    char entry[96];
    long cases;
    int failed;
    char first[512];
} check;

static int entries_checked, entries_failed;
static const ck_kernel_table *ref;

static void begin(check *c, const ck_kernel_table *t, const char *entry) {
    memset(c, 0, sizeof *c);
    c->table = t;
    snprintf(c->entry, sizeof c->entry, "%s", entry);
}

static void fail(check *c, const char *format, ...) {
    if (c->failed) return;
    c->failed = 1;
    va_list args;
    va_start(args, format);
    vsnprintf(c->first, sizeof c->first, format, args);
    va_end(args);
}

static void end(check *c) {
    entries_checked++;
    if (c->failed) {
        entries_failed++;
        printf("FAIL %s %s (%ld cases): %s\n", c->table->name, c->entry, c->cases, c->first);
    } else {
        printf("ok   %s %s (%ld cases)\n", c->table->name, c->entry, c->cases);
    }
    fflush(stdout);
}

static int is_reference(const ck_kernel_table *t) { return t == ref; }
// avx2 and neon compile the reference's own source (elementwise.h); avx512 has hand-written kernels.
static int hand_written(const ck_kernel_table *t) { return strcmp(t->name, "avx512") == 0; }

static uint32_t bits_of(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}
static float float_of(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}
static uint64_t bits_of_double(double x) {
    uint64_t u;
    memcpy(&u, &x, 8);
    return u;
}

// Tolerances of the hand-written avx512 kernels: |got - want| <= tolerance * scale, scale being the
// sum of the magnitudes that enter the result (so cancellation does not make the bound meaningless).
enum tolerance_kind { sums, fused };
static double avx512_tolerance(enum tolerance_kind kind) {
    return kind == sums ? 1e-5   // channel sums: float lanes per run (up to ~800 terms) before double
                        : 1e-6;  // one result from 2-3 operations, fused or not: a few float roundings
}

// MARK: data

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint64_t next_random(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float uniform(float lo, float hi) { return lo + (hi - lo) * (float)(next_random() >> 40) * 0x1p-24f; }
static void fill(float *x, long n, float lo, float hi) {
    for (long i = 0; i < n; i++) x[i] = uniform(lo, hi);
}
// Multiples of 1/8 in [-2, 2]: many ties, many exact zeros, and products that round nowhere.
static void fill_quantized(float *x, long n) {
    for (long i = 0; i < n; i++) x[i] = (float)((long)(next_random() % 33) - 16) / 8.0f;
}

static float *floats(long n) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!p) abort();
    return p;
}
// Packed operands, implicit-column scratch and Winograd weights and scratch: 64-byte aligned, as the
// layers allocate them (the avx512 kernels load and store them with aligned instructions).
static float *aligned_floats(long n) {
    size_t bytes = (sizeof(float) * (size_t)(n > 0 ? n : 1) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (!p) abort();
    return p;
}
static float *copy_of(const float *x, long n) {
    float *p = floats(n);
    memcpy(p, x, sizeof(float) * (size_t)n);
    return p;
}

// MARK: comparisons

// Same bits (exact), or for avx512 within tol * scale[i] (scale NULL: |want|); NaN must meet NaN.
// Returns 0 and records the first mismatch.
static int compare_floats(check *c, const char *what, const float *got, const float *want, long n, int exact,
                          double tol, const float *scale) {
    for (long i = 0; i < n; i++) {
        int ok;
        if (exact) {
            ok = bits_of(got[i]) == bits_of(want[i]);
        } else if (isnan(want[i]) || isnan(got[i])) {
            ok = isnan(want[i]) && isnan(got[i]);
        } else if (isinf(want[i]) || isinf(got[i])) {
            ok = got[i] == want[i];
        } else {
            double bound = tol * (scale ? scale[i] : fabs((double)want[i]));
            ok = fabs((double)got[i] - (double)want[i]) <= bound;
        }
        if (!ok) {
            fail(c, "%s[%ld] = %.9g (0x%08x), want %.9g (0x%08x)", what, i, got[i], bits_of(got[i]), want[i],
                 bits_of(want[i]));
            return 0;
        }
    }
    return 1;
}

static int compare_ints(check *c, const char *what, const int *got, const int *want, long n) {
    for (long i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            fail(c, "%s[%ld] = %d, want %d", what, i, got[i], want[i]);
            return 0;
        }
    }
    return 1;
}

static int compare_double(check *c, const char *what, double got, double want, int exact, double tol, double scale) {
    int ok = exact ? bits_of_double(got) == bits_of_double(want) : fabs(got - want) <= tol * scale;
    if (!ok) fail(c, "%s = %.17g, want %.17g (scale %.3g)", what, got, want, scale);
    return ok;
}

// MARK: naive models (the oracle of the reference)

// The GEMM contract: chunks = ceil(k/256), kc = ceil(k/chunks); per element and chunk acc = Σ fmaf
// from 0 with a' = alpha * op(A) rounded to float (fold_alpha; else op(A) as is); the first chunk
// gives C = acc (beta == 0) or fmaf(beta, C, acc), each later one C + acc.
static void naive_gemm(int ta, int tb, long m, long n, long k, float alpha, int fold_alpha, const float *a, long lda,
                       const float *b, long ldb, float beta, float *c, long ldc) {
    const long chunks = (k + 255) / 256, kc = (k + chunks - 1) / chunks;
    for (long i = 0; i < m; i++) {
        for (long j = 0; j < n; j++) {
            float *out = c + i * ldc + j;
            for (long p0 = 0; p0 < k; p0 += kc) {
                float acc = 0;
                for (long p = p0; p < k && p < p0 + kc; p++) {
                    float av = ta ? a[p * lda + i] : a[i * lda + p];
                    if (fold_alpha) av = alpha * av;
                    acc = fmaf(av, tb ? b[j * ldb + p] : b[p * ldb + j], acc);
                }
                if (p0 == 0) *out = beta == 0.0f ? acc : fmaf(beta, *out, acc);
                else *out = *out + acc;
            }
        }
    }
}

static long output_size(long size, long kernel, long stride, long padding) {
    return size + 2 * padding < kernel ? 0 : (size + 2 * padding - kernel) / stride + 1;
}

static void naive_im2col(const ck_conv_geometry *g, const float *x, float *columns, long row_stride) {
    const long k = g->kernel;
    for (long c = 0; c < g->channels; c++)
        for (long ky = 0; ky < k; ky++)
            for (long kx = 0; kx < k; kx++)
                for (long oy = 0; oy < g->output_height; oy++)
                    for (long ox = 0; ox < g->output_width; ox++) {
                        long iy = oy * g->stride - g->padding + ky, ix = ox * g->stride - g->padding + kx;
                        int inside = iy >= 0 && iy < g->height && ix >= 0 && ix < g->width;
                        columns[((c * k + ky) * k + kx) * row_stride + oy * g->output_width + ox] =
                            inside ? x[(c * g->height + iy) * g->width + ix] : 0.0f;
                    }
}

static void naive_col2im_add(const ck_conv_geometry *g, const float *columns, long row_stride, float *dx) {
    const long k = g->kernel;
    for (long c = 0; c < g->channels; c++)
        for (long ky = 0; ky < k; ky++)
            for (long kx = 0; kx < k; kx++)
                for (long oy = 0; oy < g->output_height; oy++)
                    for (long ox = 0; ox < g->output_width; ox++) {
                        long iy = oy * g->stride - g->padding + ky, ix = ox * g->stride - g->padding + kx;
                        if (iy < 0 || iy >= g->height || ix < 0 || ix >= g->width) continue;
                        dx[(c * g->height + iy) * g->width + ix] +=
                            columns[((c * k + ky) * k + kx) * row_stride + oy * g->output_width + ox];
                    }
}

// The Swift loop ck_maxpool2x2 replaced, with the fused normalisation of ck_bn_relu_maxpool2x2.
static void naive_pool(const float *x, float *y, int *argmax, float *xhat_at_max, long planes, long h, long w,
                       int rectified, const float *mean, const float *inv_std, const float *gamma,
                       const float *beta) {
    const long oh = h / 2, ow = w / 2;
    for (long pl = 0; pl < planes; pl++) {
        for (long oy = 0; oy < oh; oy++) {
            for (long ox = 0; ox < ow; ox++) {
                long at[4] = {2 * oy * w + 2 * ox, 2 * oy * w + 2 * ox + 1, (2 * oy + 1) * w + 2 * ox,
                              (2 * oy + 1) * w + 2 * ox + 1};
                float best = 0, best_xhat = 0;
                long best_at = 0;
                for (int q = 0; q < 4; q++) {
                    float v = x[pl * h * w + at[q]], xh = 0;
                    if (mean) {
                        xh = (v - mean[pl]) * inv_std[pl];
                        v = gamma[pl] * xh + beta[pl];
                        if (v < 0) v = 0;
                    }
                    if (q == 0 || v > best) {
                        best = v;
                        best_xhat = xh;
                        best_at = at[q];
                    }
                }
                const long o = (pl * oh + oy) * ow + ox;
                y[o] = rectified == 2 && !(best > 0) ? 0 : best;
                argmax[o] = rectified && !(best > 0) ? ~(int)best_at : (int)best_at;
                if (xhat_at_max) xhat_at_max[o] = best_xhat;
            }
        }
    }
}

static uint64_t splitmix_finalize(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// KeyedRandom(key).next() n times, as Dropout.forward's Swift loop used them.
static void naive_dropout(uint64_t key, const float *x, float *y, float *mask, long count, uint32_t threshold,
                          float scale) {
    uint64_t counter = 0;
    for (long i = 0; i < count; i += 2) {
        counter++;
        uint64_t bits = splitmix_finalize(key + counter * 0x9E3779B97F4A7C15ull);
        mask[i] = (uint32_t)(bits & 0xFFFFFF) < threshold ? scale : 0;
        if (i + 1 < count) mask[i + 1] = (uint32_t)((bits >> 32) & 0xFFFFFF) < threshold ? scale : 0;
    }
    for (long i = 0; i < count; i++) y[i] = x[i] * mask[i];
}

// The hardware's binary16 conversions: F16C on x86-64 (when present), fcvt on aarch64.
static int hardware_half_available(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c");
#elif defined(__aarch64__)
    return 1;
#else
    return 0;
#endif
}
#if defined(__x86_64__)
__attribute__((target("f16c"))) static unsigned short hardware_to_half(float x) {
    return (unsigned short)_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT);
}
__attribute__((target("f16c"))) static float hardware_from_half(unsigned short h) { return _cvtsh_ss(h); }
#elif defined(__aarch64__)
static unsigned short hardware_to_half(float x) {
    __fp16 h = (__fp16)x;
    unsigned short u;
    memcpy(&u, &h, 2);
    return u;
}
static float hardware_from_half(unsigned short u) {
    __fp16 h;
    memcpy(&h, &u, 2);
    return (float)h;
}
#else
static unsigned short hardware_to_half(float x) { (void)x; return 0; }
static float hardware_from_half(unsigned short h) { (void)h; return 0; }
#endif

// MARK: GEMM

static const long gemm_sizes[] = {1, 5, 6, 7, 8, 12, 13, 16, 17, 31, 33, 64, 100, 257, 300, 513};
enum { gemm_size_count = sizeof gemm_sizes / sizeof gemm_sizes[0] };
static const float betas[] = {0.0f, 1.0f, 0.5f};

// One sgemm against naive_gemm, with leading dimensions larger than needed; C's padding must stay
// untouched, and with beta == 0 C starts as NaN, which must not be read.
static void gemm_case(check *c, const ck_kernel_table *t, int ta, int tb, long m, long n, long k, float alpha,
                      float beta) {
    const long lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 5;
    float *a = floats((ta ? k : m) * lda), *b = floats((tb ? n : k) * ldb), *got = floats(m * ldc);
    fill(a, (ta ? k : m) * lda, -1, 1);
    fill(b, (tb ? n : k) * ldb, -1, 1);
    if (beta == 0.0f) {
        for (long i = 0; i < m * ldc; i++) got[i] = NAN;
    } else {
        fill(got, m * ldc, -1, 1);
    }
    float *want = copy_of(got, m * ldc);
    naive_gemm(ta, tb, m, n, k, alpha, 1, a, lda, b, ldb, beta, want, ldc);
    t->sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, got, ldc);
    c->cases++;
    if (!compare_floats(c, "C", got, want, m * ldc, 1, 0, 0)) {
        char where[160];
        snprintf(where, sizeof where, " [ta=%d tb=%d m=%ld n=%ld k=%ld alpha=%g beta=%g threads=%d]", ta, tb, m, n,
                 k, alpha, beta, ck_threads());
        strncat(c->first, where, sizeof c->first - strlen(c->first) - 1);
    }
    free(a);
    free(b);
    free(got);
    free(want);
}

static void test_sgemm(const ck_kernel_table *t, int threads) {
    check c;
    char name[64];
    snprintf(name, sizeof name, "sgemm (%d thread%s)", threads, threads > 1 ? "s" : "");
    begin(&c, t, name);
    long index = 0;
    // Every triple up to 33 with all four transposes; larger sizes against small partners; a few
    // large products (k = 257, 300, 513: two and three chunks of unequal and equal lengths).
    for (int mi = 0; mi < gemm_size_count; mi++)
        for (int ni = 0; ni < gemm_size_count; ni++)
            for (int ki = 0; ki < gemm_size_count; ki++) {
                long m = gemm_sizes[mi], n = gemm_sizes[ni], k = gemm_sizes[ki];
                int large = (m > 33) + (n > 33) + (k > 33);
                if (large > 1 && !(m * n * k <= 4000000 && (mi + ni + ki) % 5 == 0)) continue;
                if (large == 1 && (m * n * k > 600000 || (mi + ni + ki) % 2)) continue;
                for (int tr = 0; tr < 4; tr++) {
                    if (large && (tr + mi + ni + ki) % 2) continue;
                    float beta = betas[index % 3], alpha = index % 4 == 0 ? 1.0f : -0.75f;
                    index++;
                    gemm_case(&c, t, tr & 1, tr >> 1, m, n, k, alpha, beta);
                    if (c.failed) goto done;
                }
            }
    gemm_case(&c, t, 0, 0, 257, 300, 513, 1.0f, 0.5f);
    gemm_case(&c, t, 1, 1, 300, 257, 512, 1.5f, 1.0f);
    gemm_case(&c, t, 0, 1, 513, 100, 256, -1.0f, 0.0f);
done:
    end(&c);
}

// pack_a / pack_b + sgemm_packed: mode 0 A packed & B rows, 1 A rows & B packed, 2 both packed.
// The packed buffers are exactly packed_*_floats long, then a guard that must stay untouched.
static void packed_case(check *c, const ck_kernel_table *t, int mode, int ta, int tb, long m, long n, long k,
                        float alpha, float beta) {
    const long lda = (mode == 1 ? k : ta ? m : k) + 3, ldb = (mode == 0 ? n : tb ? k : n) + 2, ldc = n + 1;
    const long a_rows = mode == 1 ? m : ta ? k : m, b_rows = mode == 0 ? k : tb ? n : k;
    const long pa_floats = t->packed_a_floats(m, k), pb_floats = t->packed_b_floats(k, n), guard = 64;
    float *a = floats(a_rows * lda), *b = floats(b_rows * ldb), *got = floats(m * ldc);
    float *pa = aligned_floats(pa_floats + guard), *pb = aligned_floats(pb_floats + guard);
    fill(a, a_rows * lda, -1, 1);
    fill(b, b_rows * ldb, -1, 1);
    fill(got, m * ldc, -1, 1);
    if (beta == 0.0f)
        for (long i = 0; i < m * ldc; i++) got[i] = NAN;
    for (long i = 0; i < guard; i++) pa[pa_floats + i] = pb[pb_floats + i] = 12345.0f;
    float *want = copy_of(got, m * ldc);
    const float *a_arg = a, *b_arg = b;
    long a_ld = lda, b_ld = ldb;
    if (mode != 1) {
        t->pack_a(ta, a, lda, m, k, alpha, pa);
        a_arg = pa;
        a_ld = 0;
    }
    if (mode != 0) {
        t->pack_b(tb, b, ldb, k, n, pb);
        b_arg = pb;
        b_ld = 0;
    }
    naive_gemm(mode == 1 ? 0 : ta, mode == 0 ? 0 : tb, m, n, k, alpha, mode != 1, a, lda, b, ldb, beta, want, ldc);
    t->sgemm_packed(m, n, k, a_arg, a_ld, b_arg, b_ld, beta, got, ldc);
    c->cases++;
    for (long i = 0; i < guard; i++) {
        if (pa[pa_floats + i] != 12345.0f || pb[pb_floats + i] != 12345.0f) {
            fail(c, "pack wrote past packed_%s_floats [m=%ld n=%ld k=%ld]",
                 pa[pa_floats + i] != 12345.0f ? "a" : "b", m, n, k);
            break;
        }
    }
    if (!compare_floats(c, "C", got, want, m * ldc, 1, 0, 0)) {
        char where[160];
        snprintf(where, sizeof where, " [mode=%s ta=%d tb=%d m=%ld n=%ld k=%ld alpha=%g beta=%g threads=%d]",
                 mode == 0 ? "A packed, B rows" : mode == 1 ? "A rows, B packed" : "both packed", ta, tb, m, n, k,
                 alpha, beta, ck_threads());
        strncat(c->first, where, sizeof c->first - strlen(c->first) - 1);
    }
    free(a);
    free(b);
    free(got);
    free(want);
    free(pa);
    free(pb);
}

static void test_sgemm_packed(const ck_kernel_table *t, int threads) {
    static const long sizes[] = {1, 5, 7, 8, 12, 13, 16, 17, 33, 64, 100, 257, 300};
    const int count = sizeof sizes / sizeof sizes[0];
    check c;
    char name[64];
    snprintf(name, sizeof name, "pack_a/pack_b/sgemm_packed (%d thread%s)", threads, threads > 1 ? "s" : "");
    begin(&c, t, name);
    long index = 0;
    for (int mi = 0; mi < count; mi++)
        for (int ni = 0; ni < count; ni++)
            for (int ki = 0; ki < count; ki++) {
                long m = sizes[mi], n = sizes[ni], k = sizes[ki];
                if (m * n * k > 3000000 || ((m > 33) + (n > 33) + (k > 33) > 0 && (mi + ni + ki) % 3)) continue;
                int mode = (int)(index % 3), tr = (int)((index / 3) % 4);
                float beta = betas[(index / 2) % 3];
                index++;
                packed_case(&c, t, mode, tr & 1, tr >> 1, m, n, k, index % 2 ? 1.0f : 0.5f, beta);
                if (c.failed) goto done;
            }
    packed_case(&c, t, 0, 1, 0, 64, 784, 513, 1.0f, 0.0f);
    packed_case(&c, t, 1, 0, 1, 300, 257, 600, 1.0f, 1.0f);
done:
    end(&c);
}

// MARK: convolution columns

typedef struct {
    long c, h, w, k, s, p;
} shape;

static ck_conv_geometry geometry(shape sh) {
    ck_conv_geometry g = {sh.c, sh.h, sh.w, sh.k, sh.s, sh.p, output_size(sh.h, sh.k, sh.s, sh.p),
                          output_size(sh.w, sh.k, sh.s, sh.p)};
    return g;
}

static const long plane_sizes[][2] = {{1, 1}, {2, 3}, {3, 2}, {4, 4},  {5, 5},
                                      {7, 8}, {8, 7}, {13, 13}, {5, 14}, {28, 28}};
enum { plane_size_count = sizeof plane_sizes / sizeof plane_sizes[0] };

static void test_im2col(const ck_kernel_table *t) {
    check c1, c2;
    begin(&c1, t, "im2col");
    begin(&c2, t, "col2im_add");
    for (long ch = 1; ch <= 3; ch++)
        for (int ps = 0; ps < plane_size_count; ps++)
            for (long k = 1; k <= 5; k += 2)
                for (long s = 1; s <= 2; s++)
                    for (long p = 0; p <= 2; p++) {
                        shape sh = {ch, plane_sizes[ps][0], plane_sizes[ps][1], k, s, p};
                        ck_conv_geometry g = geometry(sh);
                        if (g.output_height < 1 || g.output_width < 1) continue;
                        const long pixels = g.output_height * g.output_width, rows = ch * k * k,
                                   row_stride = pixels + 3, in = ch * sh.h * sh.w;
                        float *x = floats(in), *got = floats(rows * row_stride), *want = floats(rows * row_stride);
                        fill(x, in, -1, 1);
                        for (long i = 0; i < rows * row_stride; i++) got[i] = want[i] = -777.0f;
                        if (is_reference(t)) naive_im2col(&g, x, want, row_stride);
                        else ref->im2col(&g, x, want, row_stride);
                        t->im2col(&g, x, got, row_stride);
                        c1.cases++;
                        if (!c1.failed && !compare_floats(&c1, "columns", got, want, rows * row_stride, 1, 0, 0)) {
                            char where[128];
                            snprintf(where, sizeof where, " [C=%ld H=%ld W=%ld K=%ld stride=%ld pad=%ld]", ch, sh.h,
                                     sh.w, k, s, p);
                            strncat(c1.first, where, sizeof c1.first - strlen(c1.first) - 1);
                        }
                        // col2im_add adds into a gradient that already holds values.
                        fill(got, rows * row_stride, -1, 1);
                        float *dx_got = floats(in), *dx_want;
                        fill(dx_got, in, -1, 1);
                        dx_want = copy_of(dx_got, in);
                        if (is_reference(t)) naive_col2im_add(&g, got, row_stride, dx_want);
                        else ref->col2im_add(&g, got, row_stride, dx_want);
                        t->col2im_add(&g, got, row_stride, dx_got);
                        c2.cases++;
                        // avx512's stride-1 kernel gathers in the same (ky, kx) order: equal values, but a
                        // -0 gradient may come back +0.
                        int exact = !hand_written(t) || s != 1;
                        if (!c2.failed && !compare_floats(&c2, "input_gradient", dx_got, dx_want, in, exact, 0, 0)) {
                            char where[128];
                            snprintf(where, sizeof where, " [C=%ld H=%ld W=%ld K=%ld stride=%ld pad=%ld]", ch, sh.h,
                                     sh.w, k, s, p);
                            strncat(c2.first, where, sizeof c2.first - strlen(c2.first) - 1);
                        }
                        free(x);
                        free(got);
                        free(want);
                        free(dx_got);
                        free(dx_want);
                    }
    end(&c1);
    end(&c2);
}

// The implicit-column GEMMs against the explicit columns and naive_gemm: the same bits.
static void test_conv_columns(const ck_kernel_table *t, int threads) {
    const int any = t->conv_columns_floats || t->conv_columns_prepare || t->conv_forward_gemm ||
                    t->conv_weight_gradient_gemm;
    if (!any) return;
    check c;
    char name[80];
    snprintf(name, sizeof name, "conv_forward_gemm/conv_weight_gradient_gemm (%d thread%s)", threads,
             threads > 1 ? "s" : "");
    begin(&c, t, name);
    if (!t->conv_columns_floats || !t->conv_columns_prepare || !t->conv_forward_gemm ||
        !t->conv_weight_gradient_gemm) {
        fail(&c, "the implicit-column entries must be all NULL or all present");
        end(&c);
        return;
    }
    long supported = 0;
    for (long ch = 1; ch <= 8; ch += 3)
        for (int ps = 0; ps < plane_size_count; ps++)
            for (long k = 1; k <= 5; k += 2)
                for (long p = 0; p <= 2; p++)
                    for (long s = 1; s <= 2; s++) {
                        shape sh = {ch, plane_sizes[ps][0], plane_sizes[ps][1], k, s, p};
                        ck_conv_geometry g = geometry(sh);
                        if (g.output_height < 1 || g.output_width < 1) continue;
                        long scratch_floats = t->conv_columns_floats(&g);
                        if (s != 1 && scratch_floats != 0) {
                            fail(&c, "conv_columns_floats = %ld for stride %ld, want 0", scratch_floats, s);
                            continue;
                        }
                        if (scratch_floats == 0) continue;
                        supported++;
                        const long pixels = g.output_height * g.output_width, rows = ch * k * k,
                                   in = ch * sh.h * sh.w;
                        float *x = floats(in), *scratch = aligned_floats(scratch_floats);
                        float *columns = floats(rows * pixels);
                        fill(x, in, -1, 1);
                        ref->im2col(&g, x, columns, pixels);
                        ck_conv_columns cols;
                        t->conv_columns_prepare(&g, x, scratch, &cols);
                        for (long oc = 1; oc <= 16; oc += 15) {
                            const float beta = betas[(oc + ps + k) % 3];
                            // Forward: C (oc, pixels) = W (oc, rows) · columns.
                            const long ldc = pixels + 2;
                            float *w = floats(oc * rows), *pa = aligned_floats(t->packed_a_floats(oc, rows));
                            float *got = floats(oc * ldc);
                            fill(w, oc * rows, -1, 1);
                            fill(got, oc * ldc, -1, 1);
                            if (beta == 0.0f)
                                for (long i = 0; i < oc * ldc; i++) got[i] = NAN;
                            float *want = copy_of(got, oc * ldc);
                            t->pack_a(0, w, rows, oc, rows, 1.0f, pa);
                            naive_gemm(0, 0, oc, pixels, rows, 1.0f, 1, w, rows, columns, pixels, beta, want, ldc);
                            t->conv_forward_gemm(oc, pixels, rows, pa, &cols, beta, got, ldc);
                            c.cases++;
                            if (!c.failed && !compare_floats(&c, "forward C", got, want, oc * ldc, 1, 0, 0)) {
                                char where[128];
                                snprintf(where, sizeof where, " [C=%ld H=%ld W=%ld K=%ld pad=%ld oc=%ld beta=%g]", ch,
                                         sh.h, sh.w, k, p, oc, beta);
                                strncat(c.first, where, sizeof c.first - strlen(c.first) - 1);
                            }
                            free(got);
                            free(want);
                            free(pa);
                            // Weight gradient: C (rows, oc) = columns (rows, pixels) · B (pixels, oc).
                            const long ldc2 = oc + 3;
                            float *pb = aligned_floats(t->packed_b_floats(pixels, oc));
                            got = floats(rows * ldc2);
                            fill(got, rows * ldc2, -1, 1);
                            if (beta == 0.0f)
                                for (long i = 0; i < rows * ldc2; i++) got[i] = NAN;
                            want = copy_of(got, rows * ldc2);
                            float *dy = floats(pixels * oc);
                            fill(dy, pixels * oc, -1, 1);
                            t->pack_b(0, dy, oc, pixels, oc, pb);
                            naive_gemm(0, 0, rows, oc, pixels, 1.0f, 0, columns, pixels, dy, oc, beta, want, ldc2);
                            t->conv_weight_gradient_gemm(rows, oc, pixels, &cols, pb, beta, got, ldc2);
                            c.cases++;
                            if (!c.failed &&
                                !compare_floats(&c, "weight gradient C", got, want, rows * ldc2, 1, 0, 0)) {
                                char where[128];
                                snprintf(where, sizeof where, " [C=%ld H=%ld W=%ld K=%ld pad=%ld oc=%ld beta=%g]", ch,
                                         sh.h, sh.w, k, p, oc, beta);
                                strncat(c.first, where, sizeof c.first - strlen(c.first) - 1);
                            }
                            free(got);
                            free(want);
                            free(pb);
                            free(dy);
                            free(w);
                        }
                        free(x);
                        free(scratch);
                        free(columns);
                    }
    if (supported == 0) fail(&c, "conv_columns_floats answered 0 for every stride-1 geometry");
    end(&c);
}

// MARK: Winograd

// out (samples, m, OH, OW) = bias + the direct convolution of x (samples, c, H, W) with w, where
// w(o, ch, ky, kx) is read at w[o * wo + ch * wc + ky * wy + kx * wx] (so a flipped, transposed kernel
// is the same loop); scale gets Σ |terms| per output.
static void direct_conv(const ck_conv_geometry *g, long m, const float *w, long wo, long wc, long wy, long wx,
                        const float *x, long samples, const float *bias, double *out, double *scale) {
    const long oh = g->output_height, ow = g->output_width, r = g->kernel;
    for (long s = 0; s < samples; s++)
        for (long o = 0; o < m; o++)
            for (long oy = 0; oy < oh; oy++)
                for (long ox = 0; ox < ow; ox++) {
                    double sum = bias ? bias[o] : 0, magnitude = bias ? fabs(bias[o]) : 0;
                    for (long ch = 0; ch < g->channels; ch++)
                        for (long ky = 0; ky < r; ky++)
                            for (long kx = 0; kx < r; kx++) {
                                long iy = oy - g->padding + ky, ix = ox - g->padding + kx;
                                if (iy < 0 || iy >= g->height || ix < 0 || ix >= g->width) continue;
                                double term = (double)w[o * wo + ch * wc + ky * wy + kx * wx] *
                                              x[((s * g->channels + ch) * g->height + iy) * g->width + ix];
                                sum += term;
                                magnitude += fabs(term);
                            }
                    long at = ((s * m + o) * oh + oy) * ow + ox;
                    out[at] = sum;
                    scale[at] = magnitude;
                }
}

static void test_winograd(const ck_kernel_table *t, int threads) {
    const int any = t->winograd_supported || t->winograd_weights_floats || t->winograd_weights ||
                    t->winograd_scratch_floats || t->winograd_conv;
    if (!any) return;
    check c;
    char name[64];
    snprintf(name, sizeof name, "winograd (%d thread%s)", threads, threads > 1 ? "s" : "");
    begin(&c, t, name);
    if (!t->winograd_supported || !t->winograd_weights_floats || !t->winograd_weights || !t->winograd_scratch_floats ||
        !t->winograd_conv) {
        fail(&c, "the Winograd entries must be all NULL or all present");
        end(&c);
        return;
    }
    static const long channel_counts[] = {1, 3, 16};
    static const long sizes[][2] = {{4, 4}, {5, 7}, {7, 5}, {14, 14}, {13, 28}, {28, 28}};
    const double tol = 1e-4;
    long supported = 0;
    for (int ci = 0; ci < 3; ci++)
        for (int si = 0; si < 6; si++)
            for (long r = 3; r <= 5; r += 2)
                for (long p = 0; p < r && p <= 2; p++)
                    for (int adjoint = 0; adjoint <= 1; adjoint++) {
                        const long ch = channel_counts[ci], oc = channel_counts[(ci + si + 1) % 3];
                        const long samples = 1 + (si + p) % 3;
                        const long h = sizes[si][0], w_ = sizes[si][1];
                        // The layer: oc outputs from ch channels. Its adjoint: ch outputs from oc channels of
                        // the layer's output size, padding r - 1 - p.
                        ck_conv_geometry layer = {ch, h, w_, r, 1, p, output_size(h, r, 1, p),
                                                  output_size(w_, r, 1, p)};
                        if (layer.output_height < 1 || layer.output_width < 1) continue;
                        ck_conv_geometry g = layer;
                        long m = oc;
                        if (adjoint) {
                            const long q = r - 1 - p;
                            ck_conv_geometry a = {oc, layer.output_height, layer.output_width, r, 1, q,
                                                  output_size(layer.output_height, r, 1, q),
                                                  output_size(layer.output_width, r, 1, q)};
                            g = a;
                            m = ch;
                        }
                        if (!t->winograd_supported(&g)) continue;
                        supported++;
                        const long in = samples * g.channels * g.height * g.width,
                                   out = samples * m * g.output_height * g.output_width;
                        float *w = floats(oc * ch * r * r);
                        float *u = aligned_floats(t->winograd_weights_floats(m, g.channels, r));
                        float *x = floats(in), *y = floats(out), *bias = floats(m);
                        float *scratch = aligned_floats(t->winograd_scratch_floats(&g, m));
                        double *want = malloc(sizeof(double) * (size_t)out);
                        double *scale = malloc(sizeof(double) * (size_t)out);
                        fill(w, oc * ch * r * r, -1, 1);
                        fill(x, in, -1, 1);
                        fill(bias, m, -1, 1);
                        const int with_bias = (si + r) % 2;
                        t->winograd_weights(w, oc, ch, r, adjoint, u);
                        t->winograd_conv(&g, m, u, x, samples, with_bias ? bias : NULL, y, scratch);
                        if (adjoint) {  // output ch from input oc: w(o, c, r-1-ky, r-1-kx) as (c, o, ky, kx)
                            direct_conv(&g, m, w + (r * r - 1), r * r, ch * r * r, -r, -1, x, samples,
                                        with_bias ? bias : NULL, want, scale);
                        } else {
                            direct_conv(&g, m, w, ch * r * r, r * r, r, 1, x, samples, with_bias ? bias : NULL, want,
                                        scale);
                        }
                        c.cases++;
                        for (long i = 0; i < out && !c.failed; i++) {
                            if (!(fabs(y[i] - want[i]) <= tol * scale[i] + 1e-6)) {
                                fail(&c,
                                     "output[%ld] = %.9g, want %.9g (scale %.3g) "
                                     "[%s C=%ld H=%ld W=%ld r=%ld pad=%ld m=%ld samples=%ld]",
                                     i, y[i], want[i], scale[i], adjoint ? "adjoint" : "layer", g.channels, g.height,
                                     g.width, r, g.padding, m, samples);
                            }
                        }
                        free(w);
                        free(u);
                        free(x);
                        free(y);
                        free(bias);
                        free(scratch);
                        free(want);
                        free(scale);
                    }
    if (supported == 0) fail(&c, "winograd_supported answered 0 for every geometry");
    end(&c);
}

// MARK: batch normalisation

static const long batches[] = {1, 3, 7, 17};
static const long pixel_counts[] = {1, 3, 7, 15, 16, 17, 33, 100, 784};
enum { batch_count = 4, pixel_count_count = 9 };

static void test_channel_sums(const ck_kernel_table *t) {
    check cv, cg;
    begin(&cv, t, "channel_shifted_sums");
    begin(&cg, t, "channel_gradient_sums");
    const int exact = !hand_written(t);
    // The reference against long double sums: its own rounding only.
    const double tol = is_reference(t) ? 1e-12 : avx512_tolerance(sums);
    for (int bi = 0; bi < batch_count; bi++)
        for (int pi = 0; pi < pixel_count_count; pi++) {
            const long batch = batches[bi], pixels = pixel_counts[pi], channels = 3, stride = channels * pixels;
            float *x = floats(batch * stride), *dy = floats(batch * stride), *xhat = floats(batch * stride);
            fill(x, batch * stride, 2.5f, 4.0f);  // an offset from 0, as activations have
            fill(dy, batch * stride, -1, 1);
            fill(xhat, batch * stride, -3, 3);
            const float *xc = x + pixels, *dyc = dy + pixels, *hc = xhat + pixels;  // channel 1 of 3
            const float shift = xc[0];
            long double shifted = 0, shifted_abs = 0, shifted_squares = 0, g0 = 0, g0_abs = 0, g1 = 0,
                        g1_abs = 0;
            for (long n = 0; n < batch; n++)
                for (long p = 0; p < pixels; p++) {
                    long double e = (long double)xc[n * stride + p] - shift;
                    shifted += e;
                    shifted_abs += fabsl(e);
                    shifted_squares += e * e;
                    long double dv = dyc[n * stride + p], hv = hc[n * stride + p];
                    g0 += dv;
                    g0_abs += fabsl(dv);
                    g1 += dv * hv;
                    g1_abs += fabsl(dv * hv);
                }
            double want_shifted[2], want_gradient[2];
            if (is_reference(t)) {
                want_shifted[0] = (double)shifted;
                want_shifted[1] = (double)shifted_squares;
                want_gradient[0] = (double)g0;
                want_gradient[1] = (double)g1;
            } else {
                ref->channel_shifted_sums(xc, batch, pixels, stride, shift, want_shifted);
                ref->channel_gradient_sums(dyc, hc, batch, pixels, stride, want_gradient);
            }
            const int e = exact && !is_reference(t);
            double got_shifted[2], got_gradient[2];
            t->channel_shifted_sums(xc, batch, pixels, stride, shift, got_shifted);
            t->channel_gradient_sums(dyc, hc, batch, pixels, stride, got_gradient);
            cv.cases++;
            cg.cases++;
            char where[64];
            snprintf(where, sizeof where, " [batch=%ld pixels=%ld]", batch, pixels);
            if (!cv.failed &&
                (!compare_double(&cv, "sums[0]", got_shifted[0], want_shifted[0], e, tol, (double)shifted_abs) ||
                               !compare_double(&cv, "sums[1]", got_shifted[1], want_shifted[1], e, tol,
                                               (double)shifted_squares)))
                strncat(cv.first, where, sizeof cv.first - strlen(cv.first) - 1);
            if (!cg.failed &&
                (!compare_double(&cg, "sums[0]", got_gradient[0], want_gradient[0], e, tol, (double)g0_abs) ||
                 !compare_double(&cg, "sums[1]", got_gradient[1], want_gradient[1], e, tol, (double)g1_abs)))
                strncat(cg.first, where, sizeof cg.first - strlen(cg.first) - 1);
            free(x);
            free(dy);
            free(xhat);
        }
    end(&cv);
    end(&cg);
}

static void naive_normalize(const float *x, float *xhat, float *y, long batch, long pixels, long stride, float mean,
                            float inv_std, float gamma, float beta, int rectify) {
    for (long n = 0; n < batch; n++)
        for (long p = 0; p < pixels; p++) {
            const long i = n * stride + p;
            const float h = (x[i] - mean) * inv_std, v = gamma * h + beta;
            xhat[i] = h;
            y[i] = rectify && v < 0 ? 0 : v;
        }
}

static void test_channel_normalize(const ck_kernel_table *t) {
    check c;
    begin(&c, t, "channel_normalize");
    const int exact = !hand_written(t);
    for (int bi = 0; bi < batch_count; bi++)
        for (int pi = 0; pi < pixel_count_count; pi++)
            for (int rectify = 0; rectify <= 1; rectify++)
                for (int in_place = 0; in_place <= 1; in_place++) {
                    const long batch = batches[bi], pixels = pixel_counts[pi], stride = 2 * pixels, n = batch * stride;
                    float *x = floats(n), *xhat = floats(n), *y = floats(n);
                    float *want_xhat = floats(n), *want_y = floats(n);
                    fill(x, n, -2, 2);
                    // NaN stays NaN (rectified too); infinities and -0 pass through.
                    for (long b = 0; b < batch; b++) x[b * stride + pixels] = NAN;
                    if (pixels > 2) x[pixels + 2] = INFINITY;
                    if (pixels > 3) x[pixels + 3] = -INFINITY;
                    if (pixels > 5) x[pixels + 5] = -0.0f;
                    const float mean = 0.125f + (float)pi / 64, inv_std = 1.75f, gamma = (bi % 2 ? -0.8f : 1.3f),
                                beta = 0.3f;
                    memset(xhat, 0, sizeof(float) * (size_t)n);
                    memcpy(want_xhat, xhat, sizeof(float) * (size_t)n);
                    memcpy(y, x, sizeof(float) * (size_t)n);
                    memcpy(want_y, x, sizeof(float) * (size_t)n);
                    // Channel 1 of 2 (offset pixels); in place: y is x.
                    float *xc = in_place ? y + pixels : x + pixels;
                    if (is_reference(t)) {
                        naive_normalize(x + pixels, want_xhat + pixels, want_y + pixels, batch, pixels, stride, mean,
                                        inv_std, gamma, beta, rectify);
                    } else {
                        ref->channel_normalize(x + pixels, want_xhat + pixels, want_y + pixels, batch, pixels, stride,
                                               mean, inv_std, gamma, beta, rectify);
                    }
                    t->channel_normalize(xc, xhat + pixels, y + pixels, batch, pixels, stride, mean, inv_std, gamma,
                                         beta, rectify);
                    for (long i = pixels; i < n; i += stride)  // a NaN stays NaN, rectified or not
                        if (isnan(x[i]) && !isnan(y[i])) fail(&c, "NaN input at %ld gave y = %.9g", i, y[i]);
                    float *scale = floats(n);
                    for (long i = 0; i < n; i++) scale[i] = fabsf(gamma * want_xhat[i]) + fabsf(beta);
                    c.cases++;
                    char where[96];
                    snprintf(where, sizeof where, " [batch=%ld pixels=%ld rectify=%d in_place=%d]", batch, pixels,
                             rectify, in_place);
                    if (!c.failed && (!compare_floats(&c, "xhat", xhat, want_xhat, n, exact, 0, 0) ||
                                      !compare_floats(&c, "y", y, want_y, n, exact, avx512_tolerance(fused), scale)))
                        strncat(c.first, where, sizeof c.first - strlen(c.first) - 1);
                    free(x);
                    free(xhat);
                    free(y);
                    free(want_xhat);
                    free(want_y);
                    free(scale);
                }
    end(&c);
}

static void test_channel_input_gradient(const ck_kernel_table *t) {
    check c;
    begin(&c, t, "channel_input_gradient");
    const int exact = !hand_written(t);
    for (int bi = 0; bi < batch_count; bi++)
        for (int pi = 0; pi < pixel_count_count; pi++)
            for (int in_place = 0; in_place <= 1; in_place++) {
                const long batch = batches[bi], pixels = pixel_counts[pi], stride = 3 * pixels, n = batch * stride;
                float *dy = floats(n), *xhat = floats(n), *dx = floats(n), *want = floats(n), *scale = floats(n);
                fill(dy, n, -1, 1);
                fill(xhat, n, -3, 3);
                fill(dx, n, -1, 1);
                memcpy(want, in_place ? dy : dx, sizeof(float) * (size_t)n);
                const float m = (float)(batch * pixels), k = 0.37f / m, sum_dy = 0.61f * (float)pi,
                            sum_dy_xhat = -1.7f + (float)bi;
                const long o = 2 * pixels;  // channel 2 of 3
                if (is_reference(t)) {
                    for (long b = 0; b < batch; b++)
                        for (long p = 0; p < pixels; p++) {
                            const long i = o + b * stride + p;
                            want[i] = k * ((m * dy[i] - sum_dy) - xhat[i] * sum_dy_xhat);
                        }
                } else {
                    ref->channel_input_gradient(dy + o, xhat + o, want + o, batch, pixels, stride, k, m, sum_dy,
                                                sum_dy_xhat);
                }
                for (long i = 0; i < n; i++)
                    scale[i] = fabsf(k) * (fabsf(m * dy[i]) + fabsf(sum_dy) + fabsf(xhat[i] * sum_dy_xhat));
                float *out = in_place ? dy : dx;
                t->channel_input_gradient(dy + o, xhat + o, out + o, batch, pixels, stride, k, m, sum_dy, sum_dy_xhat);
                c.cases++;
                if (!c.failed && !compare_floats(&c, "dx", out, want, n, exact, avx512_tolerance(fused), scale)) {
                    char where[96];
                    snprintf(where, sizeof where, " [batch=%ld pixels=%ld in_place=%d]", batch, pixels, in_place);
                    strncat(c.first, where, sizeof c.first - strlen(c.first) - 1);
                }
                free(dy);
                free(xhat);
                free(dx);
                free(want);
                free(scale);
            }
    end(&c);
}

// MARK: pooling

static const long pool_sizes[][2] = {{1, 1}, {1, 4}, {2, 2}, {3, 3}, {4, 5}, {5, 4}, {7, 7}, {8, 8},
                                     {13, 13}, {16, 16}, {17, 17}, {14, 33}, {28, 28}, {33, 34}, {6, 66}};
enum { pool_size_count = sizeof pool_sizes / sizeof pool_sizes[0] };

static void test_maxpool(const ck_kernel_table *t) {
    check c, cb;
    begin(&c, t, "maxpool2x2");
    begin(&cb, t, "maxpool2x2_backward");
    for (int si = 0; si < pool_size_count; si++)
        for (long planes = 1; planes <= 3; planes += 2)
            for (int rectified = 0; rectified <= 2; rectified++)
                for (int data = 0; data < 3; data++) {
                    const long h = pool_sizes[si][0], w = pool_sizes[si][1], in = planes * h * w,
                               out = planes * (h / 2) * (w / 2), guard = 8;
                    float *x = floats(in), *y = floats(out + guard), *want_y = floats(out + guard);
                    int *index = malloc(sizeof(int) * (size_t)(out + guard)),
                        *want_index = malloc(sizeof(int) * (size_t)(out + guard));
                    // data 0: random; 1: multiples of 1/8 (ties, zeros, all-negative windows); 2: with NaNs.
                    if (data == 1) fill_quantized(x, in);
                    else fill(x, in, -1, 1);
                    if (data == 2)
                        for (long i = 0; i < in; i += 5) x[i] = NAN;
                    for (long i = 0; i < out + guard; i++) {
                        y[i] = want_y[i] = -555.0f;
                        index[i] = want_index[i] = 0x5A5A5A5A;
                    }
                    if (is_reference(t)) naive_pool(x, want_y, want_index, NULL, planes, h, w, rectified, 0, 0, 0, 0);
                    else ref->maxpool2x2(x, want_y, want_index, planes, h, w, rectified);
                    t->maxpool2x2(x, y, index, planes, h, w, rectified);
                    c.cases++;
                    char where[96];
                    snprintf(where, sizeof where, " [planes=%ld h=%ld w=%ld rectified=%d data=%d]", planes, h, w,
                             rectified, data);
                    if (!c.failed && (!compare_floats(&c, "y", y, want_y, out + guard, 1, 0, 0) ||
                                      !compare_ints(&c, "argmax", index, want_index, out + guard)))
                        strncat(c.first, where, sizeof c.first - strlen(c.first) - 1);
                    // Backward from the reference's indices; dx starts as garbage and must be written whole.
                    float *dy = floats(out), *dx = floats(in), *want_dx = floats(in);
                    fill(dy, out, -1, 1);
                    for (long i = 0; i < in; i++) dx[i] = want_dx[i] = 999.0f;
                    if (is_reference(t)) {
                        memset(want_dx, 0, sizeof(float) * (size_t)in);
                        for (long pl = 0; pl < planes; pl++)
                            for (long o = 0; o < (h / 2) * (w / 2); o++) {
                                int at = want_index[pl * (h / 2) * (w / 2) + o];
                                if (at >= 0) want_dx[pl * h * w + at] = dy[pl * (h / 2) * (w / 2) + o];
                            }
                    } else {
                        ref->maxpool2x2_backward(dy, want_index, want_dx, planes, h, w);
                    }
                    t->maxpool2x2_backward(dy, want_index, dx, planes, h, w);
                    cb.cases++;
                    if (!cb.failed && !compare_floats(&cb, "dx", dx, want_dx, in, !hand_written(t), 0, 0))
                        strncat(cb.first, where, sizeof cb.first - strlen(cb.first) - 1);
                    free(x);
                    free(y);
                    free(want_y);
                    free(index);
                    free(want_index);
                    free(dy);
                    free(dx);
                    free(want_dx);
                }
    end(&c);
    end(&cb);
}

// BatchNorm -> ReLU -> pooling and its two backward steps, over (batch, channels, h, w).
static void test_bn_pool(const ck_kernel_table *t) {
    check cf, cs, ci;
    begin(&cf, t, "bn_relu_maxpool2x2");
    begin(&cs, t, "bn_pool_gradient_sums");
    begin(&ci, t, "bn_pool_input_gradient");
    const int exact = !hand_written(t);
    for (int si = 0; si < pool_size_count; si++)
        for (long channels = 1; channels <= 5; channels += 2)
            for (int data = 0; data < 2; data++) {
                const long batch = 1 + (si + channels) % 4, h = pool_sizes[si][0], w = pool_sizes[si][1];
                const long pixels = h * w, out_pixels = (h / 2) * (w / 2), in = batch * channels * pixels,
                           out = batch * channels * out_pixels;
                float *x = floats(in), *mean = floats(channels), *inv_std = floats(channels), *gamma = floats(channels),
                      *beta = floats(channels);
                // data 1: every product and sum exact in float, so fused or not gives the same values, and
                // the ties (many windows all 0 after the ReLU) must go to the first element.
                if (data == 1) {
                    fill_quantized(x, in);
                    for (long ch = 0; ch < channels; ch++) {
                        mean[ch] = 0.25f * (float)ch;
                        inv_std[ch] = 2.0f;
                        gamma[ch] = ch % 2 ? -1.5f : 0.5f;
                        beta[ch] = ch % 3 ? 0.25f : -0.25f;
                    }
                } else {
                    fill(x, in, -2, 2);
                    fill(mean, channels, -0.3f, 0.3f);
                    fill(inv_std, channels, 0.5f, 2);
                    fill(gamma, channels, -1.5f, 1.5f);
                    fill(beta, channels, -0.5f, 0.5f);
                }
                float *y = floats(out), *xm = floats(out), *want_y = floats(out), *want_xm = floats(out);
                int *index = malloc(sizeof(int) * (size_t)(out + 1));
                int *want_index = malloc(sizeof(int) * (size_t)(out + 1));
                for (long n = 0; n < batch; n++) {  // one call per sample, as the layer makes them
                    const long i0 = n * channels * pixels, o0 = n * channels * out_pixels;
                    if (is_reference(t)) {
                        naive_pool(x + i0, want_y + o0, want_index + o0, want_xm + o0, channels, h, w, 1, mean, inv_std,
                                   gamma, beta);
                    } else {
                        ref->bn_relu_maxpool2x2(x + i0, want_y + o0, want_index + o0, want_xm + o0, channels, h, w,
                                                mean, inv_std, gamma, beta);
                    }
                    t->bn_relu_maxpool2x2(x + i0, y + o0, index + o0, xm + o0, channels, h, w, mean, inv_std, gamma,
                                          beta);
                }
                float *scale = floats(out);
                for (long i = 0; i < out; i++) {
                    const long ch = (i / out_pixels) % channels;
                    scale[i] = fabsf(gamma[ch] * want_xm[i]) + fabsf(beta[ch]);
                }
                cf.cases++;
                char where[96];
                snprintf(where, sizeof where, " [batch=%ld channels=%ld h=%ld w=%ld data=%d]", batch, channels, h, w,
                         data);
                if (!cf.failed && (!compare_ints(&cf, "argmax", index, want_index, out) ||
                                   !compare_floats(&cf, "y", y, want_y, out, exact, avx512_tolerance(fused), scale) ||
                                   !compare_floats(&cf, "xhat_at_max", xm, want_xm, out, exact, 0, 0)))
                    strncat(cf.first, where, sizeof cf.first - strlen(cf.first) - 1);

                // Backward, first step: per channel over the batch, from the reference's forward results.
                float *dpooled = floats(out);
                fill(dpooled, out, -1, 1);
                float *k = floats(channels), *sum_dy = floats(channels), *sum_dy_xhat = floats(channels);
                const float m_count = (float)(batch * pixels);
                for (long ch = 0; ch < channels; ch++) {
                    double got[2], want[2];
                    long double s0 = 0, s1 = 0, a0 = 0, a1 = 0;
                    for (long n = 0; n < batch; n++)
                        for (long o = 0; o < out_pixels; o++) {
                            const long i = (n * channels + ch) * out_pixels + o;
                            if (want_index[i] < 0) continue;
                            s0 += dpooled[i];
                            a0 += fabsf(dpooled[i]);
                            s1 += (long double)dpooled[i] * want_xm[i];
                            a1 += fabsl((long double)dpooled[i] * want_xm[i]);
                        }
                    const long stride = channels * out_pixels, first = ch * out_pixels;
                    if (is_reference(t)) {
                        want[0] = (double)s0;
                        want[1] = (double)s1;
                    } else {
                        ref->bn_pool_gradient_sums(dpooled + first, want_index + first, want_xm + first, batch,
                                                   out_pixels, stride, want);
                    }
                    t->bn_pool_gradient_sums(dpooled + first, want_index + first, want_xm + first, batch, out_pixels,
                                             stride, got);
                    const double tol = is_reference(t) ? 1e-12 : avx512_tolerance(sums);
                    const int e = exact && !is_reference(t);
                    cs.cases++;
                    if (!cs.failed && (!compare_double(&cs, "sums[0]", got[0], want[0], e, tol, (double)a0) ||
                                       !compare_double(&cs, "sums[1]", got[1], want[1], e, tol, (double)a1)))
                        strncat(cs.first, where, sizeof cs.first - strlen(cs.first) - 1);
                    k[ch] = gamma[ch] * inv_std[ch] / m_count;
                    sum_dy[ch] = (float)want[0];
                    sum_dy_xhat[ch] = (float)want[1];
                }

                // Second step: per sample, out of place and in place over x.
                for (int in_place = 0; in_place <= 1; in_place++) {
                    float *dx = floats(in), *want_dx = floats(in), *xs = copy_of(x, in), *scale_dx = floats(in);
                    fill(dx, in, -9, 9);
                    for (long n = 0; n < batch; n++) {
                        const long i0 = n * channels * pixels, o0 = n * channels * out_pixels;
                        if (is_reference(t)) {
                            for (long ch = 0; ch < channels; ch++) {
                                const float *xc = x + i0 + ch * pixels;
                                float *d = want_dx + i0 + ch * pixels;
                                for (long p = 0; p < pixels; p++) {
                                    const float xh = (xc[p] - mean[ch]) * inv_std[ch];
                                    d[p] = k[ch] * ((m_count * 0.0f - sum_dy[ch]) - xh * sum_dy_xhat[ch]);
                                }
                                for (long o = 0; o < out_pixels; o++) {
                                    const long i = o0 + ch * out_pixels + o;
                                    if (want_index[i] < 0) continue;
                                    const float t_max = (m_count * dpooled[i] - sum_dy[ch]) - want_xm[i] * sum_dy_xhat[ch];
                                    d[want_index[i]] = k[ch] * t_max;
                                }
                            }
                        } else {
                            ref->bn_pool_input_gradient(dpooled + o0, want_index + o0, want_xm + o0, x + i0,
                                                        want_dx + i0, channels, h, w, mean, inv_std, k, m_count, sum_dy,
                                                        sum_dy_xhat);
                        }
                        float *target = in_place ? xs : dx;
                        t->bn_pool_input_gradient(dpooled + o0, want_index + o0, want_xm + o0, xs + i0, target + i0,
                                                  channels, h, w, mean, inv_std, k, m_count, sum_dy, sum_dy_xhat);
                    }
                    for (long i = 0; i < in; i++) {
                        const long ch = (i / pixels) % channels;
                        const float xh = (x[i] - mean[ch]) * inv_std[ch];
                        scale_dx[i] = fabsf(k[ch]) * (fabsf(m_count) * 1.0f + fabsf(sum_dy[ch]) +
                                                      (fabsf(xh) + 4.0f) * fabsf(sum_dy_xhat[ch]));
                    }
                    ci.cases++;
                    char where2[128];
                    snprintf(where2, sizeof where2, " [batch=%ld channels=%ld h=%ld w=%ld data=%d in_place=%d]", batch,
                             channels, h, w, data, in_place);
                    if (!ci.failed && !compare_floats(&ci, "dx", in_place ? xs : dx, want_dx, in, exact,
                                                      avx512_tolerance(fused), scale_dx))
                        strncat(ci.first, where2, sizeof ci.first - strlen(ci.first) - 1);
                    free(dx);
                    free(want_dx);
                    free(xs);
                    free(scale_dx);
                }
                free(x);
                free(mean);
                free(inv_std);
                free(gamma);
                free(beta);
                free(y);
                free(xm);
                free(want_y);
                free(want_xm);
                free(index);
                free(want_index);
                free(scale);
                free(dpooled);
                free(k);
                free(sum_dy);
                free(sum_dy_xhat);
            }
    end(&cf);
    end(&cs);
    end(&ci);
}

// MARK: optimizer, dropout

static const long counts[] = {1, 2, 3, 7, 15, 16, 17, 33, 100, 1001};
enum { count_count = sizeof counts / sizeof counts[0] };

static void test_optimizers(const ck_kernel_table *t) {
    check ca, cs;
    begin(&ca, t, "adam");
    begin(&cs, t, "sgd");
    const int exact = !hand_written(t);
    const double tol = avx512_tolerance(fused);
    for (int ci = 0; ci < count_count; ci++)
        for (int variant = 0; variant < 4; variant++) {
            const long n = counts[ci];
            float *w = floats(n), *g = floats(n), *m = floats(n), *v = floats(n);
            fill(w, n, -1, 1);
            fill(g, n, -0.1f, 0.1f);
            fill(m, n, -0.05f, 0.05f);
            fill(v, n, 0, 0.01f);
            if (n > 3) g[3] = 0;
            const float beta1 = 0.9f, beta2 = 0.999f, epsilon = 1e-8f, lr = 1e-3f,
                        wd = variant & 2 ? 1e-2f : 0.0f;
            const int decoupled = variant & 1, t_step = 1 + 9 * (variant >> 1);
            const float step_size = lr / (1 - powf(beta1, (float)t_step)),
                        c2_root = sqrtf(1 - powf(beta2, (float)t_step));
            float *gw = copy_of(w, n), *gm = copy_of(m, n), *gv = copy_of(v, n);
            float *ww = copy_of(w, n), *wm = copy_of(m, n), *wv = copy_of(v, n);
            float *sw = floats(n), *sm = floats(n), *sv = floats(n);
            for (long i = 0; i < n; i++) {
                sw[i] = fabsf(w[i]) + 1e-3f;
                sm[i] = fabsf(m[i]) + fabsf(g[i]) + wd * fabsf(w[i]);
                sv[i] = fabsf(v[i]) + g[i] * g[i] + 1e-12f;
            }
            if (is_reference(t)) {  // the Swift loop ck_adam replaced
                for (long i = 0; i < n; i++) {
                    float grad = decoupled ? g[i] : g[i] + wd * ww[i];
                    wm[i] = beta1 * wm[i] + (1 - beta1) * grad;
                    wv[i] = beta2 * wv[i] + (1 - beta2) * grad * grad;
                    if (decoupled) ww[i] -= lr * wd * ww[i];
                    ww[i] -= step_size * wm[i] / (sqrtf(wv[i]) / c2_root + epsilon);
                }
            } else {
                ref->adam(ww, g, wm, wv, n, beta1, beta2, epsilon, lr, wd, decoupled, step_size, c2_root);
            }
            // Split in two calls: the same bits as one.
            const long first = n / 3;
            t->adam(gw, g, gm, gv, first, beta1, beta2, epsilon, lr, wd, decoupled, step_size, c2_root);
            t->adam(gw + first, g + first, gm + first, gv + first, n - first, beta1, beta2, epsilon, lr, wd, decoupled,
                    step_size, c2_root);
            ca.cases++;
            char where[96];
            snprintf(where, sizeof where, " [count=%ld decoupled=%d wd=%g t=%d]", n, decoupled, wd, t_step);
            if (!ca.failed && (!compare_floats(&ca, "w", gw, ww, n, exact, tol, sw) ||
                               !compare_floats(&ca, "m", gm, wm, n, exact, tol, sm) ||
                               !compare_floats(&ca, "v", gv, wv, n, exact, tol, sv)))
                strncat(ca.first, where, sizeof ca.first - strlen(ca.first) - 1);

            // SGD: heavy ball or Nesterov.
            const int nesterov = variant & 1;
            const float momentum = 0.9f, rate = 0.01f, decay = variant & 2 ? 5e-4f : 0.0f;
            memcpy(gw, w, sizeof(float) * (size_t)n);
            memcpy(gm, m, sizeof(float) * (size_t)n);
            memcpy(ww, w, sizeof(float) * (size_t)n);
            memcpy(wm, m, sizeof(float) * (size_t)n);
            if (is_reference(t)) {
                for (long i = 0; i < n; i++) {
                    float grad = g[i] + decay * ww[i];
                    wm[i] = momentum * wm[i] + grad;
                    ww[i] -= rate * (nesterov ? grad + momentum * wm[i] : wm[i]);
                }
            } else {
                ref->sgd(ww, g, wm, n, momentum, nesterov, rate, decay);
            }
            t->sgd(gw, g, gm, first, momentum, nesterov, rate, decay);
            t->sgd(gw + first, g + first, gm + first, n - first, momentum, nesterov, rate, decay);
            cs.cases++;
            snprintf(where, sizeof where, " [count=%ld nesterov=%d wd=%g]", n, nesterov, decay);
            if (!cs.failed && (!compare_floats(&cs, "w", gw, ww, n, exact, tol, sw) ||
                               !compare_floats(&cs, "m", gm, wm, n, exact, tol, sm)))
                strncat(cs.first, where, sizeof cs.first - strlen(cs.first) - 1);
            free(w);
            free(g);
            free(m);
            free(v);
            free(gw);
            free(gm);
            free(gv);
            free(ww);
            free(wm);
            free(wv);
            free(sw);
            free(sm);
            free(sv);
        }
    end(&ca);
    end(&cs);
}

static void test_dropout(const ck_kernel_table *t) {
    check c;
    begin(&c, t, "dropout");
    static const uint32_t thresholds[] = {0, 1u << 23, 15099494 /* 0.9 * 2^24 */, 1u << 24};
    for (int ci = 0; ci < count_count; ci++)
        for (int ti = 0; ti < 4; ti++) {
            const long n = counts[ci];
            const uint64_t key = next_random();
            const uint32_t threshold = thresholds[ti];
            const float scale = threshold ? 16777216.0f / (float)threshold : 1.0f;
            float *x = floats(n), *y = floats(n), *mask = floats(n), *want_y = floats(n), *want_mask = floats(n);
            fill(x, n, -1, 1);
            if (n > 4) x[4] = NAN;
            if (n > 5) x[5] = INFINITY;
            if (is_reference(t)) naive_dropout(key, x, want_y, want_mask, n, threshold, scale);
            else ref->dropout(key, x, want_y, want_mask, n, threshold, scale);
            t->dropout(key, x, y, mask, n, threshold, scale);
            c.cases++;
            if (!c.failed && (!compare_floats(&c, "mask", mask, want_mask, n, 1, 0, 0) ||
                              !compare_floats(&c, "y", y, want_y, n, 1, 0, 0))) {
                char where[96];
                snprintf(where, sizeof where, " [count=%ld threshold=%u]", n, threshold);
                strncat(c.first, where, sizeof c.first - strlen(c.first) - 1);
            }
            free(x);
            free(y);
            free(mask);
            free(want_y);
            free(want_mask);
        }
    end(&c);
}

// MARK: binary16

static int is_nan_half(unsigned short h) { return (h & 0x7C00) == 0x7C00 && (h & 0x3FF); }

// The hardware's sum of two halves, with the NaN rule of the contract: in's NaN, else inout's, made
// quiet; a NaN from inf - inf is 0x7E00.
static unsigned short half_sum(unsigned short a, unsigned short b) {
    if (is_nan_half(a)) return (unsigned short)(a | 0x200);
    if (is_nan_half(b)) return (unsigned short)(b | 0x200);
    unsigned short s = hardware_to_half(hardware_from_half(a) + hardware_from_half(b));
    return is_nan_half(s) ? 0x7E00 : s;
}

// Same bits, except that avx512 may give another NaN (payload or sign) where the reference gives a NaN.
static long nan_payload_differences;
static int compare_halves(check *c, const char *what, const unsigned short *got, const unsigned short *want, long n,
                          int payloads_exact) {
    for (long i = 0; i < n; i++) {
        if (got[i] == want[i]) continue;
        if (!payloads_exact && is_nan_half(got[i]) && is_nan_half(want[i])) {
            nan_payload_differences++;
            continue;
        }
        fail(c, "%s[%ld] = 0x%04x, want 0x%04x", what, i, got[i], want[i]);
        return 0;
    }
    return 1;
}

static int compare_half_floats(check *c, const char *what, const float *got, const float *want, long n,
                               int payloads_exact) {
    for (long i = 0; i < n; i++) {
        if (bits_of(got[i]) == bits_of(want[i])) continue;
        if (!payloads_exact && isnan(got[i]) && isnan(want[i])) {
            nan_payload_differences++;
            continue;
        }
        fail(c, "%s[%ld] = %.9g (0x%08x), want %.9g (0x%08x)", what, i, got[i], bits_of(got[i]), want[i],
             bits_of(want[i]));
        return 0;
    }
    return 1;
}

// Pieces of odd lengths, so that every vector loop's tail runs.
static const long pieces[] = {1, 3, 7, 15, 17, 33, 100};

static void test_halves(const ck_kernel_table *t) {
    check ct, cf, ca, cn;
    begin(&ct, t, "float_to_half");
    begin(&cf, t, "half_to_float");
    begin(&ca, t, "half_add");
    begin(&cn, t, "half_has_nonfinite");
    const int payloads = !hand_written(t);
    const int hardware = is_reference(t) && hardware_half_available();
    if (is_reference(t) && !hardware) printf("note reference halves: no hardware conversion here to check against\n");
    nan_payload_differences = 0;

    // Every half as a float, the midpoints between neighbours (ties to even) and a float either side
    // of each, and edge floats.
    static const float edges[] = {0.0f, -0.0f, 65504.0f, 65519.996f, 65520.0f, 65536.0f, 1e10f, -1e10f, INFINITY,
                                  -INFINITY, 0x1p-24f, 0x1p-25f, 0x1.000002p-25f, 0x1.8p-24f, 0x1p-26f, 0x1p-14f,
                                  0x1.ffcp-15f, 0x1.ffep-15f, 0x1p-149f, -0x1p-149f, 0x1p-126f, 3e-8f, -65520.0f};
    const long edge_count = sizeof edges / sizeof edges[0];
    const long n = 65536 * 4 + edge_count + 6;
    float *x = floats(n);
    long at = 0;
    for (long h = 0; h < 65536; h++) {
        // Through the reference's half_to_float, which is checked against the hardware below.
        unsigned short hv = (unsigned short)h, hn = (unsigned short)(h + 1);
        float f, g;
        ref->half_to_float(&hv, &f, 1, 1.0f);
        ref->half_to_float(&hn, &g, 1, 1.0f);
        x[at++] = f;
        float mid = (float)(((double)f + (double)g) / 2);
        x[at++] = mid;
        x[at++] = nextafterf(mid, INFINITY);
        x[at++] = nextafterf(mid, -INFINITY);
    }
    for (long i = 0; i < edge_count; i++) x[at++] = edges[i];
    x[at++] = float_of(0x7FC00000u);  // quiet NaN
    x[at++] = float_of(0xFFC00001u);  // negative, with payload
    x[at++] = float_of(0x7F800001u);  // signalling
    x[at++] = float_of(0x7FBFE000u);  // signalling, payload in the bits a half keeps
    x[at++] = float_of(0x7FFFFFFFu);
    x[at++] = float_of(0xFF801000u);
    static const float scales[] = {1.0f, 1024.0f, 0x1p-10f};
    unsigned short *got = malloc(sizeof(unsigned short) * (size_t)n);
    unsigned short *want = malloc(sizeof(unsigned short) * (size_t)n);
    for (int si = 0; si < 3; si++) {
        const float scale = scales[si];
        if (hardware) {
            for (long i = 0; i < n; i++) want[i] = hardware_to_half(x[i] * scale);
        } else {
            ref->float_to_half(x, want, n, scale);
        }
        // Whole, then in odd pieces.
        t->float_to_half(x, got, n, scale);
        ct.cases++;
        if (!ct.failed && !compare_halves(&ct, "half", got, want, n, payloads || is_reference(t))) {
            char where[64];
            snprintf(where, sizeof where, " [input 0x%08x, scale %g]", bits_of(x[0]), scale);
            strncat(ct.first, where, sizeof ct.first - strlen(ct.first) - 1);
        }
        memset(got, 0, sizeof(unsigned short) * (size_t)n);
        for (long i = 0, p = 0; i < n; p++) {
            long len = pieces[p % 7] < n - i ? pieces[p % 7] : n - i;
            t->float_to_half(x + i, got + i, len, scale);
            i += len;
        }
        ct.cases++;
        if (!ct.failed && !compare_halves(&ct, "half (in pieces)", got, want, n, payloads || is_reference(t))) {
            char where[64];
            snprintf(where, sizeof where, " [scale %g]", scale);
            strncat(ct.first, where, sizeof ct.first - strlen(ct.first) - 1);
        }
    }

    // half_to_float: every half, whole and in pieces.
    unsigned short *all = malloc(sizeof(unsigned short) * 65536);
    float *fgot = floats(65536), *fwant = floats(65536);
    for (long h = 0; h < 65536; h++) all[h] = (unsigned short)h;
    for (int si = 0; si < 3; si++) {
        const float inverse = 1.0f / scales[si];
        if (hardware) {
            for (long h = 0; h < 65536; h++) fwant[h] = hardware_from_half(all[h]) * inverse;
        } else {
            ref->half_to_float(all, fwant, 65536, inverse);
        }
        t->half_to_float(all, fgot, 65536, inverse);
        cf.cases++;
        if (!cf.failed) compare_half_floats(&cf, "x", fgot, fwant, 65536, payloads || is_reference(t));
        for (long i = 0, p = 0; i < 65536; p++) {
            long len = pieces[p % 7] < 65536 - i ? pieces[p % 7] : 65536 - i;
            t->half_to_float(all + i, fgot + i, len, inverse);
            i += len;
        }
        cf.cases++;
        if (!cf.failed) compare_half_floats(&cf, "x (in pieces)", fgot, fwant, 65536, payloads || is_reference(t));
    }

    // half_add: random pairs over the whole range (and the same half twice: overflow, exact doubling).
    {
        const long pairs = 200001;
        const size_t bytes = sizeof(unsigned short) * (size_t)pairs;
        unsigned short *in = malloc(bytes), *io = malloc(bytes), *w = malloc(bytes);
        for (long i = 0; i < pairs; i++) {
            uint64_t r = next_random();
            in[i] = (unsigned short)r;
            io[i] = i % 7 == 0 ? in[i] : i % 5 == 0 ? (unsigned short)(in[i] ^ 0x8000) : (unsigned short)(r >> 16);
            if (i % 3 == 0) io[i] = (unsigned short)((io[i] & 0x83FF) | (in[i] & 0x7C00));  // the same binade
        }
        if (hardware) {
            for (long i = 0; i < pairs; i++) w[i] = half_sum(in[i], io[i]);
        } else {
            memcpy(w, io, sizeof(unsigned short) * (size_t)pairs);
            ref->half_add(in, w, pairs);
        }
        unsigned short *g = malloc(sizeof(unsigned short) * (size_t)pairs);
        memcpy(g, io, sizeof(unsigned short) * (size_t)pairs);
        for (long i = 0, p = 0; i < pairs; p++) {
            long len = pieces[p % 7] < pairs - i ? pieces[p % 7] : pairs - i;
            t->half_add(in + i, g + i, len);
            i += len;
        }
        ca.cases++;
        compare_halves(&ca, "inout", g, w, pairs, payloads || is_reference(t));
        memcpy(g, io, sizeof(unsigned short) * (size_t)pairs);
        t->half_add(in, g, pairs);
        ca.cases++;
        if (!ca.failed) compare_halves(&ca, "inout (whole)", g, w, pairs, payloads || is_reference(t));
        free(in);
        free(io);
        free(w);
        free(g);
    }

    // half_has_nonfinite: finite halves with one infinity or NaN anywhere, or none.
    for (int ci = 0; ci < count_count; ci++) {
        const long len = counts[ci];
        unsigned short *h = malloc(sizeof(unsigned short) * (size_t)len);
        for (long where = -1; where < len; where += where < 0 ? 1 : (len > 40 ? len / 7 + 1 : 1)) {
            for (int kind = 0; kind < 3; kind++) {
                for (long i = 0; i < len; i++) {
                    unsigned short r = (unsigned short)next_random();
                    h[i] = (r & 0x7C00) == 0x7C00 ? (unsigned short)(r & 0xBFFF) : r;
                }
                if (where >= 0) h[where] = kind == 0 ? 0x7C00 : kind == 1 ? 0xFC00 : (unsigned short)0x7E01;
                const int want_value = where >= 0, got_value = t->half_has_nonfinite(h, len);
                cn.cases++;
                if (got_value != want_value)
                    fail(&cn, "= %d, want %d [count=%ld, %s at %ld]", got_value, want_value, len,
                         kind == 0 ? "+inf" : kind == 1 ? "-inf" : "NaN", where);
                if (where < 0) break;
            }
        }
        free(h);
    }
    end(&ct);
    end(&cf);
    end(&ca);
    end(&cn);
    if (nan_payload_differences)
        printf("note %s float_to_half/half_to_float/half_add: %ld NaN results differ from the reference's in "
               "payload or sign (allowed here; the reference keeps the payload and sets the quiet bit, as F16C and "
               "fcvt do, and picks half_add's NaN itself)\n",
               t->name, nan_payload_differences);
    free(x);
    free(got);
    free(want);
    free(all);
    free(fgot);
    free(fwant);
}

static void test_max_abs(const ck_kernel_table *t) {
    check c;
    begin(&c, t, "max_abs");
    for (int ci = 0; ci < count_count; ci++)
        for (long where = 0; where < counts[ci]; where += counts[ci] / 5 + 1)
            for (int sign = 0; sign <= 1; sign++) {
                const long n = counts[ci];
                float *x = floats(n);
                fill(x, n, -1, 1);
                x[where] = sign ? -3.5f : 3.25f;
                float want = 0;
                if (is_reference(t)) {
                    for (long i = 0; i < n; i++) want = fmaxf(want, fabsf(x[i]));
                } else {
                    want = ref->max_abs(x, n);
                }
                const float got = t->max_abs(x, n);
                c.cases++;
                if (bits_of(got) != bits_of(want))
                    fail(&c, "= %.9g, want %.9g [count=%ld, maximum at %ld]", got, want, n, where);
                free(x);
            }
    {
        float zeros[17] = {0};
        zeros[5] = -0.0f;
        c.cases++;
        if (bits_of(t->max_abs(zeros, 17)) != 0) fail(&c, "of zeros = %.9g, want +0", t->max_abs(zeros, 17));
    }
    end(&c);
}

// MARK: the table itself

static void test_table(const ck_kernel_table *t) {
    check c;
    begin(&c, t, "table");
    c.cases = 1;
#define REQUIRED(entry) \
    if (!t->entry) fail(&c, "entry " #entry " is NULL");
    REQUIRED(name) REQUIRED(packed_a_floats) REQUIRED(packed_b_floats) REQUIRED(pack_a) REQUIRED(pack_b)
    REQUIRED(sgemm) REQUIRED(sgemm_packed) REQUIRED(im2col) REQUIRED(col2im_add)
    REQUIRED(channel_shifted_sums) REQUIRED(channel_normalize)
    REQUIRED(channel_gradient_sums) REQUIRED(channel_input_gradient) REQUIRED(maxpool2x2)
    REQUIRED(maxpool2x2_backward) REQUIRED(bn_relu_maxpool2x2) REQUIRED(bn_pool_gradient_sums)
    REQUIRED(bn_pool_input_gradient) REQUIRED(adam) REQUIRED(sgd) REQUIRED(dropout) REQUIRED(float_to_half)
    REQUIRED(half_to_float) REQUIRED(half_add) REQUIRED(half_has_nonfinite) REQUIRED(max_abs) REQUIRED(fma_chains)
    REQUIRED(cpu_supports)
#undef REQUIRED
    if (!c.failed) {
        double flops = 0;
        float r = t->fma_chains(1000, &flops);
        if (!(flops > 0) || !isfinite(r)) fail(&c, "fma_chains(1000) = %g with %g flops per round", r, flops);
    }
    end(&c);
}

// MARK: digests, for comparing machines

// FNV-1a over the bits of each result, with every NaN counted as one value (which NaN an invalid
// operation such as inf * 0 makes differs between x86 and ARM).
static uint64_t digest_bytes(uint64_t h, const void *p, size_t bytes) {
    const unsigned char *b = p;
    for (size_t i = 0; i < bytes; i++) h = (h ^ b[i]) * 0x100000001B3ull;
    return h;
}
static uint64_t digest_floats(uint64_t h, const float *x, long n) {
    for (long i = 0; i < n; i++) {
        uint32_t u = isnan(x[i]) ? 0x7FC00000u : bits_of(x[i]);
        h = digest_bytes(h, &u, 4);
    }
    return h;
}
static uint64_t digest_halves(uint64_t h, const unsigned short *x, long n) {
    for (long i = 0; i < n; i++) {
        unsigned short u = is_nan_half(x[i]) ? 0x7E00 : x[i];
        h = digest_bytes(h, &u, 2);
    }
    return h;
}

// One fixed workload through every entry: the same inputs on every machine, so that the lines this
// prints can be compared between an x86-64 run and an aarch64 run (scripts/kernel-test.sh does).
// The GEMM digest must be the same for every table; the elementwise one for every table but avx512.
static void print_digests(const ck_kernel_table *t) {
    const uint64_t saved = rng_state;
    rng_state = 0x5DEECE66Dull;
    uint64_t gemm = 0xCBF29CE484222325ull, ew = gemm;
    {
        const long m = 37, n = 41, k = 300, packed_a = t->packed_a_floats(m, k), packed_b = t->packed_b_floats(k, n);
        float *a = floats(m * k), *b = floats(k * n), *c = floats(m * n);
        float *pa = aligned_floats(packed_a), *pb = aligned_floats(packed_b);
        fill(a, m * k, -1, 1);
        fill(b, k * n, -1, 1);
        for (int tr = 0; tr < 4; tr++) {
            fill(c, m * n, -1, 1);
            t->sgemm(tr & 1, tr >> 1, m, n, k, 0.75f, a, tr & 1 ? m : k, b, tr >> 1 ? k : n, tr == 0 ? 0.0f : 0.5f, c,
                     n);
            gemm = digest_floats(gemm, c, m * n);
        }
        t->pack_a(0, a, k, m, k, 1.5f, pa);
        t->pack_b(0, b, n, k, n, pb);
        t->sgemm_packed(m, n, k, pa, 0, pb, 0, 0.0f, c, n);
        gemm = digest_floats(gemm, c, m * n);
        free(a);
        free(b);
        free(c);
        free(pa);
        free(pb);
    }
    {
        const long channels = 3, h = 13, w = 13, pixels = h * w, batch = 4, count = batch * channels * pixels;
        float *x = floats(count), *y = floats(count), *xhat = floats(count), *dy = floats(count), *dx = floats(count);
        fill(x, count, -2, 2);
        x[7] = NAN;
        x[8] = INFINITY;
        fill(dy, count, -1, 1);
        for (long s = 1; s <= 2; s++) {
            ck_conv_geometry g = {channels, h, w, 3, s, 1, output_size(h, 3, s, 1), output_size(w, 3, s, 1)};
            const long cols = g.output_height * g.output_width, rows = channels * 9;
            float *columns = floats(rows * cols);
            t->im2col(&g, x, columns, cols);
            ew = digest_floats(ew, columns, rows * cols);
            memcpy(dx, dy, sizeof(float) * (size_t)pixels * channels);
            t->col2im_add(&g, columns, cols, dx);
            ew = digest_floats(ew, dx, pixels * channels);
            free(columns);
        }
        double sums[8];
        t->channel_shifted_sums(x + pixels + 9, batch, pixels - 9, channels * pixels, 0.1f, sums);
        t->channel_shifted_sums(x + pixels, batch, pixels, channels * pixels, x[pixels], sums + 2);
        t->channel_gradient_sums(dy, x + 2 * pixels, batch, pixels, channels * pixels, sums + 4);
        ew = digest_bytes(ew, sums, sizeof(double) * 6);
        // Channel 0 only: the rest of each buffer stays 0.
        memset(xhat, 0, sizeof(float) * (size_t)count);
        memset(y, 0, sizeof(float) * (size_t)count);
        memset(dx, 0, sizeof(float) * (size_t)count);
        t->channel_normalize(x, xhat, y, batch, pixels, channels * pixels, 0.1f, 1.3f, 0.7f, -0.2f, 1);
        ew = digest_floats(digest_floats(ew, xhat, batch * channels * pixels), y, batch * channels * pixels);
        t->channel_input_gradient(dy, xhat, dx, batch, pixels, channels * pixels, 0.01f, 676.0f, 3.5f, -2.25f);
        ew = digest_floats(ew, dx, count);
        const long out = batch * channels * (h / 2) * (w / 2);
        int *argmax = malloc(sizeof(int) * (size_t)out);
        t->maxpool2x2(x, y, argmax, batch * channels, h, w, 2);
        ew = digest_bytes(digest_floats(ew, y, out), argmax, sizeof(int) * (size_t)out);
        t->maxpool2x2_backward(dy, argmax, dx, batch * channels, h, w);
        ew = digest_floats(ew, dx, count);
        const float mean[3] = {0.1f, -0.2f, 0.3f}, inv_std[3] = {1.1f, 0.9f, 2.0f}, gamma[3] = {0.8f, -1.2f, 1.0f},
                    beta[3] = {0.1f, 0.2f, -0.3f}, k[3] = {0.01f, -0.02f, 0.03f}, s0[3] = {1.5f, -2.5f, 0.5f},
                    s1[3] = {-0.75f, 0.25f, 1.25f};
        for (long b = 0; b < batch; b++) {
            const long o = b * channels * (h / 2) * (w / 2);
            t->bn_relu_maxpool2x2(x + b * channels * pixels, y + o, argmax + o, xhat + o, channels, h, w, mean, inv_std,
                                  gamma, beta);
        }
        ew = digest_bytes(digest_floats(digest_floats(ew, y, out), xhat, out), argmax, sizeof(int) * (size_t)out);
        t->bn_pool_gradient_sums(dy, argmax, xhat, batch, (h / 2) * (w / 2), channels * (h / 2) * (w / 2), sums);
        ew = digest_bytes(ew, sums, sizeof(double) * 2);
        for (long b = 0; b < batch; b++) {
            const long o = b * channels * (h / 2) * (w / 2);
            t->bn_pool_input_gradient(dy + o, argmax + o, xhat + o, x + b * channels * pixels,
                                      dx + b * channels * pixels, channels, h, w, mean, inv_std, k, 676.0f, s0, s1);
        }
        ew = digest_floats(ew, dx, count);
        memcpy(y, x, sizeof(float) * (size_t)count);
        fill(xhat, count, 0, 0.01f);
        memcpy(dx, dy, sizeof(float) * (size_t)count);
        x[7] = 0.5f;
        t->adam(y, dy, dx, xhat, count, 0.9f, 0.999f, 1e-8f, 1e-3f, 1e-2f, 0, 1e-3f / 0.19f, 0.0447f);
        t->sgd(y, dy, dx, count, 0.9f, 1, 0.01f, 5e-4f);
        ew = digest_floats(digest_floats(digest_floats(ew, y, count), dx, count), xhat, count);
        x[7] = NAN;
        t->dropout(0x0123456789ABCDEFull, x, y, dx, count, 12582912u, 4.0f / 3);
        ew = digest_floats(digest_floats(ew, y, count), dx, count);
        unsigned short *half = malloc(sizeof(unsigned short) * (size_t)count),
                       *half2 = malloc(sizeof(unsigned short) * (size_t)count);
        t->float_to_half(x, half, count, 30000.0f);
        t->float_to_half(dy, half2, count, 1.0f);
        t->half_add(half2, half, count);
        t->half_to_float(half, y, count, 1.0f / 30000);
        ew = digest_floats(digest_halves(ew, half, count), y, count);
        const int nonfinite = t->half_has_nonfinite(half, count);
        const float maximum = t->max_abs(dy, count);
        ew = digest_bytes(digest_bytes(ew, &nonfinite, sizeof nonfinite), &maximum, sizeof maximum);
        free(half);
        free(half2);
        free(argmax);
        free(x);
        free(y);
        free(xhat);
        free(dy);
        free(dx);
    }
    printf("digest %s gemm %016llx elementwise %016llx\n", t->name, (unsigned long long)gemm,
           (unsigned long long)ew);
    rng_state = saved;
}

static void test_elementwise(const ck_kernel_table *t) {
    test_im2col(t);
    test_channel_sums(t);
    test_channel_normalize(t);
    test_channel_input_gradient(t);
    test_maxpool(t);
    test_bn_pool(t);
    test_optimizers(t);
    test_dropout(t);
    test_halves(t);
    test_max_abs(t);
}

static void test_gemms(const ck_kernel_table *t, int threads) {
    ck_set_threads(threads);
    test_sgemm(t, threads);
    test_sgemm_packed(t, threads);
    test_conv_columns(t, threads);
    test_winograd(t, threads);
    ck_set_threads(1);
}

int main(int argc, char **argv) {
    ref = &ck_reference_kernels;
    // The reference first (the others are compared with it), then every table dispatch.c carries.
    const ck_kernel_table *all[16] = {&ck_reference_kernels};
    int table_count = 1;
    for (int i = 0; i < ck_isa_count() && table_count < 16; i++)
        if (ck_kernel_table_at(i) != &ck_reference_kernels) all[table_count++] = ck_kernel_table_at(i);
    int tested = 0;
    for (int i = 0; i < table_count; i++) {
        const ck_kernel_table *t = all[i];
        int wanted = argc <= 1;
        for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], t->name) == 0;
        if (!wanted) continue;
        if (!t->cpu_supports()) {
            printf("skip %s: cpu_supports() = 0 on this CPU\n", t->name);
            continue;
        }
        tested++;
        test_table(t);
        test_elementwise(t);
        test_gemms(t, 1);
        test_gemms(t, 2);
        print_digests(t);
    }
    printf("%s: %d tables, %d entries checked, %d failed\n", entries_failed ? "FAILED" : "PASSED", tested,
           entries_checked, entries_failed);
    return entries_failed || tested == 0 ? 1 : 0;
}
