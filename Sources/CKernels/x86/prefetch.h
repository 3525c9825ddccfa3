#ifndef CKERNELS_PREFETCH_H
#define CKERNELS_PREFETCH_H
#include <immintrin.h>
// Software prefetch of `count` floats from `at`, one request per 64-byte line: for the passes whose
// next input (a run of a batch-strided channel, the next plane) the hardware prefetchers do not
// foresee. Prefetching an address outside any mapping is harmless.
static inline void ck_prefetch_read(const float *at, long count) {
    for (long i = 0; i < count; i += 16) _mm_prefetch((const char *)(at + i), _MM_HINT_T0);
}
// The same for lines about to be written (fetched in the state that allows the write).
static inline void ck_prefetch_write(const float *at, long count) {
    for (long i = 0; i < count; i += 16) _mm_prefetch((const char *)(at + i), _MM_HINT_ET0);
}
#endif
