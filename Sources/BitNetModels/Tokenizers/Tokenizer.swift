import BitNetFormats
import Foundation

/// Text ↔ token ids for a model.
public protocol Tokenizer: Sendable {
    var vocabularySize: Int { get }
    /// The beginning-of-sequence token, if the model uses one.
    var beginningOfSequence: Int? { get }
    /// Tokens that end a generation (end of sequence, end of turn).
    var endOfGeneration: Set<Int> { get }
    /// Whether a prompt should start with ``beginningOfSequence``.
    var addsBeginningOfSequence: Bool { get }
    /// Encodes `text`; special tokens written in the text (such as `<|eot_id|>`) become their ids.
    func encode(_ text: String) -> [Int]
    /// The bytes a token stands for (for streaming output).
    func bytes(of token: Int) -> [UInt8]
    /// The id of a token given by its text, if it is one token.
    func id(of token: String) -> Int?
}

extension Tokenizer {
    /// Encodes `text`, prefixed with the beginning-of-sequence token when `addingBeginningOfSequence` and
    /// the tokenizer uses one (the start of a context; later text continues it).
    public func encode(_ text: String, addingBeginningOfSequence: Bool) -> [Int] {
        var ids = encode(text)
        if addingBeginningOfSequence, addsBeginningOfSequence, let bos = beginningOfSequence, ids.first != bos { ids.insert(bos, at: 0) }
        return ids
    }

    /// Decodes ids to text (invalid UTF-8 is replaced).
    public func decode(_ ids: [Int]) -> String {
        var decoder = StreamingDecoder(tokenizer: self)
        return ids.map { decoder.append($0) }.joined() + decoder.finish()
    }
}

/// Turns a stream of tokens into text without ever emitting half of a UTF-8 sequence.
public struct StreamingDecoder {
    let tokenizer: any Tokenizer
    private var pending: [UInt8] = []
    private var isFirst = true

    public init(tokenizer: any Tokenizer) { self.tokenizer = tokenizer }

    /// Adds a token and returns the text that is now complete.
    public mutating func append(_ token: Int) -> String {
        var bytes = tokenizer.bytes(of: token)
        if isFirst, let bpe = tokenizer as? BPETokenizer, bpe.kind == .sentencePiece, bytes.first == 0x20 {
            bytes.removeFirst()  // SentencePiece's decoder strips the space of the first "▁".
        }
        isFirst = false
        pending += bytes
        // Emit everything up to the last complete UTF-8 sequence.
        var end = pending.count
        var back = 0
        while back < min(4, pending.count) {
            let byte = pending[pending.count - 1 - back]
            if byte & 0xC0 != 0x80 {
                let needed = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
                if needed > back + 1 { end = pending.count - 1 - back }
                break
            }
            back += 1
        }
        let text = String(decoding: pending[..<end], as: UTF8.self)
        pending.removeFirst(end)
        return text
    }

    /// Flushes what remains (an incomplete sequence becomes U+FFFD).
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }
}

/// Byte-pair encoding as Hugging Face `tokenizers` and llama.cpp implement it, in two flavours:
/// byte-level (GPT-2, LLaMA-3) and SentencePiece-style (LLaMA-2: "▁" for spaces, byte fallback).
public final class BPETokenizer: Tokenizer {
    public enum Kind: Sendable { case byteLevel, sentencePiece }

    /// How merges are ordered: by the rank of an explicit merge list (Hugging Face, GGUF gpt2), or by
    /// the score of the merged token (GGUF llama, as llama.cpp's SentencePiece tokenizer does).
    enum MergePriority: Sendable {
        case ranks([String: Int])
        case scores([Float])
    }

    public let kind: Kind
    let tokens: [String]
    let ids: [String: Int]
    let priority: MergePriority
    let preTokenizer: PreTokenizerPattern?
    /// Tokens matched in the text before BPE (special and added tokens), longest first.
    let specialScalars: [(content: [Unicode.Scalar], id: Int)]
    let specialFirstScalars: Set<Unicode.Scalar>
    let specialIDs: Set<Int>
    let ignoreMerges: Bool
    let byteFallback: Bool
    let unknown: Int?
    let byteTokens: [Int]?
    public let beginningOfSequence: Int?
    public let endOfGeneration: Set<Int>
    public let addsBeginningOfSequence: Bool

    public var vocabularySize: Int { tokens.count }

    /// Throws, naming `source` and the field, unless every id (special tokens, unknown, BOS, end tokens)
    /// is one of the `tokens`.
    init(source: String, kind: Kind, tokens: [String], priority: MergePriority, preTokenizer: PreTokenizerPattern?, special: [Int],
         ignoreMerges: Bool, byteFallback: Bool, unknown: Int?, beginningOfSequence: Int?, endOfGeneration: Set<Int>,
         addsBeginningOfSequence: Bool) throws {
        guard !tokens.isEmpty else { throw ModelError(.invalidModel, "\(source): the tokenizer has no tokens") }
        let valid = tokens.indices
        for (field, ids) in [("special token", special), ("unknown token", unknown.map { [$0] } ?? []),
                             ("beginning-of-sequence token", beginningOfSequence.map { [$0] } ?? []), ("end token", Array(endOfGeneration))] {
            if let bad = ids.first(where: { !valid.contains($0) }) {
                throw ModelError(.invalidModel, "\(source): \(field) id \(bad) is not one of the \(tokens.count) tokens")
            }
        }
        self.kind = kind
        self.tokens = tokens
        var ids: [String: Int] = [:]
        for (index, token) in tokens.enumerated() where ids[token] == nil { ids[token] = index }
        self.ids = ids
        self.priority = priority
        self.preTokenizer = preTokenizer
        specialScalars = special.map { (Array(tokens[$0].unicodeScalars), $0) }.filter { !$0.0.isEmpty }.sorted { $0.0.count > $1.0.count }
        specialFirstScalars = Set(specialScalars.map { $0.content[0] })
        specialIDs = Set(special)
        self.ignoreMerges = ignoreMerges
        self.byteFallback = byteFallback
        self.unknown = unknown
        let bytes = (0..<256).map { ids[String(format: "<0x%02X>", $0)] }
        byteTokens = bytes.allSatisfy { $0 != nil } ? bytes.map { $0! } : nil
        self.beginningOfSequence = beginningOfSequence
        self.endOfGeneration = endOfGeneration
        self.addsBeginningOfSequence = addsBeginningOfSequence
    }

    public func id(of token: String) -> Int? { ids[token] }

    public func encode(_ text: String) -> [Int] {
        var result: [Int] = []
        for segment in splitOnSpecialTokens(text) {
            switch segment {
            case .special(let id): result.append(id)
            case .text(let piece): result += encodeOrdinary(piece)
            }
        }
        return result
    }

    private enum Segment { case text(String), special(Int) }

    private func splitOnSpecialTokens(_ text: String) -> [Segment] {
        guard !specialScalars.isEmpty else { return [.text(text)] }
        let scalars = Array(text.unicodeScalars)
        var segments: [Segment] = []
        var ordinaryStart = 0
        var index = 0
        func flush(upTo end: Int) {
            if end > ordinaryStart {
                var view = String.UnicodeScalarView()
                view.append(contentsOf: scalars[ordinaryStart..<end])
                segments.append(.text(String(view)))
            }
        }
        outer: while index < scalars.count {
            if specialFirstScalars.contains(scalars[index]) {
                for (content, id) in specialScalars where scalars.count - index >= content.count
                    && scalars[index..<index + content.count].elementsEqual(content) {
                    flush(upTo: index)
                    segments.append(.special(id))
                    index += content.count
                    ordinaryStart = index
                    continue outer
                }
            }
            index += 1
        }
        flush(upTo: scalars.count)
        return segments
    }

    private func encodeOrdinary(_ text: String) -> [Int] {
        switch kind {
        case .byteLevel:
            let pieces = preTokenizer?.split(text) ?? [text]
            return pieces.flatMap { piece in
                bytePairs(piece.utf8.map { String(ByteLevel.character(for: $0)) })
            }
        case .sentencePiece:
            // Scalar by scalar: a space followed by a combining mark is one Character, but still a space.
            let symbols = ["▁"] + text.unicodeScalars.map { $0 == " " ? "▁" : String($0) }
            return bytePairs(symbols)
        }
    }

    /// Runs BPE on `symbols` and maps the result to ids (with byte fallback for SentencePiece).
    private func bytePairs(_ symbols: [String]) -> [Int] {
        var symbols = symbols
        let word = symbols.joined()
        if ignoreMerges, let id = ids[word] { return [id] }
        switch priority {
        case .ranks(let ranks): mergeByRank(&symbols, ranks)
        case .scores(let scores): mergeByScore(&symbols, scores)
        }
        var result: [Int] = []
        for symbol in symbols {
            if let id = ids[symbol] {
                result.append(id)
            } else if byteFallback, let byteTokens {
                result += symbol.utf8.map { byteTokens[Int($0)] }
            } else if let unknown {
                if result.last != unknown { result.append(unknown) }
            }
        }
        return result
    }

    private func mergeByRank(_ symbols: inout [String], _ ranks: [String: Int]) {
        while symbols.count > 1 {
            var best: (rank: Int, index: Int)?
            for index in 0..<symbols.count - 1 {
                if let rank = ranks[symbols[index] + " " + symbols[index + 1]], rank < (best?.rank ?? .max) {
                    best = (rank, index)
                }
            }
            guard let best else { return }
            let (left, right) = (symbols[best.index], symbols[best.index + 1])
            var merged: [String] = []
            var index = 0
            while index < symbols.count {
                if index < symbols.count - 1, symbols[index] == left, symbols[index + 1] == right {
                    merged.append(left + right)
                    index += 2
                } else {
                    merged.append(symbols[index])
                    index += 1
                }
            }
            symbols = merged
        }
    }

    private func mergeByScore(_ symbols: inout [String], _ scores: [Float]) {
        while symbols.count > 1 {
            var best: (score: Float, index: Int)?
            for index in 0..<symbols.count - 1 {
                if let id = ids[symbols[index] + symbols[index + 1]], !specialIDs.contains(id), scores[id] > (best?.score ?? -.infinity) {
                    best = (scores[id], index)
                }
            }
            guard let best else { return }
            symbols[best.index] += symbols[best.index + 1]
            symbols.remove(at: best.index + 1)
        }
    }

    public func bytes(of token: Int) -> [UInt8] {
        guard token >= 0, token < tokens.count else { return [] }
        let text = tokens[token]
        switch kind {
        case .byteLevel:
            if specialIDs.contains(token) { return Array(text.utf8) }
            return text.unicodeScalars.compactMap { ByteLevel.byte(for: $0) }
        case .sentencePiece:
            if let byteTokens, let byte = byteTokens.firstIndex(of: token) { return [UInt8(byte)] }
            var bytes: [UInt8] = []
            for scalar in text.unicodeScalars {
                if scalar == "▁" { bytes.append(0x20) } else { bytes += Array(String(scalar).utf8) }
            }
            return bytes
        }
    }
}

/// GPT-2's reversible map between bytes and printable Unicode characters.
enum ByteLevel {
    static let characters: [Unicode.Scalar] = {
        var map = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte) {
                map[byte] = Unicode.Scalar(UInt32(byte))!
            } else {
                map[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return map
    }()

    static let bytes: [Unicode.Scalar: UInt8] = Dictionary(uniqueKeysWithValues: characters.enumerated().map { ($1, UInt8($0)) })

    static func character(for byte: UInt8) -> Character { Character(characters[Int(byte)]) }
    static func byte(for scalar: Unicode.Scalar) -> UInt8? { bytes[scalar] }
}
