// Picks the kernel table once, and routes every ck_* arithmetic function through it.
#include "isa.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// Every table this build carries, best first: the first whose CPU check passes is the default.
static const ck_kernel_table *const tables[] = {
#if defined(__x86_64__)
    &ck_avx512_kernels,
    &ck_avx2_kernels,
#endif
#if defined(__aarch64__)
    &ck_neon_kernels,
#endif
    &ck_reference_kernels,
};
enum { table_count = sizeof(tables) / sizeof(tables[0]) };

static const ck_kernel_table *active;       // the process's, set once
static _Thread_local const ck_kernel_table *thread_table;  // a test's or comparison's, on its own thread
static pthread_once_t chosen = PTHREAD_ONCE_INIT;
static char problem[256];

static const ck_kernel_table *named(const char *name) {
    for (int i = 0; i < table_count; i++) {
        if (strcmp(tables[i]->name, name) == 0) return tables[i];
    }
    return NULL;
}

// DIGITS_ISA is read here and nowhere else. A name this build or CPU cannot run leaves the CPU's
// own table in use and a sentence in `problem`, which the command line reports as an error.
static void choose(void) {
    const ck_kernel_table *best = &ck_reference_kernels;
    for (int i = 0; i < table_count; i++) {
        if (tables[i]->cpu_supports()) { best = tables[i]; break; }
    }
    const char *asked = getenv("DIGITS_ISA");
    if (asked && *asked) {
        const ck_kernel_table *t = named(asked);
        if (!t) {
            char known[128] = "";
            for (int i = 0; i < table_count; i++) {
                strncat(known, i ? ", " : "", sizeof(known) - strlen(known) - 1);
                strncat(known, tables[i]->name, sizeof(known) - strlen(known) - 1);
            }
            snprintf(problem, sizeof(problem), "DIGITS_ISA=%s: no such kernel set in this build (it has %s)", asked,
                     known);
        } else if (!t->cpu_supports()) {
            snprintf(problem, sizeof(problem), "DIGITS_ISA=%s: this CPU cannot run the %s kernels (its best is %s)",
                     asked, asked, best->name);
        } else {
            best = t;
        }
    }
    active = best;
}

const ck_kernel_table *ck_kernels(void) {
    if (thread_table) return thread_table;
    pthread_once(&chosen, choose);
    return active;
}

const ck_kernel_table *ck_thread_kernels(void) { return thread_table; }
void ck_set_thread_kernels(const ck_kernel_table *table) { thread_table = table; }

const char *ck_isa(void) { return ck_kernels()->name; }

const char *ck_isa_problem(void) {
    ck_kernels();
    return problem[0] ? problem : NULL;
}

const char *ck_thread_isa(void) { return thread_table ? thread_table->name : NULL; }

int ck_use_isa(const char *name) {
    if (name == NULL) {
        thread_table = NULL;
        return 1;
    }
    const ck_kernel_table *t = named(name);
    if (!t || !t->cpu_supports()) return 0;
    thread_table = t;
    return 1;
}

int ck_isa_count(void) { return table_count; }
const ck_kernel_table *ck_kernel_table_at(int index) { return index >= 0 && index < table_count ? tables[index] : NULL; }
const char *ck_isa_name(int index) { return index >= 0 && index < table_count ? tables[index]->name : NULL; }

int ck_isa_available(const char *name) {
    const ck_kernel_table *t = named(name);
    return t && t->cpu_supports();
}

#define K (ck_kernels())

long ck_packed_a_floats(long m, long k) { return K->packed_a_floats(m, k); }
long ck_packed_b_floats(long k, long n) { return K->packed_b_floats(k, n); }
void ck_pack_a(int transpose_a, const float *a, long lda, long m, long k, float alpha, float *out) {
    K->pack_a(transpose_a, a, lda, m, k, alpha, out);
}
void ck_pack_b(int transpose_b, const float *b, long ldb, long k, long n, float *out) {
    K->pack_b(transpose_b, b, ldb, k, n, out);
}
void ck_sgemm(int transpose_a, int transpose_b, long m, long n, long k, float alpha, const float *a, long lda,
              const float *b, long ldb, float beta, float *c, long ldc) {
    K->sgemm(transpose_a, transpose_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void ck_sgemm_packed(long m, long n, long k, const float *a, long lda, const float *b, long ldb, float beta,
                     float *c, long ldc) {
    K->sgemm_packed(m, n, k, a, lda, b, ldb, beta, c, ldc);
}

void ck_im2col(const ck_conv_geometry *g, const float *input, float *columns, long row_stride) {
    K->im2col(g, input, columns, row_stride);
}
void ck_col2im_add(const ck_conv_geometry *g, const float *columns, long row_stride, float *input_gradient) {
    K->col2im_add(g, columns, row_stride, input_gradient);
}
long ck_conv_columns_floats(const ck_conv_geometry *g) {
    return K->conv_columns_floats ? K->conv_columns_floats(g) : 0;
}
void ck_conv_columns_prepare(const ck_conv_geometry *g, const float *input, float *scratch, ck_conv_columns *out) {
    K->conv_columns_prepare(g, input, scratch, out);
}
void ck_conv_forward_gemm(long m, long n, long k, const float *packed_a, const ck_conv_columns *cols, float beta,
                          float *c, long ldc) {
    K->conv_forward_gemm(m, n, k, packed_a, cols, beta, c, ldc);
}
void ck_conv_weight_gradient_gemm(long m, long n, long k, const ck_conv_columns *cols, const float *packed_b,
                                  float beta, float *c, long ldc) {
    K->conv_weight_gradient_gemm(m, n, k, cols, packed_b, beta, c, ldc);
}

void ck_channel_shifted_sums(const float *x, long batch, long pixels, long stride, float shift, double sums[2]) {
    K->channel_shifted_sums(x, batch, pixels, stride, shift, sums);
}
void ck_channel_normalize(const float *x, float *xhat, float *y, long batch, long pixels, long stride, float mean,
                          float inv_std, float gamma, float beta, int rectify) {
    K->channel_normalize(x, xhat, y, batch, pixels, stride, mean, inv_std, gamma, beta, rectify);
}
void ck_channel_gradient_sums(const float *dy, const float *xhat, long batch, long pixels, long stride,
                              double sums[2]) {
    K->channel_gradient_sums(dy, xhat, batch, pixels, stride, sums);
}
void ck_channel_input_gradient(const float *dy, const float *xhat, float *dx, long batch, long pixels, long stride,
                               float k, float m, float sum_dy, float sum_dy_xhat) {
    K->channel_input_gradient(dy, xhat, dx, batch, pixels, stride, k, m, sum_dy, sum_dy_xhat);
}

void ck_maxpool2x2(const float *x, float *y, int *argmax, long planes, long h, long w, int rectified) {
    K->maxpool2x2(x, y, argmax, planes, h, w, rectified);
}
void ck_maxpool2x2_backward(const float *dy, const int *argmax, float *dx, long planes, long h, long w) {
    K->maxpool2x2_backward(dy, argmax, dx, planes, h, w);
}
void ck_bn_relu_maxpool2x2(const float *x, float *y, int *argmax, float *xhat_at_max, long channels, long h, long w,
                           const float *mean, const float *inv_std, const float *gamma, const float *beta) {
    K->bn_relu_maxpool2x2(x, y, argmax, xhat_at_max, channels, h, w, mean, inv_std, gamma, beta);
}
void ck_bn_pool_gradient_sums(const float *dpooled, const int *argmax, const float *xhat_at_max, long batch,
                              long out_pixels, long stride, double sums[2]) {
    K->bn_pool_gradient_sums(dpooled, argmax, xhat_at_max, batch, out_pixels, stride, sums);
}
void ck_bn_pool_input_gradient(const float *dpooled, const int *argmax, const float *xhat_at_max, const float *x,
                               float *dx, long channels, long h, long w, const float *mean, const float *inv_std,
                               const float *k, float m_count, const float *sum_dy, const float *sum_dy_xhat) {
    K->bn_pool_input_gradient(dpooled, argmax, xhat_at_max, x, dx, channels, h, w, mean, inv_std, k, m_count, sum_dy,
                              sum_dy_xhat);
}

void ck_adam(float *w, const float *g, float *m, float *v, long count, float beta1, float beta2, float epsilon,
             float lr, float wd, int decoupled, float step_size, float c2_root) {
    K->adam(w, g, m, v, count, beta1, beta2, epsilon, lr, wd, decoupled, step_size, c2_root);
}
void ck_sgd(float *w, const float *g, float *m, long count, float momentum, int nesterov, float lr, float wd) {
    K->sgd(w, g, m, count, momentum, nesterov, lr, wd);
}
void ck_dropout(uint64_t key, const float *x, float *y, float *mask, long count, uint32_t threshold, float scale) {
    K->dropout(key, x, y, mask, count, threshold, scale);
}

void ck_float_to_half(const float *x, unsigned short *half, long count, float scale) {
    K->float_to_half(x, half, count, scale);
}
void ck_half_to_float(const unsigned short *half, float *x, long count, float inverse_scale) {
    K->half_to_float(half, x, count, inverse_scale);
}
void ck_half_add(const unsigned short *in, unsigned short *inout, long count) { K->half_add(in, inout, count); }
int ck_half_has_nonfinite(const unsigned short *half, long count) { return K->half_has_nonfinite(half, count); }
float ck_max_abs(const float *x, long count) { return K->max_abs(x, count); }

int ck_winograd_supported(const ck_conv_geometry *g) {
    return K->winograd_supported ? K->winograd_supported(g) : 0;
}
long ck_winograd_weights_floats(long m, long k, long r) { return K->winograd_weights_floats(m, k, r); }
void ck_winograd_weights(const float *w, long oc, long c, long r, int adjoint, float *out) {
    K->winograd_weights(w, oc, c, r, adjoint, out);
}
long ck_winograd_scratch_floats(const ck_conv_geometry *g, long m) { return K->winograd_scratch_floats(g, m); }
void ck_winograd_conv(const ck_conv_geometry *g, long m, const float *u, const float *input, long samples,
                      const float *bias, float *output, float *scratch) {
    K->winograd_conv(g, m, u, input, samples, bias, output, scratch);
}

// ---- The FMA ceiling, on every thread of the pool at once.

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
    const ck_kernel_table *table;
    long rounds;
    double flops[64];
    _Alignas(64) volatile float sink[64 * 16];  // one cache line per thread
} peak_job;

static void peak_part(void *context, long index) {
    peak_job *job = context;
    double per_round = 0;
    job->sink[(index % 64) * 16] = job->table->fma_chains(job->rounds, &per_round);
    if (index < 64) job->flops[index] = per_round * (double)job->rounds;
}

// Every thread runs the same fixed number of rounds and the rate is their total over the wall
// time of the whole job: a thread that started late, or an index that ran after another on the
// same core, lengthens the time instead of being counted as if it had run alongside.
double ck_fma_peak_gflops(double seconds) {
    const ck_kernel_table *table = K;
    long threads = ck_threads();
    if (threads > 64) threads = 64;
    peak_job *job = aligned_alloc(64, sizeof(peak_job));
    if (!job) return 0;
    memset(job, 0, sizeof(*job));
    job->table = table;
    job->rounds = 1L << 14;
    // Calibrate on one thread to about a tenth of the time asked for, then time the whole pool.
    double start = now();
    peak_part(job, 0);
    double once = now() - start;
    while (once < seconds / 10 && job->rounds < (1L << 40)) {
        job->rounds *= 2;
        start = now();
        peak_part(job, 0);
        once = now() - start;
    }
    job->rounds = (long)((double)job->rounds * (seconds / (once > 0 ? once : 1e-9)));
    if (job->rounds < 1) job->rounds = 1;
    memset(job->flops, 0, sizeof(job->flops));
    start = now();
    ck_parallel_for(threads, peak_part, job);
    double elapsed = now() - start, total = 0;
    for (long i = 0; i < threads; i++) total += job->flops[i];
    free(job);
    return elapsed > 0 ? total / elapsed / 1e9 : 0;
}
