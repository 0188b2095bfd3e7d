#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// x · rsqrt(mean(x²) + ε) · w, one workgroup per row, Σx² in PyTorch's order (sum_of_squares.glsl): the CPU backend
// adds in the same order, so both give transformers' floats, and the int8 codes quantized from them next agree.
layout(std430, binding = 0) readonly buffer Input { float inputs[]; };
layout(std430, binding = 1) readonly buffer Weight { float weight[]; };
layout(std430, binding = 2) writeonly buffer Output { float outputs[]; };
layout(push_constant) uniform Push { uint columns; float epsilon; } p;
shared float total;

float rowValue(uint base, uint i) { return inputs[base + i]; }
#include "sum_of_squares.glsl"

void main() {
    uint row = flatGroup(), t = gl_LocalInvocationID.x, base = row * p.columns;
    float sum = sumOfSquares(base, p.columns);
    if (t == 0) total = sum;
    barrier();
    float scale = rmsScale(total, p.columns, p.epsilon);
    for (uint i = t; i < p.columns; i += WORKGROUP) {
        precise float normalized = weight[i] * (inputs[base + i] * scale);
        outputs[base + i] = normalized;
    }
}
