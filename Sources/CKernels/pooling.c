#include "ckernels.h"
#include <immintrin.h>

// 2 x 2, stride 2 max pooling: two input rows give 16 outputs per step; even and odd columns are
// separated with one permute each, and the argmax follows the maximum with the same masks.
#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,fma")))

static inline __mmask16 tail(long count) {
    return count <= 0 ? 0 : count >= 16 ? 0xFFFF : (__mmask16)((1u << count) - 1);
}

AVX512 void ck_maxpool2x2(const float *x, float *y, int *argmax, long planes, long h, long w) {
    const long oh = h / 2, ow = w / 2;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i lane2 = even;  // 2 * lane
    for (long plane = 0; plane < planes; plane++) {
        const float *source = x + plane * h * w;
        float *target = y + plane * oh * ow;
        int *index = argmax + plane * oh * ow;
        for (long oy = 0; oy < oh; oy++) {
            const float *top = source + 2 * oy * w, *bottom = top + w;
            for (long ox0 = 0; ox0 < ow; ox0 += 16) {
                const __mmask16 out = tail(ow - ox0), lo = tail(2 * (ow - ox0)), hi = tail(2 * (ow - ox0) - 16);
                const __m512 t0 = _mm512_maskz_loadu_ps(lo, top + 2 * ox0), t1 = _mm512_maskz_loadu_ps(hi, top + 2 * ox0 + 16);
                const __m512 b0 = _mm512_maskz_loadu_ps(lo, bottom + 2 * ox0), b1 = _mm512_maskz_loadu_ps(hi, bottom + 2 * ox0 + 16);
                const __m512 a = _mm512_permutex2var_ps(t0, even, t1), b = _mm512_permutex2var_ps(t0, odd, t1);
                const __m512 c = _mm512_permutex2var_ps(b0, even, b1), d = _mm512_permutex2var_ps(b0, odd, b1);
                __m512i at = _mm512_add_epi32(_mm512_set1_epi32((int)(2 * oy * w + 2 * ox0)), lane2);
                __m512 best = a;
                __mmask16 m = _mm512_cmp_ps_mask(b, best, _CMP_GT_OQ);
                best = _mm512_mask_blend_ps(m, best, b);
                __m512i candidate = _mm512_add_epi32(at, _mm512_set1_epi32(1));
                __m512i bestAt = _mm512_mask_blend_epi32(m, at, candidate);
                m = _mm512_cmp_ps_mask(c, best, _CMP_GT_OQ);
                best = _mm512_mask_blend_ps(m, best, c);
                candidate = _mm512_add_epi32(at, _mm512_set1_epi32((int)w));
                bestAt = _mm512_mask_blend_epi32(m, bestAt, candidate);
                m = _mm512_cmp_ps_mask(d, best, _CMP_GT_OQ);
                best = _mm512_mask_blend_ps(m, best, d);
                candidate = _mm512_add_epi32(at, _mm512_set1_epi32((int)w + 1));
                bestAt = _mm512_mask_blend_epi32(m, bestAt, candidate);
                _mm512_mask_storeu_ps(target + oy * ow + ox0, out, best);
                _mm512_mask_storeu_epi32(index + oy * ow + ox0, out, bestAt);
            }
        }
    }
}
