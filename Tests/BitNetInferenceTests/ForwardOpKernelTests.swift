import CBitNetKernels
import Foundation
import TestSupport
import Testing

/// The forward pass's non-matmul ops in C, on a pool of threads, against the float formulas they implement, written
/// here in Swift one value at a time: the same floats to the bit, whatever the batch or the split between threads.
@Suite struct ForwardOpKernelTests {
    /// Values with the edge cases the formulas must keep: signed zeros, NaN, infinities, large and tiny magnitudes.
    /// The special values sit at indices that move with the seed, so they meet ordinary values in another array.
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        let special: [Float] = [0, -0.0, .nan, .infinity, -.infinity, 90, -90, 1e-30, -1e-30]
        let first = Int(seed % 8) * special.count
        return (0..<count).map { index in
            (first..<first + special.count).contains(index) ? special[index - first] : Float.random(in: -6...6, using: &generator)
        }
    }

    /// Equal bits, or NaN both (a NaN's payload depends on the order a compiler gives a multiply's operands).
    static func same(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
    }

    /// transformers' BitNetRMSNorm to the bit (`Tests/Fixtures/generate_rms_norm.py`): rows of 1 to 131,200 values,
    /// through the scalar form of PyTorch's sum, its vector tails, leftover vectors and all four chunk levels,
    /// magnitudes from 1e-3 to 1e3, on a pool of two threads.
    @Test func rmsNormGivesTransformersFloats() throws {
        let fixture = try FixtureTensors("quantization/rms-norm.safetensors")
        let widths = try #require(fixture.file.metadata.first { $0.0 == "widths" }?.1).split(separator: ",").map { Int($0)! }
        #expect(widths.count == 17 && widths.contains(131_200))
        let pool = bitnet_pool_create(2)
        defer { bitnet_pool_destroy(pool) }
        for width in widths {
            let x = try fixture.floats("x.\(width)"), weight = try fixture.floats("weight.\(width)")
            let expected = try fixture.floats("output.\(width)")
            var output = [Float](repeating: .nan, count: x.count)
            bitnet_rms_norm(pool, x, weight, 1e-5, Int64(x.count / width), Int64(width), &output)
            let differing = zip(output, expected).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(differing == 0, "width \(width): \(differing) of \(x.count) values differ from transformers'")
        }
    }

    @Test func gatedActivationsFollowTheirFormulas() {
        let count = 40_000  // several chunks
        let gate = Self.values(count, seed: 3), up = Self.values(count, seed: 4)
        let formulas: [(bitnet_activation, (Float) -> Float)] = [
            (BITNET_ACTIVATION_SQUARED_RELU, { let relu = max($0, 0); return relu * relu }),
            (BITNET_ACTIVATION_SILU, { $0 / (1 + expf(-$0)) }),
            (BITNET_ACTIVATION_GELU, { 0.5 * $0 * (1 + tanhf(0.797_884_6 * ($0 + 0.044_715 * $0 * $0 * $0))) }),
        ]
        let pool = bitnet_pool_create(2)
        defer { bitnet_pool_destroy(pool) }
        for (activation, f) in formulas {
            var output = [Float](repeating: 0, count: count)
            bitnet_gated_activation(pool, Int32(activation.rawValue), gate, up, Int64(count), &output)
            #expect(Self.same(output, zip(gate, up).map { f($0) * $1 }), "\(activation)")
        }
        var accumulator = up
        bitnet_add(pool, gate, Int64(count), &accumulator)
        #expect(Self.same(accumulator, zip(up, gate).map { $0 + $1 }))
    }

    /// SiLU's vector path (AVX2 and up) computes glibc's expf in double as its FMA build does, 8 values at a time
    /// (every float below 88 in magnitude was checked against expf once, by hand): on every level, the Swift
    /// formula's floats on 2^20 bit patterns spread over all of them (both signs, every exponent, NaN, ∞, values
    /// near 88 where glibc goes its own way), with special values among ordinary ones in a group of 8.
    @Test func siluGivesLibmsFloatsOnEveryLevel() {
        var generator = SeededGenerator(seed: 6)
        var gate = (0..<(1 << 20)).map { Float(bitPattern: UInt32($0) &* 4099) }
        for (index, special) in [Float](arrayLiteral: 0, -0.0, .nan, .infinity, -.infinity, 88, -88, 87.99, -87.99, 103.9, -103.9,
                                                    .leastNonzeroMagnitude, -.leastNormalMagnitude).enumerated() {
            gate[3 + 7 * index] = special
        }
        let up = gate.map { _ in Float.random(in: -2...2, using: &generator) }
        let expected = zip(gate, up).map { $0 / (1 + expf(-$0)) * $1 }
        let pool = bitnet_pool_create(2)
        defer { bitnet_pool_destroy(pool) }
        for path in KernelTests.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            var output = [Float](repeating: 0, count: gate.count)
            bitnet_gated_activation(pool, Int32(BITNET_ACTIVATION_SILU.rawValue), gate, up, Int64(gate.count), &output)
            #expect(Self.same(output, expected), "\(path)")
        }
    }

    @Test(arguments: [BITNET_ROPE_HALVES, BITNET_ROPE_INTERLEAVED])
    func ropeRotatesEachPairByItsPositionsAngle(layout: bitnet_rope_layout) {
        let tokens = 5, heads = 3, dimension = 8, stride = heads * dimension + 4  // a row wider than its heads
        let positions: [Int64] = [0, 1, 7, 300, 4095]
        let frequencies = (0..<dimension / 2).map { 1 / powf(10_000, Float(2 * $0) / Float(dimension)) }
        let x = Self.values(tokens * stride, seed: 5).map { $0.isFinite ? $0 : 2 }
        var expected = x
        for token in 0..<tokens {
            for pair in 0..<dimension / 2 {
                let angle = Float(positions[token]) * frequencies[pair]
                let (cosine, sine) = (cosf(angle), sinf(angle))
                for head in 0..<heads {
                    let base = token * stride + head * dimension
                    let (first, second) = layout == BITNET_ROPE_HALVES ? (base + pair, base + pair + dimension / 2) : (base + 2 * pair, base + 2 * pair + 1)
                    let (a, b) = (x[first], x[second])
                    expected[first] = a * cosine - b * sine
                    expected[second] = b * cosine + a * sine
                }
            }
        }
        let pool = bitnet_pool_create(2)
        defer { bitnet_pool_destroy(pool) }
        var output = x
        bitnet_rope(pool, &output, Int64(stride), positions, Int64(tokens), Int32(heads), Int32(dimension), Int32(layout.rawValue), frequencies)
        #expect(Self.same(output, expected))
    }
}

extension ForwardOpKernelTests {
    /// A cache's bytes as `bitnet_attention` reads them: `rows` holds each position's `keyValueHeads` heads side by
    /// side; `headMajor` stores each head's positions side by side instead, as the CPU backend's cache does.
    static func cacheBytes(_ rows: [Float], cacheType: bitnet_cache_type, keyValueHeads: Int, dimension: Int, headMajor: Bool) -> [UInt8] {
        let cached = rows.count / (keyValueHeads * dimension), width = cacheType == BITNET_CACHE_F16 ? 2 : 4
        var bytes = [UInt8](repeating: 0, count: rows.count * width)
        bytes.withUnsafeMutableBytes { out in
            for position in 0..<cached {
                for head in 0..<keyValueHeads {
                    let slot = headMajor ? head * cached + position : position * keyValueHeads + head
                    for i in 0..<dimension {
                        let value = rows[(position * keyValueHeads + head) * dimension + i], offset = (slot * dimension + i) * width
                        if width == 2 {
                            out.storeBytes(of: Float16(value).bitPattern.littleEndian, toByteOffset: offset, as: UInt16.self)
                        } else {
                            out.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: offset, as: UInt32.self)
                        }
                    }
                }
            }
        }
        return bytes
    }

    /// `bitnet_attention` of `tokens` query rows (`heads × dimension` floats each, batch row t for token t) at
    /// `positions` over a cache of `keyValueHeads` heads (``cacheBytes(_:cacheType:keyValueHeads:dimension:headMajor:)``), on two threads.
    static func attend(cacheType: bitnet_cache_type, keys: [Float], values: [Float], keyValueHeads: Int, queries: [Float],
                       heads: Int, dimension: Int, positions: [Int64], headMajor: Bool = false) -> [Float] {
        attend(cacheType: cacheType,
               keyBytes: cacheBytes(keys, cacheType: cacheType, keyValueHeads: keyValueHeads, dimension: dimension, headMajor: headMajor),
               valueBytes: cacheBytes(values, cacheType: cacheType, keyValueHeads: keyValueHeads, dimension: dimension, headMajor: headMajor),
               keyValueHeads: keyValueHeads, queries: queries, heads: heads, dimension: dimension, positions: positions, headMajor: headMajor)
    }

    static func attend(cacheType: bitnet_cache_type, keyBytes: [UInt8], valueBytes: [UInt8], keyValueHeads: Int, queries: [Float],
                       heads: Int, dimension: Int, positions: [Int64], headMajor: Bool) -> [Float] {
        let cached = keyBytes.count / ((cacheType == BITNET_CACHE_F16 ? 2 : 4) * keyValueHeads * dimension), tokens = positions.count
        var output = [Float](repeating: 0, count: tokens * heads * dimension)
        let rows = (0..<tokens).map(Int64.init)
        let pool = bitnet_pool_create(2)
        defer { bitnet_pool_destroy(pool) }
        let status = keyBytes.withUnsafeBytes { keyBytes in
            valueBytes.withUnsafeBytes { valueBytes in
                queries.withUnsafeBufferPointer { queries in
                    output.withUnsafeMutableBufferPointer { output in
                        rows.withUnsafeBufferPointer { rows in
                            positions.withUnsafeBufferPointer { positions in
                                var arguments = bitnet_attention_args(
                                    cache_type: Int32(cacheType.rawValue), keys: keyBytes.baseAddress, values: valueBytes.baseAddress,
                                    position_stride: Int64(headMajor ? dimension : keyValueHeads * dimension),
                                    head_stride: Int64(headMajor ? cached * dimension : dimension),
                                    queries: queries.baseAddress, output: output.baseAddress,
                                    row_stride: Int64(heads * dimension), rows: rows.baseAddress, positions: positions.baseAddress,
                                    tokens: Int64(tokens), heads: Int32(heads), key_value_heads: Int32(keyValueHeads),
                                    head_dimension: Int32(dimension), scale: 1 / Float(dimension).squareRoot())
                                return bitnet_attention(pool, &arguments)
                            }
                        }
                    }
                }
            }
        }
        #expect(status == 0)
        return output
    }

    /// Grouped-query attention on every level, f32 and f16 caches, groups of 1 to 5 query heads and head sizes that
    /// take every column path (28 = 16 + 8 + 4) and the AVX-512 tiles (64): within 1e-5 of a double-precision
    /// softmax, and each head's floats the same as with its own copy of the keys and values (group 1), so the heads
    /// that share a key/value head never change each other.
    @Test(arguments: [(BITNET_CACHE_F32, 1, 28), (BITNET_CACHE_F32, 4, 28), (BITNET_CACHE_F32, 5, 28), (BITNET_CACHE_F16, 3, 28),
                      (BITNET_CACHE_F16, 4, 28), (BITNET_CACHE_F32, 4, 64), (BITNET_CACHE_F16, 4, 64), (BITNET_CACHE_F32, 5, 64)])
    func attentionOfAGroupIsEachHeadsOwn(cacheType: bitnet_cache_type, group: Int, dimension: Int) {
        let keyValueHeads = 2, heads = keyValueHeads * group, positions = 9
        let tokenPositions: [Int64] = [4, 7, 8]  // the sequence's last three tokens see 5, 8 and 9 positions
        let tokens = tokenPositions.count
        var generator = SeededGenerator(seed: UInt64(group * dimension))
        func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -2...2, using: &generator) } }
        let keys = random(positions * keyValueHeads * dimension).map { Float(Float16($0)) }
        let values = random(positions * keyValueHeads * dimension).map { Float(Float16($0)) }
        let queries = random(tokens * heads * dimension)
        let scale = 1 / Float(dimension).squareRoot()

        /// Each query head's own copy of its key/value head's rows, position by position.
        func copies(_ source: [Float]) -> [Float] {
            (0..<positions).flatMap { position in
                (0..<heads).flatMap { head in source[((position * keyValueHeads + head / group) * dimension)...].prefix(dimension) }
            }
        }
        for path in KernelTests.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            let grouped = Self.attend(cacheType: cacheType, keys: keys, values: values, keyValueHeads: keyValueHeads, queries: queries,
                                      heads: heads, dimension: dimension, positions: tokenPositions)
            let alone = Self.attend(cacheType: cacheType, keys: copies(keys), values: copies(values), keyValueHeads: heads, queries: queries,
                                    heads: heads, dimension: dimension, positions: tokenPositions)
            #expect(Self.same(grouped, alone), "\(path): a head's floats depend on its group")
            for token in 0..<tokens {
                for head in 0..<heads {
                    let query = queries[(token * heads + head) * dimension..<(token * heads + head + 1) * dimension].map(Double.init)
                    let visible = Int(tokenPositions[token]) + 1
                    let base = (0..<visible).map { ($0 * keyValueHeads + head / group) * dimension }
                    let scores = base.map { start in zip(query, keys[start..<start + dimension]).reduce(0.0) { $0 + $1.0 * Double($1.1) } * Double(scale) }
                    let exponentials = scores.map { exp($0 - scores.max()!) }
                    let total = exponentials.reduce(0, +)
                    for d in 0..<dimension {
                        let expected = zip(exponentials, base).reduce(0.0) { $0 + $1.0 / total * Double(values[$1.1 + d]) }
                        let actual = grouped[(token * heads + head) * dimension + d]
                        #expect(abs(Double(actual) - expected) < 1e-5, "\(path) token \(token) head \(head) value \(d)")
                    }
                }
            }
        }
    }

    /// A prompt's tokens share tiles (as many of a group's query heads as make 16 rows) that read each cached key and
    /// value once for all of them; each token's floats must be what it gets alone, as a decode step, on every level,
    /// and the x86 SIMD levels' floats the AVX2 level's (every tile repeats its dots and sums). 21 tokens make
    /// full and partial tiles, and the gap in their positions tiles with different visible counts. A second cache
    /// holds infinities at position 11: tiles read it for their later tokens, and the earlier ones must never meet it.
    @Test(arguments: [(BITNET_CACHE_F32, 4, 64), (BITNET_CACHE_F16, 4, 64), (BITNET_CACHE_F32, 1, 64), (BITNET_CACHE_F32, 5, 32),
                      (BITNET_CACHE_F16, 3, 48), (BITNET_CACHE_F32, 4, 28)])
    func attentionOfABatchIsEachTokensAlone(cacheType: bitnet_cache_type, group: Int, dimension: Int) {
        Self.checkBatchIsEachTokensAlone(cacheType: cacheType, group: group, dimension: dimension,
                                         positions: Array(0..<12) + Array(15..<24), poisoned: 11)
    }

    /// Caches longer than a block (256 positions) are read block by block and the blocks combined; a decode step
    /// shares its blocks between threads where a prompt's tiles run them in turn, a few tiles together. Tokens on either side of the block
    /// boundaries must get the floats they get alone, within 1e-5 of a double-precision softmax, on every level; the
    /// infinities at position 300 (the second block) must not reach the tokens before it.
    @Test(arguments: [(BITNET_CACHE_F32, 4, 64), (BITNET_CACHE_F16, 4, 64), (BITNET_CACHE_F32, 1, 32), (BITNET_CACHE_F16, 3, 28)])
    func attentionOverSeveralBlocksIsEachTokensAlone(cacheType: bitnet_cache_type, group: Int, dimension: Int) {
        // 42 tokens: with groups of 3 and 4, enough tiles that a thread's chunk runs two tiles block by block together.
        let positions: [Int64] = [0, 1, 2, 100] + Array(250..<262) + [299, 300, 301, 383, 384, 450] + Array(505..<520) + [600, 640, 697, 698, 699]
        Self.checkBatchIsEachTokensAlone(cacheType: cacheType, group: group, dimension: dimension, positions: positions, poisoned: 300,
                                         headMajor: true, withinOfDouble: 1e-5)
    }

    /// Each token's floats in a batch at `positions` equal its floats alone, on every level, on a clean cache and on
    /// one with infinities at `poisoned` (laid out head-major or not); the x86 SIMD levels agree with AVX2;
    /// optionally, every output within `withinOfDouble` of a double-precision softmax.
    static func checkBatchIsEachTokensAlone(cacheType: bitnet_cache_type, group: Int, dimension: Int, positions: [Int64], poisoned: Int,
                                            headMajor: Bool = false, withinOfDouble tolerance: Double? = nil) {
        let keyValueHeads = 2, heads = keyValueHeads * group, row = heads * dimension
        let cached = Int(positions.last! + 1)
        var generator = SeededGenerator(seed: UInt64(7 * group + dimension + cached))
        func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -2...2, using: &generator) } }
        let width = keyValueHeads * dimension
        let keys = random(cached * width), values = random(cached * width)
        var poisonedKeys = keys, poisonedValues = values
        poisonedKeys.replaceSubrange(poisoned * width..<(poisoned + 1) * width, with: repeatElement(.infinity, count: width))
        poisonedValues.replaceSubrange(poisoned * width..<(poisoned + 1) * width, with: repeatElement(-.infinity, count: width))
        let queries = random(positions.count * heads * dimension)
        let caches = [(keys, values, false), (poisonedKeys, poisonedValues, true)].map { keys, values, isPoisoned in
            (cacheBytes(keys, cacheType: cacheType, keyValueHeads: keyValueHeads, dimension: dimension, headMajor: headMajor),
             cacheBytes(values, cacheType: cacheType, keyValueHeads: keyValueHeads, dimension: dimension, headMajor: headMajor), isPoisoned)
        }
        var batches: [String: [Float]] = [:]
        for path in KernelTests.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            for (keyBytes, valueBytes, isPoisoned) in caches {
                let batch = attend(cacheType: cacheType, keyBytes: keyBytes, valueBytes: valueBytes, keyValueHeads: keyValueHeads,
                                   queries: queries, heads: heads, dimension: dimension, positions: positions, headMajor: headMajor)
                if !isPoisoned { batches[path] = batch }
                for (token, position) in positions.enumerated() {
                    let output = Array(batch[token * row..<(token + 1) * row])
                    if !isPoisoned || position < poisoned {
                        #expect(output.allSatisfy { $0.isFinite }, "\(path): token \(token) met an infinity it does not see")
                    }
                    let alone = attend(cacheType: cacheType, keyBytes: keyBytes, valueBytes: valueBytes, keyValueHeads: keyValueHeads,
                                       queries: Array(queries[token * row..<(token + 1) * row]), heads: heads, dimension: dimension,
                                       positions: [position], headMajor: headMajor)
                    #expect(same(output, alone), "\(path): token \(token) depends on its batch")
                }
            }
        }
        if let avx2 = batches["avx2"] {
            for path in ["avxvnni", "avx512vnni"] where batches[path] != nil {
                #expect(same(batches[path]!, avx2), "\(path) differs from avx2")
            }
        }
        guard let tolerance, let batch = batches.values.first else { return }
        // The cache holds what its type rounds to; the double softmax reads the same values.
        let stored = { (x: Float) in cacheType == BITNET_CACHE_F16 ? Double(Float16(x)) : Double(x) }
        var worst = 0.0
        for (token, position) in positions.enumerated() {
            for head in 0..<heads {
                let query = queries[(token * heads + head) * dimension..<(token * heads + head + 1) * dimension].map(Double.init)
                let base = (0...Int(position)).map { ($0 * keyValueHeads + head / group) * dimension }
                let scores = base.map { start in
                    zip(query, keys[start..<start + dimension]).reduce(0.0) { $0 + $1.0 * stored($1.1) } / Double(dimension).squareRoot()
                }
                let largest = scores.max()!
                let exponentials = scores.map { exp($0 - largest) }
                let total = exponentials.reduce(0, +)
                for d in 0..<dimension {
                    let expected = zip(exponentials, base).reduce(0.0) { $0 + $1.0 / total * stored(values[$1.1 + d]) }
                    worst = max(worst, abs(Double(batch[token * row + head * dimension + d]) - expected))
                }
            }
        }
        #expect(worst < tolerance, "largest difference from the double softmax: \(worst)")
    }
}
