// Float matrices: the embedding-sized output projection in F32, F16 or BF16, read in place. Scalar rows and AVX2
// (+ FMA, F16C) rows chosen at run time like the ternary tiles.
#include "kernels_internal.h"

#ifdef BITNET_X86
#include <immintrin.h>
#endif

float bitnet_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
    union { uint32_t u; float f; } v;
    if (exponent == 0x1F) { v.u = sign | 0x7F800000u | (mantissa << 13); return v.f; }
    if (exponent != 0) { v.u = sign | ((exponent + 112) << 23) | (mantissa << 13); return v.f; }
    float magnitude = (float)mantissa * (1.0f / 16777216.0f);
    return sign ? -magnitude : magnitude;
}

static inline float bf16_to_float(uint16_t b) {
    union { uint32_t u; float f; } v = {(uint32_t)b << 16};
    return v.f;
}

// MARK: - Scalar

float bitnet_dot_f16_scalar(const void *weights, const float *x, int64_t n) {
    const uint16_t *w = weights;
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += bitnet_half_to_float(w[i]) * x[i];
    return sum;
}

float bitnet_dot_bf16_scalar(const void *weights, const float *x, int64_t n) {
    const uint16_t *w = weights;
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += bf16_to_float(w[i]) * x[i];
    return sum;
}

float bitnet_dot_f32_scalar(const void *weights, const float *x, int64_t n) {
    const float *w = weights;
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += w[i] * x[i];
    return sum;
}

// MARK: - AVX2

#ifdef BITNET_X86
__attribute__((target("avx2,fma")))
static inline float sum_lanes_ps_avx2(__m256 v) {
    __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
    sum = _mm_add_ss(sum, _mm_shuffle_ps(sum, sum, 0x55));
    return _mm_cvtss_f32(sum);
}

__attribute__((target("avx2,fma,f16c")))
float bitnet_dot_f16_avx2(const void *weights, const float *x, int64_t n) {
    const uint16_t *w = weights;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i))), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8))), _mm256_loadu_ps(x + i + 8), a1);
    }
    float sum = sum_lanes_ps_avx2(_mm256_add_ps(a0, a1));
    for (; i < n; i++) sum += bitnet_half_to_float(w[i]) * x[i];
    return sum;
}

__attribute__((target("avx2,fma")))
float bitnet_dot_bf16_avx2(const void *weights, const float *x, int64_t n) {
    const uint16_t *w = weights;
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i wide = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + i))), 16);
        acc = _mm256_fmadd_ps(_mm256_castsi256_ps(wide), _mm256_loadu_ps(x + i), acc);
    }
    float sum = sum_lanes_ps_avx2(acc);
    for (; i < n; i++) sum += bf16_to_float(w[i]) * x[i];
    return sum;
}

__attribute__((target("avx2,fma")))
float bitnet_dot_f32_avx2(const void *weights, const float *x, int64_t n) {
    const float *w = weights;
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), acc);
    float sum = sum_lanes_ps_avx2(acc);
    for (; i < n; i++) sum += w[i] * x[i];
    return sum;
}
#endif

// MARK: - Entry points

static const size_t element_bytes[3] = {4, 2, 2};

float bitnet_dot_f16(const uint16_t *w, const float *x, int64_t n) {
    return bitnet_kernels_for_level(bitnet_level())->dot[BITNET_FLOAT_F16](w, x, n);
}

float bitnet_dot_bf16(const uint16_t *w, const float *x, int64_t n) {
    return bitnet_kernels_for_level(bitnet_level())->dot[BITNET_FLOAT_BF16](w, x, n);
}

float bitnet_dot_f32(const float *w, const float *x, int64_t n) {
    return bitnet_kernels_for_level(bitnet_level())->dot[BITNET_FLOAT_F32](w, x, n);
}

typedef struct {
    bitnet_float_dot dot;
    const uint8_t *weights;
    size_t row_bytes;
    int64_t rows, columns, tokens;
    const float *x;
    float *output;
} float_job;

static void float_rows(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const float_job *job = context;
    for (int64_t row = begin; row < end; row++) {
        // Ask for a row two ahead, as the ternary matmul does: the hardware prefetcher alone leaves decode waiting.
        if (row + 2 < job->rows)
            for (size_t offset = 0; offset < job->row_bytes; offset += 64) __builtin_prefetch(job->weights + (row + 2) * job->row_bytes + offset, 0, 3);
        for (int64_t t = 0; t < job->tokens; t++)
            job->output[t * job->rows + row] = job->dot(job->weights + row * job->row_bytes, job->x + t * job->columns, job->columns);
    }
}

void bitnet_float_matmul(bitnet_pool *pool, int32_t encoding, const void *weights, int64_t rows, int64_t columns,
                         const float *x, int64_t tokens, float *output) {
    float_job job = {
        .dot = bitnet_kernels_for_level(bitnet_level())->dot[encoding],
        .weights = weights,
        .row_bytes = element_bytes[encoding] * (size_t)columns,
        .rows = rows, .columns = columns, .tokens = tokens,
        .x = x, .output = output,
    };
    int64_t grain = rows / (bitnet_pool_threads(pool) * 16);
    bitnet_pool_run(pool, rows, grain < 16 ? 16 : grain, float_rows, &job);
}
