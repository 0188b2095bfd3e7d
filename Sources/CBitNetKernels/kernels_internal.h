// Declarations shared by the kernel files; not part of the public header.
#ifndef BITNET_KERNELS_INTERNAL_H
#define BITNET_KERNELS_INTERNAL_H

#include "bitnet_kernels.h"

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#define BITNET_X86 1
#elif defined(__aarch64__)
#define BITNET_ARM64 1
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

/// Instruction-set levels of this architecture, each running on every CPU that runs the next (the AVX-VNNI tiles
/// run EVEX-encoded where a CPU has AVX-512 VNNI without AVX-VNNI).
#ifdef BITNET_ARM64
enum {
    BITNET_LEVEL_SCALAR = 0,
    BITNET_LEVEL_NEON_DOTPROD = 1,
    BITNET_LEVEL_COUNT = 2
};
#else
enum {
    BITNET_LEVEL_SCALAR = 0,
    BITNET_LEVEL_AVX2 = 1,
    BITNET_LEVEL_AVXVNNI = 2,
    BITNET_LEVEL_AVX512VNNI = 3,
    BITNET_LEVEL_COUNT = 4
};
#endif

/// The level the calling thread's kernels use (its forced level, else the process default).
int bitnet_level(void);

/// How far ahead of its loads a decode tile (one token) that takes several rows at a time (the AVX-512, Arm64 and
/// scalar levels' tiles) asks for each row's bytes: into L1, and into L2 only (hint T2). A decode step reads each
/// weight once, so it waits on memory. Asked for a block at a time as the tile goes, the requests stay spread out,
/// where asking for whole rows ahead from the driver came in bursts (up to 46 lines for a 6912-column TQ1_0 row).
/// Measured on the 2B-4T shapes (Ice Lake, 2 threads, GEMV over 512 MiB of matrices): TQ2_0 ffn_down 20.7 → 23–25 GB/s,
/// TQ1_0 ffn_down 12 → 15–17, I2_S 22 → 26; ffn_up within noise or better. Then 1 KiB into L1 and 8 KiB into L2; 3 and
/// 12 KiB took a 2B-4T layer's seven TQ2_0 GEMVs, read from the model file in order, from 26.3 to 28.2 GB/s (a plain
/// read: 30), and its decode steps 3 % faster; 2–4 KiB into L1 and 12–24 KiB into L2 were all within noise of that, 512
/// bytes into L1 slower.
enum { DECODE_PREFETCH_L1_BYTES = 3072, DECODE_PREFETCH_L2_BYTES = 12288 };

/// The decode tiles' requests for the bytes ahead of `p` (a prefetch never faults: past a matrix's end it asks for
/// nothing useful, and costs nothing).
static ALWAYS_INLINE void prefetch_decode_ahead(const uint8_t *p) {
    __builtin_prefetch(p + DECODE_PREFETCH_L1_BYTES, 0, 3);
    __builtin_prefetch(p + DECODE_PREFETCH_L2_BYTES, 0, 1);
}

/// How far ahead a decode tile that reads one row at a time (``BITNET_256_DECODE_ROWS``) asks for its bytes, into L1
/// only: its thread's reads are one stream, which the core's own prefetchers carry into L2. Measured on 2 Zen 3 cores
/// (2560-column TQ2_0 rows, GEMV over 512 MiB): 2 KiB into L1 alone 26–29 GB/s, with 12 KiB into L2 as well 23–25,
/// 1–6 KiB into L1 alone 23–28 (a plain read: 25–36).
enum { STREAM_PREFETCH_BYTES = 2048 };

static ALWAYS_INLINE void prefetch_stream_ahead(const uint8_t *p) { __builtin_prefetch(p + STREAM_PREFETCH_BYTES, 0, 3); }

/// Σ c'·x, with c' the stored codes 0, 1, 2 and x int8 (no −Σx correction), for `rows` weight rows (`row_bytes`
/// apart) × `tokens` activation rows (`x_stride` bytes apart), over blocks [first_block, end_block). Writes
/// `sums[r * tokens + t]`. `rows` ≤ 4 and `tokens` ≤ 8. Activations are in the order ``bitnet_ternary_prepare``
/// leaves them.
typedef void (*bitnet_ternary_tile)(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t x_stride,
                                    int64_t first_block, int64_t end_block, int rows, int tokens, int32_t *sums);

/// Generates the exported tile from a body specialized for constant (rows, tokens): the shapes the driver uses
/// (`decode_rows` × 1 for decode, `prompt_rows` × 4 for prompts, and 3 × 8 for short-row prompts where `short_rows`
/// is 1) run unrolled; any other runs one row at a time, unrolled over up to 4 tokens at a time.
#define TILE_DISPATCH(name, target, body, decode_rows, prompt_rows, short_rows)                                   \
    target void name(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t x_stride, int64_t b0,         \
                     int64_t b1, int rows, int tokens, int32_t *sums) {                                           \
        if (rows == decode_rows && tokens == 1) body(w, row_bytes, x, x_stride, b0, b1, decode_rows, 1, sums);    \
        else if (rows == prompt_rows && tokens == 4) body(w, row_bytes, x, x_stride, b0, b1, prompt_rows, 4, sums); \
        else if (short_rows && rows == 3 && tokens == 8) body(w, row_bytes, x, x_stride, b0, b1, 3, 8, sums);     \
        else                                                                                                      \
            for (int r = 0; r < rows; r++)                                                                        \
                for (int t = 0; t < tokens; t += 4) {                                                             \
                    const uint8_t *row = w + r * row_bytes;                                                       \
                    const int8_t *xt = x + t * x_stride;                                                          \
                    int32_t *out = sums + r * tokens + t;                                                         \
                    switch (tokens - t) {                                                                         \
                    case 1: body(row, row_bytes, xt, x_stride, b0, b1, 1, 1, out); break;                         \
                    case 2: body(row, row_bytes, xt, x_stride, b0, b1, 1, 2, out); break;                         \
                    case 3: body(row, row_bytes, xt, x_stride, b0, b1, 1, 3, out); break;                         \
                    default: body(row, row_bytes, xt, x_stride, b0, b1, 1, 4, out); break;                        \
                    }                                                                                             \
                }                                                                                                 \
    }

/// Writes one token's `columns` int8 activations in the order a level's tiles read them for `encoding`.
typedef void (*bitnet_ternary_prepare)(int32_t encoding, const int8_t *x, int64_t columns, int8_t *prepared);

/// Σ w·x over one row of `n` stored weights (f32, f16 or bf16) and float x.
typedef float (*bitnet_float_dot)(const void *w, const float *x, int64_t n);

/// The dots of four activation rows (`x_stride` floats apart) with one weight row, each computed in exactly
/// the order of the level's single-row dot, so a token's result never depends on the batch it is in; the
/// weight row is loaded and converted once for the four.
typedef void (*bitnet_float_dot4)(const void *w, const float *x, int64_t x_stride, int64_t n, float out[4]);

/// Weight rows a decode step's float output projection takes at once where a level has a kernel for it.
enum { BITNET_FLOAT_DECODE_ROWS = 8 };

/// The dots of ``BITNET_FLOAT_DECODE_ROWS`` weight rows (`row_bytes` apart) with one activation row, each computed
/// in exactly the order of the level's single-row dot: a decode step's output projection, where independent chains
/// and wide loads keep more of memory's reads in flight than one row at a time does.
typedef void (*bitnet_float_rows)(const void *w, size_t row_bytes, const float *x, int64_t n,
                                  float out[BITNET_FLOAT_DECODE_ROWS]);

/// Activations quantized for an integer dot with Q6_K weights, as llama.cpp's Q8_K: per 256 values a float
/// scale d = max|x| / 127, q = round(x / d), and the sums of each 16 q (for the −32 offset of Q6_K levels).
typedef struct {
    float d;
    int8_t q[256];
    int16_t sums[16];
} bitnet_q8_k_block;

/// Σ w·x over `blocks` Q6_K blocks of one weight row and the same number of Q8_K activation blocks: integer
/// sums per block, one float multiply-add per block in block order, so every level gives the same float.
typedef float (*bitnet_q6_k_dot)(const uint8_t *w, const bitnet_q8_k_block *x, int64_t blocks);

/// The Q6_K dots of ``BITNET_FLOAT_DECODE_ROWS`` weight rows (`row_bytes` apart) with one token's activations, each
/// in exactly the order of the level's ``bitnet_q6_k_dot``: a decode step's output projection.
typedef void (*bitnet_q6_k_rows)(const uint8_t *w, size_t row_bytes, const bitnet_q8_k_block *x, int64_t blocks,
                                 float out[BITNET_FLOAT_DECODE_ROWS]);

/// Unpacks `rows` stored rows (`row_bytes` apart) of `blocks` blocks each into the form a tile reads, writing
/// `unpacked_block_bytes` per block, rows `blocks · unpacked_block_bytes` apart. A prompt reads each row once per
/// token block, so a form that is slow to decode is unpacked once per chunk of rows instead.
typedef void (*bitnet_ternary_unpack)(const uint8_t *w, int64_t row_bytes, int64_t blocks, int rows, uint8_t *unpacked);

/// How one level multiplies one encoding, for a decode step (one token) or for a prompt.
typedef struct {
    bitnet_ternary_tile tile;
    bitnet_ternary_prepare prepare;  // NULL: the tiles read the activations as they are
    int64_t prepared_block_bytes;    // activation bytes per block that the tiles read
    bitnet_ternary_unpack unpack;    // NULL: the tiles read the stored rows
    int64_t unpacked_block_bytes;
    int tile_rows;                   // the tile's unrolled shape: rows …
    int tile_tokens;                 // … × tokens (1 for decode; the driver's token block for prompts)
} bitnet_ternary_kernel;

/// Rows of a prompt tile. The VNNI field tiles keep one accumulator per row and token in 32 registers, and need 16
/// chains to hide vpdpbusd's latency at two per cycle (measured on one core: 2 × 4 at 3.9, 4 × 4 at 4.3 vpdpbusd
/// per ns). The VNNI TQ2_0 and I2_S decode tiles take 4 rows for the same reason (two accumulators a row: 8 chains).
enum { BITNET_VNNI_PROMPT_ROWS = 4, BITNET_VNNI_DECODE_ROWS = 4 };

/// The 256-bit prompt tile (``span_tile`` in ternary_x86_256.h): 4 rows × 8 tokens, walked in spans of 2,048 values
/// in pieces of 2 rows × 4 tokens, so a span of the 8 tokens' activations serves all 4 rows from L1.
enum { BITNET_256_PROMPT_ROWS = 4, BITNET_256_PROMPT_TOKENS = 8 };

/// Rows of a 256-bit decode step: one, so a thread's reads are one stream that its requests ahead
/// (``prefetch_stream_ahead``) run down once. Two rows side by side (as Arm64 takes them; AVX-512 takes 4) are two
/// streams a row apart: 2 Zen 3 cores read 2B-4T's 2560-column TQ2_0 rows at 18–20 GB/s that way, 16–17 with only
/// the second row asking ahead, and 22–27 GB/s a row at a time (a plain read: 25–36); a decode step of the TQ2_0 and
/// I2_S files ran 4–6 % faster. TQ1_0's tile, bound by its arithmetic, ran as fast either way.
enum { BITNET_256_DECODE_ROWS = 1 };

/// The most bytes of activations a short-row prompt tile's token block may read per row: half of a 48 KiB L1, so
/// the chunk's weights keep some of it. 8 tokens of a 2560-column row (20 KiB) fit; of a 6912-column one do not.
/// The VNNI short-row tile is 3 rows × 8 tokens (24 accumulators): 3 ANDs for 24 vpdpbusd where 4 × 4 needs 4 for
/// 16. Measured on the 2B-4T-shaped TQ2_0 file (Ice Lake, 2 threads, pp128, medians of 8 alternated runs): 135.3
/// tokens/s against 129.5 with 4 × 4 everywhere and 128.9 with 2 × 8; on one core, a 2 × 8 tile was slower than
/// 4 × 4 at 6912 columns, where eight tokens' activations leave L1.
enum { BITNET_SHORT_ROW_ACTIVATION_BYTES = 24 * 1024 };

/// Lookup panels (ternary_lookup.c): rows a panel, bytes an octet of 8 groups of three columns.
enum { BITNET_LOOKUP_PANEL_ROWS = 32, BITNET_LOOKUP_OCTET_BYTES = 160 };

/// Groups of three columns a lookup panel holds, padded to whole octets.
int64_t bitnet_lookup_groups(int64_t columns);

/// Writes a token's tables: per group, 16 signed bytes a then 16 b, dot = 30·a + b for each pattern index.
typedef void (*bitnet_lookup_tables)(const int8_t *x, int64_t columns, int8_t *tables);

/// Tokens a lookup pass over a panel takes at most (4: their byte sums, a group's index and sign and the constants take
/// 14 of the 16 registers; their 16-bit sums wait in memory), and the most tokens a matmul over lookup panels looks
/// up, in passes over each panel while it is in cache; more are multiplied by the prompt tiles over the panels unpacked a chunk of rows at a time. Measured on the
/// 2B-4T-shaped TQ2_0 file (2 Zen 3 cores, `bitnet bench -p N`, two alternated rounds), tokens/s looked up against
/// unpacked: 2 tokens 42 against 22 (the stored rows, without panels: 33–36), 4 tokens 60 against 38, 8 tokens 70–74
/// against 52, 16 tokens 78–80 against 64–70, 32 tokens 85 against 83, 48 tokens 82–86 against 87–88.
enum { BITNET_LOOKUP_TOKENS = 4, BITNET_LOOKUP_MAX_TOKENS = 32 };

/// A panel's 32 rows' Σ w·x (signed weights, no correction) over `groups` groups for 1 … ``BITNET_LOOKUP_TOKENS``
/// tokens, their tables `table_stride` bytes apart.
typedef void (*bitnet_lookup_panel_gemv)(const uint8_t *panel, const int8_t *tables, int64_t table_stride, int tokens,
                                         int64_t groups, int32_t sums[][32]);

/// Packs panel `panel` of a matrix's stored rows into `out` (its rows' scales aside), with `scratch` of 32 · columns
/// bytes if it needs it; returns 0 where a 2-bit field holds the unused code 3. Every level writes the same bytes.
typedef int (*bitnet_lookup_pack_panel)(const bitnet_ternary_matrix *weights, int64_t panel, int8_t *scratch, uint8_t *out);

/// How a level multiplies by lookup (up to ``BITNET_LOOKUP_MAX_TOKENS`` tokens), and longer prompts from the panels
/// (their rows unpacked per chunk for its prompt tiles, so a matrix's stored rows are read at load only); NULL members
/// where it does not.
typedef struct {
    bitnet_lookup_pack_panel pack;    // NULL: packed in plain C
    bitnet_lookup_tables tables;
    bitnet_lookup_panel_gemv gemv;
    bitnet_ternary_kernel prompt[3];  // indexed by bitnet_ternary_encoding; `unpack` takes panels
} bitnet_lookup_kernel;

/// Bytes of one panel of a `columns`-column matrix, and row `row`'s scale as its panels store it.
int64_t bitnet_lookup_panel_bytes(int64_t columns);
float bitnet_lookup_row_scale(const bitnet_ternary_matrix *weights, int64_t row);

/// The kernels of one level, chosen once per call in the calling thread so worker threads run what the caller
/// would (a level forced on the caller's thread applies to the whole matmul).
typedef struct {
    bitnet_ternary_kernel decode[3];  // indexed by bitnet_ternary_encoding
    bitnet_ternary_kernel prompt[3];
    /// Prompts over rows short enough that a taller token block's activations stay in L1 (see
    /// ``BITNET_SHORT_ROW_ACTIVATION_BYTES``): each decoded weight serves more tokens. Tile NULL where there is none.
    bitnet_ternary_kernel short_prompt[3];
    bitnet_float_dot dot[5];         // indexed by bitnet_float_encoding
    bitnet_float_dot4 dot4[5];       // the same, four tokens at once; NULL where there is none
    bitnet_float_rows rows[5];       // the same, BITNET_FLOAT_DECODE_ROWS rows at once; NULL where there is none
    bitnet_q6_k_dot q6_k;            // Q6_K, which takes Q8_K activations instead of `dot`
    bitnet_q6_k_rows q6_k_rows;      // the same, BITNET_FLOAT_DECODE_ROWS rows at once; NULL where there is none
    bitnet_lookup_kernel lookup;     // matmuls over lookup panels; NULL members where there are none
} bitnet_kernel_table;

const bitnet_kernel_table *bitnet_kernels_for_level(int level);

/// Packed layout of one encoding: values and bytes per block, and where the f16 block scale is (-1: one float
/// scale after the whole tensor, I2_S).
typedef struct {
    int64_t block_values;
    int64_t block_bytes;
    int64_t prepared_block_bytes;  // activation bytes per block after preparation
    int64_t scale_offset;
} bitnet_ternary_layout;

bitnet_ternary_layout bitnet_ternary_layout_of(int32_t encoding);

// Tiles of each level, in the files of their instruction sets.
void bitnet_tq2_0_tile_scalar(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_tq1_0_tile_scalar(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_i2_s_tile_scalar(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
float bitnet_dot_f32_scalar(const void *, const float *, int64_t);
float bitnet_dot_f16_scalar(const void *, const float *, int64_t);
float bitnet_dot_bf16_scalar(const void *, const float *, int64_t);
float bitnet_dot_q8_0_scalar(const void *, const float *, int64_t);
float bitnet_dot_q6_k_scalar(const uint8_t *, const bitnet_q8_k_block *, int64_t);
float bitnet_half_to_float(uint16_t h);

/// Whether `level` takes expf 8 at a time: it has AVX2, and the vector expf was found to agree with this
/// process's libm at load (pointwise_ops.c). Asked on the thread that starts a job (a forced level is per thread).
int bitnet_vector_expf(int level);

/// `values[i] = expf(values[i])`, libm's floats to the bit: 8 at a time where `vector` (``bitnet_vector_expf``),
/// else libm's expf one at a time.
void bitnet_exp_in_place(float *values, int64_t count, int vector);
void bitnet_prepare_tq1_0(int32_t encoding, const int8_t *x, int64_t columns, int8_t *prepared);

/// One group's table (``bitnet_lookup_tables``) for activations (x0, x1, x2).
void bitnet_lookup_table_scalar(int x0, int x1, int x2, int8_t table[32]);

/// A matmul of `tokens` tokens over `weights->lookup_panels` by table lookup with `kernel` (``bitnet_ternary_matmul``'s
/// arguments); returns 0, or -1 without memory for the tables.
int bitnet_lookup_matmul(bitnet_pool *pool, const bitnet_ternary_matrix *weights, const bitnet_lookup_kernel *kernel,
                         const int8_t *x, const float *x_scales, int64_t tokens, float *output);


#ifdef BITNET_ARM64
void bitnet_tq2_0_tile_neon(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_tq1_0_tile_neon(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_i2_s_tile_neon(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
float bitnet_dot_f32_neon(const void *, const float *, int64_t);
float bitnet_dot_f16_neon(const void *, const float *, int64_t);
#endif

#ifdef BITNET_X86
void bitnet_tq2_0_tile_avx2(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_tq1_0_tile_avx2(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_i2_s_tile_avx2(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_tq2_0_tile_avxvnni(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_tq1_0_tile_avxvnni(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_i2_s_tile_avxvnni(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_tq2_0_tile_avxvnni_evex(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_tq1_0_tile_avxvnni_evex(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_i2_s_tile_avxvnni_evex(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_fields64_tile_avx2(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_fields64_tile_avxvnni(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_fields64_tile_avxvnni_evex(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
int bitnet_lookup_pack_panel_avx2(const bitnet_ternary_matrix *, int64_t, int8_t *, uint8_t *);
void bitnet_lookup_tables_avx2(const int8_t *, int64_t, int8_t *);
void bitnet_lookup_panel_avx2(const uint8_t *, const int8_t *, int64_t, int, int64_t, int32_t[][32]);
void bitnet_lookup_unpack_fields_avx2(const uint8_t *, int64_t, int64_t, int, uint8_t *);
void bitnet_lookup_unpack_i2_s_avx2(const uint8_t *, int64_t, int64_t, int, uint8_t *);
void bitnet_prepare_fields_256(int32_t encoding, const int8_t *x, int64_t columns, int8_t *prepared);
void bitnet_tq1_0_unpack_256(const uint8_t *, int64_t, int64_t, int, uint8_t *);
void bitnet_tq2_0_tile_vnni(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_tq1_0_tile_vnni(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_prepare_lanes_vnni(int32_t encoding, const int8_t *x, int64_t columns, int8_t *prepared);
void bitnet_tq1_0_unpack_vnni(const uint8_t *, int64_t, int64_t, int, uint8_t *);
void bitnet_fields_tile_vnni(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
void bitnet_i2_s_tile_vnni(const uint8_t *, int64_t, const int8_t *, int64_t, int64_t, int64_t, int, int, int32_t *);
float bitnet_dot_f32_avx2(const void *, const float *, int64_t);
float bitnet_dot_f16_avx2(const void *, const float *, int64_t);
void bitnet_dot4_f16_avx2(const void *, const float *, int64_t, int64_t, float[4]);
void bitnet_dot4_f32_avx2(const void *, const float *, int64_t, int64_t, float[4]);
void bitnet_rows_bf16_avx2(const void *, size_t, const float *, int64_t, float[BITNET_FLOAT_DECODE_ROWS]);
void bitnet_rows_f16_avx2(const void *, size_t, const float *, int64_t, float[BITNET_FLOAT_DECODE_ROWS]);
void bitnet_rows_f16_avx512(const void *, size_t, const float *, int64_t, float[BITNET_FLOAT_DECODE_ROWS]);
void bitnet_rows_q6_k_avx2(const uint8_t *, size_t, const bitnet_q8_k_block *, int64_t, float[BITNET_FLOAT_DECODE_ROWS]);
void bitnet_rows_q6_k_avx512(const uint8_t *, size_t, const bitnet_q8_k_block *, int64_t, float[BITNET_FLOAT_DECODE_ROWS]);
float bitnet_dot_bf16_avx2(const void *, const float *, int64_t);
float bitnet_dot_q8_0_avx2(const void *, const float *, int64_t);
float bitnet_dot_q6_k_avx2(const uint8_t *, const bitnet_q8_k_block *, int64_t);
float bitnet_dot_q6_k_avx512(const uint8_t *, const bitnet_q8_k_block *, int64_t);
#endif

#endif
