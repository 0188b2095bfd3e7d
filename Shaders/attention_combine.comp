#version 450
// variant: attentionCombineChained -DCHAINED
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// A split decode's attention put together: each (head, token) from the partials attention.comp wrote for its blocks
// of `blockPositions` positions (a block's normalized weighted sums, then its maximum score m_b and its total t_b),
// as the CPU backend's combine_row does: factors f_b = t_b · e^(m_b − M) over their sum in block order, then
// f_0 · s_0 + f_1 · s_1 + … in block order. A row that sees one block gets that block's sums unchanged.
// CHAINED: the quantization of each token's row (chain.glsl) runs in the last of its heads' workgroups to finish.
layout(std430, binding = 0) readonly buffer Partials { float partials[]; };
layout(std430, binding = 2) readonly buffer Batch { int batch[]; };
#ifdef CHAINED
layout(std430, binding = 3) coherent buffer Output { float outputs[]; };
#define quantizeRows outputs
#define quantizeSecond outputs  // a quantization chained to attention has no prologue: never read
#include "chain.glsl"
layout(push_constant) uniform Push {
    uint queryWidth, heads, headDimension, positionBase, blockPositions, blockCount;
    QuantizeShape quantize;
    uint counterBase, counterTotal;
} p;
#else
layout(std430, binding = 3) writeonly buffer Output { float outputs[]; };
layout(push_constant) uniform Push { uint queryWidth, heads, headDimension, positionBase, blockPositions, blockCount; } p;
#endif

void combine() {
    uint head = gl_WorkGroupID.x, token = gl_WorkGroupID.y, dims = p.headDimension, stride = dims + 2;
    uint blocks = uint(batch[p.positionBase + token]) / p.blockPositions + 1;
    uint base = (token * p.heads + head) * p.blockCount * stride;
    float maximum = -1.0 / 0.0;
    for (uint b = 0; b < blocks; b++) maximum = max(maximum, partials[base + b * stride + dims]);
    precise float total = 0;
    for (uint b = 0; b < blocks; b++) {
        precise float factor = partials[base + b * stride + dims + 1] * exp(partials[base + b * stride + dims] - maximum);
        total = b == 0 ? factor : total + factor;
    }
    for (uint d = gl_LocalInvocationID.x; d < dims; d += WORKGROUP) {
        precise float sum = 0;
        for (uint b = 0; b < blocks; b++) {
            precise float factor = partials[base + b * stride + dims + 1] * exp(partials[base + b * stride + dims] - maximum) / total;
            sum = b == 0 ? factor * partials[base + b * stride + d] : sum + factor * partials[base + b * stride + d];
        }
        outputs[token * p.queryWidth + head * dims + d] = sum;
    }
}

void main() {
    combine();
#ifdef CHAINED
    quantizeWhenLast(p.counterBase + gl_WorkGroupID.y, p.counterTotal, p.quantize, gl_WorkGroupID.y, 1);
#endif
}
