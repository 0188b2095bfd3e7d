import ArgumentParser
import BitNetCPU
import BitNetFormats
import BitNetInference
import BitNetVulkan
import Dispatch
import Foundation

/// `bitnet bench`: prompt processing and decode speed, as llama.cpp's `llama-bench` reports them, next to
/// the memory bandwidth of this machine measured in the same run.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure prompt (pp) and decode (tg) speed: tokens/s mean ± sd, GB/s, and % of a bandwidth roofline measured here.")

    @Option(name: .shortAndLong, help: "A .gguf file or a Hugging Face model directory (default: the bundled tiny-bitnet).")
    var model: String?
    @Option(name: .customShort("p"), help: "Prompt lengths to test, comma-separated (0 = none).") var prompt = "128"
    @Option(name: .customShort("n"), help: "Tokens to generate per decode test (0 = none).") var generate = 64
    @Option(name: .customShort("r"), help: "Repetitions of each test.") var repetitions = 3
    @Option(help: "Threads (default: the physical cores).") var threads: Int?
    @Option(help: "Backends to test: \(BackendChoice.allCases.map(\.rawValue).joined(separator: ", ")), or all (the CPU and, where Vulkan finds a device, Vulkan).") var backend = "cpu"
    @Option(help: "The Vulkan device, by its index in `bitnet devices`.") var device: Int?
    @Flag(help: "Print {\"results\": [{\"backend\", \"test\", \"tokens_per_second\", \"stddev\", \"gbps\", …}]}.") var json = false

    struct Result {
        var backend: String
        var test: String
        var samples: [Double]
        /// Bytes of weights read per second at the mean speed.
        var gigabytesPerSecond: Double
        var rooflinePercent: Double?
        /// Seconds to load the model on the backend (for Vulkan: repacking and uploading the weights).
        var loadSeconds: Double
        /// Bytes of device memory the backend holds during the test (Vulkan), else nil.
        var deviceMemoryBytes: Int?

        var mean: Double { samples.reduce(0, +) / Double(samples.count) }
        var standardDeviation: Double {
            guard samples.count > 1 else { return 0 }
            return (samples.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(samples.count - 1)).squareRoot()
        }
    }

    func run() async throws {
        try await reportingErrors {
            let lengths = try prompt.split(separator: ",").map { part -> Int in
                guard let length = Int(part.trimmingCharacters(in: .whitespaces)), length >= 0 else {
                    throw InferenceError(.invalidInput, "-p: '\(part)' is not a prompt length")
                }
                return length
            }
            guard generate >= 0, repetitions >= 1, threads.map({ $0 >= 1 }) ?? true else {
                throw InferenceError(.invalidInput, "-n must be ≥ 0, -r ≥ 1 and --threads ≥ 1")
            }
            let choices: [BackendChoice]
            if backend == "all" {
                choices = (try? VulkanDevices.list()).map { $0.isEmpty ? [.cpu] : [.cpu, .vulkan] } ?? [.cpu]
            } else if let choice = BackendChoice(rawValue: backend) {
                choices = [choice]
            } else {
                throw InferenceError(.invalidInput, "--backend must be \(BackendChoice.allCases.map(\.rawValue).joined(separator: ", ")) or all")
            }
            guard let path = model ?? ModelOptions.defaultModel else {
                throw InferenceError(.invalidInput, "no model given (-m) and the bundled default model is missing")
            }
            let threadCount = threads ?? BitNetModel.defaultThreads
            var results: [Result] = []
            var header = ""
            var measuredBandwidth: Double?
            for choice in choices {
                let loadStart = Self.now()
                let model = try BitNetModel(path: path, backend: choice, threads: threadCount, device: device,
                                            onFallback: { printError("bitnet: \($0)\n") })
                let loadSeconds = Self.now() - loadStart
                let vulkan = model.backend as? VulkanBackend
                let bytesPerToken = Double(model.bytesReadPerToken)
                // The host's read bandwidth over the file's weights: measured once, whichever backend runs.
                let bandwidth = measuredBandwidth ?? CPUBackend(threads: threadCount).readBandwidth(of: model.loaded.graph.weights.filter { $0.rows > 1 })
                measuredBandwidth = bandwidth
                header = String(format: "%@: %@, %.1f MiB read per token; read bandwidth here %.2f GB/s with %d thread(s), roofline %.1f tokens/s",
                                path, model.configuration.architecture.rawValue, bytesPerToken / 1_048_576, bandwidth / 1e9, threadCount,
                                bandwidth / bytesPerToken)
                if !json { printError(header + "\n") }
                for length in lengths where length > 0 {
                    let samples = try (0..<repetitions).map { repetition in try Self.promptSpeed(model, length: length, seed: UInt64(repetition)) }
                    var result = Result(backend: model.backend.name, test: "pp\(length)", samples: samples, gigabytesPerSecond: 0,
                                        loadSeconds: loadSeconds, deviceMemoryBytes: vulkan?.deviceMemoryInUse)
                    result.gigabytesPerSecond = bytesPerToken * result.mean / Double(length) / 1e9  // weights are read once per batch
                    results.append(result)
                }
                if generate > 0 {
                    let samples = try (0..<repetitions).map { _ in try Self.decodeSpeed(model, tokens: generate) }
                    var result = Result(backend: model.backend.name, test: "tg\(generate)", samples: samples, gigabytesPerSecond: 0,
                                        loadSeconds: loadSeconds, deviceMemoryBytes: vulkan?.deviceMemoryInUse)
                    result.gigabytesPerSecond = bytesPerToken * result.mean / 1e9
                    // The roofline is this machine's host memory bandwidth: a CPU figure.
                    result.rooflinePercent = vulkan == nil ? 100 * result.mean / (bandwidth / bytesPerToken) : nil
                    results.append(result)
                }
            }
            if json {
                let entries: [JSONValue] = results.map { result in
                    let roofline: JSONValue = result.rooflinePercent.map { .double($0) } ?? .null
                    return .object([("backend", .string(result.backend)), ("test", .string(result.test)),
                                    ("tokens_per_second", .double(result.mean)), ("stddev", .double(result.standardDeviation)),
                                    ("gbps", .double(result.gigabytesPerSecond)), ("roofline_percent", roofline),
                                    ("load_seconds", .double(result.loadSeconds)),
                                    ("device_memory_bytes", result.deviceMemoryBytes.map { .int($0) } ?? .null),
                                    ("samples", .array(result.samples.map { .double($0) }))])
                }
                print(JSONValue.object([("results", .array(entries))]).serialized())
            } else {
                print("| backend | test | tokens/s | GB/s | roofline | load | device memory |")
                print("|---|---|---:|---:|---:|---:|---:|")
                for result in results {
                    print(String(format: "| %@ | %@ | %.2f ± %.2f | %.2f | %@ | %.2f s | %@ |", result.backend, result.test, result.mean,
                                 result.standardDeviation, result.gigabytesPerSecond, result.rooflinePercent.map { String(format: "%.0f %%", $0) } ?? "–",
                                 result.loadSeconds, result.deviceMemoryBytes.map { String(format: "%.1f MiB", Double($0) / 1_048_576) } ?? "–"))
                }
            }
        }
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// Tokens/s of one prompt of `length` random tokens, processed as one batch.
    static func promptSpeed(_ model: BitNetModel, length: Int, seed: UInt64) throws -> Double {
        var generator = Xoshiro256(seed: seed)
        let tokens = (0..<length).map { _ in Int(generator.next() % UInt64(model.configuration.vocabularySize)) }
        let session = try InferenceSession(model: model, contextLength: length)
        let start = now()
        _ = try session.evaluate(tokens)
        return Double(length) / (now() - start)
    }

    /// Tokens/s of `tokens` decode steps, one token at a time, each the argmax of the last.
    static func decodeSpeed(_ model: BitNetModel, tokens: Int) throws -> Double {
        let session = try InferenceSession(model: model, contextLength: tokens + 1)
        var logits = try session.evaluate([0])[0]
        let start = now()
        for _ in 0..<tokens {
            let next = logits.indices.max { logits[$0] < logits[$1] }!
            logits = try session.evaluate([next])[0]
        }
        return Double(tokens) / (now() - start)
    }
}
