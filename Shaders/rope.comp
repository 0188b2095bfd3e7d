#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// Rotary embedding in place, at each token's position; cos and sin come from a table the host computes
// once per cache (position × pair, cosine then sine), in float32 as the CPU backend computes them.
layout(std430, binding = 0) buffer Vectors { float vectors[]; };
layout(std430, binding = 1) readonly buffer Batch { int batch[]; };
layout(std430, binding = 2) readonly buffer Table { float table[]; };
layout(push_constant) uniform Push { uint width, heads, half_, interleaved, tokens, positionBase; } p;

void main() {
    uint index = flatIndex();
    if (index >= p.tokens * p.heads * p.half_) return;
    uint token = index / (p.heads * p.half_), head = (index / p.half_) % p.heads, pair = index % p.half_;
    uint position = uint(batch[p.positionBase + token]);
    float cosine = table[2 * (position * p.half_ + pair)], sine = table[2 * (position * p.half_ + pair) + 1];
    uint base = token * p.width + head * 2 * p.half_;
    uint first = p.interleaved != 0 ? base + 2 * pair : base + pair;
    uint second = p.interleaved != 0 ? first + 1 : first + p.half_;
    float x = vectors[first], y = vectors[second];
    precise float rotatedFirst = x * cosine - y * sine, rotatedSecond = y * cosine + x * sine;  // rotary.glsl's floats
    vectors[first] = rotatedFirst;
    vectors[second] = rotatedSecond;
}
