#version 450
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
// Greedy decoding where the logits are: for each row of logits, the index of its largest value (the lowest index
// among equal ones, as the host's LogitRows.greedyToken), and the first non-finite logit if there is one. One
// workgroup per row (WORKGROUP a power of two); the host reads back three words a row instead of the vocabulary.
layout(std430, binding = 0) readonly buffer Logits { float logits[]; };
// Per row: the token, the index of the first non-finite logit (0xFFFFFFFF: none) and that logit's bits.
layout(std430, binding = 1) writeonly buffer Choices { uint choices[]; };
layout(push_constant) uniform Push { uint vocabulary, rows; } p;
const uint NONE = 0xFFFFFFFFu;
shared float bestValues[WORKGROUP];
shared uint bestIndices[WORKGROUP];
shared uint firstBad[WORKGROUP];

void main() {
    uint row = flatGroup(), t = gl_LocalInvocationID.x;
    if (row >= p.rows) return;
    uint base = row * p.vocabulary;
    // -∞ with no index loses to any finite value; the columns come in ascending order, so `>` keeps the lowest.
    float best = uintBitsToFloat(0xFF800000u);
    uint bestIndex = NONE, bad = NONE;
    for (uint c = t; c < p.vocabulary; c += WORKGROUP) {
        float value = logits[base + c];
        if (isnan(value) || isinf(value)) bad = min(bad, c);
        else if (value > best) { best = value; bestIndex = c; }
    }
    bestValues[t] = best;
    bestIndices[t] = bestIndex;
    firstBad[t] = bad;
    barrier();
    for (uint stride = WORKGROUP / 2; stride > 0; stride /= 2) {
        if (t < stride) {
            float other = bestValues[t + stride];
            uint otherIndex = bestIndices[t + stride];
            if (other > bestValues[t] || (other == bestValues[t] && otherIndex < bestIndices[t])) {
                bestValues[t] = other;
                bestIndices[t] = otherIndex;
            }
            firstBad[t] = min(firstBad[t], firstBad[t + stride]);
        }
        barrier();
    }
    if (t == 0) {
        choices[3 * row] = bestIndices[0];
        choices[3 * row + 1] = firstBad[0];
        choices[3 * row + 2] = firstBad[0] == NONE ? 0u : floatBitsToUint(logits[base + firstBad[0]]);
    }
}
