// A persistent thread pool: workers wait for a job, take chunks of its items from a shared counter, and go back
// to waiting. No thread is created per op. A worker spins briefly after each job, since the next op follows
// within microseconds during a forward pass, then sleeps on a condition variable so an idle model costs nothing.
#define _GNU_SOURCE
#include "kernels_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

/// Pause iterations a worker spins for the next job before it sleeps (tens of microseconds).
enum { SPIN_ITERATIONS = 4096 };

struct bitnet_pool {
    int threads;
    pthread_t *workers;
    /// One job at a time: callers on several threads take turns.
    pthread_mutex_t submission;
    /// Guards sleeping and waking.
    pthread_mutex_t lock;
    pthread_cond_t wake;
    /// Bumped once per job; workers run a job when they see it change.
    _Atomic uint64_t generation;
    _Atomic int64_t next_item;
    /// Workers that have not finished the current job.
    _Atomic int busy;
    _Atomic int stopping;
    int64_t count, grain;
    bitnet_task task;
    void *context;
};

/// Set on pool threads while they run a task, so a nested call runs inline instead of waiting on itself.
static _Thread_local int inside_task = 0;

static void take_chunks(bitnet_pool *pool, int thread) {
    for (;;) {
        int64_t begin = atomic_fetch_add(&pool->next_item, pool->grain);
        if (begin >= pool->count) return;
        int64_t end = begin + pool->grain < pool->count ? begin + pool->grain : pool->count;
        pool->task(pool->context, begin, end, thread);
    }
}

typedef struct { bitnet_pool *pool; int index; } worker_start;

static void *worker_main(void *argument) {
    worker_start start = *(worker_start *)argument;
    free(argument);
    bitnet_pool *pool = start.pool;
    inside_task = 1;
    uint64_t seen = 0;
    for (;;) {
        uint64_t generation = atomic_load(&pool->generation);
        for (int spin = 0; generation == seen && spin < SPIN_ITERATIONS; spin++) {
            cpu_relax();
            generation = atomic_load(&pool->generation);
        }
        if (generation == seen) {
            pthread_mutex_lock(&pool->lock);
            while ((generation = atomic_load(&pool->generation)) == seen && !atomic_load(&pool->stopping))
                pthread_cond_wait(&pool->wake, &pool->lock);
            pthread_mutex_unlock(&pool->lock);
        }
        if (atomic_load(&pool->stopping)) return NULL;
        seen = generation;
        take_chunks(pool, start.index);
        atomic_fetch_sub(&pool->busy, 1);
    }
}

bitnet_pool *bitnet_pool_create(int threads) {
    if (threads < 1) threads = 1;
    bitnet_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->threads = threads;
    pthread_mutex_init(&pool->submission, NULL);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->workers = calloc((size_t)threads, sizeof(pthread_t));
    if (!pool->workers) {
        free(pool);
        return NULL;
    }
    for (int index = 1; index < threads; index++) {
        worker_start *start = malloc(sizeof *start);
        if (start) *start = (worker_start){pool, index};
        if (!start || pthread_create(&pool->workers[index], NULL, worker_main, start) != 0) {
            free(start);
            pool->threads = index;  // destroy joins the workers made so far
            bitnet_pool_destroy(pool);
            return NULL;
        }
    }
    return pool;
}

void bitnet_pool_destroy(bitnet_pool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stopping, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int index = 1; index < pool->threads; index++) pthread_join(pool->workers[index], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->submission);
    free(pool->workers);
    free(pool);
}

int bitnet_pool_threads(const bitnet_pool *pool) { return pool ? pool->threads : 1; }

void bitnet_pool_run(bitnet_pool *pool, int64_t count, int64_t grain, bitnet_task task, void *context) {
    if (count <= 0) return;
    if (grain < 1) grain = 1;
    if (!pool || pool->threads == 1 || inside_task || count <= grain) {
        for (int64_t begin = 0; begin < count; begin += grain)
            task(context, begin, begin + grain < count ? begin + grain : count, 0);
        return;
    }
    pthread_mutex_lock(&pool->submission);
    pool->count = count;
    pool->grain = grain;
    pool->task = task;
    pool->context = context;
    atomic_store(&pool->next_item, 0);
    atomic_store(&pool->busy, pool->threads - 1);
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add(&pool->generation, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    inside_task = 1;
    take_chunks(pool, 0);
    inside_task = 0;
    // Workers finish their last chunk; the caller waits spinning, then yielding (a worker may be descheduled).
    for (int spin = 0; atomic_load(&pool->busy) != 0; spin++) {
        if (spin < SPIN_ITERATIONS) cpu_relax();
        else sched_yield();
    }
    pthread_mutex_unlock(&pool->submission);
}
