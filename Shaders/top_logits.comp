#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "sort.glsl"
// Top-k sampling's candidates where the logits are, first of two steps: each workgroup sorts a slice of
// `sliceColumns` (≤ SORT_SIZE) columns of one row (workgroup (slice, row)) and writes its best `count` (value bits,
// column) pairs, padded with (-∞, NONE) where a slice has fewer columns; a non-finite
// logit ranks as +∞, so the best of a row is its first non-finite column if it has one (top_logits_merge.comp
// reports it).
layout(std430, binding = 0) readonly buffer Logits { float logits[]; };
layout(std430, binding = 1) writeonly buffer Partials { uint partials[]; };
layout(push_constant) uniform Push { uint vocabulary, rows, count, slices, sliceColumns; } p;

void main() {
    uint slice = gl_WorkGroupID.x, row = gl_WorkGroupID.y, t = gl_LocalInvocationID.x;
    uint first = slice * p.sliceColumns, end = min(p.vocabulary, first + p.sliceColumns);
    for (uint i = t; i < SORT_SIZE; i += WORKGROUP) {
        uint column = first + i;
        float value = column < end ? logits[row * p.vocabulary + column] : uintBitsToFloat(0xFF800000u);  // padding: -∞
        sortValues[i] = isnan(value) || (isinf(value) && column < end) ? uintBitsToFloat(0x7F800000u) : value;
        sortIndices[i] = column < end ? column : NONE;
    }
    sortBestFirst();
    uint base = 2 * (row * p.slices + slice) * p.count;
    for (uint i = t; i < p.count; i += WORKGROUP) {
        partials[base + 2 * i] = floatBitsToUint(sortValues[i]);
        partials[base + 2 * i + 1] = sortIndices[i];
    }
}
