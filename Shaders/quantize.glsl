// A row to int8 codes (BitNet's ActQuant), by one workgroup, after up to two ops the graph puts before it, fused
// with the floats they give alone (VulkanSteps.swift decides); quantize.comp runs it a workgroup a row, and the
// CHAINED variants of the shaders whose output it reads in their last workgroup to finish (chain.glsl):
//   1. the prologue: the row as it is (0); the residual add `row += addend`, written back (1); or a gated
//      activation f(row) · up, not written (2–4: relu², silu, gelu-tanh);
//   2. if `normalize`, RMSNorm as rms_norm.comp computes it: Σx² in PyTorch's order (sum_of_squares.glsl), then
//      w · (x · 1/sqrt(Σx²/n + ε));
//   3. absmax quantization: scale = 127 / max(|x|, 1e-5), codes round(x · scale) to even, clamped to
//      [-128, 127], four to a word, the row padded with zeros to `words` words; the scales follow the codes,
//      at word `scaleOffset`.
// The including shader declares the float buffers `quantizeRows` (coherent: the residual sum is read back) and
// `quantizeSecond` (the addend or `up`), `normWeights`, and the uint buffer `quantizeCodes`, then sets `shape`.
QuantizeShape shape;

shared float quantizePartial[WORKGROUP];
#ifdef SUBGROUPS
shared uint quantizePartialBits[WORKGROUP];
#endif
shared float quantizeTotal;

int code(float scaled) {
    if (isnan(scaled)) return 0;
    return int(clamp(roundEven(scaled), -128.0, 127.0));
}

/// Column `i` of the row after the prologue (a residual sum is in memory by then).
float rowValue(uint base, uint i) {
    return shape.prologue >= 2 ? gatedActivation(shape.prologue - 1, quantizeRows[base + i], quantizeSecond[base + i]) : quantizeRows[base + i];
}
#include "sum_of_squares.glsl"

/// Quantizes row `row`; every invocation of the workgroup calls it together. Ends with a barrier, so the
/// workgroup may go on to another row.
void quantizeRow(uint row) {
    uint t = gl_LocalInvocationID.x, base = row * shape.columns;
    if (shape.prologue == 1) {
        for (uint i = t; i < shape.columns; i += WORKGROUP) {
            precise float sum = quantizeRows[base + i] + quantizeSecond[base + i];
            quantizeRows[base + i] = sum;
        }
        memoryBarrierBuffer();
        barrier();
    }
    float normScale = 1.0;
    if (shape.normalize != 0) {
        float sum = sumOfSquares(base, shape.columns);
        if (t == 0) quantizeTotal = sum;
        barrier();
        normScale = rmsScale(quantizeTotal, shape.columns, shape.epsilon);
    }

    float maximum = 0;
    for (uint i = t; i < shape.columns; i += WORKGROUP) {
        precise float x = shape.normalize != 0 ? normWeights[i] * (rowValue(base, i) * normScale) : rowValue(base, i);
        maximum = maxPropagatingNaN(maximum, abs(x));
    }
#ifdef SUBGROUPS
    // The bits of a magnitude order as its value does, and a NaN's above +∞: an integer maximum, exact in any order.
    uint bits = subgroupMax(floatBitsToUint(abs(maximum)));
    if (subgroupElect()) quantizePartialBits[gl_SubgroupID] = bits;
    barrier();
    if (gl_SubgroupID == 0) {
        bits = 0;
        for (uint i = gl_SubgroupInvocationID; i < gl_NumSubgroups; i += gl_SubgroupSize) bits = max(bits, quantizePartialBits[i]);
        bits = subgroupMax(bits);
        if (subgroupElect()) quantizePartial[0] = uintBitsToFloat(bits);
    }
    barrier();
#else
    quantizePartial[t] = maximum;
    barrier();
    for (uint stride = WORKGROUP / 2; stride > 0; stride /= 2) {
        if (t < stride) quantizePartial[t] = maxPropagatingNaN(quantizePartial[t], quantizePartial[t + stride]);
        barrier();
    }
#endif
    float clamped = isnan(quantizePartial[0]) ? quantizePartial[0] : max(quantizePartial[0], 1e-5);
    float scale = (1.0 / clamped) * 127.0;
    for (uint w = t; w < shape.words; w += WORKGROUP) {
        uint packed = 0;
        for (uint k = 0; k < 4; k++) {
            uint column = 4 * w + k;
            if (column >= shape.columns) break;
            precise float x = shape.normalize != 0 ? normWeights[column] * (rowValue(base, column) * normScale) : rowValue(base, column);
            packed |= uint(code(x * scale) & 0xFF) << (8 * k);
        }
        quantizeCodes[row * shape.words + w] = packed;
    }
    if (t == 0) quantizeCodes[shape.scaleOffset + row] = floatBitsToUint(scale);
    barrier();  // quantizePartial[0] and quantizeTotal are read by every invocation above
}
