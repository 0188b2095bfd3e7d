#ifndef BITNET_KERNELS_H
#define BITNET_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - Instruction sets

/// The instruction set the kernels dispatch to on the calling thread: "avx512vnni", "avxvnni", "avx2" or
/// "scalar" on x86-64, "neondot" (NEON with `sdot`) or "scalar" on Arm64. The best one the CPU runs, unless the environment variable BITNET_KERNELS (read once at load) names
/// a lower one, or ``bitnet_kernels_force`` chose one for this thread.
const char *bitnet_kernels_isa(void);

/// Makes the calling thread's kernels use `isa` (one of ``bitnet_kernels_level_name``'s), or the default again
/// when `isa` is NULL or empty; for tests and benchmarks. Returns -1, changing nothing, when the name is unknown
/// or the CPU cannot run it. Other threads are not affected, except the pool threads of a matmul this thread
/// calls: they run the caller's choice.
int bitnet_kernels_force(const char *isa);

/// The number of instruction-set levels of this architecture and the name of each, lowest first ("scalar", "avx2",
/// "avxvnni", "avx512vnni" on x86-64; "scalar", "neondot" on Arm64), whether or not this CPU runs it.
int bitnet_kernels_level_count(void);
const char *bitnet_kernels_level_name(int level);

/// Physical cores of this machine (hyper-threads counted once), or 0 when they cannot be told.
int bitnet_physical_cores(void);

// MARK: - Thread pool

/// Persistent worker threads that split a range of work items between themselves and the caller.
typedef struct bitnet_pool bitnet_pool;

/// A task body: handles items [begin, end) on pool thread `thread` (0 is the calling thread).
typedef void (*bitnet_task)(void *context, int64_t begin, int64_t end, int thread);

/// A pool of `threads` threads in all: `threads − 1` workers plus the thread that calls ``bitnet_pool_run``.
/// Returns NULL when threads cannot be made.
bitnet_pool *bitnet_pool_create(int threads);
void bitnet_pool_destroy(bitnet_pool *pool);
int bitnet_pool_threads(const bitnet_pool *pool);

/// Runs `task` over items [0, count) in chunks of `grain` items (widened where there would be 2³² chunks): each of
/// the caller and the workers starts with a contiguous share of the chunks and, when its own run out, takes the
/// back half of the largest share left; returns when every chunk is done. Calls from several threads take turns;
/// a call from inside a task runs serially on its thread. A NULL pool runs everything on the calling thread.
void bitnet_pool_run(bitnet_pool *pool, int64_t count, int64_t grain, bitnet_task task, void *context);

/// Tells the workers which `bytes` bytes at `data` the next job will read, split between the threads as its rows
/// are: while they wait for it, each asks its caches for the start of its share. Only a hint: the bytes are
/// never loaded, so a stale or mixed-up hint costs bandwidth, never correctness.
void bitnet_pool_warm(bitnet_pool *pool, const void *data, int64_t bytes);

/// Reads `region_count` regions (`counts[r]` bytes from `regions[r]`) once, in 1 MiB chunks shared out between
/// the pool's threads, with the widest loads of the calling thread's instruction set; returns the bytes' sum as
/// 64-bit words (a checksum, so no read can be left out). The fastest a kernel here could stream the same memory: a
/// benchmark's bandwidth roofline.
uint64_t bitnet_stream_read(bitnet_pool *pool, const void *const *regions, const size_t *counts, int64_t region_count);

// MARK: - Ternary matmul

/// Packed ternary weight layouts (codes stored as c + 1 ∈ {0, 1, 2}).
typedef enum {
    /// llama.cpp TQ2_0: 66-byte blocks of 256 values (64 bytes of 2-bit codes, f16 scale).
    BITNET_TERNARY_TQ2_0 = 0,
    /// llama.cpp TQ1_0: 54-byte blocks of 256 values (base-3, five codes a byte; f16 scale).
    BITNET_TERNARY_TQ1_0 = 1,
    /// bitnet.cpp I2_S: 32-byte blocks of 128 values, one float scale after the whole tensor.
    BITNET_TERNARY_I2_S = 2,
} bitnet_ternary_encoding;

/// A `rows × columns` ternary matrix as stored in the file (read in place).
typedef struct {
    int32_t encoding;
    int64_t rows;
    int64_t columns;
    const uint8_t *data;
    /// Optional: per row, 1 where all its blocks have the same scale (``bitnet_ternary_uniform_rows``), so a
    /// matmul takes the answer instead of reading every block's scale again. NULL: each matmul checks each row.
    const uint8_t *uniform_rows;
    /// Optional: the rows repacked by ``bitnet_ternary_lookup_pack``. Where set, matmuls on a level that decodes by
    /// lookup (``bitnet_kernels_decode_by_lookup``) read these instead of `data`: decode steps and batches of up to 32
    /// tokens look them up, longer prompts unpack them.
    const uint8_t *lookup_panels;
} bitnet_ternary_matrix;

/// Bytes of the matrix's rows repacked for table lookups (ternary_lookup.c: panels of 32 rows at
/// 5 bits per three weights, then a float scale per row), or 0 where its rows are not a multiple of 32 or its
/// columns not whole blocks.
int64_t bitnet_ternary_lookup_bytes(const bitnet_ternary_matrix *weights);

/// Repacks the stored rows into `panels` (``bitnet_ternary_lookup_bytes`` bytes, any alignment) on the pool's
/// threads. Returns 0, or -1 where the matrix cannot be repacked (a row whose blocks have different scales, a 2-bit
/// field holding the unused code 3, a shape ``bitnet_ternary_lookup_bytes`` refuses, no memory): its matmuls then
/// read the stored rows.
int bitnet_ternary_lookup_pack(bitnet_pool *pool, const bitnet_ternary_matrix *weights, uint8_t *panels);

/// Whether the calling thread's level reads ternary rows from lookup panels where a matrix has them.
int bitnet_kernels_decode_by_lookup(void);

/// Writes `flags[r]` = 1 where all blocks of row r have the same scale bits (every row of I2_S, which has one
/// scale per tensor), else 0, on the pool's threads, and returns how many rows are uniform. The answer is a
/// property of the stored bytes: a caller finds it once per matrix and passes it as `uniform_rows`.
int64_t bitnet_ternary_uniform_rows(bitnet_pool *pool, const bitnet_ternary_matrix *weights, uint8_t *flags);

/// `output[t · rows + r] = Σ_b d_b · Σ_{i∈b} (c[r, i] − 1) · x[t, i] / x_scales[t]` for `tokens` int8 activation
/// rows `x` (`tokens × columns`, row-major): the whole matmul, rows split between the pool's threads, each
/// weight tile read once for every token (a GEMM when `tokens` > 1). Integer accumulation; one float rescale
/// per row when a row's block scales are equal (BitNet's per-tensor scale), per block otherwise. Every
/// instruction-set level gives the same floats. `columns` must be a multiple of the encoding's block.
/// Returns 0, or -1 when memory for the workspace (prepared activations, unpacked rows) cannot be had.
int bitnet_ternary_matmul(bitnet_pool *pool, const bitnet_ternary_matrix *weights, const int8_t *x,
                          const float *x_scales, int64_t tokens, float *output);

// MARK: - Float matmul

/// Element types of float matrices (embeddings, the output projection).
typedef enum {
    BITNET_FLOAT_F32 = 0,
    BITNET_FLOAT_F16 = 1,
    BITNET_FLOAT_BF16 = 2,
    BITNET_FLOAT_Q8_0 = 3,  ///< llama.cpp Q8_0: blocks of 32 (f16 d, 32 int8), value d · q
    BITNET_FLOAT_Q6_K = 4,  ///< llama.cpp Q6_K: blocks of 256 (210 bytes), value (d · scale) · (l − 32)
} bitnet_float_encoding;

/// `output[t · rows + r] = Σ_c W[r, c] · x[t, c]` for a row-major `rows × columns` matrix of `encoding` and
/// `tokens` float rows `x`; rows split between the pool's threads. `columns` must be a multiple of the
/// encoding's block (32 for Q8_0, 256 for Q6_K). Q6_K is multiplied in integers against activations quantized
/// to int8 per 256 values (llama.cpp's Q8_K). Returns 0, or -1 when there is no memory for those activations.
int bitnet_float_matmul(bitnet_pool *pool, int32_t encoding, const void *weights, int64_t rows, int64_t columns,
                        const float *x, int64_t tokens, float *output);

/// Σ w·x for one row of `n` weights stored as IEEE half (f16), bfloat16 or float32, with float32 x.
float bitnet_dot_f16(const uint16_t *w, const float *x, int64_t n);
float bitnet_dot_bf16(const uint16_t *w, const float *x, int64_t n);
float bitnet_dot_f32(const float *w, const float *x, int64_t n);

// MARK: - The rest of the forward pass

/// Per-row absmax int8 quantization, bit-exact with transformers' `ActQuant` (and `AbsmaxQuantizer` in Swift):
/// `a = (1 / max(max|x|, 1e-5)) · 127` in two float roundings, `q = clamp(rint(x · a), −128, 127)`, NaN → 0.
/// Rows split between the pool's threads.
void bitnet_quantize_rows(bitnet_pool *pool, const float *x, int64_t rows, int64_t columns, int8_t *q, float *scales);

/// `output = weight · (x · 1/sqrt(mean(x²) + ε))` per row in float32, Σx² added in the order of PyTorch's CPU sum: transformers' BitNetRMSNorm to the bit.
void bitnet_rms_norm(bitnet_pool *pool, const float *x, const float *weight, float epsilon, int64_t rows,
                     int64_t columns, float *output);

/// The gate functions of a gated feed-forward block.
typedef enum {
    BITNET_ACTIVATION_SQUARED_RELU = 0,  ///< max(x, 0)²
    BITNET_ACTIVATION_SILU = 1,          ///< x / (1 + e^−x)
    BITNET_ACTIVATION_GELU = 2,          ///< the tanh approximation
} bitnet_activation;

/// `output[i] = f(gate[i]) · up[i]` for `count` values, chunks split between the pool's threads.
void bitnet_gated_activation(bitnet_pool *pool, int32_t activation, const float *gate, const float *up, int64_t count,
                             float *output);

/// Replaces each of `count` values with libm's expf of it: 8 at a time where the calling thread's level has AVX2 and
/// that was found at load to give libm's floats, else one at a time. (Softmax and SiLU use the same path.)
void bitnet_exp(float *values, int64_t count);

/// `out[i]` = the IEEE half nearest `x[i]` (ties to even, as Swift's `Float16(_:)`), for `count` values: F16C's
/// `vcvtps2ph` 8 at a time where the calling thread's level has AVX2, else one at a time. The f16 KV cache's stores.
void bitnet_float_to_half(const float *x, int64_t count, uint16_t *out);

/// `accumulator[i] += x[i]` for `count` values (a residual connection), split between the pool's threads.
void bitnet_add(bitnet_pool *pool, const float *x, int64_t count, float *accumulator);

/// Where a head's rotated pairs are: dimensions (i, i + d/2) (GPT-NeoX, Llama in transformers) or (2i, 2i + 1).
typedef enum { BITNET_ROPE_HALVES = 0, BITNET_ROPE_INTERLEAVED = 1 } bitnet_rope_layout;

/// Rotates `heads` heads of `dimension` values at the start of each of `tokens` rows (`row_stride` floats apart)
/// by the angles `positions[t] · inverse_frequencies[i]`, in place; tokens split between the pool's threads.
void bitnet_rope(bitnet_pool *pool, float *vectors, int64_t row_stride, const int64_t *positions, int64_t tokens,
                 int32_t heads, int32_t dimension, int32_t layout, const float *inverse_frequencies);

/// KV cache element types.
typedef enum { BITNET_CACHE_F32 = 0, BITNET_CACHE_F16 = 1 } bitnet_cache_type;

/// Causal grouped-query attention of one sequence's new tokens over its cache slot.
typedef struct {
    int32_t cache_type;
    /// Key/value head 0's position 0 of the slot; a head's position p is `p · position_stride` elements on, head h
    /// `h · head_stride` elements on (`head_dimension` contiguous elements each).
    const void *keys;
    const void *values;
    int64_t position_stride;
    int64_t head_stride;
    /// Each token's query row and output row (`heads × head_dimension` floats, `row_stride` apart).
    const float *queries;
    float *output;
    int64_t row_stride;
    /// The batch row of each of the sequence's `tokens` tokens, and its position (it sees positions 0…position).
    const int64_t *rows;
    const int64_t *positions;
    int64_t tokens;
    int32_t heads;
    int32_t key_value_heads;
    int32_t head_dimension;
    float scale;
} bitnet_attention_args;

/// Softmax(q·kᵀ · scale) · v for every token and head of `args`, items split between the pool's threads. Returns
/// 0, or -1 when memory for the scores cannot be had or `heads` is not a whole number of groups of
/// `key_value_heads` (which the model's configuration rules out before).
int bitnet_attention(bitnet_pool *pool, const bitnet_attention_args *args);

#ifdef __cplusplus
}
#endif

#endif
