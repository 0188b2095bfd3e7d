// The ternary matmul kernels alone, per instruction set: GEMV (decode, one token) and GEMM (a prompt of 128
// tokens) at the shapes of BitNet 2B-4T and 1bitLLM-large, in GB/s of weights and GOPS (2 ops per weight ×
// token). Weights are random codes with one scale (as BitNet's), spread over more matrices than the caches
// hold, so GEMV reads memory as a decode step does. A plain pass over the same bytes is the baseline. Where a level
// decodes by lookup, a "lookup" row times the GEMV over the rows repacked for it (GB/s of the panels read).
//
//   swift run -c release KernelBenchmark [threads] [--json]
import CBitNetKernels
import Foundation

let arguments = CommandLine.arguments.dropFirst()
let threads = arguments.compactMap { Int($0) }.first ?? Int(max(1, bitnet_physical_cores()))
let json = arguments.contains("--json")

struct Shape { var name: String; var rows: Int; var columns: Int }
let shapes = [
    Shape(name: "2B-4T ffn_up", rows: 6912, columns: 2560),
    Shape(name: "2B-4T ffn_down", rows: 2560, columns: 6912),
    Shape(name: "1bitLLM-large ffn_up", rows: 4096, columns: 1536),
]
let encodings: [(String, bitnet_ternary_encoding, Int, Int)] = [  // name, encoding, values and bytes per block
    ("tq2_0", BITNET_TERNARY_TQ2_0, 256, 66), ("tq1_0", BITNET_TERNARY_TQ1_0, 256, 54), ("i2_s", BITNET_TERNARY_I2_S, 128, 32),
]
/// Bytes of weights cycled through, well beyond the last-level caches of a desktop or a server slice.
let workingSet = 512 << 20

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

let pool = bitnet_pool_create(Int32(threads))
var results: [[String: Any]] = []
var generator = SystemRandomNumberGenerator()

// Baseline: one pass over the working set with the widest loads of the best level, on the pool's threads
// (`bitnet_stream_read`, the read `bitnet bench` takes for its roofline).
let baselineBytes = [UInt8](repeating: 1, count: workingSet)
let bestBaseline = baselineBytes.withUnsafeBytes { raw in
    let regions = [raw.baseAddress], counts = [raw.count]
    return (0..<3).map { _ in
        let start = now()
        _ = bitnet_stream_read(pool, regions, counts, 1)
        return now() - start
    }.min()!
}
let baselineGBps = Double(workingSet) / bestBaseline / 1e9
if !json {
    print("threads \(threads); baseline: one pass over \(workingSet >> 20) MiB = \(String(format: "%.2f", baselineGBps)) GB/s")
    print("| shape | type | isa | GEMV GB/s | GEMV % of baseline | GEMV GOPS | GEMM (128 tokens) GOPS |")
    print("|---|---|---|---:|---:|---:|---:|")
}

for shape in shapes {
    for (name, encoding, blockValues, blockBytes) in encodings {
        let matrixBytes = shape.rows * shape.columns / blockValues * blockBytes + (encoding == BITNET_TERNARY_I2_S ? 32 : 0)
        let count = max(2, workingSet / matrixBytes)
        var bytes = [UInt8](repeating: 0, count: matrixBytes * count)
        bytes.withUnsafeMutableBytes { raw in
            var state = UInt64.random(in: 1...UInt64.max, using: &generator)
            for offset in stride(from: 0, to: raw.count - 7, by: 8) {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                // TQ2_0's and I2_S's 2-bit fields hold codes 0–2 (a field of 3 becomes 1), as a file's do.
                let fields = encoding == BITNET_TERNARY_TQ1_0 ? state : state & ~((state & state >> 1 & 0x5555_5555_5555_5555) << 1)
                raw.storeBytes(of: fields, toByteOffset: offset, as: UInt64.self)
            }
        }
        // One f16 scale (0.1) in every block, or the I2_S tensor scale: BitNet's per-tensor scale.
        for matrix in 0..<count {
            let base = matrix * matrixBytes
            if encoding == BITNET_TERNARY_I2_S {
                withUnsafeBytes(of: Float(0.1)) { for (offset, byte) in $0.enumerated() { bytes[base + matrixBytes - 32 + offset] = byte } }
            } else {
                for block in 0..<(shape.rows * shape.columns / blockValues) {
                    bytes[base + block * blockBytes + blockBytes - 2] = 0x66
                    bytes[base + block * blockBytes + blockBytes - 1] = 0x2E
                }
            }
        }
        for level in 0..<bitnet_kernels_level_count() {
            let isa = String(cString: bitnet_kernels_level_name(level))
            guard bitnet_kernels_force(isa) == 0 else { continue }
            defer { bitnet_kernels_force(nil) }
            var timings: [Int: Double] = [:]
            for tokens in [1, 128] {
                if isa == "scalar" && tokens > 1 { continue }  // minutes, and says nothing new
                let x = (0..<tokens * shape.columns).map { _ in Int8.random(in: -128...127, using: &generator) }
                let scales = [Float](repeating: 1, count: tokens)
                var output = [Float](repeating: 0, count: tokens * shape.rows)
                let passes = tokens == 1 ? count * 3 : 6
                var best = Double.infinity
                bytes.withUnsafeBufferPointer { bytes in
                    // As the CPU backend does: which rows have one scale is found once per matrix, before timing.
                    var uniformRows = [[UInt8]](repeating: [UInt8](repeating: 0, count: shape.rows), count: count)
                    for matrix in 0..<count {
                        var weights = bitnet_ternary_matrix(encoding: Int32(encoding.rawValue), rows: Int64(shape.rows), columns: Int64(shape.columns),
                                                            data: bytes.baseAddress! + matrix * matrixBytes, uniform_rows: nil, lookup_panels: nil)
                        _ = bitnet_ternary_uniform_rows(pool, &weights, &uniformRows[matrix])
                    }
                    for pass in 0..<passes {
                        var matrix = bitnet_ternary_matrix(encoding: Int32(encoding.rawValue), rows: Int64(shape.rows), columns: Int64(shape.columns),
                                                           data: bytes.baseAddress! + (pass % count) * matrixBytes, uniform_rows: nil, lookup_panels: nil)
                        let flags = uniformRows[pass % count]
                        let start = now()
                        flags.withUnsafeBufferPointer { flags in
                            matrix.uniform_rows = flags.baseAddress
                            _ = bitnet_ternary_matmul(pool, &matrix, x, scales, Int64(tokens), &output)
                        }
                        if pass >= count || tokens > 1 { best = min(best, now() - start) }  // the first round warms the pages
                    }
                }
                timings[tokens] = best
            }
            let operations = 2.0 * Double(shape.rows * shape.columns)
            if bitnet_kernels_decode_by_lookup() != 0 {
                // The decode GEMV over the rows repacked for table lookups (as the CPU backend reads them), GB/s of
                // the panels it reads.
                let x = (0..<shape.columns).map { _ in Int8.random(in: -128...127, using: &generator) }
                var output = [Float](repeating: 0, count: shape.rows)
                let (seconds, panelBytes) = bytes.withUnsafeBufferPointer { bytes -> (Double, Int) in
                    var matrices = (0..<count).map { matrix in
                        bitnet_ternary_matrix(encoding: Int32(encoding.rawValue), rows: Int64(shape.rows), columns: Int64(shape.columns),
                                              data: bytes.baseAddress! + matrix * matrixBytes, uniform_rows: nil, lookup_panels: nil)
                    }
                    let panelBytes = Int(bitnet_ternary_lookup_bytes(&matrices[0]))
                    var panels = [UInt8](repeating: 0, count: panelBytes * count)
                    var best = Double.infinity
                    panels.withUnsafeMutableBufferPointer { panels in
                        for matrix in 0..<count {
                            precondition(bitnet_ternary_lookup_pack(pool, &matrices[matrix], panels.baseAddress! + matrix * panelBytes) == 0)
                            matrices[matrix].lookup_panels = UnsafePointer(panels.baseAddress! + matrix * panelBytes)
                        }
                        for pass in 0..<count * 3 {
                            let start = now()
                            _ = bitnet_ternary_matmul(pool, &matrices[pass % count], x, [1], 1, &output)
                            if pass >= count { best = min(best, now() - start) }
                        }
                    }
                    return (best, panelBytes)
                }
                let gbps = Double(panelBytes) / seconds / 1e9, gops = operations / seconds / 1e9
                results.append(["shape": shape.name, "type": name, "isa": isa + " lookup", "threads": threads, "gemv_gbps": gbps,
                                "gemv_gops": gops, "gemm128_gops": NSNull(), "baseline_gbps": baselineGBps])
                if !json {
                    print("| \(shape.name) | \(name) | \(isa) lookup | \(String(format: "%.2f", gbps)) | \(String(format: "%.0f %%", 100 * gbps / baselineGBps)) | "
                          + "\(String(format: "%.1f", gops)) | – |")
                }
            }
            let gemvGBps = Double(matrixBytes) / timings[1]! / 1e9
            let gemvGOPS = operations / timings[1]! / 1e9
            let gemmGOPS = timings[128].map { operations * 128 / $0 / 1e9 }
            results.append(["shape": shape.name, "type": name, "isa": isa, "threads": threads, "gemv_gbps": gemvGBps,
                            "gemv_gops": gemvGOPS, "gemm128_gops": gemmGOPS ?? NSNull(), "baseline_gbps": baselineGBps])
            if !json {
                print("| \(shape.name) | \(name) | \(isa) | \(String(format: "%.2f", gemvGBps)) | \(String(format: "%.0f %%", 100 * gemvGBps / baselineGBps)) | "
                      + "\(String(format: "%.1f", gemvGOPS)) | \(gemmGOPS.map { String(format: "%.0f", $0) } ?? "–") |")
            }
        }
    }
}
if json {
    let data = try JSONSerialization.data(withJSONObject: ["results": results], options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}
bitnet_pool_destroy(pool)
