import BitNetCPU
import BitNetFormats
import BitNetInference
import BitNetVulkan
import Foundation
import TestSupport
import Testing

/// Our engine against transformers' BitNetForCausalLM (QAT forward, float32) on tiny random models, on
/// every backend, both with the whole sequence as one batch and fed one token at a time, each fixture
/// held to its claim (``ParityTolerance``).
@Suite struct ParityTests {
    /// The backends every parity case runs on: Vulkan on the machine's preferred device (lavapipe on CI) under
    /// the validation layer, whose messages fail the test (``expectNoValidationMessages(_:)``).
    static let backends: [BackendChoice] = {
        VulkanValidation.on
        return [.cpu, .vulkan]
    }()

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
        expectNoValidationMessages(model)
    }

    @Test(arguments: backends)
    func halfPrecisionCacheStaysWithinTolerance(_ backend: BackendChoice) throws {
        let reference = try ReferenceLogits("bitnet-gqa-wide-bf16")
        let model = try BitNetModel(path: Fixtures.path("models/\(reference.name)"), backend: backend, threads: 2)
        let full = try InferenceSession(model: model, contextLength: 64)
        let half = try InferenceSession(model: model, contextLength: 64, cacheType: .f16)
        #expect(half.cacheBytes * 2 == full.cacheBytes)
        reference.expectAgreement(try reference.tokens.map { try half.evaluate([$0])[0] }, within: .of("bitnet-gqa-wide-bf16-f16-cache"), "f16 cache")
        expectNoValidationMessages(model)
    }

    /// The tolerances are tight enough to catch real bugs: the same fixture with a broken RoPE or a
    /// broken norm lands far outside them. (Files with f16 block scales differ from the float reference by a
    /// few percent, so there a subtle bug, such as θ off by 5 %, would fit; the exact fixtures catch it, and
    /// every file runs the same ops.)
    @Test(arguments: [("bitnet-mha-untied-f16", "bitnet-mha-untied-f16"), ("llama-ternary-packed", "llama-ternary-packed"),
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

/// Fails the test if the Vulkan validation layer reported anything for the model's backend (a CPU model passes).
func expectNoValidationMessages(_ model: BitNetModel, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let backend = model.backend as? VulkanBackend else { return }
    let messages = backend.validationMessages
    #expect(messages.count == 0, "Vulkan validation: \(messages.count) messages, the last: \(messages.last)", sourceLocation: sourceLocation)
}
