#if defined(__x86_64__)
#include "avx512.h"
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

// Goto/BLIS-style single-precision GEMM for AVX-512: B is packed into panels of NR columns
// (KC x NC block, kept in L2/L3), A into panels of MR rows (MC x KC block), and an MR x NR
// micro-kernel keeps its 8 x 32 tile of C in 16 zmm registers while it walks k.
enum { MR = 8, NR = 32, KC = 256, MC = 128, NC = 4096 };


// Packing buffers, one pair per thread, allocated on a thread's first GEMM and kept.
static _Thread_local float *pack_a_buffer;
static _Thread_local float *pack_b_buffer;

static int ensure_buffers(void) {
    if (!pack_a_buffer) pack_a_buffer = aligned_alloc(64, sizeof(float) * MC * KC);
    if (!pack_b_buffer) pack_b_buffer = aligned_alloc(64, sizeof(float) * KC * NC);
    return pack_a_buffer && pack_b_buffer;
}

// Transposes a 16 x 16 tile: out row r, column q = in row q, column r. in_ld/out_ld in floats.
AVX512 static inline void transpose16(const float *in, long in_ld, __m512 out[16]) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(in + i * in_ld);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    // r[4g + j] now holds, in each 128-bit lane L, column 4L + j of rows 4g .. 4g+3.
    for (int g = 0; g < 2; g++) {
        for (int j = 0; j < 4; j++) {
            __m512 x = r[8 * g + j], y = r[8 * g + 4 + j];
            t[8 * g + j] = _mm512_shuffle_f32x4(x, y, 0x88);      // lanes 0,2 of x then 0,2 of y
            t[8 * g + 4 + j] = _mm512_shuffle_f32x4(x, y, 0xdd);  // lanes 1,3 of x then 1,3 of y
        }
    }
    for (int j = 0; j < 4; j++) {
        for (int h = 0; h < 2; h++) {
            __m512 x = t[4 * h + j], y = t[8 + 4 * h + j];
            out[(h) * 4 + j] = _mm512_shuffle_f32x4(x, y, 0x88);
            out[8 + h * 4 + j] = _mm512_shuffle_f32x4(x, y, 0xdd);
        }
    }
}

// op(A) rows [i0, i0 + mc), columns [p0, p0 + kc) -> panels of MR rows, each (kc, MR), alpha folded in,
// rows past mc zero.
AVX512 static void pack_a(int trans, const float *a, long lda, long i0, long mc, long p0, long kc,
                          float alpha, float *out) {
    for (long r = 0; r < mc; r += MR) {
        long rows = mc - r < MR ? mc - r : MR;
        float *panel = out + r * kc;
        if (trans) {  // op(A)[i][p] = a[p * lda + i]: each k gives MR contiguous floats
            __mmask16 mask = (__mmask16)((1u << rows) - 1);
            __m256 scale = _mm256_set1_ps(alpha);
            for (long p = 0; p < kc; p++) {
                __m256 v = _mm256_maskz_loadu_ps((__mmask8)mask, a + (p0 + p) * lda + i0 + r);
                _mm256_store_ps(panel + p * MR, _mm256_mul_ps(v, scale));
            }
        } else {      // op(A)[i][p] = a[i * lda + p]: interleave MR rows
            const float *base = a + (i0 + r) * lda + p0;
            long p = 0;
            if (rows == MR && r + 2 * MR <= mc) {
                // Two panels at once from one 16 x 16 transpose.
                float *next = panel + MR * kc;
                __m512 scale = _mm512_set1_ps(alpha);
                for (; p + 16 <= kc; p += 16) {
                    __m512 col[16];
                    transpose16(base + p, lda, col);
                    for (int q = 0; q < 16; q++) {
                        __m512 v = _mm512_mul_ps(col[q], scale);
                        _mm256_store_ps(panel + (p + q) * MR, _mm512_castps512_ps256(v));
                        _mm256_store_ps(next + (p + q) * MR, _mm512_extractf32x8_ps(v, 1));
                    }
                }
                for (; p < kc; p++) {
                    for (int i = 0; i < MR; i++) {
                        panel[p * MR + i] = alpha * base[i * lda + p];
                        next[p * MR + i] = alpha * base[(i + MR) * lda + p];
                    }
                }
                r += MR;  // the next panel is done too
                continue;
            }
            for (; p < kc; p++) {
                for (long i = 0; i < MR; i++) panel[p * MR + i] = i < rows ? alpha * base[i * lda + p] : 0.0f;
            }
        }
    }
}

// op(B) rows [p0, p0 + kc), columns [j0, j0 + nc) -> panels of NR columns, each (kc, NR), columns past nc zero.
AVX512 static void pack_b(int trans, const float *b, long ldb, long p0, long kc, long j0, long nc, float *out) {
    for (long q = 0; q < nc; q += NR) {
        long cols = nc - q < NR ? nc - q : NR;
        float *panel = out + q * kc;
        if (!trans) {  // op(B)[p][j] = b[p * ldb + j]: a row of NR contiguous floats per k
            __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
            __mmask16 m1 = cols <= 16 ? 0 : cols >= 32 ? 0xFFFF : (__mmask16)((1u << (cols - 16)) - 1);
            const float *row = b + p0 * ldb + j0 + q;
            for (long p = 0; p < kc; p++, row += ldb) {
                _mm512_store_ps(panel + p * NR, _mm512_maskz_loadu_ps(m0, row));
                _mm512_store_ps(panel + p * NR + 16, _mm512_maskz_loadu_ps(m1, row + 16));
            }
        } else {       // op(B)[p][j] = b[j * ldb + p]: transpose 16 x 16 tiles
            const float *base = b + (j0 + q) * ldb + p0;
            long p = 0;
            if (cols == NR) {
                for (; p + 16 <= kc; p += 16) {
                    for (int h = 0; h < 2; h++) {
                        __m512 col[16];
                        transpose16(base + h * 16 * ldb + p, ldb, col);
                        for (int k = 0; k < 16; k++) _mm512_store_ps(panel + (p + k) * NR + 16 * h, col[k]);
                    }
                }
            }
            for (; p < kc; p++) {
                for (long j = 0; j < NR; j++) panel[p * NR + j] = j < cols ? base[j * ldb + p] : 0.0f;
            }
        }
    }
}

// C tile (mr x nr, at most MR x NR) = acc + beta * C tile; beta == 0 never reads C.
AVX512 static inline __attribute__((always_inline)) void store_tile(__m512 acc[MR][2], float *c, long ldc, float beta,
                                                                     long mr, long nr) {
    const __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
    const __mmask16 m1 = nr <= 16 ? 0 : nr >= 32 ? 0xFFFF : (__mmask16)((1u << (nr - 16)) - 1);
    __m512 vb = _mm512_set1_ps(beta);
    if (mr == MR && nr == NR) {
        for (int i = 0; i < MR; i++) {
            float *out = c + i * ldc;
            if (beta == 0.0f) {
                _mm512_storeu_ps(out, acc[i][0]);
                _mm512_storeu_ps(out + 16, acc[i][1]);
            } else {
                _mm512_storeu_ps(out, _mm512_fmadd_ps(vb, _mm512_loadu_ps(out), acc[i][0]));
                _mm512_storeu_ps(out + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(out + 16), acc[i][1]));
            }
        }
        return;
    }
    for (long i = 0; i < mr; i++) {
        float *out = c + i * ldc;
        __m512 x0 = acc[i][0], x1 = acc[i][1];
        if (beta != 0.0f) {
            x0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, out), x0);
            x1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, out + 16), x1);
        }
        _mm512_mask_storeu_ps(out, m0, x0);
        _mm512_mask_storeu_ps(out + 16, m1, x1);
    }
}

// C tile (mr x nr, at most MR x NR) = A · B + beta * C tile, over kc steps of k. Each operand is
// either packed (A element (p, i) at a[p*MR + i]; B element (p, j) at b[p*NR + j], 64-byte aligned,
// zero past the edge) or read in place from a row-major matrix (a_rows: A element (p, i) at
// a[i*a_ld + p], rows past mr never read; b_rows: B element (p, j) at b[p*b_ld + j], columns past nr
// never read). Reading in place saves packing an operand that is used by only one row of tiles.
// Inlined into one function per combination, so the flags cost nothing in the loop.
AVX512 static inline __attribute__((always_inline)) void tile(long kc, const float *restrict a, long a_ld, int a_rows,
                                                               const float *restrict b, long b_ld, int b_rows,
                                                               float *c, long ldc, float beta, long mr, long nr) {
    const __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
    const __mmask16 m1 = nr <= 16 ? 0 : nr >= 32 ? 0xFFFF : (__mmask16)((1u << (nr - 16)) - 1);
    const float *row[MR];
    for (int i = 0; i < MR; i++) row[i] = a + (i < mr ? i : 0) * a_ld;
    const long b_step = b_rows ? b_ld : NR;
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) { acc[i][0] = _mm512_setzero_ps(); acc[i][1] = _mm512_setzero_ps(); }
#define A_AT(i, p) (a_rows ? row[i][p] : a[(p) * MR + (i)])
    if (nr <= 16) {  // an edge panel of at most 16 columns: its right half would only multiply zeros
        for (long p = 0; p < kc; p++) {
            const float *bp = b + p * b_step;
            __m512 b0 = b_rows ? _mm512_maskz_loadu_ps(m0, bp) : _mm512_load_ps(bp);
            for (int i = 0; i < MR; i++) acc[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(A_AT(i, p)), b0, acc[i][0]);
        }
    } else {
        for (long p = 0; p < kc; p++) {
            const float *bp = b + p * b_step;
            __m512 b0 = b_rows ? _mm512_loadu_ps(bp) : _mm512_load_ps(bp);
            __m512 b1 = b_rows ? _mm512_maskz_loadu_ps(m1, bp + 16) : _mm512_load_ps(bp + 16);
            for (int i = 0; i < MR; i++) {
                __m512 ai = _mm512_set1_ps(A_AT(i, p));
                acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
            }
        }
    }
#undef A_AT
    store_tile(acc, c, ldc, beta, mr, nr);
}

AVX512 static void micro_kernel(long kc, const float *a, const float *b, float *c, long ldc, float beta, long mr, long nr) {
    tile(kc, a, 0, 0, b, 0, 0, c, ldc, beta, mr, nr);
}

AVX512 static void micro_kernel_b_rows(long kc, const float *a, const float *b, long ldb, float *c, long ldc, float beta,
                                       long mr, long nr) {
    tile(kc, a, 0, 0, b, ldb, 1, c, ldc, beta, mr, nr);
}

AVX512 static void micro_kernel_a_rows(long kc, const float *a, long lda, const float *b, float *c, long ldc, float beta,
                                       long mr, long nr) {
    tile(kc, a, lda, 1, b, 0, 0, c, ldc, beta, mr, nr);
}

AVX512 static void gemm_serial(int ta, int tb, long m, long n, long k, float alpha, const float *a, long lda,
                               const float *b, long ldb, float beta, float *c, long ldc) {
    // K is cut into equal chunks of at most KC: the summation order of an element depends on k only.
    long chunks = (k + KC - 1) / KC;
    long kc_step = (k + chunks - 1) / chunks;
    float *pa = pack_a_buffer, *pb = pack_b_buffer;
    for (long jc = 0; jc < n; jc += NC) {
        long nc = n - jc < NC ? n - jc : NC;
        for (long pc = 0; pc < k; pc += kc_step) {
            long kc = k - pc < kc_step ? k - pc : kc_step;
            float beta_now = pc == 0 ? beta : 1.0f;
            pack_b(tb, b, ldb, pc, kc, jc, nc, pb);
            for (long ic = 0; ic < m; ic += MC) {
                long mc = m - ic < MC ? m - ic : MC;
                pack_a(ta, a, lda, ic, mc, pc, kc, alpha, pa);
                for (long jr = 0; jr < nc; jr += NR) {
                    long nr = nc - jr < NR ? nc - jr : NR;
                    for (long ir = 0; ir < mc; ir += MR) {
                        long mr = mc - ir < MR ? mc - ir : MR;
                        micro_kernel(kc, pa + ir * kc, pb + jr * kc, c + (ic + ir) * ldc + jc + jr, ldc,
                                     beta_now, mr, nr);
                    }
                }
            }
        }
    }
}

long avx512_packed_a_floats(long m, long k) { return (m + MR - 1) / MR * MR * k; }
long avx512_packed_b_floats(long k, long n) { return (n + NR - 1) / NR * NR * k; }

AVX512 void avx512_pack_a(int transpose_a, const float *a, long lda, long m, long k, float alpha, float *out) {
    pack_a(transpose_a, a, lda, 0, m, 0, k, alpha, out);
}

AVX512 void avx512_pack_b(int transpose_b, const float *b, long ldb, long k, long n, float *out) {
    pack_b(transpose_b, b, ldb, 0, k, 0, n, out);
}

// Columns [j0, j0 + n) of C. A is packed in whole-k panels (panel r at a + r * k) when lda == 0,
// else row-major (m, k) read in place; B likewise (panel q at b + q * k, or row-major (k, n)). The
// k chunks are those of gemm_serial, so every element is summed in the same order as by ck_sgemm.
AVX512 static void gemm_packed_serial(long m, long j0, long n, long k, const float *a, long lda, const float *b,
                                      long ldb, float beta, float *c, long ldc) {
    long chunks = (k + KC - 1) / KC;
    long kc_step = (k + chunks - 1) / chunks;
    for (long pc = 0; pc < k; pc += kc_step) {
        long kc = k - pc < kc_step ? k - pc : kc_step;
        float beta_now = pc == 0 ? beta : 1.0f;
        for (long jr = j0; jr < j0 + n; jr += NR) {
            long nr = j0 + n - jr < NR ? j0 + n - jr : NR;
            for (long ir = 0; ir < m; ir += MR) {
                long mr = m - ir < MR ? m - ir : MR;
                float *tile_c = c + ir * ldc + jr;
                if (lda) {
                    micro_kernel_a_rows(kc, a + ir * lda + pc, lda, b + jr * k + pc * NR, tile_c, ldc, beta_now, mr, nr);
                } else if (ldb) {
                    micro_kernel_b_rows(kc, a + ir * k + pc * MR, b + pc * ldb + jr, ldb, tile_c, ldc, beta_now, mr, nr);
                } else {
                    micro_kernel(kc, a + ir * k + pc * MR, b + jr * k + pc * NR, tile_c, ldc, beta_now, mr, nr);
                }
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
} packed_job;

static void packed_part(void *context, long index) {
    const packed_job *job = context;
    long start = index * job->step;
    if (start >= job->n) return;
    long count = job->n - start < job->step ? job->n - start : job->step;
    gemm_packed_serial(job->m, start, count, job->k, job->a, job->lda, job->b, job->ldb, job->beta, job->c, job->ldc);
}

void avx512_sgemm_packed(long m, long n, long k, const float *a, long lda, const float *b, long ldb, float beta,
                     float *c, long ldc) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    if (lda && ldb) abort();  // one operand at least is packed (documented)
    long threads = ck_threads(), n_panels = (n + NR - 1) / NR;
    packed_job job = {m, n, k, n_panels * NR, a, b, lda, ldb, beta, c, ldc};
    if (threads > 1 && n_panels >= threads && m * n * k >= 64L * 64 * 64) {
        job.step = (n_panels + threads - 1) / threads * NR;
        ck_parallel_for(threads, packed_part, &job);  // serial when called inside a parallel loop
    } else {
        packed_part(&job, 0);
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
} gemm_job;

static void gemm_part(void *context, long index) {
    const gemm_job *job = context;
    if (!ensure_buffers()) abort();  // 4 MB per thread; failing here means the machine is out of memory
    long start = index * job->step;
    if (job->split_n) {
        if (start >= job->n) return;
        long count = job->n - start < job->step ? job->n - start : job->step;
        const float *b = job->tb ? job->b + start * job->ldb : job->b + start;
        gemm_serial(job->ta, job->tb, job->m, count, job->k, job->alpha, job->a, job->lda, b, job->ldb,
                    job->beta, job->c + start, job->ldc);
    } else {
        if (start >= job->m) return;
        long count = job->m - start < job->step ? job->m - start : job->step;
        const float *a = job->ta ? job->a + start : job->a + start * job->lda;
        gemm_serial(job->ta, job->tb, count, job->n, job->k, job->alpha, a, job->lda, job->b, job->ldb,
                    job->beta, job->c + start * job->ldc, job->ldc);
    }
}

void avx512_sgemm(int ta, int tb, long m, long n, long k, float alpha, const float *a, long lda,
              const float *b, long ldb, float beta, float *c, long ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0.0f) {
        for (long i = 0; i < m; i++) {
            for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        }
        return;
    }
    gemm_job job = {ta, tb, m, n, k, alpha, beta, a, b, c, lda, ldb, ldc, 1, n, 1};
    long threads = ck_threads();
    // Splitting costs a wake-up (~10 us) and a second packing of the shared operand.
    if (threads > 1 && m * n * k >= 64L * 64 * 64) {
        long n_panels = (n + NR - 1) / NR, m_panels = (m + MR - 1) / MR;
        if (n_panels >= 2 * threads || n_panels >= m_panels) {
            long per = (n_panels + threads - 1) / threads;
            job.step = per * NR;
            job.split_n = 1;
        } else {
            long per = (m_panels + threads - 1) / threads;
            job.step = per * MR;
            job.split_n = 0;
        }
        job.parts = threads;
    }
    if (job.parts == 1) {
        gemm_part(&job, 0);
    } else {
        ck_parallel_for(job.parts, gemm_part, &job);
    }
}

// ---- Convolution GEMMs over implicit columns (ck_conv_columns): the column matrix of a sample is
// never written. Column row r, pixel p is cols->padded[row_base[r] + pixel_offset[p]]; 16
// consecutive pixels of a row lie in one 32-float window of the padded sample, picked out by one
// two-source permute. Same tiles, k chunks and summation order as the explicit versions.

// Forward tile: A packed (the weights), B the implicit columns of chunks j0 (and j1 for nr > 16).
AVX512 static void tile_implicit_b(long kc, const float *restrict a, const float *padded, const int *row_base,
                                   long off0, __m512i idx0, long off1, __m512i idx1, float *c, long ldc, float beta,
                                   long mr, long nr) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) { acc[i][0] = _mm512_setzero_ps(); acc[i][1] = _mm512_setzero_ps(); }
    if (nr <= 16) {
        for (long p = 0; p < kc; p++) {
            const float *base = padded + row_base[p] + off0;
            __m512 b0 = _mm512_permutex2var_ps(_mm512_loadu_ps(base), idx0, _mm512_loadu_ps(base + 16));
            for (int i = 0; i < MR; i++) acc[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), b0, acc[i][0]);
            a += MR;
        }
    } else {
        for (long p = 0; p < kc; p++) {
            const float *base = padded + row_base[p];
            __m512 b0 = _mm512_permutex2var_ps(_mm512_loadu_ps(base + off0), idx0, _mm512_loadu_ps(base + off0 + 16));
            __m512 b1 = _mm512_permutex2var_ps(_mm512_loadu_ps(base + off1), idx1, _mm512_loadu_ps(base + off1 + 16));
            for (int i = 0; i < MR; i++) {
                __m512 ai = _mm512_set1_ps(a[i]);
                acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
            }
            a += MR;
        }
    }
    store_tile(acc, c, ldc, beta, mr, nr);
}

// Weight-gradient tile: A the implicit columns (rows row_base[0 .. mr), pixels from pixel_offset), B packed.
AVX512 static void tile_implicit_a(long kc, const float *padded, const int *row_base, const int *pixel_offset,
                                   const float *restrict b, float *c, long ldc, float beta, long mr, long nr) {
    const float *row[MR];
    for (int i = 0; i < MR; i++) row[i] = padded + row_base[i < mr ? i : 0];
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) { acc[i][0] = _mm512_setzero_ps(); acc[i][1] = _mm512_setzero_ps(); }
    if (nr <= 16) {
        for (long p = 0; p < kc; p++) {
            const long o = pixel_offset[p];
            __m512 b0 = _mm512_load_ps(b);
            for (int i = 0; i < MR; i++) acc[i][0] = _mm512_fmadd_ps(_mm512_set1_ps(row[i][o]), b0, acc[i][0]);
            b += NR;
        }
    } else {
        for (long p = 0; p < kc; p++) {
            const long o = pixel_offset[p];
            __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
            for (int i = 0; i < MR; i++) {
                __m512 ai = _mm512_set1_ps(row[i][o]);
                acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
            }
            b += NR;
        }
    }
    store_tile(acc, c, ldc, beta, mr, nr);
}

typedef struct {
    long m, n, k;
    long m_step, n_step;  // part `index` is rows [index * m_step, ...) or columns [index * n_step, ...)
    int split_m;
    const float *packed_a;
    const ck_conv_columns *cols;
    float beta;
    float *c;
    long ldc;
} conv_forward_job;

AVX512 static void conv_forward_part(void *context, long index) {
    const conv_forward_job *job = context;
    const long i0 = job->split_m ? index * job->m_step : 0, j0 = job->split_m ? 0 : index * job->n_step;
    if (i0 >= job->m || j0 >= job->n) return;
    const long m_end = !job->split_m || job->m - i0 < job->m_step ? job->m : i0 + job->m_step;
    const long n_end = job->split_m || job->n - j0 < job->n_step ? job->n : j0 + job->n_step, k = job->k;
    const long chunks = (k + KC - 1) / KC, kc_step = (k + chunks - 1) / chunks;
    const ck_conv_columns *cols = job->cols;
    for (long pc = 0; pc < k; pc += kc_step) {
        const long kc = k - pc < kc_step ? k - pc : kc_step;
        const float beta_now = pc == 0 ? job->beta : 1.0f;
        for (long jr = j0; jr < n_end; jr += NR) {
            const long nr = n_end - jr < NR ? n_end - jr : NR, q = jr / 16;
            const long q1 = nr > 16 ? q + 1 : q;
            const __m512i idx0 = _mm512_loadu_si512(cols->chunk_index + 16 * q);
            const __m512i idx1 = _mm512_loadu_si512(cols->chunk_index + 16 * q1);
            for (long ir = i0; ir < m_end; ir += MR) {
                const long mr = m_end - ir < MR ? m_end - ir : MR;
                tile_implicit_b(kc, job->packed_a + ir * k + pc * MR, cols->padded, cols->row_base + pc,
                                cols->chunk_offset[q], idx0, cols->chunk_offset[q1], idx1, job->c + ir * job->ldc + jr,
                                job->ldc, beta_now, mr, nr);
            }
        }
    }
}

void avx512_conv_forward_gemm(long m, long n, long k, const float *packed_a, const ck_conv_columns *cols, float beta,
                          float *c, long ldc) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    long threads = ck_threads(), n_panels = (n + NR - 1) / NR, m_panels = (m + MR - 1) / MR;
    conv_forward_job job = {m, n, k, m_panels * MR, n_panels * NR, 0, packed_a, cols, beta, c, ldc};
    if (threads > 1 && m * n * k >= 64L * 64 * 64 && (n_panels >= threads || m_panels >= threads)) {
        // Split the side that shares out more evenly (its largest part is the smaller fraction of
        // the whole): one sample's 196 pixels are 7 column panels, 4 + 3, but its 64 rows are 4 + 4.
        long n_per = (n_panels + threads - 1) / threads, m_per = (m_panels + threads - 1) / threads;
        job.split_m = m_panels >= threads && (n_panels < threads || m_per * n_panels < n_per * m_panels);
        job.m_step = m_per * MR;
        job.n_step = n_per * NR;
        ck_parallel_for(threads, conv_forward_part, &job);  // serial when called inside a parallel loop
    } else {
        conv_forward_part(&job, 0);
    }
}

AVX512 void avx512_conv_weight_gradient_gemm(long m, long n, long k, const ck_conv_columns *cols, const float *packed_b,
                                         float beta, float *c, long ldc) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    const long chunks = (k + KC - 1) / KC, kc_step = (k + chunks - 1) / chunks;
    for (long pc = 0; pc < k; pc += kc_step) {
        const long kc = k - pc < kc_step ? k - pc : kc_step;
        const float beta_now = pc == 0 ? beta : 1.0f;
        for (long jr = 0; jr < n; jr += NR) {
            const long nr = n - jr < NR ? n - jr : NR;
            for (long ir = 0; ir < m; ir += MR) {
                const long mr = m - ir < MR ? m - ir : MR;
                tile_implicit_a(kc, cols->padded, cols->row_base + ir, cols->pixel_offset + pc, packed_b + jr * k + pc * NR,
                                c + ir * ldc + jr, ldc, beta_now, mr, nr);
            }
        }
    }
}
#endif
