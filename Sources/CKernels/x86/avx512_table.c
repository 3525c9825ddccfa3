// The AVX-512 table (x86-64 with AVX-512F/VL/DQ: AMD Zen 4/5, Intel server and some client CPUs):
// the hand-written kernels of x86/avx512_*.c, and for what has none (im2col and col2im of other
// strides) the plain-C kernels compiled for AVX-512.
#if defined(__x86_64__)
#include "avx512.h"
#include <immintrin.h>

#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512dq,fma,f16c"))), apply_to = function)
#include "../generic/elementwise.h"

static void avx512_im2col(const ck_conv_geometry *g, const float *input, float *columns, long row_stride) {
    if (g->stride == 1) avx512_im2col_stride1(g, input, columns, row_stride);
    else ew_im2col(g, input, columns, row_stride);
}

static void avx512_col2im_add(const ck_conv_geometry *g, const float *columns, long row_stride, float *input_gradient) {
    if (g->stride == 1) avx512_col2im_add_stride1(g, columns, row_stride, input_gradient);
    else ew_col2im_add(g, columns, row_stride, input_gradient);
}

// Sixteen independent chains of 16-lane FMAs, no memory traffic.
static float avx512_fma_chains(long rounds, double *flops_per_round) {
    __m512 acc[16];
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < 16; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
        __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]), "+v"(acc[4]), "+v"(acc[5]),
                         "+v"(acc[6]), "+v"(acc[7]), "+v"(acc[8]), "+v"(acc[9]), "+v"(acc[10]), "+v"(acc[11]),
                         "+v"(acc[12]), "+v"(acc[13]), "+v"(acc[14]), "+v"(acc[15]));
    }
    __m512 s = acc[0];
    for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, acc[i]);
    *flops_per_round = 16.0 * 16 * 2;
    return _mm512_reduce_add_ps(s);
}
#pragma clang attribute pop

static int avx512_cpu_supports(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("f16c");
}

const ck_kernel_table ck_avx512_kernels = {
    .name = "avx512",
    .packed_a_floats = avx512_packed_a_floats,
    .packed_b_floats = avx512_packed_b_floats,
    .pack_a = avx512_pack_a,
    .pack_b = avx512_pack_b,
    .sgemm = avx512_sgemm,
    .sgemm_packed = avx512_sgemm_packed,
    .im2col = avx512_im2col,
    .col2im_add = avx512_col2im_add,
    .conv_columns_floats = avx512_conv_columns_floats,
    .conv_columns_prepare = avx512_conv_columns_prepare,
    .conv_forward_gemm = avx512_conv_forward_gemm,
    .conv_weight_gradient_gemm = avx512_conv_weight_gradient_gemm,
    .channel_shifted_sums = avx512_channel_shifted_sums,
    .channel_normalize = avx512_channel_normalize,
    .channel_gradient_sums = avx512_channel_gradient_sums,
    .channel_input_gradient = avx512_channel_input_gradient,
    .maxpool2x2 = avx512_maxpool2x2,
    .maxpool2x2_backward = avx512_maxpool2x2_backward,
    .bn_relu_maxpool2x2 = avx512_bn_relu_maxpool2x2,
    .bn_pool_gradient_sums = avx512_bn_pool_gradient_sums,
    .bn_pool_input_gradient = avx512_bn_pool_input_gradient,
    .adam = avx512_adam,
    .sgd = avx512_sgd,
    .dropout = avx512_dropout,
    .float_to_half = avx512_float_to_half,
    .half_to_float = avx512_half_to_float,
    .half_add = avx512_half_add,
    .half_has_nonfinite = avx512_half_has_nonfinite,
    .max_abs = avx512_max_abs,
    .winograd_supported = avx512_winograd_supported,
    .winograd_weights_floats = avx512_winograd_weights_floats,
    .winograd_weights = avx512_winograd_weights,
    .winograd_scratch_floats = avx512_winograd_scratch_floats,
    .winograd_conv = avx512_winograd_conv,
    .fma_chains = avx512_fma_chains,
    .cpu_supports = avx512_cpu_supports,
};
#endif
