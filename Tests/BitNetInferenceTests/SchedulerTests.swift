@testable import BitNetInference
import Foundation
import TestSupport
import Testing

/// Continuous batching: requests decoded together get what each gets alone.
@Suite struct SchedulerTests {
    static let modelPath = Fixtures.path("models/bitnet-chat-tiny-tq2_0.gguf")

    struct Outcome: Equatable {
        var ids: [Int] = []
        var text = ""
        var stopReason: StopReason?
    }

    static func alone(_ model: BitNetModel, _ request: GenerationRequest, contextLength: Int = 64) async throws -> Outcome {
        let tokenizer = try model.loadTokenizer()
        let session = try InferenceSession(model: model, contextLength: contextLength)
        var outcome = Outcome()
        for try await event in TextGeneration(session: session, tokenizer: tokenizer, prompt: request.prompt, parameters: request.parameters) {
            switch event {
            case .token(let id, let text):
                outcome.ids.append(id)
                outcome.text += text
            case .finished(let summary):
                outcome.text += summary.trailingText
                outcome.stopReason = summary.stopReason
            }
        }
        return outcome
    }

    static func collect(_ events: AsyncThrowingStream<ScheduledEvent, any Error>) async throws -> (Outcome, [ScheduledToken]) {
        var outcome = Outcome(), tokens: [ScheduledToken] = []
        for try await event in events {
            switch event {
            case .token(let token):
                outcome.ids.append(token.id)
                outcome.text += token.text
                tokens.append(token)
            case .finished(let summary):
                outcome.text += summary.trailingText
                outcome.stopReason = summary.stopReason
            }
        }
        return (outcome, tokens)
    }

    @Test func concurrentRequestsGetWhatEachGetsAlone() async throws {
        let model = try BitNetModel(path: Self.modelPath, backend: .cpu, threads: 2)
        let tokenizer = try model.loadTokenizer()
        var sampled = SamplingParameters()
        sampled.seed = 11
        let requests = [
            GenerationRequest(prompt: tokenizer.encode("def main(", addingBeginningOfSequence: true), parameters: GenerationParameters(maximumTokens: 12, sampling: .greedy)),
            GenerationRequest(prompt: tokenizer.encode("The os module provides a portable way of using", addingBeginningOfSequence: true),
                              parameters: GenerationParameters(maximumTokens: 9, sampling: sampled)),
            GenerationRequest(prompt: tokenizer.encode("import", addingBeginningOfSequence: true), parameters: GenerationParameters(maximumTokens: 15, sampling: .greedy)),
            GenerationRequest(prompt: tokenizer.encode("A list is", addingBeginningOfSequence: true), parameters: GenerationParameters(maximumTokens: 0, sampling: .greedy)),
            GenerationRequest(prompt: tokenizer.encode("class", addingBeginningOfSequence: true), parameters: GenerationParameters(maximumTokens: 7, sampling: sampled)),
        ]
        var expected: [Outcome] = []
        for request in requests { expected.append(try await Self.alone(model, request)) }

        // Two slots and 5-token steps: requests wait, prompts are read in chunks beside decoding ones.
        let scheduler = try GenerationScheduler(model: model, tokenizer: tokenizer,
                                                configuration: .init(parallel: 2, queueLimit: 8, contextLength: 64, batchSize: 5))
        let loop = Task { await scheduler.run() }
        let streams = try requests.map { try scheduler.submit($0) }
        #expect(scheduler.load.queued + scheduler.load.active == requests.count)
        var outcomes: [Outcome] = []
        for stream in streams { outcomes.append(try await Self.collect(stream).0) }
        for (index, (outcome, alone)) in zip(outcomes, expected).enumerated() {
            #expect(outcome == alone, "request \(index): batched \(outcome) differs from alone \(alone)")
        }
        #expect(outcomes[3].ids.isEmpty && outcomes[3].stopReason == .maximumTokens)
        #expect(scheduler.load.active == 0 && scheduler.load.queued == 0)
        loop.cancel()
        await loop.value
        #expect(throws: SchedulerError.self) { try scheduler.submit(requests[0]) }
    }

    @Test func logprobsAreTheModelsLogSoftmax() async throws {
        let model = try BitNetModel(path: Self.modelPath, backend: .cpu, threads: 2)
        let tokenizer = try model.loadTokenizer()
        let prompt = tokenizer.encode("def main(", addingBeginningOfSequence: true)
        let scheduler = try GenerationScheduler(model: model, tokenizer: tokenizer, configuration: .init(parallel: 1, contextLength: 32))
        let loop = Task { await scheduler.run() }
        defer { loop.cancel() }
        let (_, tokens) = try await Self.collect(try scheduler.submit(
            GenerationRequest(prompt: prompt, parameters: GenerationParameters(maximumTokens: 2, sampling: .greedy), logprobs: 3)))
        try #require(tokens.count == 2)

        let session = try InferenceSession(model: model, contextLength: 32)
        let logits = try #require(try await session.evaluate(prompt).last)
        let total = logits.map { exp(Double($0)) }.reduce(0, +)
        let reference = logits.map { Double($0) - log(total) }
        let order = reference.indices.sorted { reference[$0] > reference[$1] }
        #expect(tokens[0].id == order[0], "greedy picks the most likely token")
        #expect(abs(Double(try #require(tokens[0].logprob)) - reference[order[0]]) < 1e-4)
        #expect(tokens[0].topLogprobs.map(\.id) == Array(order.prefix(3)))
        for alternative in tokens[0].topLogprobs { #expect(abs(Double(alternative.logprob) - reference[alternative.id]) < 1e-4) }
    }

    @Test func refusalsAndCancellation() async throws {
        let model = try BitNetModel(path: Self.modelPath, backend: .cpu, threads: 2)
        let tokenizer = try model.loadTokenizer()
        let scheduler = try GenerationScheduler(model: model, tokenizer: tokenizer, configuration: .init(parallel: 1, queueLimit: 1, contextLength: 16))
        let long = GenerationRequest(prompt: Array(repeating: 5, count: 16), parameters: GenerationParameters(maximumTokens: 1))
        #expect { try scheduler.submit(long) } throws: { ($0 as? InferenceError)?.code == .contextOverflow }
        let outside = GenerationRequest(prompt: [1, 1_000_000], parameters: GenerationParameters())
        #expect { try scheduler.submit(outside) } throws: { ($0 as? InferenceError)?.message.contains("1000000") == true }
        #expect(throws: InferenceError.self) { try scheduler.submit(GenerationRequest(prompt: [1], parameters: GenerationParameters(), logprobs: 21)) }

        // Not yet running: one request takes the free slot, one waits, the third is refused.
        let endless = GenerationRequest(prompt: [1, 2, 3], parameters: GenerationParameters(maximumTokens: 1000, sampling: .greedy))
        let first = try scheduler.submit(endless)
        let second = try scheduler.submit(endless)
        #expect { try scheduler.submit(endless) } throws: { ($0 as? SchedulerError) == .queueFull }

        // Cancelling the task that reads a stream cancels its generation: the other request gets the slot
        // and runs to its end, where the context of 16 ends it, as it does alone.
        let reader = Task { try await Self.collect(first) }
        reader.cancel()
        let (dropped, _) = try await reader.value
        #expect(dropped.ids.isEmpty && dropped.stopReason == nil)
        let loop = Task { await scheduler.run() }
        defer { loop.cancel() }
        let (outcome, _) = try await Self.collect(second)
        let alone = try await Self.alone(model, endless, contextLength: 16)
        #expect(outcome == alone)
        #expect(outcome.stopReason == .contextFull && outcome.ids.count == 14)
        #expect(scheduler.load.active == 0)
    }
}

/// The text a generation shows, token by token.
@Suite struct StopStringFilterTests {
    /// Token i stands for `pieces[i]`.
    struct PieceTokenizer: Tokenizer {
        let pieces: [String]
        var vocabularySize: Int { pieces.count }
        var beginningOfSequence: Int? { nil }
        var endOfGeneration: Set<Int> { [] }
        var addsBeginningOfSequence: Bool { false }
        func encode(_ text: String) -> [Int] { [] }
        func bytes(of token: Int) -> [UInt8] { Array(pieces[token].utf8) }
        func id(of token: String) -> Int? { pieces.firstIndex(of: token) }
    }

    func shown(_ pieces: [String], stops: [String] = []) -> (text: String, stopped: Bool) {
        var filter = StopStringFilter(tokenizer: PieceTokenizer(pieces: pieces), stopStrings: stops)
        var text = ""
        for token in pieces.indices {
            let (piece, stopped) = filter.append(token)
            text += piece
            if stopped { return (text, true) }
        }
        return (text + filter.flush(), false)
    }

    @Test func aTokenThatExtendsTheLastCharacterIsNotLost() {
        #expect(shown(["caf", "e", "\u{301}", "!"]).text == "café!")
        #expect(shown(["a\r", "\nb"]).text == "a\r\nb")
        #expect(shown(["\u{2764}", "\u{FE0F}", " ok"]).text == "\u{2764}\u{FE0F} ok")
        #expect(shown(["\u{1F1EB}", "\u{1F1F7}"]).text == "🇫🇷")
        // Held back at a possible stop string, then let through: the same.
        #expect(shown(["x e", "\u{301}", "nd"], stops: ["end"]).text == "x e\u{301}nd")
    }

    @Test func theEarliestStopStringWinsAndNothingOfItShows() {
        #expect(shown(["one two ", "three"], stops: ["three", "two"]) == ("one ", true))
        #expect(shown(["ab", "c", "de"], stops: ["cd"]) == ("ab", true))
        // A stop string's start, held back, comes out when the generation ends another way.
        #expect(shown(["ab", "c"], stops: ["cd"]) == ("abc", false))
    }
}
