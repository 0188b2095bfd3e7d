// The ternary matmul: activation preparation, the split of rows between threads, the token × row tiling and the
// float rescale, shared by every instruction set; only the integer tiles differ (scalar here, x86 in
// ternary_x86.c, Arm64 in ternary_arm64.c). Every level computes the same integer sums and rescales them with
// this file's code, so every level gives the same floats.
#include "kernels_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

bitnet_ternary_layout bitnet_ternary_layout_of(int32_t encoding) {
    switch (encoding) {
    case BITNET_TERNARY_TQ1_0: return (bitnet_ternary_layout){256, 54, 640, 52};
    case BITNET_TERNARY_I2_S: return (bitnet_ternary_layout){128, 32, 128, -1};
    default: return (bitnet_ternary_layout){256, 66, 256, 64};
    }
}

// MARK: - Activations

/// Writes one token's activations in the form the TQ1_0 tiles of every level read them.
///
/// A TQ1_0 block's 52 code bytes give five codes each (the fifth of the last four is padding): code j of byte v
/// is d_j = ⌊3·(3^j·v mod 256) / 256⌋, which is F_{j+1} − 3·F_j with F_k = ⌊3^k·v / 256⌋ (F_0 = 0). So
/// Σ_j d_j·x_j = Σ_{k=1..5} F_k·(x_{k−1} − 3·x_k), with x_j the activation code j of the byte multiplies (x_5 = 0):
/// the tiles compute each F_k with one 16-bit multiply-high instead of extracting digits, against
/// y_k = x_{k−1} − 3·x_k, stored here as int16. A block's 640 prepared bytes hold, for k = 1..5, y_k at the even
/// bytes 0, 2, …, 62, then at the odd bytes 1, 3, …, 63 (32 values each); code j of byte i meets
/// x[32j + i] (i < 32), x[160 + 16j + i − 32] (i < 48), x[240 + 4j + i − 48] (i < 52, j < 4), else nothing.
void bitnet_prepare_tq1_0(int32_t encoding, const int8_t *x, int64_t columns, int8_t *prepared_bytes) {
    (void)encoding;
    int16_t *prepared = (int16_t *)prepared_bytes;
    for (int64_t block = 0; block < columns / 256; block++) {
        const int8_t *source = x + block * 256;
        int16_t met[6][64] = {{0}};  // met[j][i]: the activation code j of byte i multiplies; met[5] = 0
        for (int j = 0; j < 5; j++) {
            for (int i = 0; i < 32; i++) met[j][i] = source[32 * j + i];
            for (int i = 0; i < 16; i++) met[j][32 + i] = source[160 + 16 * j + i];
            if (j < 4) for (int i = 0; i < 4; i++) met[j][48 + i] = source[240 + 4 * j + i];
        }
        int16_t *target = prepared + block * 320;
        for (int k = 1; k <= 5; k++)
            for (int parity = 0; parity < 2; parity++)
                for (int i = 0; i < 32; i++) {
                    int byte = 2 * i + parity;
                    target[(k - 1) * 64 + parity * 32 + i] = (int16_t)(met[k - 1][byte] - 3 * met[k][byte]);
                }
    }
}

// MARK: - Scalar tiles (the oracle the SIMD tiles are tested against)

/// Σ c'·x over one block of `encoding` and its (prepared) activations.
typedef int32_t (*scalar_block_dot)(const uint8_t *block, const int8_t *x);

static int32_t tq2_0_block_scalar(const uint8_t *qs, const int8_t *x) {
    int32_t sum = 0;
    // Byte i of half h holds values 128h + 32·lane + i at bits 2·lane.
    for (int half = 0; half < 2; half++)
        for (int i = 0; i < 32; i++)
            for (int lane = 0; lane < 4; lane++)
                sum += (int32_t)((qs[32 * half + i] >> (2 * lane)) & 3) * x[128 * half + 32 * lane + i];
    return sum;
}

/// Σ_k F_k·y_k over the 52 code bytes, F_k = ⌊3^k·v / 256⌋ (see ``bitnet_prepare_tq1_0``).
static int32_t tq1_0_block_scalar(const uint8_t *block, const int8_t *x) {
    static const int32_t powers[6] = {1, 3, 9, 27, 81, 243};
    const int16_t *y = (const int16_t *)x;
    int32_t sum = 0;
    for (int k = 1; k <= 5; k++)
        for (int i = 0; i < 52; i++) sum += ((block[i] * powers[k]) >> 8) * y[(k - 1) * 64 + (i % 2) * 32 + i / 2];
    return sum;
}

static int32_t i2_s_block_scalar(const uint8_t *bytes, const int8_t *x) {
    int32_t sum = 0;
    // Byte i holds values i, 32 + i, 64 + i, 96 + i at bits 6, 4, 2, 0.
    for (int i = 0; i < 32; i++)
        for (int lane = 0; lane < 4; lane++) sum += (int32_t)((bytes[i] >> (6 - 2 * lane)) & 3) * x[32 * lane + i];
    return sum;
}

/// The tile of every encoding: its block dot over rows × tokens × blocks.
static void scalar_tile(int32_t encoding, scalar_block_dot dot, const uint8_t *w, int64_t row_bytes, const int8_t *x,
                        int64_t x_stride, int64_t first_block, int64_t end_block, int rows, int tokens, int32_t *sums) {
    bitnet_ternary_layout layout = bitnet_ternary_layout_of(encoding);
    for (int r = 0; r < rows; r++) {
        for (int t = 0; t < tokens; t++) {
            int32_t sum = 0;
            for (int64_t b = first_block; b < end_block; b++) {
                if (tokens == 1) prefetch_decode_ahead(w + r * row_bytes + b * layout.block_bytes);  // as the SIMD tiles
                sum += dot(w + r * row_bytes + b * layout.block_bytes, x + t * x_stride + b * layout.prepared_block_bytes);
            }
            sums[r * tokens + t] = sum;
        }
    }
}

void bitnet_tq2_0_tile_scalar(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t x_stride,
                              int64_t first_block, int64_t end_block, int rows, int tokens, int32_t *sums) {
    scalar_tile(BITNET_TERNARY_TQ2_0, tq2_0_block_scalar, w, row_bytes, x, x_stride, first_block, end_block, rows, tokens, sums);
}

void bitnet_tq1_0_tile_scalar(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t x_stride,
                              int64_t first_block, int64_t end_block, int rows, int tokens, int32_t *sums) {
    scalar_tile(BITNET_TERNARY_TQ1_0, tq1_0_block_scalar, w, row_bytes, x, x_stride, first_block, end_block, rows, tokens, sums);
}

void bitnet_i2_s_tile_scalar(const uint8_t *w, int64_t row_bytes, const int8_t *x, int64_t x_stride,
                             int64_t first_block, int64_t end_block, int rows, int tokens, int32_t *sums) {
    scalar_tile(BITNET_TERNARY_I2_S, i2_s_block_scalar, w, row_bytes, x, x_stride, first_block, end_block, rows, tokens, sums);
}

// MARK: - Driver

enum { MAX_TILE_ROWS = 4, MAX_TILE_TOKENS = 8 };

typedef struct {
    const bitnet_ternary_matrix *weights;
    bitnet_ternary_layout layout;
    bitnet_ternary_kernel kernel;
    int64_t blocks;     // per row
    int64_t row_bytes;
    const int8_t *prepared;
    int64_t prepared_stride;
    const int32_t *block_sums;  // Σ x per token and block
    const int32_t *row_sums;    // Σ x per token
    const float *x_scales;
    int64_t tokens;
    float *output;
    float tensor_scale;  // I2_S
    /// The matrix's lookup panels where the kernel unpacks those (`unpack` then takes whole panels), else NULL.
    const uint8_t *panels;
    int64_t panel_size;
    _Atomic int failed;  // a thread found no memory to unpack rows into
} matmul_job;

static inline uint16_t block_scale_bits(const matmul_job *job, int64_t row, int64_t block) {
    const uint8_t *p = job->weights->data + row * job->row_bytes + block * job->layout.block_bytes + job->layout.scale_offset;
    return (uint16_t)(p[0] | (p[1] << 8));
}

/// Whether every block of `row` has the same scale bits, as in BitNet's per-tensor scaled weights.
static int row_scale_is_uniform(const matmul_job *job, int64_t row) {
    if (job->layout.scale_offset < 0) return 1;
    uint16_t first = block_scale_bits(job, row, 0);
    for (int64_t block = 1; block < job->blocks; block++)
        if (block_scale_bits(job, row, block) != first) return 0;
    return 1;
}

typedef struct {
    const matmul_job *job;
    uint8_t *flags;
    _Atomic int64_t uniform;
} uniform_rows_job;

static void find_uniform_rows(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    uniform_rows_job *search = context;
    int64_t uniform = 0;
    for (int64_t row = begin; row < end; row++) uniform += search->flags[row] = (uint8_t)row_scale_is_uniform(search->job, row);
    atomic_fetch_add(&search->uniform, uniform);
}

int64_t bitnet_ternary_uniform_rows(bitnet_pool *pool, const bitnet_ternary_matrix *weights, uint8_t *flags) {
    bitnet_ternary_layout layout = bitnet_ternary_layout_of(weights->encoding);
    int64_t blocks = weights->columns / layout.block_values;
    matmul_job job = {.weights = weights, .layout = layout, .blocks = blocks, .row_bytes = blocks * layout.block_bytes};
    uniform_rows_job search = {.job = &job, .flags = flags};
    atomic_init(&search.uniform, 0);
    bitnet_pool_run(pool, weights->rows, 256, find_uniform_rows, &search);
    return atomic_load(&search.uniform);
}

static float row_scale(const matmul_job *job, int64_t row) {
    if (job->panels) return bitnet_lookup_row_scale(job->weights, row);
    return job->layout.scale_offset < 0 ? job->tensor_scale : bitnet_half_to_float(block_scale_bits(job, row, 0));
}

/// One row whose blocks have different scales: integer sums per block, rescaled and added in block order. `w` is
/// the row as the tiles read it (stored or unpacked).
static void row_with_block_scales(const matmul_job *job, const uint8_t *w, int64_t row_bytes, int64_t row,
                                  int64_t first_token, int tokens) {
    float totals[MAX_TILE_TOKENS] = {0};
    int32_t sums[MAX_TILE_TOKENS];
    for (int64_t block = 0; block < job->blocks; block++) {
        job->kernel.tile(w, row_bytes, job->prepared + first_token * job->prepared_stride, job->prepared_stride,
                         block, block + 1, 1, tokens, sums);
        float d = bitnet_half_to_float(block_scale_bits(job, row, block));
        for (int t = 0; t < tokens; t++)
            totals[t] += d * (float)(sums[t] - job->block_sums[(first_token + t) * job->blocks + block]);
    }
    for (int t = 0; t < tokens; t++)
        job->output[(first_token + t) * job->weights->rows + row] = totals[t] / job->x_scales[first_token + t];
}

/// Rows of a chunk: their weights (about 40 KiB) stay in cache while every token block passes over them.
enum { CHUNK_ROWS = 64 };

/// A decode step's rows (one token, stored rows, the caller's uniform flags): each tile's sums rescaled as they
/// come, in the general path's arithmetic, without its staging per chunk, and with one half-to-float conversion
/// per run of rows that share scale bits (all of a BitNet matrix's). The staging cost a third as much as a
/// 2560-column row's tile.
static void decode_rows(const matmul_job *job, int64_t begin, int64_t end) {
    const bitnet_ternary_kernel *kernel = &job->kernel;
    const uint8_t *uniform = job->weights->uniform_rows;
    const int32_t row_sum = job->row_sums[0];
    const float x_scale = job->x_scales[0];
    uint32_t bits = UINT32_MAX;  // no half's bits
    float scale = job->tensor_scale;
    for (int64_t row = begin; row < end; row += kernel->tile_rows) {
        int count = end - row < kernel->tile_rows ? (int)(end - row) : kernel->tile_rows;
        int32_t sums[MAX_TILE_ROWS];
        const uint8_t *w = job->weights->data + row * job->row_bytes;
        kernel->tile(w, job->row_bytes, job->prepared, job->prepared_stride, 0, job->blocks, count, 1, sums);
        for (int r = 0; r < count; r++) {
            if (!uniform[row + r]) {
                row_with_block_scales(job, w + r * job->row_bytes, job->row_bytes, row + r, 0, 1);
                continue;
            }
            if (job->layout.scale_offset >= 0) {
                uint16_t row_bits = block_scale_bits(job, row + r, 0);
                if (row_bits != bits) scale = bitnet_half_to_float((uint16_t)(bits = row_bits));
            }
            job->output[row + r] = scale * (float)(sums[r] - row_sum) / x_scale;
        }
    }
}

static void matmul_rows(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const matmul_job *job = context;
    if (job->tokens == 1 && !job->kernel.unpack && job->weights->uniform_rows) {
        decode_rows(job, begin, end);
        return;
    }
    const int64_t rows = job->weights->rows;
    const bitnet_ternary_kernel *kernel = &job->kernel;
    const int tile_rows = kernel->tile_rows;
    // Rows unpacked per chunk where the kernel reads them unpacked; else the stored rows, read in place.
    const int64_t unpacked_row_bytes = job->blocks * kernel->unpacked_block_bytes;
    uint8_t *unpacked = kernel->unpack ? malloc((size_t)(CHUNK_ROWS * unpacked_row_bytes)) : NULL;
    if (kernel->unpack && !unpacked) {
        atomic_store(&((matmul_job *)context)->failed, 1);
        return;
    }
    int uniform[CHUNK_ROWS];
    float scales[CHUNK_ROWS];
    for (int64_t chunk = begin; chunk < end; chunk += CHUNK_ROWS) {
        int64_t chunk_end = chunk + CHUNK_ROWS < end ? chunk + CHUNK_ROWS : end;
        int chunk_rows = (int)(chunk_end - chunk);
        const uint8_t *w = job->weights->data + chunk * job->row_bytes;
        int64_t row_bytes = job->row_bytes;
        if (job->panels) {
            // Chunks start at multiples of 32 rows and hold whole panels (the grain is a multiple of 32).
            kernel->unpack(job->panels + chunk / BITNET_LOOKUP_PANEL_ROWS * job->panel_size, job->panel_size, job->blocks, chunk_rows, unpacked);
            w = unpacked;
            row_bytes = unpacked_row_bytes;
        } else if (unpacked) {
            kernel->unpack(w, job->row_bytes, job->blocks, chunk_rows, unpacked);
            w = unpacked;
            row_bytes = unpacked_row_bytes;
        }
        // Whether a row's blocks share one scale is the caller's answer where it has one (checking every block's
        // scale cost 2–6 % of a decode step's GEMV); else checked after the row's first tile, when its bytes are in
        // cache: checked before, the scattered scale reads were the first touch of the weights and stalled.
        const uint8_t *known = job->weights->uniform_rows;
        for (int i = 0; i < chunk_rows; i++) uniform[i] = job->panels ? 1 : known ? known[chunk + i] : -1;  // panels: one scale a row
        for (int64_t first_token = 0; first_token < job->tokens; first_token += kernel->tile_tokens) {
            int tokens = job->tokens - first_token < kernel->tile_tokens ? (int)(job->tokens - first_token) : kernel->tile_tokens;
            const int8_t *x = job->prepared + first_token * job->prepared_stride;
            int32_t chunk_sums[MAX_TILE_TOKENS][CHUNK_ROWS];
            for (int first = 0; first < chunk_rows; first += tile_rows) {
                int count = chunk_rows - first < tile_rows ? chunk_rows - first : tile_rows;
                int32_t sums[MAX_TILE_ROWS * MAX_TILE_TOKENS];
                kernel->tile(w + first * row_bytes, row_bytes, x, job->prepared_stride, 0, job->blocks, count, tokens, sums);
                for (int r = 0; r < count; r++) {
                    int index = first + r;
                    if (uniform[index] < 0) uniform[index] = row_scale_is_uniform(job, chunk + index);
                    if (first_token == 0) scales[index] = row_scale(job, chunk + index);
                    for (int t = 0; t < tokens; t++) chunk_sums[t][index] = sums[r * tokens + t];
                }
            }
            // Rescaled a token's rows at a time, which the compiler vectorizes (one division per row and token
            // was a tenth of a prompt's time); rows with block scales are then computed again, per block.
            for (int t = 0; t < tokens; t++) {
                int64_t token = first_token + t;
                const int32_t row_sum = job->row_sums[token];
                const float x_scale = job->x_scales[token];
                float *out = job->output + token * rows + chunk;
                for (int i = 0; i < chunk_rows; i++) out[i] = scales[i] * (float)(chunk_sums[t][i] - row_sum) / x_scale;
            }
            for (int i = 0; i < chunk_rows; i++)
                if (!uniform[i]) row_with_block_scales(job, w + i * row_bytes, row_bytes, chunk + i, first_token, tokens);
        }
    }
    free(unpacked);
}

typedef struct {
    const matmul_job *job;
    const int8_t *x;
    int32_t *block_sums, *row_sums;
    int8_t *prepared;  // NULL: the tiles read `x` as it is
} activations_job;

/// Σx per block and per token, and the activations in the tiles' order, for tokens [begin, end).
static void prepare_activations(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const activations_job *a = context;
    const matmul_job *job = a->job;
    const int64_t columns = job->weights->columns, block_values = job->layout.block_values;
    for (int64_t t = begin; t < end; t++) {
        const int8_t *row = a->x + t * columns;
        int32_t total = 0;
        for (int64_t block = 0; block < job->blocks; block++) {
            int32_t sum = 0;
            for (int64_t i = 0; i < block_values; i++) sum += row[block * block_values + i];
            a->block_sums[t * job->blocks + block] = sum;
            total += sum;
        }
        a->row_sums[t] = total;
        if (a->prepared) job->kernel.prepare(job->weights->encoding, row, columns, a->prepared + t * job->prepared_stride);
    }
}

int bitnet_ternary_matmul(bitnet_pool *pool, const bitnet_ternary_matrix *weights, const int8_t *x,
                          const float *x_scales, int64_t tokens, float *output) {
    if (tokens <= 0 || weights->rows <= 0) return 0;
    bitnet_ternary_layout layout = bitnet_ternary_layout_of(weights->encoding);
    int64_t blocks = weights->columns / layout.block_values;
    const bitnet_kernel_table *table = bitnet_kernels_for_level(bitnet_level());
    if (tokens <= BITNET_LOOKUP_MAX_TOKENS && weights->lookup_panels && table->lookup.gemv)
        return bitnet_lookup_matmul(pool, weights, &table->lookup, x, x_scales, tokens, output);
    bitnet_ternary_kernel kernel = tokens == 1 ? table->decode[weights->encoding] : table->prompt[weights->encoding];
    const bitnet_ternary_kernel *short_rows = &table->short_prompt[weights->encoding];
    if (tokens >= short_rows->tile_tokens && short_rows->tile
        && short_rows->tile_tokens * blocks * short_rows->prepared_block_bytes <= BITNET_SHORT_ROW_ACTIVATION_BYTES)
        kernel = *short_rows;
    // Where the level reads panels, prompts unpack them too: the stored rows are then read at load only.
    const int from_panels = weights->lookup_panels && table->lookup.prompt[weights->encoding].tile;
    if (from_panels) kernel = table->lookup.prompt[weights->encoding];
    matmul_job job = {
        .weights = weights,
        .layout = layout,
        .kernel = kernel,
        .blocks = blocks,
        .row_bytes = blocks * layout.block_bytes,
        .prepared_stride = blocks * kernel.prepared_block_bytes,
        .x_scales = x_scales,
        .tokens = tokens,
        .output = output,
        .panels = from_panels ? weights->lookup_panels : NULL,
        .panel_size = from_panels ? bitnet_lookup_panel_bytes(weights->columns) : 0,
    };
    if (layout.scale_offset < 0) memcpy(&job.tensor_scale, weights->data + weights->rows * job.row_bytes, sizeof(float));

    // Some levels' tiles read the activations as they are, others in an order of their own.
    int reorder = kernel.prepare != NULL;
    size_t prepared_bytes = reorder ? (size_t)(tokens * job.prepared_stride) : 0;
    size_t sum_bytes = (size_t)(tokens * (blocks + 1)) * sizeof(int32_t);
    uint8_t *workspace = malloc(prepared_bytes + sum_bytes);
    if (!workspace) return -1;
    int32_t *block_sums = (int32_t *)workspace;
    int32_t *row_sums = block_sums + tokens * blocks;
    int8_t *prepared = reorder ? (int8_t *)(row_sums + tokens) : NULL;
    job.prepared = reorder ? prepared : x;
    job.block_sums = block_sums;
    job.row_sums = row_sums;
    activations_job activations = {&job, x, block_sums, row_sums, prepared};
    bitnet_pool_run(pool, tokens, 1, prepare_activations, &activations);

    // Chunks of rows small enough to balance the threads, large enough that a chunk's weights fill the tiles.
    int threads = bitnet_pool_threads(pool);
    // Each thread reads its share of the rows as one stream and the pool moves chunks only when a thread runs out
    // (thread_pool.c), so a decode step's chunks are small: 16 a thread balanced 2B-4T's decode best (at 2, a
    // thread waited on its peer's last quarter of the rows at the end of every matmul).
    int64_t grain = weights->rows / (threads * (tokens == 1 ? 16 : 8));
    if (grain < 16) grain = 16;
    grain = from_panels ? (grain + BITNET_LOOKUP_PANEL_ROWS - 1) / BITNET_LOOKUP_PANEL_ROWS * BITNET_LOOKUP_PANEL_ROWS : (grain + 3) & ~(int64_t)3;
    bitnet_pool_run(pool, weights->rows, grain, matmul_rows, &job);
    free(workspace);
    return atomic_load(&job.failed) ? -1 : 0;
}
