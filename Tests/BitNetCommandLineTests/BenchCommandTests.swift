import BitNetFormats
import Foundation
import TestSupport
import Testing

/// `bitnet bench`, run as a user would. Timing decides nothing here: the test checks what is reported.
@Suite struct BenchCommandTests {
    static let model = Fixtures.path("models/bitnet-chat-tiny-tq2_0.gguf")

    @Test func jsonHasOneEntryPerTestWithItsSamples() throws {
        let result = try BitNetExecutable.run(["bench", "-m", Self.model, "-p", "8,16", "-n", "4", "-r", "2", "--threads", "1", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let entries = try #require(try JSONValue.parse(Data(result.stdout.utf8))["results"]?.arrayValue)
        #expect(entries.map { $0["test"]?.stringValue } == ["pp8", "pp16", "tg4"])
        for entry in entries {
            let samples = (entry["samples"]?.arrayValue ?? []).compactMap { $0.doubleValue }
            let mean = try #require(entry["tokens_per_second"]?.doubleValue)
            #expect(samples.count == 2 && samples.allSatisfy { $0 > 0 })
            #expect(abs(mean - samples.reduce(0, +) / 2) <= 1e-9 * mean, "the mean is the samples' mean")
            #expect((entry["stddev"]?.doubleValue ?? -1) >= 0 && (entry["gbps"]?.doubleValue ?? 0) > 0)
            #expect(entry["backend"]?.stringValue?.hasPrefix("cpu (") == true)
        }
        #expect((entries[2]["roofline_percent"]?.doubleValue ?? 0) > 0, "decode is compared with the measured roofline")
        #expect(entries[0]["roofline_percent"] == .null)
    }

    @Test func theTableAndItsErrors() throws {
        let table = try BitNetExecutable.run(["bench", "-m", Self.model, "-p", "8", "-n", "2", "-r", "1", "--threads", "1"])
        #expect(table.status == 0, "\(table.stderr)")
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.first == "| backend | test | tokens/s | GB/s | roofline | load | device memory |" && lines.count == 4)
        #expect(table.stderr.contains("read bandwidth here") && table.stderr.contains("roofline"))
        for arguments in [["-p", "x"], ["-r", "0"], ["--backend", "gpu"], ["-d", "deep"], ["-d", "1,-4"], ["--cache-type", "q8_0"]] {
            let bad = try BitNetExecutable.run(["bench", "-m", Self.model] + arguments)
            #expect(bad.status == 1 && bad.stderr.hasPrefix("bitnet: error:"), "\(arguments): \(bad.stderr)")
        }
    }

    /// Decode steps read the rows repacked at load for table lookups where the level has them (AVX2, AVX-VNNI): the
    /// header's bytes a step are those, fewer than the stored TQ2_0 rows. `BITNET_DECODE_LOOKUP=0` keeps the stored
    /// rows, and greedy text is the same either way.
    @Test func decodeByLookupCanBeTurnedOff() throws {
        func bytesPerStep(_ environment: [String: String]) throws -> (bytes: Double, backend: String) {
            let result = try BitNetExecutable.run(["bench", "-m", Self.model, "-p", "0", "-n", "2", "-r", "1", "--threads", "1", "--json"], environment: environment)
            #expect(result.status == 0, "\(result.stderr)")
            let entry = try #require(try JSONValue.parse(Data(result.stdout.utf8))["results"]?.arrayValue?.first)
            // GB/s over tokens/s: a step's bytes (the cache's positions are the same both ways).
            let bytes = try #require(entry["gbps"]?.doubleValue) * 1e9 / (try #require(entry["tokens_per_second"]?.doubleValue))
            return (bytes, entry["backend"]?.stringValue ?? "")
        }
        let lookup = try bytesPerStep(["BITNET_DECODE_LOOKUP": "1"]), stored = try bytesPerStep(["BITNET_DECODE_LOOKUP": "0"])
        if lookup.backend.hasPrefix("cpu (avx2") || lookup.backend.hasPrefix("cpu (avxvnni") {
            #expect(lookup.bytes < 0.99 * stored.bytes, "panels: \(lookup.bytes) bytes a step, stored rows: \(stored.bytes)")
        } else {
            #expect(abs(lookup.bytes - stored.bytes) <= 1e-6 * stored.bytes)
        }
        let arguments = ["generate", "-m", Self.model, "-p", "def main", "-n", "12", "--temp", "0", "--threads", "1"]
        let text = try BitNetExecutable.run(arguments, environment: ["BITNET_DECODE_LOOKUP": "1"]), storedText = try BitNetExecutable.run(arguments, environment: ["BITNET_DECODE_LOOKUP": "0"])
        #expect(text.status == 0 && storedText.status == 0 && text.stdout == storedText.stdout, "\(text.stdout) against \(storedText.stdout)")
    }

    /// `-d` puts that many tokens in the cache before each test, as llama-bench's depth: the tests are named for it,
    /// each entry says its depth, and decode at a depth counts the cache it reads in its GB/s.
    @Test func depthsFillTheCacheFirst() throws {
        let arguments = ["bench", "-m", Self.model, "-p", "8", "-n", "2", "-r", "1", "-d", "0,40", "--threads", "1", "--json"]
        var gigabytesPerSecond: [String: [Double]] = [:]
        for cacheType in ["f32", "f16"] {
            let result = try BitNetExecutable.run(arguments + ["--cache-type", cacheType])
            #expect(result.status == 0, "\(result.stderr)")
            let entries = try #require(try JSONValue.parse(Data(result.stdout.utf8))["results"]?.arrayValue)
            #expect(entries.map { $0["test"]?.stringValue } == ["pp8", "tg2", "pp8 @ d40", "tg2 @ d40"])
            #expect(entries.map { $0["depth"]?.intValue } == [0, 0, 40, 40])
            #expect(entries.allSatisfy { ($0["tokens_per_second"]?.doubleValue ?? 0) > 0 })
            // GB/s over tokens/s is the bytes a step reads: the weights, and at a depth the cache's positions too.
            gigabytesPerSecond[cacheType] = [1, 3].map { index in
                (entries[index]["gbps"]?.doubleValue ?? 0) / (entries[index]["tokens_per_second"]?.doubleValue ?? 1)
            }
        }
        for (cacheType, bytes) in gigabytesPerSecond { #expect(bytes[1] > bytes[0], "\(cacheType): the cache's reads are counted") }
        let f32 = try #require(gigabytesPerSecond["f32"]), f16 = try #require(gigabytesPerSecond["f16"])
        let extra32 = f32[1] - f32[0], extra16 = f16[1] - f16[0]  // 40 more positions of every layer's keys and values
        #expect(abs(extra32 - 2 * extra16) <= 1e-6 * extra32, "an f32 cache's positions are twice an f16 one's bytes: \(extra32), \(extra16)")
    }

    /// `--backend all` runs the CPU and Vulkan (lavapipe here) in one run, the Vulkan entries with their load
    /// (upload) time and device memory.
    @Test func allBackendsInOneRun() throws {
        let result = try BitNetExecutable.run(["bench", "-m", Self.model, "-p", "8", "-n", "2", "-r", "1", "--threads", "1", "--backend", "all", "--json"],
                                              environment: ["BITNET_VULKAN_VALIDATION": "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let entries = try #require(try JSONValue.parse(Data(result.stdout.utf8))["results"]?.arrayValue)
        #expect(entries.map { $0["test"]?.stringValue } == ["pp8", "tg2", "pp8", "tg2"])
        #expect(entries.prefix(2).allSatisfy { $0["backend"]?.stringValue?.hasPrefix("cpu (") == true && $0["device_memory_bytes"] == .null })
        for entry in entries.suffix(2) {
            #expect(entry["backend"]?.stringValue?.hasPrefix("vulkan (") == true)
            #expect((entry["device_memory_bytes"]?.intValue ?? 0) > 0 && (entry["load_seconds"]?.doubleValue ?? 0) > 0)
            #expect((entry["tokens_per_second"]?.doubleValue ?? 0) > 0 && entry["roofline_percent"] == .null)
        }
        #expect(!result.stderr.contains("Validation"), "\(result.stderr)")
    }
}
