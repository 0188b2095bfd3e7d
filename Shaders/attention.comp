#version 450
// variant: attentionSubgroups -DSUBGROUPS
// variant: attentionChained -DCHAINED
// variant: attentionChainedSubgroups -DCHAINED -DSUBGROUPS
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// Causal grouped-query attention of one token's head over its slot's cached positions 0…position, one workgroup
// each, in tiles of WORKGROUP positions with a running maximum (the softmax of the whole row, never held at once,
// so any context length fits); its query rotated as it is read when `rotaryHalf` > 0, as kv_store.comp rotates
// the keys. Each invocation accumulates output dimensions t, t + WORKGROUP, …. A long decode splits its positions
// into blocks, a workgroup each, which attention_combine.comp combines as the CPU backend does.
//
// `stores` (a pass whose tokens are of different slots: a decode step): no kv_store.comp dispatch ran; each token's
// own key and value come from the pass's key and value rows (the key rotated as kv_store.comp rotates it, both
// rounded as the cache holds them, so the floats are the same), and the workgroup of the first query head of each
// key/value head whose block holds the token's position writes them into the cache for later passes. No other
// workgroup reads that position of that slot's cache in this pass.
//
// CHAINED (unsplit): the quantization of each token's output row (chain.glsl) runs in the last of its heads'
// workgroups to finish, counted at `counters[counterBase + token]`.
#include "attention.glsl"
layout(std430, binding = 5) readonly buffer Keys { float keys[]; };
layout(std430, binding = 6) readonly buffer Values { float values[]; };
#ifdef CHAINED
#define quantizeRows outputs
#define quantizeSecond outputs  // a quantization chained to attention has no prologue: never read
#include "chain.glsl"
#endif
const uint MAX_DIMENSIONS = 4;  // per invocation: head dimensions up to 4 × WORKGROUP
shared float query[4 * WORKGROUP];
shared float ownKey[4 * WORKGROUP], ownValue[4 * WORKGROUP];
shared float weights[WORKGROUP];
shared float partial[WORKGROUP];
shared float reduced;

/// The workgroup's largest score: with subgroups, each subgroup's and then subgroup 0's over those (two barriers
/// where the shared tree takes log₂ WORKGROUP; a maximum is the same in any order).
float reduceMax(float value) {
#ifdef SUBGROUPS
    value = subgroupMax(value);
    if (subgroupElect()) partial[gl_SubgroupID] = value;
    barrier();
    if (gl_SubgroupID == 0) {
        float folded = -1.0 / 0.0;
        for (uint i = gl_SubgroupInvocationID; i < gl_NumSubgroups; i += gl_SubgroupSize) folded = max(folded, partial[i]);
        folded = subgroupMax(folded);
        if (subgroupElect()) reduced = folded;
    }
    barrier();
    return reduced;
#else
    uint t = gl_LocalInvocationID.x;
    partial[t] = value;
    barrier();
    for (uint stride = WORKGROUP / 2; stride > 0; stride /= 2) {
        if (t < stride) partial[t] = max(partial[t], partial[t + stride]);
        barrier();
    }
    float result = partial[0];
    barrier();
    return result;
#endif
}

/// The workgroup's sum, always by the shared tree: its order decides the floats the next norm quantizes, so both
/// variants keep it (a subgroup sum moved an int8 code of the bundled model).
float reduceSum(float value) {
    uint t = gl_LocalInvocationID.x;
    partial[t] = value;
    barrier();
    for (uint stride = WORKGROUP / 2; stride > 0; stride /= 2) {
        if (t < stride) partial[t] += partial[t + stride];
        barrier();
    }
    float result = partial[0];
    barrier();
    return result;
}

/// A float as the cache holds it: itself, or rounded to f16 as kv_store.comp's packHalf2x16 rounds it.
float asCached(float value) { return p.half_ != 0 ? unpackHalf2x16(packHalf2x16(vec2(value, 0.0))).x : value; }

/// Element `d` of `token`'s key for key/value head `keyValueHead` at `position`, rotated as kv_store.comp rotates it.
float ownKeyElement(uint token, uint keyValueHead, uint position, uint d) {
    return ROTATED_ELEMENT(keys, token * p.cacheWidth + keyValueHead * p.headDimension, d, position);
}

void attend() {
    uint head = gl_WorkGroupID.x, token = gl_WorkGroupID.y, t = gl_LocalInvocationID.x;
    uint slot = uint(batch[p.slotBase + token]), position = uint(batch[p.positionBase + token]);
    uint keyValueHead = head / (p.heads / p.keyValueHeads), dims = p.headDimension;
    // Split (`blockPositions` > 0): workgroup z attends to block z of the positions alone, as if it were the whole
    // cache, for attention_combine.comp; a block past the token's position writes an empty partial.
    uint first = gl_WorkGroupID.z * p.blockPositions, last = p.blockPositions == 0 ? position : min(position, first + p.blockPositions - 1);
    uint partialBase = ((token * p.heads + head) * gl_NumWorkGroups.z + gl_WorkGroupID.z) * (dims + 2);
    if (first > position) {
        for (uint d = t; d < dims + 2; d += WORKGROUP) outputs[partialBase + d] = d == dims ? -1.0 / 0.0 : 0.0;
        return;
    }
    for (uint d = t; d < dims; d += WORKGROUP) query[d] = queryElement(token, head, position, d);
    // Whether this workgroup reads the token's own key and value from the pass's rows rather than the cache.
    bool own = p.stores != 0 && position <= last;
    if (own) {
        for (uint d = t; d < dims; d += WORKGROUP) {
            ownKey[d] = asCached(ownKeyElement(token, keyValueHead, position, d));
            ownValue[d] = asCached(values[token * p.cacheWidth + keyValueHead * dims + d]);
        }
    }
    barrier();
    uint slotBase = slot * p.capacity * p.cacheWidth + keyValueHead * dims;
    if (own && head % (p.heads / p.keyValueHeads) == 0) {
        uint element = slotBase + position * p.cacheWidth;
        if (p.half_ != 0) {
            for (uint d = 2 * t; d < dims; d += 2 * WORKGROUP) {
                cache[(element + d) / 2] = packHalf2x16(vec2(ownKey[d], ownKey[d + 1]));
                cache[(p.valueOffset + element + d) / 2] = packHalf2x16(vec2(ownValue[d], ownValue[d + 1]));
            }
        } else {
            for (uint d = t; d < dims; d += WORKGROUP) {
                cache[element + d] = floatBitsToUint(ownKey[d]);
                cache[p.valueOffset + element + d] = floatBitsToUint(ownValue[d]);
            }
        }
    }
    float maximum = -1.0 / 0.0, total = 0;
    float sums[MAX_DIMENSIONS] = float[MAX_DIMENSIONS](0, 0, 0, 0);
    for (uint start = first; start <= last; start += WORKGROUP) {
        uint j = start + t;
        float score = -1.0 / 0.0;
        if (j <= last) {
            score = 0;
            uint key = slotBase + j * p.cacheWidth;
            bool ownKeyRow = own && j == position;
            for (uint d = 0; d < dims; d++) score += query[d] * (ownKeyRow ? ownKey[d] : cached(key + d));
            score *= p.scale;
        }
        float newMaximum = max(maximum, reduceMax(score));
        float correction = exp(maximum - newMaximum);
        float weight = j <= last ? exp(score - newMaximum) : 0;
        weights[t] = weight;
        total = total * correction + reduceSum(weight);  // reduceSum's barriers publish weights[]
        uint count = min(WORKGROUP, last + 1 - start);
        for (uint k = 0; k < MAX_DIMENSIONS; k++) {
            uint d = t + k * WORKGROUP;
            if (d >= dims) break;
            float sum = sums[k] * correction;
            for (uint i = 0; i < count; i++) {
                float value = own && start + i == position ? ownValue[d] : cached(p.valueOffset + slotBase + (start + i) * p.cacheWidth + d);
                sum += weights[i] * value;
            }
            sums[k] = sum;
        }
        maximum = newMaximum;
        barrier();
    }
    uint base = p.blockPositions == 0 ? token * p.queryWidth + head * dims : partialBase;
    for (uint k = 0; k < MAX_DIMENSIONS; k++) {
        uint d = t + k * WORKGROUP;
        if (d < dims) outputs[base + d] = sums[k] / total;
    }
    if (p.blockPositions != 0 && t == 0) {
        outputs[partialBase + dims] = maximum;
        outputs[partialBase + dims + 1] = total;
    }
}

void main() {
    attend();
#ifdef CHAINED
    quantizeWhenLast(p.counterBase + gl_WorkGroupID.y, p.counterTotal, p.quantize, gl_WorkGroupID.y, 1);
#endif
}
