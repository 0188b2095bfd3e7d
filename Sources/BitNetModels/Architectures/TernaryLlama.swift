import BitNetFormats

/// LLaMA checkpoints with ternary weights (`LlamaForCausalLM` with packed weights and `weight_scale`, such
/// as Falcon3-1.58bit and Llama3-8B-1.58; GGUF `llama`): no sub-norms, a SiLU gate. llama.cpp's converter
/// permutes the Q and K rows of `llama` GGUF files so that RoPE pairs neighbouring dimensions.
public struct TernaryLlama: ModelArchitecture {
    public init() {}
    public var id: BitNetArchitecture { .llama }
    public var ggufNames: [String] { ["llama"] }
    public var huggingFaceActivation: String { "silu" }
    public var ggufRotaryLayout: RotaryLayout { .interleaved }
    public var layerTensors: [TensorRole] { block.tensors }

    let block = TernaryDecoderBlock(subNorms: false, activation: .silu)

    public func matches(_ config: HuggingFaceConfiguration) -> Bool {
        config.modelType == "llama" && config.architectures.first != "BitnetForCausalLM"
    }

    public func huggingFaceName(_ role: TensorRole, layer: Int) -> String { role.llamaStyleHuggingFaceName(layer: layer) }

    public func buildLayer(_ builder: inout GraphBuilder, layer: Int, hidden: ActivationID) throws {
        try block.build(&builder, layer: layer, hidden: hidden)
    }
}
