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

    /// Streams the assistant's reply to `message`. Throws ``InferenceError/Code/contextOverflow`` when the
    /// turn does not fit what is left of the context.
    public func respond(to message: String) -> ChatReply {
        let isStart = session.tokens.isEmpty
        var messages = isStart ? systemPrompt.map { [ChatMessage(role: .system, content: $0)] } ?? [] : []
        messages.append(ChatMessage(role: .user, content: message))
        let beginning = tokenizer.beginningOfSequence.map { tokenizer.decode([$0]) }
        let prompt = tokenizer.encode(template.render(messages, beginning: isStart ? beginning : nil, isStart: isStart))
        let turn = parameters
        parameters.sampling.seed &+= 1
        return ChatReply(chat: self, prompt: prompt, parameters: turn)
    }

    /// Forgets the conversation (the system prompt starts the next one again).
    public func reset() { session.reset() }
}

/// The streamed reply of a ``ChatSession`` turn: the generation's events; when it ends, the turn is
/// closed in the cache.
public struct ChatReply: AsyncSequence {
    public typealias Element = GenerationEvent
    let chat: ChatSession
    let prompt: [Int]
    let parameters: GenerationParameters

    public func makeAsyncIterator() -> Iterator { Iterator(reply: self) }

    public struct Iterator: AsyncIteratorProtocol {
        let reply: ChatReply
        var generation: TextGeneration.Iterator?

        init(reply: ChatReply) { self.reply = reply }

        public mutating func next() async throws -> GenerationEvent? {
            let chat = reply.chat
            if generation == nil {
                guard reply.prompt.count < chat.session.remainingContext else {
                    throw InferenceError(.contextOverflow, "the conversation no longer fits the context of \(chat.session.contextLength) tokens")
                }
                generation = TextGeneration(session: chat.session, tokenizer: chat.tokenizer, prompt: reply.prompt, parameters: reply.parameters)
                    .makeAsyncIterator()
            }
            let event = try await generation!.next()
            if case .finished = event, let end = chat.tokenizer.id(of: chat.template.endOfTurn), chat.session.remainingContext > 0 {
                _ = try await chat.session.evaluate([end])
            }
            return event
        }
    }
}
