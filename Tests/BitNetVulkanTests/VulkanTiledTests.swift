import BitNetEngine
import BitNetFormats
import BitNetInference
import BitNetModels
import BitNetQuantization
import BitNetVulkan
import Foundation
import TestSupport
import Testing

/// BitLinear over prompts in tiles of 64 rows × 32 tokens (`bitlinear_tiled.comp`) against the one-row-a-workgroup
/// shader: integer sums are exact in any order and both rescale in the CPU's order. Attention over a prompt 8 queries a
/// workgroup (`attention_tiled.comp`) against one a workgroup: each query's floats in the same order. So the logits
/// agree to the bit.
@Suite struct VulkanTiledTests {
    /// 45 tokens: a whole tile of 32 and a partial one. The synthetic models have K and V projections of 96 rows (a
    /// whole tile of rows and a partial one) and rows whose scale blocks differ (the block-by-block rescale) beside rows
    /// where they agree; the bundled model is TQ2_0 with one scale a tensor; the I2_S model has one scale a row.
    @Test(arguments: ["bundled", "tq2_0", "tq1_0", "i2_s", "f32"], [false, true])
    func tiledBitLinearGivesTheRowShadersFloats(model name: String, integerDot: Bool) throws {
        let scratch = TemporaryDirectory()
        let path = name == "bundled" ? VulkanBackendTests.bundledModel : try Self.syntheticModel(name, into: scratch.path + "/\(name).gguf")
        var logits: [[[Float]]] = []
        for tiled in [false, true] {
            let backend = try VulkanTesting.backend(integerDotProduct: integerDot, tilesPrompts: tiled)
            let model = try BitNetModel(path: path, backend: backend)
            let tokens = (0..<45).map { ($0 * 37 + 11) % model.configuration.vocabularySize }
            logits.append(try InferenceSession(model: model, contextLength: 64).evaluate(tokens, allPositions: true))
            backend.profiling = true  // which shaders ran; a barrier after every dispatch leaves the floats alone
            #expect(try InferenceSession(model: model, contextLength: 64).evaluate(tokens, allPositions: true).map { $0.map(\.bitPattern) }
                    == logits.last!.map { $0.map(\.bitPattern) })
            backend.profiling = false
            let labels = backend.takeProfile().entries.map(\.label).filter { $0.hasPrefix("bitlinear ") || $0.hasPrefix("attention") }
            #expect(labels.count > 1 && labels.allSatisfy { $0.hasSuffix(" tiled") == tiled }, "\(labels)")
            try VulkanTesting.expectNoValidationMessages(backend)
        }
        #expect(logits[0].count == 45)
        #expect(logits[0].map { $0.map(\.bitPattern) } == logits[1].map { $0.map(\.bitPattern) })
        if name == "f32" {  // rows padded at upload to whole blocks of 256: the CPU, which pads nothing, agrees
            let cpu = try BitNetModel(path: path, backend: .cpu, threads: 2)
            let tokens = (0..<45).map { ($0 * 37 + 11) % cpu.configuration.vocabularySize }
            let expected = try InferenceSession(model: cpu, contextLength: 64).evaluate(tokens, allPositions: true)
            let errors = zip(logits[1], expected).map { $0.relativeError(to: $1) }
            #expect(errors.sorted()[errors.count / 2] <= 1e-5 && errors.allSatisfy { $0 <= 1e-2 }, "\(errors)")
        }
    }

    /// A prompt longer than a pass (256 + 44 tokens: the second pass attends to what the first stored), with f32 and
    /// f16 caches; and a batch of two sequences, which the tiled attention does not take (its tiles are one slot's).
    @Test(arguments: [KeyValueCacheType.f32, .f16])
    func tiledAttentionGivesTheSameFloatsAcrossPasses(cache: KeyValueCacheType) throws {
        var logits: [[[Float]]] = [], twoSequences: [[[Float]]] = []
        for tiled in [false, true] {
            let backend = try VulkanTesting.backend(tilesPrompts: tiled)
            let model = try BitNetModel(path: VulkanBackendTests.bundledModel, backend: backend)
            let tokens = (0..<300).map { ($0 * 131 + 7) % model.configuration.vocabularySize }
            logits.append(try InferenceSession(model: model, contextLength: 320, cacheType: cache).evaluate(tokens, allPositions: true))
            backend.profiling = true  // which shaders ran
            _ = try InferenceSession(model: model, contextLength: 320, cacheType: cache).evaluate(Array(tokens.prefix(20)))
            var labels = Set(backend.takeProfile().entries.map(\.label))
            #expect(labels.contains("attention tiled") == tiled && labels.contains("attention") == !tiled, "\(labels)")

            var batch = ForwardBatch()
            for (index, token) in tokens.prefix(40).enumerated() { batch.append(token, position: index / 2, slot: index % 2, wantsLogits: true) }
            twoSequences.append(try model.forward(batch, cache: try model.makeCache(slots: 2, contextLength: 32, type: cache)))
            backend.profiling = false
            labels = Set(backend.takeProfile().entries.map(\.label))
            #expect(!labels.contains("attention tiled") && labels.contains(tiled ? "bitlinear 768×256 tiled" : "bitlinear 768+768×256"), "\(labels)")
            try VulkanTesting.expectNoValidationMessages(backend)
        }
        #expect(logits[0].count == 300)
        #expect(logits[0].map { $0.map(\.bitPattern) } == logits[1].map { $0.map(\.bitPattern) })
        #expect(twoSequences[0].map { $0.map(\.bitPattern) } == twoSequences[1].map { $0.map(\.bitPattern) })
    }

    /// A one-layer BitNet b1.58 model of random ternary weights: hidden 768 (24 heads of 32, 3 KV heads: K and V have
    /// 96 rows), feed-forward 512, 64 tokens; `f32`: hidden 288 and feed-forward 200, float weights. TQ2_0 and TQ1_0 rows take a scale per block of 256, equal along every
    /// third row, different from the first block or only in the last along the others; I2_S takes one scale a tensor.
    static func syntheticModel(_ type: String, into path: String) throws -> String {
        let odd = type == "f32"  // hidden 288 (9 heads), feed-forward 200: rows of 200 and 288 values
        let configuration = ModelConfiguration(
            architecture: .bitnetB158, vocabularySize: 64, hiddenSize: odd ? 288 : 768, intermediateSize: odd ? 200 : 512, layerCount: 1,
            headCount: odd ? 9 : 24, keyValueHeadCount: 3, headDimension: 32, rmsNormEpsilon: 1e-5, ropeTheta: 10_000,
            rotaryLayout: BitNetArchitecture.bitnetB158.definition.ggufRotaryLayout, contextLength: 64)
        var metadata = GGUFMetadata()
        for (key, value) in configuration.ggufMetadata { metadata[key] = value }
        let roles = [TensorRole.tokenEmbedding] + BitNetArchitecture.bitnetB158.definition.layerTensors + [.outputNorm]
        var generator = SeededGenerator(seed: 11)
        var declared: [(name: String, type: GGMLType, shape: [Int])] = []
        var data: [[UInt8]] = []
        for role in roles {
            let (rows, columns) = role.shape(configuration)
            if role.isBitLinear {
                let codes = (0..<rows * columns).map { _ in Int8(Int(generator.next() % 3) - 1) }
                let ggml: GGMLType = type == "tq2_0" ? .tq2_0 : type == "tq1_0" ? .tq1_0 : type == "f32" ? .f32 : .i2_s
                declared.append((role.ggufName(layer: 0), ggml, [columns, rows]))
                if ggml == .f32 {  // ternary values times a scale, quantized back to them at load
                    data.append(codes.flatMap { withUnsafeBytes(of: (Float($0) * 0.75).bitPattern.littleEndian, Array.init) })
                    continue
                }
                if ggml == .i2_s {
                    var bytes = [UInt8](repeating: 0, count: try I2S.byteCount(valueCount: codes.count, rowLength: columns))
                    try codes.withUnsafeBufferPointer { codes in
                        try bytes.withUnsafeMutableBytes { try I2S.pack(codes, rowLength: columns, scale: 0.75, into: $0) }
                    }
                    data.append(bytes)
                    continue
                }
                let blockBytes = ggml == .tq2_0 ? TQ2_0.bytesPerBlock : TQ1_0.bytesPerBlock
                var bytes = [UInt8](repeating: 0, count: codes.count / 256 * blockBytes)
                codes.withUnsafeBufferPointer { codes in
                    bytes.withUnsafeMutableBytes { bytes in
                        for block in 0..<codes.count / 256 {
                            let (row, column) = (block * 256 / columns, block * 256 % columns / 256)
                            let scale: Float = switch row % 3 {
                            case 0: 0.5
                            case 1: 0.25 * Float(1 + (row + column) % 4)
                            default: column == columns / 256 - 1 ? 0.75 : 0.25  // only the last block differs
                            }
                            let codes = codes.baseAddress! + block * 256, output = bytes.baseAddress! + block * blockBytes
                            if ggml == .tq2_0 { TQ2_0.packBlock(codes, scale: scale, into: output) } else { TQ1_0.packBlock(codes, scale: scale, into: output) }
                        }
                    }
                }
                data.append(bytes)
            } else {
                let values = rows == 1 ? [Float](repeating: 1, count: columns) : (0..<rows * columns).map { _ in Float(Int(generator.next() % 200) - 100) / 100 }
                declared.append((role.ggufName(layer: 0), rows == 1 ? .f32 : .f16, rows == 1 ? [columns] : [columns, rows]))
                data.append(rows == 1 ? values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
                                      : values.flatMap { withUnsafeBytes(of: Float16($0).bitPattern.littleEndian, Array.init) })
            }
        }
        let writer = try GGUFWriter(path: path, metadata: metadata, tensors: declared)
        for bytes in data { try writer.write(bytes) }
        try writer.finish()
        return path
    }
}
