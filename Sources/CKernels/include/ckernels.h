#ifndef CKERNELS_H
#define CKERNELS_H
#include <stddef.h>
#include <stdint.h>
// The arithmetic of training, per instruction set: AVX-512 and AVX2+FMA on x86-64 (one binary,
// chosen from cpuid), NEON on aarch64, and a plain C reference everywhere. One kernel table is
// picked once, at the first call (Sources/CKernels/dispatch.c); every function below goes through
// it, so callers never ask which ISA runs. Every table obeys the contracts stated here, and its
// results do not depend on the thread count or on a sample's position in the batch.

/// The kernel set in use: "avx512", "avx2", "neon" or "reference". The CPU's best, unless the
/// environment variable DIGITS_ISA names another that this CPU can run (read once, here only).
const char *ck_isa(void);
/// NULL, or a sentence saying why DIGITS_ISA could not be followed (the CPU's best is then in use).
const char *ck_isa_problem(void);
/// The kernel sets this build carries (whether or not the CPU can run them), best first:
/// ck_isa_name(0) ..< ck_isa_name(ck_isa_count() - 1); NULL out of range.
int ck_isa_count(void);
const char *ck_isa_name(int index);
/// 1 when this build and CPU can run the named kernel set.
int ck_isa_available(const char *name);
/// Switches the calling thread (and the pool jobs it starts) to the named kernel set, or back to
/// the process's with NULL: for tests and side-by-side comparisons, which may run on several
/// threads at once. Returns 0, changing nothing, when the CPU cannot run it.
int ck_use_isa(const char *name);
/// The calling thread's own kernel set from ck_use_isa, or NULL when it uses the process's.
const char *ck_thread_isa(void);

/// Threads used by ck_sgemm and ck_parallel_for, the calling thread included (>= 1).
void ck_set_threads(int count);
/// The calling thread's own count for the jobs it submits (0: the process's, ck_set_threads).
void ck_use_threads(int count);
/// The count jobs submitted by the calling thread use.
int ck_threads(void);

/// Row-major C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C; beta == 0 never reads C.
/// Every kernel set sums each element of C in the same order (k cut into equal chunks of at most
/// 256, each summed from zero by fused multiply-adds and added to C in turn), so results are the
/// same bits on every ISA and any thread count.
void ck_sgemm(int transpose_a, int transpose_b, long m, long n, long k, float alpha,
              const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc);

/// Pre-packed operands, for a GEMM whose A or B is used many times (a convolution's weights), and
/// in-place row-major operands for one used once (its columns). Sizes in floats. Packed buffers
/// (and the scratch and weights of the implicit-column and Winograd functions below) must be
/// 64-byte aligned: some kernel sets read them with aligned vector loads.
long ck_packed_a_floats(long m, long k);
long ck_packed_b_floats(long k, long n);
/// alpha * op(A) (m, k) in whole-k panels, for ck_sgemm_packed.
void ck_pack_a(int transpose_a, const float *a, long lda, long m, long k, float alpha, float *out);
/// op(B) (k, n) in whole-k panels, for ck_sgemm_packed.
void ck_pack_b(int transpose_b, const float *b, long ldb, long k, long n, float *out);
/// C (m, n) = A · B + beta * C; sums in the same order as ck_sgemm. A is packed (ck_pack_a) when
/// lda == 0, else row-major (m, k) with leading dimension lda, read in place; B likewise (ck_pack_b,
/// or row-major (k, n) with ldb). At least one of the two must be packed.
void ck_sgemm_packed(long m, long n, long k, const float *a, long lda, const float *b, long ldb, float beta,
                     float *c, long ldc);

/// Which thread of ck_parallel_for's pool runs the caller: 0 for the thread that called
/// ck_parallel_for (and outside any job), 1 ... ck_threads() - 1 for the workers. Two bodies of one
/// job that run at the same time have different slots, so per-slot scratch needs no locking.
int ck_worker_slot(void);
/// Calls body(context, i) for i in 0..<count spread over ck_threads() threads; returns when all are done.
void ck_parallel_for(long count, void (*body)(void *context, long index), void *context);
/// Geometry of one convolution input (C, H, W) with a square kernel; output OH x OW.
typedef struct {
    long channels, height, width, kernel, stride, padding, output_height, output_width;
} ck_conv_geometry;

/// im2col of one sample: columns row (c*K + ky)*K + kx, column oy*OW + ox, rows `row_stride`
/// floats apart; zero where the window leaves the image.
void ck_im2col(const ck_conv_geometry *g, const float *input, float *columns, long row_stride);

/// A sample's convolution columns without the column matrix: the zero-padded sample and offset
/// tables. Column row r = (c, ky, kx), output pixel p is padded[row_base[r] + pixel_offset[p]].
typedef struct {
    const float *padded;
    const int *row_base;      // (C*K*K)
    const int *pixel_offset;  // (OH*OW)
    const int *chunk_offset;  // (ceil(OH*OW / 16)): pixel_offset of each 16-pixel chunk's first pixel
    const int *chunk_index;   // (16 per chunk): pixel_offset[16j + l] - chunk_offset[j], all < 32
} ck_conv_columns;
/// Scratch floats for ck_conv_columns_prepare; 0 when the implicit columns do not apply (a kernel
/// set without them: all but AVX-512; stride other than 1, or a kernel so wide that 16 consecutive output pixels span more than 32 floats of
/// a padded row).
long ck_conv_columns_floats(const ck_conv_geometry *g);
/// Writes the padded sample and the tables into scratch and describes them in *out.
void ck_conv_columns_prepare(const ck_conv_geometry *g, const float *input, float *scratch, ck_conv_columns *out);
/// C (m, n) = A · columns (k = C*K*K, n = OH*OW) + beta * C with A packed (ck_pack_a): a convolution's
/// forward GEMM, the same sums in the same order as ck_sgemm_packed over explicit columns.
void ck_conv_forward_gemm(long m, long n, long k, const float *packed_a, const ck_conv_columns *cols, float beta,
                          float *c, long ldc);
/// C (m = C*K*K, n) = columns (m, k = OH*OW) · B + beta * C with B packed (ck_pack_b): a convolution's
/// transposed weight gradient, the same sums in the same order as ck_sgemm_packed over explicit columns.
/// Serial (called per sample inside a parallel loop).
void ck_conv_weight_gradient_gemm(long m, long n, long k, const ck_conv_columns *cols, const float *packed_b,
                                  float beta, float *c, long ldc);

/// The adjoint of ck_im2col: adds every column entry into the input gradient.
void ck_col2im_add(const ck_conv_geometry *g, const float *columns, long row_stride, float *input_gradient);

// Batch normalisation over one channel of a batch: `batch` runs of `pixels` floats, `stride`
// floats apart (NCHW: stride = C * H * W). Sums run in lanes in a fixed order, so results are
// deterministic.

/// One pass for mean and variance: sums[0] = Σ (x - shift), sums[1] = Σ (x - shift)², in double.
/// With shift a value of the channel (its first), the variance (sums[1] - sums[0]²/m) / m loses
/// little to cancellation, since the mean is within a few standard deviations of the shift.
void ck_channel_shifted_sums(const float *x, long batch, long pixels, long stride, float shift, double sums[2]);
/// xhat = (x - mean) * inv_std; y = gamma * xhat + beta, or max(0, that) when rectify != 0 (a ReLU
/// fused into the same pass; NaN stays NaN).
void ck_channel_normalize(const float *x, float *xhat, float *y, long batch, long pixels, long stride,
                          float mean, float inv_std, float gamma, float beta, int rectify);
/// sums[0] = Σ dy, sums[1] = Σ dy * xhat, in double.
void ck_channel_gradient_sums(const float *dy, const float *xhat, long batch, long pixels, long stride, double sums[2]);
/// dx = k * (m * dy - sum_dy - xhat * sum_dy_xhat).
void ck_channel_input_gradient(const float *dy, const float *xhat, float *dx, long batch, long pixels, long stride,
                               float k, float m, float sum_dy, float sum_dy_xhat);

/// 2 x 2, stride 2 max pooling of `planes` planes (h x w, h and w even or odd: the last row/column
/// of an odd size is dropped). Writes the maximum and, for backward, its index in the input plane;
/// ties go to the first element in row-major order. With rectified != 0 (the input came out of a
/// ReLU) a window whose maximum is not positive gets the index ~argmax (negative): the ReLU's
/// gradient mask, applied by backward. rectified == 2: the ReLU has not run and is applied here
/// (such a window outputs 0), as well as its mask.
void ck_maxpool2x2(const float *x, float *y, int *argmax, long planes, long h, long w, int rectified);
/// BatchNorm -> ReLU -> 2 x 2 max pooling in one pass over the `channels` planes of one sample:
/// each value becomes max(0, gamma[c] * ((x - mean[c]) * inv_std[c]) + beta[c]) exactly as
/// ck_channel_normalize computes it, then is pooled as by ck_maxpool2x2 with rectified != 0. Neither
/// the normalised nor the rectified plane is written; xhat_at_max (as y) gets the x-hat of each
/// window's maximum, for backward.
void ck_bn_relu_maxpool2x2(const float *x, float *y, int *argmax, float *xhat_at_max, long channels, long h, long w,
                          const float *mean, const float *inv_std, const float *gamma, const float *beta);
/// Its backward, first step, for one channel over the batch (planes `stride` floats apart):
/// sums[0] = Σ dy, sums[1] = Σ dy * xhat, in double, where dy is dpooled at each passing window's
/// argmax and 0 elsewhere.
void ck_bn_pool_gradient_sums(const float *dpooled, const int *argmax, const float *xhat_at_max, long batch,
                              long out_pixels, long stride, double sums[2]);
/// Second step, for the `channels` planes of one sample: dx = k * (m * dy - sum_dy - xhat * sum_dy_xhat)
/// (per-channel k, sum_dy, sum_dy_xhat). dx may be x.
void ck_bn_pool_input_gradient(const float *dpooled, const int *argmax, const float *xhat_at_max, const float *x,
                               float *dx, long channels, long h, long w, const float *mean, const float *inv_std,
                               const float *k, float m_count, const float *sum_dy, const float *sum_dy_xhat);
/// Its adjoint: dx (planes, h, w) gets each dy at its window's argmax and 0 everywhere else (a
/// window with a negative index passes nothing).
void ck_maxpool2x2_backward(const float *dy, const int *argmax, float *dx, long planes, long h, long w);

/// One Adam/AdamW update of count values. With decoupled != 0 (AdamW)
/// w -= lr * wd * w before the Adam step and the gradient is not decayed; otherwise g += wd * w.
/// step_size = lr / (1 - beta1^t), c2_root = sqrt(1 - beta2^t).
void ck_adam(float *w, const float *g, float *m, float *v, long count, float beta1, float beta2, float epsilon,
             float lr, float wd, int decoupled, float step_size, float c2_root);

/// One SGD-with-momentum update (heavy ball, or Nesterov when nesterov != 0), L2 decay wd.
void ck_sgd(float *w, const float *g, float *m, long count, float momentum, int nesterov, float lr, float wd);

// IEEE binary16 gradients for the compressed allreduce: rounding is to nearest even, and values
// past the half range become infinity.

/// half[i] = (binary16)(x[i] * scale).
void ck_float_to_half(const float *x, unsigned short *half, long count, float scale);
/// x[i] = (float)half[i] * inverse_scale.
void ck_half_to_float(const unsigned short *half, float *x, long count, float inverse_scale);
/// inout[i] = (binary16)((float)in[i] + (float)inout[i]): the reduction of the compressed allreduce.
void ck_half_add(const unsigned short *in, unsigned short *inout, long count);
/// 1 when any of the halves is infinite or NaN.
int ck_half_has_nonfinite(const unsigned short *half, long count);
/// max |x[i]|.
float ck_max_abs(const float *x, long count);

/// The fused multiply-add ceiling of the kernel set in use: GFLOP/s of independent FMA chains of its
/// vector width (AVX-512, AVX2, NEON; plain C multiply-adds for the reference) on ck_threads()
/// threads at once, over the wall time of the whole run (about `seconds`).
double ck_fma_peak_gflops(double seconds);

/// Dropout with KeyedRandom(key)'s draws 1, 2, ...: element i keeps (mask[i] = scale, else 0) when
/// the 24 low bits of half i % 2 of draw i / 2 + 1 are below threshold; y[i] = x[i] * mask[i].
///
void ck_dropout(uint64_t key, const float *x, float *y, float *mask, long count, uint32_t threshold, float scale);
// Winograd F(2x2, r x r) convolution for stride-1 layers with 3x3 or 5x5 kernels (the AVX-512 and
// AVX2 kernel sets: x86/avx512_winograd.c, x86/avx2_winograd.c). Sums depend on the layer's shapes
// only: not on the thread count, the batch, or the other samples of a call.

/// 1 when ck_winograd_conv runs this geometry: a kernel set that has Winograd, stride 1, kernel 3
/// or 5, padding below the kernel, output at most 32 pixels wide (AVX2: at least 4 input channels,
/// below which its transforms cost more than they save).
int ck_winograd_supported(const ck_conv_geometry *g);
/// Floats of the transformed weights of an (m x k) layer, for ck_winograd_weights (the packed
/// blocks, then the unpacked transform they are packed from).
long ck_winograd_weights_floats(long m, long k, long r);
/// The weights w (oc, c, r, r) transformed for ck_winograd_conv. adjoint == 0: the layer itself
/// (m = oc outputs from k = c channels). adjoint != 0: the convolution that gives its input
/// gradient (m = c outputs from k = oc channels, each kernel flipped), to run with padding r-1-p.
void ck_winograd_weights(const float *w, long oc, long c, long r, int adjoint, float *out);
/// Scratch floats for one thread's ck_winograd_conv with m output channels.
long ck_winograd_scratch_floats(const ck_conv_geometry *g, long m);
/// output (samples, m, OH, OW) = the convolution of input (samples, C, H, W) with the transformed
/// weights u (ck_winograd_weights) + bias[o] (bias may be NULL). Parallel over the threads when
/// called outside a parallel loop, serial inside one.
void ck_winograd_conv(const ck_conv_geometry *g, long m, const float *u, const float *input, long samples,
                      const float *bias, float *output, float *scratch);
#endif
