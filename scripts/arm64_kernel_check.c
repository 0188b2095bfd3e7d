// The Arm64 kernels, run under user-mode emulation by scripts/check-arm64-kernels: every ternary encoding, uniform
// and per-block scales, odd rows and tokens, 1 and 3 threads, must give the scalar kernels' floats to the bit (the
// same integer sums, the same rescale), told which rows have one scale or not; the NEON float dots must agree with
// double-precision sums, and a float matmul must give each token what it gets alone.
#include "bitnet_kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state = 0x9E3779B97F4A7C15u;
static uint32_t next(void) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return (uint32_t)(state >> 16);
}

static uint16_t half_bits(float value) {  // positive normal values only
    uint32_t bits;
    memcpy(&bits, &value, 4);
    return (uint16_t)(((bits >> 23) - 112) << 10 | (bits >> 13 & 0x3FF));
}

static int failures = 0;

static void check_ternary(int32_t encoding, int64_t rows, int64_t columns, int64_t tokens, int uniform, bitnet_pool *pool) {
    const int64_t block_values = encoding == BITNET_TERNARY_I2_S ? 128 : 256;
    const int64_t block_bytes = encoding == BITNET_TERNARY_TQ2_0 ? 66 : encoding == BITNET_TERNARY_TQ1_0 ? 54 : 32;
    const int64_t blocks = rows * columns / block_values;
    size_t size = (size_t)(blocks * block_bytes) + 32;
    uint8_t *w = malloc(size);
    for (size_t i = 0; i < size; i++) w[i] = (uint8_t)next();
    if (encoding == BITNET_TERNARY_I2_S) {
        float scale = 0.125f;
        memcpy(w + blocks * block_bytes, &scale, 4);
    } else {
        for (int64_t b = 0; b < blocks; b++) {
            int64_t row = b / (columns / block_values);
            float scale = uniform || row % 2 == 0 ? 0.25f + (float)row / 64 : 0.01f + (float)(next() % 1000) / 500;
            uint16_t bits = half_bits(scale);
            memcpy(w + b * block_bytes + block_bytes - 2, &bits, 2);
        }
    }
    int8_t *x = malloc((size_t)(tokens * columns));
    float *scales = malloc((size_t)tokens * sizeof(float));
    for (int64_t i = 0; i < tokens * columns; i++) x[i] = i % 7 == 0 ? -128 : i % 11 == 0 ? 127 : (int8_t)next();
    for (int64_t t = 0; t < tokens; t++) scales[t] = 0.5f + (float)(next() % 4000) / 100;
    uint8_t *flags = malloc((size_t)rows);
    bitnet_ternary_matrix found = {encoding, rows, columns, w, NULL};
    bitnet_ternary_uniform_rows(pool, &found, flags);
    // Scalar, NEON, then NEON told which rows have one scale.
    float *outputs[3];
    const char *levels[3] = {"scalar", "neondot", "neondot"};
    for (int run = 0; run < 3; run++) {
        outputs[run] = malloc((size_t)(tokens * rows) * sizeof(float));
        if (bitnet_kernels_force(levels[run]) != 0) {
            printf("FAIL: cannot force %s\n", levels[run]);
            exit(1);
        }
        bitnet_ternary_matrix matrix = {encoding, rows, columns, w, run == 2 ? flags : NULL};
        if (bitnet_ternary_matmul(pool, &matrix, x, scales, tokens, outputs[run]) != 0) failures++;
        bitnet_kernels_force(NULL);
    }
    for (int run = 1; run < 3; run++)
        if (memcmp(outputs[0], outputs[run], (size_t)(tokens * rows) * sizeof(float)) != 0) {
            printf("FAIL: encoding %d, %lld × %lld, %lld tokens, uniform %d, %d threads%s: neondot differs from scalar\n",
                   encoding, (long long)rows, (long long)columns, (long long)tokens, uniform, bitnet_pool_threads(pool),
                   run == 2 ? ", told the uniform rows" : "");
            failures++;
        }
    free(outputs[0]), free(outputs[1]), free(outputs[2]), free(flags), free(x), free(scales), free(w);
}

static void check_float(int32_t encoding, int64_t rows, int64_t columns, bitnet_pool *pool) {
    const int64_t tokens = 11;
    size_t element = encoding == BITNET_FLOAT_F32 ? 4 : 2;
    uint8_t *w = malloc((size_t)(rows * columns) * element);
    double *values = malloc((size_t)(rows * columns) * sizeof(double));
    for (int64_t i = 0; i < rows * columns; i++) {
        float value = 0.5f + (float)(next() % 1000) / 1000;  // [0.5, 1.5): exact in f16 after rounding below
        uint16_t bits = half_bits(value);
        if (encoding == BITNET_FLOAT_F32) memcpy(w + 4 * i, &value, 4), values[i] = value;
        else {
            memcpy(w + 2 * i, &bits, 2);
            values[i] = ldexp(1.0 + (bits & 0x3FF) / 1024.0, (bits >> 10) - 15);
        }
    }
    float *x = malloc((size_t)(tokens * columns) * sizeof(float));
    for (int64_t i = 0; i < tokens * columns; i++) x[i] = (float)((int)(next() % 4001) - 2000) / 1000;
    float *together = malloc((size_t)(tokens * rows) * sizeof(float)), alone[64];
    if (bitnet_kernels_force("neondot") != 0) exit(1);
    bitnet_float_matmul(pool, encoding, w, rows, columns, x, tokens, together);
    for (int64_t t = 0; t < tokens; t++) {
        bitnet_float_matmul(pool, encoding, w, rows, columns, x + t * columns, 1, alone);
        for (int64_t r = 0; r < rows; r++) {
            double exact = 0, magnitude = 0;
            for (int64_t c = 0; c < columns; c++) {
                exact += values[r * columns + c] * x[t * columns + c];
                magnitude += fabs(values[r * columns + c] * x[t * columns + c]);
            }
            if (memcmp(&alone[r], &together[t * rows + r], sizeof(float)) != 0 || fabs(alone[r] - exact) > 1e-5 * magnitude) {
                printf("FAIL: float encoding %d, %lld columns, token %lld row %lld: %.9g alone, %.9g together, %.9g exact\n",
                       encoding, (long long)columns, (long long)t, (long long)r, alone[r], together[t * rows + r], exact);
                failures++;
            }
        }
    }
    bitnet_kernels_force(NULL);
    free(w), free(values), free(x), free(together);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "without-dotprod") == 0) {
        // A CPU without `sdot` (Cortex-A72): the scalar kernels, and no way to force the others.
        // A CPU without `sdot` (Cortex-A72): the scalar kernels, no way to force the others, and a TQ2_0 decode
        // step that gives the codes' sums (scale 1, activation scale 1: exact in float).
        int ok = strcmp(bitnet_kernels_isa(), "scalar") == 0 && bitnet_kernels_force("neondot") != 0;
        enum { ROWS = 7, COLUMNS = 512 };
        uint8_t w[ROWS * 2 * 66];
        int8_t x[COLUMNS];
        for (size_t i = 0; i < sizeof w; i++) w[i] = (uint8_t)next();
        for (int i = 0; i < COLUMNS; i++) x[i] = (int8_t)next();
        for (int b = 0; b < ROWS * 2; b++) w[b * 66 + 64] = 0x00, w[b * 66 + 65] = 0x3C;  // f16 1.0
        float out[ROWS], scale = 1;
        bitnet_ternary_matrix matrix = {BITNET_TERNARY_TQ2_0, ROWS, COLUMNS, w, NULL};
        ok = ok && bitnet_ternary_matmul(NULL, &matrix, x, &scale, 1, out) == 0;
        for (int r = 0; r < ROWS && ok; r++) {
            int64_t sum = 0;  // byte i of half h: values 128h + 32·lane + i at bits 2·lane, code − 1
            for (int b = 0; b < 2; b++)
                for (int h = 0; h < 2; h++)
                    for (int lane = 0; lane < 4; lane++)
                        for (int i = 0; i < 32; i++)
                            sum += (int64_t)(((w[(r * 2 + b) * 66 + 32 * h + i] >> (2 * lane)) & 3) - 1) * x[256 * b + 128 * h + 32 * lane + i];
            ok = out[r] == (float)sum;
        }
        printf("without dotprod: %s\n", ok ? "scalar kernels, neondot refused, a decode step's sums right" : "FAILED");
        return !ok;
    }
    if (bitnet_kernels_level_count() != 2 || strcmp(bitnet_kernels_isa(), "neondot") != 0) {
        printf("FAIL: levels %d, default %s (expected scalar and neondot, neondot chosen)\n", bitnet_kernels_level_count(), bitnet_kernels_isa());
        return 1;
    }
    static const int64_t shapes[][3] = {{1, 256, 1}, {7, 512, 1}, {9, 768, 5}, {6, 2560, 3}, {13, 256, 9},
                                        {66, 1280, 4}, {33, 512, 2}, {7, 1024, 17}, {5, 3584, 8}};
    bitnet_pool *pools[2] = {NULL, bitnet_pool_create(3)};
    int cases = 0;
    for (int p = 0; p < 2; p++)
        for (int32_t encoding = 0; encoding < 3; encoding++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                for (int uniform = 1; uniform >= (encoding == BITNET_TERNARY_I2_S ? 1 : 0); uniform--, cases++)
                    check_ternary(encoding, shapes[s][0], shapes[s][1], shapes[s][2], uniform, pools[p]);
    check_ternary(BITNET_TERNARY_I2_S, 5, 384, 3, 1, pools[1]);
    check_ternary(BITNET_TERNARY_I2_S, 3, 128, 6, 1, pools[1]);
    for (int64_t columns = 1; columns <= 70; columns += 23) check_float(BITNET_FLOAT_F32, 5, columns, pools[1]);
    for (int64_t columns = 1; columns <= 70; columns += 23) check_float(BITNET_FLOAT_F16, 5, columns, pools[1]);
    check_float(BITNET_FLOAT_F16, 19, 2560, pools[1]);
    bitnet_pool_destroy(pools[1]);
    printf("%d ternary cases and the float dots: %s\n", cases + 2, failures ? "FAILED" : "neondot gives the scalar floats");
    return failures != 0;
}
