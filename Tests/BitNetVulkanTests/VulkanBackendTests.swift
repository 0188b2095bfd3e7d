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
    /// order), so the median position agrees to 1e-5. Once with the portable shaders, once with the integer dot
    /// product and the subgroup reductions.
    @Test(arguments: [false, true])
    func bundledModelLogitsAgreeWithTheCPU(deviceFeatures: Bool) throws {
        let backend = try VulkanTesting.backend(integerDotProduct: deviceFeatures, subgroups: deviceFeatures)
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

    /// The subgroup variants reduce maxima (exact in any order) and the output projection's sums: every int8 code is
    /// the portable variants', so logits differ only by the projection's rounding (a flipped code moves them ≥ 1e-4).
    @Test func subgroupReductionsOnlyRoundTheOutputProjectionDifferently() throws {
        var logits: [[[Float]]] = []
        for subgroups in [false, true] {
            let backend = try VulkanTesting.backend(subgroups: subgroups)
            let model = try BitNetModel(path: Self.bundledModel, backend: backend)
            let tokens = try model.loadTokenizer().encode("The robot counted the flowers in the garden, one by one, until the sun went down.")
            logits.append(try InferenceSession(model: model, contextLength: 64).evaluate(tokens, allPositions: true))
            try VulkanTesting.expectNoValidationMessages(backend)
        }
        let errors = zip(logits[1], logits[0]).map { $0.relativeError(to: $1) }
        #expect(errors.count > 10 && errors.allSatisfy { $0 <= 1e-6 }, "relative L2 per position \(errors)")
    }

    /// Profiling puts a barrier and a timestamp after every dispatch: the logits stay the same to the bit, and the
    /// profile counts each kind of dispatch a pass records (a BitNet block: 7 BitLinear, a KV store that rotates the
    /// keys, an attention and 4 fused quantizations; then the logits' copy to host memory, or a greedy pass's argmax),
    /// with its time; in a decode step attention stores the keys and values, and three of the quantizations run in
    /// the BitLinear dispatches before them and one in attention's.
    @Test func profilingTimesEveryDispatchWithoutChangingTheLogits() throws {
        let backend = try VulkanTesting.backend(chainsQuantization: true)
        let model = try BitNetModel(path: Self.bundledModel, backend: backend)
        let tokens = try model.loadTokenizer().encode("Once upon a time, there was a little robot.")
        let plain = try InferenceSession(model: model, contextLength: 32).evaluate(tokens, allPositions: true)
        backend.profiling = true
        let profiled = try InferenceSession(model: model, contextLength: 32).evaluate(tokens, allPositions: true)
        backend.profiling = false
        let profile = backend.takeProfile()
        #expect(plain.map { $0.map(\.bitPattern) } == profiled.map { $0.map(\.bitPattern) })
        #expect(profile.passes == 1)
        let layers = model.configuration.layerCount
        let counts = Dictionary(profile.entries.map { ($0.label, $0.dispatches) }, uniquingKeysWith: +)
        #expect(tokens.count >= VulkanBackend.tiledMinimumTokens)  // tiled: nothing chained
        let expected = ["embed": 1, "add + norm + quantize": 2 * layers - 1, "norm + quantize": layers + 1,
                        "activation + norm + quantize": layers, "rope + kv store": layers, "attention tiled": layers,
                        "add": 1, "rms norm": 1, "select outputs": 1, "output projection": 1, "logits copy": 1]
        for (label, count) in expected { #expect(counts[label] == count, "\(label)") }
        #expect(counts.count == expected.count + counts.keys.filter { $0.hasPrefix("bitlinear ") }.count, "\(counts.keys.sorted())")
        #expect(counts.filter { $0.key.hasPrefix("bitlinear ") }.values.reduce(0, +) == 7 * layers)
        #expect(profile.entries.allSatisfy { $0.nanoseconds >= 0 } && profile.totalNanoseconds > 0)
        #expect(backend.takeProfile().passes == 0)  // taken
        backend.profiling = true
        _ = try InferenceSession(model: model, contextLength: 32).evaluateGreedy(tokens)
        backend.profiling = false
        let greedy = Dictionary(backend.takeProfile().entries.map { ($0.label, $0.dispatches) }, uniquingKeysWith: +)
        #expect(greedy["argmax"] == 1 && greedy["logits copy"] == nil, "\(greedy)")  // a greedy pass reads back tokens only
        // A decode step: the quantizations after O, gate and up, and down run in the BitLinear dispatches' last workgroup.
        let session = try InferenceSession(model: model, contextLength: 32)
        _ = try session.evaluate(tokens)
        backend.profiling = true
        _ = try session.evaluate([tokens[0]])
        backend.profiling = false
        let step = Dictionary(backend.takeProfile().entries.map { ($0.label, $0.dispatches) }, uniquingKeysWith: +)
        func chained(_ quantize: String) -> Int { step.filter { $0.key.hasPrefix("bitlinear ") && $0.key.hasSuffix(" + " + quantize) }.values.reduce(0, +) }
        #expect(chained("add + norm + quantize") == 2 * layers - 1 && chained("activation + norm + quantize") == layers, "\(step)")
        #expect(step["add + norm + quantize"] == nil && step["activation + norm + quantize"] == nil && step["norm + quantize"] == 1)
        #expect(step.filter { $0.key.hasPrefix("bitlinear ") }.values.reduce(0, +) == 4 * layers)  // Q, K and V one, gate and up one
        // Attention stores the keys as it attends, and its sub-norm and quantization run in its last workgroup.
        #expect(step["attention + kv store + norm + quantize"] == layers && step["rope + kv store"] == nil, "\(step)")
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
    static func backend(integerDotProduct: Bool = false, subgroups: Bool = true, fusesOps: Bool = true, chainsQuantization: Bool? = nil,
                        tilesPrompts: Bool = true, splitsAttention: Bool = true) throws -> VulkanBackend {
        let devices = try VulkanDevices.list()
        let lavapipe = try #require(devices.first { $0.driverName == "llvmpipe" }, "no lavapipe among \(devices.map(\.name)): run scripts/bootstrap")
        return try VulkanBackend(device: lavapipe, validation: true, integerDotProduct: integerDotProduct, subgroups: subgroups, fusesOps: fusesOps,
                                 chainsQuantization: chainsQuantization, tilesPrompts: tilesPrompts, splitsAttention: splitsAttention)
    }

    static func expectNoValidationMessages(_ backend: VulkanBackend, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let messages = backend.validationMessages
        #expect(messages.count == 0, "validation: \(messages.count) messages, the last: \(messages.last)", sourceLocation: sourceLocation)
    }
}
