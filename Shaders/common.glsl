// Shared by every shader: the workgroup size as specialization constant 0 (the one pipeline layout's), and
// the index helpers. Each shader is compiled on its own, with this file included. A shader's SUBGROUPS variant
// reduces across its workgroup with subgroup operations (devices with subgroup arithmetic in compute shaders).
#ifdef SUBGROUPS
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#endif
layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WORKGROUP = 64;

/// A row-quantize step's push constants (quantize.glsl): columns, words a row, the word where the scales start, the
/// prologue (0 none, 1 residual, 2–4 gated), whether it normalizes first, and the norm's ε.
struct QuantizeShape { uint columns, words, scaleOffset, prologue, normalize; float epsilon; };

/// The element an invocation of a flattened 2-D grid handles (grids wider than 65,535 workgroups wrap into y).
uint flatIndex() { return gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * WORKGROUP; }

/// A row whose workgroup index was split over x and y for the same reason.
uint flatGroup() { return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x; }

/// NaN-propagating maximum (GLSL's max leaves NaN undefined; PyTorch's propagates it).
float maxPropagatingNaN(float a, float b) { return isnan(a) || isnan(b) ? a + b : max(a, b); }

/// `f(x) · up` for the gated activations: 1 relu², 2 silu, 3 gelu-tanh (the CPU backend's formulas, uncontracted).
float gatedActivation(uint activation, float x, float up) {
    precise float result;
    switch (activation) {
    case 1: { float r = max(x, 0.0); result = r * r * up; break; }
    case 2: result = x / (1.0 + exp(-x)) * up; break;
    default: result = 0.5 * x * (1.0 + tanh(0.7978846 * (x + 0.044715 * x * x * x))) * up; break;
    }
    return result;
}

/// RMSNorm's `1 / sqrt(Σx² / n + ε)`, rounded as the CPU backend rounds it.
float rmsScale(float sumOfSquares, uint columns, float epsilon) {
    precise float scale = 1.0 / sqrt(sumOfSquares / float(columns) + epsilon);
    return scale;
}
