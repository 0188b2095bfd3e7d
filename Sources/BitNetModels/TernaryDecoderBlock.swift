/// The decoder block of the LLaMA skeleton with BitLinear projections, the one the BitNet families
/// share: pre-norm attention with RoPE and grouped-query attention, pre-norm gated feed-forward, each
/// added to the residual stream; optionally an RMSNorm ("sub-norm") before the attention output and
/// down projections. Written once here as the ops a backend runs.
public struct TernaryDecoderBlock: Sendable {
    /// Whether attention output and gated hidden state pass an RMSNorm before their projections.
    public var subNorms: Bool
    public var activation: GatedActivation

    public init(subNorms: Bool, activation: GatedActivation) {
        self.subNorms = subNorms
        self.activation = activation
    }

    /// The block's tensors, in the order conversion writes them.
    public var tensors: [TensorRole] {
        [.attentionNorm, .query, .key, .value] + (subNorms ? [.attentionSubNorm] : []) + [.attentionOutput, .feedForwardNorm, .gate, .up]
            + (subNorms ? [.feedForwardSubNorm] : []) + [.down]
    }

    public func build(_ b: inout GraphBuilder, layer: Int, hidden: ActivationID) throws {
        let c = b.configuration

        // Attention: Q, K and V read one quantization of the normalized input.
        let attentionInput = b.quantize(try b.rmsNorm(hidden, .attentionNorm, layer: layer, into: "normalized"), site: .attentionInput, layer: layer)
        let query = try b.bitLinear(attentionInput, .query, layer: layer, into: "query")
        let key = try b.bitLinear(attentionInput, .key, layer: layer, into: "key")
        let value = try b.bitLinear(attentionInput, .value, layer: layer, into: "value")
        b.append(.rope(query, heads: c.headCount, b.rotaryEmbedding))
        b.append(.rope(key, heads: c.keyValueHeadCount, b.rotaryEmbedding))
        var attended = b.buffer("attended", width: c.queryDimension)
        b.append(.attention(AttentionOp(query: query, key: key, value: value, output: attended, layer: layer,
                                        heads: c.headCount, keyValueHeads: c.keyValueHeadCount, headDimension: c.headDimension)))
        if subNorms { attended = try b.rmsNorm(attended, .attentionSubNorm, layer: layer, into: "attended normalized") }
        let attentionOutput = try b.bitLinear(b.quantize(attended, site: .attentionOutput, layer: layer), .attentionOutput, layer: layer, into: "projected")
        b.append(.add(attentionOutput, into: hidden))

        // Feed-forward: gate and up read one quantization of the normalized input.
        let feedForwardInput = b.quantize(try b.rmsNorm(hidden, .feedForwardNorm, layer: layer, into: "normalized"), site: .feedForwardInput, layer: layer)
        let gate = try b.bitLinear(feedForwardInput, .gate, layer: layer, into: "gate")
        let up = try b.bitLinear(feedForwardInput, .up, layer: layer, into: "up")
        var gated = b.buffer("gated", width: c.intermediateSize)
        b.append(.gatedActivation(activation, gate: gate, up: up, output: gated))
        if subNorms { gated = try b.rmsNorm(gated, .feedForwardSubNorm, layer: layer, into: "gated normalized") }
        let down = try b.bitLinear(b.quantize(gated, site: .feedForwardHidden, layer: layer), .down, layer: layer, into: "projected")
        b.append(.add(down, into: hidden))
    }
}
