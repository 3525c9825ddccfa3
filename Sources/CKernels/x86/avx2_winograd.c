#if defined(__x86_64__)
#include "avx2.h"
#include <immintrin.h>
#include "prefetch.h"
#include <stdlib.h>

// Winograd convolution F(2x2, r x r) for stride-1 layers with 3x3 or 5x5 kernels, 8 lanes (the
// AVX-512 file, x86/avx512_winograd.c, has the algorithm at 16). Per 2 x 2 block of output pixels
// (a tile) Y = A^T [(G g G^T) ⊙ (B^T d B)] A over the alpha x alpha input window d, alpha = r + 1;
// summed over input channels, each transform position ξ is a GEMM M_ξ (m x tiles) = U_ξ (m x C) ·
// V_ξ (C x tiles), run by the AVX2 table's packed GEMM (its entries, not ck_sgemm_packed: these
// functions give the same results whichever table is active, as when a test calls them directly).
//
// The 8-lane formulation. Lane l of a vector is tile column tx0 + l of one row of tiles, so every
// combination of the transforms is lane-wise; the only data movement is a stride-2 gather of input
// columns (lane l wants input column 2 (tx0 + l) + q), which AVX2 has no cheap instruction for. It
// is made from two contiguous loads at column 2 tx0 + q: vshufps picks their even (0x88) or odd
// (0xDD) elements, vpermpd puts the 128-bit halves in order, so one pair of loads serves q and q + 1.
// The columns are gathered and combined (d B) once per input row, into a ring of rows, since the
// windows of consecutive rows of tiles share alpha - 2 input rows; the rows are then combined
// (B^T (d B)) per row of tiles. The output side reverses it: (M A) per window row, A^T (M A), and
// vunpcklps/vunpckhps + vperm2f128 interleave the two output columns of each tile.
// Measured against two alternatives (whole call, 64 -> 64 3x3 / 64 -> 32 5x5 on 14 x 14, 8 samples,
// Zen 4, medians of 5): gathering each window's rows again for every row of tiles, 6% / 6% slower;
// vgatherdps for the stride-2 columns, 11% / 9% slower. The gather itself is a few per cent of the
// call; the V stores (alpha² rows apart, many across a cache line) are most of the input
// transform, and the GEMMs two thirds of the call.
//
// Stores are whole vectors. A vector that runs past the end of a row of tiles (or of an output row)
// writes into columns that the same job writes later, in increasing order, so every value ends
// up right; only where nothing of the same job follows (the end of an output plane) is the store
// masked, and V and M rows have room for the overhang (ld >= columns + 8). A job is one channel
// of V (or one output channel) across the chunk's samples, so no two jobs share a row. V's columns
// are zero from the chunk's last tile to a whole number of 16-column panels, and the GEMM runs
// over those: cheaper than the driver packing an edge panel for every 6 rows of U (5% of the call
// on the layers above).
//
// Every output element is summed in an order fixed by the layer's shapes: the transforms are per
// tile, the GEMM sums over C in its own fixed order, whatever the thread count, the batch, or the
// other tiles of a chunk.

#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)

#define UNROLL _Pragma("clang loop unroll(full)")
#define GEMM ck_avx2_kernels  // its GEMM entries: x86/avx2.c's micro-kernel over generic/gemm_driver.h
#define ALWAYS_INLINE static inline __attribute__((always_inline))

#include "../generic/winograd_matrices.h"

// Tiles of one chunk's GEMMs at most. Measured on the 14 x 14 layers below: 64 to 160 tiles within
// a few per cent of each other, 32 about 15% slower (the GEMM's per-tile overhead over short rows).
enum { CHUNK_TILES = 112 };
enum { MAX_VECTORS = 2 };  // 8-tile vectors per row of tiles: output at most 32 columns wide

typedef struct {
    long c, h, w, r, pad, oh, ow;
    long alpha, th, tw, vectors;  // vectors: 8-lane blocks per row of tiles
    // load_mask[vb][e][half]: lanes of the two loads at padded column 16 vb + 2 e (+ 8) that lie
    // inside the input row (the others read as zero: the padding).
    int load_mask[MAX_VECTORS][3][2][8];
} plan;

// Geometries this file computes (any stride-1 3x3 / 5x5 layer up to 32 output columns); which of
// them it is worth it for is avx2_winograd_supported's question.
static int make_plan(const ck_conv_geometry *g, plan *p) {
    if (g->stride != 1 || (g->kernel != 3 && g->kernel != 5)) return 0;
    if (g->output_height < 1 || g->output_width < 1 || g->padding < 0 || g->padding >= g->kernel) return 0;
    if (g->channels < 1 || g->height < 1 || g->width < 1) return 0;
    p->c = g->channels; p->h = g->height; p->w = g->width; p->r = g->kernel; p->pad = g->padding;
    p->oh = g->output_height; p->ow = g->output_width;
    p->alpha = p->r + 1;
    p->th = (p->oh + 1) / 2; p->tw = (p->ow + 1) / 2;
    p->vectors = (p->tw + 7) / 8;
    if (p->vectors > MAX_VECTORS) return 0;
    for (int vb = 0; vb < MAX_VECTORS; vb++) {
        for (int e = 0; e < 3; e++) {
            for (int half = 0; half < 2; half++) {
                for (int l = 0; l < 8; l++) {
                    const long column = 16 * vb + 2 * e + 8 * half + l - p->pad;
                    p->load_mask[vb][e][half][l] = column >= 0 && column < p->w ? -1 : 0;
                }
            }
        }
    }
    return 1;
}

// Rows of tiles per chunk (a chunk may end inside a sample): the count whose tiles waste least of
// the GEMM's 16-column panels, the larger on a tie.
static long chunk_rows(const plan *p) {
    long best = 1;
    double best_use = 0;
    for (long rows = 1; rows == 1 || rows * p->tw <= CHUNK_TILES; rows++) {
        const long n = rows * p->tw;
        const double use = (double)n / (double)((n + 15) / 16 * 16);
        if (use >= best_use - 1e-9) { best_use = use; best = rows; }
    }
    return best;
}

// Floats per row of V_ξ and M_ξ: room for the 8-lane overhang, and 8 mod 16 so that the GEMM's
// rows are 32-byte aligned yet not all a power of two apart (which would crowd them into few L1 sets).
static long row_floats(long tiles) { return (tiles + 15) / 16 * 16 + 8; }
// From V_ξ (or M_ξ) to V_ξ+1: a cache line more than the matrix, so that the alpha² matrices' rows,
// which the transforms visit together, do not share L1 sets.
static long matrix_stride(long rows, long ld) { return (rows * ld + 15) / 16 * 16 + 16; }

long avx2_winograd_weights_floats(long m, long k, long r) {
    return (r + 1) * (r + 1) * (GEMM.packed_a_floats(m, k) + m * k);
}

long avx2_winograd_scratch_floats(const ck_conv_geometry *g, long m) {
    plan p;
    if (!make_plan(g, &p)) return 0;
    const long ld = row_floats(chunk_rows(&p) * p.tw);
    // A multiple of 16 (blocks laid end to end stay 64-byte aligned), and a vector of slack past M
    // for the output transform's overhanging loads.
    return p.alpha * p.alpha * (matrix_stride(p.c, ld) + matrix_stride(m, ld)) + 32;
}

// acc + c * x with c a constant after inlining: zeros and ones cost nothing.
ALWAYS_INLINE __m256 mac(__m256 acc, int started, float c, __m256 x) {
    if (!started) {
        if (c == 1.0f) return x;
        if (c == -1.0f) return _mm256_sub_ps(_mm256_setzero_ps(), x);
        return _mm256_mul_ps(_mm256_set1_ps(c), x);
    }
    if (c == 1.0f) return _mm256_add_ps(acc, x);
    if (c == -1.0f) return _mm256_sub_ps(acc, x);
    return _mm256_fmadd_ps(_mm256_set1_ps(c), x, acc);
}

// out[i] = Σ_j coef[i][j] x[j] for i < rows, j < cols, in increasing j.
#define COMBINE(out, rows, coef, x, cols)                                  \
    UNROLL for (int i_ = 0; i_ < (rows); i_++) {                           \
        __m256 acc_ = _mm256_setzero_ps();                                 \
        int started_ = 0;                                                  \
        UNROLL for (int j_ = 0; j_ < (cols); j_++) {                       \
            if ((coef)[i_][j_] != 0.0f) {                                  \
                acc_ = mac(acc_, started_, (coef)[i_][j_], (x)[j_]);       \
                started_ = 1;                                              \
            }                                                              \
        }                                                                  \
        (out)[i_] = acc_;                                                  \
    }

// Padded input row py of a plane, its columns gathered and combined: ring[b][8 vb + l] =
// Σ_q BT[b][q] d(py, 2 (8 vb + l) + q), the (d B) of every tile of the row of tiles.
ALWAYS_INLINE void input_row(const plan *p, const int A, const float (*bt)[6], const float *plane, long py,
                             float (*ring)[8 * MAX_VECTORS]) {
    const long iy = py - p->pad;
    if (iy < 0 || iy >= p->h) {
        for (long vb = 0; vb < p->vectors; vb++) {
            UNROLL for (int b = 0; b < A; b++) _mm256_store_ps(ring[b] + 8 * vb, _mm256_setzero_ps());
        }
        return;
    }
    const float *row = plane + iy * p->w - p->pad;  // padded column 0; lanes outside the row are masked off
    for (long vb = 0; vb < p->vectors; vb++) {
        __m256 x[6], out[6];
        UNROLL for (int e = 0; e < A / 2; e++) {
            const float *at = row + 16 * vb + 2 * e;
            const __m256 lo = _mm256_maskload_ps(at, _mm256_loadu_si256((const __m256i *)p->load_mask[vb][e][0]));
            const __m256 hi = _mm256_maskload_ps(at + 8, _mm256_loadu_si256((const __m256i *)p->load_mask[vb][e][1]));
            // [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6] -> [lo0 lo2 lo4 lo6 hi0 hi2 hi4 hi6]: columns 2 l + 2 e.
            const __m256 even = _mm256_shuffle_ps(lo, hi, 0x88), odd = _mm256_shuffle_ps(lo, hi, 0xDD);
            x[2 * e] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xD8));
            x[2 * e + 1] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(odd), 0xD8));
        }
        COMBINE(out, A, bt, x, A);
        UNROLL for (int b = 0; b < A; b++) _mm256_store_ps(ring[b] + 8 * vb, out[b]);
    }
}

// The V_ξ columns of tile rows [ty0, ty1) of one input plane: v points at the plane's channel row
// of V_0, at tile row ty0's column; V_ξ rows are `xi_stride` floats apart.
ALWAYS_INLINE void input_plane(const plan *p, const int A, const float (*bt)[6], const float *plane, long ty0, long ty1,
                               float *v, long xi_stride) {
    // Ring of the last 8 transformed padded rows (a window spans alpha <= 6): row py at py & 7.
    _Alignas(32) float ring[8][6][8 * MAX_VECTORS];
    const long tw = p->tw;
    long next = 2 * ty0;
    for (long ty = ty0; ty < ty1; ty++) {
        for (; next < 2 * ty + A; next++) input_row(p, A, bt, plane, next, ring[next & 7]);
        float *dst = v + (ty - ty0) * tw;
        UNROLL for (int b = 0; b < A; b++) {
            for (long vb = 0; vb < p->vectors; vb++) {
                __m256 rows[6], out[6];
                UNROLL for (int i = 0; i < A; i++) rows[i] = _mm256_load_ps(ring[(2 * ty + i) & 7][b] + 8 * vb);
                COMBINE(out, A, bt, rows, A);  // B^T (d B)
                UNROLL for (int a = 0; a < A; a++) _mm256_storeu_ps(dst + (a * A + b) * xi_stride + 8 * vb, out[a]);
            }
        }
    }
}

// Lanes [0, count) of v to dst (count < 8).
ALWAYS_INLINE void store_first(float *dst, __m256 v, long count) {
    const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(dst, lanes, v);
}

// Output row segment: 16 columns from dst, none past `end` (the plane's end; what overhangs the row
// before it lands on later rows of the plane, which are written after).
ALWAYS_INLINE void store_segment(float *dst, const float *end, __m256 lo, __m256 hi) {
    const long room = end - dst;
    if (room >= 16) {
        _mm256_storeu_ps(dst, lo);
        _mm256_storeu_ps(dst + 8, hi);
    } else if (room >= 8) {
        _mm256_storeu_ps(dst, lo);
        if (room > 8) store_first(dst + 8, hi, room - 8);
    } else {
        store_first(dst, lo, room);
    }
}

// Tile rows [ty0, ty1) of one output plane from M: mp points at the plane's channel row of M_0, at
// tile row ty0's column; M_ξ rows are `xi_stride` floats apart.
ALWAYS_INLINE void output_plane(const plan *p, const int A, const float (*at)[6], const float *mp, long ty0, long ty1,
                                long xi_stride, float bias, float *out) {
    const long tw = p->tw, oh = p->oh, ow = p->ow;
    const float *end = out + oh * ow;
    const __m256 vbias = _mm256_set1_ps(bias);
    for (long ty = ty0; ty < ty1; ty++) {
        const float *src = mp + (ty - ty0) * tw;
        // The last vector first: its overhang lands on the next row, which the first vector rewrites.
        for (long vb = p->vectors - 1; vb >= 0; vb--) {
            __m256 half[6][2];
            UNROLL for (int i = 0; i < A; i++) {
                __m256 row[6], pair[2];
                UNROLL for (int b = 0; b < A; b++) row[b] = _mm256_loadu_ps(src + (i * A + b) * xi_stride + 8 * vb);
                COMBINE(pair, 2, at, row, A);  // M A
                half[i][0] = pair[0];
                half[i][1] = pair[1];
            }
            UNROLL for (int k = 0; k < 2; k++) {
                const long oy = 2 * ty + k;
                if (oy >= oh) break;
                __m256 y[2];
                UNROLL for (int x = 0; x < 2; x++) {
                    __m256 column[6], one[1];
                    UNROLL for (int i = 0; i < A; i++) column[i] = half[i][x];
                    const float (*row_k)[6] = at + k;
                    COMBINE(one, 1, row_k, column, A);  // A^T (M A)
                    y[x] = one[0];
                }
                // Lane l of y[x] is column 2 (8 vb + l) + x.
                const __m256 lo = _mm256_unpacklo_ps(y[0], y[1]), hi = _mm256_unpackhi_ps(y[0], y[1]);
                const __m256 first = _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), vbias);
                const __m256 second = _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x31), vbias);
                store_segment(out + oy * ow + 16 * vb, end, first, second);
            }
        }
    }
}

// U_ξ = (G g G^T)_ξ of row i's kernels, 8 consecutive k at a time (lanes), into plain (alpha², m, k).
ALWAYS_INLINE void transform_row(const int A, const int R, const float (*gm)[5], const float *w, long c, long m, long k,
                                 int adjoint, long i, float *plain) {
    for (long p0 = 0; p0 < k; p0 += 8) {
        const long lanes = k - p0 < 8 ? k - p0 : 8;
        // Kernel of (row i, k index p): (o = i, ch = p), or flipped (o = p, ch = i) for the adjoint.
        int offsets[8];
        for (long l = 0; l < 8; l++) {
            const long p = p0 + (l < lanes ? l : 0);
            offsets[l] = (int)((adjoint ? p * c + i : i * c + p) * R * R);
        }
        const __m256i base = _mm256_loadu_si256((const __m256i *)offsets);
        const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 g[5][5], t[6][5];
        UNROLL for (int y = 0; y < R; y++) {
            UNROLL for (int x = 0; x < R; x++) {
                const int tap = adjoint ? (R - 1 - y) * R + R - 1 - x : y * R + x;
                g[y][x] = _mm256_i32gather_ps(w, _mm256_add_epi32(base, _mm256_set1_epi32(tap)), 4);
            }
        }
        UNROLL for (int x = 0; x < R; x++) {  // t = G g, column x
            __m256 column[5], out[6];
            UNROLL for (int y = 0; y < R; y++) column[y] = g[y][x];
            COMBINE(out, A, gm, column, R);
            UNROLL for (int a = 0; a < A; a++) t[a][x] = out[a];
        }
        UNROLL for (int a = 0; a < A; a++) {  // u = t G^T, row a
            __m256 out[6];
            COMBINE(out, A, gm, t[a], R);
            UNROLL for (int b = 0; b < A; b++) _mm256_maskstore_ps(plain + ((a * A + b) * m + i) * k + p0, keep, out[b]);
        }
    }
}

// Every (row, k) pair's U_ξ, packed as the AVX2 table's pack_a panels, one block per ξ.
void avx2_winograd_weights(const float *w, long oc, long c, long r, int adjoint, float *out) {
    const long alpha = r + 1, m = adjoint ? c : oc, k = adjoint ? oc : c, packed = GEMM.packed_a_floats(m, k);
    float *plain = out + alpha * alpha * packed;  // (alpha², m, k), past the packed blocks
    for (long i = 0; i < m; i++) {
        if (r == 3) transform_row(4, 3, G3, w, c, m, k, adjoint, i, plain);
        else transform_row(6, 5, G5, w, c, m, k, adjoint, i, plain);
    }
    for (long xi = 0; xi < alpha * alpha; xi++) GEMM.pack_a(0, plain + xi * m * k, k, m, k, 1.0f, out + xi * packed);
}

typedef struct {
    const plan *p;
    long m, ld;           // ld: floats per row of V_ξ and M_ξ
    long row0, rows;      // the chunk: tile rows [row0, row0 + rows) of the call, counted across samples
    long first, spanned;  // the samples it touches
    const float *u, *input, *bias;
    float *output, *v, *prod;
} chunk_job;

// Sample `first + j`'s tile rows [*ty0, *ty1) in the chunk; returns the V/M column of *ty0.
static long sample_rows(const chunk_job *job, long j, long *ty0, long *ty1) {
    const long th = job->p->th, start = (job->first + j) * th, end = start + th;
    const long from = job->row0 > start ? job->row0 : start;
    const long to = job->row0 + job->rows < end ? job->row0 + job->rows : end;
    *ty0 = from - start;
    *ty1 = to - start;
    return (from - job->row0) * job->p->tw;
}

// Channel c of every sample in the chunk, in column order (so the overhang of one row of tiles is
// rewritten by the next one, even across samples).
static void input_part(void *context, long c) {
    const chunk_job *job = context;
    const plan *p = job->p;
    const long stride = matrix_stride(p->c, job->ld);
    for (long j = 0; j < job->spanned; j++) {
        long ty0, ty1;
        const long column = sample_rows(job, j, &ty0, &ty1);
        const float *plane = job->input + ((job->first + j) * p->c + c) * p->h * p->w;
        // The input comes from memory or L3 (the previous layer's pass over the whole batch): fetch
        // the same rows of the next channel's plane while this one is transformed.
        long first = 2 * ty0 - p->pad, end = 2 * ty1 + p->alpha - 2 - p->pad;
        if (first < 0) first = 0;
        if (end > p->h) end = p->h;
        if (end > first) ck_prefetch_read(plane + p->h * p->w + first * p->w, (end - first) * p->w);
        float *v = job->v + c * job->ld + column;
        if (p->alpha == 4) input_plane(p, 4, BT3, plane, ty0, ty1, v, stride);
        else input_plane(p, 6, BT5, plane, ty0, ty1, v, stride);
    }
    // Zeros from the chunk's last column to the GEMM's (a whole number of 16-column panels, so that
    // the GEMM packs no edge): what they multiply is never read.
    const long n = job->rows * p->tw, padded = (n + 15) / 16 * 16;
    for (long xi = 0; xi < p->alpha * p->alpha; xi++) {
        float *row = job->v + xi * stride + c * job->ld;
        for (long j = n; j < padded; j++) row[j] = 0.0f;
    }
}

static void gemm_part(void *context, long xi) {
    const chunk_job *job = context;
    const plan *p = job->p;
    GEMM.sgemm_packed(job->m, (job->rows * p->tw + 15) / 16 * 16, p->c, job->u + xi * GEMM.packed_a_floats(job->m, p->c), 0,
                    job->v + xi * matrix_stride(p->c, job->ld), job->ld, 0.0f,
                    job->prod + xi * matrix_stride(job->m, job->ld), job->ld);
}

// Output channel o of every sample in the chunk.
static void output_part(void *context, long o) {
    const chunk_job *job = context;
    const plan *p = job->p;
    const long stride = matrix_stride(job->m, job->ld);
    const float bias = job->bias ? job->bias[o] : 0.0f;
    for (long j = 0; j < job->spanned; j++) {
        long ty0, ty1;
        const long column = sample_rows(job, j, &ty0, &ty1);
        const float *mp = job->prod + o * job->ld + column;
        float *out = job->output + ((job->first + j) * job->m + o) * p->oh * p->ow;
        // The same rows of the next channel's plane, for writing (they are in no cache yet).
        long first = 2 * ty0, end = 2 * ty1;
        if (end > p->oh) end = p->oh;
        ck_prefetch_write(out + p->oh * p->ow + first * p->ow, (end - first) * p->ow);
        if (p->alpha == 4) output_plane(p, 4, AT3, mp, ty0, ty1, stride, bias, out);
        else output_plane(p, 6, AT5, mp, ty0, ty1, stride, bias, out);
    }
}

void avx2_winograd_conv(const ck_conv_geometry *g, long m, const float *u, const float *input, long samples,
                        const float *bias, float *output, float *scratch) {
    plan p;
    if (!make_plan(g, &p)) abort();  // callers check ck_winograd_supported first (documented)
    const long per_chunk = chunk_rows(&p), ld = row_floats(per_chunk * p.tw), total = samples * p.th;
    float *v = scratch, *prod = scratch + p.alpha * p.alpha * matrix_stride(p.c, ld);
    for (long row0 = 0; row0 < total; row0 += per_chunk) {
        const long rows = total - row0 < per_chunk ? total - row0 : per_chunk;
        const long first = row0 / p.th, spanned = (row0 + rows - 1) / p.th - first + 1;
        chunk_job job = {&p, m, ld, row0, rows, first, spanned, u, input, bias, output, v, prod};
        // Each stage is parallel when called from outside a parallel loop (one image), serial inside one.
        ck_parallel_for(p.c, input_part, &job);
        ck_parallel_for(p.alpha * p.alpha, gemm_part, &job);
        ck_parallel_for(m, output_part, &job);
    }
}

// Where this beats the AVX2 direct path (im2col + GEMM forward; packed dY, GEMM and col2im for an
// input gradient, as Conv2D runs them without Winograd): every geometry measured with at least 4
// input channels, none with fewer. AMD EPYC (Zen 4, KVM, 2 vCPUs, shared), one thread, a group of 8
// samples per call (batch 64 in 8 groups), CPU time, medians of 7 rounds alternating the two paths
// (/tmp harness after scripts/conv_bench.c); direct ms / Winograd ms:
//   forward 32 -> 64, 14 x 14, 3x3 pad 1        0.824 / 0.372  2.21x   (default, conv2)
//   forward 64 -> 64, 14 x 14, 3x3 pad 1        1.663 / 0.663  2.51x   (default, conv3)
//   input gradient 64 -> 32, 14 x 14, 3x3 pad 1 0.683 / 0.402  1.70x   (default, conv2)
//   input gradient 64 -> 64, 14 x 14, 3x3 pad 1 1.371 / 0.667  2.06x   (default, conv3)
//   forward 32 -> 64, 14 x 14, 5x5 pad 2        2.310 / 0.834  2.77x   (reference, conv2)
//   input gradient 64 -> 32, 14 x 14, 5x5 pad 2 1.878 / 0.909  2.07x   (reference, conv2)
//   forward 16 -> 16, 14 x 14, 3x3 / 5x5        2.11x / 2.83x;  32 -> 32, 28 x 28, 3x3 (4 samples) 2.03x
//   forward 64 -> 64, 7 x 7, 3x3 2.75x;  32 -> 64, 13 x 13, 3x3 pad 0 1.89x;  one sample 32 -> 64 1.81x
//   input gradient of a valid 3x3 layer, 64 -> 32, 12 x 12 pad 2: 1.19x (it multiplies dY's zero border)
//   forward 4 -> 16, 14 x 14, 3x3 1.17x;  3 -> 16 0.91x;  2 -> 16 0.71x;  1 -> 32, 28 x 28, 5x5 0.41x
// The weight transform (once per step and layer, 0.04-0.11 ms for these layers) is not counted.
int avx2_winograd_supported(const ck_conv_geometry *g) {
    plan p;
    return make_plan(g, &p) && g->channels >= 4;
}

#pragma clang attribute pop
#endif
