#if defined(__x86_64__)
#include "avx512.h"
#include <immintrin.h>
#include "prefetch.h"
#include <string.h>

// 2 x 2, stride 2 max pooling: two input rows give 16 outputs per step; even and odd columns are
// separated with one permute each, and the argmax follows the maximum with the same masks.

static inline __mmask16 tail(long count) {
    return count <= 0 ? 0 : count >= 16 ? 0xFFFF : (__mmask16)((1u << count) - 1);
}

// The pooling of `planes` planes; with normalize != 0, each input value first becomes
// max(0, gamma * ((v - mean) * inv_std) + beta), with the per-plane values given (batch
// normalisation and a ReLU applied on the fly, as ck_channel_normalize computes them), and the
// x-hat of each window's maximum is written to xhat_at_max for backward.
AVX512 static inline __attribute__((always_inline)) void pool_planes(
        const float *x, float *y, int *argmax, long planes, long h, long w, int rectified, int normalize,
        const float *mean, const float *inv_std, const float *gamma, const float *beta, float *xhat_at_max) {
    const long oh = h / 2, ow = w / 2;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i lane2 = even;  // 2 * lane
    for (long plane = 0; plane < planes; plane++) {
        const float *source = x + plane * h * w;
        // The planes come from memory (a convolution's output for the whole batch): two ahead.
        ck_prefetch_read(source + 2 * h * w, h * w);
        float *target = y + plane * oh * ow;
        int *index = argmax + plane * oh * ow;
        __m512 mu = _mm512_setzero_ps(), inv = mu, g = mu, bt = mu;
        if (normalize) {
            mu = _mm512_set1_ps(mean[plane]);
            inv = _mm512_set1_ps(inv_std[plane]);
            g = _mm512_set1_ps(gamma[plane]);
            bt = _mm512_set1_ps(beta[plane]);
        }
#define XHAT(v) _mm512_mul_ps(_mm512_sub_ps((v), mu), inv)
#define PREPARE(v) _mm512_max_ps(_mm512_setzero_ps(), _mm512_fmadd_ps(g, (v), bt))
        for (long oy = 0; oy < oh; oy++) {
            const float *top = source + 2 * oy * w, *bottom = top + w;
            for (long ox0 = 0; ox0 < ow; ox0 += 16) {
                const __mmask16 out = tail(ow - ox0), lo = tail(2 * (ow - ox0)), hi = tail(2 * (ow - ox0) - 16);
                __m512 t0 = _mm512_maskz_loadu_ps(lo, top + 2 * ox0), t1 = _mm512_maskz_loadu_ps(hi, top + 2 * ox0 + 16);
                __m512 b0 = _mm512_maskz_loadu_ps(lo, bottom + 2 * ox0), b1 = _mm512_maskz_loadu_ps(hi, bottom + 2 * ox0 + 16);
                __m512 ha = _mm512_setzero_ps(), hb = ha, hc = ha, hd = ha;  // x-hat of a, b, c, d
                if (normalize) {
                    t0 = XHAT(t0); t1 = XHAT(t1); b0 = XHAT(b0); b1 = XHAT(b1);
                    ha = _mm512_permutex2var_ps(t0, even, t1); hb = _mm512_permutex2var_ps(t0, odd, t1);
                    hc = _mm512_permutex2var_ps(b0, even, b1); hd = _mm512_permutex2var_ps(b0, odd, b1);
                    t0 = PREPARE(t0); t1 = PREPARE(t1); b0 = PREPARE(b0); b1 = PREPARE(b1);
                }
                const __m512 a = _mm512_permutex2var_ps(t0, even, t1), b = _mm512_permutex2var_ps(t0, odd, t1);
                const __m512 c = _mm512_permutex2var_ps(b0, even, b1), d = _mm512_permutex2var_ps(b0, odd, b1);
                __m512 best_xhat = ha;
                __m512i at = _mm512_add_epi32(_mm512_set1_epi32((int)(2 * oy * w + 2 * ox0)), lane2);
                __m512 best = a;
                __mmask16 m = _mm512_cmp_ps_mask(b, best, _CMP_GT_OQ);
                best = _mm512_mask_blend_ps(m, best, b);
                best_xhat = _mm512_mask_blend_ps(m, best_xhat, hb);
                __m512i candidate = _mm512_add_epi32(at, _mm512_set1_epi32(1));
                __m512i bestAt = _mm512_mask_blend_epi32(m, at, candidate);
                m = _mm512_cmp_ps_mask(c, best, _CMP_GT_OQ);
                best = _mm512_mask_blend_ps(m, best, c);
                best_xhat = _mm512_mask_blend_ps(m, best_xhat, hc);
                candidate = _mm512_add_epi32(at, _mm512_set1_epi32((int)w));
                bestAt = _mm512_mask_blend_epi32(m, bestAt, candidate);
                m = _mm512_cmp_ps_mask(d, best, _CMP_GT_OQ);
                best = _mm512_mask_blend_ps(m, best, d);
                best_xhat = _mm512_mask_blend_ps(m, best_xhat, hd);
                candidate = _mm512_add_epi32(at, _mm512_set1_epi32((int)w + 1));
                bestAt = _mm512_mask_blend_epi32(m, bestAt, candidate);
                if (normalize) _mm512_mask_storeu_ps(xhat_at_max + plane * oh * ow + oy * ow + ox0, out, best_xhat);
                if (rectified) {  // no gradient through a window whose maximum a ReLU set to 0
                    __mmask16 positive = _mm512_cmp_ps_mask(best, _mm512_setzero_ps(), _CMP_GT_OQ);
                    bestAt = _mm512_mask_blend_epi32(positive, _mm512_xor_si512(bestAt, _mm512_set1_epi32(-1)), bestAt);
                    if (rectified == 2) best = _mm512_maskz_mov_ps(positive, best);  // the ReLU itself
                }
                _mm512_mask_storeu_ps(target + oy * ow + ox0, out, best);
                _mm512_mask_storeu_epi32(index + oy * ow + ox0, out, bestAt);
            }
        }
#undef PREPARE
#undef XHAT
    }
}


AVX512 void avx512_maxpool2x2(const float *x, float *y, int *argmax, long planes, long h, long w, int rectified) {
    pool_planes(x, y, argmax, planes, h, w, rectified, 0, 0, 0, 0, 0, 0);
}

AVX512 void avx512_bn_relu_maxpool2x2(const float *x, float *y, int *argmax, float *xhat_at_max, long channels, long h,
                                  long w, const float *mean, const float *inv_std, const float *gamma, const float *beta) {
    pool_planes(x, y, argmax, channels, h, w, 1, 1, mean, inv_std, gamma, beta, xhat_at_max);
}

// The adjoint: dx is cleared, then each output's gradient is scattered to its window's argmax, 16
// at a time; a window the forward pass marked (negative index ~argmax) is masked off. (A scalar
// loop branches on the mark, which is as unpredictable as the ReLU's sign.)
AVX512 void avx512_maxpool2x2_backward(const float *dy, const int *argmax, float *dx, long planes, long h, long w) {
    const long out_plane = (h / 2) * (w / 2), in_plane = h * w;
    memset(dx, 0, sizeof(float) * (size_t)(planes * in_plane));
    for (long plane = 0; plane < planes; plane++) {
        const float *gradient = dy + plane * out_plane;
        const int *index = argmax + plane * out_plane;
        float *target = dx + plane * in_plane;
        for (long o = 0; o < out_plane; o += 16) {
            const __mmask16 inside = tail(out_plane - o);
            const __m512i at = _mm512_maskz_loadu_epi32(inside, index + o);
            const __mmask16 keep = _mm512_mask_cmpge_epi32_mask(inside, at, _mm512_setzero_si512());
            _mm512_mask_i32scatter_ps(target, keep, at, _mm512_maskz_loadu_ps(inside, gradient + o), 4);
        }
    }
}
#endif
