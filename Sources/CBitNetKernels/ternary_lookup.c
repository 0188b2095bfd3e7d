// Decode steps by table lookup: a ternary matrix's rows repacked once into panels of 32 rows at 5 bits per three
// weights (1.67 bits a weight, where TQ2_0 stores 2.06 and TQ1_0 1.69), and a GEMV that looks each three weights'
// dot up in a table built per token, as bitnet.cpp's TL2 kernels and T-MAC do, instead of decoding digits.
//
// Three weights (w0, w1, w2) ∈ {−1, 0, 1}³ are the balanced-ternary number v = 9·w0 + 3·w1 + w2 ∈ [−13, 13]: their
// pattern is its sign and |v| ∈ [0, 13], a 4-bit index. A token's table holds, for each group of three activations,
// the dot of each index's pattern with them: one `vpshufb` looks 32 rows' indices of a group up at once. A dot of
// three int8 values needs 10 bits, so each entry is stored as two signed bytes a, b with dot = 30·a + b (|a| ≤ 13,
// |b| ≤ 15), looked up by two `vpshufb` and negated with the sign by `vpsignb`; 8 groups' a and b are summed in bytes
// (at most 104 and 120) and widened once by `vpmaddubsw` against (1, 30).
//
// A panel is a run of octets, 8 groups each (groups past the columns are pattern 0), 160 bytes:
//   bytes 0–127: 4 × 32 bytes, byte 32·p + r holding row r's index of group 2p (low nibble) and 2p + 1 (high);
//   bytes 128–159: byte 128 + r holding row r's 8 signs, group j's at bit j.
// After the panels, a float scale per row. Measured on 2 Zen 3 cores (2560- and 6912-column rows, GEMV over 512 MiB,
// not committed): 17–20 GB/s on one core from L2 where TQ1_0's digit tile reads 7.4, and 28–31 GB/s on two from
// memory (a plain read: 25–36).
//
// Batches of up to 32 tokens look the panels up too, 4 tokens a pass over each panel. Longer prompts read the panels
// unpacked a chunk of rows at a time (`unpack_panels`) into the rows the prompt tiles read, so once a matrix is packed
// its stored rows are never read again: 2–4 % of a 128-token prompt's matmul on one Zen 3 core (0.033–0.06 ns a
// weight). Packing, with AVX2, takes 0.025–0.05 ns a weight on 2 Zen 3 cores, where the plain C packing takes
// 0.45–0.6.
#include "kernels_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

int64_t bitnet_lookup_groups(int64_t columns) { return ((columns + 2) / 3 + 7) & ~(int64_t)7; }

int64_t bitnet_lookup_panel_bytes(int64_t columns) { return bitnet_lookup_groups(columns) / 8 * BITNET_LOOKUP_OCTET_BYTES; }

/// Where the rows' float scales start, after the panels.
static int64_t scales_offset(const bitnet_ternary_matrix *weights) {
    return weights->rows / BITNET_LOOKUP_PANEL_ROWS * bitnet_lookup_panel_bytes(weights->columns);
}

int64_t bitnet_ternary_lookup_bytes(const bitnet_ternary_matrix *weights) {
    const int64_t block_values = bitnet_ternary_layout_of(weights->encoding).block_values;
    if (weights->rows <= 0 || weights->rows % BITNET_LOOKUP_PANEL_ROWS != 0) return 0;
    if (weights->columns <= 0 || weights->columns % block_values != 0) return 0;
    return scales_offset(weights) + weights->rows * (int64_t)sizeof(float);
}

int bitnet_kernels_decode_by_lookup(void) { return bitnet_kernels_for_level(bitnet_level())->lookup.gemv != NULL; }

// MARK: - Packing

/// The weight of a TQ1_0 byte's code at `power` = 3^j: ⌊3·(3^j·v mod 256) / 256⌋ − 1.
static inline int8_t tq1_0_weight(uint8_t byte, uint8_t power) { return (int8_t)(((uint8_t)(byte * power) * 3 >> 8) - 1); }

/// Row `row`'s scale (stored with memcpy: the panels need no alignment); returns 0 where its blocks' scales differ.
static int row_scale(const bitnet_ternary_matrix *weights, int64_t row, uint8_t *scale) {
    const bitnet_ternary_layout layout = bitnet_ternary_layout_of(weights->encoding);
    const int64_t blocks = weights->columns / layout.block_values;
    const uint8_t *data = weights->data + row * blocks * layout.block_bytes;
    if (layout.scale_offset < 0) {
        memcpy(scale, weights->data + weights->rows * blocks * layout.block_bytes, sizeof(float));
        return 1;
    }
    for (int64_t b = 1; b < blocks; b++)
        if (memcmp(data + b * layout.block_bytes + layout.scale_offset, data + layout.scale_offset, 2) != 0) return 0;
    float half = bitnet_half_to_float((uint16_t)(data[layout.scale_offset] | data[layout.scale_offset + 1] << 8));
    memcpy(scale, &half, sizeof(float));
    return 1;
}

/// Row `row`'s weights (−1, 0, 1); returns 0 where a 2-bit field holds the unused code 3 (the stored rows' tiles
/// read it as +2, which no pattern holds).
static int row_weights(const bitnet_ternary_matrix *weights, int64_t row, int8_t *codes) {
    const bitnet_ternary_layout layout = bitnet_ternary_layout_of(weights->encoding);
    const int64_t blocks = weights->columns / layout.block_values;
    const uint8_t *data = weights->data + row * blocks * layout.block_bytes;
    static const uint8_t powers[5] = {1, 3, 9, 27, 81};
    for (int64_t b = 0; b < blocks; b++) {
        const uint8_t *block = data + b * layout.block_bytes;
        int8_t *out = codes + b * layout.block_values;
        if (weights->encoding != BITNET_TERNARY_TQ1_0)
            for (int i = 0; i < 32 * (weights->encoding == BITNET_TERNARY_I2_S ? 1 : 2); i++)
                if ((block[i] & 0x55 & block[i] >> 1) != 0) return 0;  // both bits of a field set
        switch (weights->encoding) {
        case BITNET_TERNARY_TQ1_0:
            // Code j of byte i (see ``bitnet_prepare_tq1_0``): values 32j + i, 160 + 16j + i − 32, 240 + 4j + i − 48.
            for (int j = 0; j < 5; j++) {
                for (int i = 0; i < 32; i++) out[32 * j + i] = tq1_0_weight(block[i], powers[j]);
                for (int i = 0; i < 16; i++) out[160 + 16 * j + i] = tq1_0_weight(block[32 + i], powers[j]);
                if (j < 4) for (int i = 0; i < 4; i++) out[240 + 4 * j + i] = tq1_0_weight(block[48 + i], powers[j]);
            }
            break;
        case BITNET_TERNARY_I2_S:
            for (int i = 0; i < 32; i++)
                for (int lane = 0; lane < 4; lane++) out[32 * lane + i] = (int8_t)(((block[i] >> (6 - 2 * lane)) & 3) - 1);
            break;
        default:
            for (int half = 0; half < 2; half++)
                for (int i = 0; i < 32; i++)
                    for (int lane = 0; lane < 4; lane++)
                        out[128 * half + 32 * lane + i] = (int8_t)(((block[32 * half + i] >> (2 * lane)) & 3) - 1);
        }
    }
    return 1;
}

/// ``bitnet_lookup_pack_panel`` in plain C: each row's weights decoded into `scratch`, then each octet a row at a
/// time, each byte written once (read-modify-writes of one sign byte made a chain of store-to-load forwards that took
/// most of the packing's time).
static int pack_panel_scalar(const bitnet_ternary_matrix *weights, int64_t panel, int8_t *scratch, uint8_t *out) {
    const int64_t columns = weights->columns, groups = bitnet_lookup_groups(columns);
    for (int r = 0; r < BITNET_LOOKUP_PANEL_ROWS; r++)
        if (!row_weights(weights, panel * BITNET_LOOKUP_PANEL_ROWS + r, scratch + r * columns)) return 0;
    for (int r = 0; r < BITNET_LOOKUP_PANEL_ROWS; r++) {
        const int8_t *w = scratch + r * columns;
        for (int64_t o = 0; o < groups / 8; o++) {
            uint8_t *octet = out + o * BITNET_LOOKUP_OCTET_BYTES;
            unsigned signs = 0;
            for (int pair = 0; pair < 4; pair++) {
                int indices = 0;
                for (int half = 0; half < 2; half++) {
                    const int64_t g = 8 * o + 2 * pair + half;
                    int v = 0;
                    if (3 * g + 2 < columns) v = 9 * w[3 * g] + 3 * w[3 * g + 1] + w[3 * g + 2];
                    else for (int64_t column = 3 * g; column < 3 * g + 3; column++) v = 3 * v + (column < columns ? w[column] : 0);
                    indices |= (v < 0 ? -v : v) << (4 * half);
                    signs |= (unsigned)(v < 0) << (2 * pair + half);
                }
                octet[32 * pair + r] = (uint8_t)indices;
            }
            octet[128 + r] = (uint8_t)signs;
        }
    }
    return 1;
}

typedef struct {
    const bitnet_ternary_matrix *weights;
    bitnet_lookup_pack_panel pack;
    uint8_t *panels;
    _Atomic int failed;  // a row with block scales or code 3, or no memory
} pack_job;

static void pack_panels(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    pack_job *job = context;
    const int64_t columns = job->weights->columns, panel_size = bitnet_lookup_panel_bytes(columns);
    uint8_t *scales = job->panels + scales_offset(job->weights);
    // Only the C packing decodes rows into scratch first.
    int8_t *scratch = job->pack == pack_panel_scalar ? malloc((size_t)(BITNET_LOOKUP_PANEL_ROWS * columns)) : NULL;
    if (job->pack == pack_panel_scalar && !scratch) {
        atomic_store(&job->failed, 1);
        return;
    }
    for (int64_t panel = begin; panel < end && !atomic_load(&job->failed); panel++) {  // the caller discards the panels
        for (int r = 0; r < BITNET_LOOKUP_PANEL_ROWS; r++) {
            const int64_t row = panel * BITNET_LOOKUP_PANEL_ROWS + r;
            if (!row_scale(job->weights, row, scales + sizeof(float) * row)) atomic_store(&job->failed, 1);
        }
        if (!job->pack(job->weights, panel, scratch, job->panels + panel * panel_size)) atomic_store(&job->failed, 1);
    }
    free(scratch);
}

int bitnet_ternary_lookup_pack(bitnet_pool *pool, const bitnet_ternary_matrix *weights, uint8_t *panels) {
    if (bitnet_ternary_lookup_bytes(weights) == 0) return -1;
    const bitnet_lookup_pack_panel pack = bitnet_kernels_for_level(bitnet_level())->lookup.pack;
    pack_job job = {.weights = weights, .pack = pack ? pack : pack_panel_scalar, .panels = panels};
    atomic_init(&job.failed, 0);
    // Several panels a task: the C packing's tasks each allocate their scratch once (32 · columns bytes).
    const int64_t panel_count = weights->rows / BITNET_LOOKUP_PANEL_ROWS;
    const int64_t grain = panel_count / (4 * bitnet_pool_threads(pool));
    bitnet_pool_run(pool, panel_count, grain < 1 ? 1 : grain, pack_panels, &job);
    return atomic_load(&job.failed) ? -1 : 0;
}

// MARK: - Tables

/// Each pattern index's weights: digit k of index |v| = 9·w0 + 3·w1 + w2 is w_k (indices 14 and 15 are unused, 0).
/// The tables (a dot of the digits) and the prompts' unpacking (the digits as codes) read this one definition.
static const int8_t pattern_digits[3][16] = {
    {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
    {0, 0, 1, 1, 1, -1, -1, -1, 0, 0, 0, 1, 1, 1, 0, 0},
    {0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, -1, 0, 1, 0, 0},
};

/// The dot of index i's pattern with (x0, x1, x2), as (a, b) with dot = 30·a + b, b = ((dot + 15) mod 30) − 15.
void bitnet_lookup_table_scalar(int x0, int x1, int x2, int8_t table[32]) {
    for (int index = 0; index < 16; index++) {
        int dot = pattern_digits[0][index] * x0 + pattern_digits[1][index] * x1 + pattern_digits[2][index] * x2;
        int b = (dot + 15 + 390) % 30 - 15;
        table[index] = (int8_t)((dot - b) / 30);
        table[16 + index] = (int8_t)b;
    }
}

// MARK: - Driver

float bitnet_lookup_row_scale(const bitnet_ternary_matrix *weights, int64_t row) {
    float scale;
    memcpy(&scale, weights->lookup_panels + scales_offset(weights) + sizeof(float) * row, sizeof scale);
    return scale;
}

typedef struct {
    const bitnet_ternary_matrix *weights;
    bitnet_lookup_panel_gemv gemv;
    bitnet_lookup_tables make_tables;
    const int8_t *x;
    int8_t *tables;  // token t's at 32 · groups · t
    const float *x_scales;
    int64_t tokens;
    float *output;   // token t's rows at rows · t
} lookup_job;

static void lookup_tables(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const lookup_job *job = context;
    const int64_t columns = job->weights->columns, groups = bitnet_lookup_groups(columns);
    for (int64_t t = begin; t < end; t++) job->make_tables(job->x + columns * t, columns, job->tables + 32 * groups * t);
}

static void lookup_rows(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const lookup_job *job = context;
    const int64_t rows = job->weights->rows, columns = job->weights->columns;
    const int64_t size = bitnet_lookup_panel_bytes(columns), groups = bitnet_lookup_groups(columns);
    const uint8_t *scales = job->weights->lookup_panels + scales_offset(job->weights);
    for (int64_t panel = begin; panel < end; panel++) {
        float panel_scales[BITNET_LOOKUP_PANEL_ROWS];
        memcpy(panel_scales, scales + sizeof(float) * BITNET_LOOKUP_PANEL_ROWS * panel, sizeof panel_scales);
        // Up to BITNET_LOOKUP_TOKENS tokens a pass, each pass after the first reading the panel from cache.
        for (int64_t first = 0; first < job->tokens; first += BITNET_LOOKUP_TOKENS) {
            const int count = job->tokens - first < BITNET_LOOKUP_TOKENS ? (int)(job->tokens - first) : BITNET_LOOKUP_TOKENS;
            int32_t sums[BITNET_LOOKUP_TOKENS][BITNET_LOOKUP_PANEL_ROWS];
            job->gemv(job->weights->lookup_panels + panel * size, job->tables + 32 * groups * first, 32 * groups, count, groups, sums);
            for (int t = 0; t < count; t++) {
                // The stored rows' driver computes scale · (Σ c'·x − Σx) / x_scale: the same integer, so the same
                // float (a loop the compiler vectorizes: a division a row took 3 % of the GEMV's time).
                const float x_scale = job->x_scales[first + t];
                float *output = job->output + rows * (first + t) + BITNET_LOOKUP_PANEL_ROWS * panel;
                for (int r = 0; r < BITNET_LOOKUP_PANEL_ROWS; r++) output[r] = panel_scales[r] * (float)sums[t][r] / x_scale;
            }
        }
    }
}

int bitnet_lookup_matmul(bitnet_pool *pool, const bitnet_ternary_matrix *weights, const bitnet_lookup_kernel *kernel,
                         const int8_t *x, const float *x_scales, int64_t tokens, float *output) {
    const int64_t groups = bitnet_lookup_groups(weights->columns);
    int8_t *tables = aligned_alloc(64, (size_t)(32 * groups * tokens));
    if (!tables) return -1;
    lookup_job job = {weights, kernel->gemv, kernel->tables, x, tables, x_scales, tokens, output};
    // A decode step's one table on this thread: a task on the pool would add a wait for a few microseconds' work.
    if (tokens == 1) lookup_tables(&job, 0, 1, 0);
    else bitnet_pool_run(pool, tokens, 1, lookup_tables, &job);
    const int64_t panels = weights->rows / BITNET_LOOKUP_PANEL_ROWS;
    int64_t grain = panels / (bitnet_pool_threads(pool) * 8);
    bitnet_pool_run(pool, panels, grain < 1 ? 1 : grain, lookup_rows, &job);
    free(tables);
    return 0;
}

// MARK: - AVX2

#ifdef BITNET_X86
#include <immintrin.h>

#include "tq1_0_avx2.h"

/// x's value at `column`, 0 past the last.
static inline int activation(const int8_t *x, int64_t columns, int64_t column) { return column < columns ? x[column] : 0; }

/// ``bitnet_lookup_table_scalar``'s entries, 16 at a time (the scalar one takes the last, partial groups): each
/// index's digits as sign vectors, the split into a and b by a multiply-high (⌊u / 30⌋ = ⌊u · 2185 / 2¹⁶⌋ for u < 789,
/// where u = dot + 405 is positive).
TARGET_AVX2 void bitnet_lookup_tables_avx2(const int8_t *x, int64_t columns, int8_t *tables) {
    const __m256i d0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)pattern_digits[0]));
    const __m256i d1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)pattern_digits[1]));
    const __m256i d2 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)pattern_digits[2]));
    const __m256i offset = _mm256_set1_epi16(405), magic = _mm256_set1_epi16(2185), thirteen = _mm256_set1_epi16(13);
    const __m256i thirty = _mm256_set1_epi16(30);
    const int64_t whole = columns / 3, groups = bitnet_lookup_groups(columns);
    for (int64_t g = 0; g < whole; g++) {
        const int8_t *group = x + 3 * g;
        __m256i dot = _mm256_add_epi16(_mm256_sign_epi16(_mm256_set1_epi16(group[0]), d0),
                                       _mm256_sign_epi16(_mm256_set1_epi16(group[1]), d1));
        dot = _mm256_add_epi16(dot, _mm256_sign_epi16(_mm256_set1_epi16(group[2]), d2));
        __m256i a = _mm256_sub_epi16(_mm256_mulhi_epu16(_mm256_add_epi16(dot, offset), magic), thirteen);
        __m256i b = _mm256_sub_epi16(dot, _mm256_mullo_epi16(a, thirty));
        // packs interleaves the 128-bit lanes (a0–7, b0–7, a8–15, b8–15); the permute puts a then b.
        _mm256_storeu_si256((__m256i *)(tables + 32 * g), _mm256_permute4x64_epi64(_mm256_packs_epi16(a, b), 0xD8));
    }
    for (int64_t g = whole; g < groups; g++)
        bitnet_lookup_table_scalar(activation(x, columns, 3 * g), activation(x, columns, 3 * g + 1),
                                   activation(x, columns, 3 * g + 2), tables + 32 * g);
}

static ALWAYS_INLINE void prefetch_octet_ahead(const uint8_t *octet) {
    // Every line of the octet (160 bytes): asking for one a block, as the stored rows' tiles do, left 3 of 5 lines
    // to the core's prefetchers and read memory at half the speed.
    for (int line = 0; line < 3; line++) __builtin_prefetch(octet + STREAM_PREFETCH_BYTES + 64 * line, 0, 3);
}

/// 32 rows' Σ w·x for T tokens (tables `table_stride` bytes apart) over `groups` groups (a multiple of 8): each group's
/// indices and signs worked out once for the T tokens; per token, 8 groups' a and b summed in bytes per octet, widened
/// to 30·a + b in 16 bits, and to 32 bits every 8 octets (at most 8 · 8 · 384 = 24,576 in 16 bits).
TARGET_AVX2 static ALWAYS_INLINE void lookup_panel_tokens(const uint8_t *panel, const int8_t *tables, int64_t table_stride,
                                                          int64_t groups, const int T, int32_t sums[][32]) {
    const __m256i nibble = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1), coefficients = _mm256_set1_epi16(30 << 8 | 1);
    __m256i total[BITNET_LOOKUP_TOKENS][4];
    for (int t = 0; t < T; t++) for (int k = 0; k < 4; k++) total[t][k] = _mm256_setzero_si256();
    const int64_t octets = groups / 8;
    for (int64_t first = 0; first < octets; first += 8) {
        const int64_t last = first + 8 < octets ? first + 8 : octets;
        __m256i low[BITNET_LOOKUP_TOKENS], high[BITNET_LOOKUP_TOKENS];  // rows 0–7, 16–23 | 8–15, 24–31
        for (int t = 0; t < T; t++) low[t] = high[t] = _mm256_setzero_si256();
        for (int64_t o = first; o < last; o++) {
            const uint8_t *octet = panel + o * BITNET_LOOKUP_OCTET_BYTES;
            prefetch_octet_ahead(octet);
            const __m256i signs = _mm256_loadu_si256((const __m256i *)(octet + 128));
            __m256i a[BITNET_LOOKUP_TOKENS], b[BITNET_LOOKUP_TOKENS];
            for (int t = 0; t < T; t++) a[t] = b[t] = _mm256_setzero_si256();
            // Unrolled, so each group's shifts are constants (left to itself, clang kept a loop over the pairs, and
            // one token's pass read 20 % slower).
#pragma clang loop unroll(full)
            for (int pair = 0; pair < 4; pair++) {
                const __m256i indices = _mm256_loadu_si256((const __m256i *)(octet + 32 * pair));
#pragma clang loop unroll(full)
                for (int half = 0; half < 2; half++) {
                    const int j = 2 * pair + half;
                    const __m256i index = half ? _mm256_and_si256(_mm256_srli_epi16(indices, 4), nibble) : _mm256_and_si256(indices, nibble);
                    // Bit j of each byte to its top (the shift crosses into the byte above only below bit 7), and
                    // never 0, so vpsignb keeps or negates.
                    const __m256i sign = _mm256_or_si256(_mm256_slli_epi16(signs, 7 - j), one);
                    for (int t = 0; t < T; t++) {
                        const int8_t *table = tables + table_stride * t + 32 * (8 * o + j);
                        const __m256i table_a = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)table));
                        const __m256i table_b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(table + 16)));
                        a[t] = _mm256_add_epi8(a[t], _mm256_sign_epi8(_mm256_shuffle_epi8(table_a, index), sign));
                        b[t] = _mm256_add_epi8(b[t], _mm256_sign_epi8(_mm256_shuffle_epi8(table_b, index), sign));
                    }
                }
            }
            for (int t = 0; t < T; t++) {
                low[t] = _mm256_add_epi16(low[t], _mm256_maddubs_epi16(coefficients, _mm256_unpacklo_epi8(b[t], a[t])));
                high[t] = _mm256_add_epi16(high[t], _mm256_maddubs_epi16(coefficients, _mm256_unpackhi_epi8(b[t], a[t])));
            }
        }
        for (int t = 0; t < T; t++) {
            total[t][0] = _mm256_add_epi32(total[t][0], _mm256_srai_epi32(_mm256_slli_epi32(low[t], 16), 16));
            total[t][1] = _mm256_add_epi32(total[t][1], _mm256_srai_epi32(low[t], 16));
            total[t][2] = _mm256_add_epi32(total[t][2], _mm256_srai_epi32(_mm256_slli_epi32(high[t], 16), 16));
            total[t][3] = _mm256_add_epi32(total[t][3], _mm256_srai_epi32(high[t], 16));
        }
    }
    // total[t][0] and [1]: the even and odd rows of 0–7 (lanes 0–3) and 16–23 (lanes 4–7); [2] and [3]: 8–15, 24–31.
    for (int t = 0; t < T; t++) {
        int32_t lanes[4][8];
        for (int k = 0; k < 4; k++) _mm256_storeu_si256((__m256i *)lanes[k], total[t][k]);
        for (int q = 0; q < 4; q++)
            for (int parity = 0; parity < 2; parity++)
                for (int k = 0; k < 2; k++) {
                    sums[t][8 * k + 2 * q + parity] = lanes[2 * k + parity][q];
                    sums[t][16 + 8 * k + 2 * q + parity] = lanes[2 * k + parity][4 + q];
                }
    }
}

TARGET_AVX2 void bitnet_lookup_panel_avx2(const uint8_t *panel, const int8_t *tables, int64_t table_stride, int tokens,
                                          int64_t groups, int32_t sums[][32]) {
    switch (tokens) {
    case 1: lookup_panel_tokens(panel, tables, table_stride, groups, 1, sums); break;
    case 2: lookup_panel_tokens(panel, tables, table_stride, groups, 2, sums); break;
    case 3: lookup_panel_tokens(panel, tables, table_stride, groups, 3, sums); break;
    default: lookup_panel_tokens(panel, tables, table_stride, groups, 4, sums); break;
    }
}

/// The 16 × 16 byte transposes of `x`'s two lanes: rows 0–15 in, columns out (lane 0 columns 0–15, lane 1 16–31).
TARGET_AVX2 static ALWAYS_INLINE void transpose16_lanes(__m256i x[16]) {
    __m256i a[16], b[16];
    for (int k = 0; k < 8; k++) {
        a[k] = _mm256_unpacklo_epi8(x[2 * k], x[2 * k + 1]);  // columns 0–7: 16-bit units of rows 2k, 2k + 1
        a[k + 8] = _mm256_unpackhi_epi8(x[2 * k], x[2 * k + 1]);
    }
    for (int half = 0; half < 2; half++)
        for (int k = 0; k < 4; k++) {
            b[8 * half + k] = _mm256_unpacklo_epi16(a[8 * half + 2 * k], a[8 * half + 2 * k + 1]);  // 4 columns of rows 4k–4k+3
            b[8 * half + k + 4] = _mm256_unpackhi_epi16(a[8 * half + 2 * k], a[8 * half + 2 * k + 1]);
        }
    for (int c = 0; c < 4; c++) {
        __m256i c0 = _mm256_unpacklo_epi32(b[4 * c], b[4 * c + 1]), c1 = _mm256_unpackhi_epi32(b[4 * c], b[4 * c + 1]);
        __m256i d0 = _mm256_unpacklo_epi32(b[4 * c + 2], b[4 * c + 3]), d1 = _mm256_unpackhi_epi32(b[4 * c + 2], b[4 * c + 3]);
        x[4 * c] = _mm256_unpacklo_epi64(c0, d0);
        x[4 * c + 1] = _mm256_unpackhi_epi64(c0, d0);
        x[4 * c + 2] = _mm256_unpacklo_epi64(c1, d1);
        x[4 * c + 3] = _mm256_unpackhi_epi64(c1, d1);
    }
}

/// `out + out_stride · r` = byte r of each of 32 vectors, `top` the first 16 and `bottom` the rest (both overwritten):
/// a 32 × 32 byte transpose.
TARGET_AVX2 static ALWAYS_INLINE void transpose32_registers(__m256i top[16], __m256i bottom[16], uint8_t *out, int64_t out_stride) {
    transpose16_lanes(top);
    transpose16_lanes(bottom);
    // top[k]: byte k of vectors 0–15 (lane 0) and byte 16 + k (lane 1); bottom[k] the same of vectors 16–31.
    for (int k = 0; k < 16; k++) {
        _mm256_storeu_si256((__m256i *)(out + out_stride * k), _mm256_permute2x128_si256(top[k], bottom[k], 0x20));
        _mm256_storeu_si256((__m256i *)(out + out_stride * (16 + k)), _mm256_permute2x128_si256(top[k], bottom[k], 0x31));
    }
}

/// `out + 32 · r` = byte r of each of the 32 vectors at `in` (`stride` bytes apart).
TARGET_AVX2 static ALWAYS_INLINE void transpose32(const uint8_t *in, int64_t stride, uint8_t *out) {
    __m256i top[16], bottom[16];
    for (int i = 0; i < 16; i++) {
        top[i] = _mm256_loadu_si256((const __m256i *)(in + stride * i));
        bottom[i] = _mm256_loadu_si256((const __m256i *)(in + stride * (16 + i)));
    }
    transpose32_registers(top, bottom, out, 32);
}

/// Whole panels (`rows` rows from `panels`, `panel_size` bytes apart) unpacked into runs of 32 bytes per 128 values
/// of a row, field l of byte i holding the code c' = w + 1 of value 32·l + i at bit `first_shift + step·l`. Each run's
/// 128 columns are worked out for 32 rows at once (a `vpshufb` per column of a group), combined into fields while
/// they are columns (vector i holding byte i of 32 rows), and transposed to rows.
TARGET_AVX2 static ALWAYS_INLINE void unpack_panels(const uint8_t *panels, int64_t panel_size, int64_t columns, int rows, uint8_t *out,
                                                    int first_shift, int step) {
    const __m256i nibble = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256i digits[3];
    for (int k = 0; k < 3; k++) digits[k] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pattern_digits[k]));
    const int64_t row_bytes = columns / 4;
    uint8_t codes[(128 / 3 + 2) * 3 * 32];  // a run's columns, 32 rows each, from its first group's first column
    for (int panel = 0; panel < rows / BITNET_LOOKUP_PANEL_ROWS; panel++) {
        const uint8_t *source = panels + panel * panel_size;
        uint8_t *target = out + (int64_t)panel * BITNET_LOOKUP_PANEL_ROWS * row_bytes;
        for (int64_t run = 0; run < columns / 128; run++) {
            const int64_t first_group = 128 * run / 3, end_group = (128 * run + 127) / 3 + 1;
            for (int64_t g = first_group; g < end_group; g++) {
                const uint8_t *octet = source + (g / 8) * BITNET_LOOKUP_OCTET_BYTES;
                const int j = (int)(g % 8);
                const __m256i indices = _mm256_loadu_si256((const __m256i *)(octet + 32 * (j / 2)));
                const __m256i index = j % 2 ? _mm256_and_si256(_mm256_srli_epi16(indices, 4), nibble) : _mm256_and_si256(indices, nibble);
                const __m256i sign = _mm256_or_si256(_mm256_slli_epi16(_mm256_loadu_si256((const __m256i *)(octet + 128)), 7 - j), one);
                for (int k = 0; k < 3; k++)
                    _mm256_storeu_si256((__m256i *)(codes + 32 * (3 * (g - first_group) + k)),
                                        _mm256_add_epi8(_mm256_sign_epi8(_mm256_shuffle_epi8(digits[k], index), sign), one));
            }
            const uint8_t *run_codes = codes + 32 * (128 * run - 3 * first_group);
            __m256i fields[32];
            for (int i = 0; i < 32; i++) {
                fields[i] = _mm256_setzero_si256();
                for (int l = 0; l < 4; l++)  // codes < 4 shifted by at most 6 stay in their bytes
                    fields[i] = _mm256_or_si256(fields[i], _mm256_slli_epi16(_mm256_loadu_si256((const __m256i *)(run_codes + 32 * (32 * l + i))),
                                                                             first_shift + step * l));
            }
            transpose32_registers(fields, fields + 16, target + 32 * run, row_bytes);
        }
    }
}

/// ``bitnet_ternary_unpack`` from lookup panels into TQ2_0's order (fields at bits 0, 2, 4, 6), 64 bytes a 256-value
/// block: the rows the 256-bit prompt tile reads for TQ2_0 and TQ1_0 matrices that have panels.
TARGET_AVX2 void bitnet_lookup_unpack_fields_avx2(const uint8_t *panels, int64_t panel_size, int64_t blocks, int rows, uint8_t *out) {
    unpack_panels(panels, panel_size, blocks * 256, rows, out, 0, 2);
}

/// The same into I2_S's order (fields at bits 6, 4, 2, 0), 32 bytes a 128-value block.
TARGET_AVX2 void bitnet_lookup_unpack_i2_s_avx2(const uint8_t *panels, int64_t panel_size, int64_t blocks, int rows, uint8_t *out) {
    unpack_panels(panels, panel_size, blocks * 128, rows, out, 6, -2);
}

// MARK: - Packing with AVX2

/// The codes c = w + 1 of columns [first, first + count) (whole blocks) of 32 rows (`row_bytes` apart, from the panel's
/// first), column c − first's 32 rows at `codes + 32 · (c − first)`: each block's bytes transposed so that a vector
/// holds 32 rows' byte i, whose fields (or base-3 digits) are columns. Returns the OR of `x & x >> 1 & 0x55` over
/// the 2-bit fields' bytes: nonzero where a field holds code 3.
TARGET_AVX2 static ALWAYS_INLINE __m256i block_codes(const bitnet_ternary_matrix *weights, const uint8_t *rows, int64_t row_bytes,
                                                     int64_t first, int64_t count, uint8_t *codes) {
    const bitnet_ternary_layout layout = bitnet_ternary_layout_of(weights->encoding);
    const __m256i three = _mm256_set1_epi8(3), low_bits = _mm256_set1_epi8(0x55);
    __m256i unused = _mm256_setzero_si256();
    uint8_t bytes[64 * 32];  // byte i of the block's 32 rows at 32·i
    for (int64_t column = first; column < first + count; column += layout.block_values) {
        const uint8_t *block = rows + column / layout.block_values * layout.block_bytes;
        uint8_t *target = codes + 32 * (column - first);
        if (weights->encoding == BITNET_TERNARY_TQ1_0) {
            // Bytes 32 … 51 through a copy: a 32-byte load from byte 32 of the last row's last block would read past
            // the matrix.
            uint8_t tail[32 * 32] = {0};  // bytes 20–31 of each row are transposed and never read
            for (int r = 0; r < 32; r++) memcpy(tail + 32 * r, block + r * row_bytes + 32, 20);
            transpose32(block, row_bytes, bytes);
            transpose32(tail, 32, bytes + 32 * 32);
            // Code j of byte i: values 32j + i, 160 + 16j + i − 32, 240 + 4j + i − 48 (as ``row_weights`` reads them).
            for (int i = 0; i < 52; i++) {
                __m256i t = _mm256_loadu_si256((const __m256i *)(bytes + 32 * i));
                const int64_t base = i < 32 ? i : i < 48 ? 160 + (i - 32) : 240 + (i - 48), step = i < 32 ? 32 : i < 48 ? 16 : 4;
                for (int j = 0; j < (i < 48 ? 5 : 4); j++) {
                    _mm256_storeu_si256((__m256i *)(target + 32 * (base + step * j)), tq1_0_digit_avx2(t));
                    t = _mm256_add_epi8(t, _mm256_add_epi8(t, t));
                }
            }
            continue;
        }
        // TQ2_0: field l of byte 32h + i is value 128h + 32l + i, at bit 2l; I2_S: of byte i, value 32l + i, at bit 6 − 2l.
        const int i2_s = weights->encoding == BITNET_TERNARY_I2_S, count_bytes = i2_s ? 32 : 64;
        for (int half = 0; half < count_bytes / 32; half++) transpose32(block + 32 * half, row_bytes, bytes + 32 * 32 * half);
        for (int i = 0; i < count_bytes; i++) {
            const __m256i t = _mm256_loadu_si256((const __m256i *)(bytes + 32 * i));
            unused = _mm256_or_si256(unused, _mm256_and_si256(_mm256_and_si256(t, _mm256_srli_epi16(t, 1)), low_bits));
            for (int l = 0; l < 4; l++) {
                const int64_t value = 128 * (i / 32) + 32 * l + i % 32;
                const int shift = i2_s ? 6 - 2 * l : 2 * l;
                _mm256_storeu_si256((__m256i *)(target + 32 * value), _mm256_and_si256(_mm256_srli_epi16(t, shift), three));
            }
        }
    }
    return unused;
}

/// ``bitnet_lookup_pack_panel`` with AVX2, writing ``pack_panel_scalar``'s bytes: 768 columns (32 octets) at a time,
/// their codes worked out for 32 rows at once (``block_codes``), then each group's v + 13 = 9·c0 + 3·c1 + c2 for 32
/// rows, whose |v| and sign fill one byte of each row.
TARGET_AVX2 int bitnet_lookup_pack_panel_avx2(const bitnet_ternary_matrix *weights, int64_t panel, int8_t *scratch, uint8_t *out) {
    (void)scratch;
    enum { CHUNK = 768 };
    const bitnet_ternary_layout layout = bitnet_ternary_layout_of(weights->encoding);
    const int64_t columns = weights->columns, groups = bitnet_lookup_groups(columns);
    const int64_t row_bytes = columns / layout.block_values * layout.block_bytes;
    const uint8_t *rows = weights->data + panel * BITNET_LOOKUP_PANEL_ROWS * row_bytes;
    const __m256i zero = _mm256_setzero_si256(), thirteen = _mm256_set1_epi8(13);
    __m256i unused = zero;
    uint8_t codes[CHUNK * 32];
    for (int64_t first = 0; first < columns; first += CHUNK) {
        const int64_t count = columns - first < CHUNK ? columns - first : CHUNK;
        unused = _mm256_or_si256(unused, block_codes(weights, rows, row_bytes, first, count, codes));
        memset(codes + 32 * count, 1, (size_t)(32 * (CHUNK - count)));  // columns past the last: weight 0
        const int64_t octets = (groups - first / 3) / 8 < CHUNK / 24 ? (groups - first / 3) / 8 : CHUNK / 24;
        for (int64_t o = 0; o < octets; o++) {
            uint8_t *octet = out + (first / 24 + o) * BITNET_LOOKUP_OCTET_BYTES;
            __m256i signs = zero, index[2];
            for (int j = 0; j < 8; j++) {
                const uint8_t *group = codes + 32 * 3 * (8 * o + j);
                const __m256i c0 = _mm256_loadu_si256((const __m256i *)group);
                const __m256i c1 = _mm256_loadu_si256((const __m256i *)(group + 32));
                const __m256i c2 = _mm256_loadu_si256((const __m256i *)(group + 64));
                const __m256i t = _mm256_add_epi8(_mm256_add_epi8(c0, _mm256_add_epi8(c0, c0)), c1);
                const __m256i v = _mm256_sub_epi8(_mm256_add_epi8(_mm256_add_epi8(t, _mm256_add_epi8(t, t)), c2), thirteen);
                index[j % 2] = _mm256_abs_epi8(v);
                signs = _mm256_or_si256(signs, _mm256_and_si256(_mm256_cmpgt_epi8(zero, v), _mm256_set1_epi8((char)(1 << j))));
                if (j % 2)  // |v| ≤ 13: the shift stays in its byte
                    _mm256_storeu_si256((__m256i *)(octet + 32 * (j / 2)), _mm256_or_si256(index[0], _mm256_slli_epi16(index[1], 4)));
            }
            _mm256_storeu_si256((__m256i *)(octet + 128), signs);
        }
    }
    return _mm256_testz_si256(unused, unused);
}
#endif
