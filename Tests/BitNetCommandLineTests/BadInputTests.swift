import BitNetFormats
import Foundation
import TestSupport
import Testing

/// Bad input to every command gives one line on stderr, naming what is wrong, and exit status 1.
@Suite struct BadInputTests {
    static let model = Fixtures.path("models/bitnet-chat-tiny-tq2_0.gguf")

    /// The chat fixture (TQ2_0, with a tokenizer) with its architecture or embedding changed.
    static func rewritten(into directory: String, name: String, architecture: String? = nil, embeddingValue: UInt16? = nil) throws -> String {
        let source = try GGUFFile(path: model)
        let path = directory + "/" + name
        var metadata = source.metadata
        if let architecture {
            let old = metadata.string("general.architecture")!
            var renamed = GGUFMetadata()
            for entry in metadata { renamed[entry.key.replacingOccurrences(of: old + ".", with: architecture + ".")] = entry.value }
            renamed["general.architecture"] = .string(architecture)
            metadata = renamed
        }
        let writer = try GGUFWriter(path: path, metadata: metadata, tensors: source.tensors.map { ($0.name, $0.type, $0.shape) })
        for tensor in source.tensors {
            if tensor.name == "token_embd.weight", let embeddingValue {
                try writer.write((0..<tensor.elementCount).flatMap { _ in withUnsafeBytes(of: embeddingValue.littleEndian, Array.init) })
            } else {
                try source.withTensorData(tensor) { try writer.write($0) }
            }
        }
        try writer.finish()
        return path
    }

    @Test func everyCommandReportsBadInputInOneLine() throws {
        let scratch = TemporaryDirectory()
        let emptyDirectory = scratch.path + "/empty-dir"
        try FileManager.default.createDirectory(atPath: emptyDirectory, withIntermediateDirectories: true)
        let emptyFile = scratch.file("empty.gguf", [])
        let emptyText = scratch.file("empty.txt", [])
        let missing = scratch.path + "/missing.gguf"
        let unknown = try Self.rewritten(into: scratch.path, name: "gpt2.gguf", architecture: "gpt2")
        let notANumber = try Self.rewritten(into: scratch.path, name: "nan.gguf", embeddingValue: 0x7E00)
        let infinite = try Self.rewritten(into: scratch.path, name: "inf.gguf", embeddingValue: 0x7C00)
        let cases: [(arguments: [String], mentions: String)] = [
            (["generate", "-m", missing, "-p", "x"], "missing.gguf"),
            (["generate", "-m", emptyDirectory, "-p", "x"], "config.json"),
            (["generate", "-m", emptyFile, "-p", "x"], "empty.gguf"),
            (["generate", "-m", unknown, "-p", "x"], "gpt2"),
            (["generate", "-m", notANumber, "-p", "x", "-n", "2"], "non-finite"),
            (["generate", "-m", infinite, "-p", "x", "-n", "2"], "non-finite"),
            (["generate", "-m", Self.model, "-p", "x", "--ctx", "2000000"], "context length"),
            (["chat", "-m", missing], "missing.gguf"),
            (["chat", "-m", emptyDirectory], "config.json"),
            (["perplexity", "-m", Self.model, "-f", emptyDirectory], "empty-dir"),
            (["perplexity", "-m", Self.model, "-f", emptyText], "0 tokens"),
            (["perplexity", "-m", notANumber, "-f", Fixtures.path("../../README.md"), "--ctx", "16"], "non-finite"),
            (["logits", "-m", Self.model, "--tokens=-5"], "-5"),
            (["logits", "-m", Self.model, "--tokens", "1,99999"], "99999"),
            (["logits", "-m", unknown, "--tokens", "1"], "gpt2"),
            (["logits", "-m", emptyFile, "--tokens", "1"], "empty.gguf"),
            (["inspect", emptyFile], "empty.gguf"),
            (["inspect", emptyDirectory], "empty-dir"),
            (["inspect", missing], "missing.gguf"),
            (["quantize", emptyDirectory, "-o", scratch.path + "/out.gguf"], "config.json"),
            (["quantize", unknown, "-o", scratch.path + "/out.gguf"], "gpt2"),
            (["quantize", emptyFile, "-o", scratch.path + "/out.gguf"], "empty.gguf"),
        ]
        for (arguments, mentions) in cases {
            let result = try BitNetExecutable.run(arguments, input: "hello\n")
            let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
            #expect(result.status == 1, "\(arguments): status \(result.status), \(result.stderr)")
            #expect(lines.count == 1 && lines[0].hasPrefix("bitnet: error:"), "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(mentions), "\(arguments) should mention '\(mentions)': \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/out.gguf"))
    }
}
