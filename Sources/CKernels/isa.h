#ifndef CKERNELS_ISA_H
#define CKERNELS_ISA_H
#include "ckernels.h"
// The kernel table: one per instruction set, every entry with the contract of the ck_* function of
// the same name in ckernels.h. dispatch.c picks one table at start-up (cpuid on x86-64; NEON is
// baseline on aarch64) and every ck_* arithmetic function goes through it, so no caller, in C or
// in Swift, ever asks which ISA it runs on. An entry is NULL only where the ckernels.h contract
// says the capability may be absent (implicit columns, Winograd): the exported function then
// answers "not supported" (0 floats), and the callers take their explicit path.
//
// Files: generic/reference.c (the plain C oracle every table is tested against), x86/avx2.c,
// x86/avx512*.c, arm/neon.c. The non-GEMM kernels are written once, in plain C, in
// generic/elementwise.h, and compiled into each table with that ISA's code generation; the GEMM
// driver (blocking, packing, threads) is written once in generic/gemm_driver.h around a
// micro-kernel each ISA writes for its own registers.

typedef struct ck_kernel_table {
    const char *name;  // "avx512", "avx2", "neon", "reference"

    // GEMM (the driver's blocking and summation order are the same on every table: see gemm_driver.h)
    long (*packed_a_floats)(long m, long k);
    long (*packed_b_floats)(long k, long n);
    void (*pack_a)(int transpose_a, const float *a, long lda, long m, long k, float alpha, float *out);
    void (*pack_b)(int transpose_b, const float *b, long ldb, long k, long n, float *out);
    void (*sgemm)(int transpose_a, int transpose_b, long m, long n, long k, float alpha, const float *a, long lda,
                  const float *b, long ldb, float beta, float *c, long ldc);
    void (*sgemm_packed)(long m, long n, long k, const float *a, long lda, const float *b, long ldb, float beta,
                         float *c, long ldc);

    // Convolution columns
    void (*im2col)(const ck_conv_geometry *g, const float *input, float *columns, long row_stride);
    void (*col2im_add)(const ck_conv_geometry *g, const float *columns, long row_stride, float *input_gradient);
    long (*conv_columns_floats)(const ck_conv_geometry *g);  // NULL: no implicit columns on this ISA
    void (*conv_columns_prepare)(const ck_conv_geometry *g, const float *input, float *scratch, ck_conv_columns *out);
    void (*conv_forward_gemm)(long m, long n, long k, const float *packed_a, const ck_conv_columns *cols, float beta,
                              float *c, long ldc);
    void (*conv_weight_gradient_gemm)(long m, long n, long k, const ck_conv_columns *cols, const float *packed_b,
                                      float beta, float *c, long ldc);

    // Batch normalisation
    void (*channel_shifted_sums)(const float *x, long batch, long pixels, long stride, float shift, double sums[2]);
    void (*channel_normalize)(const float *x, float *xhat, float *y, long batch, long pixels, long stride, float mean,
                              float inv_std, float gamma, float beta, int rectify);
    void (*channel_gradient_sums)(const float *dy, const float *xhat, long batch, long pixels, long stride,
                                  double sums[2]);
    void (*channel_input_gradient)(const float *dy, const float *xhat, float *dx, long batch, long pixels, long stride,
                                   float k, float m, float sum_dy, float sum_dy_xhat);

    // Pooling, and BatchNorm -> ReLU -> pooling fused
    void (*maxpool2x2)(const float *x, float *y, int *argmax, long planes, long h, long w, int rectified);
    void (*maxpool2x2_backward)(const float *dy, const int *argmax, float *dx, long planes, long h, long w);
    void (*bn_relu_maxpool2x2)(const float *x, float *y, int *argmax, float *xhat_at_max, long channels, long h,
                               long w, const float *mean, const float *inv_std, const float *gamma, const float *beta);
    void (*bn_pool_gradient_sums)(const float *dpooled, const int *argmax, const float *xhat_at_max, long batch,
                                  long out_pixels, long stride, double sums[2]);
    void (*bn_pool_input_gradient)(const float *dpooled, const int *argmax, const float *xhat_at_max, const float *x,
                                   float *dx, long channels, long h, long w, const float *mean, const float *inv_std,
                                   const float *k, float m_count, const float *sum_dy, const float *sum_dy_xhat);

    // Optimizer, dropout
    void (*adam)(float *w, const float *g, float *m, float *v, long count, float beta1, float beta2, float epsilon,
                 float lr, float wd, int decoupled, float step_size, float c2_root);
    void (*sgd)(float *w, const float *g, float *m, long count, float momentum, int nesterov, float lr, float wd);
    void (*dropout)(uint64_t key, const float *x, float *y, float *mask, long count, uint32_t threshold, float scale);

    // binary16 gradients
    void (*float_to_half)(const float *x, unsigned short *half, long count, float scale);
    void (*half_to_float)(const unsigned short *half, float *x, long count, float inverse_scale);
    void (*half_add)(const unsigned short *in, unsigned short *inout, long count);
    int (*half_has_nonfinite)(const unsigned short *half, long count);
    float (*max_abs)(const float *x, long count);

    // Winograd (NULL: this ISA has none; ck_winograd_supported answers 0)
    int (*winograd_supported)(const ck_conv_geometry *g);
    long (*winograd_weights_floats)(long m, long k, long r);
    void (*winograd_weights)(const float *w, long oc, long c, long r, int adjoint, float *out);
    long (*winograd_scratch_floats)(const ck_conv_geometry *g, long m);
    void (*winograd_conv)(const ck_conv_geometry *g, long m, const float *u, const float *input, long samples,
                          const float *bias, float *output, float *scratch);

    // The FMA ceiling: `rounds` rounds of independent FMA chains; *flops_per_round set to what one round does.
    float (*fma_chains)(long rounds, double *flops_per_round);
    // 1 when this CPU can run the table's code (checked once, by dispatch.c).
    int (*cpu_supports)(void);
} ck_kernel_table;

// Defined by the per-ISA files; a table of another architecture is not defined at all.
extern const ck_kernel_table ck_reference_kernels;
#if defined(__x86_64__)
extern const ck_kernel_table ck_avx2_kernels;
extern const ck_kernel_table ck_avx512_kernels;
#endif
#if defined(__aarch64__)
extern const ck_kernel_table ck_neon_kernels;
#endif

/// The table in use on the calling thread (dispatch.c): its own if ck_use_isa set one, else the
/// process's.
const ck_kernel_table *ck_kernels(void);
/// The tables this build carries, best first (ck_isa_name's order); NULL out of range. For the kernel tests.
const ck_kernel_table *ck_kernel_table_at(int index);
/// The calling thread's own table (NULL: the process's), and setting it: the worker pool gives each
/// job's workers the submitting thread's table for the job's duration.
const ck_kernel_table *ck_thread_kernels(void);
void ck_set_thread_kernels(const ck_kernel_table *table);
#endif
