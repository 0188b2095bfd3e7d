#version 450
// variant: projectSubgroups -DSUBGROUPS
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// A float matrix (F32, F16, BF16, Q8_0 or Q6_K, as stored) times float activations: the output projection.
// One workgroup per row and TILE tokens.
layout(std430, binding = 0) readonly buffer Matrix { uint MATRIX[]; };
layout(std430, binding = 1) readonly buffer Input { float inputs[]; };
layout(std430, binding = 2) writeonly buffer Output { float outputs[]; };
layout(push_constant) uniform Push { uint rows, columns, encoding, tokens; } p;
#include "matrix.glsl"
const uint TILE = 4;
#ifdef SUBGROUPS
shared vec4 subgroupSums[WORKGROUP];
#else
shared float partial[TILE][WORKGROUP];
#endif

void main() {
    uint row = flatGroup(), t = gl_LocalInvocationID.x, first = gl_WorkGroupID.z * TILE;
    if (row >= p.rows) return;
    float sums[TILE] = float[TILE](0, 0, 0, 0);
    for (uint c = t; c < p.columns; c += WORKGROUP) {
        float w = matrixElement(p.encoding, row, c, p.columns);
        for (uint k = 0; k < TILE; k++)
            if (first + k < p.tokens) sums[k] += w * inputs[(first + k) * p.columns + c];
    }
#ifdef SUBGROUPS
    vec4 sum = subgroupAdd(vec4(sums[0], sums[1], sums[2], sums[3]));
    if (subgroupElect()) subgroupSums[gl_SubgroupID] = sum;
    barrier();
    if (gl_SubgroupID == 0) {
        sum = vec4(0);
        for (uint i = gl_SubgroupInvocationID; i < gl_NumSubgroups; i += gl_SubgroupSize) sum += subgroupSums[i];
        sum = subgroupAdd(sum);
        for (uint k = gl_SubgroupInvocationID; k < TILE; k += gl_SubgroupSize)
            if (first + k < p.tokens) outputs[(first + k) * p.rows + row] = sum[k];
    }
#else
    for (uint k = 0; k < TILE; k++) partial[k][t] = sums[k];
    barrier();
    for (uint stride = WORKGROUP / 2; stride > 0; stride /= 2) {
        if (t < stride)
            for (uint k = 0; k < TILE; k++) partial[k][t] += partial[k][t + stride];
        barrier();
    }
    if (t < TILE && first + t < p.tokens) outputs[(first + t) * p.rows + row] = partial[t][0];
#endif
}
