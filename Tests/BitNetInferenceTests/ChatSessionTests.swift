@testable import BitNetInference
import Foundation
import TestSupport
import Testing

/// The app-facing path: a chat session owns BOS, the template and turn ends; generation can be cancelled.
@Suite struct ChatSessionTests {
    static let model = Fixtures.path("models/bitnet-chat-tiny-tq2_0.gguf")

    func reply(_ stream: ChatReply) async throws -> (ids: [Int], summary: GenerationSummary?) {
        var ids: [Int] = [], summary: GenerationSummary?
        for try await event in stream {
            switch event {
            case .token(let id, _): ids.append(id)
            case .finished(let result): summary = result
            }
        }
        return (ids, summary)
    }

    @Test func turnsFollowTheTemplateInOneContext() async throws {
        let model = try BitNetModel(path: Self.model, backend: .cpu, threads: 2)
        let tokenizer = try model.loadTokenizer()
        let chat = try ChatSession(model: model, systemPrompt: "Be brief.", contextLength: 256,
                                   parameters: GenerationParameters(maximumTokens: 6, sampling: .greedy))
        #expect(chat.template == .bitnet)
        let first = try await reply(chat.respond(to: "Hello"))
        let bos = try #require(tokenizer.beginningOfSequence)
        let firstPrompt = tokenizer.encode("System: Be brief.<|eot_id|>User: Hello<|eot_id|>Assistant: ", addingBeginningOfSequence: true)
        #expect(firstPrompt.first == bos)
        let end = try #require(tokenizer.id(of: "<|eot_id|>"))
        // Prompt, reply, and the end of turn evaluated into the cache.
        #expect(chat.session.tokens == firstPrompt + first.ids + [end])
        #expect(chat.usedContext == chat.session.tokens.count && chat.contextLength == 256)

        let second = try await reply(chat.respond(to: "And?"))
        let secondPrompt = tokenizer.encode("User: And?<|eot_id|>Assistant: ")
        #expect(chat.session.tokens == firstPrompt + first.ids + [end] + secondPrompt + second.ids + [end])
        #expect(second.summary?.promptTokens == secondPrompt.count)

        // The same conversation by hand through the lower-level API gives the same first reply.
        let session = try InferenceSession(model: model, contextLength: 256)
        var ids: [Int] = []
        for try await event in TextGeneration(session: session, tokenizer: tokenizer, prompt: firstPrompt,
                                              parameters: GenerationParameters(maximumTokens: 6, sampling: .greedy)) {
            if case .token(let id, _) = event { ids.append(id) }
        }
        #expect(ids == first.ids)
    }

    @Test func anAbandonedReplyIsClosedBeforeTheNextTurn() async throws {
        let model = try BitNetModel(path: Self.model, backend: .cpu, threads: 1)
        let tokenizer = try model.loadTokenizer()
        let end = try #require(tokenizer.id(of: "<|eot_id|>"))
        let chat = try ChatSession(model: model, contextLength: 256, parameters: GenerationParameters(maximumTokens: 8, sampling: .greedy))
        var first: [Int] = []
        for try await event in chat.respond(to: "Hello") {
            if case .token(let id, _) = event { first.append(id) }
            if first.count == 2 { break }  // the reader stops listening
        }
        let replyStart = chat.session.tokens.count
        _ = try await reply(chat.respond(to: "Again"))
        let secondPrompt = tokenizer.encode("User: Again<|eot_id|>Assistant: ")
        // The open turn got its end token before the new one: the cache reads as the template says.
        #expect(chat.session.tokens[replyStart] == end)
        #expect(Array(chat.session.tokens[(replyStart + 1)...].prefix(secondPrompt.count)) == secondPrompt)
    }

    @Test func aTurnThatDoesNotFitIsAContextError() async throws {
        let model = try BitNetModel(path: Self.model, backend: .cpu, threads: 1)
        let chat = try ChatSession(model: model, contextLength: 16)
        let error = await #expect(throws: InferenceError.self) { _ = try await reply(chat.respond(to: String(repeating: "word ", count: 40))) }
        #expect(error?.code == .contextOverflow)
    }

    @Test func cancellingTheTaskStopsGenerationAtTheNextToken() async throws {
        // The task cancels itself on its first token, so the check does not depend on timing.
        let result = try await Task { () async throws -> (tokens: Int, evaluated: Int, prompt: Int, cancelled: Bool) in
            let model = try BitNetModel(path: Self.model, backend: .cpu, threads: 1)
            let session = try InferenceSession(model: model, contextLength: 512)
            let generation = TextGeneration(session: session, tokenizer: try model.loadTokenizer(), prompt: "def main(",
                                            parameters: GenerationParameters(maximumTokens: 400, sampling: .greedy))
            var tokens = 0
            do {
                for try await event in generation {
                    guard case .token = event else { continue }
                    tokens += 1
                    withUnsafeCurrentTask { $0?.cancel() }
                }
                return (tokens, session.tokens.count, generation.prompt.count, false)
            } catch is CancellationError {
                return (tokens, session.tokens.count, generation.prompt.count, true)
            }
        }.value
        #expect(result.cancelled)
        #expect(result.tokens == 1)
        #expect(result.evaluated <= result.prompt + 1, "no forward pass after the cancellation")

        let before = try await Task { () async throws -> (evaluated: Int, cancelled: Bool) in
            let model = try BitNetModel(path: Self.model, backend: .cpu, threads: 1)
            let session = try InferenceSession(model: model, contextLength: 64)
            withUnsafeCurrentTask { $0?.cancel() }
            do {
                for try await _ in TextGeneration(session: session, tokenizer: try model.loadTokenizer(), prompt: "x",
                                                  parameters: GenerationParameters()) {}
                return (session.tokens.count, false)
            } catch is CancellationError {
                return (session.tokens.count, true)
            }
        }.value
        #expect(before.cancelled && before.evaluated == 0, "a cancelled task evaluates nothing")
    }
}
