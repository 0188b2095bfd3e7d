import BitNetFormats
import BitNetInference
import Foundation
import TestSupport
import Testing

/// `bitnet generate`, `chat`, `perplexity` and `logits`, run as a user would.
@Suite struct InferenceCommandLineTests {
    static let model = Fixtures.path("models/bitnet-chat-tiny-tq2_0.gguf")

    func run(_ arguments: [String], input: String? = nil) throws -> BitNetExecutable.Result {
        try BitNetExecutable.run(arguments, input: input)
    }

    @Test func logitsBatchAndDecodePathsAgreeWithTheLibrary() throws {
        let all = try run(["logits", "-m", Self.model, "--tokens", "5,17,300,42", "--all-positions", "--threads", "1"])
        #expect(all.status == 0, "\(all.stderr)")
        let rows = try JSONValue.parse(Data(all.stdout.utf8))["logits"]!.arrayValue!.map { $0.arrayValue!.map { Float($0.doubleValue!) } }
        #expect(rows.count == 4 && rows[0].count == 1200)
        let session = try InferenceSession(model: BitNetModel(path: Self.model, threads: 1), contextLength: 4)
        let library = try session.evaluate([5, 17, 300, 42], allPositions: true)
        #expect(zip(rows, library).allSatisfy { $0.relativeError(to: $1) < 1e-6 })
        let decode = try run(["logits", "-m", Self.model, "--tokens", "5,17,300,42", "--batch", "1"])
        let last = try JSONValue.parse(Data(decode.stdout.utf8))["logits"]!.arrayValue!.map { $0.arrayValue!.map { Float($0.doubleValue!) } }
        #expect(last.count == 1 && last[0].relativeError(to: library[3]) < 1e-5)
    }

    @Test func generateStreamsTextAndReportsSpeed() throws {
        let result = try run(["generate", "-m", Self.model, "-p", "def main", "-n", "8", "--seed", "1", "--threads", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("def main"))
        #expect(result.stderr.contains("tokens/s"))
        let again = try run(["generate", "-m", Self.model, "-p", "def main", "-n", "8", "--seed", "1", "--threads", "2"])
        #expect(again.stdout == result.stdout, "same seed, same text, whatever the thread count")
    }

    @Test func theBackendIsChosenAndNamed() throws {
        let cpu = try run(["generate", "-m", Self.model, "-p", "def main", "-n", "4", "--temp", "0", "--threads", "1", "--backend", "cpu"])
        #expect(cpu.status == 0, "\(cpu.stderr)")
        #expect(cpu.stderr.contains("backend: cpu ("), "\(cpu.stderr)")
        let auto = try run(["generate", "-m", Self.model, "-p", "def main", "-n", "4", "--temp", "0", "--threads", "1", "--backend", "auto"])
        #expect(auto.stdout == cpu.stdout, "auto picks the CPU on a machine without a GPU backend")
        let wrong = try run(["logits", "-m", Self.model, "--tokens", "1", "--backend", "gpu"])
        #expect(wrong.status != 0 && wrong.stderr.contains("--backend"), "\(wrong.stderr)")
    }

    @Test func chatReadsTurnsUntilEOF() throws {
        let result = try run(["chat", "-m", Self.model, "-n", "4", "--system", "Be brief.", "--threads", "1"], input: "hello\nhow are you?\n")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.split(separator: "\n", omittingEmptySubsequences: false).count >= 3)
    }

    @Test func perplexityJSON() throws {
        let scratch = TemporaryDirectory()
        let text = scratch.file("text.txt", Array(String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 20).utf8))
        let result = try run(["perplexity", "-m", Self.model, "-f", text, "--ctx", "32", "--json", "--threads", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONValue.parse(Data(result.stdout.utf8))
        #expect((json["perplexity"]?.doubleValue ?? 0) > 1)
        #expect((json["tokens"]?.intValue ?? 0) > 0)
    }

    @Test func inputErrorsAreOneLineAndStatus1() throws {
        let scratch = TemporaryDirectory()
        let cases: [[String]] = [
            ["generate", "-m", scratch.path + "/missing.gguf", "-p", "x"],
            ["generate", "-m", Self.model, "-p", String(repeating: "word ", count: 100), "--ctx", "16"],
            ["generate", "-m", Self.model, "-p", "x", "--top-p", "0"],
            ["logits", "-m", Self.model, "--tokens", "1,x"],
            ["logits", "-m", Self.model, "--tokens", "99999"],
            ["perplexity", "-m", Self.model, "-f", scratch.path + "/missing.txt"],
            ["chat", "-m", Fixtures.path("models/bitnet-gqa-tied-bf16-tq2_0.gguf")],
        ]
        for arguments in cases {
            let result = try run(arguments, input: "")
            #expect(result.status != 0, "\(arguments)")
            let lines = result.stderr.split(separator: "\n").filter { !$0.isEmpty }
            #expect(lines.count >= 1 && lines.count <= 3, "\(arguments): \(result.stderr)")
            #expect(lines.first?.lowercased().contains("error") == true, "\(arguments): \(result.stderr)")
        }
    }
}
