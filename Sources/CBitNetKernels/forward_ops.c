// The forward pass's other ops in C: int8 quantization of activations, RMSNorm and attention over the KV cache,
// each split between the pool's threads. Numerics follow transformers' float32 order.
#include "kernels_internal.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#ifdef BITNET_X86
#include <immintrin.h>
#endif

// A multiply followed by an add is rounded twice, as written, never fused into one FMA, on every CPU and compiler
// (the SIMD paths fuse where their intrinsics say so). Before this was set, clang fused the scalar sums here on
// arm64 and in the AVX2 attention's tails, so those floats changed once when it was added.
#pragma STDC FP_CONTRACT OFF

// MARK: - Quantization
//
// Each level finds the row's largest magnitude (exact in any order; a NaN anywhere makes it NaN, as torch.max
// does) and rounds x · scale to nearest-even int8 with the same float multiply, so every level gives the same
// codes: a vector round is `rintf` in the default rounding mode, and the clamps come before the conversion.

/// PyTorch's `127 / max(m, ε)`, computed as `reciprocal(t) · 127`; a NaN maximum stays NaN.
static inline float absmax_scale(float maximum) {
    const float epsilon = 1e-5f;
    float clamped = epsilon >= maximum ? epsilon : maximum;  // Swift's max(maximum, ε)
    return (1.0f / clamped) * 127.0f;
}

static inline int8_t int8_code(float scaled) {
    float rounded = rintf(scaled);  // ties to even, the default rounding mode
    if (rounded >= 127) return 127;
    if (rounded <= -128) return -128;
    return rounded != rounded ? 0 : (int8_t)rounded;
}

/// The larger of `maximum` and |value|, NaN once either is NaN.
static inline float larger_magnitude(float maximum, float value) {
    float magnitude = fabsf(value);
    return magnitude > maximum || magnitude != magnitude ? magnitude : maximum;
}

static float quantize_row_scalar(const float *x, int64_t n, int8_t *q) {
    float maximum = 0;
    for (int64_t i = 0; i < n && maximum == maximum; i++) maximum = larger_magnitude(maximum, x[i]);
    float scale = absmax_scale(maximum);
    for (int64_t i = 0; i < n; i++) q[i] = int8_code(x[i] * scale);
    return scale;
}

#ifdef BITNET_X86
__attribute__((target("avx2,fma")))
static float quantize_row_avx2(const float *x, int64_t n, int8_t *q) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 maxima = _mm256_setzero_ps(), nan = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        maxima = _mm256_max_ps(maxima, _mm256_andnot_ps(sign, v));
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, maxima);
    float maximum = 0;
    for (int lane = 0; lane < 8; lane++) maximum = lanes[lane] > maximum ? lanes[lane] : maximum;
    for (; i < n; i++) maximum = larger_magnitude(maximum, x[i]);
    if (_mm256_movemask_ps(nan)) maximum = NAN;
    float scale = absmax_scale(maximum);

    const __m256 factor = _mm256_set1_ps(scale), low = _mm256_set1_ps(-128), high = _mm256_set1_ps(127);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 scaled = _mm256_mul_ps(_mm256_loadu_ps(x + i), factor);
        __m256 rounded = _mm256_round_ps(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 clamped = _mm256_min_ps(_mm256_max_ps(rounded, low), high);  // NaN becomes −128 here …
        __m256i codes = _mm256_and_si256(_mm256_cvtps_epi32(clamped),  // … and 0 here
                                         _mm256_castps_si256(_mm256_cmp_ps(scaled, scaled, _CMP_ORD_Q)));
        __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(codes), _mm256_extracti128_si256(codes, 1));
        _mm_storel_epi64((__m128i *)(q + i), _mm_packs_epi16(words, words));
    }
    for (; i < n; i++) q[i] = int8_code(x[i] * scale);
    return scale;
}

/// The twin of ``quantize_row_avx2``, 16 values at a time with masked tails.
__attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl")))
static float quantize_row_avx512(const float *x, int64_t n, int8_t *q) {
    __m512 maxima = _mm512_setzero_ps();
    __mmask16 nan = 0;
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 valid = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_maskz_loadu_ps(valid, x + i);
        maxima = _mm512_max_ps(maxima, _mm512_abs_ps(v));
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    }
    float scale = absmax_scale(nan ? NAN : _mm512_reduce_max_ps(maxima));

    const __m512 factor = _mm512_set1_ps(scale), low = _mm512_set1_ps(-128), high = _mm512_set1_ps(127);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 valid = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 scaled = _mm512_mul_ps(_mm512_maskz_loadu_ps(valid, x + i), factor);
        __m512 rounded = _mm512_roundscale_ps(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 clamped = _mm512_min_ps(_mm512_max_ps(rounded, low), high);
        __m512i codes = _mm512_maskz_cvtps_epi32(_mm512_cmp_ps_mask(scaled, scaled, _CMP_ORD_Q), clamped);
        _mm512_mask_cvtepi32_storeu_epi8(q + i, valid, codes);
    }
    return scale;
}
#endif

typedef float (*quantize_row_fn)(const float *x, int64_t n, int8_t *q);

typedef struct {
    const float *x;
    int64_t columns;
    int8_t *q;
    float *scales;
    quantize_row_fn quantize_row;
} quantize_job;

static void quantize_task(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const quantize_job *job = context;
    for (int64_t row = begin; row < end; row++)
        job->scales[row] = job->quantize_row(job->x + row * job->columns, job->columns, job->q + row * job->columns);
}

void bitnet_quantize_rows(bitnet_pool *pool, const float *x, int64_t rows, int64_t columns, int8_t *q, float *scales) {
    quantize_job job = {x, columns, q, scales, quantize_row_scalar};
#ifdef BITNET_X86
    int level = bitnet_level();
    if (level >= BITNET_LEVEL_AVX512VNNI) job.quantize_row = quantize_row_avx512;
    else if (level >= BITNET_LEVEL_AVX2) job.quantize_row = quantize_row_avx2;
#endif
    bitnet_pool_run(pool, rows, 1, quantize_task, &job);
}

// MARK: - RMSNorm

typedef struct {
    const float *x, *weight;
    float epsilon;
    int64_t columns;
    float *output;
} norm_job;

/// Rows whose sums of squares run side by side: each row's sum is a chain of dependent adds in column order (its
/// floats are those of one row alone), and eight chains keep the adder busy where one waited on each add.
enum { NORM_ROWS = 8 };

static void normalize_row(const norm_job *job, const float *x, float sum, float *out) {
    float scale = 1.0f / sqrtf(sum / (float)job->columns + job->epsilon);
    for (int64_t i = 0; i < job->columns; i++) out[i] = job->weight[i] * (x[i] * scale);
}

static void norm_task(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const norm_job *job = context;
    const int64_t columns = job->columns;
    int64_t row = begin;
    for (; row + NORM_ROWS <= end; row += NORM_ROWS) {
        const float *x = job->x + row * columns;
        float sums[NORM_ROWS] = {0};
        for (int64_t i = 0; i < columns; i++)
            for (int r = 0; r < NORM_ROWS; r++) sums[r] += x[r * columns + i] * x[r * columns + i];
        for (int r = 0; r < NORM_ROWS; r++) normalize_row(job, x + r * columns, sums[r], job->output + (row + r) * columns);
    }
    for (; row < end; row++) {
        const float *x = job->x + row * columns;
        float sum = 0;
        for (int64_t i = 0; i < columns; i++) sum += x[i] * x[i];
        normalize_row(job, x, sum, job->output + row * columns);
    }
}

void bitnet_rms_norm(bitnet_pool *pool, const float *x, const float *weight, float epsilon, int64_t rows,
                     int64_t columns, float *output) {
    norm_job job = {x, weight, epsilon, columns, output};
    bitnet_pool_run(pool, rows, NORM_ROWS, norm_task, &job);
}

// MARK: - Attention
//
// Work items are (token, key/value head) pairs: the query heads that share a key/value head (grouped-query
// attention) read each cached key and value once between them. Items run key/value head by head, so a thread's
// share of a prompt's items goes over one head's rows (which stay in L2) token after token: token by token, each
// item read another head's rows, and 128 tokens after 762 took 21.3 ms where they now take 16.5 (2 threads, f32).
// Every query and key meet in the level's float dot, softmax runs in position order, and each output value is Σ_p weight_p · v_p accumulated in position order, so a
// head's result does not depend on its group or on the batch.

/// `out[h·n + i] = Σ_p weights[h·weight_stride + p] · v_p[i]` for `heads` (≤ 4) heads over `positions` cached
/// value rows (f32 or f16, `value_stride` bytes apart), each sum in position order from 0.
typedef void (*accumulate_fn)(float *out, const float *weights, int64_t weight_stride, int heads, const uint8_t *values,
                              int64_t value_stride, int64_t positions, int64_t n);

static inline float cached_value(const uint8_t *row, int64_t i, int half) {
    return half ? bitnet_half_to_float(((const uint16_t *)row)[i]) : ((const float *)row)[i];
}

/// Values `begin ..< n` one at a time: the scalar level's whole row, the tail of the SIMD ones.
static void accumulate_tail(float *out, const float *weights, int64_t weight_stride, int heads, const uint8_t *values,
                            int64_t value_stride, int64_t positions, int64_t begin, int64_t n, int half) {
    for (int h = 0; h < heads; h++)
        for (int64_t i = begin; i < n; i++) {
            float sum = 0;
            for (int64_t p = 0; p < positions; p++) sum += weights[h * weight_stride + p] * cached_value(values + p * value_stride, i, half);
            out[h * n + i] = sum;
        }
}

static void accumulate_f32_scalar(float *out, const float *weights, int64_t weight_stride, int heads, const uint8_t *values,
                                  int64_t value_stride, int64_t positions, int64_t n) {
    accumulate_tail(out, weights, weight_stride, heads, values, value_stride, positions, 0, n, 0);
}

static void accumulate_f16_scalar(float *out, const float *weights, int64_t weight_stride, int heads, const uint8_t *values,
                                  int64_t value_stride, int64_t positions, int64_t n) {
    accumulate_tail(out, weights, weight_stride, heads, values, value_stride, positions, 0, n, 1);
}

#ifdef BITNET_X86
TARGET_AVX2 static ALWAYS_INLINE __m256 cached_values_avx2(const uint8_t *row, int64_t i, int half) {
    return half ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * i))) : _mm256_loadu_ps((const float *)row + i);
}

/// V columns [i, i + 8·V) of H heads, kept in registers over all positions: a fused multiply-add per value and
/// position, in position order.
TARGET_AVX2 static ALWAYS_INLINE void accumulate_columns_avx2(
    float *out, const float *weights, int64_t weight_stride, const uint8_t *values, int64_t value_stride,
    int64_t positions, int64_t n, int64_t i, const int H, const int V, int half) {
    __m256 acc[4][2];
    for (int h = 0; h < H; h++) for (int v = 0; v < V; v++) acc[h][v] = _mm256_setzero_ps();
    for (int64_t p = 0; p < positions; p++) {
        __m256 value[2];
        for (int v = 0; v < V; v++) value[v] = cached_values_avx2(values + p * value_stride, i + 8 * v, half);
        for (int h = 0; h < H; h++) {
            __m256 weight = _mm256_broadcast_ss(weights + h * weight_stride + p);
            for (int v = 0; v < V; v++) acc[h][v] = _mm256_fmadd_ps(weight, value[v], acc[h][v]);
        }
    }
    for (int h = 0; h < H; h++) for (int v = 0; v < V; v++) _mm256_storeu_ps(out + h * n + i + 8 * v, acc[h][v]);
}

TARGET_AVX2 static ALWAYS_INLINE void accumulate_heads_avx2(
    float *out, const float *weights, int64_t weight_stride, const uint8_t *values, int64_t value_stride,
    int64_t positions, int64_t n, const int H, int half) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) accumulate_columns_avx2(out, weights, weight_stride, values, value_stride, positions, n, i, H, 2, half);
    for (; i + 8 <= n; i += 8) accumulate_columns_avx2(out, weights, weight_stride, values, value_stride, positions, n, i, H, 1, half);
    accumulate_tail(out, weights, weight_stride, H, values, value_stride, positions, i, n, half);
}

#define ACCUMULATE_AVX2(name, half)                                                                                 \
    TARGET_AVX2 static void name(float *out, const float *weights, int64_t weight_stride, int heads,                \
                                 const uint8_t *values, int64_t value_stride, int64_t positions, int64_t n) {       \
        switch (heads) {                                                                                            \
        case 4: accumulate_heads_avx2(out, weights, weight_stride, values, value_stride, positions, n, 4, half); break; \
        case 3: accumulate_heads_avx2(out, weights, weight_stride, values, value_stride, positions, n, 3, half); break; \
        case 2: accumulate_heads_avx2(out, weights, weight_stride, values, value_stride, positions, n, 2, half); break; \
        default: accumulate_heads_avx2(out, weights, weight_stride, values, value_stride, positions, n, 1, half); break; \
        }                                                                                                           \
    }

ACCUMULATE_AVX2(accumulate_f32_avx2, 0)
ACCUMULATE_AVX2(accumulate_f16_avx2, 1)
#endif

typedef struct {
    const bitnet_attention_args *args;
    bitnet_float_dot dot;
    bitnet_float_dot4 dot4;  // NULL: one dot at a time
    accumulate_fn accumulate;
    int vector_expf;  // ``bitnet_vector_expf`` of the calling thread's level
    size_t element_bytes;
    _Atomic int failed;
} attention_job;

/// Softmax in place over `count` scores: the maximum, e^(s − max) and their total in position order, then each
/// divided by the total.
static void softmax(float *scores, int64_t count, int vector_expf) {
    float maximum = -INFINITY;
    for (int64_t p = 0; p < count; p++)
        if (scores[p] > maximum) maximum = scores[p];
    for (int64_t p = 0; p < count; p++) scores[p] -= maximum;
    bitnet_exp_in_place(scores, count, vector_expf);
    float total = 0;
    for (int64_t p = 0; p < count; p++) total += scores[p];
    for (int64_t p = 0; p < count; p++) scores[p] /= total;
}

/// How many cached positions ahead an attention item asks for its key and value rows.
enum { ATTENTION_PREFETCH_ROWS = 8 };

/// Asks for one head's key row (into L1) and value row (into L2, read after the softmax) at `offset`.
static inline void prefetch_head_rows(const uint8_t *keys, const uint8_t *values, int64_t offset, int64_t head_bytes) {
    for (int64_t byte = 0; byte < head_bytes; byte += 64) {
        __builtin_prefetch(keys + offset + byte, 0, 3);
        __builtin_prefetch(values + offset + byte, 0, 2);
    }
}

static void attention_task(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    attention_job *job = context;
    const bitnet_attention_args *a = job->args;
    const int64_t dimension = a->head_dimension, group = a->heads / a->key_value_heads;
    int64_t most_visible = 0;
    for (int64_t item = begin; item < end; item++) {
        int64_t visible = a->positions[item % a->tokens] + 1;
        if (visible > most_visible) most_visible = visible;
    }
    float *scores = malloc((size_t)(group * most_visible) * sizeof(float));  // scores[h · visible + position]
    if (!scores) {
        atomic_store(&job->failed, 1);
        return;
    }
    const int64_t stride = a->cache_width * (int64_t)job->element_bytes;
    for (int64_t item = begin; item < end; item++) {
        int64_t token = item % a->tokens, kv_head = item / a->tokens;
        int64_t visible = a->positions[token] + 1;
        const float *queries = a->queries + a->rows[token] * a->row_stride + kv_head * group * dimension;
        const uint8_t *keys = (const uint8_t *)a->keys + kv_head * dimension * (int64_t)job->element_bytes;
        const uint8_t *values = (const uint8_t *)a->values + kv_head * dimension * (int64_t)job->element_bytes;
        // Between two decode steps the weights' stream pushes the cache out of every cache, and rows `stride`
        // apart are no stream a core's prefetcher follows: each position asks for the keys and values ahead.
        const int64_t head_bytes = dimension * (int64_t)job->element_bytes;
        for (int64_t position = 0; position < ATTENTION_PREFETCH_ROWS && position < visible; position++)
            prefetch_head_rows(keys, values, position * stride, head_bytes);
        for (int64_t position = 0; position < visible; position++) {
            const uint8_t *key = keys + position * stride;
            if (position + ATTENTION_PREFETCH_ROWS < visible)
                prefetch_head_rows(keys, values, (position + ATTENTION_PREFETCH_ROWS) * stride, head_bytes);
            int64_t h = 0;
            for (; job->dot4 && h + 4 <= group; h += 4) {
                float dots[4];
                job->dot4(key, queries + h * dimension, dimension, dimension, dots);
                for (int k = 0; k < 4; k++) scores[(h + k) * visible + position] = dots[k] * a->scale;
            }
            for (; h < group; h++) scores[h * visible + position] = job->dot(key, queries + h * dimension, dimension) * a->scale;
        }
        for (int64_t h = 0; h < group; h++) softmax(scores + h * visible, visible, job->vector_expf);
        float *result = a->output + a->rows[token] * a->row_stride + kv_head * group * dimension;
        for (int64_t h = 0; h < group; h += 4)
            job->accumulate(result + h * dimension, scores + h * visible, visible, group - h < 4 ? (int)(group - h) : 4,
                            values, stride, visible, dimension);
    }
    free(scores);
}

int bitnet_attention(bitnet_pool *pool, const bitnet_attention_args *args) {
    int level = bitnet_level();
    const bitnet_kernel_table *table = bitnet_kernels_for_level(level);
    int half = args->cache_type == BITNET_CACHE_F16;
    int encoding = half ? BITNET_FLOAT_F16 : BITNET_FLOAT_F32;
    attention_job job = {
        .args = args,
        .dot = table->dot[encoding],
        .dot4 = table->dot4[encoding],
        .accumulate = half ? accumulate_f16_scalar : accumulate_f32_scalar,
        .vector_expf = bitnet_vector_expf(level),
        .element_bytes = half ? 2 : 4,
    };
#ifdef BITNET_X86
    if (level >= BITNET_LEVEL_AVX2) job.accumulate = half ? accumulate_f16_avx2 : accumulate_f32_avx2;
#endif
    int64_t items = args->tokens * args->key_value_heads;
    int threads = bitnet_pool_threads(pool);
    int64_t grain = items / (threads * 4);
    bitnet_pool_run(pool, items, grain < 1 ? 1 : grain, attention_task, &job);
    return atomic_load(&job.failed) ? -1 : 0;
}
