import BitNetFormats

/// BitNet b1.58 2B-4T (`BitNetForCausalLM`, `model_type` "bitnet"; GGUF `bitnet-b1.58` as bitnet.cpp
/// writes it, older files `bitnet-25`): LLaMA's skeleton with an RMSNorm before the attention output and
/// down projections, and a relu² gate.
public struct BitNetB158: ModelArchitecture {
    public init() {}
    public var id: BitNetArchitecture { .bitnetB158 }
    public var ggufNames: [String] { ["bitnet-b1.58", "bitnet-25"] }
    public var huggingFaceActivation: String { "relu2" }
    public var ggufRotaryLayout: RotaryLayout { .halves }
    public var layerTensors: [TensorRole] { block.tensors }

    let block = TernaryDecoderBlock(subNorms: true, activation: .squaredReLU)

    public func matches(_ config: HuggingFaceConfiguration) -> Bool { config.modelType == "bitnet" }

    public func huggingFaceName(_ role: TensorRole, layer: Int) -> String { role.llamaStyleHuggingFaceName(layer: layer) }

    public func buildLayer(_ builder: inout GraphBuilder, layer: Int, hidden: ActivationID) throws {
        try block.build(&builder, layer: layer, hidden: hidden)
    }
}
