import BitNetEngine
import BitNetFormats
import BitNetInference
import BitNetModels
@testable import BitNetVulkan
import Foundation
import TestSupport
import Testing

/// Greedy decoding on the device (`argmax.comp`): the token of each logit row chosen where the logits are, three
/// words a row read back, the same token the host's `LogitRows.greedyToken` picks; and top-k sampling's candidates
/// (`top_logits.comp`, `top_logits_merge.comp`), the host's `LogitRows.topLogits`.
@Suite struct VulkanGreedyTests {
    /// Several sequences in one batch, every row wanted, and a batch longer than one pass holds.
    @Test func deviceTokensAreTheArgmaxOfTheDeviceLogits() throws {
        let backend = try VulkanTesting.backend()
        let model = try BitNetModel(path: VulkanBackendTests.bundledModel, backend: backend)
        let vocabulary = model.configuration.vocabularySize
        let tokenizer = try model.loadTokenizer()
        let prompts = ["Once upon a time, there was a little robot.", "The garden was full of flowers", "One day"].map { tokenizer.encode($0) }
        var batch = ForwardBatch()
        for (slot, prompt) in prompts.enumerated() {
            for (position, token) in prompt.enumerated() { batch.append(token, position: position, slot: slot, wantsLogits: true) }
        }
        let logits = try model.forward(batch, cache: try model.makeCache(slots: 3, contextLength: 32)).flatMap { $0 }
        let tokens = try model.forwardGreedy(batch, cache: try model.makeCache(slots: 3, contextLength: 32))
        #expect(tokens.count == batch.count)
        #expect(tokens == LogitRows.greedyTokens(logits, vocabularySize: vocabulary))

        let long = (0..<300).map { $0 % vocabulary }  // 256 tokens a pass: two passes
        let all = ForwardBatch(tokens: long, start: 0, allLogits: true)
        let longLogits = try model.forward(all, cache: try model.makeCache(contextLength: 512)).flatMap { $0 }
        #expect(try model.forwardGreedy(all, cache: try model.makeCache(contextLength: 512)) == LogitRows.greedyTokens(longLogits, vocabularySize: vocabulary))
        try VulkanTesting.expectNoValidationMessages(backend)
    }

    /// The largest logits found on the device are the host's `LogitRows.topLogits` of the device's own logits, tokens
    /// and floats to the bit: three sequences in a batch, 1, 40 and 64 of them (100: picked on the host), with slices of
    /// 2,048 columns (the bundled model's 4,096: two) and of 48 (86 slices, the last of 16 columns, whose 86 × 64
    /// candidates merge in three rounds).
    @Test func deviceTopLogitsAreTheHostsOfTheDeviceLogits() throws {
        for sliceColumns in [2048, 48] {
            let backend = try VulkanTesting.backend()
            backend.topSliceColumns = sliceColumns
            let model = try BitNetModel(path: VulkanBackendTests.bundledModel, backend: backend)
            let vocabulary = model.configuration.vocabularySize
            let tokenizer = try model.loadTokenizer()
            var batch = ForwardBatch()
            for (slot, prompt) in ["Once upon a time, there was a little robot.", "The garden", "One day"].map(tokenizer.encode).enumerated() {
                for (position, token) in prompt.enumerated() { batch.append(token, position: position, slot: slot, wantsLogits: true) }
            }
            let logits = try model.forward(batch, cache: try model.makeCache(slots: 3, contextLength: 32)).flatMap { $0 }
            for count in [1, 40, 64, 100] {
                let top = try model.forwardTopLogits(batch, cache: try model.makeCache(slots: 3, contextLength: 32), count: count)
                let expected = LogitRows.topLogits(logits, vocabularySize: vocabulary, count: count)
                #expect(top.count == batch.count && top.allSatisfy { $0.tokens.count == count })
                #expect(top.map(\.tokens) == expected.map(\.tokens), "\(count) from slices of \(sliceColumns)")
                #expect(top.map { $0.logits.map(\.bitPattern) } == expected.map { $0.logits.map(\.bitPattern) }, "\(count) from slices of \(sliceColumns)")
            }
            try VulkanTesting.expectNoValidationMessages(backend)
        }
    }

    /// Sampled generation (top-k 40, temperature 0.8: the defaults) draws from the device's largest logits, and gives
    /// the tokens that drawing from whole rows of logits gives, with the same seed.
    @Test func samplingFromTheDeviceTopLogitsIsSamplingFromTheLogits() async throws {
        let backend = try VulkanTesting.backend()
        let model = try BitNetModel(path: VulkanBackendTests.bundledModel, backend: backend)
        let tokenizer = try model.loadTokenizer()
        let prompt = tokenizer.encode("Once upon a time")
        let parameters = GenerationParameters(maximumTokens: 24, sampling: SamplingParameters())
        #expect(parameters.sampling.samplesFromTopLogits)
        var generated: [Int] = []
        backend.profiling = true
        for try await event in TextGeneration(session: try InferenceSession(model: model, contextLength: 64), tokenizer: tokenizer, prompt: prompt,
                                               parameters: parameters) {
            if case .token(let id, _) = event { generated.append(id) }
        }
        backend.profiling = false
        let labels = Set(backend.takeProfile().entries.map(\.label))
        #expect(labels.contains("top logits merged") && !labels.contains("logits copy"), "\(labels)")
        let session = try InferenceSession(model: model, contextLength: 64)
        var sampler = Sampler(parameters.sampling)
        var logits = try await session.evaluate(prompt).last!
        var expected: [Int] = []
        while expected.count < generated.count {
            expected.append(sampler.sample(logits, history: session.tokens))
            logits = try await session.evaluate([expected.last!]).last!
        }
        #expect(generated.count > 10 && generated == expected)
        try VulkanTesting.expectNoValidationMessages(backend)
    }

    /// A decode step shaped like the one before submits that step's recording again: its logits equal those of the
    /// same step recorded afresh (here after a greedy step, whose recording differs), and so do its greedy tokens, both
    /// from a cache whose every step is greedy (a greedy recording resubmitted) and from the alternating one. With two
    /// slots each step is a two-token batch of two sequences.
    @Test(arguments: [1, 2])
    func aResubmittedRecordingGivesWhatAFreshOneGives(slots: Int) throws {
        let backend = try VulkanTesting.backend()
        let model = try BitNetModel(path: VulkanBackendTests.bundledModel, backend: backend)
        let tokens = try model.loadTokenizer().encode("The little robot watered the flowers every morning before the sun rose.")
        let vocabulary = model.configuration.vocabularySize
        let reused = try model.makeCache(slots: slots, contextLength: 64), fresh = try model.makeCache(slots: slots, contextLength: 64)
        let greedy = try model.makeCache(slots: slots, contextLength: 64)
        for (index, token) in tokens.enumerated() {
            var batch = ForwardBatch()
            for slot in 0..<slots { batch.append((token + 17 * slot) % vocabulary, position: index, slot: slot, wantsLogits: true) }
            let logits = try model.forward(batch, cache: reused).flatMap { $0 }
            let expected = LogitRows.greedyTokens(logits, vocabularySize: vocabulary)
            #expect(try model.forwardGreedy(batch, cache: greedy) == expected, "step \(index)")
            if index % 2 == 0 {
                #expect(try model.forward(batch, cache: fresh).flatMap { $0 }.map(\.bitPattern) == logits.map(\.bitPattern), "step \(index)")
            } else {
                #expect(try model.forwardGreedy(batch, cache: fresh) == expected, "step \(index)")
            }
        }
        try VulkanTesting.expectNoValidationMessages(backend)
    }

    /// Equal logits go to the lowest token on both backends. The 1bitLLM fixture's output rows are rewritten so that
    /// tokens 7, 100, 263 and 287 share one row and 5, 130, 261 and 286 its negation (the others zero): every logit
    /// row then ties its maximum four ways, within one invocation's columns (7, 263 and 5, 261: 256 apart) and across
    /// invocations.
    @Test func equalLogitsGoToTheLowestToken() throws {
        let scratch = TemporaryDirectory()
        let path = try Self.rewritingOutputRows(of: "bitnet-1bitllm-bf16-tq2_0.gguf", into: scratch.path + "/ties.gguf") { row, original in
            switch row {
            case 7, 100, 263, 287: original(0)
            case 5, 130, 261, 286: original(0).map { $0 ^ 0x8000 }
            default: Array(repeating: 0, count: original(0).count)
            }
        }
        let backend = try VulkanTesting.backend()
        let cpu = try BitNetModel(path: path, backend: .cpu, threads: 2)
        let gpu = try BitNetModel(path: path, backend: backend)
        let tokens = [1, 17, 42, 99, 3, 250, 12, 8]
        let logits = try InferenceSession(model: cpu, contextLength: 16).evaluate(tokens, allPositions: true)
        for row in logits {
            let top = row.max()!
            #expect(row.indices.filter { row[$0] == top }.count == 4)  // a four-way tie, not a lucky order
        }
        let expected = logits.map { $0.withUnsafeBufferPointer(LogitRows.greedyToken) }
        #expect(Set(expected).isSubset(of: [5, 7]) && expected.count == tokens.count)
        let batch = ForwardBatch(tokens: tokens, start: 0, allLogits: true)
        for model in [cpu, gpu] {
            #expect(try model.forwardGreedy(batch, cache: try model.makeCache(contextLength: 16)) == expected, "\(model.backend.name)")
        }
        // The largest logits too: the four equal ones lowest token first, then the zeros from token 0 on, across slices
        // of 16 columns (the four tied tokens of a row are in four of them).
        backend.topSliceColumns = 16
        let sliced = try BitNetModel(path: path, backend: backend)
        let deviceLogits = try sliced.forward(batch, cache: try sliced.makeCache(contextLength: 16)).flatMap { $0 }
        let top = try sliced.forwardTopLogits(batch, cache: try sliced.makeCache(contextLength: 16), count: 9)
        #expect(top == LogitRows.topLogits(deviceLogits, vocabularySize: sliced.configuration.vocabularySize, count: 9))
        #expect(top.allSatisfy { [[5, 130, 261, 286], [7, 100, 263, 287]].contains(Array($0.tokens.prefix(4))) && $0.tokens.suffix(5) == [0, 1, 2, 3, 4] })
        try VulkanTesting.expectNoValidationMessages(backend)
    }

    /// A non-finite logit is the same typed error on both backends, naming the token: the device reports the first
    /// non-finite column of each row (tokens 30 and 286 are one invocation's columns, 200 another's), and the pass is
    /// not recorded in the cache.
    @Test func aNonFiniteLogitIsAnErrorNamingItsToken() throws {
        let scratch = TemporaryDirectory()
        let path = try Self.rewritingOutputRows(of: "bitnet-1bitllm-bf16-tq2_0.gguf", into: scratch.path + "/infinite.gguf") { row, original in
            [30, 200, 286].contains(row) ? Array(repeating: 0x7C00, count: original(row).count) : original(row)  // +∞ (f16)
        }
        let backend = try VulkanTesting.backend()
        for model in [try BitNetModel(path: path, backend: .cpu, threads: 2), try BitNetModel(path: path, backend: backend)] {
            let cache = try model.makeCache(contextLength: 16)
            for top in [false, true] {
                #expect {
                    let batch = ForwardBatch(tokens: [1, 17, 42], start: 0)
                    _ = top ? try model.forwardTopLogits(batch, cache: cache, count: 40).count : try model.forwardGreedy(batch, cache: cache).count
                } throws: { error in
                    let error = error as? InferenceError
                    return error?.code == .nonFiniteResult && error?.message.contains("for token 30)") == true
                }
            }
            #expect(cache.lengths == [0], "\(model.backend.name)")
        }
        try VulkanTesting.expectNoValidationMessages(backend)
    }

    /// A copy of the fixture GGUF `name` whose f16 `output.weight` rows are `rewrite(row, original)`, where
    /// `original(r)` is row r's bits in the fixture.
    static func rewritingOutputRows(of name: String, into path: String, _ rewrite: (Int, (Int) -> [UInt16]) -> [UInt16]) throws -> String {
        let source = try GGUFFile(path: Fixtures.path("models/" + name))
        let writer = try GGUFWriter(path: path, metadata: source.metadata, tensors: source.tensors.map { ($0.name, $0.type, $0.shape) })
        for tensor in source.tensors {
            try source.withTensorData(tensor) { bytes in
                guard tensor.name == "output.weight" else { return try writer.write(bytes) }
                #expect(tensor.type == .f16)
                let columns = tensor.shape[0]
                let halves = Array(bytes.bindMemory(to: UInt16.self))
                let rewritten = (0..<tensor.shape[1]).flatMap { rewrite($0) { Array(halves[$0 * columns..<($0 + 1) * columns]) } }
                try rewritten.withUnsafeBytes { try writer.write($0) }
            }
        }
        try writer.finish()
        return path
    }
}
