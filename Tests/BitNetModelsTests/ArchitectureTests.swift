import BitNetFormats
import BitNetModels
import Foundation
import TestSupport
import Testing

/// The architecture registry, configuration fields that are refused, and the graph each file builds.
@Suite struct ArchitectureTests {
    static let directories = ["bitnet-chat-tiny": BitNetArchitecture.bitnetB158, "bitnet-1bitllm-bf16": .bitnet1bitLLM,
                              "llama-ternary-packed": .llama]

    @Test func everyArchitectureIsFoundByItsNames() throws {
        for architecture in BitNetArchitecture.allCases {
            let definition = architecture.definition
            #expect(definition.id == architecture)
            for name in definition.ggufNames { #expect(BitNetArchitecture.matching(ggufName: name) == architecture) }
        }
        for (directory, architecture) in Self.directories {
            let config = try HuggingFaceConfiguration.load(directory: Fixtures.path("models/\(directory)"))
            #expect(BitNetArchitecture.matching(config) == architecture, "\(directory)")
        }
        #expect(BitNetArchitecture.matching(ggufName: "gpt2") == nil)
    }

    /// `config.json` of the 2B-4T-style fixture with `edit` applied to its JSON text.
    func configuration(_ edit: (String) -> String) throws -> ModelConfiguration {
        let text = try String(contentsOfFile: Fixtures.path("models/bitnet-chat-tiny/config.json"), encoding: .utf8)
        let config = try HuggingFaceConfiguration.decode(Data(edit(text).utf8), file: "config.json")
        return try ModelConfiguration(huggingFace: config, file: "config.json")
    }

    @Test(arguments: [
        ("\"attention_bias\": false", "\"attention_bias\": false, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}", "rope_scaling"),
        ("\"rope_type\": \"default\"", "\"rope_type\": \"yarn\"", "rope_scaling"),
        ("\"attention_bias\": false", "\"attention_bias\": true", "attention_bias"),
        ("\"hidden_act\": \"relu2\"", "\"hidden_act\": \"silu\"", "hidden_act"),
        ("\"attention_bias\": false", "\"attention_bias\": false, \"mlp_bias\": true", "mlp_bias"),
        ("\"attention_bias\": false", "\"attention_bias\": false, \"partial_rotary_factor\": 0.5", "partial_rotary_factor"),
    ])
    func unsupportedFieldsAreRefusedByName(_ original: String, _ replacement: String, _ field: String) throws {
        _ = try configuration { $0 }
        let error = #expect(throws: ModelError.self) {
            try configuration {
                precondition($0.contains(original), "fixture lacks \(original)")
                return $0.replacingOccurrences(of: original, with: replacement)
            }
        }
        #expect(error?.code == .unsupportedConfiguration)
        #expect(error?.message.contains(field) == true, "\(error?.message ?? "")")
    }

    /// The TQ2_0 fixture with `extra` metadata added.
    func gguf(adding extra: [(String, GGUFValue)]) throws -> (TemporaryDirectory, String) {
        let source = try GGUFFile(path: Fixtures.path("models/bitnet-gqa-tied-bf16-tq2_0.gguf"))
        let scratch = TemporaryDirectory()
        let path = scratch.path + "/edited.gguf"
        var metadata = source.metadata
        for (key, value) in extra { metadata[key] = value }
        let writer = try GGUFWriter(path: path, metadata: metadata, tensors: source.tensors.map { ($0.name, $0.type, $0.shape) })
        for tensor in source.tensors { try source.withTensorData(tensor) { try writer.write($0) } }
        try writer.finish()
        return (scratch, path)
    }

    @Test(arguments: [
        ("bitnet-b1.58.rope.scaling.type", GGUFValue.string("linear")),
        ("bitnet-b1.58.rope.dimension_count", .uint32(16)),
        ("bitnet-b1.58.attention.value_length", .uint32(16)),
    ])
    func unsupportedGGUFKeysAreRefusedByName(_ key: String, _ value: GGUFValue) throws {
        let (scratch, path) = try gguf(adding: [(key, value)])
        defer { _ = scratch }
        let error = #expect(throws: ModelError.self) { try ModelConfiguration(gguf: GGUFFile(path: path)) }
        #expect(error?.code == .unsupportedConfiguration)
        #expect(error?.message.contains(key) == true, "\(error?.message ?? "")")
        let (fine, unscaled) = try gguf(adding: [("bitnet-b1.58.rope.scaling.type", .string("none"))])
        defer { _ = fine }
        _ = try ModelConfiguration(gguf: GGUFFile(path: unscaled))
    }

    @Test(arguments: ["bitnet-chat-tiny", "bitnet-1bitllm-bf16", "llama-ternary-packed", "bitnet-gqa-tied-bf16-tq2_0.gguf"])
    func theGraphIsTheBlockRecipeOncePerLayer(_ fixture: String) throws {
        let source = try WeightSource(path: Fixtures.path("models/\(fixture)"))
        let c = source.configuration
        let graph = try source.architecture.buildGraph(source)
        let subNorms = source.architecture.layerTensors.contains(.attentionSubNorm)
        // embed, then per layer: 2 norms (+2 sub-norms), 4 quantizations, 7 BitLinears, 2 RoPE, attention,
        // activation, 2 residual adds; then select, output norm, projection.
        let perLayer = (subNorms ? 4 : 2) + 4 + 7 + 2 + 1 + 1 + 2
        #expect(graph.ops.count == 1 + c.layerCount * perLayer + 3)
        let bitLinears = graph.ops.filter { if case .bitLinear = $0 { true } else { false } }.count
        #expect(bitLinears == 7 * c.layerCount)
        // Every tensor of every block is loaded once, plus the embedding, output norm and an untied output.
        let expectedWeights = c.layerCount * source.architecture.layerTensors.count + 2 + (source.contains(.output) ? 1 : 0)
        #expect(graph.weights.count == expectedWeights)
        #expect(Set(graph.weights.map(\.name)).count == graph.weights.count)
        // Buffers are reused from block to block: their number does not grow with the depth.
        #expect(graph.buffers.count <= 20, "\(graph.buffers.map(\.name))")
        #expect(!graph.buffers.contains { $0.name.contains(where: \.isNumber) && !$0.name.hasPrefix("int8") })
        if case .project(_, let weight, let output) = graph.ops.last {
            #expect(graph[weight].rows == c.vocabularySize && graph.logits == output)
        } else {
            Issue.record("the graph does not end with the output projection")
        }
    }

    @Test func anUntiedCheckpointMustHaveItsOutputProjection() throws {
        // A tied checkpoint (no lm_head.weight) whose config.json says it is untied.
        let scratch = TemporaryDirectory()
        let directory = scratch.path + "/untied"
        try FileManager.default.copyItem(atPath: Fixtures.path("models/bitnet-chat-tiny"), toPath: directory)
        let config = try String(contentsOfFile: directory + "/config.json", encoding: .utf8)
        try config.replacingOccurrences(of: "\"tie_word_embeddings\": true", with: "\"tie_word_embeddings\": false")
            .write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        let source = try WeightSource(path: directory)
        #expect(!source.tiesOutputToEmbedding)
        let error = #expect(throws: ModelError.self) { try source.architecture.buildGraph(source) }
        #expect(error?.message.contains("lm_head.weight") == true, "\(error?.message ?? "")")
    }

    @Test func scaledRotaryFrequenciesInGGUFAreRefused() throws {
        let source = try GGUFFile(path: Fixtures.path("models/bitnet-gqa-tied-bf16-tq2_0.gguf"))
        let scratch = TemporaryDirectory()
        let path = scratch.path + "/rope-freqs.gguf"
        let writer = try GGUFWriter(path: path, metadata: source.metadata,
                                    tensors: source.tensors.map { ($0.name, $0.type, $0.shape) } + [("rope_freqs.weight", .f32, [8])])
        for tensor in source.tensors { try source.withTensorData(tensor) { try writer.write($0) } }
        try writer.write([UInt8](repeating: 0, count: 32))
        try writer.finish()
        let error = #expect(throws: ModelError.self) { try WeightSource(path: path) }
        #expect(error?.code == .unsupportedConfiguration && error?.message.contains("rope_freqs.weight") == true)
    }

    @Test func tensorNamesFollowEachFile() throws {
        #expect(TensorRole.attentionSubNorm.ggufName(layer: 3) == "blk.3.attn_sub_norm.weight")
        #expect(BitNetB158().huggingFaceName(.attentionSubNorm, layer: 1) == "model.layers.1.self_attn.attn_sub_norm.weight")
        #expect(BitNet1bitLLM().huggingFaceName(.attentionSubNorm, layer: 1) == "model.layers.1.self_attn.inner_attn_ln.weight")
        #expect(BitNet1bitLLM().huggingFaceName(.feedForwardSubNorm, layer: 0) == "model.layers.0.mlp.ffn_layernorm.weight")
        #expect(!TernaryLlama().layerTensors.contains(.attentionSubNorm))
        let tied = try WeightSource(path: Fixtures.path("models/bitnet-chat-tiny"))
        #expect(!tied.contains(.output))
        let untied = try WeightSource(path: Fixtures.path("models/bitnet-mha-untied-f16"))
        #expect(untied.contains(.output) && untied.name(of: .output) == "lm_head.weight")
    }

    /// A NaN RoPE base once became a dictionary key that never matched, and trapped in the first forward step.
    @Test(arguments: [("bitnet-b1.58.rope.freq_base", Float.nan), ("bitnet-b1.58.rope.freq_base", 0),
                      ("bitnet-b1.58.attention.layer_norm_rms_epsilon", -1), ("bitnet-b1.58.attention.layer_norm_rms_epsilon", .infinity)])
    func nonFiniteOrNonPositiveConstantsAreRefused(_ key: String, _ value: Float) throws {
        let (scratch, path) = try gguf(adding: [(key, .float32(value))])
        defer { _ = scratch }
        let error = #expect(throws: ModelError.self) { try ModelConfiguration(gguf: GGUFFile(path: path)) }
        #expect(error?.code == .invalidModel && error?.message.contains("finite and positive") == true)
    }

    /// Dimensions from metadata are bounded before anything is sized by them (a head dimension that made
    /// `heads × head size` overflow once trapped).
    @Test(arguments: [[("bitnet-b1.58.attention.key_length", GGUFValue.uint64(1 << 40))], [("bitnet-b1.58.embedding_length", .uint64(.max))],
                      [("bitnet-b1.58.block_count", .int32(-3))],
                      // Consistent with itself, but heads × head size is 2^25.
                      [("bitnet-b1.58.attention.key_length", .uint32(1 << 23)), ("bitnet-b1.58.attention.value_length", .uint32(1 << 23)),
                       ("bitnet-b1.58.rope.dimension_count", .uint32(1 << 23))]])
    func hugeOrNegativeDimensionsAreRefused(_ entries: [(String, GGUFValue)]) throws {
        let (scratch, path) = try gguf(adding: entries)
        defer { _ = scratch }
        let error = #expect(throws: ModelError.self) { try ModelConfiguration(gguf: GGUFFile(path: path)) }
        #expect(error?.code == .invalidModel, "\(entries[0].0): \(error?.message ?? "")")
    }
}
