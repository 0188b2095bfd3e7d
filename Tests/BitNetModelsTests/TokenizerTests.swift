import BitNetFormats
@testable import BitNetModels
import Foundation
import TestSupport
import Testing

/// Our tokenizers against Hugging Face `tokenizers` on ~3000 strings each.
@Suite struct TokenizerTests {
    struct Case {
        let text: String
        let ids: [Int]
        let decoded: String
    }

    static func cases(_ kind: String) throws -> [Case] {
        try Fixtures.json("tokenizers/\(kind)/cases.json").arrayValue!.map {
            Case(text: $0["text"]!.stringValue!, ids: $0["ids"]!.arrayValue!.map { $0.intValue! }, decoded: $0["decoded"]!.stringValue!)
        }
    }

    func check(_ tokenizer: BPETokenizer, _ kind: String, decode: Bool) throws {
        let cases = try Self.cases(kind)
        var mismatches = 0
        for testCase in cases {
            let ids = tokenizer.encode(testCase.text)
            if ids != testCase.ids {
                mismatches += 1
                if mismatches <= 5 { Issue.record("\(kind): \(testCase.text.debugDescription) → \(ids), expected \(testCase.ids)") }
            }
            if decode {
                #expect(tokenizer.decode(testCase.ids) == testCase.decoded, "\(kind) decode of \(testCase.text.debugDescription)")
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(cases.count) strings differ")
    }

    @Test func byteLevelFromTokenizerJSON() throws {
        let tokenizer = try BPETokenizer.load(tokenizerJSON: Fixtures.path("tokenizers/byte-level/tokenizer.json"))
        #expect(tokenizer.kind == .byteLevel)
        try check(tokenizer, "byte-level", decode: true)
    }

    @Test func byteLevelFromGGUF() throws {
        let tokenizer = try BPETokenizer.load(gguf: GGUFFile(path: Fixtures.path("tokenizers/byte-level/tokenizer.gguf")))
        try check(tokenizer, "byte-level", decode: true)
    }

    @Test func sentencePieceFromTokenizerJSON() throws {
        let tokenizer = try BPETokenizer.load(tokenizerJSON: Fixtures.path("tokenizers/sentencepiece/tokenizer.json"))
        #expect(tokenizer.kind == .sentencePiece)
        try check(tokenizer, "sentencepiece", decode: true)
    }

    @Test func sentencePieceFromGGUF() throws {
        let tokenizer = try BPETokenizer.load(gguf: GGUFFile(path: Fixtures.path("tokenizers/sentencepiece/tokenizer.gguf")))
        try check(tokenizer, "sentencepiece", decode: true)
    }

    @Test func streamingNeverSplitsACharacter() throws {
        let tokenizer = try BPETokenizer.load(tokenizerJSON: Fixtures.path("tokenizers/byte-level/tokenizer.json"))
        let text = "emoji 😀 and 日本語 and naïve"
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        var pieces: [String] = []
        for id in tokenizer.encode(text) { pieces.append(decoder.append(id)) }
        pieces.append(decoder.finish())
        #expect(pieces.joined() == text)
        #expect(pieces.allSatisfy { !$0.contains("\u{FFFD}") })
        // Some token boundary falls inside a multi-byte character, so at least one step emitted nothing.
        #expect(pieces.contains(""))
    }
}
