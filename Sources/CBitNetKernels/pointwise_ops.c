// The forward pass's element-wise ops: gated activations, residual adds and rotary embeddings, split between the
// pool's threads. Each value is computed with libm's expf/tanhf/cosf/sinf (SiLU's expf 8 at a time where AVX2
// runs, giving libm's floats) and the same float operations in the same order as the Swift code they replaced,
// so they give its floats on every CPU.
#include "kernels_internal.h"

#include <math.h>
#include <string.h>

// A multiply followed by an add is rounded twice, as written, never fused into one FMA.
#pragma STDC FP_CONTRACT OFF

/// Elements per chunk of the element-wise ops: enough to pay for a chunk's hand-off, few enough to share out a
/// prompt's rows (a 2B-4T feed-forward row is 6912 values).
enum { POINTWISE_GRAIN = 16384 };

// MARK: - Gated activations

#ifdef BITNET_X86
#include <immintrin.h>
#include <string.h>

/// glibc's expf (Arm's optimized-routines algorithm, glibc ≥ 2.27) as its FMA build computes it, four lanes at a
/// time: k = round(32x / ln 2), r = 32x / ln 2 − k, 2^(k/32) from a 32-entry table and a cubic in r, all in
/// double, then one rounding to float. For |x| < 88 (where glibc takes no special path) it gives libm's floats
/// to the bit: checked at load against this process's expf (``vector_expf_agrees``), and on every such float by
/// `scripts/check-vector-expf` (glibc 2.36, Ice Lake: 2,237,661,184 floats, no difference). SiLU was a twentieth
/// of a prompt's time with libm's expf called per value.
static const uint64_t exp2f_table[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51, 0x3fef72b83c7d517b,
    0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1, 0x3fef06fe0a31b715, 0x3feef1a7373aa9cb,
    0x3feedea64c123422, 0x3feece086061892d, 0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429,
    0x3feea47eb03a5585, 0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d, 0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069, 0x3fef5818dcfba487, 0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
};

static inline double double_bits(uint64_t bits) {
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

TARGET_AVX2 static ALWAYS_INLINE __m128 expf4_avx2(__m128 x) {
    const __m256d inv_ln2_32 = _mm256_set1_pd(double_bits(0x40471547652b82fe)), shift = _mm256_set1_pd(0x1.8p52);
    const __m256d c0 = _mm256_set1_pd(double_bits(0x3ebc6af84b912394)), c1 = _mm256_set1_pd(double_bits(0x3f2ebfce50fac4f3));
    const __m256d c2 = _mm256_set1_pd(double_bits(0x3f962e42ff0c52d6)), one = _mm256_set1_pd(1);
    __m256d xd = _mm256_cvtps_pd(x);
    __m256d kd = _mm256_fmadd_pd(inv_ln2_32, xd, shift);
    __m256i ki = _mm256_castpd_si256(kd);
    kd = _mm256_sub_pd(kd, shift);
    __m256d r = _mm256_fmsub_pd(inv_ln2_32, xd, kd);
    __m256i t = _mm256_i64gather_epi64((const long long *)exp2f_table, _mm256_and_si256(ki, _mm256_set1_epi64x(31)), 8);
    __m256d s = _mm256_castsi256_pd(_mm256_add_epi64(t, _mm256_slli_epi64(ki, 47)));
    __m256d y = _mm256_fmadd_pd(_mm256_fmadd_pd(c0, r, c1), _mm256_mul_pd(r, r), _mm256_fmadd_pd(c2, r, one));
    return _mm256_cvtpd_ps(_mm256_mul_pd(y, s));
}

/// Whether all 8 values are below 88 in magnitude (NaN and ∞ are not), where expf4_avx2 is glibc's expf.
TARGET_AVX2 static ALWAYS_INLINE int in_expf_range8(__m256 x) {
    __m256i magnitude = _mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(0x7FFFFFFF));
    return _mm256_testz_si256(_mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x42AFFFFF)), _mm256_set1_epi32(-1));
}

TARGET_AVX2 static ALWAYS_INLINE __m256 expf8_avx2(__m256 x) {
    return _mm256_set_m128(expf4_avx2(_mm256_extractf128_ps(x, 1)), expf4_avx2(_mm256_castps256_ps128(x)));
}

/// SiLU's `x / (1 + expf(-x)) * up` for 8 values, the scalar loop's operations in its order; 0 (nothing written)
/// where some |x| ≥ 88, NaN or ∞ included, which glibc's expf treats apart.
TARGET_AVX2 static ALWAYS_INLINE int silu8_avx2(const float *gate, const float *up, float *out) {
    __m256 x = _mm256_loadu_ps(gate);
    if (!in_expf_range8(x)) return 0;
    __m256 e = expf8_avx2(_mm256_xor_ps(x, _mm256_set1_ps(-0.0f)));
    __m256 silu = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1), e));
    _mm256_storeu_ps(out, _mm256_mul_ps(silu, _mm256_loadu_ps(up)));
    return 1;
}

TARGET_AVX2 static void silu_avx2(const float *gate, const float *up, float *out, int64_t begin, int64_t end) {
    int64_t i = begin;
    for (; i + 8 <= end; i += 8)
        if (!silu8_avx2(gate + i, up + i, out + i))
            for (int k = 0; k < 8; k++) out[i + k] = gate[i + k] / (1 + expf(-gate[i + k])) * up[i + k];
    for (; i < end; i++) out[i] = gate[i] / (1 + expf(-gate[i])) * up[i];
}

TARGET_AVX2 static void exp_avx2(float *values, int64_t count) {
    int64_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 x = _mm256_loadu_ps(values + i);
        if (in_expf_range8(x)) _mm256_storeu_ps(values + i, expf8_avx2(x));
        else for (int k = 0; k < 8; k++) values[i + k] = expf(values[i + k]);
    }
    for (; i < count; i++) values[i] = expf(values[i]);
}

/// Whether expf4_avx2 gives this process's expf on a sweep of its range (32 K floats below 88 in magnitude, about
/// 0.3 ms): a libm with another expf keeps the scalar loop. Set once at load, before any thread can run a kernel.
static int vector_expf_agrees = 0;

TARGET_AVX2 static int expf4_matches_libm(void) {
    for (uint32_t bits = 0; bits < 0x42B00000u; bits += 4 * 65537) {
        for (uint32_t sign = 0; sign < 2; sign++) {
            float x[4], vector[4];
            for (uint32_t k = 0; k < 4; k++) {
                uint32_t b = (bits + 65537 * k) | sign << 31;
                memcpy(&x[k], &b, sizeof b);
            }
            _mm_storeu_ps(vector, expf4_avx2(_mm_loadu_ps(x)));
            for (int k = 0; k < 4; k++) {
                float scalar = expf(x[k]);
                if (memcmp(&scalar, &vector[k], sizeof scalar) != 0) return 0;
            }
        }
    }
    return 1;
}

__attribute__((constructor))
static void check_vector_expf(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) vector_expf_agrees = expf4_matches_libm();
}
#endif

typedef struct {
    int32_t activation;
    int vector;  // SiLU through silu_avx2
    const float *gate, *up;
    float *output;
} activation_job;

static void activation_task(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const activation_job *job = context;
    const float *gate = job->gate, *up = job->up;
    float *out = job->output;
    switch (job->activation) {
    case BITNET_ACTIVATION_SQUARED_RELU:
        for (int64_t i = begin; i < end; i++) {
            float relu = 0 >= gate[i] ? 0 : gate[i];  // Swift's max(x, 0): NaN stays NaN
            out[i] = relu * relu * up[i];
        }
        break;
    case BITNET_ACTIVATION_SILU:
#ifdef BITNET_X86
        if (job->vector) {
            silu_avx2(gate, up, out, begin, end);
            break;
        }
#endif
        for (int64_t i = begin; i < end; i++) {
            float x = gate[i];
            out[i] = x / (1 + expf(-x)) * up[i];
        }
        break;
    default:
        for (int64_t i = begin; i < end; i++) {
            float x = gate[i];
            out[i] = 0.5f * x * (1 + tanhf(0.7978846f * (x + 0.044715f * x * x * x))) * up[i];
        }
        break;
    }
}

int bitnet_vector_expf(int level) {
#ifdef BITNET_X86
    return vector_expf_agrees && level >= BITNET_LEVEL_AVX2;
#else
    (void)level;
    return 0;
#endif
}

void bitnet_gated_activation(bitnet_pool *pool, int32_t activation, const float *gate, const float *up, int64_t count,
                             float *output) {
    activation_job job = {activation, bitnet_vector_expf(bitnet_level()), gate, up, output};
    bitnet_pool_run(pool, count, POINTWISE_GRAIN, activation_task, &job);
}

void bitnet_exp_in_place(float *values, int64_t count, int vector) {
#ifdef BITNET_X86
    if (vector) {
        exp_avx2(values, count);
        return;
    }
#else
    (void)vector;
#endif
    for (int64_t i = 0; i < count; i++) values[i] = expf(values[i]);
}

void bitnet_exp(float *values, int64_t count) { bitnet_exp_in_place(values, count, bitnet_vector_expf(bitnet_level())); }

// MARK: - Float to half

#ifdef BITNET_X86
TARGET_AVX2 static void float_to_half_f16c(const float *x, int64_t count, uint16_t *out) {
    int64_t i = 0;
    for (; i + 8 <= count; i += 8)
        _mm_storeu_si128((__m128i *)(out + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < count; i++) out[i] = (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(x[i]), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), 0);
}
#endif

void bitnet_float_to_half(const float *x, int64_t count, uint16_t *out) {
#ifdef BITNET_X86
    if (bitnet_level() >= BITNET_LEVEL_AVX2) {
        float_to_half_f16c(x, count, out);
        return;
    }
#endif
    for (int64_t i = 0; i < count; i++) {
        _Float16 half = (_Float16)x[i];
        memcpy(out + i, &half, sizeof half);
    }
}

// MARK: - Residual add

typedef struct {
    const float *x;
    float *accumulator;
} add_job;

static void add_task(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const add_job *job = context;
    for (int64_t i = begin; i < end; i++) job->accumulator[i] += job->x[i];
}

void bitnet_add(bitnet_pool *pool, const float *x, int64_t count, float *accumulator) {
    add_job job = {x, accumulator};
    bitnet_pool_run(pool, count, POINTWISE_GRAIN, add_task, &job);
}

// MARK: - Rotary embedding

typedef struct {
    float *vectors;
    int64_t row_stride;
    const int64_t *positions;
    int32_t heads, dimension, layout;
    const float *inverse_frequencies;
} rope_job;

static void rope_task(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const rope_job *job = context;
    const int32_t half = job->dimension / 2;
    for (int64_t token = begin; token < end; token++) {
        float *row = job->vectors + token * job->row_stride;
        for (int32_t pair = 0; pair < half; pair++) {
            float angle = (float)job->positions[token] * job->inverse_frequencies[pair];
            float cosine = cosf(angle), sine = sinf(angle);
            for (int32_t head = 0; head < job->heads; head++) {
                float *base = row + (int64_t)head * job->dimension;
                float *first = job->layout == BITNET_ROPE_HALVES ? base + pair : base + 2 * pair;
                float *second = job->layout == BITNET_ROPE_HALVES ? base + pair + half : base + 2 * pair + 1;
                float x = *first, y = *second;
                *first = x * cosine - y * sine;
                *second = y * cosine + x * sine;
            }
        }
    }
}

void bitnet_rope(bitnet_pool *pool, float *vectors, int64_t row_stride, const int64_t *positions, int64_t tokens,
                 int32_t heads, int32_t dimension, int32_t layout, const float *inverse_frequencies) {
    rope_job job = {vectors, row_stride, positions, heads, dimension, layout, inverse_frequencies};
    bitnet_pool_run(pool, tokens, 1, rope_task, &job);
}
