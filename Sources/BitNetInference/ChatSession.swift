import BitNetEngine
import BitNetModels
import Foundation

/// A conversation with a model: it renders turns with the model's chat template, starts the context
/// with the beginning-of-sequence token, streams each reply, and closes each turn in the KV cache so the
/// next one continues the same context.
///
/// ```swift
/// let chat = try ChatSession(model: model, systemPrompt: "Be brief.")
/// for try await event in chat.respond(to: "What is a list?") {
///     if case .token(_, let text) = event { print(text, terminator: "") }
/// }
/// ```
///
/// Not thread-safe: one conversation, one task. Many chat sessions may share a model.
public final class ChatSession {
    public let model: BitNetModel
    public let tokenizer: any Tokenizer
    public let template: ChatTemplate
    /// Settings of each reply; the seed moves on by one per turn, so equal questions get fresh replies.
    public var parameters: GenerationParameters
    let session: InferenceSession
    private let systemPrompt: String?

    /// - Parameters:
    ///   - tokenizer: the model's own when nil.
    ///   - template: the model's own chat template when nil (an error if it has none that is known).
    ///   - contextLength: positions the conversation may take (default: the model's, at most 4096).
    public init(model: BitNetModel, tokenizer: (any Tokenizer)? = nil, template: ChatTemplate? = nil, systemPrompt: String? = nil,
                contextLength: Int? = nil, cacheType: KeyValueCacheType = .f32, parameters: GenerationParameters = GenerationParameters()) throws {
        self.model = model
        self.tokenizer = try tokenizer ?? model.loadTokenizer()
        self.template = try model.chatTemplate(override: template)
        self.systemPrompt = systemPrompt
        self.parameters = parameters
        session = try InferenceSession(model: model, contextLength: contextLength, cacheType: cacheType)
    }

    /// Positions of the context used so far, and its size.
    public var usedContext: Int { session.tokens.count }
    public var contextLength: Int { session.contextLength }

    /// Whether a reply was started and not closed in the cache (cancelled, or abandoned mid-way).
    var turnIsOpen = false

    /// Streams the assistant's reply to `message`. The turn is rendered when iteration starts, so replies
    /// follow the order they are iterated in. Throws ``InferenceError/Code/contextOverflow`` when the turn
    /// does not fit what is left of the context.
    public func respond(to message: String) -> ChatReply { ChatReply(chat: self, message: message) }

    /// Forgets the conversation (the system prompt starts the next one again).
    public func reset() {
        session.reset()
        turnIsOpen = false
    }

    /// Evaluates the end of turn after a reply, so the next turn follows the template (the model's own
    /// end token, if it produced one, was sampled, not evaluated).
    func closeTurn() async throws {
        turnIsOpen = false
        if let end = tokenizer.id(of: template.endOfTurn), session.remainingContext > 0 {
            _ = try await session.evaluate([end])
        }
    }

    /// Starts a turn: the rendered prompt (with BOS and the system prompt at the start of the context) and
    /// the generation of the reply.
    func startTurn(_ message: String) async throws -> TextGeneration.Iterator {
        if turnIsOpen { try await closeTurn() }
        let isStart = session.tokens.isEmpty
        var messages = isStart ? systemPrompt.map { [ChatMessage(role: .system, content: $0)] } ?? [] : []
        messages.append(ChatMessage(role: .user, content: message))
        let prompt = template.prompt(messages, tokenizer: tokenizer, isStart: isStart)
        guard prompt.count < session.remainingContext else {
            throw InferenceError(.contextOverflow, "the conversation no longer fits the context of \(session.contextLength) tokens")
        }
        let turn = parameters
        parameters.sampling.seed &+= 1
        turnIsOpen = true
        return TextGeneration(session: session, tokenizer: tokenizer, prompt: prompt, parameters: turn).makeAsyncIterator()
    }
}

/// The streamed reply of a ``ChatSession`` turn: the generation's events; when it ends, the turn is
/// closed in the cache. Each iteration is a turn of its own.
public struct ChatReply: AsyncSequence {
    public typealias Element = GenerationEvent
    let chat: ChatSession
    let message: String

    public func makeAsyncIterator() -> Iterator { Iterator(reply: self) }

    public struct Iterator: AsyncIteratorProtocol {
        let reply: ChatReply
        var generation: TextGeneration.Iterator?

        init(reply: ChatReply) { self.reply = reply }

        public mutating func next() async throws -> GenerationEvent? {
            if generation == nil { generation = try await reply.chat.startTurn(reply.message) }
            let event = try await generation!.next()
            if case .finished = event { try await reply.chat.closeTurn() }
            return event
        }
    }
}
