import BitNetConversion
import BitNetFormats
import BitNetInference
import BitNetQuantization
import Foundation
import TestSupport
import Testing

@Suite struct ConversionTests {
    static let outputs = Fixtures.path("converted")

    static let cases: [(model: String, type: GGMLType)] = [
        ("bitnet-gqa-tied-bf16", .tq2_0), ("bitnet-gqa-tied-bf16", .tq1_0), ("bitnet-gqa-tied-bf16", .i2_s),
        ("bitnet-mha-untied-f16", .tq2_0), ("bitnet-1bitllm-bf16", .tq1_0), ("llama-ternary-packed", .tq2_0),
        ("llama-ternary-packed", .i2_s), ("bitnet-chat-tiny", .tq2_0),
    ]

    /// Converts into a scratch directory (or, with BITNET_WRITE_FIXTURES=1, into Tests/Fixtures/converted
    /// for generate_conversions.py to read back with gguf-py).
    func convert(_ model: String, _ type: GGMLType, into directory: String) throws -> (String, ConversionReport) {
        let output = directory + "/\(model)-\(type.name).gguf"
        let converter = try ModelConverter(input: Fixtures.path("models/\(model)"), options: ConversionOptions(weightType: type, threads: 2))
        return (output, try converter.convert(to: output))
    }

    @Test(arguments: cases.map { "\($0.model)|\($0.type.name)" })
    func convertedModelsMatchTransformers(_ label: String) throws {
        let parts = label.split(separator: "|").map(String.init)
        let (model, type) = (parts[0], GGMLType(name: parts[1])!)
        let scratch = TemporaryDirectory()
        let write = ProcessInfo.processInfo.environment["BITNET_WRITE_FIXTURES"] == "1"
        if write { try FileManager.default.createDirectory(atPath: Self.outputs, withIntermediateDirectories: true) }
        let (path, report) = try convert(model, type, into: write ? Self.outputs : scratch.path)
        let file = try GGUFFile(path: path)
        #expect(file.tensors.filter { $0.type == type }.count == report.tensors.count)
        #expect(report.tensors.allSatisfy { ($0.fractions.negative + $0.fractions.zero + $0.fractions.positive - 1).magnitude < 1e-9 })
        let reference = try ReferenceLogits(model)
        let session = try InferenceSession(model: BitNetModel(path: path, threads: 2), contextLength: 32)
        reference.expectAgreement(try session.evaluate(reference.tokens, allPositions: true), within: .of("\(model)-\(type.name).gguf"), "\(model) as \(type)")
    }

    /// `--embed-type q6_k`: the tied embedding stored as llama.cpp's Q6_K (the quantizer is byte-identical to
    /// llama.cpp's) and read in place by the output projection; logits stay near transformers' float ones.
    @Test func q6_KEmbeddingsConvertAndRun() throws {
        let scratch = TemporaryDirectory()
        let output = scratch.path + "/q6.gguf"
        let options = ConversionOptions(weightType: .tq2_0, embeddingType: .q6_K, threads: 2)
        _ = try ModelConverter(input: Fixtures.path("models/bitnet-gqa-tied-bf16"), options: options).convert(to: output)
        let file = try GGUFFile(path: output)
        #expect(file.tensors.first { $0.name == "token_embd.weight" }?.type == .q6_K)
        let reference = try ReferenceLogits("bitnet-gqa-tied-bf16")
        let session = try InferenceSession(model: BitNetModel(path: output, threads: 2), contextLength: 32)
        reference.expectAgreement(try session.evaluate(reference.tokens, allPositions: true), within: .of("bitnet-gqa-tied-bf16-q6_k-embeddings.gguf"), "q6_K embeddings")
    }

    @Test func gguFPyReadsWhatWeConvert() throws {
        // generate_conversions.py read these outputs with gguf-py; ours must still produce the same bytes.
        let expected = try Fixtures.json("converted/expected.json").objectValue!
        #expect(expected.count >= 5)
        let scratch = TemporaryDirectory()
        for (fileName, view) in expected {
            let name = fileName.replacingOccurrences(of: ".gguf", with: "")
            let type = GGMLType(name: String(name.split(separator: "-").last!))!
            let model = String(name.dropLast(type.name.count + 1))
            let (path, _) = try convert(model, type, into: scratch.path)
            let file = try GGUFFile(path: path)
            let metadata = view["metadata"]!.objectValue!
            #expect(file.metadata.count == metadata.count, "\(fileName) metadata count")
            for (key, value) in metadata {
                let ours = try #require(file.metadata[key], "\(fileName): \(key)")
                if case .array(let array) = ours {
                    #expect(array.count == value.intValue, "\(fileName): \(key) length")
                } else {
                    let mine = JSONValue(ours)
                    #expect(mine == value || mine.doubleValue == value.doubleValue, "\(fileName): \(key)")
                }
            }
            let tensors = view["tensors"]!.arrayValue!
            #expect(file.tensors.count == tensors.count)
            for (tensor, reference) in zip(file.tensors, tensors) {
                #expect(tensor.name == reference["name"]!.stringValue! && tensor.type.name == reference["type"]!.stringValue!)
                #expect(tensor.shape == reference["shape"]!.arrayValue!.map { $0.intValue! })
                #expect(file.withTensorData(tensor) { fnv1a64($0) } == reference["fnv1a64"]!.stringValue!, "\(fileName): \(tensor.name)")
            }
        }
    }

    @Test func conversionIsDeterministic() throws {
        let a = TemporaryDirectory(), b = TemporaryDirectory()
        let (first, _) = try convert("bitnet-mha-untied-f16", .tq1_0, into: a.path)
        let (second, _) = try convert("bitnet-mha-untied-f16", .tq1_0, into: b.path)
        #expect(FileManager.default.contents(atPath: first) == FileManager.default.contents(atPath: second))
        #expect(try FileManager.default.contentsOfDirectory(atPath: a.path) == [URL(fileURLWithPath: first).lastPathComponent])
    }

    @Test func unfitRowsAreListedAndFallbackConvertsAShardedCheckpoint() throws {
        // The sharded fixture has hidden size 64: no ternary type fits.
        let input = Fixtures.path("safetensors/tiny-bitnet-sharded")
        let error = #expect(throws: ConversionError.self) { try ModelConverter(input: input, options: ConversionOptions(weightType: .tq2_0)) }
        #expect(error?.code == .unfitRowLength)
        #expect(error?.message.contains("blk.0.attn_q.weight (rows of 64; fits f16, bf16, f32)") == true)
        #expect(error?.message.contains("--fallback") == true)
        let scratch = TemporaryDirectory()
        let output = scratch.path + "/fallback.gguf"
        let report = try ModelConverter(input: input, options: ConversionOptions(weightType: .tq2_0, fallbackType: .f16)).convert(to: output)
        let file = try GGUFFile(path: output)
        #expect(file.tensor(named: "blk.1.ffn_down.weight")?.type == .f16)
        #expect(report.tensors.count == 14)
        // The f16 fallback holds the ternarized values: the engine reads them back as the same ternary weights.
        let direct = try InferenceSession(model: BitNetModel(path: input, threads: 1), contextLength: 8)
        let converted = try InferenceSession(model: BitNetModel(path: output, threads: 1), contextLength: 8)
        let tokens = [5, 17, 3, 60, 2]
        let a = try direct.evaluate(tokens, allPositions: true), b = try converted.evaluate(tokens, allPositions: true)
        #expect(zip(a, b).allSatisfy { $0.relativeError(to: $1) < 0.05 })
    }

    @Test func floatGGUFInputIsRequantized() throws {
        // A GGUF holding the float32 master weights of a fixture model, as llama.cpp's converter would write them.
        let checkpoint = try SafetensorsCheckpoint(directory: Fixtures.path("models/bitnet-gqa-tied-bf16"))
        let tq = try GGUFFile(path: Fixtures.path("models/bitnet-gqa-tied-bf16-tq2_0.gguf"))
        let architecture = BitNetB158()
        let names: [String: String] = Dictionary(uniqueKeysWithValues: (0..<4).flatMap { layer in
            architecture.layerTensors.map { ($0.ggufName(layer: layer), architecture.huggingFaceName($0, layer: layer)) }
        } + [("token_embd.weight", "model.embed_tokens.weight"), ("output_norm.weight", "model.norm.weight")])
        let scratch = TemporaryDirectory()
        let floatPath = scratch.path + "/float.gguf"
        let declared = tq.tensors.map { ($0.name, GGMLType.f32, $0.shape) }
        let writer = try GGUFWriter(path: floatPath, metadata: tq.metadata, tensors: declared)
        for tensor in tq.tensors {
            let values = try checkpoint.withTensorData(named: names[tensor.name]!) { info, bytes in try info.dtype.floats(from: bytes) }
            try writer.write(values.withUnsafeBytes(Array.init))
        }
        try writer.finish()
        let output = scratch.path + "/requantized.gguf"
        let report = try ModelConverter(input: floatPath, options: ConversionOptions(weightType: .i2_s)).convert(to: output)
        #expect(report.tensors.allSatisfy { ($0.relativeError ?? 0) > 0.3 })  // master weights, not already ternary
        let reference = try ReferenceLogits("bitnet-gqa-tied-bf16")
        let session = try InferenceSession(model: BitNetModel(path: output, threads: 2), contextLength: 32)
        reference.expectAgreement(try session.evaluate(reference.tokens, allPositions: true), within: .of("bitnet-gqa-tied-bf16-i2_s.gguf"), "requantized float GGUF")
    }

    @Test func badInputIsNamed() throws {
        let scratch = TemporaryDirectory()
        func copy(_ model: String) throws -> String {
            let path = scratch.path + "/\(model)-\(UUID().uuidString)"
            try FileManager.default.copyItem(atPath: Fixtures.path("models/\(model)"), toPath: path)
            return path
        }
        func message(_ input: String) -> String? {
            do {
                _ = try ModelConverter(input: input, options: ConversionOptions()).convert(to: scratch.path + "/out.gguf")
                return nil
            } catch { return "\(error)" }
        }
        let noConfig = try copy("bitnet-mha-untied-f16")
        try FileManager.default.removeItem(atPath: noConfig + "/config.json")
        #expect(message(noConfig)?.contains("config.json") == true)

        let unknown = try copy("bitnet-mha-untied-f16")
        var config = try String(contentsOfFile: unknown + "/config.json", encoding: .utf8)
        try config.replacingOccurrences(of: "\"model_type\": \"bitnet\"", with: "\"model_type\": \"gpt2\"")
            .replacingOccurrences(of: "BitNetForCausalLM", with: "GPT2LMHeadModel").write(toFile: unknown + "/config.json", atomically: true, encoding: .utf8)
        #expect(message(unknown)?.contains("gpt2") == true)

        let contradicting = try copy("bitnet-mha-untied-f16")
        config = try String(contentsOfFile: contradicting + "/config.json", encoding: .utf8)
        try config.replacingOccurrences(of: "\"intermediate_size\": 512", with: "\"intermediate_size\": 768")
            .write(toFile: contradicting + "/config.json", atomically: true, encoding: .utf8)
        let shape = message(contradicting)
        #expect(shape?.contains("gate_proj.weight") == true && shape?.contains("configuration") == true, "\(shape ?? "")")

        // A NaN in a master weight: rewrite one value of the safetensors file in place.
        let poisoned = try copy("bitnet-mha-untied-f16")
        let file = try SafetensorsFile(path: poisoned + "/model.safetensors")
        let info = try #require(file.tensor(named: "model.layers.1.mlp.up_proj.weight"))
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: poisoned + "/model.safetensors"))
        try handle.seek(toOffset: UInt64(info.dataRange.lowerBound + 2 * 100))
        try handle.write(contentsOf: Data([0x00, 0x7E]))  // f16 NaN
        try handle.close()
        let nan = message(poisoned)
        #expect(nan?.contains("model.layers.1.mlp.up_proj.weight") == true && nan?.contains("nan") == true, "\(nan ?? "")")
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/out.gguf"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).allSatisfy { !$0.contains("partial") })
    }
}
