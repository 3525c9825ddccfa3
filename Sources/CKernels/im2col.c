#include "ckernels.h"
#include <immintrin.h>

// Stride-1 im2col and its adjoint with masked AVX-512 loads and stores: a window row that
// leaves the image becomes a masked-off lane (masked lanes are never read), so each output row
// is one or two vector operations instead of a copy call and padding fills.
#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,fma")))

static inline __mmask16 lanes(long from, long to) {  // bits [from, to) of a 16-lane mask
    if (to <= from || to <= 0 || from >= 16) return 0;
    unsigned full = to >= 16 ? 0xFFFFu : (1u << to) - 1;
    unsigned low = from <= 0 ? 0 : (1u << from) - 1;
    return (__mmask16)(full & ~low);
}

AVX512 void ck_im2col_stride1(const ck_conv_geometry *g, const float *input, float *columns, long row_stride) {
    const long k = g->kernel, oh = g->output_height, ow = g->output_width, h = g->height, w = g->width,
               pad = g->padding;
    for (long c = 0; c < g->channels; c++) {
        const float *plane = input + c * h * w;
        for (long ky = 0; ky < k; ky++) {
            for (long kx = 0; kx < k; kx++) {
                float *row = columns + ((c * k + ky) * k + kx) * row_stride;
                // Input column of output column ox is ox + kx - pad; valid ox in [lo, hi).
                const long lo = pad - kx > 0 ? pad - kx : 0;
                const long hi = w + pad - kx < ow ? w + pad - kx : ow;
                for (long oy = 0; oy < oh; oy++) {
                    float *out = row + oy * ow;
                    const long iy = oy + ky - pad;
                    const int inside = iy >= 0 && iy < h;
                    const float *source = plane + iy * w + kx - pad;
                    for (long x0 = 0; x0 < ow; x0 += 16) {
                        __mmask16 store = lanes(0, ow - x0);
                        __mmask16 load = inside ? lanes(lo - x0, hi - x0) & store : 0;
                        _mm512_mask_storeu_ps(out + x0, store, _mm512_maskz_loadu_ps(load, source + x0));
                    }
                }
            }
        }
    }
}

AVX512 void ck_col2im_add_stride1(const ck_conv_geometry *g, const float *columns, long row_stride,
                                  float *input_gradient) {
    const long k = g->kernel, oh = g->output_height, ow = g->output_width, h = g->height, w = g->width,
               pad = g->padding;
    for (long c = 0; c < g->channels; c++) {
        float *plane = input_gradient + c * h * w;
        for (long ky = 0; ky < k; ky++) {
            for (long kx = 0; kx < k; kx++) {
                const float *row = columns + ((c * k + ky) * k + kx) * row_stride;
                const long lo = pad - kx > 0 ? pad - kx : 0;
                const long hi = w + pad - kx < ow ? w + pad - kx : ow;
                for (long oy = 0; oy < oh; oy++) {
                    const long iy = oy + ky - pad;
                    if (iy < 0 || iy >= h) continue;
                    const float *source = row + oy * ow;
                    float *target = plane + iy * w + kx - pad;
                    for (long x0 = 0; x0 < ow; x0 += 16) {
                        __mmask16 m = lanes(lo - x0, hi - x0);
                        if (!m) continue;
                        __m512 sum = _mm512_add_ps(_mm512_maskz_loadu_ps(m, target + x0), _mm512_maskz_loadu_ps(m, source + x0));
                        _mm512_mask_storeu_ps(target + x0, m, sum);
                    }
                }
            }
        }
    }
}
