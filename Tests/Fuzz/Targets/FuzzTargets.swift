// What the fuzzers run: every input a stranger controls, walked the way swift-bitnet walks it. Shared by
// the libFuzzer harness (`bitnet-fuzz`, built by scripts/fuzz) and by the regression tests, which replay
// every input that once crashed.
import BitNetCPU
import BitNetFormats
import BitNetInference
import Foundation

/// A parser under fuzzing. Errors are the expected outcome of bad input; only a trap, a hang or a huge
/// allocation is a finding.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A GGUF file as `bitnet inspect` and model loading read it: header, metadata, every tensor's bytes,
    /// the hyperparameters.
    case gguf
    /// A safetensors file: header, metadata, every tensor's values.
    case safetensors
    /// `model.safetensors.index.json`.
    case safetensorsIndex = "safetensors-index"
    /// `config.json` decoded into hyperparameters.
    case config
    /// `tokenizer.json`, then encoding and decoding text, and writing its GGUF metadata.
    case tokenizerJSON = "tokenizer-json"
    /// The tokenizer in a GGUF file's metadata, then encoding and decoding text.
    case tokenizerGGUF = "tokenizer-gguf"
    /// Chat-template recognition and rendering.
    case chatTemplate = "chat-template"
    /// A model loaded from a GGUF file, then one forward step.
    case model

    public func run(_ bytes: [UInt8]) {
        switch self {
        case .gguf: Self.gguf(bytes)
        case .safetensors: Self.safetensors(bytes)
        case .safetensorsIndex: _ = try? SafetensorsCheckpoint.parseIndex(Data(bytes), path: "index.json")
        case .config: Self.config(bytes)
        case .tokenizerJSON: Self.tokenizerJSON(bytes)
        case .tokenizerGGUF: Self.tokenizerGGUF(bytes)
        case .chatTemplate: Self.chatTemplate(bytes)
        case .model: Self.model(bytes)
        }
    }

    /// Text every tokenizer is run on: ASCII, accents, CJK, emoji, special tokens, stray bytes.
    static let sample = "Hello, world! déjà vu 日本語 🦙 <|eot_id|><s> \u{0}\u{7F} 123 x=y\n\tend"

    static func gguf(_ bytes: [UInt8]) {
        guard let file = try? GGUFFile(bytes: bytes) else { return }
        let inspection = ModelInspection(gguf: file)
        _ = inspection.text()
        _ = inspection.json.serialized()
        for tensor in file.tensors where tensor.elementCount <= 1 << 16 {
            _ = try? file.withTensorData(tensor) { try tensor.type.floats(from: $0, elementCount: tensor.elementCount) }
        }
        _ = try? ModelConfiguration(gguf: file)
    }

    static func safetensors(_ bytes: [UInt8]) {
        guard let file = try? SafetensorsFile(bytes: bytes) else { return }
        let inspection = ModelInspection(safetensors: file)
        _ = inspection.text()
        _ = inspection.json.serialized()
        for tensor in file.tensors where tensor.elementCount <= 1 << 16 {
            _ = try? file.withTensorData(tensor) { try tensor.dtype.floats(from: $0) }
        }
        _ = try? SafetensorsCheckpoint(files: [file])
    }

    static func config(_ bytes: [UInt8]) {
        guard let config = try? HuggingFaceConfiguration.decode(Data(bytes), file: "config.json") else { return }
        _ = try? ModelConfiguration(huggingFace: config, file: "config.json")
        _ = try? JSONEncoder().encode(config)
    }

    static func exercise(_ tokenizer: BPETokenizer) {
        let ids = tokenizer.encode(sample)
        _ = tokenizer.decode(ids)
        _ = tokenizer.decode(Array(0..<min(tokenizer.vocabularySize, 512)) + [-1, tokenizer.vocabularySize, Int.max])
        _ = tokenizer.ggufMetadata(chatTemplate: "{{ messages }}")
    }

    static func tokenizerJSON(_ bytes: [UInt8]) {
        guard let tokenizer = try? BPETokenizer.load(tokenizerJSON: Data(bytes), path: "tokenizer.json", bos: 1, eos: [2]) else { return }
        exercise(tokenizer)
    }

    static func tokenizerGGUF(_ bytes: [UInt8]) {
        guard let file = try? GGUFFile(bytes: bytes), let tokenizer = try? BPETokenizer.load(gguf: file) else { return }
        exercise(tokenizer)
    }

    static func chatTemplate(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let template = ChatTemplate(jinja: text) else { return }
        _ = template.render([ChatMessage(role: .system, content: text), ChatMessage(role: .user, content: text)], beginning: "<s>", isStart: true)
    }

    static func model(_ bytes: [UInt8]) { _ = loadsAndRuns(bytes) }

    /// Loads a GGUF model from `bytes` and runs a prompt and a decode step; whether both succeeded.
    public static func loadsAndRuns(_ bytes: [UInt8]) -> Bool {
        guard let file = try? GGUFFile(bytes: bytes), let source = try? WeightSource(gguf: file),
              let model = try? BitNetModel(source: source, backend: CPUBackend(threads: 1)),
              let session = try? InferenceSession(model: model, contextLength: 8) else { return false }
        let vocabulary = model.configuration.vocabularySize
        guard (try? session.evaluate([0, vocabulary - 1, vocabulary / 2], allPositions: true)) != nil else { return false }
        return (try? session.evaluate([1 % vocabulary])) != nil
    }
}
