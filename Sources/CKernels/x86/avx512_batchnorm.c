#if defined(__x86_64__)
#include "avx512.h"
#include <immintrin.h>
#include "prefetch.h"

// The per-channel passes of batch normalisation, 16 lanes at a time with a masked tail.

static inline __mmask16 tail(long count) { return count >= 16 ? 0xFFFF : (__mmask16)((1u << count) - 1); }

// The passes over one channel of a batch visit `batch` runs `stride` floats apart, which the hardware
// prefetchers do not follow: each run asks for the one two ahead.

AVX512 void avx512_channel_shifted_sums(const float *x, long batch, long pixels, long stride, float shift, double sums[2]) {
    double s0 = 0, s1 = 0;
    const __m512 k = _mm512_set1_ps(shift);
    for (long n = 0; n < batch; n++, x += stride) {
        if (n + 2 < batch) ck_prefetch_read(x + 2 * stride, pixels);
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        for (long p = 0; p < pixels; p += 16) {
            __mmask16 m = tail(pixels - p);
            __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + p), k);
            a0 = _mm512_add_ps(a0, d);
            a1 = _mm512_fmadd_ps(d, d, a1);
        }
        s0 += _mm512_reduce_add_ps(a0);
        s1 += _mm512_reduce_add_ps(a1);
    }
    sums[0] = s0;
    sums[1] = s1;
}

AVX512 void avx512_channel_normalize(const float *x, float *xhat, float *y, long batch, long pixels, long stride,
                                 float mean, float inv_std, float gamma, float beta, int rectify) {
    const __m512 mu = _mm512_set1_ps(mean), inv = _mm512_set1_ps(inv_std), g = _mm512_set1_ps(gamma),
                 b = _mm512_set1_ps(beta);
    for (long n = 0; n < batch; n++, x += stride, xhat += stride, y += stride) {
        if (n + 2 < batch) ck_prefetch_read(x + 2 * stride, pixels);
        for (long p = 0; p < pixels; p += 16) {
            __mmask16 m = tail(pixels - p);
            __m512 h = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + p), mu), inv);
            _mm512_mask_storeu_ps(xhat + p, m, h);
            __m512 out = _mm512_fmadd_ps(g, h, b);
            if (rectify) out = _mm512_max_ps(_mm512_setzero_ps(), out);  // second operand wins on NaN
            _mm512_mask_storeu_ps(y + p, m, out);
        }
    }
}

AVX512 void avx512_channel_gradient_sums(const float *dy, const float *xhat, long batch, long pixels, long stride,
                                     double sums[2]) {
    double s0 = 0, s1 = 0;
    for (long n = 0; n < batch; n++, dy += stride, xhat += stride) {
        if (n + 2 < batch) {
            ck_prefetch_read(dy + 2 * stride, pixels);
            ck_prefetch_read(xhat + 2 * stride, pixels);
        }
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        for (long p = 0; p < pixels; p += 16) {
            __mmask16 m = tail(pixels - p);
            __m512 d = _mm512_maskz_loadu_ps(m, dy + p);
            a0 = _mm512_add_ps(a0, d);
            a1 = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, xhat + p), a1);
        }
        s0 += _mm512_reduce_add_ps(a0);
        s1 += _mm512_reduce_add_ps(a1);
    }
    sums[0] = s0;
    sums[1] = s1;
}

AVX512 void avx512_channel_input_gradient(const float *dy, const float *xhat, float *dx, long batch, long pixels,
                                      long stride, float k, float m_count, float sum_dy, float sum_dy_xhat) {
    const __m512 vk = _mm512_set1_ps(k), vm = _mm512_set1_ps(m_count), s0 = _mm512_set1_ps(sum_dy),
                 s1 = _mm512_set1_ps(sum_dy_xhat);
    for (long n = 0; n < batch; n++, dy += stride, xhat += stride, dx += stride) {
        for (long p = 0; p < pixels; p += 16) {
            __mmask16 m = tail(pixels - p);
            __m512 t = _mm512_fmsub_ps(vm, _mm512_maskz_loadu_ps(m, dy + p), s0);
            t = _mm512_fnmadd_ps(_mm512_maskz_loadu_ps(m, xhat + p), s1, t);
            _mm512_mask_storeu_ps(dx + p, m, _mm512_mul_ps(vk, t));
        }
    }
}

// Backward of BatchNorm -> ReLU -> 2 x 2 max pooling run as one (ck_bn_relu_maxpool2x2 forward).
// The gradient reaching the batch norm's output is dpooled at each window's argmax (where the window
// passes gradient: index >= 0) and 0 elsewhere, so the channel sums need only the pooled positions,
// with the x-hat the forward pass kept for them.
AVX512 void avx512_bn_pool_gradient_sums(const float *dpooled, const int *argmax, const float *xhat_at_max, long batch,
                                     long out_pixels, long stride, double sums[2]) {
    double s0 = 0, s1 = 0;
    for (long n = 0; n < batch; n++, dpooled += stride, argmax += stride, xhat_at_max += stride) {
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        for (long o = 0; o < out_pixels; o += 16) {
            const __mmask16 inside = tail(out_pixels - o);
            const __mmask16 keep = _mm512_mask_cmpge_epi32_mask(inside, _mm512_maskz_loadu_epi32(inside, argmax + o),
                                                                _mm512_setzero_si512());
            const __m512 d = _mm512_maskz_loadu_ps(keep, dpooled + o);
            a0 = _mm512_add_ps(a0, d);
            a1 = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(keep, xhat_at_max + o), a1);
        }
        s0 += _mm512_reduce_add_ps(a0);
        s1 += _mm512_reduce_add_ps(a1);
    }
    sums[0] = s0;
    sums[1] = s1;
}

// dx = k * (m * dy - sum_dy - xhat * sum_dy_xhat) for the `channels` planes of one sample, dy being
// dpooled at the argmax positions and 0 elsewhere: a dense pass with dy = 0 (x-hat recomputed from
// x, as the forward pass computed it), then the argmax positions are overwritten with their values.
// dx may be x.
AVX512 void avx512_bn_pool_input_gradient(const float *dpooled, const int *argmax, const float *xhat_at_max, const float *x,
                                      float *dx, long channels, long h, long w, const float *mean,
                                      const float *inv_std, const float *k, float m_count, const float *sum_dy,
                                      const float *sum_dy_xhat) {
    const long pixels = h * w, out_pixels = (h / 2) * (w / 2);
    const __m512 vm = _mm512_set1_ps(m_count);
    for (long c = 0; c < channels; c++) {
        const float *xc = x + c * pixels, *dp = dpooled + c * out_pixels, *xm = xhat_at_max + c * out_pixels;
        float *dxc = dx + c * pixels;
        const int *index = argmax + c * out_pixels;
        const __m512 mu = _mm512_set1_ps(mean[c]), inv = _mm512_set1_ps(inv_std[c]), vk = _mm512_set1_ps(k[c]),
                     s0 = _mm512_set1_ps(sum_dy[c]), s1 = _mm512_set1_ps(sum_dy_xhat[c]);
        // x comes from memory (the convolution's output for the whole batch): fetch two planes ahead.
        ck_prefetch_read(xc + 2 * pixels, pixels);
        for (long p = 0; p < pixels; p += 16) {
            const __mmask16 inside = tail(pixels - p);
            const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(inside, xc + p), mu), inv);
            __m512 t = _mm512_fmsub_ps(vm, _mm512_setzero_ps(), s0);
            t = _mm512_fnmadd_ps(xh, s1, t);
            _mm512_mask_storeu_ps(dxc + p, inside, _mm512_mul_ps(vk, t));
        }
        for (long o = 0; o < out_pixels; o += 16) {
            const __mmask16 inside = tail(out_pixels - o);
            const __m512i at = _mm512_maskz_loadu_epi32(inside, index + o);
            const __mmask16 keep = _mm512_mask_cmpge_epi32_mask(inside, at, _mm512_setzero_si512());
            __m512 t = _mm512_fmsub_ps(vm, _mm512_maskz_loadu_ps(keep, dp + o), s0);
            t = _mm512_fnmadd_ps(_mm512_maskz_loadu_ps(keep, xm + o), s1, t);
            _mm512_mask_i32scatter_ps(dxc, keep, at, _mm512_mul_ps(vk, t), 4);
        }
    }
}
#endif
