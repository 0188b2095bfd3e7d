import BitNetFormats

/// The model families swift-bitnet runs. They share the LLaMA skeleton and differ in three places.
public enum BitNetArchitecture: String, Sendable, Hashable, CaseIterable {
    /// bitnet-b1.58-2B-4T (`BitNetForCausalLM`; GGUF `bitnet-b1.58`, older `bitnet-25`): sub-norms, relu².
    case bitnetB158 = "bitnet-b1.58"
    /// The 1bitLLM family (`BitnetForCausalLM`; llama.cpp GGUF `bitnet`): sub-norms, SiLU gate.
    case bitnet1bitLLM = "bitnet"
    /// Ternary LLaMA checkpoints (`LlamaForCausalLM` with packed weights): no sub-norms, SiLU gate.
    case llama

    /// Whether attention output and FFN hidden states pass an RMSNorm before their projection.
    public var hasSubNorms: Bool { self != .llama }

    /// The gate activation of the feed-forward block.
    public var usesSquaredReLU: Bool { self == .bitnetB158 }
}

/// How rotary embeddings pair dimensions.
public enum RotaryLayout: Sendable, Hashable {
    /// Dimension i pairs with i + d/2 (`rotate_half`, NeoX): Hugging Face weights and llama.cpp's `bitnet`.
    case halves
    /// Dimension 2i pairs with 2i + 1: LLaMA-arch GGUF files, whose converter permuted the Q/K rows.
    case interleaved
}

/// The hyperparameters of a loaded model, whatever file it came from.
public struct ModelConfiguration: Sendable, Hashable {
    public var architecture: BitNetArchitecture
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var keyValueHeadCount: Int
    public var headDimension: Int
    public var rmsNormEpsilon: Float
    public var ropeTheta: Float
    public var rotaryLayout: RotaryLayout
    /// The context length the model was trained with (the default for sessions).
    public var contextLength: Int

    public init(architecture: BitNetArchitecture, vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int,
                headCount: Int, keyValueHeadCount: Int, headDimension: Int, rmsNormEpsilon: Float, ropeTheta: Float,
                rotaryLayout: RotaryLayout, contextLength: Int) {
        self.architecture = architecture
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.keyValueHeadCount = keyValueHeadCount
        self.headDimension = headDimension
        self.rmsNormEpsilon = rmsNormEpsilon
        self.ropeTheta = ropeTheta
        self.rotaryLayout = rotaryLayout
        self.contextLength = contextLength
    }

    public var keyValueDimension: Int { keyValueHeadCount * headDimension }
    public var queryDimension: Int { headCount * headDimension }
}

extension ModelConfiguration {
    /// The hyperparameters of a Hugging Face checkpoint; throws for architectures the engine does not run.
    public init(huggingFace config: HuggingFaceConfiguration, file: String) throws {
        let architecture: BitNetArchitecture
        switch (config.modelType, config.architectures.first) {
        case ("bitnet", _): architecture = .bitnetB158
        case (_, "BitnetForCausalLM"?): architecture = .bitnet1bitLLM
        case ("llama", _): architecture = .llama
        default:
            throw InferenceError(.unsupportedModel, "\(file): model_type '\(config.modelType)' (\(config.architectures.first ?? "no architecture")) is not a BitNet architecture swift-bitnet runs")
        }
        self.init(
            architecture: architecture, vocabularySize: config.vocabularySize, hiddenSize: config.hiddenSize,
            intermediateSize: config.intermediateSize, layerCount: config.layerCount, headCount: config.attentionHeadCount,
            keyValueHeadCount: config.keyValueHeadCount, headDimension: config.headDimension,
            rmsNormEpsilon: Float(config.rmsNormEpsilon), ropeTheta: Float(config.ropeTheta), rotaryLayout: .halves,
            contextLength: config.maximumPositionEmbeddings)
    }

    /// The hyperparameters in a GGUF file's metadata.
    public init(gguf file: GGUFFile) throws {
        let metadata = file.metadata
        guard let name = metadata.string("general.architecture") else {
            throw InferenceError(.unsupportedModel, "\(file.path): no general.architecture")
        }
        let architecture: BitNetArchitecture
        switch name {
        case "bitnet-b1.58", "bitnet-25": architecture = .bitnetB158
        case "bitnet": architecture = .bitnet1bitLLM
        case "llama": architecture = .llama
        default: throw InferenceError(.unsupportedModel, "\(file.path): architecture '\(name)' is not one swift-bitnet runs")
        }
        func integer(_ key: String) throws -> Int {
            guard let value = metadata.int("\(name).\(key)"), value > 0, value < 1 << 24 else {
                throw InferenceError(.invalidModel, "\(file.path): missing or invalid \(name).\(key)")
            }
            return value
        }
        let hidden = try integer("embedding_length")
        let heads = try integer("attention.head_count")
        let kvHeads = metadata.int("\(name).attention.head_count_kv") ?? heads
        let vocabulary = metadata.int("\(name).vocab_size") ?? metadata.array("tokenizer.ggml.tokens")?.count
            ?? file.tensor(named: "token_embd.weight")?.shape.last ?? 0
        self.init(
            architecture: architecture, vocabularySize: vocabulary, hiddenSize: hidden,
            intermediateSize: try integer("feed_forward_length"), layerCount: try integer("block_count"),
            headCount: heads, keyValueHeadCount: kvHeads,
            headDimension: metadata.int("\(name).attention.key_length") ?? hidden / heads,
            rmsNormEpsilon: Float(metadata.double("\(name).attention.layer_norm_rms_epsilon") ?? 1e-5),
            ropeTheta: Float(metadata.double("\(name).rope.freq_base") ?? 10_000),
            rotaryLayout: architecture == .llama ? .interleaved : .halves,
            contextLength: try integer("context_length"))
        try validate(file: file.path)
    }

    /// The GGUF `general.architecture` name for this architecture.
    public var ggufArchitectureName: String {
        switch architecture {
        case .bitnetB158: "bitnet-b1.58"
        case .bitnet1bitLLM: "bitnet"
        case .llama: "llama"
        }
    }

    /// The hyperparameters as GGUF metadata (`general.architecture` and the `<arch>.*` keys llama.cpp and
    /// bitnet.cpp read): the inverse of ``init(gguf:)``.
    public var ggufMetadata: [(key: String, value: GGUFValue)] {
        let arch = ggufArchitectureName
        var entries: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string(arch)),
            ("\(arch).vocab_size", .uint32(UInt32(vocabularySize))),
            ("\(arch).context_length", .uint32(UInt32(contextLength))),
            ("\(arch).embedding_length", .uint32(UInt32(hiddenSize))),
            ("\(arch).block_count", .uint32(UInt32(layerCount))),
            ("\(arch).feed_forward_length", .uint32(UInt32(intermediateSize))),
            ("\(arch).attention.head_count", .uint32(UInt32(headCount))),
            ("\(arch).attention.head_count_kv", .uint32(UInt32(keyValueHeadCount))),
        ]
        if headDimension * headCount != hiddenSize {
            entries.append(("\(arch).attention.key_length", .uint32(UInt32(headDimension))))
            entries.append(("\(arch).attention.value_length", .uint32(UInt32(headDimension))))
        }
        entries.append(("\(arch).attention.layer_norm_rms_epsilon", .float32(rmsNormEpsilon)))
        entries.append(("\(arch).rope.freq_base", .float32(ropeTheta)))
        entries.append(("\(arch).rope.dimension_count", .uint32(UInt32(headDimension))))
        return entries
    }

    func validate(file: String) throws {
        guard vocabularySize > 0, headCount > 0, keyValueHeadCount > 0, headCount % keyValueHeadCount == 0,
              headDimension > 0, headDimension % 2 == 0, layerCount > 0, hiddenSize > 0, intermediateSize > 0
        else {
            throw InferenceError(.invalidModel, "\(file): inconsistent hyperparameters (heads \(headCount), kv heads \(keyValueHeadCount), head dim \(headDimension), vocab \(vocabularySize))")
        }
    }
}
