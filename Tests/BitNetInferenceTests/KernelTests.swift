import BitNetInference
import BitNetQuantization
import CBitNetKernels
import TestSupport
import Testing

/// The C kernels against the scalar BitLinear oracle, on every dispatch path this CPU has.
@Suite(.serialized) struct KernelTests {
    /// Every instruction set this CPU runs (the kernels refuse to be forced onto one it does not).
    static let paths: [String] = ["scalar", "avx2", "avx512vnni"].filter { isa in
        defer { bitnet_kernels_force(nil) }
        return bitnet_kernels_force(isa) == 0
    }

    func randomCase(rows: Int, columns: Int, seed: UInt64) throws -> (TernaryTensor, [Int8]) {
        var generator = SeededGenerator(seed: seed)
        let codes = (0..<rows * columns).map { _ in Int8.random(in: -1...1, using: &generator) }
        // Include the extremes: -128 · −1 and 127 · 1 at every position of some rows.
        let x = (0..<columns).map { index -> Int8 in index % 7 == 0 ? -128 : (index % 11 == 0 ? 127 : Int8.random(in: -128...127, using: &generator)) }
        return (try TernaryTensor(rows: rows, columns: columns, codes: codes, scale: 1), x)
    }

    func oracle(_ tensor: TernaryTensor, _ x: [Int8], row: Int, range: Range<Int>) -> Int32 {
        range.reduce(Int32(0)) { $0 + Int32(tensor.codes[row * tensor.columns + $1]) * Int32(x[$1]) }
    }

    typealias BlockDots = (UnsafePointer<UInt8>?, UnsafePointer<Int8>?, UnsafePointer<Int32>?, Int64, UnsafeMutablePointer<Int32>?) -> Void

    /// Checks a TQ block-dot kernel against the oracle, block by block, on every dispatch path.
    func checkBlockDots<Format: TernaryBlockFormat>(_: Format.Type, _ kernel: BlockDots, rows: Int, columns: Int, seed: UInt64) throws {
        let (tensor, x) = try randomCase(rows: rows, columns: columns, seed: seed)
        let packed = try Format.pack(tensor)
        let blocks = columns / 256
        let xSums = (0..<blocks).map { block in x[block * 256..<(block + 1) * 256].reduce(Int32(0)) { $0 + Int32($1) } }
        for path in Self.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            for row in 0..<rows {
                var sums = [Int32](repeating: 0, count: blocks)
                packed.withUnsafeBufferPointer { bytes in
                    kernel(bytes.baseAddress! + row * blocks * Format.bytesPerBlock, x, xSums, Int64(blocks), &sums)
                }
                let expected = (0..<blocks).map { oracle(tensor, x, row: row, range: $0 * 256..<($0 + 1) * 256) }
                #expect(sums == expected, "\(Format.name) \(path) row \(row)")
            }
        }
    }

    @Test(arguments: [(1, 256), (3, 512), (5, 2560), (2, 6912)])
    func tq2_0BlockDotsMatchTheOracle(rows: Int, columns: Int) throws {
        try checkBlockDots(TQ2_0.self, bitnet_tq2_0_block_dots, rows: rows, columns: columns, seed: UInt64(rows * columns))
    }

    @Test(arguments: [(1, 256), (3, 768), (2, 2560)])
    func tq1_0BlockDotsMatchTheOracle(rows: Int, columns: Int) throws {
        try checkBlockDots(TQ1_0.self, bitnet_tq1_0_block_dots, rows: rows, columns: columns, seed: UInt64(rows * columns + 5))
    }

    @Test(arguments: [(1, 128), (4, 384), (3, 2560), (2, 6912)])
    func i2_sDotsMatchTheOracle(rows: Int, columns: Int) throws {
        let (tensor, x) = try randomCase(rows: rows, columns: columns, seed: UInt64(rows + columns))
        let packed = try I2S.pack(tensor)
        let xSum = x.reduce(Int32(0)) { $0 + Int32($1) }
        for path in Self.paths {
            #expect(bitnet_kernels_force(path) == 0)
            defer { bitnet_kernels_force(nil) }
            for row in 0..<rows {
                let dot = packed.withUnsafeBufferPointer { bitnet_i2_s_dot($0.baseAddress! + row * columns / 4, x, xSum, Int64(columns)) }
                #expect(dot == oracle(tensor, x, row: row, range: 0..<columns), "\(path) row \(row)")
            }
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

/// Whole models with each instruction set forced (one thread, so every kernel runs on the forcing thread).
@Suite(.serialized) struct KernelVariantModelTests {
    @Test(arguments: ["bitnet-gqa-tied-bf16-tq2_0.gguf", "bitnet-chat-tiny"])
    func everyVariantRunsTheModel(_ fixture: String) throws {
        let reference = try ReferenceLogits(fixture == "bitnet-chat-tiny" ? "bitnet-chat-tiny" : "bitnet-gqa-tied-bf16")
        var logits: [String: [[Float]]] = [:]
        for isa in KernelTests.paths {
            #expect(bitnet_kernels_force(isa) == 0)
            defer { bitnet_kernels_force(nil) }
            let session = try InferenceSession(model: BitNetModel(path: Fixtures.path("models/\(fixture)"), backend: .cpu, threads: 1), contextLength: 32)
            logits[isa] = try session.evaluate(reference.tokens, allPositions: true)
            reference.expectAgreement(logits[isa]!, within: .of(fixture), "\(fixture) on \(isa)")
        }
        // The VNNI variant changes only integer dots, so it must give AVX2's logits to the bit.
        if let vnni = logits["avx512vnni"], let avx2 = logits["avx2"] { #expect(vnni == avx2) }
    }
}
