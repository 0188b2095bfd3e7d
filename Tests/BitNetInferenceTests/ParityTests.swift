import BitNetCPU
import BitNetFormats
import BitNetInference
import Foundation
import TestSupport
import Testing

/// Our engine against transformers' BitNetForCausalLM (QAT forward, float32) on tiny random models, on
/// every backend, both with the whole sequence as one batch and fed one token at a time, each fixture
/// held to its claim (``ParityTolerance``).
@Suite struct ParityTests {
    /// The backends every parity case runs on.
    static let backends: [BackendChoice] = [.cpu]

    static func references() throws -> [ReferenceLogits] { try ReferenceLogits.all() }

    static var cases: [(BackendChoice, ReferenceLogits)] {
        get throws { try backends.flatMap { backend in try references().map { (backend, $0) } } }
    }

    @Test(arguments: try cases)
    func huggingFaceDirectoryMatchesTransformers(_ backend: BackendChoice, _ reference: ReferenceLogits) throws {
        let model = try BitNetModel(path: Fixtures.path("models/\(reference.name)"), backend: backend, threads: 2)
        let tolerance = ParityTolerance.of(reference.name)
        let batch = try InferenceSession(model: model, contextLength: 64)
        reference.expectAgreement(try batch.evaluate(reference.tokens, allPositions: true), within: tolerance, "\(reference.name) batch")

        let decode = try InferenceSession(model: model, contextLength: 64)
        let stepwise = try reference.tokens.map { try decode.evaluate([$0])[0] }
        reference.expectAgreement(stepwise, within: tolerance, "\(reference.name) one token at a time")
    }

    @Test(arguments: backends)
    func halfPrecisionCacheStaysWithinTolerance(_ backend: BackendChoice) throws {
        let reference = try ReferenceLogits("bitnet-gqa-wide-bf16")
        let model = try BitNetModel(path: Fixtures.path("models/\(reference.name)"), backend: backend, threads: 2)
        let full = try InferenceSession(model: model, contextLength: 64)
        let half = try InferenceSession(model: model, contextLength: 64, cacheType: .f16)
        #expect(half.cacheBytes * 2 == full.cacheBytes)
        reference.expectAgreement(try reference.tokens.map { try half.evaluate([$0])[0] }, within: .of("bitnet-gqa-wide-bf16-f16-cache"), "f16 cache")
    }

    /// The tolerances are tight enough to catch real bugs: the same fixture with a broken RoPE or a
    /// broken norm lands far outside them. (Files with f16 block scales differ from the float reference by a
    /// few percent, so there a subtle bug, such as θ off by 5 %, would fit; the exact fixtures catch it, and
    /// every file runs the same ops.)
    @Test(arguments: [("bitnet-gqa-tied-bf16", "bitnet-gqa-tied-bf16"), ("llama-ternary-packed", "llama-ternary-packed"),
                      ("llama-ternary-packed-tq2_0.gguf", "llama-ternary-packed")])
    func bugsDoNotFitInsideTheTolerances(_ fixture: String, _ referenceName: String) throws {
        let source = try WeightSource(path: Fixtures.path("models/\(fixture)"))
        let reference = try ReferenceLogits(referenceName)
        let graph = try source.architecture.buildGraph(source)
        func worstError(_ mutate: (ForwardOp) -> ForwardOp) throws -> Float {
            var broken = graph
            broken.ops = graph.ops.map(mutate)
            let loaded = try CPUBackend(threads: 2).load(broken)
            let cache = try KeyValueCache(model: loaded, slots: 1, capacity: 32, type: .f32)
            let flat = try cache.forward(ForwardBatch(tokens: reference.tokens, start: 0, allLogits: true), on: loaded)
            let width = graph.configuration.vocabularySize
            return reference.compare((0..<reference.tokens.count).map { Array(flat[$0 * width..<($0 + 1) * width]) }).errors.max()!
        }
        let tolerance = ParityTolerance.of(fixture)
        #expect(try worstError { $0 } <= tolerance.maximum)
        let ropeLayout = try worstError { op in
            guard case .rope(let buffer, let heads, var rotary) = op else { return op }
            rotary.layout = rotary.layout == .halves ? .interleaved : .halves
            return .rope(buffer, heads: heads, rotary)
        }
        let ropeTheta = try worstError { op in
            guard case .rope(let buffer, let heads, var rotary) = op else { return op }
            rotary.theta *= 1.05
            return .rope(buffer, heads: heads, rotary)
        }
        let normEpsilon = try worstError { op in
            guard case .rmsNorm(let input, let weight, let epsilon, let output) = op else { return op }
            return .rmsNorm(input: input, weight: weight, epsilon: epsilon * 1000, output: output)
        }
        print("\(fixture): RoPE layout \(ropeLayout), RoPE θ +5 % \(ropeTheta), RMSNorm ε ×1000 \(normEpsilon)")
        let subtle = tolerance.maximum < 1e-3 ? [("RoPE θ", ropeTheta)] : []
        for (bug, error) in [("RoPE layout", ropeLayout), ("RMSNorm ε", normEpsilon)] + subtle {
            #expect(error > 2 * tolerance.maximum, "a \(bug) bug gives \(error), within twice the tolerance \(tolerance.maximum)")
        }
    }
}

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
