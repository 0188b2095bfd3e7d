#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// x · rsqrt(mean(x²) + ε) · w, one workgroup per row.
//
// Σx² is added by one invocation in column order, without contraction, as the CPU backend adds it: the
// normalized values are quantized to int8 next, and a sum one ulp away can move a code by one step, which moves
// the logits by 1e-3 to 1e-2 on small models. (A parallel tree order, also taken on the CPU, broke the CPU's
// agreement with transformers to 1e-6 on a fixture: PyTorch's order is closer to the sequential one there.)
layout(std430, binding = 0) readonly buffer Input { float inputs[]; };
layout(std430, binding = 1) readonly buffer Weight { float weight[]; };
layout(std430, binding = 2) writeonly buffer Output { float outputs[]; };
layout(push_constant) uniform Push { uint columns; float epsilon; } p;
shared float total;

void main() {
    uint row = flatGroup(), t = gl_LocalInvocationID.x, base = row * p.columns;
    if (t == 0) {
        precise float sum = 0;
        for (uint i = 0; i < p.columns; i++) {
            precise float square = inputs[base + i] * inputs[base + i];
            sum += square;
        }
        total = sum;
    }
    barrier();
    float scale = rmsScale(total, p.columns, p.epsilon);
    for (uint i = t; i < p.columns; i += WORKGROUP) {
        precise float normalized = weight[i] * (inputs[base + i] * scale);
        outputs[base + i] = normalized;
    }
}
