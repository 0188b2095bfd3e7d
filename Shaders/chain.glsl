// A row-quantize step run by the last workgroup of the dispatches whose output it reads (the CHAINED variants of
// bitlinear.comp, attention.comp and attention_combine.comp), as CUDA's threadfence reduction finishes a sum: each
// workgroup makes its writes visible device-wide, then counts itself with an atomic add; the one that brings the
// count to the total reads every output through `coherent` bindings, quantizes and sets the count back to 0 for the
// next pass. The including shader declares the `coherent` float buffers `quantizeRows` and `quantizeSecond` first
// (quantize.glsl); the norm's weights, the codes and the counters take bindings 7–9 in every shader.
layout(std430, binding = 7) readonly buffer NormWeight { float normWeights[]; };
layout(std430, binding = 8) writeonly buffer Codes { uint quantizeCodes[]; };
layout(std430, binding = 9) coherent buffer Counters { uint counters[]; };
#include "quantize.glsl"
shared bool isLastToFinish;

/// Every invocation calls it after its writes: counts the workgroup at `counters[counter]`; the workgroup that brings
/// the count to `total` quantizes rows `first` … `first + count - 1` as `quantize` says.
void quantizeWhenLast(uint counter, uint total, QuantizeShape quantize, uint first, uint count) {
    memoryBarrierBuffer();
    barrier();
    if (gl_LocalInvocationID.x == 0) isLastToFinish = atomicAdd(counters[counter], 1) == total - 1;
    barrier();
    if (isLastToFinish) {
        memoryBarrierBuffer();
        shape = quantize;
        for (uint k = 0; k < count; k++) quantizeRow(first + k);
        if (gl_LocalInvocationID.x == 0) counters[counter] = 0;
    }
}
