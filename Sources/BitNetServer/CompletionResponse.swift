import BitNetFormats
import BitNetInference
import Foundation

/// One request's generation as OpenAI's API reports it: a whole response, or the chunks of a stream.
/// Chat completions and (legacy) completions differ only in the objects' shapes.
struct CompletionResponder {
    enum Kind { case chat, text }

    let kind: Kind
    let id: String
    let created: Int
    let model: String
    let tokenizer: any Tokenizer
    let promptTokens: Int
    /// Whether tokens report log-probabilities.
    let logprobs: Bool

    init(kind: Kind, model: String, tokenizer: any Tokenizer, promptTokens: Int, logprobs: Bool) {
        self.kind = kind
        id = (kind == .chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        created = Int(Date().timeIntervalSince1970)
        self.model = model
        self.tokenizer = tokenizer
        self.promptTokens = promptTokens
        self.logprobs = logprobs
    }

    static func finishReason(_ reason: StopReason) -> String {
        switch reason {
        case .endOfSequence, .stopString: "stop"
        case .maximumTokens, .contextFull: "length"
        }
    }

    func usage(generated: Int) -> JSONValue {
        .object([("prompt_tokens", .int(promptTokens)), ("completion_tokens", .int(generated)), ("total_tokens", .int(promptTokens + generated))])
    }

    private var object: String {
        kind == .chat ? "chat.completion" : "text_completion"
    }

    /// The object name of a streamed chunk.
    private var chunkObject: String {
        kind == .chat ? "chat.completion.chunk" : "text_completion"
    }

    private func envelope(object: String, choices: [JSONValue], usage: JSONValue?) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("id", .string(id)), ("object", .string(object)), ("created", .int(created)), ("model", .string(model)),
            ("system_fingerprint", .string("swift-bitnet")), ("choices", .array(choices)),
        ]
        if let usage { members.append(("usage", usage)) }
        return .object(members)
    }

    // MARK: Log-probabilities

    private func tokenText(_ id: Int) -> String { String(decoding: tokenizer.bytes(of: id), as: UTF8.self) }

    private func chatLogprob(_ id: Int, _ logprob: Float) -> [(String, JSONValue)] {
        [("token", .string(tokenText(id))), ("logprob", .double(Double(logprob))), ("bytes", .array(tokenizer.bytes(of: id).map { .int(Int($0)) }))]
    }

    /// The `logprobs` of a choice holding `tokens`; null when the request asked for none.
    func logprobs(_ tokens: [ScheduledToken], textOffset: Int = 0) -> JSONValue {
        guard logprobs else { return .null }
        switch kind {
        case .chat:
            return .object([("content", .array(tokens.map { token in
                .object(chatLogprob(token.id, token.logprob ?? 0) + [("top_logprobs", .array(token.topLogprobs.map { .object(chatLogprob($0.id, $0.logprob)) }))])
            }))])
        case .text:
            var offsets: [JSONValue] = [], offset = textOffset
            for token in tokens {
                offsets.append(.int(offset))
                offset += token.text.utf16.count
            }
            return .object([
                ("tokens", .array(tokens.map { .string(tokenText($0.id)) })),
                ("token_logprobs", .array(tokens.map { .double(Double($0.logprob ?? 0)) })),
                ("top_logprobs", .array(tokens.map { token in .object(token.topLogprobs.map { (tokenText($0.id), .double(Double($0.logprob))) }) })),
                ("text_offset", .array(offsets)),
            ])
        }
    }

    // MARK: Whole responses

    func response(text: String, tokens: [ScheduledToken], summary: GenerationSummary) -> JSONValue {
        let reason = JSONValue.string(Self.finishReason(summary.stopReason))
        let choice: JSONValue = switch kind {
        case .chat:
            .object([("index", .int(0)), ("message", .object([("role", .string("assistant")), ("content", .string(text))])),
                     ("logprobs", logprobs(tokens)), ("finish_reason", reason)])
        case .text:
            .object([("index", .int(0)), ("text", .string(text)), ("logprobs", logprobs(tokens)), ("finish_reason", reason)])
        }
        return envelope(object: object, choices: [choice], usage: usage(generated: summary.generatedTokens))
    }

    // MARK: Stream chunks

    /// A chunk carrying `text` (for chat, the first chunk also names the role), or the last one with the
    /// finish reason.
    func chunk(text: String, tokens: [ScheduledToken] = [], first: Bool = false, textOffset: Int = 0, finishReason: StopReason? = nil) -> JSONValue {
        let reason = finishReason.map { JSONValue.string(Self.finishReason($0)) } ?? .null
        let choice: JSONValue
        switch kind {
        case .chat:
            var delta: [(String, JSONValue)] = first ? [("role", .string("assistant"))] : []
            if finishReason == nil || !text.isEmpty { delta.append(("content", .string(text))) }
            choice = .object([("index", .int(0)), ("delta", .object(delta)), ("logprobs", tokens.isEmpty ? .null : logprobs(tokens)), ("finish_reason", reason)])
        case .text:
            choice = .object([("index", .int(0)), ("text", .string(text)), ("logprobs", tokens.isEmpty ? .null : logprobs(tokens, textOffset: textOffset)),
                              ("finish_reason", reason)])
        }
        return envelope(object: chunkObject, choices: [choice], usage: nil)
    }

    /// The chunk `stream_options.include_usage` asks for: no choices, the usage.
    func usageChunk(generated: Int) -> JSONValue {
        envelope(object: chunkObject, choices: [], usage: usage(generated: generated))
    }
}
