import BitNetInference
import BitNetQuantization
import Foundation
import Synchronization
import CBitNetKernels
import TestSupport
import Testing

/// The C kernels against the scalar BitLinear oracle, on every dispatch path this CPU has.
@Suite(.serialized) struct KernelTests {
    /// Every instruction set of this architecture that this CPU runs (the kernels refuse to be forced onto one it
    /// does not): scalar, avx2, avxvnni, avx512vnni on x86-64; scalar, neondot on Arm64.
    static let paths: [String] = (0..<bitnet_kernels_level_count()).map { String(cString: bitnet_kernels_level_name($0)) }.filter { isa in
        defer { bitnet_kernels_force(nil) }
        return bitnet_kernels_force(isa) == 0
    }

    /// A packed random ternary matrix and what the kernels must compute from it: the codes and each block's scale.
    struct TernaryCase {
        var encoding: bitnet_ternary_encoding
        var rows: Int, columns: Int
        var codes: [Int8]
        /// Per row and block of 256 (TQ), or one for the tensor (I2_S).
        var blockScales: [Float]
        var packed: [UInt8]

        /// `uniform`: every block of a row shares the row's scale, as BitNet weights do; otherwise about half the
        /// rows have a different scale in each block (the kernels' slower per-block path).
        /// `every`: that code for every weight instead of random ones.
        init(_ encoding: bitnet_ternary_encoding, rows: Int, columns: Int, uniform: Bool, seed: UInt64, every: Int8? = nil) throws {
            var generator = SeededGenerator(seed: seed)
            self.encoding = encoding
            self.rows = rows
            self.columns = columns
            codes = (0..<rows * columns).map { _ in every ?? Int8.random(in: -1...1, using: &generator) }
            let tensor = try TernaryTensor(rows: rows, columns: columns, codes: codes, scale: 0.25)
            switch encoding {
            case BITNET_TERNARY_I2_S:
                blockScales = [0.25]
                packed = try I2S.pack(tensor)
            default:
                let format: any TernaryBlockFormat.Type = encoding == BITNET_TERNARY_TQ2_0 ? TQ2_0.self : TQ1_0.self
                let blocks = columns / 256
                blockScales = (0..<rows * blocks).map { index in
                    uniform || (index / blocks) % 2 == 0 ? 0.25 + Float(index / blocks) / 64 : Float.random(in: 0.01...2, using: &generator)
                }
                blockScales = blockScales.map { Float(Float16($0)) }
                var bytes = [UInt8](repeating: 0, count: rows * blocks * format.bytesPerBlock)
                let scales = blockScales
                codes.withUnsafeBufferPointer { codes in
                    bytes.withUnsafeMutableBytes { output in
                        for index in 0..<rows * blocks {
                            format.packBlock(codes.baseAddress! + index * 256, scale: scales[index], into: output.baseAddress! + index * format.bytesPerBlock)
                        }
                    }
                }
                packed = bytes
            }
        }

        /// The matmul in double precision from the codes: Σ_b d_b Σ_{i∈b} c·x / a.
        func expected(_ x: [Int8], scales: [Float], tokens: Int) -> [Double] {
            let blocks = columns / 256
            var output = [Double](repeating: 0, count: tokens * rows)
            for token in 0..<tokens {
                for row in 0..<rows {
                    var sum = 0.0
                    for column in 0..<columns {
                        let d = blockScales.count == 1 ? blockScales[0] : blockScales[row * blocks + column / 256]
                        sum += Double(d) * Double(codes[row * columns + column]) * Double(x[token * columns + column])
                    }
                    output[token * rows + row] = sum / Double(scales[token])
                }
            }
            return output
        }

        /// Which rows have one scale in every block, as the packing chose them.
        var uniformRows: [UInt8] {
            let blocks = blockScales.count == 1 ? 1 : columns / 256
            return (0..<rows).map { row in
                blockScales.count == 1 || Set(blockScales[row * blocks..<(row + 1) * blocks]).count == 1 ? 1 : 0
            }
        }

        /// The kernels' matmul; with `uniformRows`, given which rows have one scale (as the CPU backend does),
        /// else left to find it row by row.
        func run(_ x: [Int8], scales: [Float], tokens: Int, pool: OpaquePointer?, uniformRows: [UInt8]? = nil, lookupPanels: [UInt8]? = nil) -> [Float] {
            var output = [Float](repeating: .nan, count: tokens * rows)
            packed.withUnsafeBufferPointer { bytes in
                var matrix = bitnet_ternary_matrix(encoding: Int32(encoding.rawValue), rows: Int64(rows), columns: Int64(columns),
                                                   data: bytes.baseAddress!, uniform_rows: nil, lookup_panels: nil)
                if let lookupPanels {
                    lookupPanels.withUnsafeBufferPointer { panels in
                        matrix.lookup_panels = panels.baseAddress
                        #expect(bitnet_ternary_matmul(pool, &matrix, x, scales, Int64(tokens), &output) == 0)
                    }
                    return
                }
                if let uniformRows {
                    uniformRows.withUnsafeBufferPointer { flags in
                        matrix.uniform_rows = flags.baseAddress
                        #expect(bitnet_ternary_matmul(pool, &matrix, x, scales, Int64(tokens), &output) == 0)
                    }
                } else {
                    #expect(bitnet_ternary_matmul(pool, &matrix, x, scales, Int64(tokens), &output) == 0)
                }
            }
            return output
        }

        /// `bitnet_ternary_lookup_pack`'s panels of the packed bytes, or nil where it refuses them.
        func lookupPanels(pool: OpaquePointer?, fill: UInt8 = 0xA5) -> [UInt8]? {
            packed.withUnsafeBufferPointer { bytes in
                var matrix = bitnet_ternary_matrix(encoding: Int32(encoding.rawValue), rows: Int64(rows), columns: Int64(columns),
                                                   data: bytes.baseAddress!, uniform_rows: nil, lookup_panels: nil)
                var panels = [UInt8](repeating: fill, count: Int(bitnet_ternary_lookup_bytes(&matrix)))
                return !panels.isEmpty && bitnet_ternary_lookup_pack(pool, &matrix, &panels) == 0 ? panels : nil
            }
        }

        /// `bitnet_ternary_uniform_rows` on the packed bytes.
        func foundUniformRows(pool: OpaquePointer?) -> (flags: [UInt8], count: Int64) {
            var flags = [UInt8](repeating: 7, count: rows)
            let count = packed.withUnsafeBufferPointer { bytes in
                var matrix = bitnet_ternary_matrix(encoding: Int32(encoding.rawValue), rows: Int64(rows), columns: Int64(columns),
                                                   data: bytes.baseAddress!, uniform_rows: nil, lookup_panels: nil)
                return bitnet_ternary_uniform_rows(pool, &matrix, &flags)
            }
            return (flags, count)
        }
    }

    /// Activations with the extremes (−128 and 127) at fixed positions and random values elsewhere.
    static func activations(tokens: Int, columns: Int, seed: UInt64) -> (values: [Int8], scales: [Float]) {
        var generator = SeededGenerator(seed: seed)
        let values = (0..<tokens * columns).map { index -> Int8 in
            index % 7 == 0 ? -128 : (index % 11 == 0 ? 127 : Int8.random(in: -128...127, using: &generator))
        }
        return (values, (0..<tokens).map { _ in Float.random(in: 0.5...40, using: &generator) })
    }

    /// Decode, prompt and short-row prompt tiles (8 tokens where a row is short enough), with tails of rows and tokens.
    static let shapes: [(rows: Int, columns: Int, tokens: Int)] = [(1, 256, 1), (7, 512, 1), (70, 768, 1), (9, 768, 5), (6, 2560, 3), (13, 256, 9), (66, 1280, 4),
                                                                   (33, 512, 2), (7, 1024, 17), (5, 3584, 8)]

    /// Every encoding, uniform and per-block scales, odd rows and tokens (tile tails), 1 and 3 threads: each
    /// instruction set gives the scalar kernels' floats to the bit, and those agree with the double-precision sum;
    /// told which rows have one scale (found by `bitnet_ternary_uniform_rows`, checked here), the same floats.
    @Test(arguments: [BITNET_TERNARY_TQ2_0, BITNET_TERNARY_TQ1_0, BITNET_TERNARY_I2_S])
    func ternaryMatmulMatchesTheOracleOnEveryPath(_ encoding: bitnet_ternary_encoding) throws {
        let pools = [nil, bitnet_pool_create(3)]
        defer { bitnet_pool_destroy(pools[1]) }
        var shapes = Self.shapes
        if encoding == BITNET_TERNARY_I2_S { shapes += [(5, 384, 3), (3, 128, 6)] }  // I2_S rows are whole 128-value blocks
        for (index, shape) in shapes.enumerated() {
            for uniform in encoding == BITNET_TERNARY_I2_S ? [true] : [true, false] {
                let matrix = try TernaryCase(encoding, rows: shape.rows, columns: shape.columns, uniform: uniform, seed: UInt64(index * 31 + Int(encoding.rawValue)))
                let (x, scales) = Self.activations(tokens: shape.tokens, columns: shape.columns, seed: UInt64(index))
                let expected = matrix.expected(x, scales: scales, tokens: shape.tokens)
                let magnitude = expected.map(abs).max()! + 1
                let found = matrix.foundUniformRows(pool: pools[1])
                #expect(found.flags == matrix.uniformRows, "\(encoding) \(shape) uniform \(uniform)")
                #expect(found.count == Int64(matrix.uniformRows.reduce(0) { $0 + Int($1) }))
                if !uniform && shape.columns > 256 { #expect(found.count < shape.rows, "some rows have block scales") }
                var scalar: [Float]?
                for path in Self.paths {
                    #expect(bitnet_kernels_force(path) == 0)
                    defer { bitnet_kernels_force(nil) }
                    for pool in pools {
                        let output = matrix.run(x, scales: scales, tokens: shape.tokens, pool: pool)
                        let label = "\(encoding) \(shape) uniform \(uniform) \(path) threads \(bitnet_pool_threads(pool))"
                        let error = zip(output, expected).map { abs(Double($0) - $1) }.max()!
                        #expect(error / magnitude < 1e-6, "\(label): error \(error)")
                        if let scalar { #expect(output == scalar, "\(label) differs from scalar") } else { scalar = output }
                        let told = matrix.run(x, scales: scales, tokens: shape.tokens, pool: pool, uniformRows: found.flags)
                        #expect(told == output, "\(label), told which rows are uniform")
                    }
                }
            }
        }
    }

    /// Matmuls over lookup panels (5 bits per three weights, ternary_lookup.c) give the stored rows' scalar floats to
    /// the bit on every level: decode steps by lookup, including the extremes (every weight +1 or −1 against −128 or
    /// +127, which the panels' byte sums must hold), batches of 2–32 tokens by lookup (passes of 4 tokens and the last
    /// 1, 2 or 3), and prompts of 33 tokens from the panels unpacked, with columns that are not a multiple of three and
    /// 1 and 3 threads; levels without lookups read the stored rows. Matrices with
    /// block scales, code 3 or rows not a multiple of 32 are refused.
    @Test(arguments: [BITNET_TERNARY_TQ2_0, BITNET_TERNARY_TQ1_0, BITNET_TERNARY_I2_S])
    func lookupPanelsGiveTheStoredRowsFloats(_ encoding: bitnet_ternary_encoding) throws {
        let pools = [nil, bitnet_pool_create(3)]
        defer { bitnet_pool_destroy(pools[1]) }
        let shapes: [(rows: Int, columns: Int)] = [(32, 256), (64, 768), (96, 2560), (32, 6912)] + (encoding == BITNET_TERNARY_I2_S ? [(32, 128), (64, 384)] : [])
        var lookups = 0
        for (index, shape) in shapes.enumerated() {
            for every: Int8? in [nil, 1, -1] {
                let matrix = try TernaryCase(encoding, rows: shape.rows, columns: shape.columns, uniform: true, seed: UInt64(index * 7 + 3), every: every)
                let (x, scales) = every == nil ? Self.activations(tokens: 1, columns: shape.columns, seed: UInt64(index))
                    : ([Int8](repeating: every == 1 ? Int8.min : Int8.max, count: shape.columns), [Float(1)])
                let panels = try #require(matrix.lookupPanels(pool: pools[1]), "\(encoding) \(shape)")
                #expect(matrix.lookupPanels(pool: nil, fill: 0x5A) == panels, "the same panels on one thread, every byte written")
                for path in Self.paths {
                    #expect(bitnet_kernels_force(path) == 0)
                    defer { bitnet_kernels_force(nil) }
                    #expect(matrix.lookupPanels(pool: pools[1], fill: 0x5A) == panels, "\(encoding) \(shape) packed by \(path)")
                }
                #expect(bitnet_kernels_force("scalar") == 0)
                let expected = matrix.run(x, scales: scales, tokens: 1, pool: nil)
                bitnet_kernels_force(nil)
                if every != nil { #expect(zip(expected, matrix.expected(x, scales: scales, tokens: 1)).allSatisfy { Double($0) == $1 }) }
                for path in Self.paths {
                    #expect(bitnet_kernels_force(path) == 0)
                    defer { bitnet_kernels_force(nil) }
                    if bitnet_kernels_decode_by_lookup() != 0 { lookups += 1 }
                    for pool in pools {
                        let output = matrix.run(x, scales: scales, tokens: 1, pool: pool, lookupPanels: panels)
                        #expect(output == expected, "\(encoding) \(shape) every \(String(describing: every)) \(path) threads \(bitnet_pool_threads(pool))")
                    }
                }
            }
            // Batches looked up (up to 32 tokens, 4 a pass) and prompts from the panels unpacked per chunk of rows.
            let matrix = try TernaryCase(encoding, rows: shape.rows, columns: shape.columns, uniform: true, seed: UInt64(index * 7 + 4))
            let panels = try #require(matrix.lookupPanels(pool: nil))
            for tokens in [2, 3, 5, 7, 32, 33] {
                let (x, scales) = Self.activations(tokens: tokens, columns: shape.columns, seed: UInt64(index + tokens))
                #expect(bitnet_kernels_force("scalar") == 0)
                let expected = matrix.run(x, scales: scales, tokens: tokens, pool: nil)
                bitnet_kernels_force(nil)
                for path in Self.paths {
                    #expect(bitnet_kernels_force(path) == 0)
                    defer { bitnet_kernels_force(nil) }
                    for pool in pools {
                        let output = matrix.run(x, scales: scales, tokens: tokens, pool: pool, lookupPanels: panels)
                        #expect(output == expected, "\(encoding) \(shape) \(tokens) tokens \(path) threads \(bitnet_pool_threads(pool))")
                    }
                }
            }
        }
        let turnedOff = ProcessInfo.processInfo.environment["BITNET_DECODE_LOOKUP"] == "0"
        #expect(lookups > 0 || !Self.paths.contains("avx2") || turnedOff, "AVX2 decodes by lookup")
        // The panels are what a lookup level reads: another matrix's panels give that matrix's floats.
        let first = try TernaryCase(encoding, rows: 64, columns: 768, uniform: true, seed: 11)
        let second = try TernaryCase(encoding, rows: 64, columns: 768, uniform: true, seed: 12)
        let secondPanels = try #require(second.lookupPanels(pool: nil))
        for path in Self.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            let expected = bitnet_kernels_decode_by_lookup() != 0 ? second : first
            for tokens in [1, 4, 40] {
                let (x, scales) = Self.activations(tokens: tokens, columns: 768, seed: 13)
                let output = first.run(x, scales: scales, tokens: tokens, pool: nil, lookupPanels: secondPanels)
                #expect(output == expected.run(x, scales: scales, tokens: tokens, pool: nil), "\(encoding) \(path) \(tokens) tokens: the rows it reads")
            }
        }
        // Refused by every level's packing.
        let blockScales = try TernaryCase(encoding, rows: 32, columns: 768, uniform: false, seed: 5)
        var unusedCode = try TernaryCase(encoding, rows: 64, columns: 768, uniform: true, seed: 5)
        unusedCode.packed[unusedCode.packed.count - 70] |= 0b0011_0000  // the last panel's last row
        let fewRows = try TernaryCase(encoding, rows: 48, columns: 256, uniform: true, seed: 5)
        for path in Self.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            if encoding != BITNET_TERNARY_I2_S { #expect(blockScales.lookupPanels(pool: nil) == nil, "\(path): rows with block scales are refused") }
            #expect(fewRows.lookupPanels(pool: nil) == nil, "\(path): rows not a multiple of 32 are refused")
            if encoding != BITNET_TERNARY_TQ1_0 { #expect(unusedCode.lookupPanels(pool: pools[1]) == nil, "\(path): a field holding code 3 is refused") }
        }
    }

    /// The largest sums a tile can meet: every weight +1 (stored code 2) against activations of −128 or +127 over
    /// 4,096 columns, 8 tokens (a whole prompt tile) and 3. The 256-bit prompt tiles sum 2,048 values in 16 bits
    /// before widening, which reaches −32,768 exactly here; summing more before widening would wrap.
    @Test(arguments: [BITNET_TERNARY_TQ2_0, BITNET_TERNARY_TQ1_0, BITNET_TERNARY_I2_S])
    func extremeSumsDoNotWrap(_ encoding: bitnet_ternary_encoding) throws {
        let matrix = try TernaryCase(encoding, rows: 5, columns: 4096, uniform: true, seed: 7, every: 1)
        for (value, tokens) in [(Int8.min, 8), (Int8.max, 8), (Int8.min, 3)] {
            let x = [Int8](repeating: value, count: tokens * 4096), scales = [Float](repeating: 1, count: tokens)
            let expected = matrix.expected(x, scales: scales, tokens: tokens)
            for path in Self.paths {
                #expect(bitnet_kernels_force(path) == 0)
                defer { bitnet_kernels_force(nil) }
                let output = matrix.run(x, scales: scales, tokens: tokens, pool: nil)
                #expect(zip(output, expected).allSatisfy { Double($0) == $1 }, "\(encoding) \(path) x = \(value) × \(tokens) tokens: \(output.prefix(3)) against \(expected.prefix(3))")
            }
        }
    }

    /// The f16 cache's stores give Swift's `Float16(_:)` bits on every level: ties to even among normals and
    /// subnormals, the largest half and the first value that rounds past it, infinities, signed zeros, NaN, and a
    /// vector tail (37 values).
    @Test func floatToHalfGivesSwiftsFloat16() {
        var generator = SeededGenerator(seed: 11)
        let edges: [Float] = [1 + 0x1p-11, 1 + 3 * 0x1p-11, -(1 + 0x1p-11), 0x1p-24, 0x1p-25, 3 * 0x1p-25, 0x1.8p-24, 0x1p-26,
                              65504, 65519.99, 65520, -65520, .infinity, -.infinity, 0, -0.0, .nan, 0x1p-14, 0x1.ffcp-15,
                              Float.leastNonzeroMagnitude, .greatestFiniteMagnitude]
        let x = edges + (0..<37).map { _ in Float.random(in: -1...1, using: &generator) * Float(sign: .plus, exponent: Int.random(in: -30...17, using: &generator), significand: 1) }
        let expected = x.map { Float16($0) }
        for path in Self.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            for count in [x.count, 37, 7] {
                var out = [UInt16](repeating: 0xFFFF, count: count)
                bitnet_float_to_half(x, Int64(count), &out)
                for i in 0..<count {
                    let half = Float16(bitPattern: out[i])
                    #expect(half.bitPattern == expected[i].bitPattern || (half.isNaN && expected[i].isNaN),
                            "\(path): \(x[i]) gave \(String(out[i], radix: 16)), Swift \(String(expected[i].bitPattern, radix: 16))")
                }
            }
        }
    }

    /// The C quantizer the CPU backend runs gives `AbsmaxQuantizer`'s codes and scales (checked against
    /// transformers' `ActQuant` in BitNetQuantizationTests) bit for bit on every instruction set: rounding ties,
    /// clamps, NaN (anywhere in a row, it makes the scale NaN and every code 0, as torch.max would), infinities,
    /// rows below the ε clamp, vector tails.
    @Test(arguments: [37, 2560])
    func cQuantizationIsBitExactWithTheSwiftQuantizer(columns: Int) throws {
        var generator = SeededGenerator(seed: 11)
        var rows: [[Float]] = (0..<6).map { _ in (0..<columns).map { _ in Float.random(in: -3...3, using: &generator) } }
        rows.append((0..<columns).map { Float($0 % 37 - 18) / 18 * 127 / 127 })  // values that land on .5 ties
        rows.append((0..<columns).map { _ in Float.random(in: -1e-7...1e-7, using: &generator) })  // below ε
        rows.append((0..<columns).map { $0 == 3 ? .nan : Float($0) })
        rows.append((0..<columns).map { $0 == columns - 1 ? .nan : Float($0) })
        rows.append((0..<columns).map { $0 == 5 ? -.infinity : Float($0) })
        rows.append((0..<columns).map { $0 == columns - 2 ? .infinity : -Float($0) })
        rows.append([Float](repeating: 0, count: columns))
        let flat = rows.flatMap { $0 }
        let expected = try AbsmaxQuantizer.quantize(flat, rows: rows.count, columns: columns)
        #expect(expected.scales[8].isNaN && expected.scales[9].isNaN)
        #expect(expected.values[8 * columns..<10 * columns].allSatisfy { $0 == 0 })
        let pool = bitnet_pool_create(3)
        defer { bitnet_pool_destroy(pool) }
        for path in Self.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            var codes = [Int8](repeating: 99, count: flat.count), scales = [Float](repeating: 0, count: rows.count)
            bitnet_quantize_rows(pool, flat, Int64(rows.count), Int64(columns), &codes, &scales)
            #expect(codes == expected.values, "\(path)")
            #expect(scales.map(\.bitPattern) == expected.scales.map(\.bitPattern), "\(path)")
        }
    }

    @Test func threadPoolRunsEveryItemOnce() {
        for threads: Int32 in [1, 2, 5] {
            let pool = bitnet_pool_create(threads)
            defer { bitnet_pool_destroy(pool) }
            #expect(bitnet_pool_threads(pool) == threads)
            for (count, grain) in [(0, 1), (1, 1), (7, 3), (1000, 1), (1000, 64), (33, 100)] {
                var hits = [Int32](repeating: 0, count: count)
                hits.withUnsafeMutableBufferPointer { hits in
                    bitnet_pool_run(pool, Int64(count), Int64(grain), { context, begin, end, thread in
                        let hits = context!.assumingMemoryBound(to: Int32.self)
                        for item in Int(begin)..<Int(end) { hits[item] += 1 }
                    }, hits.baseAddress)
                }
                #expect(hits.allSatisfy { $0 == 1 }, "\(threads) threads, \(count) items in chunks of \(grain)")
            }
        }
    }

    /// Threads start with contiguous shares and take from one another when theirs run out. The caller's first
    /// chunk waits (up to 10 s) until another thread has run an item of the caller's share, which happens only if
    /// chunks move; every item still runs once, in whole chunks.
    @Test func threadPoolMovesChunksFromABusyShare() {
        final class Witness: Sendable { let moved = Atomic<Bool>(false) }
        struct Job {
            let hits: UnsafeMutablePointer<Int32>
            /// Each item's chunk, as the task was called with it.
            let begins: UnsafeMutablePointer<Int64>, ends: UnsafeMutablePointer<Int64>
            let callerShareEnd: Int64
            let witness: Witness
        }
        for threads: Int32 in [2, 3, 8] {
            let pool = bitnet_pool_create(threads)
            defer { bitnet_pool_destroy(pool) }
            for (count, grain) in [(997, 5), (64, 1), (1000, 64)] {
                let chunks = (count + grain - 1) / grain
                var hits = [Int32](repeating: 0, count: count)
                var begins = [Int64](repeating: -1, count: count), ends = [Int64](repeating: -1, count: count)
                let witness = Witness()
                hits.withUnsafeMutableBufferPointer { hits in
                    begins.withUnsafeMutableBufferPointer { begins in
                        ends.withUnsafeMutableBufferPointer { ends in
                            var job = Job(hits: hits.baseAddress!, begins: begins.baseAddress!, ends: ends.baseAddress!,
                                          callerShareEnd: Int64(chunks / Int(threads) * grain), witness: witness)
                            bitnet_pool_run(pool, Int64(count), Int64(grain), { context, begin, end, thread in
                                let job = context!.assumingMemoryBound(to: Job.self).pointee
                                for item in Int(begin)..<Int(end) {
                                    job.hits[item] += 1
                                    job.begins[item] = begin
                                    job.ends[item] = end
                                }
                                if thread != 0 && begin < job.callerShareEnd { job.witness.moved.store(true, ordering: .relaxed) }
                                if thread == 0 && begin == 0 {
                                    let deadline = Date().addingTimeInterval(10)
                                    while !job.witness.moved.load(ordering: .relaxed) && Date() < deadline { usleep(100) }
                                }
                            }, &job)
                        }
                    }
                }
                let label = "\(threads) threads, \(count) items in chunks of \(grain)"
                let moved = witness.moved.load(ordering: .relaxed)
                #expect(moved, "\(label): no chunk of the caller's share moved")
                #expect(hits.allSatisfy { $0 == 1 }, "\(label)")
                #expect(begins.allSatisfy { $0 % Int64(grain) == 0 }, "\(label)")
                #expect(zip(begins, ends).allSatisfy { $1 == min($0 + Int64(grain), Int64(count)) }, "\(label)")
            }
        }
    }

    /// `bitnet_exp` (softmax's and SiLU's path) gives libm's expf to the bit on every level: groups of 8 inside the
    /// vector range, groups with a value outside it (|x| ≥ 88, ±∞, NaN, results that underflow), and a tail.
    @Test func expGivesLibmsFloats() {
        var generator = SeededGenerator(seed: 12)
        var values = (0..<4000).map { _ in Float.random(in: -95...95, using: &generator) }
        for (index, special) in [Float](arrayLiteral: 0, -0.0, .nan, .infinity, -.infinity, 88, -88, 87.99, -87.99, 88.72, -103.9,
                                                    -120, .leastNonzeroMagnitude, -.leastNormalMagnitude, 1e-30).enumerated() {
            values[5 + 29 * index] = special
        }
        values += (0..<37).map { Float($0) - 18.5 }  // a tail past the last group of 8
        let expected = values.map { expf($0).bitPattern }
        for path in Self.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            var found = values
            bitnet_exp(&found, Int64(found.count))
            #expect(found.map(\.bitPattern) == expected, "\(path)")
        }
    }

    @Test(arguments: [1, 7, 8, 15, 16, 17, 2560])
    func floatRowDotsMatchDoubleSums(length: Int) {
        var generator = SeededGenerator(seed: UInt64(length))
        let weights = (0..<length).map { _ in Float.random(in: -1...1, using: &generator) }
        let x = (0..<length).map { _ in Float.random(in: -1...1, using: &generator) }
        let halves = weights.map { Float16($0) }, brains = weights.map { BFloat16($0) }
        func exact(_ w: [Float]) -> Double { zip(w, x).reduce(0) { $0 + Double($1.0) * Double($1.1) } }
        let scale = zip(weights, x).reduce(0.0) { $0 + Double(abs($1.0 * $1.1)) } + 1e-9
        for path in Self.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            let f32 = bitnet_dot_f32(weights, x, Int64(length))
            let f16 = halves.map(\.bitPattern).withUnsafeBufferPointer { bitnet_dot_f16($0.baseAddress!, x, Int64(length)) }
            let bf16 = brains.map(\.bitPattern).withUnsafeBufferPointer { bitnet_dot_bf16($0.baseAddress!, x, Int64(length)) }
            #expect(abs(Double(f32) - exact(weights)) / scale < 1e-5, "\(path) f32")
            #expect(abs(Double(f16) - exact(halves.map(Float.init))) / scale < 1e-5, "\(path) f16")
            #expect(abs(Double(bf16) - exact(brains.map(\.floatValue))) / scale < 1e-5, "\(path) bf16")
        }
    }

    /// Q8_0 and Q6_K output projections read in place: every level against the double-precision sum over the
    /// rows our (gguf-py- and llama.cpp-identical) decoders give, several rows and tokens, on a pool. Q6_K meets
    /// activations quantized to int8 per 256 values (llama.cpp's Q8_K): the reference uses those, and since the
    /// sums are integers, every level gives the same floats.
    @Test(arguments: [(BITNET_FLOAT_Q8_0, 32), (BITNET_FLOAT_Q8_0, 2560), (BITNET_FLOAT_Q6_K, 256), (BITNET_FLOAT_Q6_K, 2560)])
    func blockFloatMatmulsMatchDecodedRows(encoding: bitnet_float_encoding, columns: Int) throws {
        let rows = 5, tokens = 3
        var generator = SeededGenerator(seed: UInt64(columns) + UInt64(encoding.rawValue))
        let values = (0..<rows * columns).map { _ in Float.random(in: -1...1, using: &generator) * Float.random(in: 0...2, using: &generator) }
        let x = (0..<tokens * columns).map { _ in Float.random(in: -1...1, using: &generator) * Float.random(in: 0...3, using: &generator) }
        let bytes = encoding == BITNET_FLOAT_Q8_0 ? try Q8_0.quantize(values, rowLength: columns) : try Q6_K.quantize(values, rowLength: columns)
        let decoded = encoding == BITNET_FLOAT_Q8_0 ? try Q8_0.dequantize(bytes) : try Q6_K.dequantize(bytes)
        let activations = encoding == BITNET_FLOAT_Q8_0 ? x.map(Double.init) : Self.q8K(x)
        let pool = bitnet_pool_create(2)
        defer { bitnet_pool_destroy(pool) }
        var outputs: [[Float]] = []
        for path in Self.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            var output = [Float](repeating: .nan, count: tokens * rows)
            let status = bytes.withUnsafeBytes { bitnet_float_matmul(pool, Int32(encoding.rawValue), $0.baseAddress!, Int64(rows), Int64(columns), x, Int64(tokens), &output) }
            #expect(status == 0)
            for t in 0..<tokens {
                for r in 0..<rows {
                    let terms = (0..<columns).map { Double(decoded[r * columns + $0]) * activations[t * columns + $0] }
                    let magnitude = terms.reduce(0) { $0 + abs($1) } + 1e-9
                    #expect(abs(Double(output[t * rows + r]) - terms.reduce(0, +)) / magnitude < 1e-5, "\(path) row \(r) token \(t)")
                }
            }
            outputs.append(output)
        }
        if encoding == BITNET_FLOAT_Q6_K { #expect(outputs.allSatisfy { $0 == outputs[0] }, "integer sums: the same floats on every level") }
    }

    /// A NaN activation reaches the Q6_K matmul's output (so the engine reports non-finite logits), as it does
    /// through the float dots, on every level; a token without one is unaffected.
    @Test func aNaNActivationReachesTheQ6_KOutput() throws {
        let rows = 3, columns = 512
        var generator = SeededGenerator(seed: 5)
        let bytes = try Q6_K.quantize((0..<rows * columns).map { _ in Float.random(in: -1...1, using: &generator) }, rowLength: columns)
        var x = (0..<2 * columns).map { _ in Float.random(in: -1...1, using: &generator) }
        x[300] = .nan
        let pool = bitnet_pool_create(2)
        defer { bitnet_pool_destroy(pool) }
        for path in Self.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            var output = [Float](repeating: 0, count: 2 * rows)
            #expect(bytes.withUnsafeBytes { bitnet_float_matmul(pool, Int32(BITNET_FLOAT_Q6_K.rawValue), $0.baseAddress!, Int64(rows), Int64(columns), x, 2, &output) } == 0)
            #expect(output[0..<rows].allSatisfy { $0.isNaN }, "\(path): \(output)")
            #expect(output[rows...].allSatisfy { $0.isFinite }, "\(path): \(output)")
        }
    }

    /// Activations as the Q6_K matmul quantizes them, dequantized: per 256 values d = max|x| / 127 and
    /// q = round-half-even(x · 127 / max|x|), clamped to ±127.
    static func q8K(_ x: [Float]) -> [Double] {
        stride(from: 0, to: x.count, by: 256).flatMap { start -> [Double] in
            let block = x[start..<start + 256]
            let amax = block.map(abs).max()!
            let inverse: Float = amax > 0 ? 127 / amax : 0
            return block.map { Double(amax / 127) * Double(max(-127, min(127, ($0 * inverse).rounded(.toNearestOrEven)))) }
        }
    }

    /// A token's logits never depend on the tokens batched with it (the server's guarantee): every float
    /// encoding at every level, 11 tokens at once (the four-token kernels and the single-token tail) against
    /// each token alone (the decode kernel's groups of 8 rows where the level has one, then single rows), bit for
    /// bit. F16 at 37, 57 and 2560 columns: the decode kernel's 32- and 16-value steps and its tail.
    @Test(arguments: [(BITNET_FLOAT_F32, 37), (BITNET_FLOAT_F16, 37), (BITNET_FLOAT_F16, 57), (BITNET_FLOAT_F16, 2560), (BITNET_FLOAT_BF16, 40), (BITNET_FLOAT_BF16, 45),
                      (BITNET_FLOAT_Q8_0, 64), (BITNET_FLOAT_Q6_K, 512)])
    func floatMatmulGivesEachTokenWhatItGetsAlone(encoding: bitnet_float_encoding, columns: Int) throws {
        let rows = 19, tokens = 11  // with 2 threads: two groups of 8 rows, then 3 rows one at a time
        var generator = SeededGenerator(seed: 77 + UInt64(columns))
        let values = (0..<rows * columns).map { _ in Float.random(in: -1...1, using: &generator) }
        let x = (0..<tokens * columns).map { _ in Float.random(in: -2...2, using: &generator) }
        let bytes: [UInt8] = switch encoding {
        case BITNET_FLOAT_F32: values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        case BITNET_FLOAT_F16: values.flatMap { withUnsafeBytes(of: Float16($0).bitPattern.littleEndian, Array.init) }
        case BITNET_FLOAT_BF16: values.flatMap { withUnsafeBytes(of: BFloat16($0).bitPattern.littleEndian, Array.init) }
        case BITNET_FLOAT_Q8_0: try Q8_0.quantize(values, rowLength: columns)
        default: try Q6_K.quantize(values, rowLength: columns)
        }
        let pool = bitnet_pool_create(2)
        defer { bitnet_pool_destroy(pool) }
        for path in Self.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            var together = [Float](repeating: .nan, count: tokens * rows)
            #expect(bytes.withUnsafeBytes { bitnet_float_matmul(pool, Int32(encoding.rawValue), $0.baseAddress!, Int64(rows), Int64(columns), x, Int64(tokens), &together) } == 0)
            for t in 0..<tokens {
                var alone = [Float](repeating: .nan, count: rows)
                let token = Array(x[t * columns..<(t + 1) * columns])
                #expect(bytes.withUnsafeBytes { bitnet_float_matmul(pool, Int32(encoding.rawValue), $0.baseAddress!, Int64(rows), Int64(columns), token, 1, &alone) } == 0)
                #expect(Array(together[t * rows..<(t + 1) * rows]) == alone, "\(path) encoding \(encoding.rawValue) token \(t)")
            }
        }
    }

    /// `bitnet bench`'s roofline read touches every byte once on every level: its checksum is the sum of each
    /// 1 MiB chunk's 64-bit words (from the chunk's start) and trailing bytes, over regions of awkward sizes.
    @Test func streamReadSumsEveryByteOnEveryLevel() {
        var generator = SeededGenerator(seed: 12)
        let regions: [[UInt8]] = [1, 7, 300, 4099, (1 << 20) + 13, 3 << 20].map { count in
            (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
        }
        var expected: UInt64 = 0
        for region in regions {
            for chunk in stride(from: 0, to: region.count, by: 1 << 20) {
                let end = min(chunk + (1 << 20), region.count), words = (end - chunk) / 8
                for word in 0..<words {
                    for byte in 0..<8 { expected &+= UInt64(region[chunk + 8 * word + byte]) << (8 * byte) }
                }
                for index in chunk + 8 * words..<end { expected &+= UInt64(region[index]) }
            }
        }
        let copies = regions.map { region in
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: region.count, alignment: 1)
            copy.copyBytes(from: region)
            return copy
        }
        defer { copies.forEach { $0.deallocate() } }
        let pool = bitnet_pool_create(3)
        defer { bitnet_pool_destroy(pool) }
        for path in Self.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            let sum = bitnet_stream_read(pool, copies.map { UnsafeRawPointer($0.baseAddress) }, regions.map(\.count), Int64(regions.count))
            #expect(sum == expected, "\(path)")
        }
    }

    @Test func dispatchNamesAnInstructionSet() {
        let isa = String(cString: bitnet_kernels_isa())
        #expect(Self.paths.contains(isa) && Self.paths.first == "scalar")
        #expect(bitnet_kernels_force("scalar") == 0)
        #expect(String(cString: bitnet_kernels_isa()) == "scalar")
        #expect(bitnet_kernels_force("sse9") == -1 && String(cString: bitnet_kernels_isa()) == "scalar", "an unknown name changes nothing")
        bitnet_kernels_force(nil)
        #expect(String(cString: bitnet_kernels_isa()) == isa)
    }
}

/// Whole models with each instruction set forced on the calling thread; the pool's threads follow it.
@Suite(.serialized) struct KernelVariantModelTests {
    @Test(arguments: ["bitnet-gqa-tied-bf16-tq2_0.gguf", "bitnet-chat-tiny"])
    func everyVariantRunsTheModel(_ fixture: String) throws {
        let reference = try ReferenceLogits(fixture == "bitnet-chat-tiny" ? "bitnet-chat-tiny" : "bitnet-gqa-tied-bf16")
        var logits: [String: [[Float]]] = [:]
        for isa in KernelTests.paths {
            #expect(bitnet_kernels_force(isa) == 0)
            defer { bitnet_kernels_force(nil) }
            let session = try InferenceSession(model: BitNetModel(path: Fixtures.path("models/\(fixture)"), backend: .cpu, threads: 2), contextLength: 32)
            logits[isa] = try session.evaluate(reference.tokens, allPositions: true)
            reference.expectAgreement(logits[isa]!, within: .of(fixture), "\(fixture) on \(isa)")
        }
        // Every level computes the same integer sums and rescales them alike, the x86 levels share AVX2's float
        // dots, and every level's quantizer gives the scalar one's codes: each must give AVX2's logits to the bit.
        if let avx2 = logits["avx2"] {
            for isa in ["avxvnni", "avx512vnni"] { if let other = logits[isa] { #expect(other == avx2, "\(isa)") } }
        }
    }

    /// A prompt and decode steps of a model loaded where the level reads lookup panels (rows repacked at load) give,
    /// on that level, the logits of the model loaded on the scalar level (no panels: the stored rows), to the bit.
    @Test(arguments: ["bitnet-gqa-tied-bf16-tq2_0.gguf", "bitnet-gqa-tied-bf16-tq1_0.gguf", "bitnet-chat-tiny"])
    func lookupPanelsGiveTheStoredRowsLogits(_ fixture: String) throws {
        let tokens = [1, 17, 5, 42, 9, 3, 28, 11]
        /// The model loaded on `isa`, and the bytes a step on `isa` reads of it.
        func load(on isa: String) throws -> (model: BitNetModel, bytes: Int) {
            #expect(bitnet_kernels_force(isa) == 0)
            defer { bitnet_kernels_force(nil) }
            let model = try BitNetModel(path: Fixtures.path("models/\(fixture)"), backend: .cpu, threads: 2)
            // `bench`'s roofline reads the same regions: the panels where a step reads them.
            let regions = model.withBytesReadPerToken { $0.reduce(0) { $0 + $1.count } }
            #expect(regions == model.bytesReadPerToken, "\(fixture) on \(isa): the regions a roofline reads")
            return (model, model.bytesReadPerToken)
        }
        /// A 5-token prompt's logits at every position, then decode steps.
        func run(_ model: BitNetModel, on isa: String) throws -> [[Float]] {
            #expect(bitnet_kernels_force(isa) == 0)
            defer { bitnet_kernels_force(nil) }
            let session = try InferenceSession(model: model, contextLength: 32)
            return try session.evaluate(Array(tokens.prefix(5)), allPositions: true) + tokens.dropFirst(5).flatMap { try session.evaluate([$0]) }
        }
        let stored = try load(on: "scalar")
        for isa in KernelTests.paths where isa != "scalar" {
            let repacked = try load(on: isa)
            let lookup = try run(repacked.model, on: isa), expected = try run(stored.model, on: isa)
            #expect(lookup == expected, "\(fixture) on \(isa): \(lookup.count) rows, first differing \(String(describing: Array(zip(lookup, expected)).firstIndex { $0 != $1 }))")
            // Fewer bytes than TQ2_0's and I2_S's rows; about as many as TQ1_0's (more for short rows, by the padding).
            let turnedOff = ProcessInfo.processInfo.environment["BITNET_DECODE_LOOKUP"] == "0"
            if isa == "avx2" && !turnedOff { #expect(repacked.bytes != stored.bytes, "\(fixture): AVX2 reads repacked rows") }
        }
    }
}
