import BitNetModels
import Foundation

/// A message of a conversation.
public struct ChatMessage: Sendable, Hashable {
    public enum Role: String, Sendable { case system, user, assistant }
    public var role: Role
    public var content: String

    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }
}

/// The chat formats swift-bitnet knows, recognized from a model's Jinja `chat_template`.
public enum ChatTemplate: String, Sendable, CaseIterable {
    /// bitnet-b1.58-2B-4T: `System: …<|eot_id|>User: …<|eot_id|>Assistant: `.
    case bitnet
    /// LLaMA-3: `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>`.
    case llama3

    /// Recognizes a Jinja template by its distinctive parts; nil if it is none of the known ones.
    public init?(jinja: String) {
        if jinja.contains("<|start_header_id|>") {
            self = .llama3
        } else if jinja.contains("<|eot_id|>"), jinja.contains("capitalize") || jinja.contains("Assistant: ") {
            self = .bitnet
        } else {
            return nil
        }
    }

    /// The names of the known formats, for messages: "bitnet, llama3".
    public static var knownNames: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// The token ids of `messages` rendered for the reply: at the start of a context (`isStart`) with the
    /// tokenizer's beginning-of-sequence token, else continuing a conversation already in the KV cache.
    public func prompt(_ messages: [ChatMessage], tokenizer: any Tokenizer, isStart: Bool) -> [Int] {
        let beginning = tokenizer.beginningOfSequence.map { tokenizer.decode([$0]) }
        return tokenizer.encode(render(messages, beginning: isStart ? beginning : nil, isStart: isStart))
    }

    /// The text that closes a turn. After a reply, it is evaluated into the cache so the next turn follows
    /// the template (the model's own end token was sampled, not evaluated).
    public var endOfTurn: String { "<|eot_id|>" }

    /// Formats `messages`, ending with the cue for the assistant's reply. `beginning` is the BOS text,
    /// written only when `isStart` (later turns continue a conversation already in the KV cache).
    public func render(_ messages: [ChatMessage], beginning: String?, isStart: Bool) -> String {
        var text = isStart ? (beginning ?? "") : ""
        for message in messages {
            switch self {
            case .bitnet:
                text += message.role.rawValue.capitalized + ": " + message.content.trimmingCharacters(in: .whitespacesAndNewlines) + "<|eot_id|>"
            case .llama3:
                text += "<|start_header_id|>\(message.role.rawValue)<|end_header_id|>\n\n" + message.content.trimmingCharacters(in: .whitespacesAndNewlines) + "<|eot_id|>"
            }
        }
        switch self {
        case .bitnet: text += "Assistant: "
        case .llama3: text += "<|start_header_id|>assistant<|end_header_id|>\n\n"
        }
        return text
    }
}

