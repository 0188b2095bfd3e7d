// The 256-bit tiles, one source for AVX2 and AVX-VNNI: ternary_x86.c includes this file once per instruction set,
// defining SUFFIX (the names' last part), TARGET_256 (the target attribute) and DPBUSD: 1 where the multiply-adds
// are vpdpbusd and vpdpwssd (AVX-VNNI, or the same instructions EVEX-encoded under AVX-512 VL), 0 where they are
// vpmaddubsw and vpmaddwd with the widening adds (AVX2). Everything else — loads, code extraction, the TQ1_0
// F_k products, the reductions — is the same text, so the AVX-VNNI tiles, which this CPU may not run, are tested
// through their EVEX twin and against the AVX2 ones.
#define NAMED2(a, b) a##_##b
#define NAMED(a, b) NAMED2(a, b)

TARGET_256 static ALWAYS_INLINE int32_t NAMED(sum_lanes, SUFFIX)(__m256i v) {
    __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0x4E));
    sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0xB1));
    return _mm_cvtsi128_si32(sum);
}

/// acc + Σ over four code vectors × the 128 activations they multiply (32 each, in order). With vpmaddubsw each
/// int16 is at most 2 · 2 · 128 = 512, so the four fit before widening; vpdpbusd sums in 32 bits, in two chains
/// that start from zero so only one add waits on `acc` (four dependent vpdpbusd made decode latency-bound:
/// measured 0.6-0.8× AVX2's GEMV).
TARGET_256 static ALWAYS_INLINE __m256i NAMED(accumulate128, SUFFIX)(__m256i acc, const __m256i c[4], const int8_t *x) {
#if DPBUSD
    const __m256i zero = _mm256_setzero_si256();
    __m256i low = _mm256_dpbusd_epi32(zero, c[0], _mm256_loadu_si256((const __m256i *)x));
    __m256i high = _mm256_dpbusd_epi32(zero, c[2], _mm256_loadu_si256((const __m256i *)(x + 64)));
    low = _mm256_dpbusd_epi32(low, c[1], _mm256_loadu_si256((const __m256i *)(x + 32)));
    high = _mm256_dpbusd_epi32(high, c[3], _mm256_loadu_si256((const __m256i *)(x + 96)));
    return _mm256_add_epi32(acc, _mm256_add_epi32(low, high));
#else
    __m256i p0 = _mm256_maddubs_epi16(c[0], _mm256_loadu_si256((const __m256i *)x));
    __m256i p1 = _mm256_maddubs_epi16(c[1], _mm256_loadu_si256((const __m256i *)(x + 32)));
    __m256i p2 = _mm256_maddubs_epi16(c[2], _mm256_loadu_si256((const __m256i *)(x + 64)));
    __m256i p3 = _mm256_maddubs_epi16(c[3], _mm256_loadu_si256((const __m256i *)(x + 96)));
    __m256i words = _mm256_add_epi16(_mm256_add_epi16(p0, p1), _mm256_add_epi16(p2, p3));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(words, _mm256_set1_epi16(1)));
#endif
}

/// acc + a·b + c·d over int16 pairs, summed in 32 bits (off the chain through `acc`, as above).
TARGET_256 static ALWAYS_INLINE __m256i NAMED(accumulate_words, SUFFIX)(__m256i acc, __m256i a, __m256i b, __m256i c, __m256i d) {
#if DPBUSD
    return _mm256_add_epi32(acc, _mm256_dpwssd_epi32(_mm256_madd_epi16(a, b), c, d));
#else
    return _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(a, b), _mm256_madd_epi16(c, d)));
#endif
}

/// The four 2-bit fields of 32 bytes as four vectors of codes, `first_shift` first, stepping by `step` bits.
TARGET_256 static ALWAYS_INLINE void NAMED(split_codes, SUFFIX)(__m256i q, int first_shift, int step, __m256i c[4]) {
    const __m256i mask = _mm256_set1_epi8(3);
    for (int lane = 0; lane < 4; lane++)
        c[lane] = _mm256_and_si256(_mm256_srli_epi16(q, first_shift + step * lane), mask);
}

/// TQ2_0: byte i of a block's half h holds values 128h + 32·lane + i at bits 2·lane.
TARGET_256 static ALWAYS_INLINE void NAMED(tq2_0, SUFFIX)(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                          int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    __m256i acc[4][4];
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_si256();
    for (int64_t b = b0; b < b1; b++) {
        if (T == 1) for (int r = 0; r < R; r++) prefetch_decode_ahead(w + r * row_bytes + b * 66);
        for (int half = 0; half < 2; half++) {
            __m256i c[4][4];
            for (int r = 0; r < R; r++)
                NAMED(split_codes, SUFFIX)(_mm256_loadu_si256((const __m256i *)(w + r * row_bytes + b * 66 + 32 * half)), 0, 2, c[r]);
            for (int t = 0; t < T; t++)
                for (int r = 0; r < R; r++)
                    acc[r][t] = NAMED(accumulate128, SUFFIX)(acc[r][t], c[r], x + t * xs + b * 256 + 128 * half);
        }
    }
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) sums[r * T + t] = NAMED(sum_lanes, SUFFIX)(acc[r][t]);
}

/// I2_S: byte i of a 32-byte block holds values i, 32 + i, 64 + i, 96 + i at bits 6, 4, 2, 0.
TARGET_256 static ALWAYS_INLINE void NAMED(i2_s, SUFFIX)(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                         int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    __m256i acc[4][4];
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_si256();
    for (int64_t b = b0; b < b1; b++) {
        __m256i c[4][4];
        if (T == 1) for (int r = 0; r < R; r++) prefetch_decode_ahead(w + r * row_bytes + b * 32);
        for (int r = 0; r < R; r++)
            NAMED(split_codes, SUFFIX)(_mm256_loadu_si256((const __m256i *)(w + r * row_bytes + b * 32)), 6, -2, c[r]);
        for (int t = 0; t < T; t++)
            for (int r = 0; r < R; r++) acc[r][t] = NAMED(accumulate128, SUFFIX)(acc[r][t], c[r], x + t * xs + b * 128);
    }
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) sums[r * T + t] = NAMED(sum_lanes, SUFFIX)(acc[r][t]);
}

/// TQ1_0: Σ_k F_k·y_k (see ``bitnet_prepare_tq1_0``). Each 16-bit lane holds one code byte times 256 (the even
/// bytes shifted up, the odd ones masked in place), so one `vpmulhuw` by 3^k gives F_k of 16 bytes, and a
/// multiply-add of words meets it with the int16 y_k of those bytes.
TARGET_256 static ALWAYS_INLINE void NAMED(tq1_0, SUFFIX)(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                          int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    const __m256i first_five_words = _mm256_setr_epi32(-1, -1, -1, -1, -1, 0, 0, 0);
    const __m256i high_bytes = _mm256_set1_epi16((short)0xFF00);
    __m256i acc[4][4];
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_si256();
    for (int64_t b = b0; b < b1; b++) {
        __m256i lanes[4][4];  // per row: even bytes 0..31, odd bytes 0..31, even bytes 32..63, odd bytes 32..63
        if (T == 1) for (int r = 0; r < R; r++) prefetch_decode_ahead(w + r * row_bytes + b * 54);
        for (int r = 0; r < R; r++) {
            const uint8_t *block = w + r * row_bytes + b * 54;
            __m256i low = _mm256_loadu_si256((const __m256i *)block);
            __m256i high = _mm256_maskload_epi32((const int *)(block + 32), first_five_words);  // bytes 32..51 only
            lanes[r][0] = _mm256_slli_epi16(low, 8);
            lanes[r][1] = _mm256_and_si256(low, high_bytes);
            lanes[r][2] = _mm256_slli_epi16(high, 8);
            lanes[r][3] = _mm256_and_si256(high, high_bytes);
        }
        for (int k = 0; k < 5; k++) {
            const __m256i power = _mm256_set1_epi16(tq1_0_powers[k]);
            __m256i f[4][4];
            for (int r = 0; r < R; r++)
                for (int l = 0; l < 4; l++) f[r][l] = _mm256_mulhi_epu16(lanes[r][l], power);
            for (int t = 0; t < T; t++) {
                const int16_t *y = (const int16_t *)(x + t * xs + b * 640) + 64 * k;
                // y holds 32 even then 32 odd values; lane group l covers even/odd of bytes 0..31 or 32..63.
                __m256i y_even_low = _mm256_loadu_si256((const __m256i *)y);
                __m256i y_even_high = _mm256_loadu_si256((const __m256i *)(y + 16));
                __m256i y_odd_low = _mm256_loadu_si256((const __m256i *)(y + 32));
                __m256i y_odd_high = _mm256_loadu_si256((const __m256i *)(y + 48));
                for (int r = 0; r < R; r++) {
                    acc[r][t] = NAMED(accumulate_words, SUFFIX)(acc[r][t], f[r][0], y_even_low, f[r][1], y_odd_low);
                    acc[r][t] = NAMED(accumulate_words, SUFFIX)(acc[r][t], f[r][2], y_even_high, f[r][3], y_odd_high);
                }
            }
        }
    }
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) sums[r * T + t] = NAMED(sum_lanes, SUFFIX)(acc[r][t]);
}

TILE_DISPATCH(NAMED(bitnet_tq2_0_tile, SUFFIX), TARGET_256, NAMED(tq2_0, SUFFIX), 2, BITNET_AVX2_PROMPT_ROWS, 0)
TILE_DISPATCH(NAMED(bitnet_tq1_0_tile, SUFFIX), TARGET_256, NAMED(tq1_0, SUFFIX), 2, BITNET_AVX2_PROMPT_ROWS, 0)
TILE_DISPATCH(NAMED(bitnet_i2_s_tile, SUFFIX), TARGET_256, NAMED(i2_s, SUFFIX), 2, BITNET_AVX2_PROMPT_ROWS, 0)

#undef NAMED
#undef NAMED2
