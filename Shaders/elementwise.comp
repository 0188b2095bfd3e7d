#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// Element-wise ops over `count` values: 0 residual add (b += a), 1–3 gated activations (out = f(a) · b with
// f = relu², silu, gelu-tanh), 4 row gather (out row o = a's row batch[rowBase + o], `width` wide).
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer Output { float outputs[]; };
layout(std430, binding = 3) readonly buffer Batch { int batch[]; };
layout(push_constant) uniform Push { uint count, op, width, rowBase; } p;

void main() {
    uint i = flatIndex();
    if (i >= p.count) return;
    switch (p.op) {
    case 0: b[i] += a[i]; break;
    case 1: case 2: case 3: outputs[i] = gatedActivation(p.op, a[i], b[i]); break;
    default: outputs[i] = a[uint(batch[p.rowBase + i / p.width]) * p.width + i % p.width]; break;
    }
}
