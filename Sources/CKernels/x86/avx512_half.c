#if defined(__x86_64__)
#include "avx512.h"
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>


static inline uint32_t bits_of(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float float_of(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

// Portable conversions (the AVX-512 paths use the hardware's, which round the same way).
static unsigned short to_half(float value) {
    uint32_t u = bits_of(value);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t magnitude = u & 0x7FFFFFFFu;
    if (magnitude >= 0x7F800000u) return (unsigned short)(sign | 0x7C00u | (magnitude > 0x7F800000u ? 0x200u : 0));
    if (magnitude >= 0x477FF000u) return (unsigned short)(sign | 0x7C00u);  // rounds past 65504: infinity
    if (magnitude < 0x38800000u) {  // below the smallest normal half: a subnormal or zero
        if (magnitude < 0x33000000u) return (unsigned short)sign;
        uint32_t mantissa = (magnitude & 0x7FFFFFu) | 0x800000u;
        // value = mantissa * 2^(E - 150) = k * 2^-24, so k = mantissa >> (126 - E), rounded.
        int shift = 126 - (int)(magnitude >> 23);
        uint32_t kept = mantissa >> shift;
        uint32_t rest = mantissa & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rest > half || (rest == half && (kept & 1))) kept++;
        return (unsigned short)(sign | kept);
    }
    uint32_t rounded = magnitude - 0x38000000u;  // rebias the exponent (127 -> 15)
    uint32_t kept = rounded >> 13, rest = rounded & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (kept & 1))) kept++;
    return (unsigned short)(sign | kept);
}

static float from_half(unsigned short h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
    if (exponent == 0) {
        float value = (float)mantissa * 5.9604644775390625e-8f;  // 2^-24
        return sign ? -value : value;
    }
    if (exponent == 31) return float_of(sign | 0x7F800000u | (mantissa << 13));
    return float_of(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

static inline __mmask16 tail(long count) { return count >= 16 ? 0xFFFF : (__mmask16)((1u << count) - 1); }

// Whole runs of 16 with the hardware conversions; the caller does the tail with the portable code.
AVX512 static long float_to_half_avx512(const float *x, unsigned short *half, long count, float scale) {
    const __m512 s = _mm512_set1_ps(scale);
    long i = 0;
    for (; i + 16 <= count; i += 16) {
        __m256i h = _mm512_cvtps_ph(_mm512_mul_ps(_mm512_loadu_ps(x + i), s), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_si256((__m256i *)(half + i), h);
    }
    return i;
}

AVX512 static long half_to_float_avx512(const unsigned short *half, float *x, long count, float inverse_scale) {
    const __m512 s = _mm512_set1_ps(inverse_scale);
    long i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512 v = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(half + i)));
        _mm512_storeu_ps(x + i, _mm512_mul_ps(v, s));
    }
    return i;
}

AVX512 static long half_add_avx512(const unsigned short *in, unsigned short *inout, long count) {
    long i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(in + i)));
        __m512 b = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(inout + i)));
        _mm256_storeu_si256((__m256i *)(inout + i), _mm512_cvtps_ph(_mm512_add_ps(a, b), _MM_FROUND_TO_NEAREST_INT));
    }
    return i;
}

AVX512 static float max_abs_avx512(const float *x, long count) {
    __m512 best = _mm512_setzero_ps();
    for (long i = 0; i < count; i += 16) best = _mm512_max_ps(best, _mm512_abs_ps(_mm512_maskz_loadu_ps(tail(count - i), x + i)));
    return _mm512_reduce_max_ps(best);
}

void avx512_float_to_half(const float *x, unsigned short *half, long count, float scale) {
    long i = float_to_half_avx512(x, half, count, scale);
    for (; i < count; i++) half[i] = to_half(x[i] * scale);
}

void avx512_half_to_float(const unsigned short *half, float *x, long count, float inverse_scale) {
    long i = half_to_float_avx512(half, x, count, inverse_scale);
    for (; i < count; i++) x[i] = from_half(half[i]) * inverse_scale;
}

void avx512_half_add(const unsigned short *in, unsigned short *inout, long count) {
    long i = half_add_avx512(in, inout, count);
    for (; i < count; i++) inout[i] = to_half(from_half(in[i]) + from_half(inout[i]));
}

int avx512_half_has_nonfinite(const unsigned short *half, long count) {
    for (long i = 0; i < count; i++) {
        if ((half[i] & 0x7C00u) == 0x7C00u) return 1;
    }
    return 0;
}

float avx512_max_abs(const float *x, long count) {
    return max_abs_avx512(x, count);
}
#endif
