#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "sort.glsl"
// Top-k sampling's candidates, second step: one workgroup a row merges the `slices` × `count` pairs
// top_logits.comp wrote, SORT_SIZE at a time keeping the best `count` in front, and writes the row's result:
// its first non-finite column (NONE: none) and that logit's bits, then `count` (column, value bits) pairs, best first.
layout(std430, binding = 0) readonly buffer Logits { float logits[]; };
layout(std430, binding = 1) readonly buffer Partials { uint partials[]; };
layout(std430, binding = 2) writeonly buffer Results { uint results[]; };
layout(push_constant) uniform Push { uint vocabulary, rows, count, slices, sliceColumns, resultWords; } p;

void main() {
    uint row = flatGroup(), t = gl_LocalInvocationID.x;
    if (row >= p.rows) return;
    uint total = p.slices * p.count, base = 2 * row * total;
    for (uint next = 0, kept = 0; next < total; kept = p.count) {
        uint room = SORT_SIZE - kept;
        for (uint i = t; i < room; i += WORKGROUP) {
            uint candidate = next + i;
            sortValues[kept + i] = candidate < total ? uintBitsToFloat(partials[base + 2 * candidate]) : uintBitsToFloat(0xFF800000u);
            sortIndices[kept + i] = candidate < total ? partials[base + 2 * candidate + 1] : NONE;
        }
        next += room;
        sortBestFirst();
    }
    uint out_ = row * p.resultWords;
    for (uint i = t; i < p.count; i += WORKGROUP) {
        results[out_ + 2 + 2 * i] = sortIndices[i];
        results[out_ + 2 + 2 * i + 1] = floatBitsToUint(sortValues[i]);
    }
    if (t == 0) {
        bool bad = isinf(sortValues[0]) && sortValues[0] > 0;
        results[out_] = bad ? sortIndices[0] : NONE;
        results[out_ + 1] = bad ? floatBitsToUint(logits[row * p.vocabulary + sortIndices[0]]) : 0u;
    }
}
