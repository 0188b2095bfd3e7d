import BitNetFormats
import BitNetInference
import Foundation
import TestSupport
import Testing

/// Our engine against transformers' BitNetForCausalLM (QAT forward, float32) on tiny random models.
///
/// Random networks are chaotic: one int8 rounding flip moves logits by about 1 %, a real bug by 50 % or
/// more. So every position must agree within 10 % relative L2 (median ≤ 5 %) with the same top-1 token
/// at ≥ 90 % of positions, both with the whole sequence as one batch and fed one token at a time.
@Suite struct ParityTests {
    struct Reference {
        let name: String
        let tokens: [Int]
        let logits: [[Float]]
    }

    static func references() throws -> [Reference] {
        let summary = try Fixtures.json("models/models.json")
        return try summary.objectValue!.map { name, _ in
            let tensors = try FixtureTensors("models/\(name)/reference-logits.safetensors")
            let tokens = try tensors.floats("tokens").map { Int($0) }
            let flat = try tensors.floats("logits")
            let vocabulary = flat.count / tokens.count
            return Reference(name: name, tokens: tokens, logits: (0..<tokens.count).map { Array(flat[$0 * vocabulary..<($0 + 1) * vocabulary]) })
        }
    }

    static func argmax(_ row: [Float]) -> Int { row.indices.max { row[$0] < row[$1] }! }

    func expectAgreement(_ ours: [[Float]], _ reference: Reference, _ label: String) {
        #expect(ours.count == reference.logits.count, "\(label): positions")
        let errors = zip(ours, reference.logits).map { $0.relativeError(to: $1) }
        let sorted = errors.sorted()
        let median = sorted[sorted.count / 2]
        let agreeing = zip(ours, reference.logits).filter { Self.argmax($0) == Self.argmax($1) }.count
        print("\(label): max \(errors.max()!) median \(median) top-1 \(agreeing)/\(ours.count)")
        #expect(errors.max()! <= 0.1, "\(label): worst relative L2 error \(errors.max()!)")
        #expect(median <= 0.05, "\(label): median relative L2 error \(median)")
        #expect(Double(agreeing) >= 0.9 * Double(ours.count), "\(label): top-1 agrees at \(agreeing)/\(ours.count)")
    }

    @Test(arguments: try references())
    func huggingFaceDirectoryMatchesTransformers(_ reference: Reference) throws {
        let model = try BitNetModel(path: Fixtures.path("models/\(reference.name)"), threads: 2)
        let batch = try InferenceSession(model: model, contextLength: 64)
        expectAgreement(try batch.evaluate(reference.tokens, allPositions: true), reference, "\(reference.name) batch")

        let decode = try InferenceSession(model: model, contextLength: 64)
        let stepwise = try reference.tokens.map { try decode.evaluate([$0])[0] }
        expectAgreement(stepwise, reference, "\(reference.name) one token at a time")
    }
}

extension ParityTests {
    @Test func halfPrecisionCacheStaysWithinTolerance() throws {
        let reference = try #require(try Self.references().first { $0.name == "bitnet-gqa-wide-bf16" })
        let model = try BitNetModel(path: Fixtures.path("models/\(reference.name)"), threads: 2)
        let full = try InferenceSession(model: model, contextLength: 64)
        let half = try InferenceSession(model: model, contextLength: 64, cacheType: .f16)
        #expect(half.cacheBytes * 2 == full.cacheBytes)
        expectAgreement(try reference.tokens.map { try half.evaluate([$0])[0] }, reference, "f16 cache")
    }
}

extension ParityTests.Reference: CustomTestStringConvertible {
    var testDescription: String { name }
}

/// The same weights exported by gguf-py as TQ2_0 and TQ1_0 GGUF files (bitnet.cpp's `bitnet-b1.58` arch).
@Suite struct GGUFParityTests {
    @Test(arguments: [
        ("bitnet-gqa-tied-bf16-tq2_0.gguf", "bitnet-gqa-tied-bf16", BitNetArchitecture.bitnetB158),
        ("bitnet-gqa-tied-bf16-tq1_0.gguf", "bitnet-gqa-tied-bf16", .bitnetB158),
        ("bitnet-1bitllm-bf16-tq2_0.gguf", "bitnet-1bitllm-bf16", .bitnet1bitLLM),
        ("llama-ternary-packed-tq2_0.gguf", "llama-ternary-packed", .llama),
    ])
    func ggufExportMatchesTransformers(_ file: String, _ referenceName: String, _ architecture: BitNetArchitecture) throws {
        let reference = try #require(try ParityTests.references().first { $0.name == referenceName })
        let model = try BitNetModel(path: Fixtures.path("models/\(file)"), threads: 2)
        #expect(model.configuration.architecture == architecture)
        #expect(model.weightBytes.owned == 0, "TQ weights are used in place from the memory map")
        let session = try InferenceSession(model: model, contextLength: 32)
        ParityTests().expectAgreement(try session.evaluate(reference.tokens, allPositions: true), reference, "\(file) batch")
        let decode = try InferenceSession(model: model, contextLength: 32)
        ParityTests().expectAgreement(try reference.tokens.map { try decode.evaluate([$0])[0] }, reference, "\(file) decode")
    }

    /// Rewrites the TQ2_0 fixture with one change, to check what loading says about it.
    func rewritten(dropping dropped: String? = nil, retyping retyped: String? = nil, as newType: GGMLType = .f32) throws -> (TemporaryDirectory, String) {
        let source = try GGUFFile(path: Fixtures.path("models/bitnet-gqa-tied-bf16-tq2_0.gguf"))
        let scratch = TemporaryDirectory()
        let path = scratch.path + "/broken.gguf"
        let kept = source.tensors.filter { $0.name != dropped }
        let declared = kept.map { tensor -> (name: String, type: GGMLType, shape: [Int]) in
            guard tensor.name == retyped else { return (tensor.name, tensor.type, tensor.shape) }
            return newType == .f32 ? (tensor.name, .f32, [tensor.elementCount]) : (tensor.name, newType, tensor.shape)
        }
        let writer = try GGUFWriter(path: path, metadata: source.metadata, tensors: declared)
        for (tensor, declaration) in zip(kept, declared) {
            if declaration.type == tensor.type {
                try source.withTensorData(tensor) { try writer.write($0) }
            } else {
                try writer.write([UInt8](repeating: 0, count: declaration.type.byteCount(elementCount: tensor.elementCount)!))
            }
        }
        try writer.finish()
        return (scratch, path)
    }

    @Test func aMissingTensorIsNamed() throws {
        let (scratch, path) = try rewritten(dropping: "blk.1.ffn_sub_norm.weight")
        defer { _ = scratch }
        let error = #expect(throws: ModelError.self) { try BitNetModel(path: path) }
        #expect(error?.code == .invalidModel)
        #expect(error?.message.contains("blk.1.ffn_sub_norm.weight") == true)
    }

    @Test func aWrongShapeIsNamed() throws {
        let (scratch, path) = try rewritten(retyping: "blk.0.attn_norm.weight")  // still 256 values, but f32 and 1-D: fine
        defer { _ = scratch }
        _ = try BitNetModel(path: path)
        let (scratch2, path2) = try rewritten(retyping: "blk.0.attn_q.weight")  // flattened to one dimension
        defer { _ = scratch2 }
        let error = #expect(throws: ModelError.self) { try BitNetModel(path: path2) }
        #expect(error?.message.contains("blk.0.attn_q.weight") == true)
        #expect(error?.message.contains("shape") == true)
    }

    @Test func aWrongTypeIsNamed() throws {
        let (scratch, path) = try rewritten(retyping: "blk.1.ffn_up.weight", as: .q4_0)
        defer { _ = scratch }
        let error = #expect(throws: ModelError.self) { try BitNetModel(path: path) }
        #expect(error?.code == .unsupportedModel)
        #expect(error?.message.contains("blk.1.ffn_up.weight") == true && error?.message.contains("q4_0") == true)
    }

    @Test func tokensOutsideTheVocabularyAndContextOverflowAreErrors() throws {
        let model = try BitNetModel(path: Fixtures.path("models/bitnet-gqa-tied-bf16-tq2_0.gguf"), threads: 1)
        let session = try InferenceSession(model: model, contextLength: 4)
        #expect(throws: InferenceError.self) { try session.evaluate([5000]) }
        #expect(throws: InferenceError.self) { try session.evaluate([1, 2, 3, 4, 5]) }
        #expect(session.tokens.isEmpty)
        _ = try session.evaluate([1, 2, 3])
        let overflow = #expect(throws: InferenceError.self) { try session.evaluate([4, 5]) }
        #expect(overflow?.code == .contextOverflow)
        session.truncate(to: 1)
        #expect(try session.evaluate([4, 5, 6]).count == 1)
    }
}
