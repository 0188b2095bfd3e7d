// A row-quantize step run by the last workgroup of the dispatches whose output it reads (the CHAINED variants of
// bitlinear.comp, attention.comp and attention_combine.comp), as CUDA's threadfence reduction finishes a sum: each
// workgroup releases its writes at device scope and counts itself with an atomic add; the one that brings the count
// to the total acquires, reads every output through `coherent` bindings, quantizes and sets the count back to 0 for
// the next pass. The including shader declares the `coherent` float buffers `quantizeRows` and `quantizeSecond` first
// (quantize.glsl); the norm's weights, the codes and the counters take bindings 7–9 in every shader.
//
// The codes may be the very buffer the dispatch read its input codes from (int8 buffers are shared by width: the O
// projection reads the attention output's codes and its chain writes the feed-forward input's). That holds because a
// counter covers whole rows: the last workgroup writes only rows its counter counts, every workgroup that reads
// those rows has counted itself after reading them, and nothing reads input codes after quantizeWhenLast.
#extension GL_KHR_memory_scope_semantics : require
layout(std430, binding = 7) readonly buffer NormWeight { float normWeights[]; };
layout(std430, binding = 8) writeonly buffer Codes { uint quantizeCodes[]; };
layout(std430, binding = 9) coherent buffer Counters { uint counters[]; };
#include "quantize.glsl"
shared bool isLastToFinish;

/// Every invocation calls it after its writes: counts the workgroup at `counters[counter]`; the workgroup that brings
/// the count to `total` quantizes rows `first` … `first + count - 1` as `quantize` says.
void quantizeWhenLast(uint counter, uint total, QuantizeShape quantize, uint first, uint count) {
    // Every invocation's writes released at device scope before invocation 0 counts; its count acquires the others'.
    controlBarrier(gl_ScopeWorkgroup, gl_ScopeDevice, gl_StorageSemanticsBuffer | gl_StorageSemanticsShared, gl_SemanticsAcquireRelease);
    if (gl_LocalInvocationID.x == 0) {
        isLastToFinish = atomicAdd(counters[counter], 1, gl_ScopeDevice, gl_StorageSemanticsBuffer, gl_SemanticsAcquireRelease) == total - 1;
    }
    controlBarrier(gl_ScopeWorkgroup, gl_ScopeDevice, gl_StorageSemanticsBuffer | gl_StorageSemanticsShared, gl_SemanticsAcquireRelease);
    if (isLastToFinish) {
        shape = quantize;
        for (uint k = 0; k < count; k++) quantizeRow(first + k);
        if (gl_LocalInvocationID.x == 0) counters[counter] = 0;
    }
}
