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

    /// Token ids that are not positions of the table are refused when the tokenizer is loaded, naming the
    /// field, instead of trapping later (when encoding, or when the converter writes them back).
    @Test func idsOutsideTheTableAreRefused() throws {
        let data = try #require(FileManager.default.contents(atPath: Fixtures.path("tokenizers/byte-level/tokenizer.json")))
        _ = try BPETokenizer.load(tokenizerJSON: data, path: "tokenizer.json", bos: 1, eos: [2])
        for (bos, eos, field) in [(-1, [2], "beginning-of-sequence"), (1, [999_999], "end token")] {
            let error = #expect(throws: ModelError.self) { try BPETokenizer.load(tokenizerJSON: data, path: "tokenizer.json", bos: bos, eos: eos) }
            #expect(error?.message.contains(field) == true, "\(error?.message ?? "")")
        }
        let regressions = URL(fileURLWithPath: Fixtures.directory).deletingLastPathComponent().appendingPathComponent("Fuzz/regressions")
        for (target, name, words) in [("tokenizer-json", "table-sized-by-one-id", "larger than"), ("tokenizer-json", "negative-added-id", "invalid id"),
                                      ("tokenizer-json", "shared-id", "given to both"), ("tokenizer-gguf", "token-types-past-the-tokens", "token_type"),
                                      ("tokenizer-gguf", "bos-past-the-tokens", "not one of")] {
            let bytes = try Data(contentsOf: regressions.appendingPathComponent(target + "/" + name))
            let error = #expect(throws: ModelError.self) {
                if target == "tokenizer-json" {
                    _ = try BPETokenizer.load(tokenizerJSON: bytes, path: name)
                } else {
                    _ = try BPETokenizer.load(gguf: GGUFFile(bytes: Array(bytes), path: name))
                }
            }
            #expect(error?.message.contains(words) == true, "\(name): \(error?.message ?? "")")
        }
    }
}
