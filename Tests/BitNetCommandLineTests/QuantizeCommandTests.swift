import BitNetFormats
import Foundation
import TestSupport
import Testing

/// `bitnet quantize`, run as a user would.
@Suite struct QuantizeCommandTests {

    func run(_ arguments: [String]) throws -> BitNetExecutable.Result {
        try BitNetExecutable.run(arguments)
    }

    @Test func reportTableJSONAndCalibration() throws {
        let scratch = TemporaryDirectory()
        let output = scratch.path + "/chat.gguf", report = scratch.path + "/report.json"
        let text = scratch.file("text.txt", Array(String(repeating: "def main():\n    return parse(arguments)  # the entry point\n", count: 12).utf8))
        let result = try run(["quantize", Fixtures.path("models/bitnet-chat-tiny"), "-o", output, "--type", "tq1_0",
                              "--report", report, "--calibration", text, "--threads", "2"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("blk.0.ffn_down.weight") && result.stdout.contains("PPL"))
        #expect(result.stderr.contains("tensor 13/13"), "plain progress lines when stderr is not a terminal")
        let json = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: report)))
        let tensors = try #require(json["tensors"]?.arrayValue)
        #expect(tensors.count == 7)
        for tensor in tensors {
            let fractions = tensor["fractions"]!
            let total = ["-1", "0", "+1"].map { fractions[$0]!.doubleValue! }.reduce(0, +)
            #expect(abs(total - 1) < 1e-9)
            #expect((tensor["relative_error"]?.doubleValue ?? 0) > 0.3)  // random master weights
            #expect((tensor["scale"]?.doubleValue ?? 0) > 0)
        }
        let calibration = try #require(json["calibration"])
        let float = calibration["float_perplexity"]!.doubleValue!, packed = calibration["packed_perplexity"]!.doubleValue!
        #expect(float > 1 && packed > 1)
        // Same codes; only float32 rounding, f16 block scales and f16 embeddings differ.
        #expect(abs(packed - float) / float < 0.05, "\(float) vs \(packed)")
        #expect(calibration["activations"]?.arrayValue?.count == 4, "one layer × four BitLinear inputs")
        // The output carries the tokenizer and chat template: it runs without the source directory.
        let chat = try run(["generate", "-m", output, "-p", "def", "-n", "4"])
        #expect(chat.status == 0, "\(chat.stderr)")
    }

    @Test func interruptedConversionLeavesNothing() throws {
        let scratch = TemporaryDirectory()
        let output = scratch.path + "/slow.gguf"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: BitNetExecutable.executable)
        process.arguments = ["quantize", Fixtures.path("models/bitnet-gqa-tied-bf16"), "-o", output, "--threads", "1"]
        process.environment = ProcessInfo.processInfo.environment.merging(["BITNET_TEST_CONVERSION_DELAY_MS": "100"]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait for the temporary file to appear, then terminate mid-way.
        let deadline = Date().addingTimeInterval(30)
        var sawPartial = false
        while Date() < deadline, !sawPartial {
            sawPartial = ((try? FileManager.default.contentsOfDirectory(atPath: scratch.path)) ?? []).contains { $0.contains(".partial-") }
            if !sawPartial { usleep(20_000) }
        }
        #expect(sawPartial)
        usleep(300_000)
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationStatus != 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).isEmpty, "no output and no temporary file")
    }

    @Test func errorsAreClearAndWriteNothing() throws {
        let scratch = TemporaryDirectory()
        let unfit = try run(["quantize", Fixtures.path("safetensors/tiny-bitnet-sharded"), "-o", scratch.path + "/x.gguf", "--type", "i2_s"])
        #expect(unfit.status == 1)
        #expect(unfit.stderr.contains("blk.0.attn_q.weight (rows of 64") && !unfit.stderr.contains("ffn_down") && unfit.stderr.contains("--fallback"))
        let badType = try run(["quantize", Fixtures.path("models/bitnet-chat-tiny"), "-o", scratch.path + "/x.gguf", "--type", "q4_0"])
        #expect(badType.status == 1 && badType.stderr.contains("--type"))
        let missing = try run(["quantize", scratch.path + "/nothing", "-o", scratch.path + "/x.gguf"])
        #expect(missing.status == 1 && missing.stderr.split(separator: "\n").count == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).isEmpty)
    }

    /// SIGKILL cannot be caught: what protects the destination is that the output is written to a temporary
    /// sibling and renamed into place. Killed at seeded random moments, the destination holds either nothing
    /// or the complete output of an earlier run, never a partial file; a rerun succeeds.
    @Test func killedConversionsNeverLeaveAPartialFile() throws {
        let scratch = TemporaryDirectory()
        let output = scratch.path + "/model.gguf"
        let arguments = ["quantize", Fixtures.path("models/bitnet-gqa-tied-bf16"), "-o", output, "--threads", "1"]
        var generator = SeededGenerator(seed: 2026)
        var previous: Data?
        var kills = 0
        for _ in 0..<6 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: BitNetExecutable.executable)
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(["BITNET_TEST_CONVERSION_DELAY_MS": "20"]) { $1 }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            usleep(UInt32.random(in: 50_000..<1_200_000, using: &generator))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let now = FileManager.default.contents(atPath: output)
            if process.terminationReason == .uncaughtSignal {
                kills += 1
                #expect(now == previous, "a killed run changed the destination")
            } else {
                #expect(process.terminationStatus == 0)
                previous = now
            }
            if now != nil { _ = try GGUFFile(path: output) }  // whatever is there is a whole, valid file
        }
        #expect(kills >= 3, "most runs were killed mid-way (\(kills) of 6)")
        let rerun = try run(Array(arguments))
        #expect(rerun.status == 0, "\(rerun.stderr)")
        let complete = try #require(FileManager.default.contents(atPath: output))
        if let previous { #expect(previous == complete, "an earlier complete run wrote the same bytes") }
        #expect(try GGUFFile(path: output).tensors.count > 10)
    }
}
