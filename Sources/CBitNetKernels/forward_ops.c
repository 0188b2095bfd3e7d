// The forward pass's other ops in C: int8 quantization of activations and RMSNorm, each split between the pool's
// threads (attention is in attention.c). Numerics follow transformers' float32 order.
#include "kernels_internal.h"

#include <math.h>

#ifdef BITNET_X86
#include <immintrin.h>
#endif

// A multiply followed by an add is rounded twice, as written, never fused into one FMA, on every CPU and compiler
// (the SIMD paths fuse where their intrinsics say so). Before this was set, clang fused the scalar sums here on
// arm64 and in the AVX2 attention's tails (then in this file), so those floats changed once when it was added.
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

/// Σx² of a row in the order PyTorch's CPU sum adds it (`cascade_sum` in ATen's SumKernel.cpp), which transformers'
/// `pow(2).mean(-1)` runs on every machine: the row as vectors of 8, four accumulators taking every fourth vector, each
/// adding chunks of 16 (more for huge rows) and passing chunk sums up through three more levels; then the vectors
/// left over into the first accumulator, the four accumulators added in order, and the 8 lanes added after the
/// last `n mod 8` values. Rows under 8 values take the scalar form of the same cascade. The 32 chains are
/// independent, which is what lets a GPU add them in parallel (Shaders/sum_of_squares.glsl follows this function).
static float pytorch_sum_of_squares(const float *x, int64_t n) {
    const int lanes = n >= 8 ? 8 : 1;
    const int64_t vectors = n / lanes, groups = vectors / 4;
    int64_t power = groups <= 2 ? 1 : 64 - __builtin_clzll((uint64_t)(groups - 1));  // ceil(log2), as ATen's CeilLog2
    power = power / 4 > 4 ? power / 4 : 4;
    const int64_t step = (int64_t)1 << power, mask = step - 1;
    float levels[4][4][8] = {{{0}}};  // [level][accumulator][lane]
    int64_t i = 0;
    while (i + step <= groups) {
        for (int64_t j = 0; j < step; j++, i++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < lanes; l++) {
                    float v = x[(i * 4 + k) * lanes + l];
                    levels[0][k][l] += v * v;
                }
        for (int level = 1; level < 4; level++) {
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < lanes; l++) {
                    levels[level][k][l] += levels[level - 1][k][l];
                    levels[level - 1][k][l] = 0;
                }
            if ((i & (mask << (level * power))) != 0) break;
        }
    }
    for (; i < groups; i++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < lanes; l++) {
                float v = x[(i * 4 + k) * lanes + l];
                levels[0][k][l] += v * v;
            }
    float (*sums)[8] = levels[0];
    for (int level = 1; level < 4; level++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < lanes; l++) sums[k][l] += levels[level][k][l];
    for (int64_t v = groups * 4; v < vectors; v++)
        for (int l = 0; l < lanes; l++) sums[0][l] += x[v * lanes + l] * x[v * lanes + l];
    for (int k = 1; k < 4; k++)
        for (int l = 0; l < lanes; l++) sums[0][l] += sums[k][l];
    float total = 0;
    for (int64_t t = vectors * lanes; t < n; t++) total += x[t] * x[t];
    for (int l = 0; l < lanes; l++) total += sums[0][l];
    return total;
}

static void normalize_row(const norm_job *job, const float *x, float *out) {
    float scale = 1.0f / sqrtf(pytorch_sum_of_squares(x, job->columns) / (float)job->columns + job->epsilon);
    for (int64_t i = 0; i < job->columns; i++) out[i] = job->weight[i] * (x[i] * scale);
}

static void norm_task(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const norm_job *job = context;
    for (int64_t row = begin; row < end; row++) normalize_row(job, job->x + row * job->columns, job->output + row * job->columns);
}

void bitnet_rms_norm(bitnet_pool *pool, const float *x, const float *weight, float epsilon, int64_t rows,
                     int64_t columns, float *output) {
    norm_job job = {x, weight, epsilon, columns, output};
    bitnet_pool_run(pool, rows, 8, norm_task, &job);
}
