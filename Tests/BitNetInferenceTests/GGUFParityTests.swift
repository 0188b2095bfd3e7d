import BitNetFormats
import BitNetInference
import Foundation
import TestSupport
import Testing

/// The same weights exported by gguf-py as TQ2_0 and TQ1_0 GGUF files (bitnet.cpp's `bitnet-b1.58` arch).
@Suite struct GGUFParityTests {
    @Test(arguments: [
        ("bitnet-gqa-tied-bf16-tq2_0.gguf", "bitnet-gqa-tied-bf16", BitNetArchitecture.bitnetB158),
        ("bitnet-gqa-tied-bf16-tq1_0.gguf", "bitnet-gqa-tied-bf16", .bitnetB158),
        ("bitnet-1bitllm-bf16-tq2_0.gguf", "bitnet-1bitllm-bf16", .bitnet1bitLLM),
        ("llama-ternary-packed-tq2_0.gguf", "llama-ternary-packed", .llama),
    ], ParityTests.backends)
    func ggufExportMatchesTransformers(_ file: (String, String, BitNetArchitecture), _ backend: BackendChoice) throws {
        let (file, referenceName, architecture) = file
        let reference = try ReferenceLogits(referenceName)
        let model = try BitNetModel(path: Fixtures.path("models/\(file)"), backend: backend, threads: 2)
        #expect(model.configuration.architecture == architecture)
        #expect(model.weightBytes.owned == 0, "TQ weights are used in place from the memory map")
        let session = try InferenceSession(model: model, contextLength: 32)
        reference.expectAgreement(try session.evaluate(reference.tokens, allPositions: true), within: .of(file), "\(file) batch")
        let decode = try InferenceSession(model: model, contextLength: 32)
        reference.expectAgreement(try reference.tokens.map { try decode.evaluate([$0])[0] }, within: .of(file), "\(file) decode")
        expectNoValidationMessages(model)
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
