import BitNetFormats
import BitNetQuantization
import TestSupport
import Testing

/// BitNet b1.58 quantization against transformers' `WeightQuant`, `ActQuant`, `AutoBitLinear` and
/// `BitLinear` (fixtures from `Tests/Fixtures/generate.py`).
@Suite struct ReferenceQuantizationTests {
    let fixtures: FixtureTensors
    let manifest: JSONValue

    init() throws {
        fixtures = try FixtureTensors("quantization/reference.safetensors")
        manifest = try Fixtures.json("quantization/reference.json")
    }

    func ternarize(_ name: String) throws -> TernaryTensor {
        let info = try fixtures.info("\(name).weight")
        let rows = info.shape[0], columns = info.shape[1]
        switch info.dtype {
        case .bf16: return try AbsmeanQuantizer.ternarize(try fixtures.halves("\(name).weight").map(BFloat16.init(bitPattern:)), rows: rows, columns: columns)
        case .f16: return try AbsmeanQuantizer.ternarize(try fixtures.halves("\(name).weight").map(Float16.init(bitPattern:)), rows: rows, columns: columns)
        default: return try AbsmeanQuantizer.ternarize(try fixtures.floats("\(name).weight"), rows: rows, columns: columns)
        }
    }

    @Test func weightCodesAndScaleMatchWeightQuant() throws {
        let cases = manifest["weight_cases"]!.arrayValue!.compactMap { $0["name"]?.stringValue }
        #expect(cases.count >= 6)
        for name in cases {
            let tensor = try ternarize(name)
            #expect(tensor.codes == (try fixtures.int8s("\(name).codes")), "codes of \(name)")
            // The reference's float32 mean is a vectorized, multi-threaded cascade sum whose order
            // depends on the CPU's vector width and thread count, so its last bit is machine-dependent
            // in transformers itself; ours is the correctly rounded mean. Codes must be identical.
            let expectedScale = try fixtures.floats("\(name).scale")[0]
            #expect((tensor.scale - expectedScale).magnitude <= expectedScale.ulp, "scale of \(name)")
        }
    }

    @Test func weightTiesRoundToEven() throws {
        // mean |W| = 1, so 0.5 → 0 and 1.5 → 2 → clamped 1 (rounding away from zero would give 1 for 0.5).
        let tensor = try ternarize("w_ties")
        #expect(Array(tensor.codes.prefix(4)) == [0, 0, 1, -1])
    }

    @Test func weightsWithNaNAreRejected() {
        #expect(throws: QuantizationError.self) {
            try AbsmeanQuantizer.ternarize([0.1, .nan, 0.2, 0.3] as [Float], rows: 2, columns: 2)
        }
        do {
            _ = try AbsmeanQuantizer.ternarize([0.1, 0.2, .infinity, 0.3] as [Float], rows: 1, columns: 4)
            Issue.record("infinity accepted")
        } catch let error as QuantizationError {
            #expect(error.code == .nonFiniteValue)
            #expect(error.message.contains("weight 2"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func activationValuesAndScalesMatchActQuant() throws {
        let cases = manifest["activation_cases"]!.arrayValue!
        #expect(cases.count >= 4)
        for entry in cases {
            let name = entry["name"]!.stringValue!
            let shape = entry["shape"]!.arrayValue!.map { $0.intValue! }
            let quantized = try AbsmaxQuantizer.quantize(try fixtures.floats("\(name).input"), rows: shape[0], columns: shape[1])
            #expect(quantized.values == (try fixtures.int8s("\(name).values")), "values of \(name)")
            #expect(quantized.scales == (try fixtures.floats("\(name).scale")), "scales of \(name)")
        }
    }

    @Test func activationScaleIsReciprocalTimes127() throws {
        // PyTorch computes 127 / m as reciprocal(m) · 127; for some m that differs from a true division.
        let m: Float = 3.3
        let row: [Float] = [m, -1]
        let scale = row.withUnsafeBufferPointer { AbsmaxQuantizer.scale(ofRow: $0) }
        #expect(scale == (1 / m) * 127)
    }

    @Test func bitLinearOracleMatchesAutoBitLinear() throws {
        for entry in manifest["bitlinear_cases"]!.arrayValue! {
            let name = entry["name"]!.stringValue!
            let tokens = entry["tokens"]!.intValue!, outputs = entry["out"]!.intValue!
            let weights = try ternarize("\(name).w")
            let output = try BitLinearReference.forward(try fixtures.floats("\(name).x.input"), rows: tokens, weights)
            let reference = try fixtures.floats("\(name).output")
            for token in 0..<tokens {
                let row = Array(output[token * outputs..<(token + 1) * outputs])
                let expected = Array(reference[token * outputs..<(token + 1) * outputs])
                #expect(row.relativeError(to: expected) <= 1e-6, "\(name) token \(token)")
            }
        }
    }

    @Test func huggingFacePackingMatchesPackWeights() throws {
        let codes = try fixtures.int8s("hf.codes")
        let packed = try fixtures.bytes("hf.packed")
        let tensor = try TernaryTensor(rows: 12, columns: 64, codes: codes, scale: 1)
        #expect(HuggingFacePacking.pack(tensor) == packed)
        let unpacked = try packed.withUnsafeBytes { try HuggingFacePacking.unpack($0, packedRows: 3, columns: 64, scale: 1) }
        #expect(unpacked.codes == codes)

        // 10 rows pack into 3 (the last slot partly empty) and unpack to the first 10.
        let oddCodes = try fixtures.int8s("hf.odd_codes")
        let oddPacked = try fixtures.bytes("hf.odd_packed")
        #expect(HuggingFacePacking.pack(try TernaryTensor(rows: 10, columns: 32, codes: oddCodes, scale: 1)) == oddPacked)
        let oddUnpacked = try oddPacked.withUnsafeBytes { try HuggingFacePacking.unpack($0, packedRows: 3, columns: 32, outFeatures: 10, scale: 1) }
        #expect(oddUnpacked.codes == oddCodes)
    }

    @Test func weightScaleMultipliesForAutoBitLinearAndDividesForBitLinear() throws {
        let packed = try fixtures.bytes("hf.packed")
        let weightScale = try fixtures.floats("hf.weight_scale")[0]
        let input = try fixtures.floats("hf.input")
        func output(scale: Float) throws -> [Float] {
            let weights = try packed.withUnsafeBytes { try HuggingFacePacking.unpack($0, packedRows: 3, columns: 64, scale: scale) }
            return try BitLinearReference.forward(input, rows: 3, weights)
        }
        let autoReference = try fixtures.floats("hf.autobitlinear_output")
        let bitReference = try fixtures.floats("hf.bitlinear_output")
        #expect(try output(scale: HuggingFacePacking.effectiveScale(weightScale: weightScale, linearClass: "autobitlinear")).relativeError(to: autoReference) <= 1e-6)
        #expect(try output(scale: HuggingFacePacking.effectiveScale(weightScale: weightScale, linearClass: "bitlinear")).relativeError(to: bitReference) <= 1e-6)
        // The two conventions really differ: the wrong one is far off.
        #expect(try output(scale: weightScale).relativeError(to: bitReference) > 0.5)
    }
}
