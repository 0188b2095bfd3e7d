// Causal grouped-query attention over the KV cache, split between the pool's threads.
//
// An item is one key/value head for a few of the batch's tokens (``tile_tokens``): the tile's rows are its tokens'
// query heads of that group, a token's heads side by side, ``ATTENTION_TILE_ROWS`` rows at most (one token's group
// where that is more). Each cached key and value the tile reads serves all of its rows, so a prompt reads a head's
// cache once for every few tokens where it read it once a token. Scores sit position by position,
// `scores[p · rows + r]`: the softmax's maximum, total and division run across rows in SIMD lanes, while each row's
// own reduction stays in position order.
//
// A cache longer than ``ATTENTION_BLOCK_POSITIONS`` is read in blocks, combined in order (see "Position blocks"
// below). A head's positions are `position_stride` elements apart (its own rows side by side, as the CPU backend
// stores them, so the reads stream).
//
// Every query and key meet in the level's float dot (the AVX2 and AVX-512 score tiles repeat its operations lane
// for lane), softmax runs in position order, and each output value is Σ_p weight_p · v_p accumulated in position
// order over the positions its token sees (within a block; the blocks in order), so a head's floats do not depend
// on its group, its tile, the batch or which threads ran its blocks.
// (Which of a tile's e^x go 8 at a time and which one by one depends on its layout: that the vector expf gives
// libm's floats, checked at load, is what keeps this true of the softmax.)
#include "kernels_internal.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

#ifdef BITNET_X86
#include <immintrin.h>
#endif

// As in forward_ops.c: the scalar sums round a multiply and an add apart, on every CPU and compiler.
#pragma STDC FP_CONTRACT OFF

/// The most query rows a tile takes: a token's group, or as many whole groups as fit.
enum { ATTENTION_TILE_ROWS = 16 };

/// How many cached positions ahead a tile asks for its key and value rows.
enum { ATTENTION_PREFETCH_ROWS = 8 };

/// Cached positions per block: longer caches are read block by block and the blocks combined (``combine_row``).
/// Changing it changes the floats of every token that sees more positions than it.
enum { ATTENTION_BLOCK_POSITIONS = 256 };

/// The most memory a split decode step's partial results may take; beyond it each tile runs on one thread.
#define ATTENTION_SPLIT_BYTES ((int64_t)64 << 20)

/// The most tiles of one head a thread runs block by block together, and the most memory their partial results
/// may take (fewer tiles where the cache has so many blocks that they would take more).
enum { ATTENTION_GROUP_TILES = 16 };
#define ATTENTION_GROUP_BYTES ((int64_t)4 << 20)

/// One item's tokens, as the kernels read them.
typedef struct {
    int tokens;
    int64_t kv_head;
    int64_t rows;                                // tokens × group
    int64_t most_visible;                        // the largest of `visible`
    int64_t visible[ATTENTION_TILE_ROWS];        // positions token t sees
    const float *queries[ATTENTION_TILE_ROWS];   // token t's first query head of the group
    float *outputs[ATTENTION_TILE_ROWS];         // and its output
} attention_tile;

/// Asks for one head's key row (into L1) and value row (into L2, read after the softmax) at `offset`.
static inline void prefetch_head_rows(const uint8_t *keys, const uint8_t *values, int64_t offset, int64_t head_bytes) {
    for (int64_t byte = 0; byte < head_bytes; byte += 64) {
        __builtin_prefetch(keys + offset + byte, 0, 3);
        __builtin_prefetch(values + offset + byte, 0, 2);
    }
}

// MARK: - Weighted sums of values

/// `out[h · n + i] = Σ_p weights[p · weight_stride + h] · v_p[i]` for `heads` (≤ 4) heads over `positions` cached
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
            for (int64_t p = 0; p < positions; p++) sum += weights[p * weight_stride + h] * cached_value(values + p * value_stride, i, half);
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
            __m256 weight = _mm256_broadcast_ss(weights + p * weight_stride + h);
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

/// Σ of eight 8-lane accumulators, each summed as ``sum_lanes_ps_avx2`` sums an AVX2 dot's accumulator —
/// (l0 + l4) + (l2 + l6) and (l1 + l5) + (l3 + l7), then those two — so the floats are its own. Lane j of the
/// result is accumulator j's.
TARGET_AVX2 static ALWAYS_INLINE __m256 sum_lanes8_avx2(const __m256 acc[8]) {
    __m256 s[4];
    for (int j = 0; j < 4; j++)  // l0..3 + l4..7 of accumulator 2j in the low half, of 2j + 1 in the high
        s[j] = _mm256_add_ps(_mm256_permute2f128_ps(acc[2 * j], acc[2 * j + 1], 0x20),
                             _mm256_permute2f128_ps(acc[2 * j], acc[2 * j + 1], 0x31));
    __m256 t[2];
    for (int j = 0; j < 2; j++)  // (s0 + s2, s1 + s3) of each half of s[2j], then of s[2j + 1]
        t[j] = _mm256_add_ps(_mm256_shuffle_ps(s[2 * j], s[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(s[2 * j], s[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    // Accumulators 0, 2, 4, 6 in the low half, 1, 3, 5, 7 in the high.
    __m256 sums = _mm256_add_ps(_mm256_shuffle_ps(t[0], t[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                _mm256_shuffle_ps(t[0], t[1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm256_permutevar8x32_ps(sums, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/// ``bitnet_dot_f32_avx2`` of 4·G query rows with each pair of cached keys p, p + 1, four rows at a time: both keys
/// meet each loaded query, and the eight dots are summed together (`dimension` a multiple of 8, so the dot has no
/// scalar tail). An odd last position is paired with itself. `values` is only asked for ahead, as keys are.
TARGET_AVX2 static ALWAYS_INLINE void score_rows_f32_avx2(const uint8_t *keys, const uint8_t *values, int64_t stride,
                                                          int64_t positions, const float *const queries[16],
                                                          int64_t dimension, float scale, float *scores,
                                                          int64_t score_stride, float *packed, const int G) {
    const int rows = 4 * G;
    const int64_t head_bytes = dimension * 4;
    for (int64_t i = 0; i < dimension; i += 8)  // each 8 dimensions of the rows side by side
        for (int q = 0; q < rows; q++) _mm256_storeu_ps(packed + i * rows + 8 * q, _mm256_loadu_ps(queries[q] + i));
    for (int64_t p = 0; p < positions; p += 2) {
        const float *first = (const float *)(keys + p * stride);
        const float *second = p + 1 < positions ? (const float *)(keys + (p + 1) * stride) : first;
        if (p + ATTENTION_PREFETCH_ROWS + 1 < positions) {
            prefetch_head_rows(keys, values, (p + ATTENTION_PREFETCH_ROWS) * stride, head_bytes);
            prefetch_head_rows(keys, values, (p + ATTENTION_PREFETCH_ROWS + 1) * stride, head_bytes);
        }
        for (int g = 0; g < G; g++) {
            __m256 acc[8];  // rows 4g … 4g + 3 at p, then at p + 1
            for (int a = 0; a < 8; a++) acc[a] = _mm256_setzero_ps();
            for (int64_t i = 0; i < dimension; i += 8) {
                __m256 key0 = _mm256_loadu_ps(first + i), key1 = _mm256_loadu_ps(second + i);
                const float *chunk = packed + i * rows + 32 * g;
                for (int q = 0; q < 4; q++) {
                    __m256 query = _mm256_loadu_ps(chunk + 8 * q);
                    acc[q] = _mm256_fmadd_ps(key0, query, acc[q]);
                    acc[4 + q] = _mm256_fmadd_ps(key1, query, acc[4 + q]);
                }
            }
            __m256 dots = _mm256_mul_ps(sum_lanes8_avx2(acc), _mm256_set1_ps(scale));
            _mm_storeu_ps(scores + p * score_stride + 4 * g, _mm256_castps256_ps128(dots));
            if (p + 1 < positions) _mm_storeu_ps(scores + (p + 1) * score_stride + 4 * g, _mm256_extractf128_ps(dots, 1));
        }
    }
}

/// A score kernel of ``score_rows_fn``'s shape: `body` for `groups` groups of rows.
#define SCORE_ROWS(name, target, body, groups)                                                                        \
    target static void name(const uint8_t *keys, const uint8_t *values, int64_t stride, int64_t positions,             \
                            const float *const queries[16], int64_t dimension, float scale, float *scores,             \
                            int64_t score_stride, float *packed) {                                                    \
        body(keys, values, stride, positions, queries, dimension, scale, scores, score_stride, packed, groups);        \
    }

SCORE_ROWS(score_rows16_f32_avx2, TARGET_AVX2, score_rows_f32_avx2, 4)
SCORE_ROWS(score_rows8_f32_avx2, TARGET_AVX2, score_rows_f32_avx2, 2)

// MARK: - AVX-512 tiles
//
// The tiles of a prompt take most of its attention's time once its context is long, and both their halves are
// bound by arithmetic when the cache is in L2: 16 floats a fused multiply-add where AVX2 has 8, and several rows
// for each key or value loaded.

#define TARGET_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl")))

/// Σ of each 8-lane half of eight accumulators, each half summed as ``sum_lanes_ps_avx2`` sums an AVX2 dot's
/// accumulator — (l0 + l4) + (l2 + l6) and (l1 + l5) + (l3 + l7), then those two — so the floats are its own.
/// Lane 4k + j of the result is half k & 1 of accumulator 2j + (k >> 1).
TARGET_AVX512 static ALWAYS_INLINE __m512 sum_halves8_avx512(const __m512 acc[8]) {
    __m512 s[4];
    for (int j = 0; j < 4; j++)  // blocks: [l0..3 + l4..7 of each half] of accumulators 2j, 2j + 1
        s[j] = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2 * j], acc[2 * j + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(acc[2 * j], acc[2 * j + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    __m512 t[2];
    for (int j = 0; j < 2; j++)  // lanes (s0 + s2, s1 + s3) of each block of s[2j], then of s[2j + 1]
        t[j] = _mm512_add_ps(_mm512_shuffle_ps(s[2 * j], s[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(s[2 * j], s[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_ps(t[0], t[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_ps(t[0], t[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

/// ``bitnet_dot_f32_avx2`` of 8·G query rows with cached keys, 16 accumulators at a time: one holds a pair of rows
/// with one key, row 2m's dot in lanes 0–7 and row 2m + 1's in lanes 8–15, each the AVX2 dot's one accumulator
/// (`dimension` a multiple of 8, so it has no scalar tail). A key's 8 dimensions are one broadcast load and a pair's
/// one load, shared by 2 keys (G = 2: 16 rows) or 4 (G = 1): 10 or 8 loads and no shuffle for 16 multiply-adds,
/// where pairing two keys in one register took 18 loads and a shuffle. Positions past the last repeat it and are not
/// stored. `values` is only asked for ahead, as keys are.
TARGET_AVX512 static ALWAYS_INLINE void score_rows_f32_avx512(const uint8_t *keys, const uint8_t *values, int64_t stride,
                                                              int64_t positions, const float *const queries[16],
                                                              int64_t dimension, float scale, float *scores,
                                                              int64_t score_stride, float *packed, const int G) {
    // Lane 4k + j of ``sum_halves8_avx512`` holds row 4j + k of a key's rows (G = 2), or of two keys' (G = 1).
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    const int64_t head_bytes = dimension * 4;
    const int K = 4 / G, pairs = 4 * G;  // keys and row pairs a step
    for (int64_t i = 0; i < dimension; i += 8)  // each 8 dimensions of rows 2m and 2m + 1 side by side
        for (int m = 0; m < pairs; m++) {
            _mm256_storeu_ps(packed + (i * G + 2 * m) * 8, _mm256_loadu_ps(queries[2 * m] + i));
            _mm256_storeu_ps(packed + (i * G + 2 * m + 1) * 8, _mm256_loadu_ps(queries[2 * m + 1] + i));
        }
    for (int64_t p = 0; p < positions; p += K) {
        const float *key[4];
        for (int k = 0; k < K; k++) key[k] = (const float *)(keys + (p + k < positions ? p + k : positions - 1) * stride);
        for (int k = 0; k < K; k++)
            if (p + ATTENTION_PREFETCH_ROWS + k < positions) prefetch_head_rows(keys, values, (p + ATTENTION_PREFETCH_ROWS + k) * stride, head_bytes);
        __m512 acc[16];
        for (int a = 0; a < 16; a++) acc[a] = _mm512_setzero_ps();
        for (int64_t i = 0; i < dimension; i += 8) {
            const float *chunk = packed + i * G * 8;
            __m512 rows[8];
            for (int m = 0; m < pairs; m++) rows[m] = _mm512_loadu_ps(chunk + 16 * m);
            for (int k = 0; k < K; k++) {
                __m512 dims = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(key[k] + i))));
                for (int m = 0; m < pairs; m++) acc[pairs * k + m] = _mm512_fmadd_ps(dims, rows[m], acc[pairs * k + m]);
            }
        }
        for (int half = 0; half < 2; half++) {  // accumulators 8·half …: one key's 16 rows, or two keys' 8
            __m512 dots = _mm512_mul_ps(_mm512_permutexvar_ps(order, sum_halves8_avx512(acc + 8 * half)), _mm512_set1_ps(scale));
            if (G == 2) {
                if (p + half < positions) _mm512_storeu_ps(scores + (p + half) * score_stride, dots);
            } else {
                if (p + 2 * half < positions) _mm256_storeu_ps(scores + (p + 2 * half) * score_stride, _mm512_castps512_ps256(dots));
                if (p + 2 * half + 1 < positions)
                    _mm256_storeu_ps(scores + (p + 2 * half + 1) * score_stride, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(dots), 1)));
            }
        }
    }
}

/// ``bitnet_dot_f16_avx2`` of 16 query rows with each cached key: a row's accumulator holds the AVX2 dot's two, its
/// first in lanes 0–7 and its second in lanes 8–15 (`dimension` a multiple of 16, so it has no scalar tail). Rows
/// 2m and 2m + 1 add their two into the halves of one accumulator, which ``sum_halves8_avx512`` sums. `values` is
/// only asked for ahead.
TARGET_AVX512 static void score_rows_f16_avx512(const uint8_t *keys, const uint8_t *values, int64_t stride, int64_t positions,
                                                const float *const queries[16], int64_t dimension, float scale,
                                                float *scores, int64_t score_stride, float *packed) {
    const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    const int64_t head_bytes = dimension * 2;
    for (int64_t i = 0; i < dimension; i += 16)  // as the f32 tile packs them, 16 dimensions at a time
        for (int q = 0; q < 16; q++) _mm512_storeu_ps(packed + (i + q) * 16, _mm512_loadu_ps(queries[q] + i));
    for (int64_t p = 0; p < positions; p++) {
        const uint16_t *key = (const uint16_t *)(keys + p * stride);
        if (p + ATTENTION_PREFETCH_ROWS < positions) prefetch_head_rows(keys, values, (p + ATTENTION_PREFETCH_ROWS) * stride, head_bytes);
        __m512 acc[16];
        for (int q = 0; q < 16; q++) acc[q] = _mm512_setzero_ps();
        for (int64_t i = 0; i < dimension; i += 16) {
            __m512 widened = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(key + i)));
            for (int q = 0; q < 16; q++) acc[q] = _mm512_fmadd_ps(widened, _mm512_loadu_ps(packed + (i + q) * 16), acc[q]);
        }
        __m512 pairs[8];
        for (int m = 0; m < 8; m++)
            pairs[m] = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2 * m], acc[2 * m + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm512_shuffle_f32x4(acc[2 * m], acc[2 * m + 1], _MM_SHUFFLE(3, 2, 3, 2)));
        __m512 dots = _mm512_permutexvar_ps(order, sum_halves8_avx512(pairs));
        _mm512_storeu_ps(scores + p * score_stride, _mm512_mul_ps(dots, _mm512_set1_ps(scale)));
    }
}

SCORE_ROWS(score_rows16_f32_avx512, TARGET_AVX512, score_rows_f32_avx512, 2)
SCORE_ROWS(score_rows8_f32_avx512, TARGET_AVX512, score_rows_f32_avx512, 1)

TARGET_AVX512 static ALWAYS_INLINE __m512 cached_values_avx512(const uint8_t *row, int64_t i, int half) {
    return half ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 2 * i))) : _mm512_loadu_ps((const float *)row + i);
}

/// Columns [i, i + 32) of R (≤ 8) rows over the cached values each sees, a fused multiply-add per value and
/// position in position order as ``accumulate_columns_avx2`` does: row r's weight at p is
/// `weights[p · weight_stride + r]`, it sees positions below `visible[r]` (all of them below `shared`), and its
/// sums go to `out[r] + i`.
TARGET_AVX512 static ALWAYS_INLINE void accumulate_rows_avx512(float *const out[8], const float *weights, int64_t weight_stride,
                                                               const int64_t visible[8], int64_t shared, int64_t most,
                                                               const uint8_t *values, int64_t value_stride, int64_t i,
                                                               const int R, int half) {
    __m512 acc[8][2];
    for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    int64_t p = 0;
    for (; p < shared; p++) {
        const uint8_t *row = values + p * value_stride;
        __m512 value[2] = {cached_values_avx512(row, i, half), cached_values_avx512(row, i + 16, half)};
        for (int r = 0; r < R; r++) {
            __m512 weight = _mm512_set1_ps(weights[p * weight_stride + r]);
            for (int v = 0; v < 2; v++) acc[r][v] = _mm512_fmadd_ps(weight, value[v], acc[r][v]);
        }
    }
    for (; p < most; p++) {
        const uint8_t *row = values + p * value_stride;
        __m512 value[2] = {cached_values_avx512(row, i, half), cached_values_avx512(row, i + 16, half)};
        for (int r = 0; r < R; r++) {
            if (p >= visible[r]) continue;
            __m512 weight = _mm512_set1_ps(weights[p * weight_stride + r]);
            for (int v = 0; v < 2; v++) acc[r][v] = _mm512_fmadd_ps(weight, value[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++) {
        _mm512_storeu_ps(out[r] + i, acc[r][0]);
        _mm512_storeu_ps(out[r] + i + 16, acc[r][1]);
    }
}

/// Every row of a tile, eight at a time, `dimension` a multiple of 32.
TARGET_AVX512 static ALWAYS_INLINE void accumulate_tile_avx512(const attention_tile *tile, int64_t group, int64_t dimension,
                                                               const float *scores, const uint8_t *values, int64_t stride,
                                                               int half) {
    for (int64_t first = 0; first < tile->rows; first += 8) {
        const int R = tile->rows - first < 8 ? (int)(tile->rows - first) : 8;
        float *out[8];
        int64_t visible[8], shared = INT64_MAX, most = 0;
        for (int r = 0; r < R; r++) {
            int64_t t = (first + r) / group, h = (first + r) % group;
            out[r] = tile->outputs[t] + h * dimension;
            visible[r] = tile->visible[t];
            if (visible[r] < shared) shared = visible[r];
            if (visible[r] > most) most = visible[r];
        }
        for (int64_t i = 0; i < dimension; i += 32) {
            const float *weights = scores + first;
            switch (R) {
#define ROWS(n) case n: accumulate_rows_avx512(out, weights, tile->rows, visible, shared, most, values, stride, i, n, half); break;
            ROWS(8) ROWS(7) ROWS(6) ROWS(5) ROWS(4) ROWS(3) ROWS(2) ROWS(1)
#undef ROWS
            }
        }
    }
}

TARGET_AVX512 static void accumulate_tile_f32_avx512(const attention_tile *tile, int64_t group, int64_t dimension,
                                                     const float *scores, const uint8_t *values, int64_t stride) {
    accumulate_tile_avx512(tile, group, dimension, scores, values, stride, 0);
}

TARGET_AVX512 static void accumulate_tile_f16_avx512(const attention_tile *tile, int64_t group, int64_t dimension,
                                                     const float *scores, const uint8_t *values, int64_t stride) {
    accumulate_tile_avx512(tile, group, dimension, scores, values, stride, 1);
}
#endif

// MARK: - Items

/// Scores of 16 (or 8) query rows with every key a tile reads (``score_rows_f32_avx512``).
typedef void (*score_rows_fn)(const uint8_t *keys, const uint8_t *values, int64_t stride, int64_t positions,
                              const float *const queries[16], int64_t dimension, float scale, float *scores,
                              int64_t score_stride, float *packed);

/// Every row's weighted sums of a tile (``accumulate_tile_avx512``).
typedef void (*accumulate_tile_fn)(const attention_tile *tile, int64_t group, int64_t dimension, const float *scores,
                                   const uint8_t *values, int64_t stride);

typedef struct {
    const bitnet_attention_args *args;
    bitnet_float_dot dot;
    bitnet_float_dot4 dot4;  // NULL: one dot at a time
    score_rows_fn score_rows16, score_rows8;  // NULL: the dots above for every row
    accumulate_fn accumulate;
    accumulate_tile_fn accumulate_tile;  // NULL: `accumulate` for each token's heads
    int vector_expf;  // ``bitnet_vector_expf`` of the calling thread's level
    size_t element_bytes;
    int64_t group;    // query heads per key/value head
    int tile_tokens;  // tokens per item
    int64_t tiles;    // tiles per key/value head
    int64_t blocks;   // position blocks of the token that sees the most
    int64_t partial_floats;  // floats of one tile's block results (``block_partial``)
    float *partials;  // split decode: every tile's blocks, shared between the two runs
    _Atomic int failed;
} attention_job;

/// The tokens of `item` and where their queries and outputs are.
static attention_tile tile_of(const attention_job *job, int64_t item) {
    const bitnet_attention_args *a = job->args;
    const int64_t kv_head = item / job->tiles, first = item % job->tiles * job->tile_tokens;
    const int64_t head_offset = kv_head * job->group * a->head_dimension;
    attention_tile tile = {.tokens = (int)(a->tokens - first < job->tile_tokens ? a->tokens - first : job->tile_tokens),
                           .kv_head = kv_head};
    tile.rows = tile.tokens * job->group;
    for (int t = 0; t < tile.tokens; t++) {
        int64_t token = first + t;
        tile.visible[t] = a->positions[token] + 1;
        tile.queries[t] = a->queries + a->rows[token] * a->row_stride + head_offset;
        tile.outputs[t] = a->output + a->rows[token] * a->row_stride + head_offset;
        if (tile.visible[t] > tile.most_visible) tile.most_visible = tile.visible[t];
    }
    return tile;
}

/// Rows `first ..< first + count` of the tile with the level's score kernel.
static void score_rows(const attention_job *job, score_rows_fn kernel, const attention_tile *tile, int64_t first, int count,
                       const uint8_t *keys, const uint8_t *values, int64_t stride, float *scores, float *packed) {
    const int64_t dimension = job->args->head_dimension;
    const float *queries[16];
    for (int r = 0; r < count; r++)
        queries[r] = tile->queries[(first + r) / job->group] + (first + r) % job->group * dimension;
    kernel(keys, values, stride, tile->most_visible, queries, dimension, job->args->scale, scores + first, tile->rows, packed);
}

/// `scores[p · rows + r]` = query row r · key p · scale for every position the tile reads; −∞ where a row's token
/// does not see p, so its softmax weight there is 0. `packed` holds the score kernels' 16 query rows.
static void score_tile(const attention_job *job, const attention_tile *tile, const uint8_t *keys, const uint8_t *values,
                       int64_t stride, float *scores, float *packed) {
    const bitnet_attention_args *a = job->args;
    const int64_t dimension = a->head_dimension, group = job->group, rows = tile->rows;
    int64_t done = 0;  // rows the score kernels took
    for (; job->score_rows16 && done + 16 <= rows; done += 16) score_rows(job, job->score_rows16, tile, done, 16, keys, values, stride, scores, packed);
    for (; job->score_rows8 && done + 8 <= rows; done += 8) score_rows(job, job->score_rows8, tile, done, 8, keys, values, stride, scores, packed);
    if (done < rows) {
        // Between two decode steps the weights' stream pushes the cache out of every cache, and rows `stride` apart
        // are no stream a core's prefetcher follows: each position asks for the keys and values ahead.
        const int64_t head_bytes = dimension * (int64_t)job->element_bytes;
        for (int64_t position = 0; position < ATTENTION_PREFETCH_ROWS && position < tile->most_visible; position++)
            prefetch_head_rows(keys, values, position * stride, head_bytes);
        for (int64_t position = 0; position < tile->most_visible; position++) {
            const uint8_t *key = keys + position * stride;
            if (position + ATTENTION_PREFETCH_ROWS < tile->most_visible)
                prefetch_head_rows(keys, values, (position + ATTENTION_PREFETCH_ROWS) * stride, head_bytes);
            for (int t = 0; t < tile->tokens; t++) {
                float *row = scores + position * rows + t * group;
                int64_t h = done > t * group ? done - t * group : 0;
                for (; job->dot4 && h + 4 <= group; h += 4) {
                    float dots[4];
                    job->dot4(key, tile->queries[t] + h * dimension, dimension, dimension, dots);
                    for (int k = 0; k < 4; k++) row[h + k] = dots[k] * a->scale;
                }
                for (; h < group; h++) row[h] = job->dot(key, tile->queries[t] + h * dimension, dimension) * a->scale;
            }
        }
    }
    for (int t = 0; t < tile->tokens; t++)
        for (int64_t position = tile->visible[t]; position < tile->most_visible; position++)
            for (int64_t h = 0; h < group; h++) scores[position * rows + t * group + h] = -INFINITY;
}

/// Softmax in place down each of the `rows` columns of `scores` (`positions` rows of them): the maximum, e^(s − max)
/// and their total in position order, then each divided by the total. The −∞ of a position a row does not see
/// gives e^(−∞) = +0, which leaves the maximum and the total as they were. `work` holds 2 · rows floats.
static ALWAYS_INLINE void softmax_columns(float *scores, int64_t positions, int64_t rows, int vector_expf, float *work) {
    float *maximum = work, *total = work + rows;
    for (int64_t r = 0; r < rows; r++) maximum[r] = -INFINITY, total[r] = 0;
    for (int64_t p = 0; p < positions; p++)
        for (int64_t r = 0; r < rows; r++) maximum[r] = scores[p * rows + r] > maximum[r] ? scores[p * rows + r] : maximum[r];
    for (int64_t p = 0; p < positions; p++)
        for (int64_t r = 0; r < rows; r++) scores[p * rows + r] -= maximum[r];
    bitnet_exp_in_place(scores, positions * rows, vector_expf);
    for (int64_t p = 0; p < positions; p++)
        for (int64_t r = 0; r < rows; r++) total[r] += scores[p * rows + r];
    for (int64_t p = 0; p < positions; p++)
        for (int64_t r = 0; r < rows; r++) scores[p * rows + r] /= total[r];
}

/// Each token's heads' weighted sums of the values it sees, four heads at a time.
static void accumulate_tile(const attention_job *job, const attention_tile *tile, const float *scores,
                            const uint8_t *values, int64_t stride) {
    const int64_t dimension = job->args->head_dimension, group = job->group;
    if (job->accumulate_tile) {
        job->accumulate_tile(tile, group, dimension, scores, values, stride);
        return;
    }
    for (int t = 0; t < tile->tokens; t++)
        for (int64_t h = 0; h < group; h += 4)
            job->accumulate(tile->outputs[t] + h * dimension, scores + t * group + h, tile->rows,
                            group - h < 4 ? (int)(group - h) : 4, values, stride, tile->visible[t], dimension);
}

// MARK: - Position blocks
//
// A cache longer than ``ATTENTION_BLOCK_POSITIONS`` is read block by block: each block's softmax and weighted sums
// are computed as if the block were the whole cache, keeping the block's maximum score m_b and total t_b, and the
// blocks are combined in order (``combine_row``). So a decode step's few tiles can share their blocks between
// threads, and a token's floats are the same whether its blocks ran on one thread or several, in a prompt or alone.
// A row that sees one block gets that block's floats unchanged.

/// A tile's results for one block: the rows' weighted sums (`rows × dimension` floats, row r = token t's head h at
/// r = t · group + h), then each row's maximum score, then its total of e^(s − max).
typedef struct {
    float *sums, *maximum, *total;
} block_partial;

static block_partial partial_at(const attention_job *job, float *base, int64_t block) {
    const int64_t rows = job->tile_tokens * job->group, floats = job->partial_floats;
    float *sums = base + block * floats;
    return (block_partial){sums, sums + rows * job->args->head_dimension, sums + rows * job->args->head_dimension + rows};
}

static int64_t blocks_of(int64_t positions) { return (positions + ATTENTION_BLOCK_POSITIONS - 1) / ATTENTION_BLOCK_POSITIONS; }

/// What one thread needs for a tile: scores (one block's positions × rows), the softmax's two floats a row, the
/// score kernels' 16 packed query rows, and a factor per block for ``combine_row``.
typedef struct {
    float *scores, *work, *packed, *factors;
} attention_scratch;

static float *scratch_alloc(const attention_job *job, int64_t positions, int64_t rows, int64_t extra, attention_scratch *scratch) {
    const int64_t scores = (positions < ATTENTION_BLOCK_POSITIONS ? positions : ATTENTION_BLOCK_POSITIONS) * rows;
    float *memory = malloc((size_t)(scores + 2 * rows + 16 * job->args->head_dimension + blocks_of(positions) + extra) * sizeof(float));
    if (!memory) return NULL;
    scratch->scores = memory;
    scratch->work = memory + scores;
    scratch->packed = scratch->work + 2 * rows;
    scratch->factors = scratch->packed + 16 * job->args->head_dimension;
    return memory;
}

/// Scores, softmax and weighted sums of `tile` over `positions` cached rows from `keys` and `values`, its outputs
/// where `tile` says; leaves each row's maximum and total in `scratch->work` (rows, then rows).
static void attend_positions(const attention_job *job, const attention_tile *tile, const uint8_t *keys, const uint8_t *values,
                             int64_t stride, const attention_scratch *scratch) {
    score_tile(job, tile, keys, values, stride, scratch->scores, scratch->packed);
    softmax_columns(scratch->scores, tile->most_visible, tile->rows, job->vector_expf, scratch->work);
    accumulate_tile(job, tile, scratch->scores, values, stride);
}

/// Block `block` of `tile` into `partial`: the tokens that see any of its positions, as a tile of their own over
/// the block's rows of the cache.
static void attend_block(const attention_job *job, const attention_tile *tile, int64_t block, const uint8_t *keys,
                         const uint8_t *values, int64_t stride, block_partial partial, const attention_scratch *scratch) {
    const int64_t dimension = job->args->head_dimension, group = job->group, start = block * ATTENTION_BLOCK_POSITIONS;
    attention_tile part = {.kv_head = tile->kv_head};
    int64_t token_of[ATTENTION_TILE_ROWS];
    for (int t = 0; t < tile->tokens; t++) {
        if (tile->visible[t] <= start) continue;
        int64_t end = tile->visible[t] < start + ATTENTION_BLOCK_POSITIONS ? tile->visible[t] : start + ATTENTION_BLOCK_POSITIONS;
        part.visible[part.tokens] = end - start;
        part.queries[part.tokens] = tile->queries[t];
        part.outputs[part.tokens] = partial.sums + t * group * dimension;
        if (part.visible[part.tokens] > part.most_visible) part.most_visible = part.visible[part.tokens];
        token_of[part.tokens++] = t;
    }
    part.rows = part.tokens * group;
    attend_positions(job, &part, keys + start * stride, values + start * stride, stride, scratch);
    for (int t = 0; t < part.tokens; t++)
        for (int64_t h = 0; h < group; h++) {
            partial.maximum[token_of[t] * group + h] = scratch->work[t * group + h];
            partial.total[token_of[t] * group + h] = scratch->work[part.rows + t * group + h];
        }
}

/// Row `row`'s output from its `blocks` blocks of `base`: with M the largest block maximum and c_b = t_b · e^(m_b − M),
/// out = Σ_b (c_b / Σ c) · sums_b, each sum in block order, a multiply and an add rounded apart. With one block
/// c_0 / Σ c = 1 and the block's floats pass unchanged. `factors` holds a float per block.
static void combine_row(const attention_job *job, float *out, float *base, int64_t blocks, int64_t row, float *factors) {
    const int64_t dimension = job->args->head_dimension;
    float maximum = -INFINITY;
    for (int64_t b = 0; b < blocks; b++) {
        float m = partial_at(job, base, b).maximum[row];
        maximum = m > maximum ? m : maximum;
    }
    float total = 0;
    for (int64_t b = 0; b < blocks; b++) {
        block_partial partial = partial_at(job, base, b);
        factors[b] = partial.total[row] * expf(partial.maximum[row] - maximum);
        total = b == 0 ? factors[b] : total + factors[b];
    }
    for (int64_t b = 0; b < blocks; b++) factors[b] /= total;
    const float *first = partial_at(job, base, 0).sums + row * dimension;
    for (int64_t i = 0; i < dimension; i++) out[i] = factors[0] * first[i];
    for (int64_t b = 1; b < blocks; b++) {
        const float *sums = partial_at(job, base, b).sums + row * dimension;
        for (int64_t i = 0; i < dimension; i++) out[i] = out[i] + factors[b] * sums[i];
    }
}

/// Every row of `tile` from its blocks in `base`.
static void combine_tile(const attention_job *job, const attention_tile *tile, float *base, float *factors) {
    const int64_t dimension = job->args->head_dimension;
    for (int t = 0; t < tile->tokens; t++)
        for (int64_t h = 0; h < job->group; h++)
            combine_row(job, tile->outputs[t] + h * dimension, base, blocks_of(tile->visible[t]), t * job->group + h, factors);
}

static const uint8_t *head_rows(const attention_job *job, const void *cache, int64_t kv_head) {
    return (const uint8_t *)cache + kv_head * job->args->head_stride * (int64_t)job->element_bytes;
}

// MARK: - Items

/// Items `begin ..< end`, each a tile. A tile whose positions fit one block runs in one pass; the others run in
/// groups of up to ``ATTENTION_GROUP_TILES`` tiles of one key/value head, block by block, each block for every tile
/// of the group before the next (so a long cache's block is read from memory once for the group, then from L2),
/// into this thread's partials, which are then combined tile by tile.
static void attention_task(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    attention_job *job = context;
    const bitnet_attention_args *a = job->args;
    int64_t most = 0, most_rows = 0;
    for (int64_t item = begin; item < end; item++) {  // the scratch this share needs (tile_of is cheap)
        attention_tile tile = tile_of(job, item);
        if (tile.most_visible > most) most = tile.most_visible;
        if (tile.rows > most_rows) most_rows = tile.rows;
    }
    const int64_t blocks = blocks_of(most), tile_floats = blocks * job->partial_floats;
    int64_t group_tiles = 0;
    if (blocks > 1) {
        group_tiles = ATTENTION_GROUP_BYTES / (tile_floats * (int64_t)sizeof(float));
        group_tiles = group_tiles < 1 ? 1 : group_tiles > ATTENTION_GROUP_TILES ? ATTENTION_GROUP_TILES : group_tiles;
    }
    attention_scratch scratch;
    float *memory = scratch_alloc(job, most, most_rows, group_tiles * tile_floats, &scratch);
    if (!memory) {
        atomic_store(&job->failed, 1);
        return;
    }
    float *partials = scratch.factors + blocks;
    const int64_t stride = a->position_stride * (int64_t)job->element_bytes;
    attention_tile group[ATTENTION_GROUP_TILES];
    for (int64_t item = begin; item < end;) {
        attention_tile tile = tile_of(job, item++);
        const uint8_t *keys = head_rows(job, a->keys, tile.kv_head), *values = head_rows(job, a->values, tile.kv_head);
        if (tile.most_visible <= ATTENTION_BLOCK_POSITIONS) {
            attend_positions(job, &tile, keys, values, stride, &scratch);
            continue;
        }
        // The tiles after it that share its head and need blocks too (items run head by head).
        int count = 0;
        int64_t group_blocks = blocks_of(tile.most_visible);
        group[count++] = tile;
        while (count < group_tiles && item < end) {
            attention_tile next = tile_of(job, item);
            if (next.kv_head != tile.kv_head || next.most_visible <= ATTENTION_BLOCK_POSITIONS) break;
            if (blocks_of(next.most_visible) > group_blocks) group_blocks = blocks_of(next.most_visible);
            group[count++] = next;
            item++;
        }
        for (int64_t block = 0; block < group_blocks; block++)
            for (int g = 0; g < count; g++)
                if (block < blocks_of(group[g].most_visible))
                    attend_block(job, &group[g], block, keys, values, stride, partial_at(job, partials + g * tile_floats, block), &scratch);
        for (int g = 0; g < count; g++) combine_tile(job, &group[g], partials + g * tile_floats, scratch.factors);
    }
    free(memory);
}

/// Split decode, first run: items `begin ..< end` are (tile, block) pairs, their partials the job's.
static void block_task(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    attention_job *job = context;
    const bitnet_attention_args *a = job->args;
    attention_scratch scratch;
    float *memory = scratch_alloc(job, ATTENTION_BLOCK_POSITIONS, job->tile_tokens * job->group, 0, &scratch);
    if (!memory) {
        atomic_store(&job->failed, 1);
        return;
    }
    const int64_t stride = a->position_stride * (int64_t)job->element_bytes;
    for (int64_t item = begin; item < end; item++) {
        const int64_t tile_item = item / job->blocks, block = item % job->blocks;
        attention_tile tile = tile_of(job, tile_item);
        if (block >= blocks_of(tile.most_visible)) continue;
        float *base = job->partials + tile_item * job->blocks * job->partial_floats;
        attend_block(job, &tile, block, head_rows(job, a->keys, tile.kv_head), head_rows(job, a->values, tile.kv_head),
                     stride, partial_at(job, base, block), &scratch);
    }
    free(memory);
}

/// Split decode, second run: each tile's rows from the blocks the first run left.
static void combine_task(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    attention_job *job = context;
    float *factors = malloc((size_t)job->blocks * sizeof(float));
    if (!factors) {
        atomic_store(&job->failed, 1);
        return;
    }
    for (int64_t item = begin; item < end; item++) {
        attention_tile tile = tile_of(job, item);
        combine_tile(job, &tile, job->partials + item * job->blocks * job->partial_floats, factors);
    }
    free(factors);
}

int bitnet_attention(bitnet_pool *pool, const bitnet_attention_args *args) {
    int level = bitnet_level();
    const bitnet_kernel_table *table = bitnet_kernels_for_level(level);
    int half = args->cache_type == BITNET_CACHE_F16;
    int encoding = half ? BITNET_FLOAT_F16 : BITNET_FLOAT_F32;
    if (args->key_value_heads < 1 || args->heads < args->key_value_heads || args->heads % args->key_value_heads != 0) return -1;
    int64_t group = args->heads / args->key_value_heads;
    int tile_tokens = group >= ATTENTION_TILE_ROWS ? 1 : (int)(ATTENTION_TILE_ROWS / group);
    int64_t most_visible = 0;
    for (int64_t t = 0; t < args->tokens; t++)
        if (args->positions[t] + 1 > most_visible) most_visible = args->positions[t] + 1;
    const int64_t rows = tile_tokens * group;
    attention_job job = {
        .args = args,
        .dot = table->dot[encoding],
        .dot4 = table->dot4[encoding],
        .accumulate = half ? accumulate_f16_scalar : accumulate_f32_scalar,
        .vector_expf = bitnet_vector_expf(level),
        .element_bytes = half ? 2 : 4,
        .group = group,
        .tile_tokens = tile_tokens,
        .tiles = (args->tokens + tile_tokens - 1) / tile_tokens,
        .blocks = blocks_of(most_visible),
        .partial_floats = rows * args->head_dimension + 2 * rows,
    };
#ifdef BITNET_X86
    // The score tiles repeat the AVX2 dots' operations, so they stand in for those dots only, where they have no tail.
    const int f32_tiles = !half && job.dot == bitnet_dot_f32_avx2 && args->head_dimension % 8 == 0;
    const int f16_tiles = half && job.dot == bitnet_dot_f16_avx2 && args->head_dimension % 16 == 0;
    if (level >= BITNET_LEVEL_AVX2) {
        job.accumulate = half ? accumulate_f16_avx2 : accumulate_f32_avx2;
        if (f32_tiles) {
            job.score_rows16 = score_rows16_f32_avx2;
            job.score_rows8 = score_rows8_f32_avx2;
        }
    }
    if (level >= BITNET_LEVEL_AVX512VNNI) {
        if (f32_tiles) {
            job.score_rows16 = score_rows16_f32_avx512;
            job.score_rows8 = score_rows8_f32_avx512;
        }
        if (f16_tiles) job.score_rows16 = score_rows_f16_avx512;
        if (args->head_dimension % 32 == 0) job.accumulate_tile = half ? accumulate_tile_f16_avx512 : accumulate_tile_f32_avx512;
    }
#endif
    // Items run key/value head by head: a thread's share goes over one head's cached rows, which stay in L2.
    int64_t items = job.tiles * args->key_value_heads;
    int threads = bitnet_pool_threads(pool);
    // A decode step has a tile per key/value head, too few to share evenly: its blocks are shared instead.
    const int64_t partial_bytes = items * job.blocks * job.partial_floats * (int64_t)sizeof(float);
    if (job.blocks > 1 && items < 4 * threads && partial_bytes <= ATTENTION_SPLIT_BYTES)
        job.partials = malloc((size_t)partial_bytes);  // without it, each tile on one thread (the same floats)
    if (job.partials) {
        int64_t grain = items * job.blocks / (threads * 4);
        bitnet_pool_run(pool, items * job.blocks, grain < 1 ? 1 : grain, block_task, &job);
        if (!atomic_load(&job.failed)) bitnet_pool_run(pool, items, 1, combine_task, &job);
        free(job.partials);
    } else {
        int64_t grain = items / (threads * 4);
        bitnet_pool_run(pool, items, grain < 1 ? 1 : grain, attention_task, &job);
    }
    return atomic_load(&job.failed) ? -1 : 0;
}
