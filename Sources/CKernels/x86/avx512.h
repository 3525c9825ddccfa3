#ifndef CKERNELS_AVX512_H
#define CKERNELS_AVX512_H
#include "../isa.h"
// The hand-written AVX-512 kernels (x86/avx512_*.c), each with the contract of the ck_* function of
// the same name; x86/avx512_table.c puts them in ck_avx512_kernels.
#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,fma")))

long avx512_packed_a_floats(long m, long k);
long avx512_packed_b_floats(long k, long n);
void avx512_pack_a(int transpose_a, const float *a, long lda, long m, long k, float alpha, float *out);
void avx512_pack_b(int transpose_b, const float *b, long ldb, long k, long n, float *out);
void avx512_sgemm(int transpose_a, int transpose_b, long m, long n, long k, float alpha, const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc);
void avx512_sgemm_packed(long m, long n, long k, const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc);
long avx512_conv_columns_floats(const ck_conv_geometry *g);
void avx512_conv_columns_prepare(const ck_conv_geometry *g, const float *input, float *scratch, ck_conv_columns *out);
void avx512_conv_forward_gemm(long m, long n, long k, const float *packed_a, const ck_conv_columns *cols, float beta, float *c, long ldc);
void avx512_conv_weight_gradient_gemm(long m, long n, long k, const ck_conv_columns *cols, const float *packed_b, float beta, float *c, long ldc);
void avx512_channel_shifted_sums(const float *x, long batch, long pixels, long stride, float shift, double sums[2]);
void avx512_channel_normalize(const float *x, float *xhat, float *y, long batch, long pixels, long stride, float mean, float inv_std, float gamma, float beta, int rectify);
void avx512_channel_gradient_sums(const float *dy, const float *xhat, long batch, long pixels, long stride, double sums[2]);
void avx512_channel_input_gradient(const float *dy, const float *xhat, float *dx, long batch, long pixels, long stride, float k, float m, float sum_dy, float sum_dy_xhat);
void avx512_maxpool2x2(const float *x, float *y, int *argmax, long planes, long h, long w, int rectified);
void avx512_maxpool2x2_backward(const float *dy, const int *argmax, float *dx, long planes, long h, long w);
void avx512_bn_relu_maxpool2x2(const float *x, float *y, int *argmax, float *xhat_at_max, long channels, long h, long w, const float *mean, const float *inv_std, const float *gamma, const float *beta);
void avx512_bn_pool_gradient_sums(const float *dpooled, const int *argmax, const float *xhat_at_max, long batch, long out_pixels, long stride, double sums[2]);
void avx512_bn_pool_input_gradient(const float *dpooled, const int *argmax, const float *xhat_at_max, const float *x, float *dx, long channels, long h, long w, const float *mean, const float *inv_std, const float *k, float m_count, const float *sum_dy, const float *sum_dy_xhat);
void avx512_adam(float *w, const float *g, float *m, float *v, long count, float beta1, float beta2, float epsilon, float lr, float wd, int decoupled, float step_size, float c2_root);
void avx512_sgd(float *w, const float *g, float *m, long count, float momentum, int nesterov, float lr, float wd);
void avx512_dropout(uint64_t key, const float *x, float *y, float *mask, long count, uint32_t threshold, float scale);
void avx512_float_to_half(const float *x, unsigned short *half, long count, float scale);
void avx512_half_to_float(const unsigned short *half, float *x, long count, float inverse_scale);
void avx512_half_add(const unsigned short *in, unsigned short *inout, long count);
int avx512_half_has_nonfinite(const unsigned short *half, long count);
float avx512_max_abs(const float *x, long count);
int avx512_winograd_supported(const ck_conv_geometry *g);
long avx512_winograd_weights_floats(long m, long k, long r);
void avx512_winograd_weights(const float *w, long oc, long c, long r, int adjoint, float *out);
long avx512_winograd_scratch_floats(const ck_conv_geometry *g, long m);
void avx512_winograd_conv(const ck_conv_geometry *g, long m, const float *u, const float *input, long samples, const float *bias, float *output, float *scratch);
void avx512_im2col_stride1(const ck_conv_geometry *g, const float *input, float *columns, long row_stride);
void avx512_col2im_add_stride1(const ck_conv_geometry *g, const float *columns, long row_stride, float *input_gradient);
#endif
