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
        if (T == 1) for (int r = 0; r < R; r++) prefetch_stream_ahead(w + r * row_bytes + b * 66);
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
        if (T == 1) for (int r = 0; r < R; r++) prefetch_stream_ahead(w + r * row_bytes + b * 32);
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
        if (T == 1) for (int r = 0; r < R; r++) prefetch_stream_ahead(w + r * row_bytes + b * 54);
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

/// One span of a prompt tile, blocks [start, end): P rows × Q tokens of codes in runs of 32 bytes (`groups` a block,
/// `block_bytes` apart), field l of a run (bits `first_shift + step·l`) meeting the 32 activations at
/// 128·(b·groups + s) + 32·l of each token. With vpmaddubsw the products are summed in 16 bits — over a span of at
/// most 2,048 values, 64 products of at most 2·2·128 = 512 a lane, so they stay within int16 — and vpdpbusd sums in
/// 32 bits. Each activation load serves the P rows and each field's codes the Q tokens.
TARGET_256 static ALWAYS_INLINE void NAMED(span_sums, SUFFIX)(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                              int64_t start, int64_t end, const int P, const int Q,
                                                              __m256i part[2][4], const int block_bytes, const int groups,
                                                              const int first_shift, const int step) {
    const __m256i mask = _mm256_set1_epi8(3);
    for (int p = 0; p < P; p++) for (int q = 0; q < Q; q++) part[p][q] = _mm256_setzero_si256();
    for (int64_t b = start; b < end; b++)
        for (int s = 0; s < groups; s++) {
            __m256i run[2];
            for (int p = 0; p < P; p++) run[p] = _mm256_loadu_si256((const __m256i *)(w + p * row_bytes + b * block_bytes + 32 * s));
            const int8_t *xb = x + (b * groups + s) * 128;
            for (int l = 0; l < 4; l++) {
                __m256i codes[2];
                for (int p = 0; p < P; p++) codes[p] = _mm256_and_si256(_mm256_srli_epi16(run[p], first_shift + step * l), mask);
                for (int q = 0; q < Q; q++) {
                    const __m256i xv = _mm256_loadu_si256((const __m256i *)(xb + q * xs + 32 * l));
                    for (int p = 0; p < P; p++)
#if DPBUSD
                        part[p][q] = _mm256_dpbusd_epi32(part[p][q], codes[p], xv);
#else
                        part[p][q] = _mm256_add_epi16(part[p][q], _mm256_maddubs_epi16(codes[p], xv));
#endif
                }
                // Each field's sums in registers before the next field's codes: left free, the compiler split all
                // four fields' codes first, summed a token's four products in a tree and spilled sums.
                for (int p = 0; p < P; p++) for (int q = 0; q < Q; q++) __asm__("" : "+x"(part[p][q]));
            }
        }
}

/// Prompt tiles: R rows × T tokens over blocks [b0, b1), walked in spans of 2,048 values (``span_sums``), each span
/// for all R rows and T tokens before the next so the tokens' activations of a span (16 KiB for 8) stay in L1, in
/// pieces of 2 rows × 4 tokens: 8 sums, 2 runs, their codes and an activation fill the 16 registers, and each
/// activation load serves two rows. A span's sums are widened once into 32-bit totals that wait in memory.
/// Measured on 2 Zen 3 cores (`KernelBenchmark 2`, 128 tokens): the 2 × 4 tile that kept every sum and code in
/// registers over whole rows spilled both and reached 170–225 GOPS, spans 240–330; pieces of 1 row × 8 tokens
/// measured the same within that machine's noise.
TARGET_256 static ALWAYS_INLINE void NAMED(span_tile, SUFFIX)(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                              int64_t b0, int64_t b1, const int R, const int T, int32_t *sums,
                                                              const int block_bytes, const int groups, const int first_shift,
                                                              const int step) {
    const int64_t span_blocks = 16 / groups;  // 64 runs' fields: 2,048 values
    __m256i total[4][8];
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) total[r][t] = _mm256_setzero_si256();
    for (int64_t start = b0; start < b1; start += span_blocks) {
        const int64_t end = start + span_blocks < b1 ? start + span_blocks : b1;
        // Pieces of 2 × 4, then the odd row and the last tokens (R and T are constants: every P and Q is one).
        for (int r = 0; r < R; r += 2)
            for (int t = 0; t < T; t += 4) {
                const int P = R - r < 2 ? 1 : 2, Q = T - t < 4 ? T - t : 4;
                __m256i part[2][4];
                NAMED(span_sums, SUFFIX)(w + r * row_bytes, row_bytes, x + t * xs, xs, start, end, P, Q, part, block_bytes,
                                         groups, first_shift, step);
                for (int p = 0; p < P; p++)
                    for (int q = 0; q < Q; q++)
#if DPBUSD
                        total[r + p][t + q] = _mm256_add_epi32(total[r + p][t + q], part[p][q]);
#else
                        total[r + p][t + q] = _mm256_add_epi32(total[r + p][t + q], _mm256_madd_epi16(part[p][q], _mm256_set1_epi16(1)));
#endif
            }
    }
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) sums[r * T + t] = NAMED(sum_lanes, SUFFIX)(total[r][t]);
}

/// ``span_tile`` for the driver's prompt tile (``BITNET_256_PROMPT_ROWS`` × ``BITNET_256_PROMPT_TOKENS``) unrolled,
/// and for any other shape a row at a time over its tokens.
TARGET_256 static ALWAYS_INLINE void NAMED(prompt_tile, SUFFIX)(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                                int64_t b0, int64_t b1, int rows, int tokens, int32_t *sums,
                                                                const int block_bytes, const int groups, const int first_shift,
                                                                const int step) {
#define SPAN(R, T, w, sums) NAMED(span_tile, SUFFIX)(w, row_bytes, x, xs, b0, b1, R, T, sums, block_bytes, groups, first_shift, step)
    if (rows == BITNET_256_PROMPT_ROWS && tokens == BITNET_256_PROMPT_TOKENS) {
        SPAN(BITNET_256_PROMPT_ROWS, BITNET_256_PROMPT_TOKENS, w, sums);
        return;
    }
    for (int r = 0; r < rows; r++) {
        const uint8_t *row = w + r * row_bytes;
        int32_t *out = sums + r * tokens;
        switch (tokens) {
        case 1: SPAN(1, 1, row, out); break;
        case 2: SPAN(1, 2, row, out); break;
        case 3: SPAN(1, 3, row, out); break;
        case 4: SPAN(1, 4, row, out); break;
        case 5: SPAN(1, 5, row, out); break;
        case 6: SPAN(1, 6, row, out); break;
        case 7: SPAN(1, 7, row, out); break;
        default: SPAN(1, 8, row, out); break;
        }
    }
#undef SPAN
}

/// TQ2_0 and I2_S: a decode step's rows (``BITNET_256_DECODE_ROWS``) through their GEMV bodies, everything else
/// through the prompt tile.
TARGET_256 void NAMED(bitnet_tq2_0_tile, SUFFIX)(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs, int64_t b0,
                                                 int64_t b1, int rows, int tokens, int32_t *sums) {
    if (rows == BITNET_256_DECODE_ROWS && tokens == 1) NAMED(tq2_0, SUFFIX)(w, row_bytes, x, xs, b0, b1, BITNET_256_DECODE_ROWS, 1, sums);
    else NAMED(prompt_tile, SUFFIX)(w, row_bytes, x, xs, b0, b1, rows, tokens, sums, 66, 2, 0, 2);
}

TARGET_256 void NAMED(bitnet_i2_s_tile, SUFFIX)(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs, int64_t b0,
                                                int64_t b1, int rows, int tokens, int32_t *sums) {
    if (rows == BITNET_256_DECODE_ROWS && tokens == 1) NAMED(i2_s, SUFFIX)(w, row_bytes, x, xs, b0, b1, BITNET_256_DECODE_ROWS, 1, sums);
    else NAMED(prompt_tile, SUFFIX)(w, row_bytes, x, xs, b0, b1, rows, tokens, sums, 32, 1, 6, -2);
}

/// TQ1_0 rows unpacked by ``bitnet_tq1_0_unpack_256`` (64 bytes a block, fields as TQ2_0's), their activations
/// ordered by ``bitnet_prepare_fields_256``: prompts.
TARGET_256 void NAMED(bitnet_fields64_tile, SUFFIX)(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs, int64_t b0,
                                                    int64_t b1, int rows, int tokens, int32_t *sums) {
    NAMED(prompt_tile, SUFFIX)(w, row_bytes, x, xs, b0, b1, rows, tokens, sums, 64, 2, 0, 2);
}

// TQ1_0's stored rows run decode steps only (its prompts unpack rows for the fields tile).
TILE_DISPATCH(NAMED(bitnet_tq1_0_tile, SUFFIX), TARGET_256, NAMED(tq1_0, SUFFIX), BITNET_256_DECODE_ROWS, 2, 0)

#undef NAMED
#undef NAMED2
