// A persistent thread pool: workers wait for a job, work through its chunks, and go back to waiting. No thread is
// created per op. A worker spins briefly after each job, since the next op follows within microseconds during a
// forward pass, then sleeps on a condition variable so an idle model costs nothing.
//
// Each thread starts with a contiguous share of a job's chunks and takes them from the front, so its reads stay
// one stream that its kernels' requests ahead carry from chunk to chunk; a thread whose share runs out takes the
// back half of the largest share left. Taken from one shared counter, chunks interleaved between the threads:
// every chunk started its stream anew, and a decode step's few large chunks left threads idle at the end.
//
// Between a decode step's matmuls the caller runs short serial ops (norms, quantization, attention) while the
// workers wait. Told which weights come next (bitnet_pool_warm), a waiting worker asks its caches for the start
// of its share of them, so those ops overlap with some of the next matmul's reads.
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

/// The most bytes of its share of the next job's weights a waiting worker asks its caches for: about what memory
/// delivers to one core in the tens of microseconds between two of a decode step's matmuls, well within an L2.
enum { WARM_LIMIT_BYTES = 256 << 10 };

/// A thread's chunks still to take, [begin, end), packed as begin << 32 | end; its own cache line, since its
/// owner takes from it once per chunk.
typedef struct {
    _Alignas(64) _Atomic uint64_t chunks;
} chunk_share;

static uint64_t pack_share(uint64_t begin, uint64_t end) { return begin << 32 | end; }

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
    chunk_share *shares;
    /// The bytes the next job will read (``bitnet_pool_warm``), and a count bumped on every change.
    _Atomic(const uint8_t *) warm_data;
    _Atomic int64_t warm_bytes;
    _Atomic uint64_t warm_serial;
    /// Workers that have not finished the current job.
    _Atomic int busy;
    _Atomic int stopping;
    int64_t count, grain;
    bitnet_task task;
    void *context;
};

/// Set on pool threads while they run a task, so a nested call runs inline instead of waiting on itself.
static _Thread_local int inside_task = 0;

/// Takes the first chunk of `share`; false when it has none.
static int take_front(chunk_share *share, uint64_t *chunk) {
    uint64_t chunks = atomic_load_explicit(&share->chunks, memory_order_relaxed);
    for (;;) {
        uint64_t begin = chunks >> 32, end = (uint32_t)chunks;
        if (begin >= end) return 0;
        if (atomic_compare_exchange_weak(&share->chunks, &chunks, pack_share(begin + 1, end))) {
            *chunk = begin;
            return 1;
        }
    }
}

/// Moves the back half of the largest other share to `thread`'s own (which is empty); false when all are empty.
static int steal(bitnet_pool *pool, int thread) {
    for (;;) {
        int victim = -1;
        uint64_t victim_chunks = 0, most = 0;
        for (int other = 0; other < pool->threads; other++) {
            if (other == thread) continue;
            uint64_t chunks = atomic_load_explicit(&pool->shares[other].chunks, memory_order_relaxed);
            uint64_t begin = chunks >> 32, end = (uint32_t)chunks;
            if (begin < end && end - begin > most) {
                most = end - begin;
                victim = other;
                victim_chunks = chunks;
            }
        }
        if (victim < 0) return 0;
        uint64_t begin = victim_chunks >> 32, end = (uint32_t)victim_chunks, taken = (end - begin + 1) / 2;
        if (atomic_compare_exchange_strong(&pool->shares[victim].chunks, &victim_chunks, pack_share(begin, end - taken))) {
            atomic_store(&pool->shares[thread].chunks, pack_share(end - taken, end));
            return 1;
        }
    }
}

static void take_chunks(bitnet_pool *pool, int thread) {
    for (;;) {
        uint64_t chunk;
        if (!take_front(&pool->shares[thread], &chunk)) {
            if (!steal(pool, thread)) return;
            continue;
        }
        int64_t begin = (int64_t)chunk * pool->grain;
        int64_t end = begin + pool->grain < pool->count ? begin + pool->grain : pool->count;
        pool->task(pool->context, begin, end, thread);
    }
}

/// Asks for worker `index`'s share of the warm region, line by line, until the limit or a new job.
static void warm_share(bitnet_pool *pool, int index, uint64_t seen) {
    const uint8_t *data = atomic_load(&pool->warm_data);
    int64_t bytes = atomic_load(&pool->warm_bytes);
    int64_t begin = bytes / pool->threads * index, length = bytes / pool->threads;
    if (length > WARM_LIMIT_BYTES) length = WARM_LIMIT_BYTES;
    for (int64_t line = 0; line < length; line += 64) {
        if (line % 1024 == 0 && atomic_load_explicit(&pool->generation, memory_order_relaxed) != seen) return;
        __builtin_prefetch(data + begin + line, 0, 2);
    }
}

typedef struct { bitnet_pool *pool; int index; } worker_start;

static void *worker_main(void *argument) {
    worker_start start = *(worker_start *)argument;
    free(argument);
    bitnet_pool *pool = start.pool;
    inside_task = 1;
    uint64_t seen = 0, warmed = 0;
    for (;;) {
        uint64_t generation = atomic_load(&pool->generation);
        for (int spin = 0; generation == seen && spin < SPIN_ITERATIONS; spin++) {
            uint64_t serial = atomic_load_explicit(&pool->warm_serial, memory_order_acquire);
            if (serial != warmed) {
                warmed = serial;
                warm_share(pool, start.index, seen);
            }
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
    pool->shares = aligned_alloc(_Alignof(chunk_share), (size_t)threads * sizeof(chunk_share));
    if (!pool->workers || !pool->shares) {
        free(pool->workers);
        free(pool->shares);
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
    free(pool->shares);
    free(pool);
}

int bitnet_pool_threads(const bitnet_pool *pool) { return pool ? pool->threads : 1; }

void bitnet_pool_warm(bitnet_pool *pool, const void *data, int64_t bytes) {
    if (!pool || pool->threads == 1) return;
    atomic_store_explicit(&pool->warm_data, (const uint8_t *)data, memory_order_relaxed);
    atomic_store_explicit(&pool->warm_bytes, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->warm_serial, 1, memory_order_release);
}

void bitnet_pool_run(bitnet_pool *pool, int64_t count, int64_t grain, bitnet_task task, void *context) {
    if (count <= 0) return;
    if (grain < 1) grain = 1;
    if (!pool || pool->threads == 1 || inside_task || count <= grain) {
        for (int64_t begin = 0; begin < count; begin += grain)
            task(context, begin, begin + grain < count ? begin + grain : count, 0);
        return;
    }
    // Shares are counted in 32 bits; no job comes near 2³² chunks, but a grain that would is widened.
    if ((count + grain - 1) / grain > (int64_t)UINT32_MAX) grain = (count + UINT32_MAX - 1) / UINT32_MAX;
    const uint64_t chunks = (uint64_t)((count + grain - 1) / grain), threads = (uint64_t)pool->threads;
    pthread_mutex_lock(&pool->submission);
    pool->count = count;
    pool->grain = grain;
    pool->task = task;
    pool->context = context;
    for (uint64_t t = 0; t < threads; t++)
        atomic_store_explicit(&pool->shares[t].chunks, pack_share(chunks * t / threads, chunks * (t + 1) / threads),
                              memory_order_relaxed);
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
