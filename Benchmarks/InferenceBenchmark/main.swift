// End-to-end CPU inference speed and memory on a synthetic model of a real shape (random ternary weights, f16
// embeddings), next to a baseline measured in the same run: one pass over the weight bytes, the
// memory-bandwidth floor of a decode step. Uses the public API only.
//
//   swift run -c release InferenceBenchmark [2b4t|small] [prompt tokens] [generated tokens] [threads]
//       [--arch bitnet-b1.58|bitnet] [--type tq2_0|tq1_0|i2_s] [--embed-type f16|q6_k] [--write-only]
//
// The file is written once to the temporary directory and reused; `--write-only` prints its path and stops
// (Benchmarks/compare.py uses it to give llama.cpp and swift-bitnet the same file). Files of the `bitnet`
// architecture (1bitLLM's, which llama.cpp loads) carry a byte-level BPE vocabulary of the shape's size with
// no merges, enough for llama-bench, which feeds random token ids.
import BitNetFormats
import BitNetInference
import BitNetQuantization
import Foundation

struct Shape {
    var hidden, intermediate, layers, heads, kvHeads, vocabulary: Int
}

var arguments = CommandLine.arguments
/// Removes `--name value` from the arguments and returns the value.
@MainActor func option(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    defer { arguments.removeSubrange(index...index + 1) }
    return arguments[index + 1]
}
let architecture = option("--arch").map { BitNetArchitecture(rawValue: $0) } ?? .bitnetB158
let weightType = option("--type").map { GGMLType(name: $0) } ?? .tq2_0
let embeddingType = option("--embed-type").map { GGMLType(name: $0) } ?? .f16
let writeOnly = arguments.contains("--write-only")
arguments.removeAll { $0 == "--write-only" }
guard let architecture, [.bitnetB158, .bitnet1bitLLM].contains(architecture), let weightType, [.tq2_0, .tq1_0, .i2_s].contains(weightType),
      let embeddingType, [.f16, .q6_K].contains(embeddingType) else {
    print("--arch must be bitnet-b1.58 or bitnet, --type tq2_0, tq1_0 or i2_s, --embed-type f16 or q6_k")
    exit(2)
}
let presets = [
    "2b4t": Shape(hidden: 2560, intermediate: 6912, layers: 30, heads: 20, kvHeads: 5, vocabulary: 128_256),
    "small": Shape(hidden: 1024, intermediate: 2816, layers: 8, heads: 16, kvHeads: 4, vocabulary: 32_000),
]
let presetName = arguments.count > 1 ? arguments[1] : "small"
guard let shape = presets[presetName] else {
    print("unknown shape \(presetName); choose \(presets.keys.sorted().joined(separator: ", "))")
    exit(2)
}
let promptTokens = arguments.count > 2 ? Int(arguments[2]) ?? 32 : 32
let generatedTokens = arguments.count > 3 ? Int(arguments[3]) ?? 8 : 8
let threads = arguments.count > 4 ? Int(arguments[4]) ?? ProcessInfo.processInfo.activeProcessorCount : ProcessInfo.processInfo.activeProcessorCount

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

func memory(_ field: String) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }),
          let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kilobytes * 1024
}

func mebibytes(_ bytes: Int) -> String { String(format: "%.0f MiB", Double(bytes) / 1_048_576) }

// 1. A synthetic GGUF of this shape, written once and reused.
let variant = (architecture == .bitnetB158 ? "" : "-\(architecture.rawValue)") + (weightType == .tq2_0 ? "" : "-\(weightType.name)")
    + (embeddingType == .f16 ? "" : "-\(embeddingType.name.lowercased())-embed")
let path = FileManager.default.temporaryDirectory.appendingPathComponent("swift-bitnet-bench-\(presetName)\(variant).gguf").path
if !FileManager.default.fileExists(atPath: path) {
    let start = now()
    FileHandle.standardError.write(Data("writing \(path)…\n".utf8))
    let headDimension = shape.hidden / shape.heads
    let configuration = ModelConfiguration(
        architecture: architecture, vocabularySize: shape.vocabulary, hiddenSize: shape.hidden, intermediateSize: shape.intermediate,
        layerCount: shape.layers, headCount: shape.heads, keyValueHeadCount: shape.kvHeads, headDimension: headDimension,
        rmsNormEpsilon: 1e-5, ropeTheta: 500_000, rotaryLayout: .halves, contextLength: 4096)
    var metadata = GGUFMetadata()
    for (key, value) in configuration.ggufMetadata { metadata[key] = value }
    metadata["general.name"] = .string("synthetic \(presetName)")
    // GPT-2's 256 byte characters, then numbered tokens up to the vocabulary size.
    let byteCharacters = (0..<256).map { byte -> String in
        let printable = { (b: Int) in (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) }
        let shifted = printable(byte) ? byte : 256 + (0..<byte).filter { !printable($0) }.count
        return String(UnicodeScalar(UInt32(shifted))!)
    }
    metadata["tokenizer.ggml.model"] = .string("gpt2")
    metadata["tokenizer.ggml.pre"] = .string("llama-bpe")
    metadata["tokenizer.ggml.tokens"] = .array(.string(byteCharacters + (256..<shape.vocabulary).map { "<t\($0)>" }))
    metadata["tokenizer.ggml.merges"] = .array(.string([]))
    metadata["tokenizer.ggml.bos_token_id"] = .uint32(UInt32(shape.vocabulary - 2))
    metadata["tokenizer.ggml.eos_token_id"] = .uint32(UInt32(shape.vocabulary - 1))
    var tensors: [(name: String, type: GGMLType, shape: [Int])] = [("token_embd.weight", embeddingType, [shape.hidden, shape.vocabulary])]
    for layer in 0..<shape.layers {
        let p = "blk.\(layer)."
        tensors += [
            (p + "attn_norm.weight", .f32, [shape.hidden]),
            (p + "attn_q.weight",  weightType, [shape.hidden, shape.hidden]),
            (p + "attn_k.weight",  weightType, [shape.hidden, shape.kvHeads * headDimension]),
            (p + "attn_v.weight",  weightType, [shape.hidden, shape.kvHeads * headDimension]),
            (p + "attn_sub_norm.weight", .f32, [shape.hidden]),
            (p + "attn_output.weight",  weightType, [shape.hidden, shape.hidden]),
            (p + "ffn_norm.weight", .f32, [shape.hidden]),
            (p + "ffn_gate.weight",  weightType, [shape.hidden, shape.intermediate]),
            (p + "ffn_up.weight",  weightType, [shape.hidden, shape.intermediate]),
            (p + "ffn_sub_norm.weight", .f32, [shape.intermediate]),
            (p + "ffn_down.weight",  weightType, [shape.intermediate, shape.hidden]),
        ]
    }
    tensors.append(("output_norm.weight", .f32, [shape.hidden]))
    let writer = try GGUFWriter(path: path, metadata: metadata, tensors: tensors)
    var generator = Xoshiro256(seed: 42)
    for tensor in tensors {
        let count = tensor.shape.reduce(1, *)
        switch tensor.type {
        case .f16:
            let row = (0..<tensor.shape[0]).flatMap { _ in withUnsafeBytes(of: Float16(Float.random(in: -0.05...0.05, using: &generator)).bitPattern, Array.init) }
            for _ in 0..<tensor.shape[1] { try writer.write(row) }
        case .q6_K:
            // Every row distinct, so the quantizer's work is real; 64 rows at a time.
            for first in stride(from: 0, to: tensor.shape[1], by: 64) {
                let rows = min(64, tensor.shape[1] - first)
                let values = (0..<rows * tensor.shape[0]).map { _ in Float.random(in: -0.05...0.05, using: &generator) }
                try writer.write(try Q6_K.quantize(values, rowLength: tensor.shape[0]))
            }
        case .f32:
            try writer.write([Float](repeating: 1, count: count).withUnsafeBytes(Array.init))
        default:
            let codes = (0..<count).map { _ in Int8(Int(generator.next() % 3) - 1) }
            let ternary = try TernaryTensor(rows: tensor.shape[1], columns: tensor.shape[0], codes: codes, scale: 0.02)
            switch weightType {
            case .tq1_0: try writer.write(try TQ1_0.pack(ternary))
            case .i2_s: try writer.write(try I2S.pack(ternary))
            default: try writer.write(try TQ2_0.pack(ternary))
            }
        }
    }
    try writer.finish()
    FileHandle.standardError.write(Data(String(format: "written in %.1f s\n", now() - start).utf8))
}
if writeOnly {
    print(path)
    exit(0)
}
let fileSize = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0

// 2. Load.
let loadStart = now()
let model = try BitNetModel(path: path, threads: threads)
let loadSeconds = now() - loadStart
let (mapped, owned) = model.weightBytes
let session = try InferenceSession(model: model, contextLength: max(promptTokens + generatedTokens, 1))

// 3. Prompt (one batch) and decode (one token at a time).
var generator = Xoshiro256(seed: 1)
let prompt = (0..<promptTokens).map { _ in Int(generator.next() % UInt64(shape.vocabulary)) }
let promptStart = now()
var logits = try session.evaluate(prompt)[0]
let promptSeconds = now() - promptStart
let decodeStart = now()
for _ in 0..<generatedTokens {
    let next = logits.indices.max { logits[$0] < logits[$1] }!
    logits = try session.evaluate([next])[0]
}
let decodeSeconds = now() - decodeStart

let peakResidentBytes = memory("VmHWM")  // before the baseline maps the file a second time

// 4. Baseline: one pass over every mapped weight byte (the memory-bandwidth floor of a decode step).
let file = try GGUFFile(path: path)
let baselineStart = now()
var checksum: UInt64 = 0
for tensor in file.tensors where tensor.type == weightType {
    file.withTensorData(tensor) { bytes in
        bytes.withMemoryRebound(to: UInt64.self) { words in for word in words { checksum &+= word } }
    }
}
let ternaryBytes = file.tensors.filter { $0.type == weightType }.reduce(0) { $0 + $1.byteCount }
let baselineSeconds = now() - baselineStart

print("""
swift-bitnet inference benchmark: \(presetName) shape (hidden \(shape.hidden), ffn \(shape.intermediate), \(shape.layers) layers, vocab \(shape.vocabulary)), \(architecture.rawValue), \(weightType.name), backend \(model.backend.name)
file \(mebibytes(fileSize)); weights mapped \(mebibytes(mapped)), copied \(mebibytes(owned)); KV cache \(mebibytes(session.cacheBytes)); loaded in \(String(format: "%.2f", loadSeconds)) s

| measurement | value |
|---|---:|
| baseline: one pass over the \(mebibytes(ternaryBytes)) of ternary weights | \(String(format: "%.3f s, %.2f GB/s", baselineSeconds, Double(ternaryBytes) / baselineSeconds / 1e9)) |
| prompt (\(promptTokens) tokens, one batch) | \(String(format: "%.2f tokens/s", Double(promptTokens) / promptSeconds)) |
| decode (\(generatedTokens) tokens) | \(String(format: "%.3f tokens/s, %.2f GB/s of ternary weights", Double(generatedTokens) / decodeSeconds, Double(ternaryBytes) * Double(generatedTokens) / decodeSeconds / 1e9)) |
| peak RSS of load + prompt + decode (VmHWM) | \(mebibytes(peakResidentBytes)) |
| file + KV cache | \(mebibytes(fileSize + session.cacheBytes)) |
""")
if checksum == 42 { print("") }
