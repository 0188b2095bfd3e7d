#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// Attention for a prompt: one workgroup per head and QUERIES consecutive tokens of one slot at consecutive positions
// (the host checks), so each cached key and value is read once for all of them instead of once per token. Each
// query's floats are attention.comp's: the same tiles of WORKGROUP positions starting at 0, the same score loop,
// running maximum, shared-tree sum of the weights and value loop, and a query skips the tiles past its position as
// attention.comp never reaches them. Invocation t scores position start + t against every query and accumulates
// output dimensions t, t + WORKGROUP, … of every query. The head dimension is at most 4 × WORKGROUP.
#include "attention.glsl"
const uint QUERIES = 8, MAX_DIMENSIONS = 4;
shared float query[QUERIES][4 * WORKGROUP];
shared float weights[QUERIES][WORKGROUP];
shared float partial[QUERIES][WORKGROUP];

void main() {
    uint head = gl_WorkGroupID.x, first = gl_WorkGroupID.y * QUERIES, t = gl_LocalInvocationID.x;
    uint count = min(QUERIES, p.tokens - first);
    uint slot = uint(batch[p.slotBase + first]), firstPosition = uint(batch[p.positionBase + first]);
    uint keyValueHead = head / (p.heads / p.keyValueHeads), dims = p.headDimension;
    for (uint q = 0; q < count; q++)
        for (uint d = t; d < dims; d += WORKGROUP) query[q][d] = queryElement(first + q, head, firstPosition + q, d);
    barrier();
    uint slotBase = slot * p.capacity * p.cacheWidth + keyValueHead * dims;
    float maximum[QUERIES], total[QUERIES], sums[QUERIES][MAX_DIMENSIONS];
    for (uint q = 0; q < QUERIES; q++) {
        maximum[q] = -1.0 / 0.0;
        total[q] = 0;
        for (uint k = 0; k < MAX_DIMENSIONS; k++) sums[q][k] = 0;
    }
    uint last = firstPosition + count - 1;
    for (uint start = 0; start <= last; start += WORKGROUP) {
        uint j = start + t;
        float scores[QUERIES];
        for (uint q = 0; q < QUERIES; q++) scores[q] = -1.0 / 0.0;
        if (j <= last) {  // each key element read once for every query that sees position j
            uint key = slotBase + j * p.cacheWidth, seeing = min(count, last + 1 - j);
            float dots[QUERIES];
            for (uint q = 0; q < QUERIES; q++) dots[q] = 0;
            for (uint d = 0; d < dims; d++) {
                float k = cached(key + d);
                for (uint q = count - seeing; q < count; q++) dots[q] += query[q][d] * k;
            }
            for (uint q = count - seeing; q < count; q++) scores[q] = dots[q] * p.scale;
        }
        // The tile's maximum of each query, by the shared tree (a maximum is the same in any order).
        for (uint q = 0; q < QUERIES; q++) partial[q][t] = scores[q];
        barrier();
        for (uint stride = WORKGROUP / 2; stride > 0; stride /= 2) {
            if (t < stride)
                for (uint q = 0; q < count; q++) partial[q][t] = max(partial[q][t], partial[q][t + stride]);
            barrier();
        }
        float corrections[QUERIES];
        for (uint q = 0; q < count; q++) {
            float newMaximum = max(maximum[q], partial[q][0]);
            corrections[q] = exp(maximum[q] - newMaximum);
            weights[q][t] = j <= firstPosition + q ? exp(scores[q] - newMaximum) : 0;
            maximum[q] = newMaximum;
        }
        barrier();
        // Each query's weight sum, by attention.comp's tree.
        for (uint q = 0; q < count; q++) partial[q][t] = weights[q][t];
        barrier();
        for (uint stride = WORKGROUP / 2; stride > 0; stride /= 2) {
            if (t < stride)
                for (uint q = 0; q < count; q++) partial[q][t] += partial[q][t + stride];
            barrier();
        }
        // Queries whose position the tile reaches (attention.comp stops before the others' later tiles).
        uint reached = start > firstPosition ? min(count, last + 1 - start) : count, skipped = count - reached;
        for (uint q = skipped; q < count; q++) total[q] = total[q] * corrections[q] + partial[q][0];
        for (uint k = 0; k < MAX_DIMENSIONS; k++) {
            uint d = t + k * WORKGROUP;
            if (d >= dims) break;
            for (uint q = skipped; q < count; q++) sums[q][k] *= corrections[q];
            // Each value read once for every query that sees its position, added in position order for each.
            for (uint i = 0; i < min(WORKGROUP, last + 1 - start); i++) {
                float v = cached(p.valueOffset + slotBase + (start + i) * p.cacheWidth + d);
                for (uint q = max(skipped, min(count, start + i - min(start + i, firstPosition))); q < count; q++) sums[q][k] += weights[q][i] * v;
            }
        }
        barrier();
    }
    for (uint q = 0; q < count; q++)
        for (uint k = 0; k < MAX_DIMENSIONS; k++) {
            uint d = t + k * WORKGROUP;
            if (d < dims) outputs[(first + q) * p.queryWidth + head * dims + d] = sums[q][k] / total[q];
        }
}
