// Every table entry but the GEMM, in plain C: written once and compiled into each ISA's table with
// that ISA's code generation (generic/reference.c, x86/avx2.c, arm/neon.c). No include guard, on
// purpose: each translation unit includes it once, and every function is static. No intrinsics: the
// loops are written so that clang vectorizes them (independent lanes, fixed-size lane arrays for
// reductions, blocks of a fixed width), and contraction is off but where it cannot change a bit
// (see ew_one_volatile), so every ISA computes the same bits as the reference.
//
// Code generation, checked in the assembly for AVX2 and NEON (scripts/kernel-test.sh --asm lists the
// sums' loops, which have fused multiply-adds): the loops over the 16 lanes of a sum and over the 8
// floats of a convolution-column block are marked EW_LANE_LOOP or EW_BLOCK_LOOP, which has the loop
// vectorizer take them whole. Left alone, clang unrolls them into scalars first, and the SLP
// vectorizer regroups those differently with every change around them: into pairs of unrelated sums,
// a shuffle per lane, 64-bit lane arithmetic, or no vectors at all. (The pooling windows it does take
// well: stride-2 loads become a deinterleave.) Each lane still does its own operations in its own
// order: no result depends on how it is vectorized. Rows of a pooled or convolved plane (7, 14 or 28
// floats wide in the models) go in fixed blocks, the last one ending at the row's end, rather than
// through a vector loop whose remainder would be most of such a row.
#pragma STDC FP_CONTRACT OFF
#include "../isa.h"

#define EW_PRAGMA(x) _Pragma(#x)

// A sum in 16 double lanes: lane l takes the terms at positions p = l (mod 16) of each run, and the
// lanes are combined in one fixed tree, so a sum depends on the data and its shape only (not on the
// ISA or on how callers split their work). A lane starts at +0 and so is never -0: adding +0 to it
// (the padding of a short last block) changes nothing. The sums stay in double (the reference's are
// checked to 1e-12 of exact sums, and x - mean and dy * x-hat are exact in double); on AVX2 that costs
// a conversion per 4 terms and is what keeps these passes at about 1.2-1.9x the AVX-512 kernels'
// time, which sum floats.
enum { ew_lanes = 16 };

// Before a loop over the 16 lanes: 4 lanes a vector, 4 vectors at a time, the lanes in registers (on
// AVX2 four ymm of doubles; on NEON and SSE2 each vector is two registers).
#define EW_LANE_LOOP EW_PRAGMA(clang loop unroll(disable) vectorize(enable) vectorize_width(4) interleave_count(4))

// 1.0, read through a volatile so that the compiler cannot fold it away. `acc + t * one`, and a
// product of two floats widened to double (exact: 24 + 24 < 53 bits), are exact before the addition,
// so contracting the addition into a fused multiply-add rounds once where the separate operations
// round once: the same bits, fused (AVX2, NEON) or not (the reference on baseline x86-64). The sums
// below allow contraction for exactly those expressions, which moves their additions to the
// multiply-add pipes: on AMD Zen the double additions otherwise share two pipes with the
// float-to-double conversions, and those two pipes are what the sums wait for.
static const volatile double ew_one_volatile = 1.0;

static inline double ew_lane_total(const double lane[ew_lanes]) {
    double pairs[8], quads[4];
    for (int i = 0; i < 8; i++) pairs[i] = lane[2 * i] + lane[2 * i + 1];
    for (int i = 0; i < 4; i++) quads[i] = pairs[2 * i] + pairs[2 * i + 1];
    return (quads[0] + quads[1]) + (quads[2] + quads[3]);
}

static inline uint32_t ew_bits(float x) {
    uint32_t u;
    __builtin_memcpy(&u, &x, sizeof u);
    return u;
}

static inline float ew_float(uint32_t u) {
    float x;
    __builtin_memcpy(&x, &u, sizeof x);
    return x;
}

// Correctly rounded on every target, and without errno, which would keep sqrtf out of vector code.
static inline float ew_sqrt(float x) {
#if __has_builtin(__builtin_elementwise_sqrt)
    return __builtin_elementwise_sqrt(x);
#else
    return __builtin_sqrtf(x);
#endif
}

// MARK: convolution columns

// floor(a / b) for b > 0 (C's division truncates towards zero).
static inline long ew_floor_div(long a, long b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Output columns ox in [*lo, *hi) read input column ox * stride + offset inside [0, width).
static inline void ew_valid_columns(long offset, long stride, long width, long ow, long *lo, long *hi) {
    long first = -ew_floor_div(offset, stride);  // ceil(-offset / stride)
    long last = ew_floor_div(width - 1 - offset, stride) + 1;
    first = first < 0 ? 0 : first > ow ? ow : first;
    last = last > ow ? ow : last < first ? first : last;
    *lo = first;
    *hi = last;
}

// Before a loop over the 8 elements of a block: one vector of 8 floats on AVX2, two on NEON and SSE2.
#define EW_BLOCK_LOOP EW_PRAGMA(clang loop unroll(disable) vectorize(enable) vectorize_width(8) interleave_count(1))
enum { ew_block = 8 };
// Lane numbers as data: comparisons with them stay in 32-bit lanes (with the loop counter the
// vectorizer compares in 64-bit ones).
static const int ew_lane_index[ew_block] = {0, 1, 2, 3, 4, 5, 6, 7};

// The blocks of a row of n >= 8 floats: block j starts at 8j, except the last, which ends at the
// row's end (and overlaps the one before when n is not a multiple of 8).
static inline long ew_row_blocks(long n) { return (n + ew_block - 1) / ew_block; }
static inline long ew_block_start(long j, long n) { return 8 * j + ew_block <= n ? 8 * j : n - ew_block; }

// Stride 1, one block of an output row of column row (c, ky, kx): out[l] = source[l] for the lanes l
// in [first, end) (the window inside the image), +0 for the others. source[l] is read for every
// lane (the caller makes sure that stays inside the input) and the others' bits cleared: a select
// would let the compiler turn the read back into a branch.
static inline __attribute__((always_inline)) void ew_im2col_block(const float *restrict source, float *restrict out,
                                                                  int first, int end) {
    if (first <= 0 && end >= ew_block) {
        EW_BLOCK_LOOP
        for (int l = 0; l < ew_block; l++) out[l] = source[l];
    } else {
        EW_BLOCK_LOOP
        for (int l = 0; l < ew_block; l++) {
            const int lane = ew_lane_index[l];
            const uint32_t inside = lane >= first && lane < end ? 0xFFFFFFFFu : 0u;
            out[l] = ew_float(ew_bits(source[l]) & inside);
        }
    }
}

// The reference's loops, for one output row (any stride): zeros, the window's part of the input row, zeros.
static inline void ew_im2col_row(const float *restrict source, float *restrict out, long s, long ow, long lo,
                                 long hi) {
    for (long ox = 0; ox < lo; ox++) out[ox] = 0;
    if (s == 1) {
        for (long ox = lo; ox < hi; ox++) out[ox] = source[ox];
    } else {
        for (long ox = lo; ox < hi; ox++) out[ox] = source[ox * s];
    }
    for (long ox = hi; ox < ow; ox++) out[ox] = 0;
}

// Stride 1: `rows` output rows from out of column row (c, ky, kx), the first reading the input row
// at source (the next ones w floats on each), for the blocks j0 .. j0 + count - 1 of each (count <= 4,
// a constant where inlined), the window of the output columns [lo, hi). Every read is inside the input.
static inline __attribute__((always_inline)) void ew_im2col_blocks(const float *source, long w, float *out, long ow,
                                                                   long rows, long j0, const int count, long lo,
                                                                   long hi) {
    long x0[4];
    int first[4], end[4];
    for (int b = 0; b < count; b++) {
        x0[b] = ew_block_start(j0 + b, ow);
        first[b] = (int)(lo - x0[b]);
        end[b] = (int)(hi - x0[b]);
    }
    for (long r = 0; r < rows; r++) {
        for (int b = 0; b < count; b++) ew_im2col_block(source + r * w + x0[b], out + r * ow + x0[b], first[b], end[b]);
    }
}

static inline void ew_im2col(const ck_conv_geometry *g, const float *restrict input, float *restrict columns,
                             long row_stride) {
    const long k = g->kernel, s = g->stride, pad = g->padding, h = g->height, w = g->width, oh = g->output_height,
               ow = g->output_width, input_floats = g->channels * h * w;
    for (long c = 0; c < g->channels; c++) {
        const float *plane = input + c * h * w;
        for (long ky = 0; ky < k; ky++) {
            for (long kx = 0; kx < k; kx++) {
                float *row = columns + ((c * k + ky) * k + kx) * row_stride;
                long lo, hi;
                ew_valid_columns(kx - pad, s, w, ow, &lo, &hi);
                // Output rows whose input row oy * s - pad + ky is inside the image: [oy_lo, oy_hi).
                long oy_lo = 0, oy_hi = oh;
                while (oy_lo < oh && oy_lo * s - pad + ky < 0) oy_lo++;
                while (oy_hi > oy_lo && (oy_hi - 1) * s - pad + ky >= h) oy_hi--;
                for (long oy = 0; oy < oy_lo; oy++) ew_im2col_row(0, row + oy * ow, s, ow, 0, 0);
                for (long oy = oy_hi; oy < oh; oy++) ew_im2col_row(0, row + oy * ow, s, ow, 0, 0);
                if (s != 1 || ow < ew_block) {
                    for (long oy = oy_lo; oy < oy_hi; oy++) {
                        ew_im2col_row(plane + (oy * s - pad + ky) * w + kx - pad, row + oy * ow, s, ow, lo, hi);
                    }
                    continue;
                }
                // Stride 1: whole blocks, reading all of each row's ow floats, whatever its window:
                // rows [first_row, end_row), those reads inside the input. The others (only ever the
                // first and last rows of the whole input) take the reference's loop.
                const long source0 = c * h * w + (ky - pad) * w + kx - pad;  // output row oy reads from source0 + oy * w
                long first_row = oy_lo, end_row = oy_hi;
                while (first_row < end_row && source0 + first_row * w < 0) first_row++;
                while (end_row > first_row && source0 + (end_row - 1) * w + ow > input_floats) end_row--;
                for (long oy = oy_lo; oy < first_row; oy++) {
                    ew_im2col_row(plane + (oy - pad + ky) * w + kx - pad, row + oy * ow, 1, ow, lo, hi);
                }
                for (long oy = end_row; oy < oy_hi; oy++) {
                    ew_im2col_row(plane + (oy - pad + ky) * w + kx - pad, row + oy * ow, 1, ow, lo, hi);
                }
                if (first_row == end_row) continue;
                const float *source = input + source0 + first_row * w;
                float *out = row + first_row * ow;
                const long blocks = ew_row_blocks(ow), rows = end_row - first_row;
                for (long j0 = 0; j0 < blocks; j0 += 4) {
                    switch (blocks - j0) {
                        case 1: ew_im2col_blocks(source, w, out, ow, rows, j0, 1, lo, hi); break;
                        case 2: ew_im2col_blocks(source, w, out, ow, rows, j0, 2, lo, hi); break;
                        case 3: ew_im2col_blocks(source, w, out, ow, rows, j0, 3, lo, hi); break;
                        default: ew_im2col_blocks(source, w, out, ow, rows, j0, 4, lo, hi); break;
                    }
                }
            }
        }
    }
}

// Each input element receives its column entries in the order (ky, kx) of the loops, whatever the stride.
//
// Stride 1 gathers instead: each block of 8 elements of an input row sums, in registers, the entries
// of every (ky, kx) that land on it, in that same order, and is stored once. (Adding each column row
// into the plane instead makes each load wait for the store one float before it: store forwarding
// fails on the overlap.) Element x of input row iy gets column x + pad - kx of output row
// iy + pad - ky where that exists, which for block x0 are the lanes [first[kx], end[kx]); where not
// every lane has one, the entries are read for every lane and the sum kept for the others.
static inline __attribute__((always_inline)) void ew_col2im_gather(const float *restrict source, float *restrict sum,
                                                                   int first, int end) {
    if (first <= 0 && end >= ew_block) {
        EW_BLOCK_LOOP
        for (int l = 0; l < ew_block; l++) sum[l] += source[l];
    } else {
        EW_BLOCK_LOOP
        for (int l = 0; l < ew_block; l++) {
            const int lane = ew_lane_index[l];
            const float added = sum[l] + source[l];
            sum[l] = lane >= first && lane < end ? added : sum[l];
        }
    }
}

// Blocks j0 .. j0 + count - 1 of target, input row iy of channel c, gathered together and then
// stored (count <= 4, a constant where inlined: their sums stay in registers, and each (ky, kx) is
// worked out once for all of them). columns_floats: the floats the columns span, from the first
// row's first to the last row's last.
static inline __attribute__((always_inline)) void ew_col2im_blocks(const ck_conv_geometry *g,
                                                                   const float *restrict columns, long row_stride,
                                                                   long columns_floats, long c, long iy,
                                                                   float *restrict target, long j0,
                                                                   const int count) {
    const long k = g->kernel, pad = g->padding, w = g->width, oh = g->output_height, ow = g->output_width;
    long x0[4];
    float sum[4 * ew_block];
    for (int b = 0; b < count; b++) {
        x0[b] = ew_block_start(j0 + b, w);
        EW_BLOCK_LOOP
        for (int l = 0; l < ew_block; l++) sum[ew_block * b + l] = target[x0[b] + l];
    }
    const long ky_lo = iy + pad - (oh - 1) > 0 ? iy + pad - (oh - 1) : 0, ky_hi = iy + pad < k - 1 ? iy + pad : k - 1;
    // Where entry (ky, kx) for lane 0 of block 0 is; the offsets increase with ky, kx and x0, so all
    // the reads are inside the columns when the first and the last are (which fails only at the
    // first and last rows of the whole matrix).
#define EW_ENTRY(ky, kx) (((c * k + (ky)) * k + (kx)) * row_stride + (iy + pad - (ky)) * ow + pad - (kx))
    const int inside = EW_ENTRY(ky_lo, 0) + x0[0] >= 0 && EW_ENTRY(ky_hi, k - 1) + x0[count - 1] + ew_block <= columns_floats;
    for (long ky = ky_lo; ky <= ky_hi; ky++) {
        for (long kx = 0; kx < k; kx++) {
            const long entry = EW_ENTRY(ky, kx);
            const long x_lo = kx - pad > 0 ? kx - pad : 0, x_hi = ow + kx - pad < w ? ow + kx - pad : w;
            for (int b = 0; b < count; b++) {
                const int first = (int)(x_lo - x0[b]), end = (int)(x_hi - x0[b]);
                if (inside) {
                    ew_col2im_gather(columns + entry + x0[b], sum + ew_block * b, first, end);
                } else {
                    for (int l = 0; l < ew_block; l++) {
                        if (l >= first && l < end) sum[ew_block * b + l] += columns[entry + x0[b] + l];
                    }
                }
            }
        }
    }
#undef EW_ENTRY
    for (int b = 0; b < count; b++) {
        EW_BLOCK_LOOP
        for (int l = 0; l < ew_block; l++) target[x0[b] + l] = sum[ew_block * b + l];
    }
}

static inline void ew_col2im_add(const ck_conv_geometry *g, const float *restrict columns, long row_stride,
                                 float *restrict input_gradient) {
    const long k = g->kernel, s = g->stride, pad = g->padding, h = g->height, w = g->width, oh = g->output_height,
               ow = g->output_width;
    if (s == 1 && w >= ew_block) {
        const long columns_floats = (g->channels * k * k - 1) * row_stride + oh * ow;
        const long blocks = ew_row_blocks(w), final = blocks > 4 ? blocks - 4 : 0;
        for (long c = 0; c < g->channels; c++) {
            for (long iy = 0; iy < h; iy++) {
                float *target = input_gradient + (c * h + iy) * w;
                // Groups of up to 4 blocks; the last group holds the last block, which may overlap the
                // one before, and that one too: all of a group is loaded before any of it is stored.
                for (long j0 = 0; j0 < blocks;) {
                    const long count = j0 < final ? (final - j0 < 4 ? final - j0 : 4) : blocks - j0;
                    switch (count) {
                        case 1: ew_col2im_blocks(g, columns, row_stride, columns_floats, c, iy, target, j0, 1); break;
                        case 2: ew_col2im_blocks(g, columns, row_stride, columns_floats, c, iy, target, j0, 2); break;
                        case 3: ew_col2im_blocks(g, columns, row_stride, columns_floats, c, iy, target, j0, 3); break;
                        default: ew_col2im_blocks(g, columns, row_stride, columns_floats, c, iy, target, j0, 4); break;
                    }
                    j0 += count;
                }
            }
        }
        return;
    }
    for (long c = 0; c < g->channels; c++) {
        float *plane = input_gradient + c * h * w;
        for (long ky = 0; ky < k; ky++) {
            for (long kx = 0; kx < k; kx++) {
                const float *row = columns + ((c * k + ky) * k + kx) * row_stride;
                long lo, hi;
                ew_valid_columns(kx - pad, s, w, ow, &lo, &hi);
                for (long oy = 0; oy < oh; oy++) {
                    const long iy = oy * s - pad + ky;
                    if (iy < 0 || iy >= h) continue;
                    const float *restrict source = row + oy * ow;
                    float *restrict target = plane + iy * w + kx - pad;
                    if (s == 1) {
                        for (long ox = lo; ox < hi; ox++) target[ox] += source[ox];
                    } else {
                        for (long ox = lo; ox < hi; ox++) target[ox * s] += source[ox];
                    }
                }
            }
        }
    }
}

// MARK: batch normalisation over one channel: `batch` runs of `pixels` floats, `stride` apart

// The runs of one channel are a whole sample apart, which the hardware prefetchers do not foresee:
// each run asks for the one two ahead, one request per 64-byte line.
static inline void ew_prefetch_run_after_next(const float *x, long n, long batch, long pixels, long stride) {
    if (n + 2 >= batch) return;
    const float *ahead = x + (n + 2) * stride;
    for (long i = 0; i < pixels; i += 16) __builtin_prefetch(ahead + i);
}

// A run's last, partial block (positions p + l, l < rest = pixels - p < 16) as a whole one: lane l
// of the block returned is run[p + l] for l < rest, `fill` past it. Each caller fills with a value
// whose term is exactly the +0 the reference adds for a position past the run (a lane is never -0,
// so adding +0 changes nothing). The block comes from the run's last 16 floats when it has 16: two
// whole-vector copies, and nothing outside the run is read. So the last block goes through the
// same loop body as the others, and the sums are the reference's own, term for term.
static inline const float *ew_tail_block(const float *run, long p, long pixels, float fill, float block[2 * ew_lanes]) {
    const long rest = pixels - p;
    for (int l = 0; l < ew_lanes; l++) block[ew_lanes + l] = fill;
    if (pixels >= ew_lanes) {
        for (int l = 0; l < ew_lanes; l++) block[l] = run[pixels - ew_lanes + l];
        return block + ew_lanes - rest;
    }
    for (long l = 0; l < rest; l++) block[ew_lanes + l] = run[l];  // p == 0: the whole run
    return block + ew_lanes;
}

static inline const int *ew_tail_block_int(const int *run, long p, long pixels, int fill, int block[2 * ew_lanes]) {
    const long rest = pixels - p;
    for (int l = 0; l < ew_lanes; l++) block[ew_lanes + l] = fill;
    if (pixels >= ew_lanes) {
        for (int l = 0; l < ew_lanes; l++) block[l] = run[pixels - ew_lanes + l];
        return block + ew_lanes - rest;
    }
    for (long l = 0; l < rest; l++) block[ew_lanes + l] = run[l];
    return block + ew_lanes;
}

// The fill whose term (fill - shift, and its square) is +0 like the reference's; for a shift that
// is not finite every term of the sums is an infinity of one sign or NaN, and a finite fill adds
// one more of the same.
static inline float ew_neutral_fill(float shift) { return shift - shift == 0 ? shift : 0.0f; }

// One block of 16 terms into the lanes. The sources are parameters, restrict, so that the vectorizer
// knows the lanes (in memory until it has vectorized the loop) are not among them.
static inline __attribute__((always_inline)) void ew_shifted_block(const float *restrict s, double k, double one,
                                                                   double *restrict first, double *restrict second) {
    EW_LANE_LOOP
    for (int l = 0; l < ew_lanes; l++) {
        const double d = (double)s[l] - k;
        {
#pragma STDC FP_CONTRACT ON
            first[l] = d * one + first[l];
        }
        second[l] += d * d;  // d * d need not be exact: not contracted
    }
}

static inline void ew_channel_shifted_sums(const float *x, long batch, long pixels, long stride, float shift,
                                           double sums[2]) {
    const double one = ew_one_volatile;
    const long whole = pixels / ew_lanes * ew_lanes;
    double first[ew_lanes] = {0}, second[ew_lanes] = {0};
    float block[2 * ew_lanes];
    for (long n = 0; n < batch; n++) {
        const float *run = x + n * stride;
        ew_prefetch_run_after_next(x, n, batch, pixels, stride);
        const float *tail = whole < pixels ? ew_tail_block(run, whole, pixels, ew_neutral_fill(shift), block) : run;
        for (long p = 0; p < pixels; p += ew_lanes) ew_shifted_block(p < whole ? run + p : tail, shift, one, first, second);
    }
    sums[0] = ew_lane_total(first);
    sums[1] = ew_lane_total(second);
}

// One run; y may be x (called with the same pointer, so that the vectorizer sees one array, not two
// that might overlap).
static inline __attribute__((always_inline)) void ew_normalize_run(
        const float *x, float *restrict xhat, float *y, long pixels, float mean, float inv_std, float gamma, float beta,
        int rectify) {
    if (rectify) {
        for (long p = 0; p < pixels; p++) {
            const float h = (x[p] - mean) * inv_std, v = gamma * h + beta;
            xhat[p] = h;
            y[p] = v < 0 ? 0 : v;  // NaN is not below 0: it stays NaN
        }
    } else {
        for (long p = 0; p < pixels; p++) {
            const float h = (x[p] - mean) * inv_std;
            xhat[p] = h;
            y[p] = gamma * h + beta;
        }
    }
}

static inline void ew_channel_normalize(const float *x, float *xhat, float *y, long batch, long pixels, long stride,
                                        float mean, float inv_std, float gamma, float beta, int rectify) {
    for (long n = 0; n < batch; n++) {
        const float *xr = x + n * stride;
        float *hr = xhat + n * stride, *yr = y + n * stride;
        if ((const float *)yr == xr) {
            ew_normalize_run(yr, hr, yr, pixels, mean, inv_std, gamma, beta, rectify);
        } else {
            ew_normalize_run(xr, hr, yr, pixels, mean, inv_std, gamma, beta, rectify);
        }
    }
}

// dy * xhat is exact in double (two 24-bit significands), so only the sums round.
static inline __attribute__((always_inline)) void ew_gradient_block(const float *restrict d, const float *restrict h,
                                                                    double one, double *restrict first,
                                                                    double *restrict second) {
    EW_LANE_LOOP
    for (int l = 0; l < ew_lanes; l++) {
#pragma STDC FP_CONTRACT ON
        first[l] = (double)d[l] * one + first[l];
        second[l] = (double)d[l] * (double)h[l] + second[l];
    }
}

static inline void ew_channel_gradient_sums(const float *dy, const float *xhat, long batch, long pixels, long stride,
                                            double sums[2]) {
    const double one = ew_one_volatile;
    const long whole = pixels / ew_lanes * ew_lanes;
    double first[ew_lanes] = {0}, second[ew_lanes] = {0};
    float d_block[2 * ew_lanes], h_block[2 * ew_lanes];
    for (long n = 0; n < batch; n++) {
        const float *d = dy + n * stride, *h = xhat + n * stride;
        ew_prefetch_run_after_next(dy, n, batch, pixels, stride);
        ew_prefetch_run_after_next(xhat, n, batch, pixels, stride);
        // Past the run: dy = 0 and x-hat = 0, so the terms are 0 and 0 * 0, as in the reference.
        const float *d_tail = whole < pixels ? ew_tail_block(d, whole, pixels, 0.0f, d_block) : d;
        const float *h_tail = whole < pixels ? ew_tail_block(h, whole, pixels, 0.0f, h_block) : h;
        for (long p = 0; p < pixels; p += ew_lanes) {
            ew_gradient_block(p < whole ? d + p : d_tail, p < whole ? h + p : h_tail, one, first, second);
        }
    }
    sums[0] = ew_lane_total(first);
    sums[1] = ew_lane_total(second);
}

// One run; dx may be dy (see ew_normalize_run).
static inline __attribute__((always_inline)) void ew_input_gradient_run(
        const float *dy, const float *restrict xhat, float *dx, long pixels, float k, float m, float sum_dy,
        float sum_dy_xhat) {
    for (long p = 0; p < pixels; p++) dx[p] = k * ((m * dy[p] - sum_dy) - xhat[p] * sum_dy_xhat);
}

static inline void ew_channel_input_gradient(const float *dy, const float *xhat, float *dx, long batch, long pixels,
                                             long stride, float k, float m, float sum_dy, float sum_dy_xhat) {
    for (long n = 0; n < batch; n++) {
        const float *d = dy + n * stride, *h = xhat + n * stride;
        float *out = dx + n * stride;
        if ((const float *)out == d) {
            ew_input_gradient_run(out, h, out, pixels, k, m, sum_dy, sum_dy_xhat);
        } else {
            ew_input_gradient_run(d, h, out, pixels, k, m, sum_dy, sum_dy_xhat);
        }
    }
}

// MARK: 2 x 2 max pooling, alone and after BatchNorm -> ReLU

// Windows ox0 .. ox0 + count - 1 of one output row (top and bottom: its two input rows). count is a
// constant where this is inlined (8, 4 or 1), so the loop unrolls whole and vectorizes as a block:
// each input row's stride-2 reads become vector loads and one deinterleave, and no window runs in a
// scalar remainder (a row of 7 or 14 windows would be nothing but remainder to a vector loop).
static inline __attribute__((always_inline)) void ew_pool_windows(
        const float *restrict top, const float *restrict bottom, long ox0, const int count, int row, int w,
        int rectified, int normalize, float mu, float inv, float ga, float be, float *restrict out,
        int *restrict index, float *restrict xhat_out) {
    for (int l = 0; l < count; l++) {
        const long ox = ox0 + l;
        float a = top[2 * ox], b = top[2 * ox + 1], c = bottom[2 * ox], d = bottom[2 * ox + 1];
        float ha = 0, hb = 0, hc = 0, hd = 0;
        if (normalize) {
            ha = (a - mu) * inv;
            hb = (b - mu) * inv;
            hc = (c - mu) * inv;
            hd = (d - mu) * inv;
            a = ga * ha + be;
            b = ga * hb + be;
            c = ga * hc + be;
            d = ga * hd + be;
            a = a < 0 ? 0 : a;
            b = b < 0 ? 0 : b;
            c = c < 0 ? 0 : c;
            d = d < 0 ? 0 : d;
        }
        const int at_a = row + (int)(2 * ox);
        float best = a, best_xhat = ha;
        int at = at_a;
        if (b > best) { best = b; best_xhat = hb; at = at_a + 1; }
        if (c > best) { best = c; best_xhat = hc; at = at_a + w; }
        if (d > best) { best = d; best_xhat = hd; at = at_a + w + 1; }
        const int positive = best > 0;
        out[ox] = rectified == 2 && !positive ? 0 : best;
        index[ox] = rectified && !positive ? ~at : at;
        if (normalize) xhat_out[ox] = best_xhat;
    }
}

// Pools `planes` planes of h x w. With normalize, each value first becomes max(0, gamma * xhat + beta),
// xhat = (x - mean) * inv_std, as ew_channel_normalize computes them, and xhat_at_max gets the xhat
// of each window's maximum. The comparisons are strict, in the order a (top left), b, c, d, so a tie
// keeps the first in row-major order and a NaN never wins.
//
// A row goes in blocks of 8 windows, and when some are left, one more block of 8 that ends at the
// row's end: it overlaps the block before, whose windows it computes again and stores with the same
// values. A row of 4 to 7 windows takes two blocks of 4 the same way, a narrower one single windows.
// Nothing outside the row's two input rows is read, nothing outside its output row written.
static inline __attribute__((always_inline)) void ew_pool_planes(
        const float *x, float *y, int *argmax, long planes, long h, long w, int rectified, int normalize,
        const float *mean, const float *inv_std, const float *gamma, const float *beta, float *xhat_at_max) {
    const long oh = h / 2, ow = w / 2;
    for (long plane = 0; plane < planes; plane++) {
        const float mu = normalize ? mean[plane] : 0, inv = normalize ? inv_std[plane] : 0,
                    ga = normalize ? gamma[plane] : 0, be = normalize ? beta[plane] : 0;
        for (long oy = 0; oy < oh; oy++) {
            const float *top = x + plane * h * w + 2 * oy * w, *bottom = top + w;
            float *out = y + (plane * oh + oy) * ow;
            int *index = argmax + (plane * oh + oy) * ow;
            float *xhat_out = normalize ? xhat_at_max + (plane * oh + oy) * ow : 0;
            const int row = (int)(2 * oy * w);
#define EW_POOL_WINDOWS(ox0, count)                                                                         \
    ew_pool_windows(top, bottom, ox0, count, row, (int)w, rectified, normalize, mu, inv, ga, be, out, index, \
                    xhat_out)
            if (ow >= 8) {
                long ox0 = 0;
                for (; ox0 + 8 <= ow; ox0 += 8) EW_POOL_WINDOWS(ox0, 8);
                if (ox0 < ow) EW_POOL_WINDOWS(ow - 8, 8);
            } else if (ow >= 4) {
                EW_POOL_WINDOWS(0, 4);
                if (ow > 4) EW_POOL_WINDOWS(ow - 4, 4);
            } else {
                for (long ox = 0; ox < ow; ox++) EW_POOL_WINDOWS(ox, 1);
            }
#undef EW_POOL_WINDOWS
        }
    }
}

static inline void ew_maxpool2x2(const float *x, float *y, int *argmax, long planes, long h, long w, int rectified) {
    if (rectified == 0) {
        ew_pool_planes(x, y, argmax, planes, h, w, 0, 0, 0, 0, 0, 0, 0);
    } else if (rectified == 1) {
        ew_pool_planes(x, y, argmax, planes, h, w, 1, 0, 0, 0, 0, 0, 0);
    } else {
        ew_pool_planes(x, y, argmax, planes, h, w, 2, 0, 0, 0, 0, 0, 0);
    }
}

static inline void ew_bn_relu_maxpool2x2(const float *x, float *y, int *argmax, float *xhat_at_max, long channels,
                                         long h, long w, const float *mean, const float *inv_std, const float *gamma,
                                         const float *beta) {
    ew_pool_planes(x, y, argmax, channels, h, w, 1, 1, mean, inv_std, gamma, beta, xhat_at_max);
}

// Written window by window (each of the four places is dy or 0), which equals clearing dx and storing
// dy at each index, since an index lies in its own window or is negative; then the row and column an
// odd size drops are cleared.
static inline void ew_maxpool2x2_backward(const float *dy, const int *argmax, float *dx, long planes, long h, long w) {
    const long oh = h / 2, ow = w / 2;
    for (long plane = 0; plane < planes; plane++) {
        float *target = dx + plane * h * w;
        for (long oy = 0; oy < oh; oy++) {
            const float *restrict g = dy + (plane * oh + oy) * ow;
            const int *restrict index = argmax + (plane * oh + oy) * ow;
            float *restrict top = target + 2 * oy * w, *restrict bottom = top + w;
            const int row = (int)(2 * oy * w);
            for (long ox = 0; ox < ow; ox++) {
                const int at = index[ox], a = row + (int)(2 * ox);
                const float v = g[ox];
                top[2 * ox] = at == a ? v : 0;
                top[2 * ox + 1] = at == a + 1 ? v : 0;
                bottom[2 * ox] = at == a + (int)w ? v : 0;
                bottom[2 * ox + 1] = at == a + (int)w + 1 ? v : 0;
            }
            if (w & 1) top[w - 1] = bottom[w - 1] = 0;
        }
        if (h & 1) {
            for (long i = 0; i < w; i++) target[(h - 1) * w + i] = 0;
        }
    }
}

static inline __attribute__((always_inline)) void ew_pool_gradient_block(
        const float *restrict d, const float *restrict h, const int *restrict index, double one,
        double *restrict first, double *restrict second) {
    EW_LANE_LOOP
    for (int l = 0; l < ew_lanes; l++) {
#pragma STDC FP_CONTRACT ON
        // Both factors masked: a window that passes nothing may hold a NaN x-hat. Masked as floats
        // (the bits cleared: +0, the same +0 once widened), a quarter of the work of masking doubles.
        const uint32_t keep = index[l] >= 0 ? 0xFFFFFFFFu : 0u;
        const double dv = ew_float(ew_bits(d[l]) & keep), hv = ew_float(ew_bits(h[l]) & keep);
        first[l] = dv * one + first[l];
        second[l] = dv * hv + second[l];
    }
}

static inline void ew_bn_pool_gradient_sums(const float *dpooled, const int *argmax, const float *xhat_at_max,
                                            long batch, long out_pixels, long stride, double sums[2]) {
    const double one = ew_one_volatile;
    const long whole = out_pixels / ew_lanes * ew_lanes;
    double first[ew_lanes] = {0}, second[ew_lanes] = {0};
    float d_block[2 * ew_lanes], h_block[2 * ew_lanes];
    int i_block[2 * ew_lanes];
    for (long n = 0; n < batch; n++) {
        const float *d = dpooled + n * stride, *h = xhat_at_max + n * stride;
        const int *index = argmax + n * stride;
        ew_prefetch_run_after_next(dpooled, n, batch, out_pixels, stride);
        ew_prefetch_run_after_next(xhat_at_max, n, batch, out_pixels, stride);
        ew_prefetch_run_after_next((const float *)argmax, n, batch, out_pixels, stride);
        // Past the run: a window that passes nothing (index -1), as the reference masks it.
        const int partial = whole < out_pixels;
        const float *d_tail = partial ? ew_tail_block(d, whole, out_pixels, 0.0f, d_block) : d;
        const float *h_tail = partial ? ew_tail_block(h, whole, out_pixels, 0.0f, h_block) : h;
        const int *i_tail = partial ? ew_tail_block_int(index, whole, out_pixels, -1, i_block) : index;
        for (long o = 0; o < out_pixels; o += ew_lanes) {
            const int inside = o < whole;
            ew_pool_gradient_block(inside ? d + o : d_tail, inside ? h + o : h_tail, inside ? index + o : i_tail, one,
                                   first, second);
        }
    }
    sums[0] = ew_lane_total(first);
    sums[1] = ew_lane_total(second);
}

// Windows ox0 .. ox0 + count - 1 of one output row (count a constant where inlined: 8, 4 or 1): the
// dx of their places in the two input rows, into t (top) and b (bottom), 2 * count each. The values
// are only computed here, and stored by the caller: dx may be x.
static inline __attribute__((always_inline)) void ew_pool_gradient_windows(
        const float *top, const float *bottom, long ox0, const int count, int row, int w,
        const float *restrict dp, const int *restrict index, const float *restrict xm, float mean, float inv_std,
        float k, float m, float sum_dy, float sum_dy_xhat, float *restrict t, float *restrict b) {
    const float no_gradient = m * 0.0f - sum_dy;
    for (int l = 0; l < count; l++) {
        const long ox = ox0 + l;
        const int at = index[ox], a = row + (int)(2 * ox);
        const float at_max = k * ((m * dp[ox] - sum_dy) - xm[ox] * sum_dy_xhat);
        const float va = k * (no_gradient - ((top[2 * ox] - mean) * inv_std) * sum_dy_xhat);
        const float vb = k * (no_gradient - ((top[2 * ox + 1] - mean) * inv_std) * sum_dy_xhat);
        const float vc = k * (no_gradient - ((bottom[2 * ox] - mean) * inv_std) * sum_dy_xhat);
        const float vd = k * (no_gradient - ((bottom[2 * ox + 1] - mean) * inv_std) * sum_dy_xhat);
        t[2 * l] = at == a ? at_max : va;
        t[2 * l + 1] = at == a + 1 ? at_max : vb;
        b[2 * l] = at == a + w ? at_max : vc;
        b[2 * l + 1] = at == a + w + 1 ? at_max : vd;
    }
}

static inline __attribute__((always_inline)) void ew_store_windows(float *dtop, float *dbottom, long ox0,
                                                                   const int count, const float *restrict t,
                                                                   const float *restrict b) {
    for (int e = 0; e < 2 * count; e++) dtop[2 * ox0 + e] = t[e];
    for (int e = 0; e < 2 * count; e++) dbottom[2 * ox0 + e] = b[e];
}

// One plane. The gradient reaching the batch norm's output is dpooled at the window's argmax and 0
// elsewhere, so each place is k * ((m * dy - sum_dy) - xhat * sum_dy_xhat) with dy = 0 and x-hat
// recomputed from x, except at the argmax, where dy is dpooled and x-hat the forward pass's own.
// dx may be x. A row goes in blocks of windows as in ew_pool_planes, the last block overlapping the
// one before when the row is not a whole number of blocks; both are computed before either is
// stored, so that with dx = x the second still reads x where the first writes.
static inline __attribute__((always_inline)) void ew_bn_pool_input_gradient_plane(
        const float *restrict dpooled, const int *restrict argmax, const float *restrict xhat_at_max, const float *x,
        float *dx, long h, long w, float mean, float inv_std, float k, float m, float sum_dy, float sum_dy_xhat) {
    const long oh = h / 2, ow = w / 2;
    const float no_gradient = m * 0.0f - sum_dy;
    float t[16], b[16], t2[16], b2[16];
    for (long oy = 0; oy < oh; oy++) {
        const float *top = x + 2 * oy * w, *bottom = top + w;
        float *dtop = dx + 2 * oy * w, *dbottom = dtop + w;
        const float *dp = dpooled + oy * ow, *xm = xhat_at_max + oy * ow;
        const int *index = argmax + oy * ow;
        const int row = (int)(2 * oy * w);
#define EW_POOL_GRADIENT_WINDOWS(ox0, count, t, b)                                                               \
    ew_pool_gradient_windows(top, bottom, ox0, count, row, (int)w, dp, index, xm, mean, inv_std, k, m, sum_dy, \
                             sum_dy_xhat, t, b)
        if (ow >= 8) {
            long ox0 = 0;
            for (; ox0 + 16 <= ow; ox0 += 8) {
                EW_POOL_GRADIENT_WINDOWS(ox0, 8, t, b);
                ew_store_windows(dtop, dbottom, ox0, 8, t, b);
            }
            EW_POOL_GRADIENT_WINDOWS(ox0, 8, t, b);  // the last whole block
            if (ox0 + 8 < ow) EW_POOL_GRADIENT_WINDOWS(ow - 8, 8, t2, b2);
            ew_store_windows(dtop, dbottom, ox0, 8, t, b);
            if (ox0 + 8 < ow) ew_store_windows(dtop, dbottom, ow - 8, 8, t2, b2);
        } else if (ow >= 4) {
            EW_POOL_GRADIENT_WINDOWS(0, 4, t, b);
            if (ow > 4) EW_POOL_GRADIENT_WINDOWS(ow - 4, 4, t2, b2);
            ew_store_windows(dtop, dbottom, 0, 4, t, b);
            if (ow > 4) ew_store_windows(dtop, dbottom, ow - 4, 4, t2, b2);
        } else {
            for (long ox = 0; ox < ow; ox++) {
                EW_POOL_GRADIENT_WINDOWS(ox, 1, t, b);
                ew_store_windows(dtop, dbottom, ox, 1, t, b);
            }
        }
#undef EW_POOL_GRADIENT_WINDOWS
        if (w & 1) {
            dtop[w - 1] = k * (no_gradient - ((top[w - 1] - mean) * inv_std) * sum_dy_xhat);
            dbottom[w - 1] = k * (no_gradient - ((bottom[w - 1] - mean) * inv_std) * sum_dy_xhat);
        }
    }
    if (h & 1) {
        const float *last = x + (h - 1) * w;
        float *dlast = dx + (h - 1) * w;
        for (long i = 0; i < w; i++) dlast[i] = k * (no_gradient - ((last[i] - mean) * inv_std) * sum_dy_xhat);
    }
}

static inline void ew_bn_pool_input_gradient(const float *dpooled, const int *argmax, const float *xhat_at_max,
                                             const float *x, float *dx, long channels, long h, long w,
                                             const float *mean, const float *inv_std, const float *k, float m_count,
                                             const float *sum_dy, const float *sum_dy_xhat) {
    const long pixels = h * w, out_pixels = (h / 2) * (w / 2);
    for (long c = 0; c < channels; c++) {
        ew_bn_pool_input_gradient_plane(dpooled + c * out_pixels, argmax + c * out_pixels,
                                        xhat_at_max + c * out_pixels, x + c * pixels, dx + c * pixels, h, w, mean[c],
                                        inv_std[c], k[c], m_count, sum_dy[c], sum_dy_xhat[c]);
    }
}

// MARK: optimizer

// The operation order of the Swift loops these replace: no fused multiply-adds.
static inline void ew_adam(float *restrict w, const float *restrict g, float *restrict m, float *restrict v, long count,
                           float beta1, float beta2, float epsilon, float lr, float wd, int decoupled, float step_size,
                           float c2_root) {
    const float one_b1 = 1 - beta1, one_b2 = 1 - beta2, shrink = lr * wd;
    for (long i = 0; i < count; i++) {
        float wi = w[i];
        const float gi = decoupled ? g[i] : g[i] + wd * wi;
        const float mi = beta1 * m[i] + one_b1 * gi;
        const float vi = beta2 * v[i] + (one_b2 * gi) * gi;
        if (decoupled) wi = wi - shrink * wi;
        wi = wi - (step_size * mi) / (ew_sqrt(vi) / c2_root + epsilon);
        m[i] = mi;
        v[i] = vi;
        w[i] = wi;
    }
}

static inline void ew_sgd(float *restrict w, const float *restrict g, float *restrict m, long count, float momentum,
                          int nesterov, float lr, float wd) {
    for (long i = 0; i < count; i++) {
        const float wi = w[i], gi = g[i] + wd * wi;
        const float mi = momentum * m[i] + gi;
        const float direction = nesterov ? gi + momentum * mi : mi;
        m[i] = mi;
        w[i] = wi - lr * direction;
    }
}

// MARK: dropout

// SplitMix64's finaliser, as CounterRNG's splitMixFinalize.
static inline uint64_t ew_splitmix_finalize(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Draw n (from 1) of KeyedRandom(key) is finalize(key + n * golden); its low and high 32 bits, each cut
// to 24, decide elements 2(n-1) and 2(n-1)+1.
static inline void ew_dropout(uint64_t key, const float *x, float *y, float *restrict mask, long count,
                              uint32_t threshold, float scale) {
    const uint64_t golden = 0x9E3779B97F4A7C15ull;
    const long pairs = count / 2;
    for (long n = 0; n < pairs; n++) {
        const uint64_t bits = ew_splitmix_finalize(key + (uint64_t)(n + 1) * golden);
        const float m0 = (uint32_t)(bits & 0xFFFFFFu) < threshold ? scale : 0;
        const float m1 = (uint32_t)((bits >> 32) & 0xFFFFFFu) < threshold ? scale : 0;
        mask[2 * n] = m0;
        mask[2 * n + 1] = m1;
        y[2 * n] = x[2 * n] * m0;
        y[2 * n + 1] = x[2 * n + 1] * m1;
    }
    if (count & 1) {
        const uint64_t bits = ew_splitmix_finalize(key + (uint64_t)(pairs + 1) * golden);
        const float m0 = (uint32_t)(bits & 0xFFFFFFu) < threshold ? scale : 0;
        mask[count - 1] = m0;
        y[count - 1] = x[count - 1] * m0;
    }
}

// MARK: binary16

// Round to nearest even; past 65504 (once rounded) infinity; a NaN keeps its sign and the top of its
// payload and becomes quiet, as the F16C and NEON conversions do. Branch-free so that it vectorizes:
// every case is computed, then one is selected.
static inline uint16_t ew_to_half(float value) {
    const uint32_t u = ew_bits(value), sign = (u >> 16) & 0x8000u, magnitude = u & 0x7FFFFFFFu;
    // A normal half: the exponent rebiased (127 -> 15), 13 bits rounded off; a carry out of the
    // mantissa moves to the next binade, which is also how 65520 and up reach 0x7C00.
    const uint32_t rebiased = magnitude - 0x38000000u;
    uint32_t normal = rebiased >> 13;
    const uint32_t normal_rest = rebiased & 0x1FFFu;
    normal += (normal_rest > 0x1000u) | ((normal_rest == 0x1000u) & normal);
    // A subnormal half: value = mantissa * 2^(E - 150) = q * 2^-24, q = mantissa >> (126 - E), rounded.
    // The shift is clamped to [1, 31], where the cases this result is not selected for land.
    int shift = 126 - (int)(magnitude >> 23);
    shift = shift < 1 ? 1 : shift > 31 ? 31 : shift;
    const uint32_t mantissa = (magnitude & 0x7FFFFFu) | 0x800000u;
    uint32_t subnormal = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    subnormal += (rest > halfway) | ((rest == halfway) & subnormal);
    const uint32_t finite = magnitude >= 0x477FF000u ? 0x7C00u : magnitude < 0x38800000u ? subnormal : normal;
    const uint32_t special = magnitude > 0x7F800000u ? 0x7E00u | ((magnitude >> 13) & 0x3FFu) : 0x7C00u;
    return (uint16_t)(sign | (magnitude >= 0x7F800000u ? special : finite));
}

// Exact: every half is a float. A NaN keeps its payload and becomes quiet (as in hardware).
static inline float ew_from_half(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
    const uint32_t normal = sign | ((exponent + 112) << 23) | (mantissa << 13);
    const uint32_t special = sign | 0x7F800000u | (mantissa << 13) | (mantissa != 0 ? 0x400000u : 0);
    const uint32_t subnormal = sign | ew_bits((float)(int32_t)mantissa * 0x1p-24f);
    return ew_float(exponent == 0 ? subnormal : exponent == 31 ? special : normal);
}

static inline void ew_float_to_half(const float *restrict x, unsigned short *restrict half, long count, float scale) {
    for (long i = 0; i < count; i++) half[i] = ew_to_half(x[i] * scale);
}

static inline void ew_half_to_float(const unsigned short *restrict half, float *restrict x, long count,
                                    float inverse_scale) {
    for (long i = 0; i < count; i++) x[i] = ew_from_half(half[i]) * inverse_scale;
}

// The float sum of two halves rounds once more on the way back; with 24 >= 2 * 11 + 2 bits that second
// rounding gives the correctly rounded half sum. A NaN is chosen here, not by the adder (which NaN of
// two an add returns, and the sign of inf - inf, differ between ISAs and compiled operand orders):
// in's, else inout's, made quiet, else 0x7E00.
static inline void ew_half_add(const unsigned short *in, unsigned short *inout, long count) {
    for (long i = 0; i < count; i++) {
        const uint16_t a = in[i], b = inout[i], sum = ew_to_half(ew_from_half(a) + ew_from_half(b));
        const uint16_t nan = (a & 0x7FFFu) > 0x7C00u   ? (uint16_t)(a | 0x200u)
                             : (b & 0x7FFFu) > 0x7C00u ? (uint16_t)(b | 0x200u)
                                                       : (uint16_t)0x7E00u;
        inout[i] = (sum & 0x7FFFu) > 0x7C00u ? nan : sum;
    }
}

static inline int ew_half_has_nonfinite(const unsigned short *half, long count) {
    unsigned any = 0;
    for (long i = 0; i < count; i++) any |= (half[i] & 0x7C00u) == 0x7C00u;
    return (int)any;
}

// A NaN is passed over (as fmaxf does); the maximum itself does not depend on the order.
static inline float ew_max_abs(const float *x, long count) {
    float lane[ew_lanes] = {0};
    long i = 0;
    for (; i + ew_lanes <= count; i += ew_lanes) {
        for (int l = 0; l < ew_lanes; l++) {
            const float a = __builtin_fabsf(x[i + l]);
            lane[l] = a > lane[l] ? a : lane[l];
        }
    }
    for (int l = 0; l < ew_lanes; l++) {
        const float a = i + l < count ? __builtin_fabsf(x[i + l]) : 0;
        lane[l] = a > lane[l] ? a : lane[l];
    }
    float best = 0;
    for (int l = 0; l < ew_lanes; l++) best = lane[l] > best ? lane[l] : best;
    return best;
}

// The entries above, for a table's initialiser: { .name = ..., CK_ELEMENTWISE_ENTRIES, ... }.
#define CK_ELEMENTWISE_ENTRIES                                                                                      \
    .im2col = ew_im2col, .col2im_add = ew_col2im_add, .channel_shifted_sums = ew_channel_shifted_sums,              \
    .channel_normalize = ew_channel_normalize, .channel_gradient_sums = ew_channel_gradient_sums,                   \
    .channel_input_gradient = ew_channel_input_gradient, .maxpool2x2 = ew_maxpool2x2,                               \
    .maxpool2x2_backward = ew_maxpool2x2_backward, .bn_relu_maxpool2x2 = ew_bn_relu_maxpool2x2,                     \
    .bn_pool_gradient_sums = ew_bn_pool_gradient_sums, .bn_pool_input_gradient = ew_bn_pool_input_gradient,         \
    .adam = ew_adam, .sgd = ew_sgd, .dropout = ew_dropout, .float_to_half = ew_float_to_half,                       \
    .half_to_float = ew_half_to_float, .half_add = ew_half_add, .half_has_nonfinite = ew_half_has_nonfinite,        \
    .max_abs = ew_max_abs
