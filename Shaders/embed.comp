#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// The embedding rows of the batch's tokens.
layout(std430, binding = 0) readonly buffer Table { uint MATRIX[]; };
layout(std430, binding = 1) readonly buffer Batch { int batch[]; };
layout(std430, binding = 2) writeonly buffer Output { float outputs[]; };
layout(push_constant) uniform Push { uint columns, encoding, tokens, tokenBase; } p;
#include "matrix.glsl"

void main() {
    uint index = flatIndex();
    if (index >= p.columns * p.tokens) return;
    uint token = index / p.columns, column = index % p.columns;
    outputs[index] = matrixElement(p.encoding, uint(batch[p.tokenBase + token]), column, p.columns);
}
