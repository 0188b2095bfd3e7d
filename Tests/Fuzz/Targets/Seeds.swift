import BitNetFormats
import BitNetModels
import BitNetQuantization
import Foundation

/// Tiny model files for the `model` target: the fixture models are hundreds of kilobytes, too large for
/// a fuzzer to mutate well. Deterministic; `Tests/Fuzz/seeds/model/` holds their bytes (the regression
/// tests check that the committed files are what this writes).
public enum FuzzSeeds {
    /// (file name, BitLinear weight type, architecture, hidden size, FFN size, heads, KV heads).
    static let shapes: [(String, GGMLType, BitNetArchitecture, Int, Int, Int, Int)] = [
        ("bitnet-f16.gguf", .f16, .bitnetB158, 16, 32, 2, 1),
        ("llama-f32.gguf", .f32, .llama, 16, 24, 4, 2),
        ("bitnet-i2_s.gguf", .i2_s, .bitnetB158, 128, 128, 2, 1),
    ]

    /// The seeds' names and bytes.
    public static func models() throws -> [(name: String, bytes: [UInt8])] {
        try shapes.map { name, type, architecture, hidden, ffn, heads, kvHeads in
            (name, try model(type: type, architecture: architecture, hidden: hidden, ffn: ffn, heads: heads, kvHeads: kvHeads))
        }
    }

    static func model(type: GGMLType, architecture: BitNetArchitecture, hidden: Int, ffn: Int, heads: Int, kvHeads: Int) throws -> [UInt8] {
        let configuration = ModelConfiguration(
            architecture: architecture, vocabularySize: 8, hiddenSize: hidden, intermediateSize: ffn, layerCount: 1, headCount: heads,
            keyValueHeadCount: kvHeads, headDimension: hidden / heads, rmsNormEpsilon: 1e-5, ropeTheta: 10_000,
            rotaryLayout: architecture.definition.ggufRotaryLayout, contextLength: 64)
        var metadata = GGUFMetadata()
        for (key, value) in configuration.ggufMetadata { metadata[key] = value }
        let roles: [(TensorRole, Int)] = [(.tokenEmbedding, 0)] + architecture.definition.layerTensors.map { ($0, 0) } + [(.outputNorm, 0)]
        var generator = SplitMix(state: 7)
        var declared: [(name: String, type: GGMLType, shape: [Int])] = []
        var data: [[UInt8]] = []
        for (role, layer) in roles {
            let (rows, columns) = role.shape(configuration)
            let count = rows * columns
            if role.isBitLinear {
                let codes = (0..<count).map { _ in Int8(Int(generator.next() % 3) - 1) }
                let ternary = try TernaryTensor(rows: rows, columns: columns, codes: codes, scale: 0.5)
                declared.append((role.ggufName(layer: layer), type, [columns, rows]))
                switch type {
                case .i2_s: data.append(try I2S.pack(ternary))
                case .f16: data.append(ternary.dequantized().flatMap { withUnsafeBytes(of: Float16($0).bitPattern.littleEndian, Array.init) })
                default: data.append(ternary.dequantized().flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) })
                }
            } else {
                let values = rows == 1 ? [Float](repeating: 1, count: count) : (0..<count).map { _ in Float(Int(generator.next() % 200) - 100) / 400 }
                declared.append((role.ggufName(layer: layer), rows == 1 ? .f32 : .f16, rows == 1 ? [columns] : [columns, rows]))
                data.append(rows == 1 ? values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
                                      : values.flatMap { withUnsafeBytes(of: Float16($0).bitPattern.littleEndian, Array.init) })
            }
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bitnet-fuzz-seed-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try GGUFWriter(path: path, metadata: metadata, tensors: declared)
        for bytes in data { try writer.write(bytes) }
        try writer.finish()
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// A GGUF file holding only the tokenizer of `tokenizerJSON` as metadata (the `tokenizer-gguf` seeds).
    public static func tokenizerGGUF(_ tokenizerJSON: Data) throws -> [UInt8] {
        let tokenizer = try BPETokenizer.load(tokenizerJSON: tokenizerJSON, path: "tokenizer.json")
        var metadata = GGUFMetadata()
        metadata["general.architecture"] = .string("llama")
        for (key, value) in tokenizer.ggufMetadata(chatTemplate: nil) { metadata[key] = value }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bitnet-fuzz-seed-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try GGUFWriter(path: path, metadata: metadata, tensors: [])
        try writer.finish()
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    struct SplitMix {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}
