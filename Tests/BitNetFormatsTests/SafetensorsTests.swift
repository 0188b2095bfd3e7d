@testable import BitNetFormats
import Foundation
import TestSupport
import Testing

@Suite struct SafetensorsTests {
    let scratch = TemporaryDirectory()

    @Test func readsWhatTheSafetensorsLibraryWrites() throws {
        let file = try SafetensorsFile(path: Fixtures.path("safetensors/mixed.safetensors"))
        let expected = try Fixtures.json("safetensors/mixed.expected.json")
        #expect(Dictionary(uniqueKeysWithValues: file.metadata) == ["format": "pt", "note": "mixed dtypes"])
        let tensors = expected["tensors"]!.objectValue!
        #expect(file.tensors.count == tensors.count)
        for (name, reference) in tensors {
            let info = try #require(file.tensor(named: name))
            #expect(info.dtype.rawValue == reference["dtype"]!.stringValue!)
            #expect(info.shape == reference["shape"]!.arrayValue!.map { $0.intValue! })
            let values = try file.withTensorData(info) { try info.dtype.floats(from: $0) }
            #expect(values == reference["values"]!.arrayValue!.map { Float($0.doubleValue!) }, "values of \(name)")
        }
    }

    /// A safetensors file from a header text and data bytes.
    func file(header: String, data: [UInt8] = [UInt8](repeating: 0, count: 16), headerLength: UInt64? = nil) -> String {
        let json = Array(header.utf8)
        var bytes = withUnsafeBytes(of: (headerLength ?? UInt64(json.count)).littleEndian, Array.init)
        bytes += json + data
        return scratch.file("t-\(UUID().uuidString).safetensors", bytes)
    }

    func code(_ path: String) -> FormatError.Code? {
        do {
            _ = try SafetensorsFile(path: path)
            Issue.record("opened a damaged file")
            return nil
        } catch let error as FormatError {
            #expect(error.file == path)
            return error.code
        } catch {
            Issue.record("unexpected \(error)")
            return nil
        }
    }

    @Test func validationRules() {
        let ok = #"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#
        #expect((try? SafetensorsFile(path: file(header: ok)))?.tensors.count == 1)
        #expect(code(file(header: ok, headerLength: 1 << 40)) == .countExceedsFile)
        #expect(code(file(header: ok, headerLength: 5_000)) == .countExceedsFile)  // longer than the file
        #expect(code(scratch.file("short.safetensors", [1, 2, 3])) == .truncated)
        #expect(code(file(header: "[1,2]")) == .invalidHeader)
        #expect(code(file(header: #"{"a":"#)) == .invalidHeader)
        #expect(code(file(header: #"{"a":{"dtype":"Q9","shape":[4],"data_offsets":[0,16]}}"#)) == .unknownDType)
        #expect(code(file(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#)) == .invalidHeader)
        #expect(code(file(header: #"{"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}"#)) == .dataOutOfBounds)
        #expect(code(file(header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#)) == .invalidHeader)
        #expect(code(file(header: #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#)) == .elementCountOverflow)
        #expect(code(file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#)) == .overlappingTensors)
        #expect(code(file(header: #"{"__metadata__":{"k":1}}"#)) == .invalidHeader)
    }

    @Test func opensAShardedCheckpointSavedByTransformers() throws {
        let directory = Fixtures.path("safetensors/tiny-bitnet-sharded")
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        #expect(checkpoint.files.count == 4)
        let expected = try Fixtures.json("safetensors/tiny-bitnet-sharded.expected.json")["tensors"]!.objectValue!
        #expect(Set(checkpoint.tensorNames) == Set(expected.map(\.0)))
        for (name, reference) in expected {
            try checkpoint.withTensorData(named: name) { info, bytes in
                #expect(info.shape == reference["shape"]!.arrayValue!.map { $0.intValue! })
                #expect(info.dtype == .bf16)
                #expect(fnv1a64(bytes) == reference["fnv1a64"]!.stringValue!, "bytes of \(name)")
            }
        }
        let configuration = try HuggingFaceConfiguration.load(directory: directory)
        #expect(configuration.modelType == "bitnet" && configuration.architectures == ["BitNetForCausalLM"])
        #expect(configuration.hiddenSize == 64 && configuration.layerCount == 2 && configuration.keyValueHeadCount == 2)
        #expect(configuration.headDimension == 16)
        #expect(configuration.ropeTheta == 500_000)  // from rope_parameters
        #expect(configuration.quantization?.isOnline == true && configuration.quantization?.linearClass == "autobitlinear")
        #expect(configuration.dataType == "bfloat16")
        #expect(configuration.endOfSequenceTokenIDs == [2])
    }

    func copyOfShardedCheckpoint() throws -> String {
        let copy = scratch.path + "/copy-\(UUID().uuidString)"
        try FileManager.default.copyItem(atPath: Fixtures.path("safetensors/tiny-bitnet-sharded"), toPath: copy)
        return copy
    }

    @Test func aMissingShardIsNamed() throws {
        let copy = try copyOfShardedCheckpoint()
        try FileManager.default.removeItem(atPath: copy + "/model-00002-of-00004.safetensors")
        let error = #expect(throws: FormatError.self) { try SafetensorsCheckpoint(directory: copy) }
        #expect(error?.code == .missingFile)
        #expect(error?.message.contains("model-00002-of-00004.safetensors") == true)
    }

    @Test func anIndexThatDisagreesWithItsShardsIsAnError() throws {
        let copy = try copyOfShardedCheckpoint()
        let indexPath = copy + "/model.safetensors.index.json"
        var text = try String(contentsOfFile: indexPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"lm_head.weight\": \"model-00004-of-00004.safetensors\"", with: "\"lm_head.weight\": \"model-00001-of-00004.safetensors\"")
        try text.write(toFile: indexPath, atomically: true, encoding: .utf8)
        let error = #expect(throws: FormatError.self) { try SafetensorsCheckpoint(directory: copy) }
        #expect(error?.code == .missingTensor)
        #expect(error?.message.contains("lm_head.weight") == true)
    }

    @Test func decodesPublishedStyleConfigurations() throws {
        // bitnet-b1.58-2B-4T's config.json keys: top-level rope_theta, packed offline weights.
        let published = """
        {"architectures":["BitNetForCausalLM"],"bos_token_id":128000,"eos_token_id":[128001,128009],
         "hidden_act":"relu2","hidden_size":2560,"intermediate_size":6912,"max_position_embeddings":4096,
         "model_type":"bitnet","num_attention_heads":20,"num_hidden_layers":30,"num_key_value_heads":5,
         "rms_norm_eps":1e-05,"rope_theta":500000.0,"tie_word_embeddings":true,"torch_dtype":"bfloat16",
         "vocab_size":128256,"quantization_config":{"quant_method":"bitnet","linear_class":"bitlinear","quantization_mode":"offline"}}
        """
        let configuration = try HuggingFaceConfiguration.decode(Data(published.utf8))
        #expect(configuration.headDimension == 128)
        #expect(configuration.endOfSequenceTokenIDs == [128001, 128009])
        #expect(configuration.tieWordEmbeddings && configuration.dataType == "bfloat16")
        #expect(configuration.quantization?.isOnline == false && configuration.quantization?.linearClass == "bitlinear")
        // 1bitLLM's config (model_type "llama" with the Bitnet architecture name).
        let llama = #"{"architectures":["BitnetForCausalLM"],"model_type":"llama","hidden_size":1536,"intermediate_size":4096,"num_attention_heads":16,"num_hidden_layers":24,"vocab_size":32002,"rope_theta":10000.0}"#
        let bitllm = try HuggingFaceConfiguration.decode(Data(llama.utf8))
        #expect(bitllm.keyValueHeadCount == 16 && bitllm.hiddenActivation == "silu")
    }

    @Test func rejectsImpossibleConfigurations() {
        func message(_ json: String) -> String? {
            do {
                _ = try HuggingFaceConfiguration.decode(Data(json.utf8), file: "config.json")
                return nil
            } catch let error as FormatError {
                #expect(error.code == .invalidConfiguration)
                return error.message
            } catch { return "\(error)" }
        }
        let base = #""model_type":"bitnet","hidden_size":64,"num_attention_heads":4"#
        #expect(message("{\(base),\"num_key_value_heads\":3}")?.contains("num_key_value_heads") == true)
        #expect(message("{\(base),\"vocab_size\":1000000000000}")?.contains("vocab_size") == true)
        #expect(message("{\(base),\"num_hidden_layers\":0}")?.contains("num_hidden_layers") == true)
        #expect(message(#"{"hidden_size":64}"#)?.contains("model_type") == true)
        #expect(message("{\(base),\"intermediate_size\":\"big\"}")?.contains("intermediate_size") == true)
    }

    /// Inputs from Tests/Fuzz/regressions (see make_reproducers.py), each refused with the error its class calls for.
    @Test(arguments: [("f4-size-overflow", FormatError.Code.invalidHeader), ("duplicate-tensor-name", .invalidHeader),
                      ("overlap-behind-empty-tensor", .overlappingTensors)])
    func hostileHeadersAreRefused(_ name: String, _ code: FormatError.Code) throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Fixtures.directory).deletingLastPathComponent().appendingPathComponent("Fuzz/regressions").appendingPathComponent("safetensors/" + name))
        let error = #expect(throws: FormatError.self) { try SafetensorsFile(bytes: Array(bytes), path: name) }
        #expect(error?.code == code, "\(name): \(error.map { "\($0)" } ?? "")")
    }
}
