#ifndef CBLAS_SHIM_H
#define CBLAS_SHIM_H
// OpenBLAS's cblas.h declares cblas_sgemm and openblas_set_num_threads; included
// through a shim so the module map does not hard-code the multiarch include path.
#include <cblas.h>
#endif
