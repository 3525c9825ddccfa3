#ifndef CKERNELS_H
#define CKERNELS_H
#include <stddef.h>
// Own x86-64 AVX-512 GEMM and a small worker pool. Swift cannot yet emit AVX-512 code for one
// function chosen at run time, so the kernels live in C with per-function target attributes and
// a run-time CPU check; everything else (and every other CPU) stays on OpenBLAS.

/// 1 when this CPU and OS run AVX-512F code (checked once).
int ck_has_avx512(void);

/// Threads used by ck_sgemm and ck_parallel_for, the calling thread included (>= 1).
void ck_set_threads(int count);
int ck_threads(void);

/// Row-major C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C; beta == 0 never reads C.
/// Requires ck_has_avx512(). Each element of C is summed in the same order for any thread
/// count, so results do not depend on ck_threads().
void ck_sgemm(int transpose_a, int transpose_b, long m, long n, long k, float alpha,
              const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc);

/// Calls body(context, i) for i in 0..<count spread over ck_threads() threads; returns when all are done.
void ck_parallel_for(long count, void (*body)(void *context, long index), void *context);
/// Geometry of one convolution input (C, H, W) with a square kernel; output OH x OW.
typedef struct {
    long channels, height, width, kernel, stride, padding, output_height, output_width;
} ck_conv_geometry;

/// im2col of one sample for stride 1 (requires ck_has_avx512()): columns row (c*K + ky)*K + kx,
/// column oy*OW + ox, rows `row_stride` floats apart; zero where the window leaves the image.
void ck_im2col_stride1(const ck_conv_geometry *g, const float *input, float *columns, long row_stride);

/// The adjoint of ck_im2col_stride1: adds every column entry into the input gradient.
void ck_col2im_add_stride1(const ck_conv_geometry *g, const float *columns, long row_stride, float *input_gradient);
#endif
