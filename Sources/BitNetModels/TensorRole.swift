/// What a tensor is for, whatever a file calls it. An architecture maps roles to its Hugging Face names;
/// GGUF names are llama.cpp's, the same for every architecture.
public enum TensorRole: String, Sendable, Hashable, CaseIterable {
    case tokenEmbedding, outputNorm, output
    case attentionNorm, query, key, value, attentionSubNorm, attentionOutput
    case feedForwardNorm, gate, up, feedForwardSubNorm, down

    /// Whether the role is a BitLinear projection (ternary weights, int8 input).
    public var isBitLinear: Bool {
        switch self {
        case .query, .key, .value, .attentionOutput, .gate, .up, .down: true
        default: false
        }
    }

    /// Whether the role is the weight of an RMSNorm (a vector).
    public var isNorm: Bool {
        [.outputNorm, .attentionNorm, .attentionSubNorm, .feedForwardNorm, .feedForwardSubNorm].contains(self)
    }

    /// `(rows, columns)`: output × input features for a matrix, `(1, n)` for a norm weight.
    public func shape(_ c: ModelConfiguration) -> (rows: Int, columns: Int) {
        switch self {
        case .tokenEmbedding, .output: (c.vocabularySize, c.hiddenSize)
        case .outputNorm, .attentionNorm, .feedForwardNorm: (1, c.hiddenSize)
        case .attentionSubNorm: (1, c.queryDimension)
        case .feedForwardSubNorm: (1, c.intermediateSize)
        case .query: (c.queryDimension, c.hiddenSize)
        case .key, .value: (c.keyValueDimension, c.hiddenSize)
        case .attentionOutput: (c.hiddenSize, c.queryDimension)
        case .gate, .up: (c.intermediateSize, c.hiddenSize)
        case .down: (c.hiddenSize, c.intermediateSize)
        }
    }

    /// The tensor's name in a GGUF file (llama.cpp's scheme, shared by bitnet.cpp).
    public func ggufName(layer: Int) -> String {
        let block = "blk.\(layer)."
        return switch self {
        case .tokenEmbedding: "token_embd.weight"
        case .outputNorm: "output_norm.weight"
        case .output: "output.weight"
        case .attentionNorm: block + "attn_norm.weight"
        case .query: block + "attn_q.weight"
        case .key: block + "attn_k.weight"
        case .value: block + "attn_v.weight"
        case .attentionSubNorm: block + "attn_sub_norm.weight"
        case .attentionOutput: block + "attn_output.weight"
        case .feedForwardNorm: block + "ffn_norm.weight"
        case .gate: block + "ffn_gate.weight"
        case .up: block + "ffn_up.weight"
        case .feedForwardSubNorm: block + "ffn_sub_norm.weight"
        case .down: block + "ffn_down.weight"
        }
    }

    /// The name in a LLaMA-style Hugging Face checkpoint; architectures override the names that differ.
    public func llamaStyleHuggingFaceName(layer: Int) -> String {
        let block = "model.layers.\(layer)."
        return switch self {
        case .tokenEmbedding: "model.embed_tokens.weight"
        case .outputNorm: "model.norm.weight"
        case .output: "lm_head.weight"
        case .attentionNorm: block + "input_layernorm.weight"
        case .query: block + "self_attn.q_proj.weight"
        case .key: block + "self_attn.k_proj.weight"
        case .value: block + "self_attn.v_proj.weight"
        case .attentionSubNorm: block + "self_attn.attn_sub_norm.weight"
        case .attentionOutput: block + "self_attn.o_proj.weight"
        case .feedForwardNorm: block + "post_attention_layernorm.weight"
        case .gate: block + "mlp.gate_proj.weight"
        case .up: block + "mlp.up_proj.weight"
        case .feedForwardSubNorm: block + "mlp.ffn_sub_norm.weight"
        case .down: block + "mlp.down_proj.weight"
        }
    }
}
