// Hot loops of the CPU backend: int8 activations × packed ternary weights, integer accumulation.
// Each kernel has a scalar version and, on x86-64, an AVX2 (+ FMA, F16C) version compiled with a target attribute
// and chosen at run time, so one binary runs on every CPU of its architecture. TQ2_0 and I2_S dots also have an
// AVX-512 VNNI version (vpdpbusd: unsigned × signed bytes summed straight into int32), the AVX2 code's twin.
//
// Codes are stored as c + 1 ∈ {0, 1, 2}; Σ (c − 1)·x is computed as Σ c'·x − Σ x, which lets the AVX2
// code use maddubs (unsigned × signed bytes) without overflow: pairs of 2 · 128 fit in int16.
#include "bitnet_kernels.h"

#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BITNET_X86 1
#endif

// MARK: - Scalar

static void tq2_0_block_dots_scalar(const uint8_t *row, const int8_t *x, const int32_t *x_block_sums,
                                    int64_t blocks, int32_t *block_sums) {
    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *qs = row + b * 66;
        const int8_t *xb = x + b * 256;
        int32_t sum = 0;
        for (int half = 0; half < 2; half++) {
            for (int byte = 0; byte < 32; byte++) {
                uint8_t q = qs[half * 32 + byte];
                for (int lane = 0; lane < 4; lane++) {
                    sum += (int32_t)((q >> (2 * lane)) & 3) * xb[half * 128 + lane * 32 + byte];
                }
            }
        }
        block_sums[b] = sum - x_block_sums[b];
    }
}

static int32_t i2_s_dot_scalar(const uint8_t *packed, const int8_t *x, int32_t x_sum, int64_t n) {
    int32_t sum = 0;
    for (int64_t block = 0; block < n / 128; block++) {
        const uint8_t *bytes = packed + block * 32;
        const int8_t *xb = x + block * 128;
        for (int byte = 0; byte < 32; byte++) {
            uint8_t q = bytes[byte];
            sum += (int32_t)(q >> 6) * xb[byte] + (int32_t)((q >> 4) & 3) * xb[32 + byte]
                 + (int32_t)((q >> 2) & 3) * xb[64 + byte] + (int32_t)(q & 3) * xb[96 + byte];
        }
    }
    return sum - x_sum;
}

// MARK: - TQ1_0 decoding

/// For each byte value, its five trits (code + 1) as TQ1_0 reads them: ((b · 3^j mod 256) · 3) >> 8.
static uint8_t tq1_0_trits[256][5];

/// Filled once when the library loads, before any thread can call a kernel.
__attribute__((constructor))
static void tq1_0_table_init(void) {
    static const uint8_t powers[5] = {1, 3, 9, 27, 81};
    for (int byte = 0; byte < 256; byte++) {
        for (int j = 0; j < 5; j++) {
            uint8_t shifted = (uint8_t)(byte * powers[j]);
            tq1_0_trits[byte][j] = (uint8_t)(((uint16_t)shifted * 3) >> 8);
        }
    }
}

/// Unpacks one TQ1_0 block into 256 stored codes (0, 1, 2) in value order.
static void tq1_0_unpack(const uint8_t *block, uint8_t *codes) {
    for (int i = 0; i < 32; i++) for (int j = 0; j < 5; j++) codes[i + 32 * j] = tq1_0_trits[block[i]][j];
    for (int i = 0; i < 16; i++) for (int j = 0; j < 5; j++) codes[160 + i + 16 * j] = tq1_0_trits[block[32 + i]][j];
    for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) codes[240 + i + 4 * j] = tq1_0_trits[block[48 + i]][j];
}

static int32_t dot_u8_i8_scalar(const uint8_t *codes, const int8_t *x, int n) {
    int32_t sum = 0;
    for (int i = 0; i < n; i++) sum += (int32_t)codes[i] * x[i];
    return sum;
}

static void tq1_0_block_dots_scalar(const uint8_t *row, const int8_t *x, const int32_t *x_block_sums,
                                    int64_t blocks, int32_t *block_sums) {
    uint8_t codes[256];
    for (int64_t b = 0; b < blocks; b++) {
        tq1_0_unpack(row + b * 54, codes);
        block_sums[b] = dot_u8_i8_scalar(codes, x + b * 256, 256) - x_block_sums[b];
    }
}

// MARK: - AVX2

#ifdef BITNET_X86
__attribute__((target("avx2")))
static inline int32_t horizontal_sum_avx2(__m256i v) {
    __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4E));
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xB1));
    return _mm_cvtsi128_si32(sum);
}

/// Σ codes · x for 32 bytes holding four lanes of 32 codes at bit offsets 0, 2, 4, 6 (order given by `shifts`).
__attribute__((target("avx2")))
static inline __m256i four_lane_dot_avx2(__m256i q, const int8_t *x0, const int8_t *x1, const int8_t *x2, const int8_t *x3) {
    const __m256i mask = _mm256_set1_epi8(3);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i c0 = _mm256_and_si256(q, mask);
    __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(q, 2), mask);
    __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
    __m256i c3 = _mm256_and_si256(_mm256_srli_epi16(q, 6), mask);
    __m256i p0 = _mm256_maddubs_epi16(c0, _mm256_loadu_si256((const __m256i *)x0));
    __m256i p1 = _mm256_maddubs_epi16(c1, _mm256_loadu_si256((const __m256i *)x1));
    __m256i p2 = _mm256_maddubs_epi16(c2, _mm256_loadu_si256((const __m256i *)x2));
    __m256i p3 = _mm256_maddubs_epi16(c3, _mm256_loadu_si256((const __m256i *)x3));
    // Each int16 is at most 2 · 2 · 128 = 512: the four fit in int16 before widening.
    __m256i sum16 = _mm256_add_epi16(_mm256_add_epi16(p0, p1), _mm256_add_epi16(p2, p3));
    return _mm256_madd_epi16(sum16, ones);
}

__attribute__((target("avx2")))
static void tq2_0_block_dots_avx2(const uint8_t *row, const int8_t *x, const int32_t *x_block_sums,
                                  int64_t blocks, int32_t *block_sums) {
    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *qs = row + b * 66;
        const int8_t *xb = x + b * 256;
        __m256i acc = _mm256_setzero_si256();
        for (int half = 0; half < 2; half++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(qs + half * 32));
            const int8_t *xh = xb + half * 128;
            acc = _mm256_add_epi32(acc, four_lane_dot_avx2(q, xh, xh + 32, xh + 64, xh + 96));
        }
        block_sums[b] = horizontal_sum_avx2(acc) - x_block_sums[b];
    }
}

__attribute__((target("avx2")))
static void tq1_0_block_dots_avx2(const uint8_t *row, const int8_t *x, const int32_t *x_block_sums,
                                  int64_t blocks, int32_t *block_sums) {
    uint8_t codes[256] __attribute__((aligned(32)));
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < blocks; b++) {
        tq1_0_unpack(row + b * 54, codes);
        __m256i acc = _mm256_setzero_si256();
        for (int i = 0; i < 256; i += 32) {
            __m256i products = _mm256_maddubs_epi16(_mm256_load_si256((const __m256i *)(codes + i)),
                                                    _mm256_loadu_si256((const __m256i *)(x + b * 256 + i)));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(products, ones));
        }
        block_sums[b] = horizontal_sum_avx2(acc) - x_block_sums[b];
    }
}

__attribute__((target("avx2")))
static int32_t i2_s_dot_avx2(const uint8_t *packed, const int8_t *x, int32_t x_sum, int64_t n) {
    __m256i acc = _mm256_setzero_si256();
    for (int64_t block = 0; block < n / 128; block++) {
        __m256i q = _mm256_loadu_si256((const __m256i *)(packed + block * 32));
        const int8_t *xb = x + block * 128;
        // I2_S puts value j at bits 6-7, j+32 at 4-5, j+64 at 2-3, j+96 at 0-1.
        acc = _mm256_add_epi32(acc, four_lane_dot_avx2(q, xb + 96, xb + 64, xb + 32, xb));
    }
    return horizontal_sum_avx2(acc) - x_sum;
}

// MARK: - AVX-512 VNNI

#define BITNET_TARGET_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vnni")))

/// Accumulates Σ codes · x for the four lanes of 32 codes in `q` (as ``four_lane_dot_avx2``): two lanes per
/// 512-bit vpdpbusd.
BITNET_TARGET_VNNI
static inline __m512i four_lane_dot_vnni(__m512i acc, __m256i q, const int8_t *x0, const int8_t *x1, const int8_t *x2, const int8_t *x3) {
    const __m256i mask = _mm256_set1_epi8(3);
    __m256i c0 = _mm256_and_si256(q, mask);
    __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(q, 2), mask);
    __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
    __m256i c3 = _mm256_and_si256(_mm256_srli_epi16(q, 6), mask);
    __m512i codes01 = _mm512_inserti64x4(_mm512_castsi256_si512(c0), c1, 1);
    __m512i codes23 = _mm512_inserti64x4(_mm512_castsi256_si512(c2), c3, 1);
    __m512i x01 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x0)), _mm256_loadu_si256((const __m256i *)x1), 1);
    __m512i x23 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x2)), _mm256_loadu_si256((const __m256i *)x3), 1);
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc, codes01, x01), codes23, x23);
}

BITNET_TARGET_VNNI
static void tq2_0_block_dots_vnni(const uint8_t *row, const int8_t *x, const int32_t *x_block_sums,
                                  int64_t blocks, int32_t *block_sums) {
    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *qs = row + b * 66;
        const int8_t *xb = x + b * 256;
        __m512i acc = _mm512_setzero_si512();
        for (int half = 0; half < 2; half++) {
            const int8_t *xh = xb + half * 128;
            acc = four_lane_dot_vnni(acc, _mm256_loadu_si256((const __m256i *)(qs + half * 32)), xh, xh + 32, xh + 64, xh + 96);
        }
        block_sums[b] = _mm512_reduce_add_epi32(acc) - x_block_sums[b];
    }
}

BITNET_TARGET_VNNI
static int32_t i2_s_dot_vnni(const uint8_t *packed, const int8_t *x, int32_t x_sum, int64_t n) {
    __m512i acc = _mm512_setzero_si512();
    for (int64_t block = 0; block < n / 128; block++) {
        const int8_t *xb = x + block * 128;
        // I2_S puts value j at bits 6-7, j+32 at 4-5, j+64 at 2-3, j+96 at 0-1.
        acc = four_lane_dot_vnni(acc, _mm256_loadu_si256((const __m256i *)(packed + block * 32)), xb + 96, xb + 64, xb + 32, xb);
    }
    return _mm512_reduce_add_epi32(acc) - x_sum;
}
#endif

// MARK: - Float rows

static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
    union { uint32_t u; float f; } v;
    if (exponent == 0x1F) { v.u = sign | 0x7F800000u | (mantissa << 13); return v.f; }
    if (exponent != 0) { v.u = sign | ((exponent + 112) << 23) | (mantissa << 13); return v.f; }
    float magnitude = (float)mantissa * (1.0f / 16777216.0f);
    return sign ? -magnitude : magnitude;
}

static float dot_f16_scalar(const uint16_t *w, const float *x, int64_t n) {
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += half_to_float(w[i]) * x[i];
    return sum;
}

static float dot_bf16_scalar(const uint16_t *w, const float *x, int64_t n) {
    float sum = 0;
    for (int64_t i = 0; i < n; i++) {
        union { uint32_t u; float f; } v = { (uint32_t)w[i] << 16 };
        sum += v.f * x[i];
    }
    return sum;
}

static float dot_f32_scalar(const float *w, const float *x, int64_t n) {
    float sum = 0;
    for (int64_t i = 0; i < n; i++) sum += w[i] * x[i];
    return sum;
}

#ifdef BITNET_X86
__attribute__((target("avx2,fma")))
static inline float horizontal_sum_ps_avx2(__m256 v) {
    __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
    sum = _mm_add_ss(sum, _mm_shuffle_ps(sum, sum, 0x55));
    return _mm_cvtss_f32(sum);
}

__attribute__((target("avx2,fma,f16c")))
static float dot_f16_avx2(const uint16_t *w, const float *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i))), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8))), _mm256_loadu_ps(x + i + 8), a1);
    }
    float sum = horizontal_sum_ps_avx2(_mm256_add_ps(a0, a1));
    for (; i < n; i++) sum += half_to_float(w[i]) * x[i];
    return sum;
}

__attribute__((target("avx2,fma")))
static float dot_bf16_avx2(const uint16_t *w, const float *x, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i wide = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + i))), 16);
        acc = _mm256_fmadd_ps(_mm256_castsi256_ps(wide), _mm256_loadu_ps(x + i), acc);
    }
    float sum = horizontal_sum_ps_avx2(acc);
    for (; i < n; i++) {
        union { uint32_t u; float f; } v = { (uint32_t)w[i] << 16 };
        sum += v.f * x[i];
    }
    return sum;
}

__attribute__((target("avx2,fma")))
static float dot_f32_avx2(const float *w, const float *x, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), acc);
    float sum = horizontal_sum_ps_avx2(acc);
    for (; i < n; i++) sum += w[i] * x[i];
    return sum;
}
#endif

// MARK: - Dispatch

/// Instruction-set levels, each a superset of the one before: 0 scalar, 1 AVX2 (+FMA, F16C), 2 AVX-512 VNNI.
static const char *const level_names[] = {"scalar", "avx2", "avx512vnni"};

/// The best level this CPU runs, capped by BITNET_KERNELS: found once when the library loads, before any
/// thread can call a kernel (a lazy first-use check was a data race between the threads of a forward pass).
static int default_level = 0;
static int cpu_level = 0;

/// A level forced on the calling thread (-1: none), so a test forcing one path never changes what other
/// threads (other tests' forward passes) compute.
static _Thread_local int forced_level = -1;

static int level_named(const char *name) {
    for (int level = 0; level < 3; level++) {
        const char *a = name, *b = level_names[level];
        while (*a && *a == *b) { a++; b++; }
        if (*a == 0 && *b == 0) return level;
    }
    return -1;
}

__attribute__((constructor))
static void detect_cpu_features(void) {
#ifdef BITNET_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
        cpu_level = 1;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni")) cpu_level = 2;
    }
#endif
    default_level = cpu_level;
    const char *cap = getenv("BITNET_KERNELS");
    int capped = cap && *cap ? level_named(cap) : -1;
    if (capped >= 0 && capped < default_level) default_level = capped;
}

static inline int level(void) { return forced_level >= 0 ? forced_level : default_level; }

int bitnet_kernels_force(const char *isa) {
    if (!isa || !*isa) {
        forced_level = -1;
        return 0;
    }
    int wanted = level_named(isa);
    if (wanted < 0 || wanted > cpu_level) return -1;
    forced_level = wanted;
    return 0;
}

const char *bitnet_kernels_isa(void) { return level_names[level()]; }

static int has_avx2(void) { return level() >= 1; }

void bitnet_tq2_0_block_dots(const uint8_t *row, const int8_t *x, const int32_t *x_block_sums,
                             int64_t blocks, int32_t *block_sums) {
#ifdef BITNET_X86
    if (level() >= 2) {
        tq2_0_block_dots_vnni(row, x, x_block_sums, blocks, block_sums);
        return;
    }
    if (has_avx2()) {
        tq2_0_block_dots_avx2(row, x, x_block_sums, blocks, block_sums);
        return;
    }
#endif
    tq2_0_block_dots_scalar(row, x, x_block_sums, blocks, block_sums);
}

void bitnet_tq1_0_block_dots(const uint8_t *row, const int8_t *x, const int32_t *x_block_sums,
                             int64_t blocks, int32_t *block_sums) {
#ifdef BITNET_X86
    if (has_avx2()) {
        tq1_0_block_dots_avx2(row, x, x_block_sums, blocks, block_sums);
        return;
    }
#endif
    tq1_0_block_dots_scalar(row, x, x_block_sums, blocks, block_sums);
}

int32_t bitnet_i2_s_dot(const uint8_t *packed, const int8_t *x, int32_t x_sum, int64_t n) {
#ifdef BITNET_X86
    if (level() >= 2) return i2_s_dot_vnni(packed, x, x_sum, n);
    if (has_avx2()) return i2_s_dot_avx2(packed, x, x_sum, n);
#endif
    return i2_s_dot_scalar(packed, x, x_sum, n);
}

float bitnet_dot_f16(const uint16_t *w, const float *x, int64_t n) {
#ifdef BITNET_X86
    if (has_avx2()) return dot_f16_avx2(w, x, n);
#endif
    return dot_f16_scalar(w, x, n);
}

float bitnet_dot_bf16(const uint16_t *w, const float *x, int64_t n) {
#ifdef BITNET_X86
    if (has_avx2()) return dot_bf16_avx2(w, x, n);
#endif
    return dot_bf16_scalar(w, x, n);
}

float bitnet_dot_f32(const float *w, const float *x, int64_t n) {
#ifdef BITNET_X86
    if (has_avx2()) return dot_f32_avx2(w, x, n);
#endif
    return dot_f32_scalar(w, x, n);
}
