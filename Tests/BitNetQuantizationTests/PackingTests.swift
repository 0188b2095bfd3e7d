import BitNetFormats
import BitNetQuantization
import TestSupport
import Testing

/// TQ1_0, TQ2_0 and Q8_0 against gguf-py's `quants.quantize`; Q6_K against llama.cpp's own quantizer; I2_S against
/// the independent numpy packer.
@Suite struct PackingTests {
    let fixtures: FixtureTensors
    let cases: [(name: String, type: String, shape: [Int])]

    init() throws {
        fixtures = try FixtureTensors("packing/gguf-py.safetensors")
        cases = try Fixtures.json("packing/gguf-py.json")["cases"]!.arrayValue!.map {
            ($0["name"]!.stringValue!, $0["type"]!.stringValue!, $0["shape"]!.arrayValue!.map { $0.intValue! })
        }
    }

    func check<Format: BlockFormat>(_: Format.Type) throws {
        let mine = cases.filter { $0.type == Format.name }
        #expect(mine.count >= 2, "fixture cases for \(Format.name)")
        for testCase in mine {
            let input = try fixtures.floats("\(testCase.name).input")
            let expected = try fixtures.bytes("\(testCase.name).bytes")
            let packed = try Format.quantize(input, rowLength: testCase.shape[1])
            #expect(packed == expected, "\(testCase.name) bytes")
            #expect(try Format.dequantize(expected) == (try fixtures.floats("\(testCase.name).dequantized")), "\(testCase.name) dequantized")
        }
    }

    @Test func tq2_0MatchesGGUFPy() throws { try check(TQ2_0.self) }
    @Test func tq1_0MatchesGGUFPy() throws { try check(TQ1_0.self) }
    @Test func q8_0MatchesGGUFPy() throws { try check(Q8_0.self) }

    func checkTernary<Format: TernaryBlockFormat>(_: Format.Type) throws {
        // gguf-py's file of a ternary tensor unpacks to the tensor's codes and scale, and our direct
        // packing of those reproduces its bytes (all-zero blocks aside, where gguf-py stores d = 0).
        let name = "\(Format.name)_ternary"
        let input = try fixtures.floats("\(name).input")
        let bytes = try fixtures.bytes("\(name).bytes")
        let tensor = try bytes.withUnsafeBytes { try Format.unpackTensor($0, rows: 3, columns: 512) }
        #expect(tensor.codes == input.map { Int8($0.sign == .minus && $0 != 0 ? -1 : ($0 == 0 ? 0 : 1)) })
        #expect(tensor.scale == Float(Float16(Float(0.0173))))
        var repacked = try Format.pack(tensor)
        let zeroBlock = 3  // row 1, second block
        let scaleOffset = Format.bytesPerBlock - 2
        repacked[zeroBlock * Format.bytesPerBlock + scaleOffset] = 0
        repacked[zeroBlock * Format.bytesPerBlock + scaleOffset + 1] = 0
        #expect(repacked == bytes)
    }

    @Test func tq2_0TernaryRoundTrip() throws { try checkTernary(TQ2_0.self) }
    @Test func tq1_0TernaryRoundTrip() throws { try checkTernary(TQ1_0.self) }

    @Test func tiesRoundAwayFromZeroLikeGGUFPy() throws {
        // gguf-py's np_roundf: 0.5 → 1 and -0.5 → -1 (unlike BitNet's ties-to-even).
        let bytes = try fixtures.bytes("tq2_0_ties.bytes")
        let tensor = try bytes.withUnsafeBytes { try TQ2_0.unpackTensor($0, rows: 1, columns: 256) }
        #expect(Array(tensor.codes.prefix(8)) == [1, 1, -1, 0, -1, 1, -1, 0])
    }

    @Test func q6_KDequantizesLikeGGUFPy() throws {
        let bytes = try fixtures.bytes("q6_k.bytes")
        var values = [Float](repeating: 0, count: 3 * 256)
        try bytes.withUnsafeBytes { source in try values.withUnsafeMutableBufferPointer { try Q6_K.dequantize(source, into: $0) } }
        #expect(values == (try fixtures.floats("q6_k.dequantized")))
    }

    @Test func q6_KQuantizesLikeLlamaCpp() throws {
        let reference = try FixtureTensors("quantization/q6_k-llama.cpp.safetensors")
        let input = try reference.floats("input"), expected = try reference.bytes("blocks")
        let ours = try Q6_K.quantize(input, rowLength: 256)
        let differing = (0..<expected.count / 210).filter { ours[$0 * 210..<($0 + 1) * 210] != expected[$0 * 210..<($0 + 1) * 210] }
        #expect(differing.isEmpty, "blocks \(differing) differ from llama.cpp's quantize_row_q6_K_ref")
        // And it decodes close to its input: 6 bits against the largest of each 16 values.
        let decoded = try Q6_K.dequantize(ours)
        for block in 0..<input.count / 256 {
            let row = Array(input[block * 256..<(block + 1) * 256]), back = Array(decoded[block * 256..<(block + 1) * 256])
            let largest = row.map(\.magnitude).max()!
            #expect(zip(row, back).allSatisfy { ($0 - $1).magnitude <= largest / 31 * 1.01 + 1e-12 }, "block \(block)")
        }
    }

    @Test func i2_sMatchesIndependentPacker() throws {
        let codes = try fixtures.int8s("i2_s.codes")
        let scale = try fixtures.floats("i2_s.scale")[0]
        let expected = try fixtures.bytes("i2_s.bytes")
        let tensor = try TernaryTensor(rows: 4, columns: 256, codes: codes, scale: scale)
        #expect(try I2S.pack(tensor) == expected)
        let unpacked = try expected.withUnsafeBytes { try I2S.unpackTensor($0, rows: 4, columns: 256) }
        #expect(unpacked == tensor)
    }

    @Test(arguments: [(1, 256), (3, 768), (7, 1280), (2, 2560)])
    func ternaryRoundTripsOnRandomTensors(rows: Int, columns: Int) throws {
        var generator = SeededGenerator(seed: UInt64(rows * 10_000 + columns))
        let codes = (0..<rows * columns).map { _ in Int8.random(in: -1...1, using: &generator) }
        let scale = Float.random(in: 0.001...0.1, using: &generator)
        let tensor = try TernaryTensor(rows: rows, columns: columns, codes: codes, scale: scale)
        let halfScale = Float(Float16(scale))

        let tq2 = try TQ2_0.pack(tensor)
        #expect(tq2.count == rows * columns / 256 * 66)
        #expect(try tq2.withUnsafeBytes { try TQ2_0.unpackTensor($0, rows: rows, columns: columns) }.codes == codes)
        let tq1 = try TQ1_0.pack(tensor)
        #expect(tq1.count == rows * columns / 256 * 54)
        let tq1Back = try tq1.withUnsafeBytes { try TQ1_0.unpackTensor($0, rows: rows, columns: columns) }
        #expect(tq1Back.codes == codes && tq1Back.scale == halfScale)
        let i2s = try I2S.pack(tensor)
        #expect(i2s.count == rows * columns / 4 + 32)
        #expect(try i2s.withUnsafeBytes { try I2S.unpackTensor($0, rows: rows, columns: columns) } == tensor)
        // Dequantizing the float way gives d · code.
        #expect(try TQ1_0.dequantize(tq1) == codes.map { Float($0) * halfScale })
    }

    @Test(arguments: [1, 2, 3, 5, 6, 7, 9])
    func huggingFacePackingRoundTripsAnyRowCount(rows: Int) throws {
        var generator = SeededGenerator(seed: UInt64(rows))
        let codes = (0..<rows * 9).map { _ in Int8.random(in: -1...1, using: &generator) }
        let tensor = try TernaryTensor(rows: rows, columns: 9, codes: codes, scale: 0.5)
        let packed = HuggingFacePacking.pack(tensor)
        #expect(packed.count == (rows + 3) / 4 * 9)
        let back = try packed.withUnsafeBytes {
            try HuggingFacePacking.unpack($0, packedRows: (rows + 3) / 4, columns: 9, outFeatures: rows, scale: 0.5)
        }
        #expect(back == tensor)
    }

    @Test func q8_0ErrorIsBoundedByHalfAStep() throws {
        var generator = SeededGenerator(seed: 8)
        let values = (0..<96 * 3).map { _ in Float.random(in: -3...3, using: &generator) }
        let back = try Q8_0.dequantize(try Q8_0.quantize(values, rowLength: 96))
        for block in 0..<values.count / 32 {
            let slice = values[block * 32..<(block + 1) * 32]
            let step = slice.map(\.magnitude).max()! / 127
            for index in slice.indices { #expect(abs(back[index] - values[index]) <= step * 0.5 + step * 0.01) }
        }
    }

    @Test func rowLengthsThatDoNotFillBlocksAreErrors() {
        for (format, rowLength) in [("tq2_0", 300), ("tq1_0", 100)] {
            do {
                let values = [Float](repeating: 0.1, count: rowLength * 2)
                _ = format == "tq2_0" ? try TQ2_0.quantize(values, rowLength: rowLength) : try TQ1_0.quantize(values, rowLength: rowLength)
                Issue.record("\(format) accepted rows of \(rowLength)")
            } catch let error as QuantizationError {
                #expect(error.code == .rowLengthNotMultiple)
                #expect(error.message.contains("multiple of 256") && error.message.contains("\(rowLength)"))
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        #expect(throws: QuantizationError.self) {
            try I2S.pack(try TernaryTensor(rows: 2, columns: 100, codes: [Int8](repeating: 0, count: 200), scale: 1))
        }
    }

    @Test func invalidCodesAreErrors() throws {
        var block = [UInt8](repeating: 0x55, count: 66)  // every code 1 → value 0
        block[5] = 0xFF  // code 3
        let error = #expect(throws: QuantizationError.self) {
            _ = try block.withUnsafeBytes { try TQ2_0.unpackTensor($0, rows: 1, columns: 256) }
        }
        #expect(error?.code == .invalidTernaryCode)
        #expect(throws: QuantizationError.self) { try TernaryTensor(rows: 1, columns: 2, codes: [0, 2], scale: 1) }
        #expect(throws: QuantizationError.self) { try TQ2_0.quantize([Float](repeating: .nan, count: 256), rowLength: 256) }
    }

    @Test func bfloat16RoundsToNearestEvenAndKeepsNaN() {
        #expect(BFloat16(Float(bitPattern: 0x3F80_8000)).bitPattern == 0x3F80)  // tie, even stays
        #expect(BFloat16(Float(bitPattern: 0x3F81_8000)).bitPattern == 0x3F82)  // tie, odd rounds up
        #expect(BFloat16(Float(bitPattern: 0x3F80_8001)).bitPattern == 0x3F81)
        #expect(BFloat16(Float.nan).floatValue.isNaN)
        #expect(BFloat16(bitPattern: 0xC0A0).floatValue == -5)
    }
}
