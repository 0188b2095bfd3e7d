import BitNetEngine
import BitNetInference
import BitNetModels
import BitNetVulkan
import Foundation
import TestSupport
import Testing

/// The Vulkan backend against the CPU backend on lavapipe, under the Khronos validation layer (any warning or
/// error it reports fails the test).
@Suite struct VulkanBackendTests {
    static let bundledModel = Fixtures.repositoryRoot.appendingPathComponent("Sources/bitnet/Resources/tiny-bitnet.gguf").path

    /// Logits agree to a relative L2 of 1e-2 per position (the bound), in one batch and one token at a
    /// time; in fact the int8 codes agree (BitLinear is integer-exact and its inputs are normalized in the CPU's
    /// order), so the median position agrees to 1e-5.
    @Test(arguments: [false, true])
    func bundledModelLogitsAgreeWithTheCPU(integerDotProduct: Bool) throws {
        let backend = try VulkanTesting.backend(integerDotProduct: integerDotProduct)
        let cpu = try BitNetModel(path: Self.bundledModel, backend: .cpu, threads: 2)
        let gpu = try BitNetModel(path: Self.bundledModel, backend: backend)
        let tokens = try cpu.loadTokenizer().encode("Once upon a time, there was a little robot who lived in a garden full of flowers.")
        let expected = try InferenceSession(model: cpu, contextLength: 64).evaluate(tokens, allPositions: true)
        let batch = try InferenceSession(model: gpu, contextLength: 64).evaluate(tokens, allPositions: true)
        let session = try InferenceSession(model: gpu, contextLength: 64)
        let stepwise = try tokens.map { try session.evaluate([$0])[0] }
        for (label, ours) in [("batch", batch), ("one token at a time", stepwise)] {
            #expect(ours.count == expected.count)
            let errors = zip(ours, expected).map { $0.relativeError(to: $1) }
            #expect(errors.allSatisfy { $0 <= 1e-2 }, "\(label): relative L2 per position \(errors)")
            #expect(errors.sorted()[errors.count / 2] <= 1e-5, "\(label): median \(errors.sorted()[errors.count / 2])")
        }
        try VulkanTesting.expectNoValidationMessages(backend)
    }

    @Test func greedyTextIsTheSameOnBothBackends() async throws {
        let backend = try VulkanTesting.backend()
        var texts: [String] = []
        for model in [try BitNetModel(path: Self.bundledModel, backend: .cpu, threads: 2), try BitNetModel(path: Self.bundledModel, backend: backend)] {
            let tokenizer = try model.loadTokenizer()
            let session = try InferenceSession(model: model, contextLength: 128)
            var text = ""
            for try await event in TextGeneration(session: session, tokenizer: tokenizer, prompt: tokenizer.encode("Once upon a time"),
                                                   parameters: GenerationParameters(maximumTokens: 48, sampling: .greedy)) {
                if case .token(_, let piece) = event { text += piece }
            }
            texts.append(text)
        }
        #expect(texts[0].count > 20)
        #expect(texts[0] == texts[1])
        try VulkanTesting.expectNoValidationMessages(backend)
    }
}

enum VulkanTesting {
    /// The Vulkan backend on lavapipe (every test machine has it; `scripts/bootstrap` installs it), with validation.
    static func backend(integerDotProduct: Bool = false, fusesOps: Bool = true) throws -> VulkanBackend {
        let devices = try VulkanDevices.list()
        let lavapipe = try #require(devices.first { $0.driverName == "llvmpipe" }, "no lavapipe among \(devices.map(\.name)): run scripts/bootstrap")
        return try VulkanBackend(device: lavapipe, validation: true, integerDotProduct: integerDotProduct, fusesOps: fusesOps)
    }

    static func expectNoValidationMessages(_ backend: VulkanBackend, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let messages = backend.validationMessages
        #expect(messages.count == 0, "validation: \(messages.count) messages, the last: \(messages.last)", sourceLocation: sourceLocation)
    }
}
