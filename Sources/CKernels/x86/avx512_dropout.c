#if defined(__x86_64__)
#include "avx512.h"
#include <immintrin.h>

// Dropout's mask, 16 elements (8 draws of KeyedRandom) at a time: the same draws, the same
// thresholds and the same products as the Swift loop in Dropout.forward, so both give the same bits.

static const uint64_t golden = 0x9E3779B97F4A7C15ull;

AVX512 static inline __m512i finalize(__m512i z) {  // SplitMix64's finaliser, as splitMixFinalize
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ull));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), _mm512_set1_epi64((long long)0x94D049BB133111EBull));
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

AVX512 void avx512_dropout(uint64_t key, const float *x, float *y, float *mask, long count, uint32_t threshold, float scale) {
    const __m512i lanes = _mm512_setr_epi64(1, 2, 3, 4, 5, 6, 7, 8), low24 = _mm512_set1_epi32(0xFFFFFF);
    const __m512i limit = _mm512_set1_epi32((int)threshold), step = _mm512_set1_epi64((long long)(8 * golden));
    const __m512 kept = _mm512_set1_ps(scale);
    // Draw n (from 1) is finalize(key + n * golden); its low and high 32 bits, each cut to 24, decide
    // elements 2(n-1) and 2(n-1)+1: exactly the two 32-bit halves of each 64-bit lane, in order.
    __m512i state = _mm512_add_epi64(_mm512_set1_epi64((long long)key),
                                     _mm512_mullo_epi64(lanes, _mm512_set1_epi64((long long)golden)));
    for (long i = 0; i < count; i += 16) {
        const __mmask16 inside = count - i >= 16 ? 0xFFFF : (__mmask16)((1u << (count - i)) - 1);
        const __m512i bits = _mm512_and_si512(finalize(state), low24);
        const __m512 m = _mm512_maskz_mov_ps(_mm512_cmplt_epu32_mask(bits, limit), kept);
        _mm512_mask_storeu_ps(mask + i, inside, m);
        _mm512_mask_storeu_ps(y + i, inside, _mm512_mul_ps(_mm512_maskz_loadu_ps(inside, x + i), m));
        state = _mm512_add_epi64(state, step);
    }
}
#endif
