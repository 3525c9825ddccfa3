#include "ckernels.h"
#include <immintrin.h>
#include <time.h>

// Sixteen independent accumulator chains (more than FMA latency x ports), no memory traffic:
// the number the GEMM's "percent of peak" is measured against, in the same run.
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

__attribute__((target("avx512f,fma"))) static float chains512(long rounds) {
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
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float chains256(long rounds) {
    __m256 acc[12];
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
        __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]), "+x"(acc[4]), "+x"(acc[5]),
                         "+x"(acc[6]), "+x"(acc[7]), "+x"(acc[8]), "+x"(acc[9]), "+x"(acc[10]), "+x"(acc[11]));
    }
    float out[8];
    __m256 s = acc[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, acc[i]);
    _mm256_storeu_ps(out, s);
    return out[0];
}

typedef struct {
    double seconds;
    double flops[64];
    volatile float sink;
} peak_job;

static void peak_part(void *context, long index) {
    peak_job *job = context;
    const int wide = ck_has_avx512();
    const long rounds = 1L << 20;
    const double per_round = wide ? 16.0 * 16 * 2 : 12.0 * 8 * 2;
    double start = now(), done = 0;
    while (now() - start < job->seconds) {
        job->sink += wide ? chains512(rounds) : chains256(rounds);
        done += per_round * (double)rounds;
    }
    if (index < 64) job->flops[index] = done / (now() - start);
}

double ck_fma_peak_gflops(double seconds) {
    __builtin_cpu_init();
    if (!ck_has_avx512() && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return 0;
    peak_job job = {.seconds = seconds};
    long threads = ck_threads();
    ck_parallel_for(threads, peak_part, &job);
    double total = 0;
    for (long i = 0; i < threads && i < 64; i++) total += job.flops[i];
    return total / 1e9;
}
