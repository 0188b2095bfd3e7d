#ifndef BITNET_KERNELS_H
#define BITNET_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The instruction set the kernels dispatch to on the calling thread: "avx512vnni", "avx2" or "scalar". The
/// best one the CPU runs, unless the environment variable BITNET_KERNELS (read once at load) names a lower
/// one, or ``bitnet_kernels_force`` chose one for this thread.
const char *bitnet_kernels_isa(void);

/// Makes the calling thread's kernels use `isa` ("scalar", "avx2", "avx512vnni"), or the default again
/// when `isa` is NULL or empty; for tests. Returns -1, changing nothing, when the name is unknown or the CPU
/// cannot run it. Other threads are not affected.
int bitnet_kernels_force(const char *isa);

/// Dot products of one TQ2_0 row (`blocks` blocks of 256 values, 66 bytes each) with int8 activations.
/// Writes, for each block b, the integer sum Σ (code − 1) · x over the block to `block_sums[b]`.
/// `x_block_sums[b]` must hold Σ x over block b (precomputed once per activation row).
void bitnet_tq2_0_block_dots(const uint8_t *row, const int8_t *x, const int32_t *x_block_sums,
                             int64_t blocks, int32_t *block_sums);

/// Like ``bitnet_tq2_0_block_dots`` for TQ1_0 (54-byte blocks of 256 base-3 packed values).
void bitnet_tq1_0_block_dots(const uint8_t *row, const int8_t *x, const int32_t *x_block_sums,
                             int64_t blocks, int32_t *block_sums);

/// Σ (code − 1) · x over one I2_S row of `n` values (a multiple of 128): `packed` points at the row's
/// first 32-byte block; `x_sum` is Σ x over the row.
int32_t bitnet_i2_s_dot(const uint8_t *packed, const int8_t *x, int32_t x_sum, int64_t n);

/// Σ w·x for one row of `n` weights stored as IEEE half (f16), bfloat16 or float32, with float32 x:
/// the embedding-sized output projection. AVX2 + F16C + FMA when the CPU has them.
float bitnet_dot_f16(const uint16_t *w, const float *x, int64_t n);
float bitnet_dot_bf16(const uint16_t *w, const float *x, int64_t n);
float bitnet_dot_f32(const float *w, const float *x, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
