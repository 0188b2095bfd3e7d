import BitNetFormats

/// The 1bitLLM reproductions of BitNet b1.58 (`BitnetForCausalLM`; llama.cpp's GGUF `bitnet`): sub-norms
/// as in 2B-4T under other names, and a SiLU gate.
public struct BitNet1bitLLM: ModelArchitecture {
    public init() {}
    public var id: BitNetArchitecture { .bitnet1bitLLM }
    public var ggufNames: [String] { ["bitnet"] }
    public var huggingFaceActivation: String { "silu" }
    public var ggufRotaryLayout: RotaryLayout { .halves }
    public var layerTensors: [TensorRole] { block.tensors }

    let block = TernaryDecoderBlock(subNorms: true, activation: .silu)

    public func matches(_ config: HuggingFaceConfiguration) -> Bool {
        config.architectures.first == "BitnetForCausalLM" && config.modelType != "bitnet"
    }

    public func huggingFaceName(_ role: TensorRole, layer: Int) -> String {
        switch role {
        case .attentionSubNorm: "model.layers.\(layer).self_attn.inner_attn_ln.weight"
        case .feedForwardSubNorm: "model.layers.\(layer).mlp.ffn_layernorm.weight"
        default: role.llamaStyleHuggingFaceName(layer: layer)
        }
    }

    public func buildLayer(_ builder: inout GraphBuilder, layer: Int, hidden: ActivationID) throws {
        try block.build(&builder, layer: layer, hidden: hidden)
    }

    public func conversionWarnings(hasOutputProjection: Bool) -> [String] {
        guard hasOutputProjection else { return [] }
        return ["llama.cpp's `bitnet` architecture ties the output to token_embd; this checkpoint has its own lm_head, kept as output.weight, so the file runs in swift-bitnet but llama.cpp will refuse it"]
    }
}
