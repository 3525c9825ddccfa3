#if defined(__x86_64__)
#include "avx512.h"
#include <immintrin.h>
#include "prefetch.h"
#include <stdlib.h>

// Winograd convolution F(2x2, r x r) for stride-1 layers with 3x3 or 5x5 kernels (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2016). Each 2 x 2 block of output pixels
// ("tile") is Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A over an alpha x alpha window d of the input,
// alpha = r + 1: per tile and channel pair alpha² products instead of 4 r² (16 for 36 with 3x3,
// 36 for 100 with 5x5). Summed over input channels, the products of one transform position ξ are a
// GEMM: M_ξ (m x tiles) = U_ξ (m x C) · V_ξ (C x tiles). The matrices come from the points
// 0, 1, -1 (, 2, -2) and infinity; B^T was solved for so that the identity is exact.
//
// Every output element is summed in an order that depends only on the layer's shapes: not on the
// thread count, the batch, or which other tiles share the GEMM (one image gives the bits it gives
// inside a batch).

#define UNROLL _Pragma("clang loop unroll(full)")

#include "../generic/winograd_matrices.h"

// Tiles of one chunk's GEMMs at most: enough for a few 32-column panels, few enough that a chunk's
// transformed input and products stay in L2.
enum { CHUNK_TILES = 96 };

typedef struct {
    long c, h, w, r, pad, oh, ow;
    long alpha, th, tw, tiles;  // tiles per sample = th * tw
    int wide;                   // the padded row needs more than 16 lanes
    // Permutation indices, made once per call: input columns 2 tx + q of one row of tiles (column)
    // and of two (pair); output lanes interleaving the even and odd columns of a row of tiles.
    int column[6][16], pair[6][16], interleave_lo[16], interleave_hi[16], interleave_second[16];
} plan;

static int make_plan(const ck_conv_geometry *g, plan *p) {
    if (g->stride != 1 || (g->kernel != 3 && g->kernel != 5)) return 0;
    if (g->output_height < 1 || g->output_width < 1 || g->padding >= g->kernel) return 0;
    p->c = g->channels; p->h = g->height; p->w = g->width; p->r = g->kernel; p->pad = g->padding;
    p->oh = g->output_height; p->ow = g->output_width;
    p->alpha = p->r + 1;
    p->th = (p->oh + 1) / 2; p->tw = (p->ow + 1) / 2;
    p->tiles = p->th * p->tw;
    // Lane L of a row holds input column L - pad; a row of tiles reads columns up to 2 (tw - 1) + alpha - 1.
    long span = 2 * (p->tw - 1) + p->alpha;
    if (span > 32 || p->tw > 16 || p->ow > 32) return 0;
    p->wide = span > 16;
    for (int q = 0; q < p->alpha; q++) {
        for (int l = 0; l < 16; l++) {
            const int at = 2 * l + q;
            p->column[q][l] = p->wide ? (at < 32 ? at : 31) : at & 15;
            p->pair[q][l] = l < p->tw ? 2 * l + q : l < 2 * p->tw ? 16 + 2 * (l - (int)p->tw) + q : 0;
        }
    }
    for (int l = 0; l < 16; l++) {
        p->interleave_lo[l] = l / 2 + (l % 2 ? 16 : 0);
        p->interleave_hi[l] = (l + 16) / 2 + (l % 2 ? 16 : 0);
        p->interleave_second[l] = (int)p->tw + l / 2 + (l % 2 ? 16 : 0);
    }
    return 1;
}

int avx512_winograd_supported(const ck_conv_geometry *g) {
    plan p;
    return make_plan(g, &p);
}

// Rows of tiles per chunk (a chunk may end inside a sample): the count whose tiles waste the least of
// the GEMM's column panels (32 wide, or 16 for a last one of at most 16), the larger on a tie.
static long chunk_rows(const plan *p) {
    long best = 1;
    double best_use = 0;
    for (long rows = 1; rows == 1 || rows * p->tw <= CHUNK_TILES; rows++) {
        const long n = rows * p->tw, rest = n % 32;
        const double use = (double)n / (n - rest + (rest == 0 ? 0 : rest <= 16 ? 16 : 32));
        if (use >= best_use - 1e-9) { best_use = use; best = rows; }
    }
    return best;
}

static long row_floats(long tiles) { return (tiles + 15) / 16 * 16; }

// Floats from V_ξ (or M_ξ) to V_ξ+1: one cache line more than the matrix, so that the 16 or 36
// matrices' rows, which the transforms visit together, do not all fall into the same L1 set (a
// power-of-two stride such as 64 x 64 floats would put them there).
static long matrix_stride(long rows, long ld) { return rows * ld + 16; }

// The packed blocks, then room for the unpacked transform that ck_winograd_weights packs from.
long avx512_winograd_weights_floats(long m, long k, long r) {
    return (r + 1) * (r + 1) * (avx512_packed_a_floats(m, k) + m * k);
}

long avx512_winograd_scratch_floats(const ck_conv_geometry *g, long m) {
    plan p;
    if (!make_plan(g, &p)) return 0;
    long ld = row_floats(chunk_rows(&p) * p.tw);
    // A multiple of 16, so that per-thread blocks laid end to end stay 64-byte aligned.
    return p.alpha * p.alpha * (matrix_stride(p.c, ld) + matrix_stride(m, ld)) + 32;
}

// acc + c * x with c a constant known after inlining: zeros and ones cost nothing.
AVX512 static inline __attribute__((always_inline)) __m512 mac(__m512 acc, int started, float c, __m512 x) {
    if (!started) {
        if (c == 1.0f) return x;
        if (c == -1.0f) return _mm512_sub_ps(_mm512_setzero_ps(), x);
        return _mm512_mul_ps(_mm512_set1_ps(c), x);
    }
    if (c == 1.0f) return _mm512_add_ps(acc, x);
    if (c == -1.0f) return _mm512_sub_ps(acc, x);
    return _mm512_fmadd_ps(_mm512_set1_ps(c), x, acc);
}

// out[i] = Σ_j coef[i][j] x[j] for i < rows, j < cols.
#define COMBINE(out, rows, coef, x, cols)                                  \
    UNROLL for (int i_ = 0; i_ < (rows); i_++) {                           \
        __m512 acc_ = _mm512_setzero_ps();                                 \
        int started_ = 0;                                                  \
        UNROLL for (int j_ = 0; j_ < (cols); j_++) {                       \
            if (coef[i_][j_] != 0.0f) {                                    \
                acc_ = mac(acc_, started_, coef[i_][j_], (x)[j_]);         \
                started_ = 1;                                              \
            }                                                              \
        }                                                                  \
        (out)[i_] = acc_;                                                  \
    }

// The V_ξ columns of tile rows [ty0, ty1) of one input plane: v points at that channel's row of
// V_0, at tile row ty0's first column, and the rows of V_ξ are `xi_stride` floats apart.
AVX512 static inline __attribute__((always_inline)) void input_plane(const plan *p, const int A, const float (*bt)[6],
                                                                    const float *plane, long ty0, long ty1, float *v,
                                                                    long xi_stride) {
    const long tw = p->tw, pad = p->pad, h = p->h, w = p->w;
    // Lane L of a padded row is input column L - pad.
    const long lo_first = pad, lo_end = pad + w < 16 ? pad + w : 16;
    const __mmask16 lo_mask = (__mmask16)(((1u << lo_end) - 1) & ~((1u << lo_first) - 1));
    const long hi_end = pad + w - 16;
    const __mmask16 hi_mask = hi_end <= 0 ? 0 : hi_end >= 16 ? 0xFFFF : (__mmask16)((1u << hi_end) - 1);
    const __mmask16 store_mask = (__mmask16)((1u << tw) - 1);
    long ty = ty0;
    v -= ty0 * tw;  // column of tile row ty: ty * tw
    if (!p->wide && 2 * tw <= 16) {
        // Two rows of tiles per pass: lanes [0, tw) are tile row ty, lanes [tw, 2 tw) row ty + 1,
        // whose V columns follow on: half the permutes, combinations and stores.
        __m512i pidx[6];
        UNROLL for (int q = 0; q < A; q++) pidx[q] = _mm512_loadu_si512(p->pair[q]);
        const __mmask16 pair_mask = (__mmask16)((1u << (2 * tw)) - 1);
        for (; ty + 1 < ty1; ty += 2) {
            __m512 rows[8], tlo[6], thi[6];
            UNROLL for (int s = 0; s < A + 2; s++) {
                const long iy = 2 * ty + s - pad;
                rows[s] = iy < 0 || iy >= h ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(lo_mask, plane + iy * w - pad);
            }
            COMBINE(tlo, A, bt, rows, A);
            COMBINE(thi, A, bt, rows + 2, A);
            UNROLL for (int i = 0; i < A; i++) {
                __m512 cols[6], out[6];
                UNROLL for (int q = 0; q < A; q++) cols[q] = _mm512_permutex2var_ps(tlo[i], pidx[q], thi[i]);
                COMBINE(out, A, bt, cols, A);
                UNROLL for (int j = 0; j < A; j++) _mm512_mask_storeu_ps(v + (i * A + j) * xi_stride + ty * tw, pair_mask, out[j]);
            }
        }
    }
    for (; ty < ty1; ty++) {
        __m512 lo[6], hi[6], tlo[6], thi[6];
        __m512i idx[6];
        UNROLL for (int q = 0; q < A; q++) idx[q] = _mm512_loadu_si512(p->column[q]);
        UNROLL for (int s = 0; s < A; s++) {
            const long iy = 2 * ty + s - pad;
            if (iy < 0 || iy >= h) {
                lo[s] = _mm512_setzero_ps();
                hi[s] = _mm512_setzero_ps();
            } else {
                const float *row = plane + iy * w - pad;  // lanes before column 0 are masked off
                lo[s] = _mm512_maskz_loadu_ps(lo_mask, row);
                hi[s] = p->wide ? _mm512_maskz_loadu_ps(hi_mask, row + 16) : _mm512_setzero_ps();
            }
        }
        COMBINE(tlo, A, bt, lo, A);  // rows: T = B^T d
        if (p->wide) { COMBINE(thi, A, bt, hi, A); }
        UNROLL for (int i = 0; i < A; i++) {
            __m512 cols[6], out[6];
            UNROLL for (int q = 0; q < A; q++) {  // lane tx: T row i, column 2 tx + q
                cols[q] = p->wide ? _mm512_permutex2var_ps(tlo[i], idx[q], thi[i])
                                  : _mm512_permutexvar_ps(idx[q], tlo[i]);
            }
            COMBINE(out, A, bt, cols, A);  // columns: (B^T d) B
            UNROLL for (int j = 0; j < A; j++) _mm512_mask_storeu_ps(v + (i * A + j) * xi_stride + ty * tw, store_mask, out[j]);
        }
    }
}

// Tile rows [ty0, ty1) of output plane o: m points at row o of M_0, at tile row ty0's first column,
// and the rows of M_ξ are `xi_stride` floats apart.
AVX512 static inline __attribute__((always_inline)) void output_plane(const plan *p, const int A, const float (*at)[6],
                                                                     const float *m, long ty0, long ty1, long xi_stride,
                                                                     float bias, float *out) {
    const long tw = p->tw, oh = p->oh, ow = p->ow;
    const __mmask16 load_mask = (__mmask16)((1u << tw) - 1);
    const __mmask16 lo_mask = ow >= 16 ? 0xFFFF : (__mmask16)((1u << ow) - 1);
    const __mmask16 hi_mask = ow <= 16 ? 0 : (__mmask16)((1u << (ow - 16)) - 1);
    const __m512i inter_lo = _mm512_loadu_si512(p->interleave_lo), inter_hi = _mm512_loadu_si512(p->interleave_hi);
    const __m512 vb = _mm512_set1_ps(bias);
    long ty = ty0;
    m -= ty0 * tw;
    if (ow <= 16 && 2 * tw <= 16) {
        // Two rows of tiles per pass, as in input_plane.
        const __mmask16 pair_mask = (__mmask16)((1u << (2 * tw)) - 1);
        const __m512i inter_second = _mm512_loadu_si512(p->interleave_second);
        for (; ty + 1 < ty1; ty += 2) {
            __m512 a[6][2];
            UNROLL for (int i = 0; i < A; i++) {
                __m512 row[6], pair[2];
                UNROLL for (int j = 0; j < A; j++) row[j] = _mm512_maskz_loadu_ps(pair_mask, m + (i * A + j) * xi_stride + ty * tw);
                COMBINE(pair, 2, at, row, A);
                a[i][0] = pair[0];
                a[i][1] = pair[1];
            }
            UNROLL for (int k = 0; k < 2; k++) {
                __m512 y[2];
                UNROLL for (int x = 0; x < 2; x++) {
                    __m512 column[6], one[1];
                    UNROLL for (int i = 0; i < A; i++) column[i] = a[i][x];
                    const float (*row_k)[6] = at + k;
                    COMBINE(one, 1, row_k, column, A);
                    y[x] = one[0];
                }
                const long oy = 2 * ty + k;  // and oy + 2 from lanes [tw, 2 tw)
                _mm512_mask_storeu_ps(out + oy * ow, lo_mask, _mm512_add_ps(_mm512_permutex2var_ps(y[0], inter_lo, y[1]), vb));
                if (oy + 2 < oh) {
                    _mm512_mask_storeu_ps(out + (oy + 2) * ow, lo_mask,
                                          _mm512_add_ps(_mm512_permutex2var_ps(y[0], inter_second, y[1]), vb));
                }
            }
        }
    }
    for (; ty < ty1; ty++) {
        __m512 a[6][2];
        UNROLL for (int i = 0; i < A; i++) {
            __m512 row[6], pair[2];
            UNROLL for (int j = 0; j < A; j++) row[j] = _mm512_maskz_loadu_ps(load_mask, m + (i * A + j) * xi_stride + ty * tw);
            COMBINE(pair, 2, at, row, A);  // m A
            a[i][0] = pair[0];
            a[i][1] = pair[1];
        }
        UNROLL for (int k = 0; k < 2; k++) {
            const long oy = 2 * ty + k;
            if (oy >= oh) break;
            __m512 y[2];
            UNROLL for (int x = 0; x < 2; x++) {
                __m512 column[6];
                UNROLL for (int i = 0; i < A; i++) column[i] = a[i][x];
                __m512 one[1];
                const float (*row_k)[6] = at + k;
                COMBINE(one, 1, row_k, column, A);  // A^T (m A)
                y[x] = one[0];
            }
            float *dst = out + oy * ow;
            _mm512_mask_storeu_ps(dst, lo_mask, _mm512_add_ps(_mm512_permutex2var_ps(y[0], inter_lo, y[1]), vb));
            if (hi_mask) _mm512_mask_storeu_ps(dst + 16, hi_mask, _mm512_add_ps(_mm512_permutex2var_ps(y[0], inter_hi, y[1]), vb));
        }
    }
}

// U_ξ = (G g G^T)_ξ of the kernels of row i, for 16 consecutive k at a time (lanes), into plain
// (alpha², m, k) row-major.
AVX512 static inline __attribute__((always_inline)) void transform_row(const int A, const int R, const float (*gm)[5],
                                                                      const float *w, long c, long m, long k, int adjoint,
                                                                      long i, float *plain) {
    for (long p0 = 0; p0 < k; p0 += 16) {
        const long lanes = k - p0 < 16 ? k - p0 : 16;
        const __mmask16 mask = (__mmask16)((1u << lanes) - 1);
        // Kernel of (row i, k index p): (o = i, ch = p), or flipped (o = p, ch = i) for the adjoint.
        int offsets[16];
        for (long l = 0; l < 16; l++) {
            const long p = p0 + (l < lanes ? l : 0);
            offsets[l] = (int)((adjoint ? p * c + i : i * c + p) * R * R);
        }
        const __m512i base = _mm512_loadu_si512(offsets);
        __m512 g[5][5], t[6][5];
        UNROLL for (int y = 0; y < R; y++) {
            UNROLL for (int x = 0; x < R; x++) {
                const int at = adjoint ? (R - 1 - y) * R + R - 1 - x : y * R + x;
                g[y][x] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, _mm512_add_epi32(base, _mm512_set1_epi32(at)), w, 4);
            }
        }
        UNROLL for (int x = 0; x < R; x++) {  // t = G g, column x
            __m512 column[5], out[6];
            UNROLL for (int y = 0; y < R; y++) column[y] = g[y][x];
            COMBINE(out, A, gm, column, R);
            UNROLL for (int a = 0; a < A; a++) t[a][x] = out[a];
        }
        UNROLL for (int a = 0; a < A; a++) {  // u = t G^T, row a
            __m512 out[6];
            COMBINE(out, A, gm, t[a], R);
            UNROLL for (int b = 0; b < A; b++) _mm512_mask_storeu_ps(plain + ((a * A + b) * m + i) * k + p0, mask, out[b]);
        }
    }
}

// Every (row, k) pair's U_ξ, packed as ck_pack_a's panels, one block per ξ.
AVX512 void avx512_winograd_weights(const float *w, long oc, long c, long r, int adjoint, float *out) {
    const long alpha = r + 1, m = adjoint ? c : oc, k = adjoint ? oc : c, packed = avx512_packed_a_floats(m, k);
    float *plain = out + alpha * alpha * packed;  // (alpha², m, k), past the packed blocks
    for (long i = 0; i < m; i++) {
        if (r == 3) transform_row(4, 3, G3, w, c, m, k, adjoint, i, plain);
        else transform_row(6, 5, G5, w, c, m, k, adjoint, i, plain);
    }
    for (long xi = 0; xi < alpha * alpha; xi++) avx512_pack_a(0, plain + xi * m * k, k, m, k, 1.0f, out + xi * packed);
}

typedef struct {
    const plan *p;
    long m, ld;              // ld: floats per row of V_ξ and M_ξ
    long row0, rows;         // the chunk: tile rows [row0, row0 + rows) of the call, counted across samples
    long first, spanned;     // the samples it touches
    const float *u, *input, *bias;
    float *output, *v, *prod;
} chunk_job;

// Sample `first + j`'s tile rows [*ty0, *ty1) in the chunk; returns the V/M column of *ty0.
static long sample_rows(const chunk_job *job, long j, long *ty0, long *ty1) {
    const long th = job->p->th, s = job->first + j, start = s * th;
    *ty0 = job->row0 > start ? job->row0 - start : 0;
    *ty1 = job->row0 + job->rows < start + th ? job->row0 + job->rows - start : th;
    return (start + *ty0 - job->row0) * job->p->tw;
}

// Rows [*first, *end) of a plane with `rows` rows, clamped; returns their count (0 if none).
static inline long clamp_rows(long *first, long *end, long rows) {
    if (*first < 0) *first = 0;
    if (*end > rows) *end = rows;
    return *end > *first ? *end - *first : 0;
}

AVX512 static void input_part(void *context, long index) {
    const chunk_job *job = context;
    const plan *p = job->p;
    const long j = index / p->c, c = index % p->c;
    long ty0, ty1;
    const long column = sample_rows(job, j, &ty0, &ty1);
    const float *plane = job->input + ((job->first + j) * p->c + c) * p->h * p->w;
    // The input comes from memory or L3 (the previous layer's pass over the whole batch): fetch the
    // same rows of the next plane while this one is transformed.
    long first = 2 * ty0 - p->pad, end = 2 * ty1 + p->alpha - 2 - p->pad;
    const long rows = clamp_rows(&first, &end, p->h);
    ck_prefetch_read(plane + p->h * p->w + first * p->w, rows * p->w);
    float *v = job->v + c * job->ld + column;
    const long stride = matrix_stride(p->c, job->ld);
    if (p->alpha == 4) input_plane(p, 4, BT3, plane, ty0, ty1, v, stride);
    else input_plane(p, 6, BT5, plane, ty0, ty1, v, stride);
}

static void gemm_part(void *context, long xi) {
    const chunk_job *job = context;
    const plan *p = job->p;
    avx512_sgemm_packed(job->m, job->rows * p->tw, p->c, job->u + xi * avx512_packed_a_floats(job->m, p->c), 0,
                    job->v + xi * matrix_stride(p->c, job->ld), job->ld, 0.0f,
                    job->prod + xi * matrix_stride(job->m, job->ld), job->ld);
}

AVX512 static void output_part(void *context, long index) {
    const chunk_job *job = context;
    const plan *p = job->p;
    const long j = index / job->m, o = index % job->m;
    long ty0, ty1;
    const long column = sample_rows(job, j, &ty0, &ty1);
    const float *m = job->prod + o * job->ld + column;
    float *out = job->output + ((job->first + j) * job->m + o) * p->oh * p->ow;
    // The next plane's rows, for writing (they are not in any cache yet).
    long first = 2 * ty0, end = 2 * ty1;
    const long rows = clamp_rows(&first, &end, p->oh);
    ck_prefetch_write(out + p->oh * p->ow + first * p->ow, rows * p->ow);
    const float bias = job->bias ? job->bias[o] : 0.0f;
    const long stride = matrix_stride(job->m, job->ld);
    if (p->alpha == 4) output_plane(p, 4, AT3, m, ty0, ty1, stride, bias, out);
    else output_plane(p, 6, AT5, m, ty0, ty1, stride, bias, out);
}

void avx512_winograd_conv(const ck_conv_geometry *g, long m, const float *u, const float *input, long samples,
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
        ck_parallel_for(spanned * p.c, input_part, &job);
        ck_parallel_for(p.alpha * p.alpha, gemm_part, &job);
        ck_parallel_for(spanned * m, output_part, &job);
    }
}
#endif
