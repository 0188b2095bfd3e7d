import Foundation

/// Builds a ``ForwardGraph``: architectures call it to name weights by role (loaded from the
/// ``WeightSource`` once, however often they are used) and to append ops. Activation buffers are named;
/// asking for a name again returns the same buffer, so every block reuses the same few.
public struct GraphBuilder {
    public let configuration: ModelConfiguration
    let source: WeightSource
    private var weights: [WeightTensor] = []
    private var weightIDs: [String: WeightID] = [:]
    private var buffers: [ActivationBuffer] = []
    private var bufferIDs: [String: ActivationID] = [:]
    private var ops: [ForwardOp] = []

    init(configuration: ModelConfiguration, source: WeightSource) {
        self.configuration = configuration
        self.source = source
    }

    /// The weight of `role` (in block `layer` for per-layer roles).
    public mutating func weight(_ role: TensorRole, layer: Int = 0) throws -> WeightID {
        let name = source.name(of: role, layer: layer)
        if let id = weightIDs[name] { return id }
        let id = WeightID(index: weights.count)
        weights.append(try source.weight(role, layer: layer))
        weightIDs[name] = id
        return id
    }

    /// The activation buffer called `name`, created on first use.
    public mutating func buffer(_ name: String, width: Int, rows: RowDomain = .tokens, element: ActivationBuffer.Element = .float32) -> ActivationID {
        if let id = bufferIDs[name] {
            precondition(buffers[id.index] == ActivationBuffer(name: name, width: width, rows: rows, element: element),
                         "buffer '\(name)' reused with another shape")
            return id
        }
        let id = ActivationID(index: buffers.count)
        buffers.append(ActivationBuffer(name: name, width: width, rows: rows, element: element))
        bufferIDs[name] = id
        return id
    }

    public mutating func append(_ op: ForwardOp) { ops.append(op) }

    func finish(logits: ActivationID) -> ForwardGraph {
        ForwardGraph(configuration: configuration, weights: weights, buffers: buffers, ops: ops, logits: logits)
    }

    // MARK: - Ops that create their output

    public func width(of buffer: ActivationID) -> Int { buffers[buffer.index].width }

    /// RMSNorm of `input` with the weight of `role`, into the buffer `name`.
    public mutating func rmsNorm(_ input: ActivationID, _ role: TensorRole, layer: Int = 0, into name: String, rows: RowDomain = .tokens) throws -> ActivationID {
        let output = buffer(name, width: width(of: input), rows: rows)
        append(.rmsNorm(input: input, weight: try weight(role, layer: layer), epsilon: configuration.rmsNormEpsilon, output: output))
        return output
    }

    /// The int8 form of a BitLinear input.
    public mutating func quantize(_ input: ActivationID, site: ActivationSite, layer: Int) -> ActivationID {
        let output = buffer("int8 \(width(of: input))", width: width(of: input), element: .int8)
        append(.quantize(input: input, output: output, site: site, layer: layer))
        return output
    }

    /// The BitLinear projection of `role` applied to a quantized input, into the buffer `name`.
    public mutating func bitLinear(_ input: ActivationID, _ role: TensorRole, layer: Int, into name: String) throws -> ActivationID {
        let output = buffer(name, width: role.shape(configuration).rows)
        append(.bitLinear(input: input, weight: try weight(role, layer: layer), output: output))
        return output
    }

    /// The model's rotary embedding.
    public var rotaryEmbedding: RotaryEmbedding {
        RotaryEmbedding(dimension: configuration.headDimension, theta: configuration.ropeTheta, layout: configuration.rotaryLayout)
    }
}
