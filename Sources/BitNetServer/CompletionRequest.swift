import BitNetFormats
import BitNetInference
import Foundation

/// The members of a request's JSON object, read with the checks OpenAI's API makes: a known field of
/// the wrong type or out of range is a 400 naming it; `null` is the same as absent; unknown fields are
/// ignored, as clients send fields of newer API versions.
struct RequestFields {
    let members: [(String, JSONValue)]

    init(body: Data) throws {
        let json: JSONValue
        do {
            json = try JSONValue.parse(body)
        } catch {
            throw APIError(.badRequest, "the body is not valid JSON: \(error)", code: "invalid_json")
        }
        guard let members = json.objectValue else { throw APIError(.badRequest, "the body must be a JSON object", code: "invalid_json") }
        self.members = members
    }

    subscript(key: String) -> JSONValue? {
        guard let value = members.last(where: { $0.0 == key })?.1, value != .null else { return nil }
        return value
    }

    func string(_ key: String) throws -> String? {
        guard let value = self[key] else { return nil }
        guard let string = value.stringValue else { throw APIError.invalid(key, "'\(key)' must be a string") }
        return string
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = self[key] else { return nil }
        guard case .bool(let flag) = value else { throw APIError.invalid(key, "'\(key)' must be a boolean") }
        return flag
    }

    func number(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let value = self[key] else { return nil }
        guard let number = value.doubleValue else { throw APIError.invalid(key, "'\(key)' must be a number") }
        guard range.contains(number) else { throw APIError.invalid(key, "'\(key)' must be between \(range.lowerBound) and \(range.upperBound), got \(number)") }
        return number
    }

    func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let value = self[key] else { return nil }
        guard let number = value.intValue else { throw APIError.invalid(key, "'\(key)' must be an integer") }
        guard range.contains(number) else { throw APIError.invalid(key, "'\(key)' must be between \(range.lowerBound) and \(range.upperBound), got \(number)") }
        return number
    }
}

/// What both endpoints ask of a generation, read from the request.
struct CompletionSettings {
    static let maximumStopLength = 256

    var parameters: GenerationParameters
    /// Alternatives per token's log-probability; nil when none are asked for.
    var logprobs: Int?
    var stream: Bool
    var includeUsage: Bool

    /// - Parameters:
    ///   - chat: chat completions take `logprobs: true` + `top_logprobs`; completions take `logprobs: N`.
    ///   - contextLength: the longest generation possible, the default when no limit is given.
    init(_ fields: RequestFields, chat: Bool, contextLength: Int) throws {
        var sampling = SamplingParameters()
        if let value = try fields.number("temperature", in: 0...2) { sampling.temperature = Float(value) }
        if let value = try fields.number("top_p", in: 0...1) {
            guard value > 0 else { throw APIError.invalid("top_p", "'top_p' must be greater than 0") }
            sampling.topP = Float(value)
        }
        if let value = try fields.integer("top_k", in: 0...Int(Int32.max)) { sampling.topK = value }
        if let value = try fields.number("min_p", in: 0...0.999) { sampling.minP = Float(value) }
        if let value = try fields.number("presence_penalty", in: -2...2) { sampling.presencePenalty = Float(value) }
        if let value = try fields.number("frequency_penalty", in: -2...2) { sampling.frequencyPenalty = Float(value) }
        if let value = try fields.number("repeat_penalty", in: 0.01...10) { sampling.repetitionPenalty = Float(value) }
        if let seed = fields["seed"] {
            guard let value = seed.intValue else { throw APIError.invalid("seed", "'seed' must be an integer") }
            sampling.seed = UInt64(bitPattern: Int64(value))
        } else {
            sampling.seed = UInt64.random(in: 0...UInt64.max)
        }

        let limit = try fields.integer("max_completion_tokens", in: 0...Int(Int32.max)) ?? fields.integer("max_tokens", in: 0...Int(Int32.max))
        let stops: [String]
        switch fields["stop"] {
        case nil: stops = []
        case .string(let stop)?: stops = [stop]
        case .array(let items)?:
            stops = try items.map { item in
                guard let stop = item.stringValue else { throw APIError.invalid("stop", "'stop' must be a string or an array of strings") }
                return stop
            }
            guard stops.count <= 4 else { throw APIError.invalid("stop", "'stop' takes at most 4 sequences") }
        default: throw APIError.invalid("stop", "'stop' must be a string or an array of strings")
        }
        // Each token is checked against every stop string on the one decoding loop: keep that cheap.
        if let long = stops.first(where: { $0.unicodeScalars.count > Self.maximumStopLength }) {
            throw APIError.invalid("stop", "'stop' sequences are at most \(Self.maximumStopLength) characters; one has \(long.unicodeScalars.count)")
        }
        parameters = GenerationParameters(maximumTokens: limit ?? contextLength, sampling: sampling, stopStrings: stops)

        if let n = try fields.integer("n", in: 1...Int(Int32.max)), n != 1 {
            throw APIError.unsupported("n", "'n' must be 1: this server returns one choice per request")
        }
        if chat {
            if try fields.bool("logprobs") == true {
                logprobs = try fields.integer("top_logprobs", in: 0...GenerationRequest.maximumLogprobs) ?? 0
            } else if fields["top_logprobs"] != nil {
                throw APIError.invalid("top_logprobs", "'top_logprobs' needs 'logprobs': true")
            }
        } else {
            logprobs = try fields.integer("logprobs", in: 0...5)
            if try fields.bool("echo") == true { throw APIError.unsupported("echo", "'echo' is not supported") }
            if let suffix = try fields.string("suffix"), !suffix.isEmpty { throw APIError.unsupported("suffix", "'suffix' is not supported") }
            if let bestOf = try fields.integer("best_of", in: 1...Int(Int32.max)), bestOf != 1 {
                throw APIError.unsupported("best_of", "'best_of' must be 1")
            }
        }
        for field in ["tools", "functions"] where fields[field] != nil {
            if case .array(let items)? = fields[field], items.isEmpty { continue }
            throw APIError.unsupported(field, "'\(field)': tool calling is not supported")
        }
        if let format = fields["response_format"], format["type"]?.stringValue != "text" {
            throw APIError.unsupported("response_format", "'response_format': only {\"type\": \"text\"} is supported")
        }
        stream = try fields.bool("stream") ?? false
        includeUsage = false
        if let options = fields["stream_options"] {
            guard case .object = options else { throw APIError.invalid("stream_options", "'stream_options' must be an object") }
            guard stream else { throw APIError.invalid("stream_options", "'stream_options' is only allowed with 'stream': true") }
            switch options["include_usage"] {
            case nil, .null?: break
            case .bool(let flag)?: includeUsage = flag
            default: throw APIError.invalid("stream_options.include_usage", "'stream_options.include_usage' must be a boolean")
            }
        }
    }
}

extension RequestFields {
    /// The conversation of a chat completion request.
    func messages() throws -> [ChatMessage] {
        guard let value = self["messages"] else { throw APIError.invalid("messages", "'messages' is required") }
        guard let items = value.arrayValue else { throw APIError.invalid("messages", "'messages' must be an array of messages") }
        guard !items.isEmpty else { throw APIError.invalid("messages", "'messages' must not be empty") }
        return try items.enumerated().map { index, item in
            let param = "messages[\(index)]"
            guard case .object = item else { throw APIError.invalid(param, "'\(param)' must be an object") }
            guard let roleName = item["role"]?.stringValue else { throw APIError.invalid("\(param).role", "'\(param).role' must be a string") }
            let role: ChatMessage.Role
            switch roleName {
            case "system", "developer": role = .system
            case "user": role = .user
            case "assistant": role = .assistant
            default: throw APIError.unsupported("\(param).role", "'\(param).role': role '\(roleName)' is not supported (system, developer, user, assistant)")
            }
            let content: String
            switch item["content"] {
            case .string(let text)?: content = text
            case nil where role == .assistant, .null? where role == .assistant: content = ""  // after tool calls
            case .array(let parts)?:
                content = try parts.enumerated().map { partIndex, part in
                    guard part["type"]?.stringValue == "text", let text = part["text"]?.stringValue else {
                        throw APIError.unsupported("\(param).content[\(partIndex)]", "'\(param).content[\(partIndex)]': only text parts are supported")
                    }
                    return text
                }.joined(separator: "\n")
            default: throw APIError.invalid("\(param).content", "'\(param).content' must be a string or an array of text parts")
            }
            return ChatMessage(role: role, content: content)
        }
    }

    /// The prompt of a completion request: text, or token ids; one prompt only.
    func prompt(tokenizer: any Tokenizer) throws -> [Int] {
        func ids(_ items: [JSONValue]) throws -> [Int] {
            try items.map { item in
                guard let id = item.intValue else { throw APIError.invalid("prompt", "'prompt' must be a string, an array of one string, or an array of token ids") }
                return id
            }
        }
        switch self["prompt"] {
        case .string(let text)?: return tokenizer.encode(text, addingBeginningOfSequence: true)
        case .array(let items)? where items.count == 1 && items[0].stringValue != nil:
            return tokenizer.encode(items[0].stringValue!, addingBeginningOfSequence: true)
        case .array(let items)? where items.count == 1 && items[0].arrayValue != nil: return try ids(items[0].arrayValue!)
        case .array(let items)? where items.count > 1 && items.allSatisfy({ $0.stringValue != nil || $0.arrayValue != nil }):
            throw APIError.unsupported("prompt", "'prompt': one prompt per request (n = 1)")
        case .array(let items)?: return try ids(items)
        case nil: throw APIError.invalid("prompt", "'prompt' is required")
        default: throw APIError.invalid("prompt", "'prompt' must be a string, an array of one string, or an array of token ids")
        }
    }
}
