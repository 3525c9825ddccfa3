// Every table entry but the GEMM, in plain C: written once and compiled into each ISA's table with
// that ISA's code generation (generic/reference.c, x86/avx2.c, arm/neon.c). No include guard, on
// purpose: each translation unit includes it once, and every function is static. No intrinsics: the
// loops are written so that clang vectorizes them (independent lanes, fixed-size lane arrays for
// reductions), and contraction is off, so every ISA computes the same bits as the reference.
#pragma STDC FP_CONTRACT OFF
#include "../isa.h"

// A sum in 16 double lanes: lane l takes the terms at positions p = l (mod 16) of each run, and the
// lanes are combined in one fixed tree, so a sum depends on the data and its shape only (not on the
// ISA or on how callers split their work). A lane starts at +0 and so is never -0: adding +0 to it
// (the padding of a short last block) changes nothing.
enum { ew_lanes = 16 };

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

static inline void ew_im2col(const ck_conv_geometry *g, const float *restrict input, float *restrict columns,
                             long row_stride) {
    const long k = g->kernel, s = g->stride, pad = g->padding, h = g->height, w = g->width, oh = g->output_height,
               ow = g->output_width;
    for (long c = 0; c < g->channels; c++) {
        const float *plane = input + c * h * w;
        for (long ky = 0; ky < k; ky++) {
            for (long kx = 0; kx < k; kx++) {
                float *row = columns + ((c * k + ky) * k + kx) * row_stride;
                long lo, hi;
                ew_valid_columns(kx - pad, s, w, ow, &lo, &hi);
                for (long oy = 0; oy < oh; oy++) {
                    float *restrict out = row + oy * ow;
                    const long iy = oy * s - pad + ky;
                    if (iy < 0 || iy >= h) {
                        for (long ox = 0; ox < ow; ox++) out[ox] = 0;
                        continue;
                    }
                    const float *restrict source = plane + iy * w + kx - pad;
                    for (long ox = 0; ox < lo; ox++) out[ox] = 0;
                    if (s == 1) {
                        for (long ox = lo; ox < hi; ox++) out[ox] = source[ox];
                    } else {
                        for (long ox = lo; ox < hi; ox++) out[ox] = source[ox * s];
                    }
                    for (long ox = hi; ox < ow; ox++) out[ox] = 0;
                }
            }
        }
    }
}

// Each input element receives its column entries in the order (ky, kx) of the loops, whatever the stride.
static inline void ew_col2im_add(const ck_conv_geometry *g, const float *restrict columns, long row_stride,
                                 float *restrict input_gradient) {
    const long k = g->kernel, s = g->stride, pad = g->padding, h = g->height, w = g->width, oh = g->output_height,
               ow = g->output_width;
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

static inline double ew_channel_sum(const float *x, long batch, long pixels, long stride) {
    double lane[ew_lanes] = {0};
    for (long n = 0; n < batch; n++) {
        const float *restrict run = x + n * stride;
        long p = 0;
        for (; p + ew_lanes <= pixels; p += ew_lanes) {
            for (int l = 0; l < ew_lanes; l++) lane[l] += (double)run[p + l];
        }
        for (int l = 0; l < ew_lanes; l++) lane[l] += p + l < pixels ? (double)run[p + l] : 0.0;
    }
    return ew_lane_total(lane);
}

// x - mean is exact in double (both are floats of nearby magnitude), so only the squares and sums round.
static inline double ew_channel_squared_deviations(const float *x, long batch, long pixels, long stride, float mean) {
    const double mu = mean;
    double lane[ew_lanes] = {0};
    for (long n = 0; n < batch; n++) {
        const float *restrict run = x + n * stride;
        long p = 0;
        for (; p + ew_lanes <= pixels; p += ew_lanes) {
            for (int l = 0; l < ew_lanes; l++) {
                const double d = (double)run[p + l] - mu;
                lane[l] += d * d;
            }
        }
        for (int l = 0; l < ew_lanes; l++) {
            const double d = p + l < pixels ? (double)run[p + l] - mu : 0.0;
            lane[l] += d * d;
        }
    }
    return ew_lane_total(lane);
}

static inline void ew_channel_shifted_sums(const float *x, long batch, long pixels, long stride, float shift,
                                           double sums[2]) {
    const double k = shift;
    double first[ew_lanes] = {0}, second[ew_lanes] = {0};
    for (long n = 0; n < batch; n++) {
        const float *restrict run = x + n * stride;
        long p = 0;
        for (; p + ew_lanes <= pixels; p += ew_lanes) {
            for (int l = 0; l < ew_lanes; l++) {
                const double d = (double)run[p + l] - k;
                first[l] += d;
                second[l] += d * d;
            }
        }
        for (int l = 0; l < ew_lanes; l++) {
            const double d = p + l < pixels ? (double)run[p + l] - k : 0.0;
            first[l] += d;
            second[l] += d * d;
        }
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
static inline void ew_channel_gradient_sums(const float *dy, const float *xhat, long batch, long pixels, long stride,
                                            double sums[2]) {
    double first[ew_lanes] = {0}, second[ew_lanes] = {0};
    for (long n = 0; n < batch; n++) {
        const float *restrict d = dy + n * stride, *restrict h = xhat + n * stride;
        long p = 0;
        for (; p + ew_lanes <= pixels; p += ew_lanes) {
            for (int l = 0; l < ew_lanes; l++) {
                first[l] += (double)d[p + l];
                second[l] += (double)d[p + l] * (double)h[p + l];
            }
        }
        for (int l = 0; l < ew_lanes; l++) {
            const int inside = p + l < pixels;
            const double dv = inside ? (double)d[p + l] : 0.0, hv = inside ? (double)h[p + l] : 0.0;
            first[l] += dv;
            second[l] += dv * hv;
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

// Pools `planes` planes of h x w. With normalize, each value first becomes max(0, gamma * xhat + beta),
// xhat = (x - mean) * inv_std, as ew_channel_normalize computes them, and xhat_at_max gets the xhat
// of each window's maximum. The comparisons are strict, in the order a (top left), b, c, d, so a tie
// keeps the first in row-major order and a NaN never wins.
static inline __attribute__((always_inline)) void ew_pool_planes(
        const float *x, float *y, int *argmax, long planes, long h, long w, int rectified, int normalize,
        const float *mean, const float *inv_std, const float *gamma, const float *beta, float *xhat_at_max) {
    const long oh = h / 2, ow = w / 2;
    for (long plane = 0; plane < planes; plane++) {
        const float mu = normalize ? mean[plane] : 0, inv = normalize ? inv_std[plane] : 0,
                    ga = normalize ? gamma[plane] : 0, be = normalize ? beta[plane] : 0;
        for (long oy = 0; oy < oh; oy++) {
            const float *restrict top = x + plane * h * w + 2 * oy * w, *restrict bottom = top + w;
            float *restrict out = y + (plane * oh + oy) * ow;
            int *restrict index = argmax + (plane * oh + oy) * ow;
            float *restrict xhat_out = normalize ? xhat_at_max + (plane * oh + oy) * ow : 0;
            const int row = (int)(2 * oy * w);
            for (long ox = 0; ox < ow; ox++) {
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
                if (c > best) { best = c; best_xhat = hc; at = at_a + (int)w; }
                if (d > best) { best = d; best_xhat = hd; at = at_a + (int)w + 1; }
                const int positive = best > 0;
                out[ox] = rectified == 2 && !positive ? 0 : best;
                index[ox] = rectified && !positive ? ~at : at;
                if (normalize) xhat_out[ox] = best_xhat;
            }
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

static inline void ew_bn_pool_gradient_sums(const float *dpooled, const int *argmax, const float *xhat_at_max,
                                            long batch, long out_pixels, long stride, double sums[2]) {
    double first[ew_lanes] = {0}, second[ew_lanes] = {0};
    for (long n = 0; n < batch; n++) {
        const float *restrict d = dpooled + n * stride, *restrict h = xhat_at_max + n * stride;
        const int *restrict index = argmax + n * stride;
        long o = 0;
        for (; o + ew_lanes <= out_pixels; o += ew_lanes) {
            for (int l = 0; l < ew_lanes; l++) {
                // Both factors masked: a window that passes nothing may hold a NaN x-hat.
                const int keep = index[o + l] >= 0;
                const double dv = keep ? (double)d[o + l] : 0.0, hv = keep ? (double)h[o + l] : 0.0;
                first[l] += dv;
                second[l] += dv * hv;
            }
        }
        for (int l = 0; l < ew_lanes; l++) {
            const int keep = o + l < out_pixels && index[o + l] >= 0;
            const double dv = keep ? (double)d[o + l] : 0.0, hv = keep ? (double)h[o + l] : 0.0;
            first[l] += dv;
            second[l] += dv * hv;
        }
    }
    sums[0] = ew_lane_total(first);
    sums[1] = ew_lane_total(second);
}

// One plane. The gradient reaching the batch norm's output is dpooled at the window's argmax and 0
// elsewhere, so each place is k * ((m * dy - sum_dy) - xhat * sum_dy_xhat) with dy = 0 and x-hat
// recomputed from x, except at the argmax, where dy is dpooled and x-hat the forward pass's own.
// dx may be x (see ew_normalize_run).
static inline __attribute__((always_inline)) void ew_bn_pool_input_gradient_plane(
        const float *restrict dpooled, const int *restrict argmax, const float *restrict xhat_at_max, const float *x,
        float *dx, long h, long w, float mean, float inv_std, float k, float m, float sum_dy, float sum_dy_xhat) {
    const long oh = h / 2, ow = w / 2;
    const float no_gradient = m * 0.0f - sum_dy;
    for (long oy = 0; oy < oh; oy++) {
        const float *top = x + 2 * oy * w, *bottom = top + w;
        float *dtop = dx + 2 * oy * w, *dbottom = dtop + w;
        const float *restrict dp = dpooled + oy * ow, *restrict xm = xhat_at_max + oy * ow;
        const int *restrict index = argmax + oy * ow;
        const int row = (int)(2 * oy * w);
        for (long ox = 0; ox < ow; ox++) {
            const int at = index[ox], a = row + (int)(2 * ox);
            const float at_max = k * ((m * dp[ox] - sum_dy) - xm[ox] * sum_dy_xhat);
            const float va = k * (no_gradient - ((top[2 * ox] - mean) * inv_std) * sum_dy_xhat);
            const float vb = k * (no_gradient - ((top[2 * ox + 1] - mean) * inv_std) * sum_dy_xhat);
            const float vc = k * (no_gradient - ((bottom[2 * ox] - mean) * inv_std) * sum_dy_xhat);
            const float vd = k * (no_gradient - ((bottom[2 * ox + 1] - mean) * inv_std) * sum_dy_xhat);
            dtop[2 * ox] = at == a ? at_max : va;
            dtop[2 * ox + 1] = at == a + 1 ? at_max : vb;
            dbottom[2 * ox] = at == a + (int)w ? at_max : vc;
            dbottom[2 * ox + 1] = at == a + (int)w + 1 ? at_max : vd;
        }
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
        const float *dp = dpooled + c * out_pixels, *xm = xhat_at_max + c * out_pixels, *xc = x + c * pixels;
        const int *index = argmax + c * out_pixels;
        float *dxc = dx + c * pixels;
        if ((const float *)dxc == xc) {
            ew_bn_pool_input_gradient_plane(dp, index, xm, dxc, dxc, h, w, mean[c], inv_std[c], k[c], m_count,
                                            sum_dy[c], sum_dy_xhat[c]);
        } else {
            ew_bn_pool_input_gradient_plane(dp, index, xm, xc, dxc, h, w, mean[c], inv_std[c], k[c], m_count,
                                            sum_dy[c], sum_dy_xhat[c]);
        }
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
    .im2col = ew_im2col, .col2im_add = ew_col2im_add, .channel_sum = ew_channel_sum,                                \
    .channel_squared_deviations = ew_channel_squared_deviations, .channel_shifted_sums = ew_channel_shifted_sums,   \
    .channel_normalize = ew_channel_normalize, .channel_gradient_sums = ew_channel_gradient_sums,                   \
    .channel_input_gradient = ew_channel_input_gradient, .maxpool2x2 = ew_maxpool2x2,                               \
    .maxpool2x2_backward = ew_maxpool2x2_backward, .bn_relu_maxpool2x2 = ew_bn_relu_maxpool2x2,                     \
    .bn_pool_gradient_sums = ew_bn_pool_gradient_sums, .bn_pool_input_gradient = ew_bn_pool_input_gradient,         \
    .adam = ew_adam, .sgd = ew_sgd, .dropout = ew_dropout, .float_to_half = ew_float_to_half,                       \
    .half_to_float = ew_half_to_float, .half_add = ew_half_add, .half_has_nonfinite = ew_half_has_nonfinite,        \
    .max_abs = ew_max_abs
