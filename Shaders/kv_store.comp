#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// Stores each token's key and value at its slot and position of one layer's cache: keys, then values from
// element `valueOffset`; f32, or f16 two to a word. With `rotaryHalf` > 0 the keys are rotated first, as rope.comp
// rotates them (the table, pairs and floats are its own), so a pass needs no RoPE dispatch of its own for them.
layout(std430, binding = 0) readonly buffer Keys { float keys[]; };
layout(std430, binding = 1) readonly buffer Values { float values[]; };
layout(std430, binding = 2) readonly buffer Batch { int batch[]; };
layout(std430, binding = 3) writeonly buffer Cache { uint cache[]; };
layout(std430, binding = 4) readonly buffer Table { float table[]; };
layout(push_constant) uniform Push { uint width, capacity, valueOffset, half_, tokens, positionBase, slotBase, rotaryHalf, interleaved; } p;
#include "rotary.glsl"

float key(uint token, uint position, uint d) {
    uint i = p.rotaryHalf == 0 ? 0 : d % (2 * p.rotaryHalf);  // `d` within its head (the rotary dimension is the head's)
    return ROTATED_ELEMENT(keys, token * p.width + d - i, i, position);
}

void main() {
    uint index = flatIndex(), perWord = p.half_ != 0 ? 2 : 1, words = p.width / perWord;
    if (index >= p.tokens * words) return;
    uint token = index / words, d = (index % words) * perWord;
    uint slot = uint(batch[p.slotBase + token]), position = uint(batch[p.positionBase + token]);
    uint element = (slot * p.capacity + position) * p.width + d, source = token * p.width + d;
    if (p.half_ != 0) {
        cache[element / 2] = packHalf2x16(vec2(key(token, position, d), key(token, position, d + 1)));
        cache[(p.valueOffset + element) / 2] = packHalf2x16(vec2(values[source], values[source + 1]));
    } else {
        cache[element] = floatBitsToUint(key(token, position, d));
        cache[p.valueOffset + element] = floatBitsToUint(values[source]);
    }
}
