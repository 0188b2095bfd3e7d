import BitNetInference
import Foundation
import TestSupport
import Testing

/// Batches of several sequences: each token computes exactly what it computes alone.
@Suite struct BatchTests {
    static let model = Fixtures.path("models/bitnet-gqa-tied-bf16-tq2_0.gguf")

    @Test(arguments: ParityTests.backends)
    func sequencesBatchedTogetherEqualEachRunAlone(_ backend: BackendChoice) async throws {
        let model = try BitNetModel(path: Self.model, backend: backend, threads: 2)
        let prompts = [[1, 5, 9, 200, 17], [3, 3, 40], [7, 8, 9, 10, 11, 12, 13]]
        let continuations = [[30, 31], [50, 51], [70, 71]]

        // Alone: each sequence in its own session, prompt then one token at a time.
        var alone: [[[Float]]] = []
        for (prompt, continuation) in zip(prompts, continuations) {
            let session = try InferenceSession(model: model, contextLength: 16)
            var rows = try await session.evaluate(prompt, allPositions: true)
            for token in continuation { rows += try await session.evaluate([token]) }
            alone.append(rows)
        }

        // Together: the three prompts interleaved in one batch, then one decode step for all three.
        let cache = try model.makeCache(slots: 3, contextLength: 16)
        var batch = ForwardBatch()
        for position in 0..<prompts.map(\.count).max()! {
            for (slot, prompt) in prompts.enumerated() where position < prompt.count {
                batch.append(prompt[position], position: position, slot: slot, wantsLogits: true)
            }
        }
        let promptRows = try await model.forward(batch, cache: cache)
        #expect(cache.lengths == prompts.map(\.count))
        var together: [[[Float]]] = prompts.map { _ in [] }
        var row = 0
        for (slot, _) in zip(batch.slots, batch.tokens) {
            together[slot].append(promptRows[row])
            row += 1
        }
        for step in 0..<2 {
            var decode = ForwardBatch()
            for slot in [2, 0, 1] {  // any order
                decode.append(continuations[slot][step], position: cache.lengths[slot], slot: slot, wantsLogits: true)
            }
            let rows = try await model.forward(decode, cache: cache)
            for (index, slot) in decode.slots.enumerated() { together[slot].append(rows[index]) }
        }
        for slot in 0..<3 {
            let differences = zip(together[slot], alone[slot]).map { zip($0, $1).map { abs($0 - $1) }.max()! }
            #expect(differences.allSatisfy { $0 == 0 }, "sequence \(slot): batched logits differ from the sequence run alone: \(differences)")
        }
    }

    @Test func batchesAreCheckedAgainstTheCache() throws {
        let model = try BitNetModel(path: Self.model, backend: .cpu, threads: 1)
        let cache = try model.makeCache(slots: 2, contextLength: 4)
        func error(_ build: (inout ForwardBatch) -> Void) -> InferenceError? {
            var batch = ForwardBatch()
            build(&batch)
            return #expect(throws: InferenceError.self) { try model.forward(batch, cache: cache) }
        }
        #expect(error { _ in }?.message.contains("no tokens") == true)
        #expect(error { $0.append(1, position: 1, slot: 0, wantsLogits: true) }?.message.contains("position 1") == true)
        #expect(error { $0.append(1, position: 0, slot: 2, wantsLogits: true) }?.message.contains("slot 2") == true)
        #expect(error { $0.append(9999, position: 0, slot: 0, wantsLogits: true) }?.message.contains("9999") == true)
        #expect(error {
            $0.append(1, position: 0, slot: 1, wantsLogits: false)
            $0.append(2, position: 0, slot: 1, wantsLogits: true)
        } != nil)
        #expect(cache.lengths == [0, 0], "nothing is stored from a refused batch")
        _ = try model.forward(ForwardBatch(tokens: [1, 2, 3, 4], slot: 1, start: 0), cache: cache)
        #expect(error { $0.append(5, position: 4, slot: 1, wantsLogits: true) }?.code == .contextOverflow)
        try cache.truncate(slot: 1, to: 2)
        #expect(try model.forward(ForwardBatch(tokens: [7, 8], slot: 1, start: 2), cache: cache).count == 1)
        #expect(cache.lengths == [0, 4])
        #expect(throws: InferenceError.self) { try cache.truncate(slot: 5, to: 0) }
    }

    @Test func aPromptChunkMayAskForNoLogits() throws {
        let model = try BitNetModel(path: Self.model, backend: .cpu, threads: 1)
        let cache = try model.makeCache(slots: 1, contextLength: 8)
        var chunk = ForwardBatch()
        for (position, token) in [4, 8, 15].enumerated() { chunk.append(token, position: position, slot: 0, wantsLogits: false) }
        #expect(try model.forward(chunk, cache: cache).isEmpty)
        let last = try model.forward(ForwardBatch(tokens: [16], start: 3), cache: cache)
        let whole = try InferenceSession(model: model, contextLength: 8).evaluate([4, 8, 15, 16])
        #expect(last == whole, "a prompt in chunks gives the logits of the prompt in one batch")
    }

    @Test func aCacheServesOnlyTheModelThatMadeIt() throws {
        let model = try BitNetModel(path: Self.model, backend: .cpu, threads: 1)
        let other = try BitNetModel(path: Fixtures.path("models/bitnet-1bitllm-bf16-tq2_0.gguf"), backend: .cpu, threads: 1)
        let cache = try other.makeCache(slots: 1, contextLength: 8)
        let error = #expect(throws: InferenceError.self) { try model.forward(ForwardBatch(tokens: [1, 2], start: 0), cache: cache) }
        #expect(error?.message.contains("another model") == true)
    }
}
