// The GEMM driver, written once and compiled into each ISA's table (reference.c, x86/avx2.c,
// arm/neon.c) around that ISA's micro-kernel. No include guard: each translation unit includes
// it once, after defining GEMM_MR and GEMM_NR (the register tile: rows of A, columns of B) and,
// when its micro-kernel reads row-major A in place, GEMM_A_IN_PLACE; the translation unit then
// defines the micro-kernel declared below.
//
// ukernel computes one tile: acc(i, j) = Σ_p A(i, p) * B(p, j), one fused multiply-add per p in
// order from acc = 0, and writes its mr x nr corner (mr <= MR, nr <= NR) as c = acc where
// beta == 0, else c = fma(beta, c, acc). A is a packed panel (a_ld == 0: A(i, p) = a[p*MR + i]) or,
// only with GEMM_A_IN_PLACE, rows read in place (A(i, p) = a[i*a_ld + p]; rows past mr are never
// read). B is a packed panel (b_ld == 0: B(p, j) = b[p*NR + j]) or rows read in place
// (b[p*b_ld + j]); all NR columns of B may be read: the driver packs an in-place edge panel first.
//
// The summation order is the contract of every table (the AVX-512 kernels' too): k is cut into
// equal chunks of at most GEMM_KC, each summed from zero and added to C in order. It depends on k
// alone, so results are bit-identical on every ISA, every thread count and every tile position.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef CKERNELS_GEMM_CONSTANTS
#define CKERNELS_GEMM_CONSTANTS
enum { GEMM_KC = 256 };
#endif

static void ukernel(long kc, const float *a, long a_ld, const float *b, long b_ld, float *c, long ldc, float beta,
                    long mr, long nr);

#define GEMM_MC (128 / GEMM_MR * GEMM_MR)
#define GEMM_NC (4096 / GEMM_NR * GEMM_NR)

static _Thread_local float *gd_a_block;    // (GEMM_MC x GEMM_KC) packed A of ck_sgemm
static _Thread_local float *gd_b_block;    // (GEMM_KC x GEMM_NC) packed B of ck_sgemm
static _Thread_local float *gd_a_panel;    // (GEMM_KC x GEMM_MR) an in-place A panel, packed
static _Thread_local float *gd_b_edge;     // (GEMM_KC x GEMM_NR) an in-place B edge panel, packed

static void gd_ensure_buffers(void) {
    if (!gd_a_block) gd_a_block = aligned_alloc(64, sizeof(float) * GEMM_MC * GEMM_KC);
    if (!gd_b_block) gd_b_block = aligned_alloc(64, sizeof(float) * GEMM_KC * GEMM_NC);
    if (!gd_a_panel) gd_a_panel = aligned_alloc(64, sizeof(float) * GEMM_KC * GEMM_MR);
    if (!gd_b_edge) gd_b_edge = aligned_alloc(64, sizeof(float) * GEMM_KC * GEMM_NR);
    // About 4 MB per thread; failing here means the machine is out of memory.
    if (!gd_a_block || !gd_b_block || !gd_a_panel || !gd_b_edge) abort();
}

static inline long gd_min(long a, long b) { return a < b ? a : b; }

static inline long gd_chunk_step(long k) {
    long chunks = (k + GEMM_KC - 1) / GEMM_KC;
    return (k + chunks - 1) / chunks;
}

// op(A) rows [i0, i0 + mc), columns [p0, p0 + kc) -> panels of MR rows, panel r at out + r * kc,
// each (kc, MR), alpha folded in, rows past mc zero.
static void gd_pack_a_block(int trans, const float *a, long lda, long i0, long mc, long p0, long kc, float alpha,
                            float *out) {
    for (long r = 0; r < mc; r += GEMM_MR) {
        long rows = gd_min(mc - r, GEMM_MR);
        float *panel = out + r * kc;
        for (long p = 0; p < kc; p++) {
            float *to = panel + p * GEMM_MR;
            for (long i = 0; i < GEMM_MR; i++) {
                float v = 0.0f;
                if (i < rows) v = alpha * (trans ? a[(p0 + p) * lda + i0 + r + i] : a[(i0 + r + i) * lda + p0 + p]);
                to[i] = v;
            }
        }
    }
}

// op(B) rows [p0, p0 + kc), columns [j0, j0 + nc) -> panels of NR columns, panel q at out + q * kc,
// each (kc, NR), columns past nc zero.
static void gd_pack_b_block(int trans, const float *b, long ldb, long p0, long kc, long j0, long nc, float *out) {
    for (long q = 0; q < nc; q += GEMM_NR) {
        long cols = gd_min(nc - q, GEMM_NR);
        float *panel = out + q * kc;
        for (long p = 0; p < kc; p++) {
            float *to = panel + p * GEMM_NR;
            if (!trans && cols == GEMM_NR) {
                memcpy(to, b + (p0 + p) * ldb + j0 + q, sizeof(float) * GEMM_NR);
                continue;
            }
            for (long j = 0; j < GEMM_NR; j++) {
                float v = 0.0f;
                if (j < cols) v = trans ? b[(j0 + q + j) * ldb + p0 + p] : b[(p0 + p) * ldb + j0 + q + j];
                to[j] = v;
            }
        }
    }
}

// One tile of C (mr x nr at most MR x NR) from A (packed, or rows with GEMM_A_IN_PLACE) and B
// packed (b_ld == 0) or in place.
static inline void gd_tile(long kc, const float *a, long a_ld, const float *b, long b_ld, float *c, long ldc,
                           float beta, long mr, long nr) {
    if (b_ld && nr < GEMM_NR) {  // an in-place edge: pack its nr columns (zero past them) so nothing past the matrix is read
        gd_pack_b_block(0, b, b_ld, 0, kc, 0, nr, gd_b_edge);
        b = gd_b_edge;
        b_ld = 0;
    }
    ukernel(kc, a, a_ld, b, b_ld, c, ldc, beta, mr, nr);
}

// For micro-kernels that write a partial tile through memory: acc (MR x NR, row-major) into C's
// mr x nr corner with the store rule above.
static inline void gd_store_partial(const float *acc, float *c, long ldc, float beta, long mr, long nr) {
    for (long i = 0; i < mr; i++) {
        for (long j = 0; j < nr; j++) {
            float *out = c + i * ldc + j;
            *out = beta == 0.0f ? acc[i * GEMM_NR + j] : fmaf(beta, *out, acc[i * GEMM_NR + j]);
        }
    }
}

static void gd_sgemm_serial(int ta, int tb, long m, long n, long k, float alpha, const float *a, long lda,
                            const float *b, long ldb, float beta, float *c, long ldc) {
    const long kc_step = gd_chunk_step(k);
    for (long jc = 0; jc < n; jc += GEMM_NC) {
        long nc = gd_min(n - jc, GEMM_NC);
        for (long pc = 0; pc < k; pc += kc_step) {
            long kc = gd_min(k - pc, kc_step);
            float beta_now = pc == 0 ? beta : 1.0f;
            gd_pack_b_block(tb, b, ldb, pc, kc, jc, nc, gd_b_block);
            for (long ic = 0; ic < m; ic += GEMM_MC) {
                long mc = gd_min(m - ic, GEMM_MC);
                gd_pack_a_block(ta, a, lda, ic, mc, pc, kc, alpha, gd_a_block);
                for (long jr = 0; jr < nc; jr += GEMM_NR) {
                    for (long ir = 0; ir < mc; ir += GEMM_MR) {
                        gd_tile(kc, gd_a_block + ir * kc, 0, gd_b_block + jr * kc, 0, c + (ic + ir) * ldc + jc + jr,
                                ldc, beta_now, gd_min(mc - ir, GEMM_MR), gd_min(nc - jr, GEMM_NR));
                    }
                }
            }
        }
    }
}

static long gd_packed_a_floats(long m, long k) { return (m + GEMM_MR - 1) / GEMM_MR * GEMM_MR * k; }
static long gd_packed_b_floats(long k, long n) { return (n + GEMM_NR - 1) / GEMM_NR * GEMM_NR * k; }

static void gd_pack_a(int transpose_a, const float *a, long lda, long m, long k, float alpha, float *out) {
    gd_pack_a_block(transpose_a, a, lda, 0, m, 0, k, alpha, out);
}

static void gd_pack_b(int transpose_b, const float *b, long ldb, long k, long n, float *out) {
    gd_pack_b_block(transpose_b, b, ldb, 0, k, 0, n, out);
}

// Columns [j0, j0 + n) of C = A · B + beta * C. A packed in whole-k panels (panel r at a + r * k)
// when lda == 0, else row-major (m, k), read in place (GEMM_A_IN_PLACE) or packed here one panel
// at a time; B packed likewise (panel q at b + q * k) when ldb == 0, else row-major (k, n) read in place.
static void gd_packed_serial(long m, long j0, long n, long k, const float *a, long lda, const float *b, long ldb,
                             float beta, float *c, long ldc) {
    const long kc_step = gd_chunk_step(k);
    for (long pc = 0; pc < k; pc += kc_step) {
        const long kc = gd_min(k - pc, kc_step);
        const float beta_now = pc == 0 ? beta : 1.0f;
        for (long ir = 0; ir < m; ir += GEMM_MR) {
            const long mr = gd_min(m - ir, GEMM_MR);
            const float *panel = lda ? a + ir * lda + pc : a + ir * k + pc * GEMM_MR;
            long panel_ld = lda;
#ifndef GEMM_A_IN_PLACE
            if (lda) {
                gd_pack_a_block(0, a, lda, ir, mr, pc, kc, 1.0f, gd_a_panel);
                panel = gd_a_panel;
                panel_ld = 0;
            }
#endif
            for (long jr = j0; jr < j0 + n; jr += GEMM_NR) {
                const long nr = gd_min(j0 + n - jr, GEMM_NR);
                const float *bp = ldb ? b + pc * ldb + jr : b + jr * k + pc * GEMM_NR;
                gd_tile(kc, panel, panel_ld, bp, ldb, c + ir * ldc + jr, ldc, beta_now, mr, nr);
            }
        }
    }
}

typedef struct {
    long m, n, k, step;
    const float *a, *b;
    long lda, ldb;
    float beta;
    float *c;
    long ldc;
} gd_packed_job;

static void gd_packed_part(void *context, long index) {
    const gd_packed_job *job = context;
    long start = index * job->step;
    if (start >= job->n) return;
    gd_ensure_buffers();
    gd_packed_serial(job->m, start, gd_min(job->n - start, job->step), job->k, job->a, job->lda, job->b, job->ldb,
                     job->beta, job->c, job->ldc);
}

static void gd_sgemm_packed(long m, long n, long k, const float *a, long lda, const float *b, long ldb, float beta,
                            float *c, long ldc) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    if (lda && ldb) abort();  // one operand at least is packed (documented)
    long threads = ck_threads(), n_panels = (n + GEMM_NR - 1) / GEMM_NR;
    gd_packed_job job = {m, n, k, n_panels * GEMM_NR, a, b, lda, ldb, beta, c, ldc};
    if (threads > 1 && n_panels >= threads && m * n * k >= 64L * 64 * 64) {
        job.step = (n_panels + threads - 1) / threads * GEMM_NR;
        ck_parallel_for(threads, gd_packed_part, &job);  // serial when called inside a parallel loop
    } else {
        gd_packed_part(&job, 0);
    }
}

typedef struct {
    int ta, tb;
    long m, n, k;
    float alpha, beta;
    const float *a, *b;
    float *c;
    long lda, ldb, ldc;
    long parts, step;  // split along n (split_n) or m, in `step`-sized pieces
    int split_n;
} gd_gemm_job;

static void gd_gemm_part(void *context, long index) {
    const gd_gemm_job *job = context;
    gd_ensure_buffers();
    long start = index * job->step;
    if (job->split_n) {
        if (start >= job->n) return;
        const float *b = job->tb ? job->b + start * job->ldb : job->b + start;
        gd_sgemm_serial(job->ta, job->tb, job->m, gd_min(job->n - start, job->step), job->k, job->alpha, job->a,
                        job->lda, b, job->ldb, job->beta, job->c + start, job->ldc);
    } else {
        if (start >= job->m) return;
        const float *a = job->ta ? job->a + start : job->a + start * job->lda;
        gd_sgemm_serial(job->ta, job->tb, gd_min(job->m - start, job->step), job->n, job->k, job->alpha, a, job->lda,
                        job->b, job->ldb, job->beta, job->c + start * job->ldc, job->ldc);
    }
}

static void gd_sgemm(int ta, int tb, long m, long n, long k, float alpha, const float *a, long lda, const float *b,
                     long ldb, float beta, float *c, long ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0.0f) {
        for (long i = 0; i < m; i++) {
            for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        }
        return;
    }
    gd_gemm_job job = {ta, tb, m, n, k, alpha, beta, a, b, c, lda, ldb, ldc, 1, n, 1};
    long threads = ck_threads();
    // Splitting costs a wake-up (~10 us) and a second packing of the shared operand.
    if (threads > 1 && m * n * k >= 64L * 64 * 64) {
        long n_panels = (n + GEMM_NR - 1) / GEMM_NR, m_panels = (m + GEMM_MR - 1) / GEMM_MR;
        if (n_panels >= 2 * threads || n_panels >= m_panels) {
            job.step = (n_panels + threads - 1) / threads * GEMM_NR;
        } else {
            job.step = (m_panels + threads - 1) / threads * GEMM_MR;
            job.split_n = 0;
        }
        job.parts = threads;
    }
    if (job.parts == 1) gd_gemm_part(&job, 0);
    else ck_parallel_for(job.parts, gd_gemm_part, &job);
}

// ---- Convolution GEMMs over implicit columns (ck_conv_columns): the column matrix of a sample is
// never written. Column row r, output pixel p is padded[row_base[r] + pixel_offset[p]] in a
// zero-padded copy of the sample (stride 1). The operand read through the tables is packed one
// micro-panel at a time (kc x NR of B for the forward GEMM, kc x MR of A for the weight gradient),
// straight from the padded copy into a buffer that stays in L1 while the other operand's panels
// stream past it: a packed im2col of one panel instead of a column matrix in L2. The packed panels
// hold exactly the explicit columns' values, so the sums are those of ck_sgemm_packed over
// explicit columns, bit for bit.

static long gd_conv_columns_floats(const ck_conv_geometry *g) {
    if (g->stride != 1) return 0;
    const long hp = g->height + 2 * g->padding, wp = g->width + 2 * g->padding;
    const long pixels = g->output_height * g->output_width;
    const long ints = g->channels * g->kernel * g->kernel + pixels;
    return (g->channels * hp * wp + 15) / 16 * 16 + (ints + 15) / 16 * 16;
}

static void gd_conv_columns_prepare(const ck_conv_geometry *g, const float *input, float *scratch,
                                    ck_conv_columns *out) {
    const long k = g->kernel, h = g->height, w = g->width, pad = g->padding, hp = h + 2 * pad, wp = w + 2 * pad,
               ow = g->output_width, pixels = g->output_height * ow, rows = g->channels * k * k;
    const long copy = (g->channels * hp * wp + 15) / 16 * 16;
    memset(scratch, 0, sizeof(float) * (size_t)copy);
    for (long c = 0; c < g->channels; c++) {
        for (long y = 0; y < h; y++) {
            memcpy(scratch + (c * hp + y + pad) * wp + pad, input + (c * h + y) * w, sizeof(float) * (size_t)w);
        }
    }
    int *row_base = (int *)(scratch + copy), *pixel_offset = row_base + rows;
    for (long c = 0; c < g->channels; c++) {
        for (long ky = 0; ky < k; ky++) {
            for (long kx = 0; kx < k; kx++) row_base[(c * k + ky) * k + kx] = (int)((c * hp + ky) * wp + kx);
        }
    }
    // Output pixel p = oy*OW + ox reads padded[(oy + ky)*Wp + ox + kx] = row base + p + (K - 1)*oy.
    for (long p = 0; p < pixels; p++) pixel_offset[p] = (int)(p + (k - 1) * (p / ow));
    out->padded = scratch;
    out->row_base = row_base;
    out->pixel_offset = pixel_offset;
    out->chunk_offset = NULL;  // the 16-lane permute tables of the AVX-512 kernels: not used here
    out->chunk_index = NULL;
}

// B panel (kc x NR) of column rows [r0, r0 + kc), pixels [j0, j0 + nr), zero past nr.
static inline void gd_pack_implicit_b(const ck_conv_columns *cols, long r0, long kc, long j0, long nr, float *out) {
    const int *offset = cols->pixel_offset + j0;
    for (long p = 0; p < kc; p++) {
        const float *row = cols->padded + cols->row_base[r0 + p];
        float *to = out + p * GEMM_NR;
        for (long j = 0; j < GEMM_NR; j++) to[j] = j < nr ? row[offset[j]] : 0.0f;
    }
}

// A panel (kc x MR) of column rows [i0, i0 + mr), pixels [p0, p0 + kc), zero past mr.
static inline void gd_pack_implicit_a(const ck_conv_columns *cols, long i0, long mr, long p0, long kc, float *out) {
    const float *row[GEMM_MR];
    for (long i = 0; i < GEMM_MR; i++) row[i] = cols->padded + cols->row_base[i0 + (i < mr ? i : 0)];
    const int *offset = cols->pixel_offset + p0;
    for (long p = 0; p < kc; p++) {
        const long o = offset[p];
        float *to = out + p * GEMM_MR;
        for (long i = 0; i < GEMM_MR; i++) to[i] = i < mr ? row[i][o] : 0.0f;
    }
}

typedef struct {
    long m, n, k, n_step;
    const float *packed_a;
    const ck_conv_columns *cols;
    float beta;
    float *c;
    long ldc;
} gd_conv_job;

// Output columns [index * n_step, ...) of the forward GEMM.
static void gd_conv_forward_part(void *context, long index) {
    const gd_conv_job *job = context;
    const long j0 = index * job->n_step;
    if (j0 >= job->n) return;
    gd_ensure_buffers();
    const long j_end = gd_min(job->n, j0 + job->n_step), k = job->k, kc_step = gd_chunk_step(k);
    for (long pc = 0; pc < k; pc += kc_step) {
        const long kc = gd_min(k - pc, kc_step);
        const float beta_now = pc == 0 ? job->beta : 1.0f;
        for (long jr = j0; jr < j_end; jr += GEMM_NR) {
            const long nr = gd_min(j_end - jr, GEMM_NR);
            gd_pack_implicit_b(job->cols, pc, kc, jr, nr, gd_b_edge);
            for (long ir = 0; ir < job->m; ir += GEMM_MR) {
                gd_tile(kc, job->packed_a + ir * k + pc * GEMM_MR, 0, gd_b_edge, 0, job->c + ir * job->ldc + jr, job->ldc,
                        beta_now, gd_min(job->m - ir, GEMM_MR), nr);
            }
        }
    }
}

static void gd_conv_forward_gemm(long m, long n, long k, const float *packed_a, const ck_conv_columns *cols,
                                 float beta, float *c, long ldc) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    const long threads = ck_threads(), n_panels = (n + GEMM_NR - 1) / GEMM_NR;
    gd_conv_job job = {m, n, k, n_panels * GEMM_NR, packed_a, cols, beta, c, ldc};
    if (threads > 1 && n_panels >= threads && m * n * k >= 64L * 64 * 64) {
        job.n_step = (n_panels + threads - 1) / threads * GEMM_NR;
        ck_parallel_for(threads, gd_conv_forward_part, &job);  // serial when called inside a parallel loop
    } else {
        gd_conv_forward_part(&job, 0);
    }
}

static void gd_conv_weight_gradient_gemm(long m, long n, long k, const ck_conv_columns *cols, const float *packed_b,
                                         float beta, float *c, long ldc) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    gd_ensure_buffers();
    const long kc_step = gd_chunk_step(k);
    for (long pc = 0; pc < k; pc += kc_step) {
        const long kc = gd_min(k - pc, kc_step);
        const float beta_now = pc == 0 ? beta : 1.0f;
        for (long ir = 0; ir < m; ir += GEMM_MR) {
            const long mr = gd_min(m - ir, GEMM_MR);
            gd_pack_implicit_a(cols, ir, mr, pc, kc, gd_a_panel);
            for (long jr = 0; jr < n; jr += GEMM_NR) {
                gd_tile(kc, gd_a_panel, 0, packed_b + jr * k + pc * GEMM_NR, 0, c + ir * ldc + jr, ldc, beta_now, mr,
                        gd_min(n - jr, GEMM_NR));
            }
        }
    }
}

#define CK_GEMM_ENTRIES                                                                                       \
    .packed_a_floats = gd_packed_a_floats, .packed_b_floats = gd_packed_b_floats, .pack_a = gd_pack_a,       \
    .pack_b = gd_pack_b, .sgemm = gd_sgemm, .sgemm_packed = gd_sgemm_packed,                                 \
    .conv_columns_floats = gd_conv_columns_floats, .conv_columns_prepare = gd_conv_columns_prepare,          \
    .conv_forward_gemm = gd_conv_forward_gemm, .conv_weight_gradient_gemm = gd_conv_weight_gradient_gemm
