#include "ckernels.h"
#include <immintrin.h>

// The per-channel passes of batch normalisation, 16 lanes at a time with a masked tail.
#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,fma")))

static inline __mmask16 tail(long count) { return count >= 16 ? 0xFFFF : (__mmask16)((1u << count) - 1); }

AVX512 double ck_channel_sum(const float *x, long batch, long pixels, long stride) {
    double total = 0;
    for (long n = 0; n < batch; n++, x += stride) {
        __m512 acc = _mm512_setzero_ps();
        for (long p = 0; p < pixels; p += 16) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(tail(pixels - p), x + p));
        total += _mm512_reduce_add_ps(acc);
    }
    return total;
}

AVX512 double ck_channel_squared_deviations(const float *x, long batch, long pixels, long stride, float mean) {
    double total = 0;
    const __m512 mu = _mm512_set1_ps(mean);
    for (long n = 0; n < batch; n++, x += stride) {
        __m512 acc = _mm512_setzero_ps();
        for (long p = 0; p < pixels; p += 16) {
            __mmask16 m = tail(pixels - p);
            __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + p), mu);
            acc = _mm512_fmadd_ps(d, d, acc);
        }
        total += _mm512_reduce_add_ps(acc);
    }
    return total;
}

AVX512 void ck_channel_shifted_sums(const float *x, long batch, long pixels, long stride, float shift, double sums[2]) {
    double s0 = 0, s1 = 0;
    const __m512 k = _mm512_set1_ps(shift);
    for (long n = 0; n < batch; n++, x += stride) {
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

AVX512 void ck_channel_normalize(const float *x, float *xhat, float *y, long batch, long pixels, long stride,
                                 float mean, float inv_std, float gamma, float beta, int rectify) {
    const __m512 mu = _mm512_set1_ps(mean), inv = _mm512_set1_ps(inv_std), g = _mm512_set1_ps(gamma),
                 b = _mm512_set1_ps(beta);
    for (long n = 0; n < batch; n++, x += stride, xhat += stride, y += stride) {
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

AVX512 void ck_channel_gradient_sums(const float *dy, const float *xhat, long batch, long pixels, long stride,
                                     double sums[2]) {
    double s0 = 0, s1 = 0;
    for (long n = 0; n < batch; n++, dy += stride, xhat += stride) {
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

AVX512 void ck_channel_input_gradient(const float *dy, const float *xhat, float *dx, long batch, long pixels,
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
