#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// Per-row absmax int8 quantization (BitNet's ActQuant): scale = 127 / max(|x|, 1e-5), codes round(x · scale)
// to even, clamped to [-128, 127], four to a word; the row padded with zeros to `words` words. The scales
// follow the codes, at word `scaleOffset`.
layout(std430, binding = 0) readonly buffer Input { float inputs[]; };
layout(std430, binding = 1) writeonly buffer Output { uint outputs[]; };
layout(push_constant) uniform Push { uint columns, words, scaleOffset; } p;
shared float partial[WORKGROUP];

int code(float scaled) {
    if (isnan(scaled)) return 0;
    return int(clamp(roundEven(scaled), -128.0, 127.0));
}

void main() {
    uint row = flatGroup(), t = gl_LocalInvocationID.x, base = row * p.columns;
    float maximum = 0;
    for (uint i = t; i < p.columns; i += WORKGROUP) maximum = maxPropagatingNaN(maximum, abs(inputs[base + i]));
    partial[t] = maximum;
    barrier();
    for (uint stride = WORKGROUP / 2; stride > 0; stride /= 2) {
        if (t < stride) partial[t] = maxPropagatingNaN(partial[t], partial[t + stride]);
        barrier();
    }
    float clamped = isnan(partial[0]) ? partial[0] : max(partial[0], 1e-5);
    float scale = (1.0 / clamped) * 127.0;
    for (uint w = t; w < p.words; w += WORKGROUP) {
        uint packed = 0;
        for (uint k = 0; k < 4; k++) {
            uint column = 4 * w + k;
            int value = column < p.columns ? code(inputs[base + column] * scale) : 0;
            packed |= uint(value & 0xFF) << (8 * k);
        }
        outputs[row * p.words + w] = packed;
    }
    if (t == 0) outputs[p.scaleOffset + row] = floatBitsToUint(scale);
}
