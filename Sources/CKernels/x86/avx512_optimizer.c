#if defined(__x86_64__)
#include "avx512.h"
#include <immintrin.h>

// The optimizer's element-wise updates, 16 lanes at a time, with the same operation order as the
// portable Swift loops (so the two agree to rounding of fused multiply-adds).

static inline __mmask16 tail(long count) { return count >= 16 ? 0xFFFF : (__mmask16)((1u << count) - 1); }

AVX512 void avx512_adam(float *w, const float *g, float *m, float *v, long count, float beta1, float beta2, float epsilon,
                    float lr, float wd, int decoupled, float step_size, float c2_root) {
    const __m512 b1 = _mm512_set1_ps(beta1), b2 = _mm512_set1_ps(beta2), one_b1 = _mm512_set1_ps(1 - beta1),
                 one_b2 = _mm512_set1_ps(1 - beta2), eps = _mm512_set1_ps(epsilon), decay = _mm512_set1_ps(wd),
                 shrink = _mm512_set1_ps(lr * wd), step = _mm512_set1_ps(step_size), root = _mm512_set1_ps(c2_root);
    for (long i = 0; i < count; i += 16) {
        __mmask16 k = tail(count - i);
        __m512 wi = _mm512_maskz_loadu_ps(k, w + i), gi = _mm512_maskz_loadu_ps(k, g + i);
        if (!decoupled) gi = _mm512_fmadd_ps(decay, wi, gi);
        __m512 mi = _mm512_fmadd_ps(b1, _mm512_maskz_loadu_ps(k, m + i), _mm512_mul_ps(one_b1, gi));
        __m512 vi = _mm512_fmadd_ps(b2, _mm512_maskz_loadu_ps(k, v + i), _mm512_mul_ps(_mm512_mul_ps(one_b2, gi), gi));
        if (decoupled) wi = _mm512_fnmadd_ps(shrink, wi, wi);
        __m512 denominator = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), root), eps);
        wi = _mm512_sub_ps(wi, _mm512_div_ps(_mm512_mul_ps(step, mi), denominator));
        _mm512_mask_storeu_ps(m + i, k, mi);
        _mm512_mask_storeu_ps(v + i, k, vi);
        _mm512_mask_storeu_ps(w + i, k, wi);
    }
}

AVX512 void avx512_sgd(float *w, const float *g, float *m, long count, float momentum, int nesterov, float lr, float wd) {
    const __m512 mu = _mm512_set1_ps(momentum), rate = _mm512_set1_ps(lr), decay = _mm512_set1_ps(wd);
    for (long i = 0; i < count; i += 16) {
        __mmask16 k = tail(count - i);
        __m512 wi = _mm512_maskz_loadu_ps(k, w + i);
        __m512 gi = _mm512_fmadd_ps(decay, wi, _mm512_maskz_loadu_ps(k, g + i));
        __m512 mi = _mm512_fmadd_ps(mu, _mm512_maskz_loadu_ps(k, m + i), gi);
        __m512 direction = nesterov ? _mm512_fmadd_ps(mu, mi, gi) : mi;
        _mm512_mask_storeu_ps(m + i, k, mi);
        _mm512_mask_storeu_ps(w + i, k, _mm512_fnmadd_ps(rate, direction, wi));
    }
}
#endif
