import BitNetFormats
import BitNetInference
@testable import BitNetServer
import Foundation
import Testing

/// `bitnet serve` over real HTTP: what it answers, with what the library computes as the reference.
@Suite(.serialized) struct ServerTests {
    /// What the library generates alone for `prompt`, greedy.
    static func reference(_ prompt: [Int], maximumTokens: Int, stops: [String] = []) async throws -> (text: String, ids: [Int], reason: StopReason) {
        let model = try BitNetModel(path: TestServer.modelPath, backend: .cpu, threads: 1)
        let session = try InferenceSession(model: model, contextLength: 256)
        var text = "", ids: [Int] = [], reason = StopReason.maximumTokens
        let generation = TextGeneration(session: session, tokenizer: try model.loadTokenizer(), prompt: prompt,
                                        parameters: GenerationParameters(maximumTokens: maximumTokens, sampling: .greedy, stopStrings: stops))
        for try await event in generation {
            switch event {
            case .token(let id, let piece):
                text += piece
                ids.append(id)
            case .finished(let summary): reason = summary.stopReason
            }
        }
        return (text, ids, reason)
    }

    static func chatPrompt(_ messages: [ChatMessage]) throws -> [Int] {
        let model = try BitNetModel(path: TestServer.modelPath, backend: .cpu, threads: 1)
        return try model.chatTemplate().prompt(messages, tokenizer: try model.loadTokenizer(), isStart: true)
    }

    @Test func chatCompletionsWholeAndStreamedMatchTheLibrary() async throws {
        let server = try await TestServer.start()
        let body = #"{"model": "any", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a list?"}], "max_tokens": 12, "temperature": 0"#
        let prompt = try Self.chatPrompt([ChatMessage(role: .system, content: "Be brief."), ChatMessage(role: .user, content: "What is a list?")])
        let expected = try await Self.reference(prompt, maximumTokens: 12)

        let whole = try await server.client.post("/v1/chat/completions", body + "}")
        #expect(whole.status == 200, "\(whole.text)")
        #expect(whole.headers["content-type"] == "application/json")
        let json = try #require(whole.json)
        #expect(json["object"]?.stringValue == "chat.completion")
        #expect(json.at("choices", 0, "message", "role")?.stringValue == "assistant")
        #expect(json.at("choices", 0, "message", "content")?.stringValue == expected.text)
        #expect(json.at("choices", 0, "finish_reason")?.stringValue == (expected.reason == .maximumTokens ? "length" : "stop"))
        #expect(json.at("usage", "prompt_tokens")?.intValue == prompt.count)
        #expect(json.at("usage", "completion_tokens")?.intValue == expected.ids.count)
        #expect(json.at("usage", "total_tokens")?.intValue == prompt.count + expected.ids.count)

        let streamed = try await server.client.post("/v1/chat/completions", body + #", "stream": true, "stream_options": {"include_usage": true}}"#)
        #expect(streamed.status == 200)
        #expect(streamed.headers["content-type"] == "text/event-stream")
        let events = streamed.events
        #expect(events.last == "[DONE]")
        let chunks = events.dropLast().compactMap { try? JSONValue.parse(Data($0.utf8)) }
        #expect(chunks.count == events.count - 1, "every event but the last is JSON")
        #expect(chunks.allSatisfy { $0["object"]?.stringValue == "chat.completion.chunk" && $0["id"] == chunks[0]["id"] })
        #expect(chunks.first?.at("choices", 0, "delta", "role")?.stringValue == "assistant")
        let content = chunks.compactMap { $0.at("choices", 0, "delta", "content")?.stringValue }.joined()
        #expect(content == expected.text)
        let reasons = chunks.compactMap { $0.at("choices", 0, "finish_reason")?.stringValue }
        #expect(reasons == [json.at("choices", 0, "finish_reason")!.stringValue!], "one chunk carries the finish reason")
        #expect(chunks.last?["choices"]?.arrayValue?.isEmpty == true)
        #expect(chunks.last?["usage"] == json["usage"])
        try await server.stop()
    }

    @Test func completionsWithLogprobsStopsAndTokenPrompts() async throws {
        let server = try await TestServer.start()
        let model = try BitNetModel(path: TestServer.modelPath, backend: .cpu, threads: 1)
        let tokenizer = try model.loadTokenizer()
        let prompt = tokenizer.encode("def main(", addingBeginningOfSequence: true)
        let expected = try await Self.reference(prompt, maximumTokens: 10)

        let text = try await server.client.post("/v1/completions", #"{"prompt": "def main(", "max_tokens": 10, "temperature": 0, "logprobs": 2}"#)
        #expect(text.status == 200, "\(text.text)")
        let json = try #require(text.json)
        #expect(json["object"]?.stringValue == "text_completion")
        #expect(json.at("choices", 0, "text")?.stringValue == expected.text)
        let logprobs = try #require(json.at("choices", 0, "logprobs"))
        #expect(logprobs["tokens"]?.arrayValue?.compactMap(\.stringValue) == expected.ids.map { String(decoding: tokenizer.bytes(of: $0), as: UTF8.self) })
        let values = logprobs["token_logprobs"]?.arrayValue?.compactMap(\.doubleValue) ?? []
        #expect(values.count == expected.ids.count && values.allSatisfy { $0 <= 0 })
        let top = logprobs["top_logprobs"]?.arrayValue ?? []
        #expect(top.count == expected.ids.count && top.allSatisfy { $0.objectValue?.count == 2 })
        // Greedy: each token is the most likely one, so its log-probability is the largest listed.
        for (value, alternatives) in zip(values, top) {
            #expect(abs(value - (alternatives.objectValue!.compactMap { $0.1.doubleValue }.max() ?? 1)) < 1e-9)
        }

        // The same prompt as token ids gives the same text.
        let ids = try await server.client.post("/v1/completions", #"{"prompt": \#(prompt), "max_tokens": 10, "temperature": 0}"#)
        #expect(ids.json?.at("choices", 0, "text")?.stringValue == expected.text)

        // A stop string: the text ends before it, the reason is "stop".
        let stop = String(expected.text.dropFirst(expected.text.count / 2).prefix(2))
        try #require(stop.count == 2)
        let stopped = try await server.client.post("/v1/completions", #"{"prompt": "def main(", "max_tokens": 10, "temperature": 0, "stop": [\#(JSONValue.string(stop).serialized())]}"#)
        #expect(stopped.json?.at("choices", 0, "text")?.stringValue == String(expected.text[..<expected.text.range(of: stop)!.lowerBound]))
        #expect(stopped.json?.at("choices", 0, "finish_reason")?.stringValue == "stop")

        // The same seed, the same sampled text.
        let sampled = #"{"prompt": "import", "max_tokens": 16, "temperature": 0.9, "seed": 42}"#
        let first = try await server.client.post("/v1/completions", sampled).json?.at("choices", 0, "text")
        let second = try await server.client.post("/v1/completions", sampled).json?.at("choices", 0, "text")
        #expect(first != nil && first == second)

        let models = try await server.client.send("GET", "/v1/models")
        #expect(models.json?.at("data", 0, "id")?.stringValue == "bitnet-chat-tiny-tq2_0.gguf")
        try await server.stop()
    }

    @Test func concurrentGreedyRequestsEqualTheSameRequestsOneAtATime() async throws {
        let server = try await TestServer.start { $0.scheduler = .init(parallel: 4, queueLimit: 16, contextLength: 256, batchSize: 16) }
        let prompts = ["def main(", "import os", "The list", "class Foo:", "for x in", "A dictionary", "return the", "print("]
        func body(_ index: Int) -> String {
            #"{"prompt": \#(JSONValue.string(prompts[index]).serialized()), "max_tokens": \#(8 + 3 * index), "temperature": 0, "stream": \#(index % 2 == 0)}"#
        }
        func text(_ response: HTTPTestClient.Response) -> String {
            if response.headers["content-type"] == "text/event-stream" {
                return response.events.dropLast().compactMap { try? JSONValue.parse(Data($0.utf8)).at("choices", 0, "text")?.stringValue }.joined()
            }
            return response.json?.at("choices", 0, "text")?.stringValue ?? "<\(response.status) \(response.text)>"
        }
        var alone: [String] = []
        for index in prompts.indices { alone.append(text(try await server.client.post("/v1/completions", body(index)))) }
        let together = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for index in prompts.indices {
                group.addTask { (index, text(try await server.client.post("/v1/completions", body(index)))) }
            }
            var results = Array(repeating: "", count: prompts.count)
            for try await (index, text) in group { results[index] = text }
            return results
        }
        #expect(together == alone)
        #expect(alone.allSatisfy { !$0.isEmpty && !$0.hasPrefix("<") })
        try await server.stop()
    }

    @Test func aClientThatHangsUpCancelsItsGenerationAndFreesTheSlot() async throws {
        let server = try await TestServer.start { $0.scheduler = .init(parallel: 1, queueLimit: 0, contextLength: 4096, batchSize: 64) }
        let long = HTTPTestClient.request("/v1/completions", body: #"{"prompt": "def main(", "max_tokens": 4000, "temperature": 0, "stream": true}"#)
        let streaming = try await server.client.open(long, until: "data: ")
        #expect(try await server.metric("bitnet_active_sequences") == 1)
        // The one slot is busy and the queue holds nothing: 503 with Retry-After.
        let refused = try await server.client.post("/v1/completions", #"{"prompt": "x", "max_tokens": 1}"#)
        #expect(refused.status == 503)
        #expect(refused.headers["retry-after"] != nil)
        #expect(refused.json?.at("error", "code")?.stringValue == "queue_full")

        // A non-streaming request that hangs up is cancelled too.
        streaming.hangUp()
        #expect(try await server.waitForMetric("bitnet_active_sequences", 0))
        let quiet = try await server.client.open(HTTPTestClient.request("/v1/completions", body: #"{"prompt": "def main(", "max_tokens": 4000, "temperature": 0}"#), until: "")
        #expect(try await server.waitForMetric("bitnet_active_sequences", 1))
        quiet.hangUp()
        #expect(try await server.waitForMetric("bitnet_active_sequences", 0))
        // Neither ran to its end (a finished generation adds to the token counter); the slot is free again.
        #expect(try await server.metric("bitnet_generated_tokens_total") == 0)
        let after = try await server.client.post("/v1/completions", #"{"prompt": "x", "max_tokens": 2, "temperature": 0}"#)
        #expect(after.status == 200, "\(after.text)")
        #expect(try await server.metric("bitnet_generated_tokens_total") == 2)
        try await server.stop()
    }

    @Test func gracefulShutdownLetsRunningRequestsFinish() async throws {
        let server = try await TestServer.start { $0.shutdownDeadline = .seconds(120) }
        let running = Task { try await server.client.post("/v1/completions", #"{"prompt": "def main(", "max_tokens": 200, "temperature": 0, "stream": true}"#) }
        #expect(try await server.waitForMetric("bitnet_active_sequences", 1))
        try await server.stop()
        let response = try await running.value
        #expect(response.status == 200)
        #expect(response.events.last == "[DONE]")
        let last = response.events.dropLast().last.flatMap { try? JSONValue.parse(Data($0.utf8)) }
        #expect(last?.at("choices", 0, "finish_reason")?.stringValue != nil, "the generation ran to its end: \(response.text.suffix(300))")
    }
}
