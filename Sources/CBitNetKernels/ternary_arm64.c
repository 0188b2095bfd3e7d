// Arm64 integer tiles of the ternary matmul: NEON with the dot-product extension (`sdot`, Armv8.2 and later:
// Apple M1 on, Graviton 2 on, Cortex-A76 on). Like the x86 tiles they compute Σ c'·x with c' ∈ {0, 1, 2} the
// stored codes and x int8, and the driver subtracts Σ x; all three encodings read the activations as they are
// (no reordering), since each 16 code bytes' field or digit meets 16 consecutive activations.
#include "kernels_internal.h"

#ifdef BITNET_ARM64
#include <arm_neon.h>
#include <string.h>

#define TARGET_DOTPROD __attribute__((target("dotprod")))

/// Sums of 16-byte code vectors × 16 activations, accumulated in one int32x4 per row and token.
TARGET_DOTPROD static ALWAYS_INLINE int32x4_t dot16(int32x4_t acc, uint8x16_t codes, const int8_t *x) {
    return vdotq_s32(acc, vreinterpretq_s8_u8(codes), vld1q_s8(x));
}

/// The 2-bit field at bit `shift` of 16 bytes.
static ALWAYS_INLINE uint8x16_t field(uint8x16_t bytes, int shift) {
    const uint8x16_t three = vdupq_n_u8(3);
    switch (shift) {
    case 0: return vandq_u8(bytes, three);
    case 2: return vandq_u8(vshrq_n_u8(bytes, 2), three);
    case 4: return vandq_u8(vshrq_n_u8(bytes, 4), three);
    default: return vshrq_n_u8(bytes, 6);
    }
}

/// TQ2_0: byte i of a block's half h holds values 128h + 32·lane + i at bits 2·lane. I2_S: byte i of a 32-byte
/// block holds values 32·lane + i at bits 6 − 2·lane. `halves` runs of 32 code bytes per block, `block_bytes`
/// apart; each run's field `lane` meets the 32 activations from `run_values · run + 32 · lane`.
TARGET_DOTPROD static ALWAYS_INLINE void fields_tile_neon(const uint8_t *w, int64_t row_bytes, const int8_t *x,
                                                          int64_t xs, int64_t b0, int64_t b1, const int R, const int T,
                                                          int32_t *sums, const int block_bytes, const int block_values,
                                                          const int runs, const int i2_s) {
    int32x4_t acc[4][4];
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = vdupq_n_s32(0);
    for (int64_t b = b0; b < b1; b++) {
        if (T == 1) for (int r = 0; r < R; r++) prefetch_decode_ahead(w + r * row_bytes + b * block_bytes);
        for (int run = 0; run < runs; run++)
            for (int half = 0; half < 2; half++) {
                uint8x16_t bytes[4];
                for (int r = 0; r < R; r++) bytes[r] = vld1q_u8(w + r * row_bytes + b * block_bytes + 32 * run + 16 * half);
                for (int lane = 0; lane < 4; lane++) {
                    const int shift = i2_s ? 6 - 2 * lane : 2 * lane;
                    for (int r = 0; r < R; r++) {
                        uint8x16_t codes = field(bytes[r], shift);
                        for (int t = 0; t < T; t++)
                            acc[r][t] = dot16(acc[r][t], codes, x + t * xs + b * block_values + 128 * run + 32 * lane + 16 * half);
                    }
                }
            }
    }
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) sums[r * T + t] = vaddvq_s32(acc[r][t]);
}

/// Digit j of 16 TQ1_0 code bytes whose products with 3^j (mod 256) are `t`: ⌊3t / 256⌋ = [t ≥ 86] + [t ≥ 171],
/// returned negated (each true comparison is −1), so one `sdot` of it gives −Σ d·x.
static ALWAYS_INLINE uint8x16_t negated_digit(uint8x16_t t) {
    return vaddq_u8(vcgeq_u8(t, vdupq_n_u8(86)), vcgeq_u8(t, vdupq_n_u8(171)));
}

/// TQ1_0 (see ``bitnet_prepare_tq1_0``): code j of byte i meets x[32j + i] (i < 32), x[160 + 16j + i − 32]
/// (i < 48), x[240 + 4j + i − 48] (i < 52, j < 4). The four bytes 48 … 51 are repeated across one vector and
/// multiplied by 3^j in lane group j, so their sixteen digits meet x[240 … 255] in order.
TARGET_DOTPROD static ALWAYS_INLINE void tq1_0_tile_neon(const uint8_t *w, int64_t row_bytes, const int8_t *x,
                                                         int64_t xs, int64_t b0, int64_t b1, const int R, const int T,
                                                         int32_t *sums) {
    static const uint8_t tail_powers[16] = {1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27};
    const uint8x16_t powers = vld1q_u8(tail_powers), three = vdupq_n_u8(3);
    int32x4_t acc[4][4];  // −Σ d·x
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) acc[r][t] = vdupq_n_s32(0);
    for (int64_t b = b0; b < b1; b++) {
        if (T == 1) for (int r = 0; r < R; r++) prefetch_decode_ahead(w + r * row_bytes + b * 54);
        uint8x16_t v[4][4];  // per row: bytes 0–15, 16–31, 32–47, and 48–51 four times, times 3^j as j goes
        for (int r = 0; r < R; r++) {
            const uint8_t *block = w + r * row_bytes + b * 54;
            uint32_t tail;
            memcpy(&tail, block + 48, 4);
            v[r][0] = vld1q_u8(block);
            v[r][1] = vld1q_u8(block + 16);
            v[r][2] = vld1q_u8(block + 32);
            v[r][3] = vmulq_u8(vreinterpretq_u8_u32(vdupq_n_u32(tail)), powers);
        }
        for (int j = 0; j < 5; j++) {
            for (int r = 0; r < R; r++) {
                uint8x16_t d0 = negated_digit(v[r][0]), d1 = negated_digit(v[r][1]), d2 = negated_digit(v[r][2]);
                for (int t = 0; t < T; t++) {
                    const int8_t *xt = x + t * xs + b * 256;
                    acc[r][t] = dot16(acc[r][t], d0, xt + 32 * j);
                    acc[r][t] = dot16(acc[r][t], d1, xt + 32 * j + 16);
                    acc[r][t] = dot16(acc[r][t], d2, xt + 160 + 16 * j);
                }
                for (int k = 0; k < 3; k++) v[r][k] = vmulq_u8(v[r][k], three);
            }
        }
        for (int r = 0; r < R; r++) {
            uint8x16_t d = negated_digit(v[r][3]);
            for (int t = 0; t < T; t++) acc[r][t] = dot16(acc[r][t], d, x + t * xs + b * 256 + 240);
        }
    }
    for (int r = 0; r < R; r++) for (int t = 0; t < T; t++) sums[r * T + t] = -vaddvq_s32(acc[r][t]);
}

TARGET_DOTPROD static ALWAYS_INLINE void tq2_0_neon(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                    int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    fields_tile_neon(w, row_bytes, x, xs, b0, b1, R, T, sums, 66, 256, 2, 0);
}

TARGET_DOTPROD static ALWAYS_INLINE void i2_s_neon(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t xs,
                                                   int64_t b0, int64_t b1, const int R, const int T, int32_t *sums) {
    fields_tile_neon(w, row_bytes, x, xs, b0, b1, R, T, sums, 32, 128, 1, 1);
}

// Decode 2 × 1, prompts 2 × 4 (``TILE_DISPATCH``).
TILE_DISPATCH(bitnet_tq2_0_tile_neon, TARGET_DOTPROD, tq2_0_neon, 2, 2, 0)
TILE_DISPATCH(bitnet_tq1_0_tile_neon, TARGET_DOTPROD, tq1_0_tile_neon, 2, 2, 0)
TILE_DISPATCH(bitnet_i2_s_tile_neon, TARGET_DOTPROD, i2_s_neon, 2, 2, 0)

#endif
