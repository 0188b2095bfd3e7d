#version 450
// variant: bitlinearTiledIntegerDot -DINTEGER_DOT
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "ternary.glsl"
// BitLinear for prompts: a workgroup of 256 invocations computes ROWS rows × TOKENS tokens, staging CHUNK words of
// each weight row (unpacked to signed code words) and the activation words they meet in shared memory, so each
// weight word is read once per TOKENS tokens and each activation word once per ROWS rows (bitlinear.comp reads
// every activation once per row). Invocation (r, t) of 16 × 16 owns rows r + 16i (i < 4) and tokens t + 16j (j < 2).
// Buffers and push constants are bitlinear.comp's, and so are the floats: integer sums per scale block, rescaled in
// the CPU backend's order (d · Σ / a where a row's blocks share one scale, else Σ_b d_b · Σ_b in block order, / a).
layout(std430, binding = 0) readonly buffer Weights { uint weights[]; };
layout(std430, binding = 1) readonly buffer Activations { uint activations[]; };
layout(std430, binding = 2) writeonly buffer Output { float outputs[]; };
// bitlinear.comp's push constants; the tiled shader takes one matrix, the first.
layout(push_constant) uniform Push { uint wordsPerRow, blockWords, activationScaleOffset, tokens, rows[3], scaleOffsets[3]; } p;
const uint ROWS = 64, TOKENS = 32, GROUPS = 16, ROWS_EACH = ROWS / GROUPS, TOKENS_EACH = TOKENS / GROUPS;
const uint CHUNK = 8;          // weight words per step; a scale block (16 words, or a whole row) is a multiple of it
const uint CODES = 4 * CHUNK;  // signed code words (and activation words) per step
shared uint tileWeights[ROWS][CODES + 1];  // + 1: invocations reading 16 rows at one column hit 16 banks
shared uint tileActivations[TOKENS][CODES + 1];

void main() {
    uint t = gl_LocalInvocationID.x, rowGroup = t % GROUPS, tokenGroup = t / GROUPS;
    uint firstRow = gl_WorkGroupID.x * ROWS, firstToken = gl_WorkGroupID.z * TOKENS;
    uint blocks = p.wordsPerRow / p.blockWords, activationWords = 4 * p.wordsPerRow;

    bool sameScale[ROWS_EACH];
    for (uint i = 0; i < ROWS_EACH; i++) {
        uint row = min(firstRow + rowGroup + GROUPS * i, p.rows[0] - 1), scales = p.scaleOffsets[0] + row * blocks;
        sameScale[i] = true;
        for (uint b = 1; b < blocks; b++) sameScale[i] = sameScale[i] && weights[scales + b] == weights[scales];
    }
    int blockSums[ROWS_EACH][TOKENS_EACH], totals[ROWS_EACH][TOKENS_EACH];
    precise float sums[ROWS_EACH][TOKENS_EACH];
    for (uint i = 0; i < ROWS_EACH; i++)
        for (uint j = 0; j < TOKENS_EACH; j++) { blockSums[i][j] = 0; totals[i][j] = 0; sums[i][j] = 0; }

    for (uint word = 0; word < p.wordsPerRow; word += CHUNK) {
        for (uint index = t; index < ROWS * CHUNK; index += WORKGROUP) {
            uint r = index / CHUNK, w = index % CHUNK, row = firstRow + r;
            uint packed = row < p.rows[0] ? weights[row * p.wordsPerRow + word + w] : 0x55555555u;  // past the last row: zeros
            for (uint s = 0; s < 4; s++) tileWeights[r][4 * w + s] = signedCodes(packed, s);
        }
        for (uint index = t; index < TOKENS * CODES; index += WORKGROUP) {
            uint k = index / CODES, c = index % CODES, token = firstToken + k;
            tileActivations[k][c] = token < p.tokens ? activations[token * activationWords + 4 * word + c] : 0u;
        }
        barrier();
        for (uint c = 0; c < CODES; c++) {
            uint x[TOKENS_EACH];
            for (uint j = 0; j < TOKENS_EACH; j++) x[j] = tileActivations[tokenGroup + GROUPS * j][c];
            for (uint i = 0; i < ROWS_EACH; i++) {
                uint w = tileWeights[rowGroup + GROUPS * i][c];
                for (uint j = 0; j < TOKENS_EACH; j++) blockSums[i][j] += dot4(w, x[j]);
            }
        }
        barrier();
        if ((word + CHUNK) % p.blockWords == 0) {  // the end of a scale block
            uint block = (word + CHUNK) / p.blockWords - 1;
            for (uint i = 0; i < ROWS_EACH; i++) {
                uint row = min(firstRow + rowGroup + GROUPS * i, p.rows[0] - 1);
                float scale = uintBitsToFloat(weights[p.scaleOffsets[0] + row * blocks + block]);
                for (uint j = 0; j < TOKENS_EACH; j++) {
                    if (sameScale[i]) totals[i][j] += blockSums[i][j];
                    else sums[i][j] += scale * float(blockSums[i][j]);
                    blockSums[i][j] = 0;
                }
            }
        }
    }
    for (uint i = 0; i < ROWS_EACH; i++) {
        uint row = firstRow + rowGroup + GROUPS * i;
        if (row >= p.rows[0]) continue;
        float scale = uintBitsToFloat(weights[p.scaleOffsets[0] + row * blocks]);
        for (uint j = 0; j < TOKENS_EACH; j++) {
            uint token = firstToken + tokenGroup + GROUPS * j;
            if (token >= p.tokens) continue;
            precise float sum = sameScale[i] ? scale * float(totals[i][j]) : sums[i][j];
            outputs[token * p.rows[0] + row] = sum / uintBitsToFloat(activations[p.activationScaleOffset + token]);
        }
    }
}
