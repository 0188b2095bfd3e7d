import BitNetFormats
@testable import BitNetInference
import Foundation
import TestSupport
import Testing

@Suite struct GenerationTests {
    static let modelDirectory = Fixtures.path("models/bitnet-chat-tiny")

    func collect(_ generation: TextGeneration) async throws -> (ids: [Int], text: String, summary: GenerationSummary) {
        var ids: [Int] = [], text = "", summary: GenerationSummary?
        for try await event in generation {
            switch event {
            case .token(let id, let piece):
                ids.append(id)
                text += piece
            case .finished(let result): summary = result
            }
        }
        return (ids, text, try #require(summary))
    }

    @Test func greedyGenerationMatchesTransformersGenerate() async throws {
        let reference = try ReferenceLogits("bitnet-chat-tiny")
        let model = try BitNetModel(path: Self.modelDirectory, threads: 2)
        let tokenizer = try model.loadTokenizer()
        let session = try InferenceSession(model: model, contextLength: 64)
        // transformers generated without an end token; ours would stop at one, so check the prefix.
        let result = try await collect(TextGeneration(session: session, tokenizer: tokenizer, prompt: Array(reference.tokens.prefix(10)),
                                                      parameters: GenerationParameters(maximumTokens: 10, sampling: .greedy)))
        #expect(!result.ids.isEmpty)
        #expect(result.ids == Array(reference.tokens[10..<10 + result.ids.count]))
        #expect(result.summary.promptTokens == 10)
        #expect(result.summary.generatedTokens == result.ids.count)
        #expect(session.tokens == Array(reference.tokens.prefix(10)) + result.ids)
    }

    @Test func sameSeedSameTextAndStopStrings() async throws {
        let model = try BitNetModel(path: Self.modelDirectory, threads: 2)
        let tokenizer = try model.loadTokenizer()
        var sampling = SamplingParameters()
        sampling.seed = 7
        let prompt = tokenizer.encode("def main(")
        func run(_ stops: [String] = []) async throws -> (ids: [Int], text: String, summary: GenerationSummary) {
            let session = try InferenceSession(model: model, contextLength: 64)
            return try await collect(TextGeneration(session: session, tokenizer: tokenizer, prompt: prompt,
                                                    parameters: GenerationParameters(maximumTokens: 24, sampling: sampling, stopStrings: stops)))
        }
        let first = try await run()
        let second = try await run()
        #expect(first.ids == second.ids && first.text == second.text)
        // Stop at a piece of the text we know will come: nothing from the stop string on is emitted.
        let stop = String(first.text.dropFirst(first.text.count / 2).prefix(3))
        try #require(stop.count == 3)
        let stopped = try await run([stop])
        #expect(stopped.summary.stopReason == .stopString)
        #expect(stopped.text == String(first.text[..<first.text.range(of: stop)!.lowerBound]))
    }

    @Test func perplexityMatchesTransformersLogits() throws {
        let reference = try ReferenceLogits("bitnet-chat-tiny")
        let model = try BitNetModel(path: Self.modelDirectory, threads: 2)
        let result = try model.perplexity(of: reference.tokens, contextLength: 20, beginningOfSequence: nil)
        // The same definition applied to transformers' logits: positions 10…18 predict tokens 11…19.
        var total = 0.0
        for position in 10..<19 {
            let row = reference.logits[position].map(Double.init)
            let maximum = row.max()!
            total += log(row.reduce(0) { $0 + exp($1 - maximum) }) + maximum - row[reference.tokens[position + 1]]
        }
        let expected = exp(total / 9)
        #expect(result.tokens == 9 && result.chunks == 1)
        #expect(abs(result.perplexity - expected) / expected < 1e-4, "\(result.perplexity) vs \(expected)")
        #expect(throws: InferenceError.self) { try model.perplexity(of: [1, 2, 3], contextLength: 16, beginningOfSequence: nil) }
    }

    @Test func chatTemplatesRenderAndAreRecognized() throws {
        let messages = [ChatMessage(role: .system, content: "Be brief."), ChatMessage(role: .user, content: " Hi! ")]
        #expect(ChatTemplate.bitnet.render(messages, beginning: "<|begin_of_text|>", isStart: true)
            == "<|begin_of_text|>System: Be brief.<|eot_id|>User: Hi!<|eot_id|>Assistant: ")
        #expect(ChatTemplate.llama3.render([messages[1]], beginning: "<s>", isStart: false)
            == "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        let model = try BitNetModel(path: Self.modelDirectory, threads: 1)
        #expect(try model.chatTemplate() == .bitnet)
        #expect(ChatTemplate(jinja: "{{ messages }}") == nil)
        let gguf = try BitNetModel(path: Fixtures.path("models/bitnet-chat-tiny-tq2_0.gguf"), threads: 1)
        #expect(try gguf.chatTemplate() == .bitnet)
        #expect(try gguf.loadTokenizer().encode("Hello world") == (try model.loadTokenizer().encode("Hello world")))
        let plain = try BitNetModel(path: Fixtures.path("models/bitnet-gqa-tied-bf16-tq2_0.gguf"), threads: 1)
        let error = #expect(throws: ModelError.self) { try plain.chatTemplate() }
        #expect(error?.message.contains("--chat-template") == true)
        #expect(try plain.chatTemplate(override: .llama3) == .llama3)
    }
}
