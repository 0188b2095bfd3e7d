import Foundation

/// An activation of the forward pass: `width` values for each row of its domain.
public struct ActivationID: Hashable, Sendable {
    public let index: Int
    public init(index: Int) { self.index = index }
}

/// A weight tensor of ``ForwardGraph/weights``.
public struct WeightID: Hashable, Sendable {
    public let index: Int
    public init(index: Int) { self.index = index }
}

/// Which rows an activation has.
public enum RowDomain: Sendable, Hashable {
    /// One row per token of the batch.
    case tokens
    /// One row per token whose logits the batch asks for (``ForwardOp/selectOutputs(input:output:)``).
    case outputs
    /// One row per sequence of the batch (pooled embeddings).
    case sequences
}

/// A buffer a backend allocates for an activation.
public struct ActivationBuffer: Sendable, Hashable {
    public enum Element: Sendable, Hashable {
        case float32
        /// int8 values with one float32 scale per row (per-token absmax quantization).
        case int8
    }

    public var name: String
    public var width: Int
    public var rows: RowDomain
    public var element: Element

    public init(name: String, width: Int, rows: RowDomain, element: Element) {
        self.name = name
        self.width = width
        self.rows = rows
        self.element = element
    }
}

/// The input of a BitLinear layer, where activations are quantized (what calibration observes).
public enum ActivationSite: String, Sendable, CaseIterable {
    /// The normalized hidden state read by the Q, K and V projections.
    case attentionInput = "attn_qkv"
    /// The attention output read by the output projection.
    case attentionOutput = "attn_output"
    /// The normalized hidden state read by the gate and up projections.
    case feedForwardInput = "ffn_gate_up"
    /// The gated hidden state read by the down projection.
    case feedForwardHidden = "ffn_down"
}

/// The gated activation of a feed-forward block: `f(gate) · up`.
public enum GatedActivation: String, Sendable, Hashable {
    /// `max(gate, 0)² · up` (BitNet b1.58 2B-4T).
    case squaredReLU = "relu2"
    /// `gate · σ(gate) · up`.
    case silu
    /// `gelu(gate) · up` (tanh approximation).
    case gelu
}

/// How rotary embeddings pair dimensions.
public enum RotaryLayout: Sendable, Hashable {
    /// Dimension i pairs with i + d/2 (`rotate_half`, NeoX): Hugging Face weights and llama.cpp's `bitnet`.
    case halves
    /// Dimension 2i pairs with 2i + 1: LLaMA-arch GGUF files, whose converter permuted the Q/K rows.
    case interleaved
}

/// Rotary position embedding parameters.
public struct RotaryEmbedding: Sendable, Hashable {
    public var dimension: Int
    public var theta: Float
    public var layout: RotaryLayout

    /// `1 / θ^(2i/d)` in float32, as transformers computes them.
    public var inverseFrequencies: [Float] {
        stride(from: 0, to: dimension, by: 2).map { 1 / powf(theta, Float($0) / Float(dimension)) }
    }
}

/// Causal attention of new queries over a layer's KV cache.
public struct AttentionOp: Sendable, Hashable {
    public var query: ActivationID
    public var key: ActivationID
    public var value: ActivationID
    public var output: ActivationID
    /// The cache layer the keys and values are stored in and read from.
    public var layer: Int
    public var heads: Int
    public var keyValueHeads: Int
    public var headDimension: Int
}

/// One step of the forward pass. Ops read and write activations of every row of their domain; a batch
/// may hold tokens of several sequences, each with its own positions and cache slot.
public enum ForwardOp: Sendable, Hashable {
    /// The rows of an embedding table for the batch's tokens.
    case embed(table: WeightID, output: ActivationID)
    /// `x · rsqrt(mean(x²) + ε) · w` per row, in float32 as transformers' RMSNorm.
    case rmsNorm(input: ActivationID, weight: WeightID, epsilon: Float, output: ActivationID)
    /// Per-row absmax int8 quantization of a BitLinear input (`ActQuant`): once per input, shared by
    /// the projections that read it.
    case quantize(input: ActivationID, output: ActivationID, site: ActivationSite, layer: Int)
    /// A BitLinear projection: int8 input × ternary weights, integer accumulation, one rescale.
    case bitLinear(input: ActivationID, weight: WeightID, output: ActivationID)
    /// Rotary position embedding of `heads` heads in place, at each token's position.
    case rope(ActivationID, heads: Int, RotaryEmbedding)
    /// Stores each token's key and value in its sequence's cache slot, then attends causally.
    case attention(AttentionOp)
    /// `output = f(gate) · up`.
    case gatedActivation(GatedActivation, gate: ActivationID, up: ActivationID, output: ActivationID)
    /// `accumulator += input` (the residual stream).
    case add(ActivationID, into: ActivationID)
    /// Copies the rows of the tokens whose logits are wanted, in batch order.
    case selectOutputs(input: ActivationID, output: ActivationID)
    /// A float matrix product with a weight of `rows × columns`: the output projection.
    case project(input: ActivationID, weight: WeightID, output: ActivationID)
    /// One row per sequence of the batch: the mean of its tokens' rows in this batch, or its last token's
    /// row (embedding models, which run each sequence whole in one batch).
    case pool(Pooling, input: ActivationID, output: ActivationID)
}

extension ForwardOp {
    /// The activations the op reads (an in-place op's buffer included).
    public var activationsRead: [ActivationID] {
        switch self {
        case .embed: []
        case .rmsNorm(let input, _, _, _), .quantize(let input, _, _, _), .bitLinear(let input, _, _), .selectOutputs(let input, _),
             .project(let input, _, _), .pool(_, let input, _): [input]
        case .rope(let buffer, _, _): [buffer]
        case .attention(let attention): [attention.query, attention.key, attention.value]
        case .gatedActivation(_, let gate, let up, _): [gate, up]
        case .add(let input, let accumulator): [input, accumulator]
        }
    }

    /// The activations the op writes.
    public var activationsWritten: [ActivationID] {
        switch self {
        case .embed(_, let output), .rmsNorm(_, _, _, let output), .quantize(_, let output, _, _), .bitLinear(_, _, let output),
             .gatedActivation(_, _, _, let output), .selectOutputs(_, let output), .project(_, _, let output), .pool(_, _, let output): [output]
        case .rope(let buffer, _, _): [buffer]
        case .attention(let attention): [attention.output]
        case .add(_, let accumulator): [accumulator]
        }
    }
}

extension ForwardGraph {
    /// Whether no op after `index` reads what `buffer` holds then: the next op to touch it overwrites it without
    /// reading it, or none does and it is not the logits. A backend that fuses ops may then skip writing it.
    public func isDead(_ buffer: ActivationID, after index: Int) -> Bool {
        for op in ops[(index + 1)...] {
            if op.activationsRead.contains(buffer) { return false }
            if op.activationsWritten.contains(buffer) { return true }
        }
        return buffer != logits
    }
}

/// How ``ForwardOp/pool(_:input:output:)`` reduces a sequence's rows.
public enum Pooling: Sendable, Hashable { case mean, last }

/// The forward pass of a model as data: the weights, the activation buffers and the ops in order.
/// Written once per architecture; a backend executes it (CPU) or records it (GPU).
public struct ForwardGraph: Sendable {
    public var configuration: ModelConfiguration
    public var weights: [WeightTensor]
    public var buffers: [ActivationBuffer]
    public var ops: [ForwardOp]
    /// The logits: one row of `vocabularySize` per token that asked for them.
    public var logits: ActivationID

    public init(configuration: ModelConfiguration, weights: [WeightTensor], buffers: [ActivationBuffer], ops: [ForwardOp], logits: ActivationID) {
        self.configuration = configuration
        self.weights = weights
        self.buffers = buffers
        self.ops = ops
        self.logits = logits
    }

    /// Cache layers and the width of one position's keys (or values) in a layer.
    public var cacheShape: (layers: Int, width: Int) { (configuration.layerCount, configuration.keyValueDimension) }

    public subscript(_ weight: WeightID) -> WeightTensor { weights[weight.index] }
    public subscript(_ buffer: ActivationID) -> ActivationBuffer { buffers[buffer.index] }
}

/// How an op reads a weight, which decides the form a backend keeps it in.
public enum WeightUse: Sendable {
    /// A norm's float32 vector (one row).
    case vector
    /// A BitLinear projection's ternary matrix.
    case ternary
    /// A float matrix (F32, F16, BF16, Q8_0, Q6_K): an embedding table or the output projection.
    case matrix
}

extension ForwardGraph {
    /// Each weight in the form a backend makes of it, by its first use; throws when a weight does not suit
    /// the op that reads it (a norm that is not one float32 row, a BitLinear weight that is not ternary, …),
    /// when `make` returns nil, or when no op reads it.
    public func mapWeights<BackendWeight>(_ make: (WeightTensor, WeightUse) throws -> BackendWeight?) throws -> [BackendWeight] {
        var mapped = [BackendWeight?](repeating: nil, count: weights.count)
        for op in ops {
            let (id, use): (WeightID, WeightUse)
            switch op {
            case .rmsNorm(_, let weight, _, _): (id, use) = (weight, .vector)
            case .bitLinear(_, let weight, _): (id, use) = (weight, .ternary)
            case .embed(let weight, _), .project(_, let weight, _): (id, use) = (weight, .matrix)
            default: continue
            }
            guard mapped[id.index] == nil else { continue }
            let tensor = self[id]
            let suits = switch use {
            case .vector: tensor.encoding == .f32 && tensor.rows == 1
            case .ternary: tensor.encoding.isTernary
            case .matrix: !tensor.encoding.isTernary
            }
            guard suits, let weight = try make(tensor, use) else {
                throw ModelError(.invalidModel, "tensor '\(tensor.name)' (\(tensor.encoding), \(tensor.rows)×\(tensor.columns)) does not suit the op that reads it")
            }
            mapped[id.index] = weight
        }
        return try mapped.enumerated().map { index, weight in
            guard let weight else { throw ModelError(.invalidModel, "tensor '\(weights[index].name)' is read by no op") }
            return weight
        }
    }
}
