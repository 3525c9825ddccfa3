#if defined(__x86_64__)
#include "avx512.h"
#include <immintrin.h>
#include <string.h>

// Stride-1 im2col and its adjoint with masked AVX-512 loads and stores. Where a window leaves
// the image the lane is masked off (masked lanes are never read), so each row of 16 outputs is one
// load and one store; the masks depend only on kx and the 16-column chunk, so they are computed
// once per kx, not per row.
enum { max_chunks = 16 };  // rows up to 256 wide; wider ones take the per-row mask path

static inline __mmask16 lanes(long from, long to) {  // bits [from, to) of a 16-lane mask
    if (to <= from || to <= 0 || from >= 16) return 0;
    unsigned full = to >= 16 ? 0xFFFFu : (1u << to) - 1;
    unsigned low = from <= 0 ? 0 : (1u << from) - 1;
    return (__mmask16)(full & ~low);
}

AVX512 static inline void zero_row(float *out, long count) {
    for (long x0 = 0; x0 < count; x0 += 16) _mm512_mask_storeu_ps(out + x0, lanes(0, count - x0), _mm512_setzero_ps());
}

AVX512 void avx512_im2col_stride1(const ck_conv_geometry *g, const float *input, float *columns, long row_stride) {
    const long k = g->kernel, oh = g->output_height, ow = g->output_width, h = g->height, w = g->width,
               pad = g->padding, chunks = (ow + 15) / 16;
    __mmask16 store[max_chunks], load[max_chunks];
    for (long c = 0; c < g->channels; c++) {
        const float *plane = input + c * h * w;
        for (long ky = 0; ky < k; ky++) {
            // Output rows whose input row oy + ky - pad is inside the image (none, when the
            // padding exceeds the whole output: oy_lo is then clamped to oh).
            const long oy_lo = pad - ky > 0 ? (pad - ky < oh ? pad - ky : oh) : 0;
            const long oy_hi = h + pad - ky < oh ? h + pad - ky : oh;
            for (long kx = 0; kx < k; kx++) {
                float *row = columns + ((c * k + ky) * k + kx) * row_stride;
                // Input column of output column ox is ox + kx - pad; valid ox in [lo, hi).
                const long lo = pad - kx > 0 ? pad - kx : 0;
                const long hi = w + pad - kx < ow ? w + pad - kx : ow;
                for (long j = 0; j < chunks && j < max_chunks; j++) {
                    store[j] = lanes(0, ow - 16 * j);
                    load[j] = lanes(lo - 16 * j, hi - 16 * j) & store[j];
                }
                long oy = 0;
                for (; oy < oy_lo; oy++) zero_row(row + oy * ow, ow);
                const float *source = plane + (oy + ky - pad) * w + kx - pad;
                if (chunks == 1) {
                    for (; oy < oy_hi; oy++, source += w)
                        _mm512_mask_storeu_ps(row + oy * ow, store[0], _mm512_maskz_loadu_ps(load[0], source));
                } else {
                    for (; oy < oy_hi; oy++, source += w) {
                        float *out = row + oy * ow;
                        for (long j = 0; j < chunks; j++) {
                            __mmask16 s = j < max_chunks ? store[j] : lanes(0, ow - 16 * j);
                            __mmask16 l = j < max_chunks ? load[j] : lanes(lo - 16 * j, hi - 16 * j) & s;
                            _mm512_mask_storeu_ps(out + 16 * j, s, _mm512_maskz_loadu_ps(l, source + 16 * j));
                        }
                    }
                }
                for (; oy < oh; oy++) zero_row(row + oy * ow, ow);
            }
        }
    }
}

// Gathers instead of scattering: each 16-pixel run of an input row sums, in registers, every
// column entry that maps onto it, then is stored once. Scattering (load, add, store per column row)
// makes each store feed a load shifted by one float, which stalls store forwarding.
AVX512 void avx512_col2im_add_stride1(const ck_conv_geometry *g, const float *columns, long row_stride,
                                  float *input_gradient) {
    const long k = g->kernel, oh = g->output_height, ow = g->output_width, h = g->height, w = g->width,
               pad = g->padding, chunks = (w + 15) / 16;
    for (long c = 0; c < g->channels; c++) {
        float *plane = input_gradient + c * h * w;
        for (long iy = 0; iy < h; iy++) {
            float *target = plane + iy * w;
            for (long j = 0; j < chunks; j++) {
                const long x0 = 16 * j;
                const __mmask16 inside = lanes(0, w - x0);
                __m512 sum = _mm512_maskz_loadu_ps(inside, target + x0);
                for (long ky = 0; ky < k; ky++) {
                    const long oy = iy + pad - ky;
                    if (oy < 0 || oy >= oh) continue;
                    for (long kx = 0; kx < k; kx++) {
                        // Input column x comes from output column x + pad - kx, if that is in [0, ow).
                        const long shift = pad - kx;
                        const __mmask16 m = lanes(-shift - x0, ow - shift - x0) & inside;
                        const float *source = columns + ((c * k + ky) * k + kx) * row_stride + oy * ow + x0 + shift;
                        sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(m, source));
                    }
                }
                _mm512_mask_storeu_ps(target + x0, inside, sum);
            }
        }
    }
}


// Implicit columns: with the padding in memory, output pixel p = oy*OW + ox of kernel offset
// (ky, kx) reads padded[(oy + ky)*Wp + ox + kx] = base(ky, kx) + p + (K - 1)*oy, so 16 consecutive
// output pixels come from one 32-float window of the padded plane, picked out by one two-source
// permute whose indices depend only on the 16-pixel chunk (the GEMMs in gemm.c do that). No masks
// and no edge cases.
enum { padded_max_chunks = 256 };

static int padded_fits(const ck_conv_geometry *g, long *chunks_out) {
    const long ow = g->output_width, pixels = g->output_height * ow, chunks = (pixels + 15) / 16;
    if (g->stride != 1 || chunks > padded_max_chunks) return 0;
    for (long j = 0; j < chunks; j++) {
        const long first = 16 * j, last = first + 15 < pixels ? first + 15 : pixels - 1;
        if (15 + (g->kernel - 1) * (last / ow - first / ow) >= 32) return 0;
    }
    *chunks_out = chunks;
    return 1;
}

// Floats of the padded copy, with slack after it for the furthest 32-float window; 0 when the
// geometry does not fit.
static long padded_floats(const ck_conv_geometry *g) {
    long chunks;
    if (!padded_fits(g, &chunks)) return 0;
    const long hp = g->height + 2 * g->padding, wp = g->width + 2 * g->padding, k = g->kernel;
    const long ow = g->output_width, last = 16 * (chunks - 1);
    // The last plane's furthest read: base (K-1)*(Wp+1), chunk offset, a 32-float window.
    const long furthest = (k - 1) * (wp + 1) + last + (k - 1) * (last / ow) + 32;
    const long slack = furthest > hp * wp ? furthest - hp * wp : 0;
    return (g->channels * hp * wp + slack + 15) / 16 * 16;
}

long avx512_conv_columns_floats(const ck_conv_geometry *g) {
    const long padded = padded_floats(g);
    if (padded == 0) return 0;
    const long pixels = g->output_height * g->output_width, chunks = (pixels + 15) / 16;
    const long ints = g->channels * g->kernel * g->kernel + pixels + chunks + 16 * chunks;
    return padded + (ints + 15) / 16 * 16;
}

void avx512_conv_columns_prepare(const ck_conv_geometry *g, const float *input, float *scratch, ck_conv_columns *out) {
    const long copy = padded_floats(g);
    const long k = g->kernel, h = g->height, w = g->width, pad = g->padding, hp = h + 2 * pad, wp = w + 2 * pad,
               ow = g->output_width, pixels = g->output_height * ow, chunks = (pixels + 15) / 16,
               rows = g->channels * k * k;
    memset(scratch, 0, sizeof(float) * (size_t)copy);
    for (long c = 0; c < g->channels; c++) {
        for (long y = 0; y < h; y++) {
            memcpy(scratch + (c * hp + y + pad) * wp + pad, input + (c * h + y) * w, sizeof(float) * (size_t)w);
        }
    }
    int *row_base = (int *)(scratch + copy), *pixel_offset = row_base + rows,
        *chunk_offset = pixel_offset + pixels, *chunk_index = chunk_offset + chunks;
    for (long c = 0; c < g->channels; c++) {
        for (long ky = 0; ky < k; ky++) {
            for (long kx = 0; kx < k; kx++) row_base[(c * k + ky) * k + kx] = (int)((c * hp + ky) * wp + kx);
        }
    }
    for (long p = 0; p < pixels; p++) pixel_offset[p] = (int)(p + (k - 1) * (p / ow));
    for (long j = 0; j < chunks; j++) {
        chunk_offset[j] = pixel_offset[16 * j];
        for (long l = 0; l < 16; l++) {
            const long p = 16 * j + l < pixels ? 16 * j + l : pixels - 1;
            chunk_index[16 * j + l] = pixel_offset[p] - chunk_offset[j];
        }
    }
    out->padded = scratch;
    out->row_base = row_base;
    out->pixel_offset = pixel_offset;
    out->chunk_offset = chunk_offset;
    out->chunk_index = chunk_index;
}
#endif
