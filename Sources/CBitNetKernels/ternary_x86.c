// x86 integer tiles of the ternary matmul: AVX2 (vpmaddubsw) and its twin in AVX-512 VNNI (vpdpbusd). Both
// compute Σ c'·x with c' ∈ {0, 1, 2} the stored codes (unsigned) and x int8 (signed); the driver subtracts Σ x.
// A tile covers up to 2 rows × 4 tokens so the codes decoded from one load of weights serve every token of the
// tile, and each activation load serves every row.
#include "kernels_internal.h"

#ifdef BITNET_X86
#include <immintrin.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TARGET_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

/// Generates the exported tile from a body specialized for constant (rows, tokens): the shapes the driver uses
/// (2 × 1 for decode, 2 × 4 and 1 × 4 for prompts) run unrolled; any other is run one row × one token at a time.
#define TILE_DISPATCH(name, target, body)                                            \
    target void name(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t x_stride, int64_t b0,         \
                     int64_t b1, int rows, int tokens, int32_t *sums) {                                           \
        if (rows == 2 && tokens == 1) body(w, row_bytes, x, x_stride, b0, b1, 2, 1, sums);                        \
        else if (rows == 2 && tokens == 4) body(w, row_bytes, x, x_stride, b0, b1, 2, 4, sums);                   \
        else if (rows == 1 && tokens == 4) body(w, row_bytes, x, x_stride, b0, b1, 1, 4, sums);                   \
        else                                                                                                      \
            for (int r = 0; r < rows; r++)                                                                        \
                for (int t = 0; t < tokens; t++)                                                                  \
                    body(w + r * row_bytes, row_bytes, x + t * x_stride, x_stride, b0, b1, 1, 1, sums + r * tokens + t); \
    }

// MARK: - AVX2

TARGET_AVX2 static ALWAYS_INLINE int32_t sum_lanes_avx2(__m256i v) {
    __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4E));
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xB1));
    return _mm_cvtsi128_si32(sum);
}

/// Σ over four code vectors × the 128 activations they multiply (32 each, in order), widened to int32. Each
/// int16 is at most 2 · 2 · 128 = 512 per maddubs, so the four fit before widening.
TARGET_AVX2 static ALWAYS_INLINE __m256i dot128_avx2(const __m256i c[4], const int8_t *x) {
    __m256i p0 = _mm256_maddubs_epi16(c[0], _mm256_loadu_si256((const __m256i *)x));
    __m256i p1 = _mm256_maddubs_epi16(c[1], _mm256_loadu_si256((const __m256i *)(x + 32)));
    __m256i p2 = _mm256_maddubs_epi16(c[2], _mm256_loadu_si256((const __m256i *)(x + 64)));
    __m256i p3 = _mm256_maddubs_epi16(c[3], _mm256_loadu_si256((const __m256i *)(x + 96)));
    return _mm256_madd_epi16(_mm256_add_epi16(_mm256_add_epi16(p0, p1), _mm256_add_epi16(p2, p3)), _mm256_set1_epi16(1));
}

/// The four 2-bit fields of 32 bytes as four vectors of codes, `first_shift` first, stepping by `step` bits.
TARGET_AVX2 static ALWAYS_INLINE void split_codes_avx2(__m256i q, int first_shift, int step, __m256i c[4]) {
    const __m256i mask = _mm256_set1_epi8(3);
    for (int lane = 0; lane < 4; lane++)
        c[lane] = _mm256_and_si256(_mm256_srli_epi16(q, first_shift + step * lane), mask);
}

/// TQ2_0: byte i of a block's half h holds values 128h + 32·lane + i at bits 2·lane.
TARGET_AVX2 static ALWAYS_INLINE void tq2_0_avx2(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                 int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    __m256i acc[4][4];
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_si256();
    for (int64_t b = b0; b < b1; b++) {
        for (int half = 0; half < 2; half++) {
            __m256i c[4][4];
            for (int r = 0; r < R; r++)
                split_codes_avx2(_mm256_loadu_si256((const __m256i *)(w + r * row_bytes + b * 66 + 32 * half)), 0, 2, c[r]);
            for (int t = 0; t < T; t++)
                for (int r = 0; r < R; r++)
                    acc[r][t] = _mm256_add_epi32(acc[r][t], dot128_avx2(c[r], x + t * xs + b * 256 + 128 * half));
        }
    }
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) sums[r * T + t] = sum_lanes_avx2(acc[r][t]);
}

/// I2_S: byte i of a 32-byte block holds values i, 32 + i, 64 + i, 96 + i at bits 6, 4, 2, 0.
TARGET_AVX2 static ALWAYS_INLINE void i2_s_avx2(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    __m256i acc[4][4];
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_si256();
    for (int64_t b = b0; b < b1; b++) {
        __m256i c[4][4];
        for (int r = 0; r < R; r++)
            split_codes_avx2(_mm256_loadu_si256((const __m256i *)(w + r * row_bytes + b * 32)), 6, -2, c[r]);
        for (int t = 0; t < T; t++)
            for (int r = 0; r < R; r++)
                acc[r][t] = _mm256_add_epi32(acc[r][t], dot128_avx2(c[r], x + t * xs + b * 128));
    }
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) sums[r * T + t] = sum_lanes_avx2(acc[r][t]);
}

/// The top base-3 digit of each byte v, ⌊3v / 256⌋ = [v ≥ 86] + [v ≥ 171], with saturating subtractions.
TARGET_AVX2 static ALWAYS_INLINE __m256i top_trit_avx2(__m256i v) {
    const __m256i one = _mm256_set1_epi8(1);
    return _mm256_add_epi8(_mm256_min_epu8(_mm256_subs_epu8(v, _mm256_set1_epi8(85)), one),
                           _mm256_min_epu8(_mm256_subs_epu8(v, _mm256_set1_epi8((char)170)), one));
}

/// TQ1_0: code j of each of a block's 52 bytes is the top trit of (byte · 3^j mod 256); the prepared activations
/// hold, for each j, the 64 values those codes multiply (bytes 52..63 read as zero codes).
TARGET_AVX2 static ALWAYS_INLINE void tq1_0_avx2(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                 int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    const __m256i first_five_words = _mm256_setr_epi32(-1, -1, -1, -1, -1, 0, 0, 0);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[4][4];
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_si256();
    for (int64_t b = b0; b < b1; b++) {
        __m256i low[4], high[4];
        for (int r = 0; r < R; r++) {
            const uint8_t *block = w + r * row_bytes + b * 54;
            low[r] = _mm256_loadu_si256((const __m256i *)block);
            high[r] = _mm256_maskload_epi32((const int *)(block + 32), first_five_words);  // bytes 32..51 only
        }
        for (int j = 0; j < 5; j++) {
            __m256i c_low[4], c_high[4];
            for (int r = 0; r < R; r++) {
                if (j > 0) {
                    low[r] = _mm256_add_epi8(low[r], _mm256_add_epi8(low[r], low[r]));
                    high[r] = _mm256_add_epi8(high[r], _mm256_add_epi8(high[r], high[r]));
                }
                c_low[r] = top_trit_avx2(low[r]);
                c_high[r] = top_trit_avx2(high[r]);
            }
            for (int t = 0; t < T; t++) {
                const int8_t *xj = x + t * xs + b * 320 + 64 * j;
                __m256i x_low = _mm256_loadu_si256((const __m256i *)xj), x_high = _mm256_loadu_si256((const __m256i *)(xj + 32));
                for (int r = 0; r < R; r++) {
                    __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(c_low[r], x_low), _mm256_maddubs_epi16(c_high[r], x_high));
                    acc[r][t] = _mm256_add_epi32(acc[r][t], _mm256_madd_epi16(p, ones));
                }
            }
        }
    }
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) sums[r * T + t] = sum_lanes_avx2(acc[r][t]);
}

TILE_DISPATCH(bitnet_tq2_0_tile_avx2, TARGET_AVX2, tq2_0_avx2)
TILE_DISPATCH(bitnet_tq1_0_tile_avx2, TARGET_AVX2, tq1_0_avx2)
TILE_DISPATCH(bitnet_i2_s_tile_avx2, TARGET_AVX2, i2_s_avx2)

// MARK: - AVX-512 VNNI (the twin of the AVX2 tiles: the same codes, two 32-byte lanes per 512-bit vpdpbusd)

/// Two of the four 2-bit fields of 32 bytes side by side: the low half shifted by `low_shift`, the high half by
/// `high_shift`, so one vector of codes meets 64 consecutive activations.
TARGET_VNNI static ALWAYS_INLINE __m512i code_pair_vnni(__m512i q, int low_shift, int high_shift) {
    const __m512i shifts = _mm512_set_epi64(high_shift, high_shift, high_shift, high_shift, low_shift, low_shift, low_shift, low_shift);
    return _mm512_and_si512(_mm512_srlv_epi64(q, shifts), _mm512_set1_epi8(3));
}

TARGET_VNNI static ALWAYS_INLINE void tq2_0_vnni(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                 int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    // Two accumulators per row and token: vpdpbusd's latency would otherwise bound a decode (one token) tile.
    __m512i acc[4][4], acc2[4][4];
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = acc2[r][t] = _mm512_setzero_si512();
    for (int64_t b = b0; b < b1; b++) {
        for (int half = 0; half < 2; half++) {
            __m512i c01[4], c23[4];
            for (int r = 0; r < R; r++) {
                __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w + r * row_bytes + b * 66 + 32 * half)));
                c01[r] = code_pair_vnni(q, 0, 2);
                c23[r] = code_pair_vnni(q, 4, 6);
            }
            for (int t = 0; t < T; t++) {
                const int8_t *xh = x + t * xs + b * 256 + 128 * half;
                __m512i x01 = _mm512_loadu_si512(xh), x23 = _mm512_loadu_si512(xh + 64);
                for (int r = 0; r < R; r++) {
                    acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], c01[r], x01);
                    acc2[r][t] = _mm512_dpbusd_epi32(acc2[r][t], c23[r], x23);
                }
            }
        }
    }
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) sums[r * T + t] = _mm512_reduce_add_epi32(_mm512_add_epi32(acc[r][t], acc2[r][t]));
}

TARGET_VNNI static ALWAYS_INLINE void i2_s_vnni(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    // Two accumulators per row and token: vpdpbusd's latency would otherwise bound a decode (one token) tile.
    __m512i acc[4][4], acc2[4][4];
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = acc2[r][t] = _mm512_setzero_si512();
    for (int64_t b = b0; b < b1; b++) {
        __m512i c01[4], c23[4];
        for (int r = 0; r < R; r++) {
            __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w + r * row_bytes + b * 32)));
            c01[r] = code_pair_vnni(q, 6, 4);
            c23[r] = code_pair_vnni(q, 2, 0);
        }
        for (int t = 0; t < T; t++) {
            const int8_t *xb = x + t * xs + b * 128;
            __m512i x01 = _mm512_loadu_si512(xb), x23 = _mm512_loadu_si512(xb + 64);
            for (int r = 0; r < R; r++) {
                acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], c01[r], x01);
                acc2[r][t] = _mm512_dpbusd_epi32(acc2[r][t], c23[r], x23);
            }
        }
    }
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) sums[r * T + t] = _mm512_reduce_add_epi32(_mm512_add_epi32(acc[r][t], acc2[r][t]));
}

/// ``top_trit_avx2`` with AVX-512's unsigned byte compares into masks (one op fewer, measured 5 % faster on TQ1_0).
TARGET_VNNI static ALWAYS_INLINE __m512i top_trit_vnni(__m512i v) {
    const __m512i one = _mm512_set1_epi8(1);
    __m512i c = _mm512_maskz_mov_epi8(_mm512_cmpge_epu8_mask(v, _mm512_set1_epi8(86)), one);
    return _mm512_mask_add_epi8(c, _mm512_cmpge_epu8_mask(v, _mm512_set1_epi8((char)171)), c, one);
}

TARGET_VNNI static ALWAYS_INLINE void tq1_0_vnni(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                 int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    const __mmask64 code_bytes = (1ULL << 52) - 1;
    // Two accumulators per row and token: vpdpbusd's latency would otherwise bound a decode (one token) tile.
    __m512i acc[4][4], acc2[4][4];
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = acc2[r][t] = _mm512_setzero_si512();
    for (int64_t b = b0; b < b1; b++) {
        __m512i v[4];
        for (int r = 0; r < R; r++) v[r] = _mm512_maskz_loadu_epi8(code_bytes, w + r * row_bytes + b * 54);
        for (int j = 0; j < 5; j++) {
            __m512i c[4];
            for (int r = 0; r < R; r++) {
                if (j > 0) v[r] = _mm512_add_epi8(v[r], _mm512_add_epi8(v[r], v[r]));
                c[r] = top_trit_vnni(v[r]);
            }
            for (int t = 0; t < T; t++) {
                __m512i xj = _mm512_loadu_si512(x + t * xs + b * 320 + 64 * j);
                for (int r = 0; r < R; r++) {
                    if (j % 2) acc2[r][t] = _mm512_dpbusd_epi32(acc2[r][t], c[r], xj);
                    else acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], c[r], xj);
                }
            }
        }
    }
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) sums[r * T + t] = _mm512_reduce_add_epi32(_mm512_add_epi32(acc[r][t], acc2[r][t]));
}

TILE_DISPATCH(bitnet_tq2_0_tile_vnni, TARGET_VNNI, tq2_0_vnni)
TILE_DISPATCH(bitnet_tq1_0_tile_vnni, TARGET_VNNI, tq1_0_vnni)
TILE_DISPATCH(bitnet_i2_s_tile_vnni, TARGET_VNNI, i2_s_vnni)

#endif
