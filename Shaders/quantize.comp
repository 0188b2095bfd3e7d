#version 450
// variant: quantizeSubgroups -DSUBGROUPS
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// The row-quantize step (quantize.glsl), one workgroup a row.
layout(std430, binding = 0) coherent buffer Row { float quantizeRows[]; };
layout(std430, binding = 1) readonly buffer Weight { float normWeights[]; };
layout(std430, binding = 2) writeonly buffer Output { uint quantizeCodes[]; };
layout(std430, binding = 3) readonly buffer Second { float quantizeSecond[]; };
#include "quantize.glsl"
layout(push_constant) uniform Push { QuantizeShape shape; } p;

void main() {
    shape = p.shape;
    quantizeRow(flatGroup());
}
