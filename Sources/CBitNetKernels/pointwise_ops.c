// The forward pass's element-wise ops: gated activations, residual adds and rotary embeddings, split between the
// pool's threads. Each value is computed with libm's expf/tanhf/cosf/sinf and the same float operations in the
// same order as the Swift code they replaced, so they give its floats on every CPU.
#include "kernels_internal.h"

#include <math.h>

// A multiply followed by an add is rounded twice, as written, never fused into one FMA.
#pragma STDC FP_CONTRACT OFF

/// Elements per chunk of the element-wise ops: enough to pay for a chunk's hand-off, few enough to share out a
/// prompt's rows (a 2B-4T feed-forward row is 6912 values).
enum { POINTWISE_GRAIN = 16384 };

// MARK: - Gated activations

typedef struct {
    int32_t activation;
    const float *gate, *up;
    float *output;
} activation_job;

static void activation_task(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const activation_job *job = context;
    const float *gate = job->gate, *up = job->up;
    float *out = job->output;
    switch (job->activation) {
    case BITNET_ACTIVATION_SQUARED_RELU:
        for (int64_t i = begin; i < end; i++) {
            float relu = 0 >= gate[i] ? 0 : gate[i];  // Swift's max(x, 0): NaN stays NaN
            out[i] = relu * relu * up[i];
        }
        break;
    case BITNET_ACTIVATION_SILU:
        for (int64_t i = begin; i < end; i++) {
            float x = gate[i];
            out[i] = x / (1 + expf(-x)) * up[i];
        }
        break;
    default:
        for (int64_t i = begin; i < end; i++) {
            float x = gate[i];
            out[i] = 0.5f * x * (1 + tanhf(0.7978846f * (x + 0.044715f * x * x * x))) * up[i];
        }
        break;
    }
}

void bitnet_gated_activation(bitnet_pool *pool, int32_t activation, const float *gate, const float *up, int64_t count,
                             float *output) {
    activation_job job = {activation, gate, up, output};
    bitnet_pool_run(pool, count, POINTWISE_GRAIN, activation_task, &job);
}

// MARK: - Residual add

typedef struct {
    const float *x;
    float *accumulator;
} add_job;

static void add_task(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const add_job *job = context;
    for (int64_t i = begin; i < end; i++) job->accumulator[i] += job->x[i];
}

void bitnet_add(bitnet_pool *pool, const float *x, int64_t count, float *accumulator) {
    add_job job = {x, accumulator};
    bitnet_pool_run(pool, count, POINTWISE_GRAIN, add_task, &job);
}

// MARK: - Rotary embedding

typedef struct {
    float *vectors;
    int64_t row_stride;
    const int64_t *positions;
    int32_t heads, dimension, layout;
    const float *inverse_frequencies;
} rope_job;

static void rope_task(void *context, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const rope_job *job = context;
    const int32_t half = job->dimension / 2;
    for (int64_t token = begin; token < end; token++) {
        float *row = job->vectors + token * job->row_stride;
        for (int32_t pair = 0; pair < half; pair++) {
            float angle = (float)job->positions[token] * job->inverse_frequencies[pair];
            float cosine = cosf(angle), sine = sinf(angle);
            for (int32_t head = 0; head < job->heads; head++) {
                float *base = row + (int64_t)head * job->dimension;
                float *first = job->layout == BITNET_ROPE_HALVES ? base + pair : base + 2 * pair;
                float *second = job->layout == BITNET_ROPE_HALVES ? base + pair + half : base + 2 * pair + 1;
                float x = *first, y = *second;
                *first = x * cosine - y * sine;
                *second = y * cosine + x * sine;
            }
        }
    }
}

void bitnet_rope(bitnet_pool *pool, float *vectors, int64_t row_stride, const int64_t *positions, int64_t tokens,
                 int32_t heads, int32_t dimension, int32_t layout, const float *inverse_frequencies) {
    rope_job job = {vectors, row_stride, positions, heads, dimension, layout, inverse_frequencies};
    bitnet_pool_run(pool, tokens, 1, rope_task, &job);
}
