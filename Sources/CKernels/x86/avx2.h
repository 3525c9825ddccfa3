#ifndef CKERNELS_AVX2_H
#define CKERNELS_AVX2_H
#include "../isa.h"
// The AVX2 kernels written outside x86/avx2.c (x86/avx2_*.c), each with the contract of the ck_*
// function of the same name; x86/avx2.c puts them in ck_avx2_kernels.

int avx2_winograd_supported(const ck_conv_geometry *g);
long avx2_winograd_weights_floats(long m, long k, long r);
void avx2_winograd_weights(const float *w, long oc, long c, long r, int adjoint, float *out);
long avx2_winograd_scratch_floats(const ck_conv_geometry *g, long m);
void avx2_winograd_conv(const ck_conv_geometry *g, long m, const float *u, const float *input, long samples,
                        const float *bias, float *output, float *scratch);
#endif
