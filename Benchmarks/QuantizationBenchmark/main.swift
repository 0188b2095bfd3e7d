// Throughput of the quantization layer on 2B-4T-sized tensors, next to a memcpy baseline measured in
// the same run. Build with `swift build -c release` and run `swift run -c release QuantizationBenchmark`.
import BitNetQuantization
import Foundation

struct Measurement {
    var name: String
    var seconds: Double
    var bytes: Int
    var values: Int
}

func measure(_ name: String, bytes: Int, values: Int, repetitions: Int = 3, _ body: () throws -> Void) rethrows -> Measurement {
    var best = Double.infinity
    for _ in 0..<repetitions {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    FileHandle.standardError.write(Data("  measured \(name)\n".utf8))
    return Measurement(name: name, seconds: best, bytes: bytes, values: values)
}

let rows = 6912, columns = 2560  // an FFN projection of bitnet-b1.58-2B-4T
let count = rows * columns
print("swift-bitnet quantization benchmark: \(rows)×\(columns) weights (\(count / 1_000_000) M values), best of 3")
var generator = SystemRandomNumberGenerator()
let weights = (0..<count).map { _ in BFloat16(Float.random(in: -0.05...0.05, using: &generator)) }
let floats = weights.map(\.floatValue)

var results: [Measurement] = []
var sink = [UInt8](repeating: 0, count: count * 2)
results.append(measure("memcpy baseline (bf16 bytes)", bytes: count * 2, values: count) {
    weights.withUnsafeBytes { source in sink.withUnsafeMutableBytes { $0.copyMemory(from: source) } }
})
var ternary = try AbsmeanQuantizer.ternarize(weights, rows: rows, columns: columns)
results.append(try measure("absmean ternarize (bf16 in)", bytes: count * 2, values: count) {
    ternary = try AbsmeanQuantizer.ternarize(weights, rows: rows, columns: columns)
})
var tq2 = try TQ2_0.pack(ternary)
results.append(try measure("TQ2_0 pack", bytes: tq2.count, values: count) { tq2 = try TQ2_0.pack(ternary) })
results.append(try measure("TQ2_0 unpack", bytes: tq2.count, values: count) {
    _ = try tq2.withUnsafeBytes { try TQ2_0.unpackTensor($0, rows: rows, columns: columns) }
})
var tq1 = try TQ1_0.pack(ternary)
results.append(try measure("TQ1_0 pack", bytes: tq1.count, values: count) { tq1 = try TQ1_0.pack(ternary) })
var i2s = try I2S.pack(ternary)
results.append(try measure("I2_S pack", bytes: i2s.count, values: count) { i2s = try I2S.pack(ternary) })
results.append(try measure("TQ2_0 quantize from f32 (gguf-py path)", bytes: tq2.count, values: count) {
    _ = try TQ2_0.quantize(floats, rowLength: columns)
})
let activations = (0..<columns).map { _ in Float.random(in: -4...4, using: &generator) }
let quantized = try AbsmaxQuantizer.quantize(activations, rows: 1, columns: columns)
results.append(try measure("BitLinear oracle GEMV (scalar)", bytes: count / 4, values: count) {
    _ = try BitLinearReference.forward(quantized, ternary)
})

print("")
print("| operation | time (ms) | M values/s | GB/s |")
print("|---|---:|---:|---:|")
for result in results {
    let valuesPerSecond = Double(result.values) / result.seconds / 1e6
    let gigabytes = Double(result.bytes) / result.seconds / 1e9
    print("| \(result.name) | \(String(format: "%.1f", result.seconds * 1e3)) | \(String(format: "%.0f", valuesPerSecond)) | \(String(format: "%.2f", gigabytes)) |")
}
