import BitNetFormats

/// Everything swift-bitnet knows about one model family, in one file per architecture: its names in
/// Hugging Face and GGUF files, which configuration it accepts, the tensors of a block, the ops a block
/// computes, and the rules of conversion to GGUF.
///
/// Adding an architecture: a file in `Architectures/` conforming to this protocol, a case in
/// ``BitNetArchitecture`` with its line in ``BitNetArchitecture/definition``, and fixtures.
public protocol ModelArchitecture: Sendable {
    /// The registry entry.
    var id: BitNetArchitecture { get }
    /// GGUF `general.architecture` values read as this architecture; the first is the one written.
    var ggufNames: [String] { get }
    /// Whether a Hugging Face `config.json` is a checkpoint of this architecture.
    func matches(_ config: HuggingFaceConfiguration) -> Bool
    /// The `hidden_act` the block computes; another value in `config.json` is refused.
    var huggingFaceActivation: String { get }
    /// The Hugging Face name of `role` (in block `layer` for per-layer roles).
    func huggingFaceName(_ role: TensorRole, layer: Int) -> String
    /// How a GGUF file of this architecture pairs rotary dimensions (and so whether conversion to GGUF
    /// permutes the Q and K rows, as llama.cpp's converter does for `llama`).
    var ggufRotaryLayout: RotaryLayout { get }
    /// The tensors of one block, in the order conversion writes them.
    var layerTensors: [TensorRole] { get }
    /// Appends the ops of block `layer` to `builder`; `hidden` is the residual stream.
    func buildLayer(_ builder: inout GraphBuilder, layer: Int, hidden: ActivationID) throws
    /// Things a converted file's users should know (a tensor layout another engine refuses, …).
    func conversionWarnings(hasOutputProjection: Bool) -> [String]
}

extension ModelArchitecture {
    public func conversionWarnings(hasOutputProjection: Bool) -> [String] { [] }

    /// The whole forward pass: token embedding, the blocks, the final norm and the output projection
    /// (tied to the embedding when the file has no output tensor), for the tokens that want logits.
    public func buildGraph(_ source: WeightSource) throws -> ForwardGraph {
        var builder = GraphBuilder(configuration: source.configuration, source: source)
        let c = source.configuration
        let hidden = builder.buffer("hidden", width: c.hiddenSize)
        builder.append(.embed(table: try builder.weight(.tokenEmbedding), output: hidden))
        for layer in 0..<c.layerCount {
            try buildLayer(&builder, layer: layer, hidden: hidden)
        }
        let selected = builder.buffer("selected", width: c.hiddenSize, rows: .outputs)
        builder.append(.selectOutputs(input: hidden, output: selected))
        let normalized = try builder.rmsNorm(selected, .outputNorm, into: "output_normalized", rows: .outputs)
        let table = source.tiesOutputToEmbedding ? try builder.weight(.tokenEmbedding) : try builder.weight(.output)
        let logits = builder.buffer("logits", width: c.vocabularySize, rows: .outputs)
        builder.append(.project(input: normalized, weight: table, output: logits))
        return builder.finish(logits: logits)
    }
}

/// The registry of architectures swift-bitnet runs. They share the LLaMA skeleton.
public enum BitNetArchitecture: String, Sendable, Hashable, CaseIterable {
    /// bitnet-b1.58-2B-4T (`BitNetForCausalLM`; GGUF `bitnet-b1.58`, older `bitnet-25`).
    case bitnetB158 = "bitnet-b1.58"
    /// The 1bitLLM family (`BitnetForCausalLM`; llama.cpp GGUF `bitnet`).
    case bitnet1bitLLM = "bitnet"
    /// Ternary LLaMA checkpoints (`LlamaForCausalLM` with packed weights; GGUF `llama`).
    case llama

    /// The architecture's definition: one line per architecture.
    public var definition: any ModelArchitecture {
        switch self {
        case .bitnetB158: BitNetB158()
        case .bitnet1bitLLM: BitNet1bitLLM()
        case .llama: TernaryLlama()
        }
    }

    /// The architecture of a Hugging Face checkpoint, if swift-bitnet runs it.
    public static func matching(_ config: HuggingFaceConfiguration) -> BitNetArchitecture? {
        allCases.first { $0.definition.matches(config) }
    }

    /// The architecture named by a GGUF `general.architecture`, if swift-bitnet runs it.
    public static func matching(ggufName name: String) -> BitNetArchitecture? {
        allCases.first { $0.definition.ggufNames.contains(name) }
    }
}
