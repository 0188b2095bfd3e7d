import Foundation

/// The `quantization_config` of a BitNet checkpoint's `config.json`.
public struct BitNetQuantizationConfiguration: Codable, Sendable, Hashable {
    /// "bitnet".
    public var quantizationMethod: String?
    /// "bitlinear" (packed weights, `weight_scale` divides) or "autobitlinear" (`weight_scale` multiplies).
    public var linearClass: String?
    /// "offline" (packed uint8 weights) or "online" (float master weights ternarized on the fly).
    public var quantizationMode: String?
    public var modulesToNotConvert: [String]?

    enum CodingKeys: String, CodingKey {
        case quantizationMethod = "quant_method"
        case linearClass = "linear_class"
        case quantizationMode = "quantization_mode"
        case modulesToNotConvert = "modules_to_not_convert"
    }

    public init(quantizationMethod: String? = "bitnet", linearClass: String? = nil, quantizationMode: String? = nil, modulesToNotConvert: [String]? = nil) {
        self.quantizationMethod = quantizationMethod
        self.linearClass = linearClass
        self.quantizationMode = quantizationMode
        self.modulesToNotConvert = modulesToNotConvert
    }

    /// True when weights are stored as float master weights and ternarized at load ("online").
    public var isOnline: Bool { quantizationMode == "online" }
}

/// A Hugging Face `config.json` for the architectures swift-bitnet runs (BitNet b1.58 2B-4T's
/// `BitNetForCausalLM`, the 1bitLLM `BitnetForCausalLM`, ternary `LlamaForCausalLM`).
///
/// Defaults are transformers' `BitNetConfig` defaults, used when a key is absent. Both the top-level
/// `rope_theta` of published checkpoints and the newer `rope_parameters` object are accepted.
public struct HuggingFaceConfiguration: Codable, Sendable, Hashable {
    public var architectures: [String]
    public var modelType: String
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var attentionHeadCount: Int
    public var keyValueHeadCount: Int
    /// `head_dim` if given, else `hidden_size / num_attention_heads`.
    public var headDimension: Int
    public var hiddenActivation: String
    public var maximumPositionEmbeddings: Int
    public var rmsNormEpsilon: Double
    public var ropeTheta: Double
    public var tieWordEmbeddings: Bool
    public var beginningOfSequenceTokenID: Int?
    /// `eos_token_id`, which may be one id or a list.
    public var endOfSequenceTokenIDs: [Int]
    public var quantization: BitNetQuantizationConfiguration?
    /// `torch_dtype` (older files) or `dtype` (newer): the master weights' type.
    public var dataType: String?
    /// The type of `rope_scaling` (its `rope_type` or `type`, or "unknown"), or of `rope_parameters`
    /// when it is not "default"; nil when rotary embeddings are not scaled.
    public var ropeScaling: String?
    /// `attention_bias` and `mlp_bias` (absent or null read as false).
    public var attentionBias: Bool
    public var mlpBias: Bool
    /// `partial_rotary_factor`, when given.
    public var partialRotaryFactor: Double?

    enum CodingKeys: String, CodingKey {
        case architectures
        case modelType = "model_type"
        case vocabularySize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case layerCount = "num_hidden_layers"
        case attentionHeadCount = "num_attention_heads"
        case keyValueHeadCount = "num_key_value_heads"
        case headDimension = "head_dim"
        case hiddenActivation = "hidden_act"
        case maximumPositionEmbeddings = "max_position_embeddings"
        case rmsNormEpsilon = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case ropeParameters = "rope_parameters"
        case tieWordEmbeddings = "tie_word_embeddings"
        case beginningOfSequenceTokenID = "bos_token_id"
        case endOfSequenceTokenIDs = "eos_token_id"
        case quantization = "quantization_config"
        case dataType = "dtype"
        case torchDataType = "torch_dtype"
        case ropeScaling = "rope_scaling"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case partialRotaryFactor = "partial_rotary_factor"
    }

    private struct RopeParameters: Codable {
        var ropeTheta: Double?
        var ropeType: String?
        var type: String?
        enum CodingKeys: String, CodingKey {
            case ropeTheta = "rope_theta"
            case ropeType = "rope_type"
            case type
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        architectures = try container.decodeIfPresent([String].self, forKey: .architectures) ?? []
        modelType = try container.decode(String.self, forKey: .modelType)
        vocabularySize = try container.decodeIfPresent(Int.self, forKey: .vocabularySize) ?? 128_256
        hiddenSize = try container.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? 2560
        intermediateSize = try container.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? 6912
        layerCount = try container.decodeIfPresent(Int.self, forKey: .layerCount) ?? 30
        attentionHeadCount = try container.decodeIfPresent(Int.self, forKey: .attentionHeadCount) ?? 20
        keyValueHeadCount = try container.decodeIfPresent(Int.self, forKey: .keyValueHeadCount) ?? attentionHeadCount
        let heads = max(attentionHeadCount, 1)
        headDimension = try container.decodeIfPresent(Int.self, forKey: .headDimension) ?? hiddenSize / heads
        hiddenActivation = try container.decodeIfPresent(String.self, forKey: .hiddenActivation) ?? (modelType == "bitnet" ? "relu2" : "silu")
        maximumPositionEmbeddings = try container.decodeIfPresent(Int.self, forKey: .maximumPositionEmbeddings) ?? 2048
        rmsNormEpsilon = try container.decodeIfPresent(Double.self, forKey: .rmsNormEpsilon) ?? 1e-5
        let parameters = try container.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters)
        ropeTheta = try container.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? parameters?.ropeTheta ?? (modelType == "bitnet" ? 500_000 : 10_000)
        if let scaling = try container.decodeIfPresent(RopeParameters.self, forKey: .ropeScaling),
           (scaling.ropeType ?? scaling.type) != "default" {
            ropeScaling = scaling.ropeType ?? scaling.type ?? "unknown"
        } else if let type = parameters?.ropeType ?? parameters?.type, type != "default" {
            ropeScaling = type
        }
        attentionBias = try container.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
        mlpBias = try container.decodeIfPresent(Bool.self, forKey: .mlpBias) ?? false
        partialRotaryFactor = try container.decodeIfPresent(Double.self, forKey: .partialRotaryFactor)
        tieWordEmbeddings = try container.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        beginningOfSequenceTokenID = try container.decodeIfPresent(Int.self, forKey: .beginningOfSequenceTokenID)
        if let list = try? container.decodeIfPresent([Int].self, forKey: .endOfSequenceTokenIDs) {
            endOfSequenceTokenIDs = list
        } else {
            endOfSequenceTokenIDs = try container.decodeIfPresent(Int.self, forKey: .endOfSequenceTokenIDs).map { [$0] } ?? []
        }
        quantization = try container.decodeIfPresent(BitNetQuantizationConfiguration.self, forKey: .quantization)
        dataType = try container.decodeIfPresent(String.self, forKey: .dataType)
            ?? container.decodeIfPresent(String.self, forKey: .torchDataType)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(architectures, forKey: .architectures)
        try container.encode(modelType, forKey: .modelType)
        try container.encode(vocabularySize, forKey: .vocabularySize)
        try container.encode(hiddenSize, forKey: .hiddenSize)
        try container.encode(intermediateSize, forKey: .intermediateSize)
        try container.encode(layerCount, forKey: .layerCount)
        try container.encode(attentionHeadCount, forKey: .attentionHeadCount)
        try container.encode(keyValueHeadCount, forKey: .keyValueHeadCount)
        try container.encode(headDimension, forKey: .headDimension)
        try container.encode(hiddenActivation, forKey: .hiddenActivation)
        try container.encode(maximumPositionEmbeddings, forKey: .maximumPositionEmbeddings)
        try container.encode(rmsNormEpsilon, forKey: .rmsNormEpsilon)
        try container.encode(ropeTheta, forKey: .ropeTheta)
        try container.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try container.encodeIfPresent(beginningOfSequenceTokenID, forKey: .beginningOfSequenceTokenID)
        try container.encode(endOfSequenceTokenIDs, forKey: .endOfSequenceTokenIDs)
        try container.encodeIfPresent(quantization, forKey: .quantization)
        try container.encodeIfPresent(dataType, forKey: .dataType)
        if let ropeScaling { try container.encode(RopeParameters(ropeType: ropeScaling), forKey: .ropeScaling) }
        try container.encode(attentionBias, forKey: .attentionBias)
        try container.encode(mlpBias, forKey: .mlpBias)
        try container.encodeIfPresent(partialRotaryFactor, forKey: .partialRotaryFactor)
    }

    /// Decodes and validates `config.json` text.
    public static func decode(_ data: Data, file: String? = nil) throws -> HuggingFaceConfiguration {
        // Foundation's decoder keeps one of two members with the same name without a word; the strict
        // parser refuses the document instead.
        do {
            _ = try JSONValue.parse(data)
        } catch let error as FormatError {
            throw FormatError(.invalidConfiguration, file: file, "cannot decode config.json: \(error.message)")
        }
        let configuration: HuggingFaceConfiguration
        do {
            configuration = try JSONDecoder().decode(HuggingFaceConfiguration.self, from: data)
        } catch let error as DecodingError {
            throw FormatError(.invalidConfiguration, file: file, "cannot decode config.json: \(Self.describe(error))")
        } catch {
            throw FormatError(.invalidConfiguration, file: file, "cannot decode config.json: \(error)")
        }
        try configuration.validate(file: file)
        return configuration
    }

    /// Reads and validates `directory/config.json`.
    public static func load(directory: String) throws -> HuggingFaceConfiguration {
        let path = directory + "/config.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FormatError(.missingFile, file: directory, "no readable config.json")
        }
        return try decode(data, file: path)
    }

    /// Rejects dimensions no real model has, before anything is sized by them.
    public func validate(file: String? = nil) throws {
        func check(_ value: Int, _ name: String, _ range: ClosedRange<Int>) throws {
            guard range.contains(value) else {
                throw FormatError(.invalidConfiguration, file: file, "\(name) = \(value) is outside \(range.lowerBound)…\(range.upperBound)")
            }
        }
        try check(vocabularySize, "vocab_size", 1...(1 << 24))
        try check(hiddenSize, "hidden_size", 1...(1 << 18))
        try check(intermediateSize, "intermediate_size", 1...(1 << 20))
        try check(layerCount, "num_hidden_layers", 1...1024)
        try check(attentionHeadCount, "num_attention_heads", 1...4096)
        try check(keyValueHeadCount, "num_key_value_heads", 1...attentionHeadCount)
        try check(headDimension, "head_dim", 1...4096)
        try check(maximumPositionEmbeddings, "max_position_embeddings", 1...(1 << 24))
        guard attentionHeadCount % keyValueHeadCount == 0 else {
            throw FormatError(.invalidConfiguration, file: file, "num_attention_heads (\(attentionHeadCount)) is not a multiple of num_key_value_heads (\(keyValueHeadCount))")
        }
        guard rmsNormEpsilon > 0, rmsNormEpsilon < 1, ropeTheta > 0, ropeTheta.isFinite else {
            throw FormatError(.invalidConfiguration, file: file, "rms_norm_eps (\(rmsNormEpsilon)) or rope theta (\(ropeTheta)) is out of range")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map(\.stringValue).joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, _): return "missing key '\(key.stringValue)'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "'\(path(context))': \(context.debugDescription)"
        case .dataCorrupted(let context): return context.debugDescription
        @unknown default: return "\(error)"
        }
    }
}
