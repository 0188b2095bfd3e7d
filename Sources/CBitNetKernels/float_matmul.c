// Float matrices: the embedding-sized output projection in F32, F16, BF16, Q8_0 or Q6_K, read in place and
// multiplied with float activations (each weight decoded to the float its type defines, as the Swift decoders
// and gguf-py do) — except Q6_K, multiplied in integers against int8 activations as llama.cpp does. Scalar
// rows and AVX2 (+ FMA, F16C) rows chosen at run time like the ternary tiles.
#include "kernels_internal.h"

#include <math.h>
#include <stdlib.h>

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

/// The little-endian f16 block scale at `p`, as a float.
static inline float half_at(const uint8_t *p) { return bitnet_half_to_float((uint16_t)(p[0] | p[1] << 8)); }

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

/// Q8_0 blocks of 32: f16 d, 32 int8 q; value = d · q.
float bitnet_dot_q8_0_scalar(const void *weights, const float *x, int64_t n) {
    const uint8_t *block = weights;
    float sum = 0;
    for (int64_t b = 0; b < n / 32; b++, block += 34) {
        float d = half_at(block);
        for (int i = 0; i < 32; i++) sum += (d * (float)(int8_t)block[2 + i]) * x[32 * b + i];
    }
    return sum;
}

/// The 6-bit value l (0..63) of Q6_K entry `index` (0..255) of a block: ql holds the low 4 bits, qh the high 2.
static inline int q6_k_level(const uint8_t *block, int index) {
    int half = index / 128, i = index % 128, lane = i / 32, l = i % 32;
    const uint8_t *ql = block + 64 * half, *qh = block + 128 + 32 * half;
    int low = (lane % 2 ? ql[l + 32] : ql[l]) >> (lane / 2 * 4) & 0xF;
    return low | ((qh[l] >> (2 * lane)) & 3) << 4;
}

/// Q6_K blocks of 256 (210 bytes): ql[128], qh[64], int8 scales[16] (one per 16 values), f16 d;
/// value = (d · scale) · (l − 32). Against Q8_K activations: Σ_g scale_g · (Σ l·q − 32 · Σ q) in integers.
float bitnet_dot_q6_k_scalar(const uint8_t *block, const bitnet_q8_k_block *x, int64_t blocks) {
#pragma clang fp contract(off)  // one rounding per product and per sum, as every level does
    float sum = 0;
    for (int64_t b = 0; b < blocks; b++, block += 210, x++) {
        const int8_t *scales = (const int8_t *)(block + 192);
        int32_t total = 0;
        for (int group = 0; group < 16; group++) {
            int32_t products = 0;
            for (int i = 16 * group; i < 16 * group + 16; i++) products += q6_k_level(block, i) * x->q[i];
            total += scales[group] * (products - 32 * x->sums[group]);
        }
        sum += half_at(block + 208) * x->d * (float)total;
    }
    return sum;
}

/// Q8_K activations of `n` values (n a multiple of 256). A NaN makes the block's scale NaN, so it reaches the
/// logits (and the engine's non-finite check) as it does through the float dots.
static void quantize_q8_k(const float *x, int64_t n, bitnet_q8_k_block *blocks) {
    for (int64_t b = 0; b < n / 256; b++) {
        const float *v = x + 256 * b;
        bitnet_q8_k_block *block = blocks + b;
        float amax = 0;
        int nan = 0;
        for (int i = 0; i < 256; i++) {
            float magnitude = fabsf(v[i]);
            nan |= magnitude != magnitude;
            amax = magnitude > amax ? magnitude : amax;
        }
        if (nan) amax = NAN;  // fmaxf would drop it
        float inverse = amax > 0 && isfinite(amax) ? 127.0f / amax : 0;
        block->d = amax / 127.0f;
        for (int group = 0; group < 16; group++) {
            int sum = 0;
            for (int i = 16 * group; i < 16 * group + 16; i++) {
                float scaled = nearbyintf(v[i] * inverse);
                int q = scaled != scaled ? 0 : scaled > 127 ? 127 : scaled < -127 ? -127 : (int)scaled;
                block->q[i] = (int8_t)q;
                sum += q;
            }
            block->sums[group] = (int16_t)sum;
        }
    }
}

// MARK: - NEON

#ifdef BITNET_ARM64
#include <arm_neon.h>

/// Four chains of four lanes over 16 values at a time, then the tail in order.
float bitnet_dot_f32_neon(const void *weights, const float *x, int64_t n) {
    const float *w = weights;
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; k++) acc[k] = vfmaq_f32(acc[k], vld1q_f32(w + i + 4 * k), vld1q_f32(x + i + 4 * k));
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; i++) sum += w[i] * x[i];
    return sum;
}

/// bitnet_dot_f32_neon's order, each f16 weight widened exactly (`fcvtl`).
float bitnet_dot_f16_neon(const void *weights, const float *x, int64_t n) {
    const uint16_t *w = weights;
    float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 4; k++) {
            float32x4_t wide = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(w + i + 4 * k)));
            acc[k] = vfmaq_f32(acc[k], wide, vld1q_f32(x + i + 4 * k));
        }
    float sum = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    for (; i < n; i++) sum += bitnet_half_to_float(w[i]) * x[i];
    return sum;
}
#endif

// MARK: - AVX2

#ifdef BITNET_X86
__attribute__((target("avx2,fma")))
static inline float sum_lanes_ps_avx2(__m256 v) {
    __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
    sum = _mm_add_ss(sum, _mm_shuffle_ps(sum, sum, 0x55));
    return _mm_cvtss_f32(sum);
}

/// Σ w·x over an f16 row in two accumulators, asking every 64 bytes for the line `ahead` bytes on (none where 0).
__attribute__((target("avx2,fma,f16c")))
static inline float dot_f16_avx2(const uint16_t *w, const float *x, int64_t n, int64_t ahead) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        if (ahead) __builtin_prefetch((const uint8_t *)(w + i) + ahead, 0, 3);
        for (int half = 0; half < 32; half += 16) {
            a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + half))), _mm256_loadu_ps(x + i + half), a0);
            a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + half + 8))), _mm256_loadu_ps(x + i + half + 8), a1);
        }
    }
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i))), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8))), _mm256_loadu_ps(x + i + 8), a1);
    }
    float sum = sum_lanes_ps_avx2(_mm256_add_ps(a0, a1));
    for (; i < n; i++) sum += bitnet_half_to_float(w[i]) * x[i];
    return sum;
}

__attribute__((target("avx2,fma,f16c")))
float bitnet_dot_f16_avx2(const void *weights, const float *x, int64_t n) { return dot_f16_avx2(weights, x, n, 0); }

/// How far ahead of its loads each row of the AVX-512 f16 and the bf16 decode kernels asks for its bytes, into L1,
/// and each row of the AVX2 f16 one, which reads one row at a time.
enum { FLOAT_ROW_PREFETCH_BYTES = 512, F16_STREAM_PREFETCH_BYTES = 1024 };

/// bitnet_dot_f16_avx2 for ``BITNET_FLOAT_DECODE_ROWS`` weight rows, operation for operation, one row after another so
/// a thread reads one stream, asking for its lines 1 KiB ahead. Measured on a decode step's 128256 × 2560 output
/// projection (2 Zen 3 cores, against plain reads of the same bytes, 13 alternated rounds): four rows side by side,
/// each asking 512 bytes ahead, read at 81–90 % of the plain read; one row at a time 85–95 % asking 512 bytes ahead,
/// 90–96 % asking 1 KiB ahead. The bf16 rows keep eight side by side: with one accumulator a row, a row alone would
/// wait on its FMAs.
__attribute__((target("avx2,fma,f16c")))
void bitnet_rows_f16_avx2(const void *weights, size_t row_bytes, const float *x, int64_t n,
                          float out[BITNET_FLOAT_DECODE_ROWS]) {
    for (int r = 0; r < BITNET_FLOAT_DECODE_ROWS; r++)
        out[r] = dot_f16_avx2((const uint16_t *)((const uint8_t *)weights + r * row_bytes), x, n, F16_STREAM_PREFETCH_BYTES);
}

/// bitnet_dot_f16_avx2 for four tokens, operation for operation, with each weight vector converted once.
__attribute__((target("avx2,fma,f16c")))
void bitnet_dot4_f16_avx2(const void *weights, const float *x, int64_t x_stride, int64_t n, float out[4]) {
    const uint16_t *w = weights;
    __m256 a0[4], a1[4];
    for (int t = 0; t < 4; t++) a0[t] = a1[t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
        __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8)));
        for (int t = 0; t < 4; t++) {
            a0[t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + t * x_stride + i), a0[t]);
            a1[t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + t * x_stride + i + 8), a1[t]);
        }
    }
    for (int t = 0; t < 4; t++) {
        float sum = sum_lanes_ps_avx2(_mm256_add_ps(a0[t], a1[t]));
        for (int64_t j = i; j < n; j++) sum += bitnet_half_to_float(w[j]) * x[t * x_stride + j];
        out[t] = sum;
    }
}

/// bitnet_dot_f16_avx2 for ``BITNET_FLOAT_DECODE_ROWS`` weight rows, operation for operation: lanes 0–7 of a row's
/// 512-bit accumulator are that dot's first accumulator and lanes 8–15 its second. Each row asks for its line
/// `FLOAT_ROW_PREFETCH_BYTES` ahead as it goes. Measured on a decode step's 128256 × 2560 output projection (Ice Lake,
/// 2 threads, against 29–30 GB/s of plain reads): 4 rows with the next four rows asked for at once read 23–24
/// GB/s; 4 rows asking as they go 26.5–27.5; 8 rows asking as they go 28–29 (12 or 16 rows no more; 8 rows
/// without the requests 22.5–24.5).
__attribute__((target("avx2,fma,f16c,avx512f")))
void bitnet_rows_f16_avx512(const void *weights, size_t row_bytes, const float *x, int64_t n,
                            float out[BITNET_FLOAT_DECODE_ROWS]) {
    enum { R = BITNET_FLOAT_DECODE_ROWS };
    const uint16_t *w[R];
    __m512 acc[R];
    for (int r = 0; r < R; r++) {
        w[r] = (const uint16_t *)((const uint8_t *)weights + r * row_bytes);
        acc[r] = _mm512_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        // Past a row's end this asks for the next row's bytes, or for nothing (a prefetch never faults).
        for (int r = 0; r < R; r++) __builtin_prefetch((const uint8_t *)(w[r] + i) + FLOAT_ROW_PREFETCH_BYTES, 0, 3);
        for (int half = 0; half < 32; half += 16) {
            __m512 xv = _mm512_loadu_ps(x + i + half);
            for (int r = 0; r < R; r++)
                acc[r] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w[r] + i + half))), xv, acc[r]);
        }
    }
    for (; i + 16 <= n; i += 16) {
        __m512 xv = _mm512_loadu_ps(x + i);
        for (int r = 0; r < R; r++)
            acc[r] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w[r] + i))), xv, acc[r]);
    }
    for (int r = 0; r < R; r++) {
        __m256 first = _mm512_castps512_ps256(acc[r]);
        __m256 second = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[r]), 1));
        float sum = sum_lanes_ps_avx2(_mm256_add_ps(first, second));
        for (int64_t j = i; j < n; j++) sum += bitnet_half_to_float(w[r][j]) * x[j];
        out[r] = sum;
    }
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

/// bitnet_dot_bf16_avx2 for ``BITNET_FLOAT_DECODE_ROWS`` weight rows (one accumulator each), operation for
/// operation; each row asks for its bytes `FLOAT_ROW_PREFETCH_BYTES` ahead as it goes, as the AVX-512 f16 ones do.
__attribute__((target("avx2,fma")))
void bitnet_rows_bf16_avx2(const void *weights, size_t row_bytes, const float *x, int64_t n,
                           float out[BITNET_FLOAT_DECODE_ROWS]) {
    enum { R = BITNET_FLOAT_DECODE_ROWS };
    const uint16_t *w[R];
    __m256 acc[R];
    for (int r = 0; r < R; r++) {
        w[r] = (const uint16_t *)((const uint8_t *)weights + r * row_bytes);
        acc[r] = _mm256_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        if (i % 32 == 0)
            for (int r = 0; r < R; r++) __builtin_prefetch((const uint8_t *)(w[r] + i) + FLOAT_ROW_PREFETCH_BYTES, 0, 3);
        __m256 xv = _mm256_loadu_ps(x + i);
        for (int r = 0; r < R; r++) {
            __m256i wide = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w[r] + i))), 16);
            acc[r] = _mm256_fmadd_ps(_mm256_castsi256_ps(wide), xv, acc[r]);
        }
    }
    for (int r = 0; r < R; r++) {
        float sum = sum_lanes_ps_avx2(acc[r]);
        for (int64_t j = i; j < n; j++) sum += bf16_to_float(w[r][j]) * x[j];
        out[r] = sum;
    }
}

/// acc + Σ (scale · q[i]) · x[i] over 16 int8 q.
__attribute__((target("avx2,fma")))
static inline __m256 scaled_int8_fma_avx2(__m128i q, float scale, const float *x, __m256 acc) {
    __m256 s = _mm256_set1_ps(scale);
    __m256 low = _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
    __m256 high = _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))));
    return _mm256_fmadd_ps(high, _mm256_loadu_ps(x + 8), _mm256_fmadd_ps(low, _mm256_loadu_ps(x), acc));
}

__attribute__((target("avx2,fma")))
float bitnet_dot_q8_0_avx2(const void *weights, const float *x, int64_t n) {
    const uint8_t *block = weights;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / 32; b++, block += 34) {
        float d = half_at(block);
        acc = scaled_int8_fma_avx2(_mm_loadu_si128((const __m128i *)(block + 2)), d, x + 32 * b, acc);
        acc = scaled_int8_fma_avx2(_mm_loadu_si128((const __m128i *)(block + 18)), d, x + 32 * b + 16, acc);
    }
    return sum_lanes_ps_avx2(acc);
}

/// The integer sum of one Q6_K block with Q8_K activations (256-bit vectors): per half block, ql[0..32),
/// ql[32..64) and qh[0..32) give four vectors of 32 levels (values l, 32 + l, 64 + l, 96 + l of the half), each two
/// groups of 16 with their own scale. Levels (0…63) × q (±127) pair up in `vpmaddubsw` without saturating; the
/// group scales join in `vpmaddwd`, each broadcast to its 128-bit lane by a byte shuffle, and the −32 · Σq
/// correction is one more `vpmaddwd` a block.
__attribute__((target("avx2,fma,f16c"))) static ALWAYS_INLINE int32_t q6_k_block_sum_avx2(const uint8_t *block, const bitnet_q8_k_block *x) {
    const __m256i low_nibbles = _mm256_set1_epi8(0x0F), high_pair = _mm256_set1_epi8(0x30);
    __m128i scale_bytes = _mm_loadu_si128((const __m128i *)(block + 192));
    __m256i both_lanes = _mm256_broadcastsi128_si256(scale_bytes);
    __m256i correction = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scale_bytes), _mm256_loadu_si256((const __m256i *)x->sums));
    __m256i acc = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(correction, 5));
    for (int half = 0; half < 2; half++) {
        __m256i ql0 = _mm256_loadu_si256((const __m256i *)(block + 64 * half));
        __m256i ql1 = _mm256_loadu_si256((const __m256i *)(block + 64 * half + 32));
        __m256i qh = _mm256_loadu_si256((const __m256i *)(block + 128 + 32 * half));
        __m256i levels[4] = {
            _mm256_or_si256(_mm256_and_si256(ql0, low_nibbles), _mm256_and_si256(_mm256_slli_epi16(qh, 4), high_pair)),
            _mm256_or_si256(_mm256_and_si256(ql1, low_nibbles), _mm256_and_si256(_mm256_slli_epi16(qh, 2), high_pair)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low_nibbles), _mm256_and_si256(qh, high_pair)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low_nibbles), _mm256_and_si256(_mm256_srli_epi16(qh, 2), high_pair)),
        };
        for (int lane = 0; lane < 4; lane++) {
            // Scale bytes 2p (low lane) and 2p + 1 (high lane) into the high byte of every 16-bit element, p = 4 · half
            // + lane; 0x80 gives zero.
            const int p = 4 * half + lane;
            const __m256i pair_of_scales = _mm256_setr_m128i(_mm_set1_epi16((short)(2 * p << 8 | 0x80)), _mm_set1_epi16((short)((2 * p + 1) << 8 | 0x80)));
            __m256i q = _mm256_loadu_si256((const __m256i *)(x->q + 128 * half + 32 * lane));
            __m256i pairs = _mm256_maddubs_epi16(levels[lane], q);
            __m256i scale = _mm256_srai_epi16(_mm256_shuffle_epi8(both_lanes, pair_of_scales), 8);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, scale));
        }
    }
    __m128i lanes = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    lanes = _mm_add_epi32(lanes, _mm_shuffle_epi32(lanes, 0x4E));
    lanes = _mm_add_epi32(lanes, _mm_shuffle_epi32(lanes, 0xB1));
    return _mm_cvtsi128_si32(lanes);
}

/// Σ w·x over a Q6_K row: each block's integer sum, then one float multiply-add a block in block order.
__attribute__((target("avx2,fma,f16c")))
float bitnet_dot_q6_k_avx2(const uint8_t *block, const bitnet_q8_k_block *x, int64_t blocks) {
#pragma clang fp contract(off)  // the per-block multiply-add exactly as the scalar dot rounds it
    float sum = 0;
    for (int64_t b = 0; b < blocks; b++, block += 210, x++) sum += half_at(block + 208) * x->d * (float)q6_k_block_sum_avx2(block, x);
    return sum;
}

/// The rows of a decode step's Q6_K output projection, `GROUP` at a time block by block, each row's floats in
/// its level's dot's order; each row asks for every line of its blocks ahead as it goes (``prefetch_decode_ahead``).
/// A macro over the level's block sum. Measured on the 128256 × 2560 projection (Ice Lake, 2 threads, AVX-512):
/// one row at a time, each with the next two rows asked for at once, read 21–22 GB/s; four rows asking as they
/// go 27–30; eight 22–23.
#define Q6_K_ROWS(block_sum)                                                                                      \
    enum { GROUP = 4 };                                                                                           \
    for (int first = 0; first < BITNET_FLOAT_DECODE_ROWS; first += GROUP) {                                       \
        float sum[GROUP] = {0};                                                                                   \
        for (int64_t b = 0; b < blocks; b++)                                                                      \
            for (int r = 0; r < GROUP; r++) {                                                                     \
                const uint8_t *block = w + (first + r) * row_bytes + b * 210;                                     \
                for (int line = 0; line < 210; line += 64) prefetch_decode_ahead(block + line);                   \
                sum[r] += half_at(block + 208) * x[b].d * (float)block_sum(block, x + b);                         \
            }                                                                                                     \
        for (int r = 0; r < GROUP; r++) out[first + r] = sum[r];                                                  \
    }

__attribute__((target("avx2,fma,f16c")))
void bitnet_rows_q6_k_avx2(const uint8_t *w, size_t row_bytes, const bitnet_q8_k_block *x, int64_t blocks,
                           float out[BITNET_FLOAT_DECODE_ROWS]) {
#pragma clang fp contract(off)
    Q6_K_ROWS(q6_k_block_sum_avx2)
}

#define TARGET_Q6_K_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vnni")))

/// bitnet_dot_q6_k_avx2's integer sum of one block with 512-bit vectors: a half block's 128 levels are two vectors
/// whose 128-bit lanes are four of its groups in order, `vpdpwssd` multiplies in their scales (broadcast per lane
/// by `vpermw`), and the −32 · Σq correction is one `vpmaddwd` a block. Integer sums in any order are the same
/// integers, so the floats are every other level's. Per block it needs about a third of AVX2's instructions: with
/// those, a decode step's Q6_K output projection was bound by arithmetic, not by memory.
TARGET_Q6_K_AVX512 static ALWAYS_INLINE int32_t q6_k_block_sum_avx512(const uint8_t *block, const bitnet_q8_k_block *x) {
    static const int16_t lane_of_element[32] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
    const __m512i low_nibbles = _mm512_set1_epi8(0x0F), high_pair = _mm512_set1_epi8(0x30);
    const __m512i lanes = _mm512_loadu_si512(lane_of_element);
    __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(block + 192)));
    __m512i wide_scales = _mm512_zextsi256_si512(scales);
    __m256i correction = _mm256_slli_epi32(_mm256_madd_epi16(scales, _mm256_loadu_si256((const __m256i *)x->sums)), 5);
    __m512i acc = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(correction));
    for (int half = 0; half < 2; half++) {
        __m512i ql = _mm512_loadu_si512(block + 64 * half);
        __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(block + 128 + 32 * half)));
        // AVX2's levels[0] | levels[1], then levels[2] | levels[3]: qh's bit pairs 0, 1 and 2, 3 moved to bits 4–5.
        __m512i high_first = _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_slli_epi16(qh, 4), _mm512_slli_epi16(qh, 2));
        __m512i high_second = _mm512_mask_blend_epi16(0xFFFF0000u, qh, _mm512_srli_epi16(qh, 2));
        __m512i first = _mm512_or_si512(_mm512_and_si512(ql, low_nibbles), _mm512_and_si512(high_first, high_pair));
        __m512i second = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low_nibbles), _mm512_and_si512(high_second, high_pair));
        const int8_t *q = x->q + 128 * half;
        // Groups 8·half + 4k … + 3, one per 128-bit lane, for k = 0, 1.
        __m512i first_scales = _mm512_permutexvar_epi16(_mm512_add_epi16(lanes, _mm512_set1_epi16((short)(8 * half))), wide_scales);
        __m512i second_scales = _mm512_permutexvar_epi16(_mm512_add_epi16(lanes, _mm512_set1_epi16((short)(8 * half + 4))), wide_scales);
        acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(first, _mm512_loadu_si512(q)), first_scales);
        acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(second, _mm512_loadu_si512(q + 64)), second_scales);
    }
    return _mm512_reduce_add_epi32(acc);
}

TARGET_Q6_K_AVX512 float bitnet_dot_q6_k_avx512(const uint8_t *block, const bitnet_q8_k_block *x, int64_t blocks) {
#pragma clang fp contract(off)  // the per-block multiply-add exactly as the scalar dot rounds it
    float sum = 0;
    for (int64_t b = 0; b < blocks; b++, block += 210, x++) sum += half_at(block + 208) * x->d * (float)q6_k_block_sum_avx512(block, x);
    return sum;
}

/// bitnet_dot_q6_k_avx512 for ``BITNET_FLOAT_DECODE_ROWS`` weight rows (see ``Q6_K_ROWS``).
TARGET_Q6_K_AVX512 void bitnet_rows_q6_k_avx512(const uint8_t *w, size_t row_bytes, const bitnet_q8_k_block *x,
                                                int64_t blocks, float out[BITNET_FLOAT_DECODE_ROWS]) {
#pragma clang fp contract(off)
    Q6_K_ROWS(q6_k_block_sum_avx512)
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

/// bitnet_dot_f32_avx2 for four rows of x, operation for operation, with each weight vector loaded once.
__attribute__((target("avx2,fma")))
void bitnet_dot4_f32_avx2(const void *weights, const float *x, int64_t x_stride, int64_t n, float out[4]) {
    const float *w = weights;
    __m256 acc[4];
    for (int t = 0; t < 4; t++) acc[t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 wv = _mm256_loadu_ps(w + i);
        for (int t = 0; t < 4; t++) acc[t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * x_stride + i), acc[t]);
    }
    for (int t = 0; t < 4; t++) {
        float sum = sum_lanes_ps_avx2(acc[t]);
        for (int64_t j = i; j < n; j++) sum += w[j] * x[t * x_stride + j];
        out[t] = sum;
    }
}
#endif

// MARK: - Entry points

/// Bytes of one row of `columns` values of `encoding`.
static size_t row_bytes_of(int32_t encoding, int64_t columns) {
    switch (encoding) {
    case BITNET_FLOAT_F32: return 4 * (size_t)columns;
    case BITNET_FLOAT_Q8_0: return (size_t)columns / 32 * 34;
    case BITNET_FLOAT_Q6_K: return (size_t)columns / 256 * 210;
    default: return 2 * (size_t)columns;
    }
}

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
    bitnet_float_dot4 dot4;
    bitnet_float_rows decode_rows;
    bitnet_q6_k_dot q6_k;
    bitnet_q6_k_rows q6_k_rows;
    const bitnet_q8_k_block *quantized;  // Q6_K: the tokens' activations, columns / 256 blocks each
    const uint8_t *weights;
    size_t row_bytes;
    int64_t rows, columns, tokens;
    const float *x;
    float *output;
} float_job;

static void float_rows(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const float_job *job = context;
    int64_t row = begin;
    // A decode step's groups of rows (Q6_K's kernel takes the quantized activations, the others the floats).
    if (job->tokens == 1 && (job->decode_rows || job->q6_k_rows))
        for (float out[BITNET_FLOAT_DECODE_ROWS]; row + BITNET_FLOAT_DECODE_ROWS <= end; row += BITNET_FLOAT_DECODE_ROWS) {
            const uint8_t *w = job->weights + row * job->row_bytes;
            if (job->q6_k_rows) job->q6_k_rows(w, job->row_bytes, job->quantized, job->columns / 256, out);
            else job->decode_rows(w, job->row_bytes, job->x, job->columns, out);
            for (int k = 0; k < BITNET_FLOAT_DECODE_ROWS; k++) job->output[row + k] = out[k];
        }
    for (; row < end; row++) {
        // Ask for a row two ahead: the hardware prefetcher alone leaves a decode step waiting.
        if (row + 2 < job->rows)
            for (size_t offset = 0; offset < job->row_bytes; offset += 64) __builtin_prefetch(job->weights + (row + 2) * job->row_bytes + offset, 0, 3);
        const uint8_t *w = job->weights + row * job->row_bytes;
        int64_t t = 0;
        if (job->q6_k)
            for (int64_t blocks = job->columns / 256; t < job->tokens; t++)
                job->output[t * job->rows + row] = job->q6_k(w, job->quantized + t * blocks, blocks);
        if (job->dot4)
            for (float out[4]; t + 4 <= job->tokens; t += 4) {
                job->dot4(w, job->x + t * job->columns, job->columns, job->columns, out);
                for (int k = 0; k < 4; k++) job->output[(t + k) * job->rows + row] = out[k];
            }
        for (; t < job->tokens; t++) job->output[t * job->rows + row] = job->dot(w, job->x + t * job->columns, job->columns);
    }
}

int bitnet_float_matmul(bitnet_pool *pool, int32_t encoding, const void *weights, int64_t rows, int64_t columns,
                        const float *x, int64_t tokens, float *output) {
    const bitnet_kernel_table *kernels = bitnet_kernels_for_level(bitnet_level());
    float_job job = {
        .dot = kernels->dot[encoding],
        .dot4 = kernels->dot4[encoding],
        .decode_rows = kernels->rows[encoding],
        .weights = weights,
        .row_bytes = row_bytes_of(encoding, columns),
        .rows = rows, .columns = columns, .tokens = tokens,
        .x = x, .output = output,
    };
    bitnet_q8_k_block *quantized = NULL;
    if (encoding == BITNET_FLOAT_Q6_K) {
        // As llama.cpp does: Q6_K against int8 activations (Q8_K), multiplied in integers.
        quantized = malloc((size_t)tokens * (size_t)(columns / 256) * sizeof(bitnet_q8_k_block));
        if (!quantized) return -1;
        for (int64_t t = 0; t < tokens; t++) quantize_q8_k(x + t * columns, columns, quantized + t * (columns / 256));
        job.q6_k = kernels->q6_k;
        job.q6_k_rows = kernels->q6_k_rows;
        job.quantized = quantized;
    }
    // Whole groups of decode rows per task, so only the matrix's last rows go one at a time.
    int64_t grain = rows / (bitnet_pool_threads(pool) * 16);
    grain = (grain < 16 ? 16 : grain + BITNET_FLOAT_DECODE_ROWS - 1) / BITNET_FLOAT_DECODE_ROWS * BITNET_FLOAT_DECODE_ROWS;
    bitnet_pool_run(pool, rows, grain, float_rows, &job);
    free(quantized);
    return 0;
}
