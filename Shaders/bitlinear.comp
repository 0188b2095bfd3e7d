#version 450
// variant: bitlinearIntegerDot -DINTEGER_DOT
// variant: bitlinearChained -DCHAINED
// variant: bitlinearChainedIntegerDot -DCHAINED -DINTEGER_DOT
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "ternary.glsl"
// BitLinear: int8 activations × ternary weights with integer dot products, one rescale per word.
//
// Weights as ternary.glsl describes them; then, from word `scaleOffsets[m]`, one float scale per `blockWords` words
// of a row. Activations are four int8 codes per word, `4 · wordsPerRow` words per token, then one float scale per
// token at word `activationScaleOffset`. A workgroup computes one row for TILE tokens, reading each weight word once
// for all of them (decode and short batches; bitlinear_tiled.comp takes longer ones). One dispatch multiplies the
// same activations by up to three matrices of the same row length (Q, K and V; gate and up): workgroups
// 0 … rows[0] − 1 take matrix 0 (binding 0), the next rows[1] matrix 1 (binding 3), then matrix 2 (binding 4), each
// written to its own output (bindings 2, 5, 6).
//
// CHAINED: the row-quantize step that reads these outputs runs in the last workgroup to finish (chain.glsl), so no
// barrier and no dispatch of its own stand between them. Matrix m's output is written as that step's row, or as its
// second input where bit m of `outputSecond` is set, so no two float bindings alias (the codes may: chain.glsl);
// every workgroup counts itself at `counters[counterBase + z]`, and the last quantizes the TILE tokens of its z.
layout(std430, binding = 0) readonly buffer Weights0 { uint weights0[]; };
layout(std430, binding = 1) readonly buffer Activations { uint activations[]; };
layout(std430, binding = 3) readonly buffer Weights1 { uint weights1[]; };
layout(std430, binding = 4) readonly buffer Weights2 { uint weights2[]; };
#ifdef CHAINED
layout(std430, binding = 2) coherent buffer Row { float quantizeRows[]; };
layout(std430, binding = 5) coherent buffer Second { float quantizeSecond[]; };
#include "chain.glsl"
layout(push_constant) uniform Push {
    uint wordsPerRow, blockWords, activationScaleOffset, tokens, rows[3], scaleOffsets[3];
    QuantizeShape quantize;
    uint counterBase, counterTotal, outputSecond;
} p;
#else
layout(std430, binding = 2) writeonly buffer Output0 { float outputs0[]; };
layout(std430, binding = 5) writeonly buffer Output1 { float outputs1[]; };
layout(std430, binding = 6) writeonly buffer Output2 { float outputs2[]; };
layout(push_constant) uniform Push { uint wordsPerRow, blockWords, activationScaleOffset, tokens, rows[3], scaleOffsets[3]; } p;
#endif
const uint TILE = 4;
const uint MAX_BLOCKS = 128;  // scales per row (TQ rows of up to 32,768 values); the backend checks at load
shared int blockSums[TILE][MAX_BLOCKS];

/// Word `index` of matrix `m` (the same for the whole workgroup, so the branch is uniform).
uint weightWord(uint m, uint index) {
    if (m == 0) return weights0[index];
    if (m == 1) return weights1[index];
    return weights2[index];
}

void writeOutput(uint m, uint index, float value) {
#ifdef CHAINED
    if ((p.outputSecond & (1u << m)) != 0) quantizeSecond[index] = value;
    else quantizeRows[index] = value;
#else
    if (m == 0) outputs0[index] = value;
    else if (m == 1) outputs1[index] = value;
    else outputs2[index] = value;
#endif
}

// Integer sums per scale block, then the CPU backend's float rescale, in its order: a row whose blocks share
// one scale is d · Σ / a, any other Σ_b d_b · Σ_b added in block order, then / a. So given the same int8
// activations, both backends give the same floats.
void multiplyRow(uint m, uint row, uint first) {
    uint t = gl_LocalInvocationID.x;
    uint blocks = p.wordsPerRow / p.blockWords, activationWords = 4 * p.wordsPerRow;
    for (uint i = t; i < TILE * blocks; i += WORKGROUP) blockSums[i / blocks][i % blocks] = 0;
    barrier();
    int sums[TILE] = int[TILE](0, 0, 0, 0);
    uint block = 0;
    for (uint w = t; w < p.wordsPerRow; w += WORKGROUP) {
        if (w / p.blockWords != block) {
            for (uint k = 0; k < TILE; k++) if (sums[k] != 0) atomicAdd(blockSums[k][block], sums[k]);
            sums = int[TILE](0, 0, 0, 0);
            block = w / p.blockWords;
        }
        uint word = weightWord(m, row * p.wordsPerRow + w);
        for (uint k = 0; k < TILE; k++) {
            uint token = first + k;
            if (token >= p.tokens) break;
            uint x = token * activationWords + 4 * w;
            for (uint s = 0; s < 4; s++) sums[k] += dot4(signedCodes(word, s), activations[x + s]);
        }
    }
    for (uint k = 0; k < TILE; k++) if (sums[k] != 0) atomicAdd(blockSums[k][block], sums[k]);
    barrier();
    if (t < TILE && first + t < p.tokens) {
        uint token = first + t, scales = p.scaleOffsets[m] + row * blocks;
        bool sameScale = true;
        int total = 0;
        for (uint b = 0; b < blocks; b++) {
            sameScale = sameScale && weightWord(m, scales + b) == weightWord(m, scales);
            total += blockSums[t][b];
        }
        precise float sum = 0;
        if (sameScale) {
            sum = uintBitsToFloat(weightWord(m, scales)) * float(total);
        } else {
            for (uint b = 0; b < blocks; b++) sum += uintBitsToFloat(weightWord(m, scales + b)) * float(blockSums[t][b]);
        }
        writeOutput(m, token * p.rows[m] + row, sum / uintBitsToFloat(activations[p.activationScaleOffset + token]));
    }
}

void main() {
    uint row = flatGroup(), first = gl_WorkGroupID.z * TILE;
    uint m = row < p.rows[0] ? 0 : row < p.rows[0] + p.rows[1] ? 1 : 2;
    row -= (m > 0 ? p.rows[0] : 0) + (m > 1 ? p.rows[1] : 0);
    if (row < p.rows[m]) multiplyRow(m, row, first);
#ifdef CHAINED
    quantizeWhenLast(p.counterBase + gl_WorkGroupID.z, p.counterTotal, p.quantize, first, min(TILE, p.tokens - min(first, p.tokens)));
#endif
}
