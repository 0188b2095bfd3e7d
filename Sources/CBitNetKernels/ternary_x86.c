// x86 integer tiles of the ternary matmul: AVX2 (vpmaddubsw) and AVX-VNNI (vpdpbusd) from one 256-bit source,
// and AVX-512 VNNI. All compute Σ c'·x with c' ∈ {0, 1, 2} the stored codes (unsigned) and x int8 (signed); the
// driver subtracts Σ x. A tile covers up to 4 rows × 4 tokens so the codes decoded from one load of weights serve
// every token of the tile, and each activation load serves every row.
#include "kernels_internal.h"

#ifdef BITNET_X86
#include <immintrin.h>

#include "tq1_0_avx2.h"

#define TARGET_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))

// MARK: - AVX2 and AVX-VNNI (one source, ternary_x86_256.h)

/// The powers 3^k, k = 1..5, that give F_k = ⌊3^k·v / 256⌋ as the high half of (256·v) · 3^k.
static const short tq1_0_powers[5] = {3, 9, 27, 81, 243};

#define SUFFIX avx2
#define TARGET_256 TARGET_AVX2
#define DPBUSD 0
#include "ternary_x86_256.h"
#undef SUFFIX
#undef TARGET_256
#undef DPBUSD

#define SUFFIX avxvnni
#define TARGET_256 __attribute__((target("avx2,fma,f16c,avxvnni")))
#define DPBUSD 1
#include "ternary_x86_256.h"
#undef SUFFIX
#undef TARGET_256
#undef DPBUSD

// The AVX-VNNI tiles EVEX-encoded: the same instructions on CPUs with AVX-512 VNNI but not AVX-VNNI (Ice Lake,
// Cascade Lake), so that level runs, and is tested, there too.
#define SUFFIX avxvnni_evex
#define TARGET_256 __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")))
#define DPBUSD 1
#include "ternary_x86_256.h"
#undef SUFFIX
#undef TARGET_256
#undef DPBUSD

// MARK: - AVX-512 VNNI
//
// No shifts: 16 code bytes are broadcast to the four 128-bit lanes and lane g keeps only bits 2g..2g+1 of each
// byte, that is 4^g times the code, so one AND gives 64 codes (where a shift and an AND gave 32). vpdpbusd sums
// them in 32 bits, where 4^g · 2 · 128 · 4 cannot overflow, and each lane's sums are divided by 4^g exactly at
// the end. The activations are reordered once per matmul (``bitnet_prepare_lanes_vnni``) so that lane g of a
// 64-byte load holds the 16 values field g of those bytes multiplies. Both ports that run vpdpbusd are then
// left to it: measured on this tile's shapes, a shift or an AND costs as much as a vpdpbusd.

/// The four fields of 16 code bytes, field g in 128-bit lane g, scaled by 4^g.
TARGET_VNNI static ALWAYS_INLINE __m512i fields_vnni(const uint8_t *bytes) {
    const __m512i masks = _mm512_set_epi32((int)0xC0C0C0C0, (int)0xC0C0C0C0, (int)0xC0C0C0C0, (int)0xC0C0C0C0,
                                           0x30303030, 0x30303030, 0x30303030, 0x30303030,
                                           0x0C0C0C0C, 0x0C0C0C0C, 0x0C0C0C0C, 0x0C0C0C0C,
                                           0x03030303, 0x03030303, 0x03030303, 0x03030303);
    return _mm512_and_si512(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)bytes)), masks);
}

/// The sums of `count` accumulators, lane g of each divided by 4^g (exact: each of its dwords is a
/// multiple of 4^g). Four at a time, transposed so one shift and two adds finish four of them: reducing each
/// on its own cost a quarter as many operations as a 2560-column tile's multiplies.
TARGET_VNNI static ALWAYS_INLINE void unscaled_sums_vnni(const __m512i *acc, int count, int32_t *sums) {
    const __m512i shifts = _mm512_set_epi32(6, 6, 6, 6, 4, 4, 4, 4, 2, 2, 2, 2, 0, 0, 0, 0);
    for (int first = 0; first < count; first += 4) {
        __m512i v[4];
        for (int i = 0; i < 4; i++) v[i] = first + i < count ? acc[first + i] : _mm512_setzero_si512();
        // Within each 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3], then [Σa, Σb, Σc, Σd].
        __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(v[0], v[1]), _mm512_unpackhi_epi32(v[0], v[1]));
        __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2], v[3]), _mm512_unpackhi_epi32(v[2], v[3]));
        __m512i abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
        abcd = _mm512_srav_epi32(abcd, shifts);
        __m256i half = _mm256_add_epi32(_mm512_castsi512_si256(abcd), _mm512_extracti64x4_epi64(abcd, 1));
        __m128i four = _mm_add_epi32(_mm256_castsi256_si128(half), _mm256_extracti128_si256(half, 1));
        int32_t out[4];
        _mm_storeu_si128((__m128i *)out, four);
        for (int i = 0; i < 4 && first + i < count; i++) sums[first + i] = out[i];
    }
}

/// TQ2_0 and I2_S alike: `groups` runs of 16 code bytes per block (`block_bytes` apart in a row), each meeting
/// 64 prepared activations. A decode tile (one token) alternates two accumulators per row to hide vpdpbusd's
/// latency, over 4 rows: with 2, its 4 chains waited on that latency (1.87 ns a row's block, in L1; 1.40 with 4, and
/// a whole 2560-column GEMV in L2 27 % faster); a prompt tile has R × T independent sums already.
TARGET_VNNI static ALWAYS_INLINE void fields_tile_vnni(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                       int64_t b0, int64_t b1, const int R, const int T, int32_t *sums,
                                                       const int block_bytes, const int groups) {
    const int A = T == 1 ? 2 : 1;
    __m512i acc[2][4][8];
    for (int a = 0; a < A; a++) for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[a][r][t] = _mm512_setzero_si512();
    for (int64_t b = b0; b < b1; b++) {
        if (T == 1) for (int r = 0; r < R; r++) prefetch_decode_ahead(w + r * row_bytes + b * block_bytes);
        for (int s = 0; s < groups; s++) {
            __m512i c[4];
            for (int r = 0; r < R; r++) c[r] = fields_vnni(w + r * row_bytes + b * block_bytes + 16 * s);
            for (int t = 0; t < T; t++) {
                __m512i xv = _mm512_loadu_si512(x + t * xs + (b * groups + s) * 64);
                for (int r = 0; r < R; r++) acc[s % A][r][t] = _mm512_dpbusd_epi32(acc[s % A][r][t], c[r], xv);
            }
        }
    }
    __m512i total[32];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) total[r * T + t] = A == 2 ? _mm512_add_epi32(acc[0][r][t], acc[1][r][t]) : acc[0][r][t];
    unscaled_sums_vnni(total, R * T, sums);
}

TARGET_VNNI static ALWAYS_INLINE void tq2_0_vnni(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                 int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    fields_tile_vnni(w, row_bytes, x, xs, b0, b1, R, T, sums, 66, 4);
}

TARGET_VNNI static ALWAYS_INLINE void i2_s_vnni(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    fields_tile_vnni(w, row_bytes, x, xs, b0, b1, R, T, sums, 32, 2);
}

/// TQ1_0 unpacked by ``bitnet_tq1_0_unpack_vnni``: 64 bytes a block, TQ2_0's density.
TARGET_VNNI static ALWAYS_INLINE void fields64_vnni(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                    int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    fields_tile_vnni(w, row_bytes, x, xs, b0, b1, R, T, sums, 64, 4);
}

/// The value of a TQ1_0 block that code j of code byte i multiplies (see ``bitnet_prepare_tq1_0``).
static int tq1_0_value(int i, int j) { return i < 32 ? 32 * j + i : i < 48 ? 160 + 16 * j + (i - 32) : 240 + 4 * j + (i - 48); }

/// The value of a block that field g of byte q of a row's 64 bytes a block multiplies: TQ2_0's stored bytes, I2_S's,
/// or TQ1_0's as ``bitnet_tq1_0_unpack_vnni`` writes them.
static int field_value(int32_t encoding, int q, int g) {
    switch (encoding) {
    case BITNET_TERNARY_TQ2_0: return 128 * (q / 32) + 32 * g + q % 32;  // byte i of half h: 128h + 32g + i
    case BITNET_TERNARY_I2_S: return 32 * (3 - g) + q;                    // byte i: 32(3 − g) + i
    default: return q < 52 ? tq1_0_value(q, g) : tq1_0_value(12 * g + q - 52, 4);
    }
}

static inline int lanes_block_values(int32_t encoding) { return encoding == BITNET_TERNARY_I2_S ? 128 : 256; }

/// Per run length (16 code bytes for the AVX-512 tiles, 32 for the 256-bit ones) and encoding, the value of a block
/// that each prepared activation is: field g of the 4·n activations for code bytes n·s … n·s + n − 1 holds the n
/// values their field g multiplies. Built once, before any kernel runs.
static int16_t field_orders[2][3][256];

__attribute__((constructor))
static void build_field_orders(void) {
    for (int size = 0; size < 2; size++) {
        const int n = size == 0 ? 16 : 32;
        for (int32_t encoding = 0; encoding < 3; encoding++)
            for (int s = 0; s < lanes_block_values(encoding) / (4 * n); s++)
                for (int g = 0; g < 4; g++)
                    for (int j = 0; j < n; j++)
                        field_orders[size][encoding][4 * n * s + n * g + j] = (int16_t)field_value(encoding, n * s + j, g);
    }
}

static void prepare_in_order(const int16_t *order, int32_t encoding, const int8_t *x, int64_t columns, int8_t *prepared) {
    const int block_values = lanes_block_values(encoding);
    for (int64_t block = 0; block < columns / block_values; block++)
        for (int i = 0; i < block_values; i++) prepared[block * block_values + i] = x[block * block_values + order[i]];
}

void bitnet_prepare_lanes_vnni(int32_t encoding, const int8_t *x, int64_t columns, int8_t *prepared) {
    prepare_in_order(field_orders[0][encoding], encoding, x, columns, prepared);
}

void bitnet_prepare_fields_256(int32_t encoding, const int8_t *x, int64_t columns, int8_t *prepared) {
    prepare_in_order(field_orders[1][encoding], encoding, x, columns, prepared);
}

/// TQ1_0 rows into the 64 bytes a block that ``bitnet_tq1_0_unpack_vnni`` writes, with AVX2: 3^j·v mod 256 by
/// tripling bytes (v + v + v wraps as the product does), so no multiply.
TARGET_AVX2 void bitnet_tq1_0_unpack_256(const uint8_t *w, int64_t row_bytes, int64_t blocks, int rows, uint8_t *unpacked) {
    const __m256i first_five_words = _mm256_setr_epi32(-1, -1, -1, -1, -1, 0, 0, 0);
    uint8_t fifth[80] = {0};  // code 4 of each byte, from offset 4, as the AVX-512 unpack keeps it
    for (int r = 0; r < rows; r++) {
        for (int64_t b = 0; b < blocks; b++) {
            const uint8_t *block = w + r * row_bytes + b * 54;
            uint8_t *target = unpacked + (r * blocks + b) * 64;
            for (int half = 0; half < 2; half++) {
                __m256i t = half == 0 ? _mm256_loadu_si256((const __m256i *)block)
                                      : _mm256_maskload_epi32((const int *)(block + 32), first_five_words);  // bytes 32 … 51
                __m256i packed = tq1_0_digit_avx2(t);
                for (int j = 1; j < 5; j++) {
                    t = _mm256_add_epi8(t, _mm256_add_epi8(t, t));
                    __m256i digit = tq1_0_digit_avx2(t);
                    if (j < 4) packed = _mm256_or_si256(packed, _mm256_slli_epi16(digit, 2 * j));
                    else _mm256_storeu_si256((__m256i *)(fifth + 4 + 32 * half), digit);
                }
                _mm256_storeu_si256((__m256i *)(target + 32 * half), packed);
            }
            __m128i tail = _mm_loadu_si128((const __m128i *)fifth);
            for (int g = 1; g < 4; g++)
                tail = _mm_or_si128(tail, _mm_slli_epi16(_mm_loadu_si128((const __m128i *)(fifth + 12 * g)), 2 * g));
            // Bytes 52 … 63 from the tail's 4 … 15; 48 … 51 stay the fields of code bytes 48 … 51.
            _mm_storeu_si128((__m128i *)(target + 48), _mm_blend_epi32(tail, _mm_loadu_si128((const __m128i *)(target + 48)), 0x1));
        }
    }
}

/// Codes j = 0 … 4 of 64 TQ1_0 bytes: ⌊3·(3^j·v mod 256) / 256⌋ = [t ≥ 86] + [t ≥ 171] with t = 3^j·v mod 256.
TARGET_VNNI static ALWAYS_INLINE __m512i tq1_0_digit_vnni(__m512i v, int j) {
    static const short powers[5] = {1, 3, 9, 27, 81};
    const __m512i power = _mm512_set1_epi16(powers[j]);
    const __m512i odd_bytes = _mm512_set1_epi16((short)0xFF00), one = _mm512_set1_epi8(1);
    // Low bytes of a 16-bit product depend on the low byte alone; high bytes from the odd byte, low byte cleared.
    __m512i even = _mm512_mullo_epi16(v, power), odd = _mm512_mullo_epi16(_mm512_and_si512(v, odd_bytes), power);
    __m512i t = _mm512_mask_blend_epi8(0xAAAAAAAAAAAAAAAAULL, even, odd);
    __m512i digit = _mm512_maskz_mov_epi8(_mm512_cmpge_epu8_mask(t, _mm512_set1_epi8(86)), one);
    return _mm512_mask_add_epi8(digit, _mm512_cmpge_epu8_mask(t, _mm512_set1_epi8((char)171)), digit, one);
}

/// TQ1_0 rows into 64 bytes a block: byte q < 52 holds codes 0 … 3 of code byte q in fields 0 … 3; bytes 52 … 63
/// hold code 4 of bytes 12g … 12g + 11 in field g (the code bytes 48 … 51 have no code 4).
TARGET_VNNI void bitnet_tq1_0_unpack_vnni(const uint8_t *w, int64_t row_bytes, int64_t blocks, int rows, uint8_t *unpacked) {
    const __mmask64 code_bytes = (1ULL << 52) - 1;
    uint8_t fifth[80];  // code 4 of each byte, from offset 4, so byte 12g − 4 + k is code 4 of byte 12g + k − 4
    for (int r = 0; r < rows; r++) {
        for (int64_t b = 0; b < blocks; b++) {
            __m512i v = _mm512_maskz_loadu_epi8(code_bytes, w + r * row_bytes + b * 54);
            __m512i fields = tq1_0_digit_vnni(v, 0);
            for (int j = 1; j < 4; j++) fields = _mm512_or_si512(fields, _mm512_slli_epi16(tq1_0_digit_vnni(v, j), 2 * j));
            _mm512_storeu_si512(fifth + 4, tq1_0_digit_vnni(v, 4));
            __m128i tail = _mm_loadu_si128((const __m128i *)fifth);
            for (int g = 1; g < 4; g++)
                tail = _mm_or_si128(tail, _mm_slli_epi16(_mm_loadu_si128((const __m128i *)(fifth + 12 * g)), 2 * g));
            uint8_t *target = unpacked + (r * blocks + b) * 64;
            _mm512_storeu_si512(target, fields);
            _mm_mask_storeu_epi8(target + 48, 0xFFF0, tail);  // bytes 52 … 63
        }
    }
}

TILE_DISPATCH(bitnet_fields_tile_vnni, TARGET_VNNI, fields64_vnni, 2, BITNET_VNNI_PROMPT_ROWS, 1)

/// The twin of ``tq1_0_avx2``: 32 code bytes per 16-bit vector, `vpdpwssd` for the multiply-add.
/// `vpdpwssd` as written: the compiler otherwise splits it into vpmaddwd + vpaddd (its default tuning takes it for slow).
TARGET_VNNI static ALWAYS_INLINE __m512i dpwssd_vnni(__m512i acc, __m512i a, __m512i b) {
    __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

TARGET_VNNI static ALWAYS_INLINE void tq1_0_vnni(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                 int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    const __mmask64 code_bytes = (1ULL << 52) - 1;
    const __m512i high_bytes = _mm512_set1_epi16((short)0xFF00);
    // Two accumulators per row and token (even and odd bytes), to hide vpdpwssd's latency; a decode tile (one
    // token) keeps a pair per power too. Two chains per row left it waiting on that latency: ten took a row's
    // block from 14.1 to 12.6 cycles with the rows in cache, 15.4 to 13.5 streaming them (Ice Lake, one core).
    const int K = T == 1 ? 5 : 1;
    __m512i acc[5][4][4], acc2[5][4][4];
    for (int k = 0; k < K; k++)
        for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[k][r][t] = acc2[k][r][t] = _mm512_setzero_si512();
    for (int64_t b = b0; b < b1; b++) {
        __m512i even[4], odd[4];
        if (T == 1) for (int r = 0; r < R; r++) prefetch_decode_ahead(w + r * row_bytes + b * 54);
        for (int r = 0; r < R; r++) {
            __m512i v = _mm512_maskz_loadu_epi8(code_bytes, w + r * row_bytes + b * 54);
            even[r] = _mm512_slli_epi16(v, 8);
            odd[r] = _mm512_and_si512(v, high_bytes);
        }
#pragma clang loop unroll(full)  // so each power's accumulators stay in registers
        for (int k = 0; k < 5; k++) {
            const __m512i power = _mm512_set1_epi16(tq1_0_powers[k]);
            __m512i f_even[4], f_odd[4];
            for (int r = 0; r < R; r++) {
                f_even[r] = _mm512_mulhi_epu16(even[r], power);
                f_odd[r] = _mm512_mulhi_epu16(odd[r], power);
            }
            for (int t = 0; t < T; t++) {
                const int16_t *y = (const int16_t *)(x + t * xs + b * 640) + 64 * k;
                __m512i y_even = _mm512_loadu_si512(y), y_odd = _mm512_loadu_si512(y + 32);
                for (int r = 0; r < R; r++) {
                    acc[k % K][r][t] = dpwssd_vnni(acc[k % K][r][t], f_even[r], y_even);
                    acc2[k % K][r][t] = dpwssd_vnni(acc2[k % K][r][t], f_odd[r], y_odd);
                }
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) {
            __m512i total = _mm512_add_epi32(acc[0][r][t], acc2[0][r][t]);
            for (int k = 1; k < K; k++) total = _mm512_add_epi32(total, _mm512_add_epi32(acc[k][r][t], acc2[k][r][t]));
            sums[r * T + t] = _mm512_reduce_add_epi32(total);
        }
}

TILE_DISPATCH(bitnet_tq2_0_tile_vnni, TARGET_VNNI, tq2_0_vnni, BITNET_VNNI_DECODE_ROWS, BITNET_VNNI_PROMPT_ROWS, 1)
// TQ1_0's VNNI tile runs decode steps only (its prompts unpack rows for the field tile), and 2 rows for 4 tokens.
TILE_DISPATCH(bitnet_tq1_0_tile_vnni, TARGET_VNNI, tq1_0_vnni, 2, 2, 0)
TILE_DISPATCH(bitnet_i2_s_tile_vnni, TARGET_VNNI, i2_s_vnni, BITNET_VNNI_DECODE_ROWS, BITNET_VNNI_PROMPT_ROWS, 1)

#endif
