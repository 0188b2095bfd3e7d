#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// Stores each token's key and value at its slot and position of one layer's cache: keys, then values from
// element `valueOffset`; f32, or f16 two to a word.
layout(std430, binding = 0) readonly buffer Keys { float keys[]; };
layout(std430, binding = 1) readonly buffer Values { float values[]; };
layout(std430, binding = 2) readonly buffer Batch { int batch[]; };
layout(std430, binding = 3) writeonly buffer Cache { uint cache[]; };
layout(push_constant) uniform Push { uint width, capacity, valueOffset, half_, tokens, positionBase, slotBase; } p;

void main() {
    uint index = flatIndex(), perWord = p.half_ != 0 ? 2 : 1, words = p.width / perWord;
    if (index >= p.tokens * words) return;
    uint token = index / words, d = (index % words) * perWord;
    uint slot = uint(batch[p.slotBase + token]), position = uint(batch[p.positionBase + token]);
    uint element = (slot * p.capacity + position) * p.width + d, source = token * p.width + d;
    if (p.half_ != 0) {
        cache[element / 2] = packHalf2x16(vec2(keys[source], keys[source + 1]));
        cache[(p.valueOffset + element) / 2] = packHalf2x16(vec2(values[source], values[source + 1]));
    } else {
        cache[element] = floatBitsToUint(keys[source]);
        cache[p.valueOffset + element] = floatBitsToUint(values[source]);
    }
}
