// The host's read bandwidth as the kernels see it: memory streamed with the widest loads of the running level.
#include "kernels_internal.h"

#include <stdatomic.h>
#include <string.h>

static uint64_t read_words(const uint8_t *bytes, size_t count) {
    uint64_t sum = 0;
    size_t i = 0;
    for (uint64_t word; i + 8 <= count; i += 8) {
        memcpy(&word, bytes + i, 8);
        sum += word;
    }
    for (; i < count; i++) sum += bytes[i];
    return sum;
}

#ifdef BITNET_X86
#include <immintrin.h>

// Four independent sums, so the loop waits on memory alone.
__attribute__((target("avx2")))
static uint64_t read_avx2(const uint8_t *bytes, size_t count) {
    __m256i sums[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    size_t i = 0;
    for (; i + 128 <= count; i += 128)
        for (int k = 0; k < 4; k++) sums[k] = _mm256_add_epi64(sums[k], _mm256_loadu_si256((const __m256i *)(bytes + i + 32 * k)));
    __m256i sum = _mm256_add_epi64(_mm256_add_epi64(sums[0], sums[1]), _mm256_add_epi64(sums[2], sums[3]));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, sum);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + read_words(bytes + i, count - i);
}

__attribute__((target("avx512f")))
static uint64_t read_avx512(const uint8_t *bytes, size_t count) {
    __m512i sums[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
    size_t i = 0;
    for (; i + 256 <= count; i += 256)
        for (int k = 0; k < 4; k++) sums[k] = _mm512_add_epi64(sums[k], _mm512_loadu_si512(bytes + i + 64 * k));
    __m512i sum = _mm512_add_epi64(_mm512_add_epi64(sums[0], sums[1]), _mm512_add_epi64(sums[2], sums[3]));
    return (uint64_t)_mm512_reduce_add_epi64(sum) + read_words(bytes + i, count - i);
}
#endif

static uint64_t read_at_level(int level, const uint8_t *bytes, size_t count) {
#ifdef BITNET_X86
    switch (level) {
    case BITNET_LEVEL_AVX512VNNI: return read_avx512(bytes, count);
    case BITNET_LEVEL_AVX2:
    case BITNET_LEVEL_AVXVNNI: return read_avx2(bytes, count);
    default: break;
    }
#endif
    (void)level;
    return read_words(bytes, count);
}

/// Bytes a pool task reads at once: large enough that handing out chunks costs nothing beside the reads.
enum { STREAM_CHUNK = 1 << 20 };

typedef struct {
    int level;
    const void *const *regions;
    const size_t *counts;
    int64_t region_count;
    _Atomic uint64_t sum;
} stream_job;

/// Chunk c of the regions laid end to end, each region cut into whole chunks and a last short one.
static void stream_task(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    stream_job *job = context;
    uint64_t sum = 0;
    int64_t first_chunk = 0;
    for (int64_t r = 0; r < job->region_count && first_chunk < end; r++) {
        int64_t chunks = (int64_t)((job->counts[r] + STREAM_CHUNK - 1) / STREAM_CHUNK);
        for (int64_t c = begin > first_chunk ? begin - first_chunk : 0; c < chunks && first_chunk + c < end; c++) {
            size_t offset = (size_t)c * STREAM_CHUNK, left = job->counts[r] - offset;
            sum += read_at_level(job->level, (const uint8_t *)job->regions[r] + offset, left < STREAM_CHUNK ? left : STREAM_CHUNK);
        }
        first_chunk += chunks;
    }
    atomic_fetch_add(&job->sum, sum);
}

uint64_t bitnet_stream_read(bitnet_pool *pool, const void *const *regions, const size_t *counts, int64_t region_count) {
    stream_job job = {.level = bitnet_level(), .regions = regions, .counts = counts, .region_count = region_count};
    atomic_init(&job.sum, 0);
    int64_t chunks = 0;
    for (int64_t r = 0; r < region_count; r++) chunks += (int64_t)((counts[r] + STREAM_CHUNK - 1) / STREAM_CHUNK);
    bitnet_pool_run(pool, chunks, 1, stream_task, &job);
    return atomic_load(&job.sum);
}
