import BitNetFormats
import Foundation

/// The hyperparameters of a model, whatever file it came from.
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
    /// The hyperparameters of a Hugging Face checkpoint. Throws for architectures the engine does not run
    /// and for configuration fields that change the model in ways it does not implement, naming the field.
    public init(huggingFace config: HuggingFaceConfiguration, file: String) throws {
        guard let architecture = BitNetArchitecture.matching(config) else {
            throw ModelError(.unsupportedModel, "\(file): model_type '\(config.modelType)' (\(config.architectures.first ?? "no architecture")) is not a BitNet architecture swift-bitnet runs")
        }
        func refuse(_ field: String, _ value: String, _ why: String) -> ModelError {
            ModelError(.unsupportedConfiguration, "\(file): config.json field \(field) = \(value) is not supported (\(why))")
        }
        let definition = architecture.definition
        guard config.hiddenActivation == definition.huggingFaceActivation else {
            throw refuse("hidden_act", "\"\(config.hiddenActivation)\"", "\(architecture.rawValue) computes \(definition.huggingFaceActivation)")
        }
        if let scaling = config.ropeScaling { throw refuse("rope_scaling", "\"\(scaling)\"", "only unscaled rotary embeddings are implemented") }
        if config.attentionBias { throw refuse("attention_bias", "true", "projections have no bias") }
        if config.mlpBias { throw refuse("mlp_bias", "true", "projections have no bias") }
        if let factor = config.partialRotaryFactor, factor != 1 {
            throw refuse("partial_rotary_factor", "\(factor)", "rotary embeddings cover the whole head")
        }
        self.init(
            architecture: architecture, vocabularySize: config.vocabularySize, hiddenSize: config.hiddenSize,
            intermediateSize: config.intermediateSize, layerCount: config.layerCount, headCount: config.attentionHeadCount,
            keyValueHeadCount: config.keyValueHeadCount, headDimension: config.headDimension,
            rmsNormEpsilon: Float(config.rmsNormEpsilon), ropeTheta: Float(config.ropeTheta), rotaryLayout: .halves,
            contextLength: config.maximumPositionEmbeddings)
        try validate(file: file)
    }

    /// The hyperparameters in a GGUF file's metadata (llama.cpp's `<arch>.*` keys).
    public init(gguf file: GGUFFile) throws {
        let metadata = file.metadata
        guard let name = metadata.string("general.architecture") else {
            throw ModelError(.unsupportedModel, "\(file.path): no general.architecture")
        }
        guard let architecture = BitNetArchitecture.matching(ggufName: name) else {
            throw ModelError(.unsupportedModel, "\(file.path): architecture '\(name)' is not one swift-bitnet runs")
        }
        func integer(_ key: String) throws -> Int {
            guard let value = metadata.int("\(name).\(key)"), value > 0, value < 1 << 24 else {
                throw ModelError(.invalidModel, "\(file.path): missing or invalid \(name).\(key)")
            }
            return value
        }
        func optionalInteger(_ key: String) throws -> Int? {
            metadata["\(name).\(key)"] == nil ? nil : try integer(key)
        }
        let hidden = try integer("embedding_length")
        let heads = try integer("attention.head_count")
        let headDimension = try optionalInteger("attention.key_length") ?? hidden / heads
        if let scaling = metadata.string("\(name).rope.scaling.type"), scaling != "none" {
            throw ModelError(.unsupportedConfiguration, "\(file.path): \(name).rope.scaling.type = \(scaling) is not supported (only unscaled rotary embeddings are implemented)")
        }
        if let rotary = try optionalInteger("rope.dimension_count"), rotary != headDimension {
            throw ModelError(.unsupportedConfiguration, "\(file.path): \(name).rope.dimension_count = \(rotary) is not supported (rotary embeddings cover the whole head of \(headDimension))")
        }
        if let valueLength = try optionalInteger("attention.value_length"), valueLength != headDimension {
            throw ModelError(.unsupportedConfiguration, "\(file.path): \(name).attention.value_length = \(valueLength) differs from the key length \(headDimension)")
        }
        let vocabulary = metadata.int("\(name).vocab_size") ?? metadata.array("tokenizer.ggml.tokens")?.count
            ?? file.tensor(named: TensorRole.tokenEmbedding.ggufName(layer: 0))?.shape.last ?? 0
        self.init(
            architecture: architecture, vocabularySize: vocabulary, hiddenSize: hidden,
            intermediateSize: try integer("feed_forward_length"), layerCount: try integer("block_count"),
            headCount: heads, keyValueHeadCount: try optionalInteger("attention.head_count_kv") ?? heads,
            headDimension: headDimension,
            rmsNormEpsilon: Float(metadata.double("\(name).attention.layer_norm_rms_epsilon") ?? 1e-5),
            ropeTheta: Float(metadata.double("\(name).rope.freq_base") ?? 10_000),
            rotaryLayout: architecture.definition.ggufRotaryLayout,
            contextLength: try integer("context_length"))
        try validate(file: file.path)
    }

    /// The GGUF `general.architecture` name for this architecture.
    public var ggufArchitectureName: String { architecture.definition.ggufNames[0] }

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

    /// Rejects values no model has before anything is sized by them: every dimension and product of
    /// dimensions within 2^24 (so no size computed from them overflows), ε and θ finite and positive.
    func validate(file: String) throws {
        let limit = 1 << 24
        guard vocabularySize > 0, headCount > 0, keyValueHeadCount > 0, headCount % keyValueHeadCount == 0,
              headDimension > 0, headDimension % 2 == 0, layerCount > 0, hiddenSize > 0, intermediateSize > 0, contextLength > 0,
              [vocabularySize, hiddenSize, intermediateSize, layerCount, headCount, headDimension, contextLength].allSatisfy({ $0 <= limit }),
              headCount * headDimension <= limit
        else {
            throw ModelError(.invalidModel, "\(file): inconsistent hyperparameters (heads \(headCount), kv heads \(keyValueHeadCount), head dim \(headDimension), vocab \(vocabularySize), hidden \(hiddenSize), layers \(layerCount))")
        }
        guard rmsNormEpsilon.isFinite, rmsNormEpsilon > 0, ropeTheta.isFinite, ropeTheta > 0 else {
            throw ModelError(.invalidModel, "\(file): RMSNorm epsilon \(rmsNormEpsilon) and RoPE base \(ropeTheta) must be finite and positive")
        }
    }
}
