#include "isa.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>

// A fixed pool of workers. Between jobs a worker spins for a short while (a training step starts
// dozens of small parallel loops back to back, and waking a sleeping thread costs more than many
// of them take), then sleeps on a condition variable. One job at a time: callers hold `submit`
// for the whole job, so nested or concurrent calls run one after another.
enum { max_threads = 64, spin_limit = 20000 };

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ volatile("yield");
#endif
}

static pthread_mutex_t submit = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;
static int thread_count = 1;
static int workers_started = 0;
static atomic_ulong generation;
static void (*job_body)(void *, long);
static void *job_context;
static const ck_kernel_table *job_table;  // the submitting thread's kernel set, for the workers too
static atomic_int busy_workers;

// A job's indices are dealt out in contiguous shares, share s = [s*count/T, (s+1)*count/T) to the
// thread in slot s, which runs its own share first and then helps with the others'. Jobs over the
// same count (a convolution's sample groups, a pooling's samples) thus give each thread the same
// samples from layer to layer while the threads keep pace, so the activations one layer writes are
// read by the next on the core that wrote them, not fetched from the other core's cache; a thread
// that falls behind still has its work taken over. Which thread runs an index never changes what
// the index computes.
typedef struct {
    _Alignas(64) atomic_long next;
    long end;
} share;
static share shares[max_threads];
static int share_count;

static void run_indices(int own) {
    for (int k = 0; k < share_count; k++) {
        share *s = &shares[(own + k) % share_count];
        for (;;) {
            long i = atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed);
            if (i >= s->end) break;
            job_body(job_context, i);
        }
    }
}

// A thread's own thread count (ck_use_threads), 0 for the process's: jobs it submits use it, so a
// test that changes it is never seen by another test running at the same time.
static _Thread_local int own_thread_count = 0;
// The submitter's count, which workers take for the job (as they take its kernel table).
static int job_threads = 1;
static _Thread_local int inside_job = 0;
static _Thread_local int slot = 0;  // 0: whichever thread calls ck_parallel_for; workers 1 ...

int ck_worker_slot(void) { return slot; }

static void *worker_main(void *argument) {
    long id = (long)argument;  // 1 ... ; the caller of ck_parallel_for is thread 0
    inside_job = 1;
    slot = (int)id;
    unsigned long seen = 0;
    for (;;) {
        unsigned long now = atomic_load_explicit(&generation, memory_order_acquire);
        for (int spins = 0; now == seen && spins < spin_limit; spins++) {
            relax();
            now = atomic_load_explicit(&generation, memory_order_acquire);
        }
        if (now == seen) {
            pthread_mutex_lock(&lock);
            while ((now = atomic_load(&generation)) == seen) pthread_cond_wait(&wake, &lock);
            pthread_mutex_unlock(&lock);
        }
        seen = now;
        if (id < share_count) {
            ck_set_thread_kernels(job_table);
            own_thread_count = job_threads;
            run_indices((int)id);
            own_thread_count = 0;
            ck_set_thread_kernels(NULL);
        }
        if (atomic_fetch_sub(&busy_workers, 1) == 1) {
            pthread_mutex_lock(&lock);
            pthread_cond_signal(&done);
            pthread_mutex_unlock(&lock);
        }
    }
    return NULL;
}

/// Starts workers until the pool has `count` threads (or pthread_create fails); returns how many it has.
static int grow_pool(int count) {
    if (count < 1) count = 1;
    if (count > max_threads) count = max_threads;
    pthread_mutex_lock(&submit);
    while (workers_started < count - 1) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, worker_main, (void *)(long)(workers_started + 1)) != 0) break;
        pthread_detach(thread);
        workers_started++;
    }
    int available = workers_started + 1 < count ? workers_started + 1 : count;
    pthread_mutex_unlock(&submit);
    return available;
}


void ck_set_threads(int count) { thread_count = grow_pool(count); }

void ck_use_threads(int count) { own_thread_count = count > 0 ? grow_pool(count) : 0; }

int ck_threads(void) { return own_thread_count > 0 ? own_thread_count : thread_count; }

void ck_parallel_for(long count, void (*body)(void *, long), void *context) {
    if (count <= 0) return;
    // A body that itself calls ck_parallel_for (a GEMM inside a parallel loop) runs serially.
    int threads = ck_threads();   // the submitting thread's count, read once
    if (threads == 1 || count == 1 || inside_job) {
        for (long i = 0; i < count; i++) body(context, i);
        return;
    }
    pthread_mutex_lock(&submit);
    // Workers numbered `threads` and above (left from a higher count) wake and
    // go back to sleep without taking an index.
    job_body = body;
    job_context = context;
    job_table = ck_thread_kernels();
    share_count = threads;
    job_threads = threads;
    for (int t = 0; t < share_count; t++) {
        atomic_store_explicit(&shares[t].next, count * t / share_count, memory_order_relaxed);
        shares[t].end = count * (t + 1) / share_count;
    }
    atomic_store(&busy_workers, workers_started);
    pthread_mutex_lock(&lock);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    inside_job = 1;
    run_indices(0);
    inside_job = 0;
    for (int spins = 0; atomic_load(&busy_workers) > 0 && spins < spin_limit; spins++) relax();
    if (atomic_load(&busy_workers) > 0) {
        pthread_mutex_lock(&lock);
        while (atomic_load(&busy_workers) > 0) pthread_cond_wait(&done, &lock);
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_unlock(&submit);
}
