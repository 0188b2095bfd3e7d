// What both attention shaders read: the queries (rotated as they are read when `rotaryHalf` > 0, as kv_store.comp
// rotates the keys), one layer's cache (keys, then values from element `valueOffset`; f32, or f16 two to a word;
// attention.comp writes it when it `stores` the pass's keys and values itself), the per-pass token, position and slot
// arrays, and the rotary table.
layout(std430, binding = 0) readonly buffer Queries { float queries[]; };
layout(std430, binding = 1) buffer Cache { uint cache[]; };
layout(std430, binding = 2) readonly buffer Batch { int batch[]; };
#ifdef CHAINED
layout(std430, binding = 3) coherent buffer Output { float outputs[]; };
#else
layout(std430, binding = 3) writeonly buffer Output { float outputs[]; };
#endif
layout(std430, binding = 4) readonly buffer Table { float table[]; };
layout(push_constant) uniform Push {
    uint queryWidth, cacheWidth, heads, keyValueHeads, headDimension, capacity, valueOffset, half_;
    float scale;
    uint positionBase, slotBase, rotaryHalf, interleaved, tokens, blockPositions, stores;
#ifdef CHAINED
    QuantizeShape quantize;  // of the output row, once every head of the token is written (chain.glsl)
    uint counterBase, counterTotal;
#endif
} p;
#include "rotary.glsl"

float cached(uint element) {
    return p.half_ != 0 ? unpackHalf2x16(cache[element >> 1] >> (16 * (element & 1))).x : uintBitsToFloat(cache[element]);
}

/// Element `d` of the query of `head` for `token` at `position`.
float queryElement(uint token, uint head, uint position, uint d) {
    return ROTATED_ELEMENT(queries, token * p.queryWidth + head * p.headDimension, d, position);
}
