import CBitNetKernels
import Foundation
import TestSupport
import Testing

/// The forward pass's non-matmul ops in C, on a pool of threads, against the float formulas they implement, written
/// here in Swift one value at a time: the same floats to the bit, whatever the batch or the split between threads.
@Suite struct ForwardOpKernelTests {
    /// Values with the edge cases the formulas must keep: signed zeros, NaN, infinities, large and tiny magnitudes.
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        let special: [Float] = [0, -0.0, .nan, .infinity, -.infinity, 90, -90, 1e-30, -1e-30]
        return (0..<count).map { index in index < special.count ? special[index] : Float.random(in: -6...6, using: &generator) }
    }

    /// Equal bits, or NaN both (a NaN's payload depends on the order a compiler gives a multiply's operands).
    static func same(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
    }

    /// 20 rows: two groups of eight summed side by side and four alone, on two threads.
    @Test(arguments: [1, 20])
    func rmsNormGivesEachRowsSequentialSum(rows: Int) {
        let columns = 37
        let x = Self.values(rows * columns, seed: 1).map { $0.isFinite ? $0 : 1.5 }
        let weight = Self.values(columns, seed: 2).map { $0.isFinite ? $0 : 0.5 }
        let epsilon: Float = 1e-6
        var expected = [Float](repeating: 0, count: rows * columns)
        for row in 0..<rows {
            var sum: Float = 0
            for i in 0..<columns { sum += x[row * columns + i] * x[row * columns + i] }
            let scale = 1 / (sum / Float(columns) + epsilon).squareRoot()
            for i in 0..<columns { expected[row * columns + i] = weight[i] * (x[row * columns + i] * scale) }
        }
        let pool = bitnet_pool_create(2)
        defer { bitnet_pool_destroy(pool) }
        var output = [Float](repeating: 0, count: rows * columns)
        bitnet_rms_norm(pool, x, weight, epsilon, Int64(rows), Int64(columns), &output)
        #expect(Self.same(output, expected))
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
