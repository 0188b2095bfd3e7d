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
    @Option(name: .customShort("d"), help: "Context depths, comma-separated: tokens already in the KV cache when each test starts, as llama-bench's -d.") var depth = "0"
    @Option(name: .customLong("cache-type"), help: "KV cache element type: f32 or f16.") var cacheType = "f32"
    @Option(help: "Threads (default: the physical cores).") var threads: Int?
    @Option(help: "Backends to test: \(BackendChoice.allCases.map(\.rawValue).joined(separator: ", ")), or all (the CPU and, where Vulkan finds a device, Vulkan).") var backend = "cpu"
    @Option(help: "The Vulkan device, by its index in `bitnet devices`.") var device: Int?
    @Flag(help: "Print {\"results\": [{\"backend\", \"test\", \"tokens_per_second\", \"stddev\", \"gbps\", …}]}.") var json = false
    @Flag(help: "After a Vulkan backend's tests, run each once more with a GPU timestamp after every dispatch and print where the time went, by kind of dispatch.")
    var profile = false

    struct Result {
        var backend: String
        var test: String
        /// Tokens in the cache before the test's own.
        var depth: Int
        var samples: [Double]
        /// Bytes read per second at the mean speed: the weights, and for decode the cache positions a step reads too.
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

    /// Non-negative counts from a comma-separated option.
    static func counts(_ text: String, option: String, what: String) throws -> [Int] {
        try text.split(separator: ",").map { part -> Int in
            guard let count = Int(part.trimmingCharacters(in: .whitespaces)), count >= 0 else {
                throw InferenceError(.invalidInput, "\(option): '\(part)' is not \(what)")
            }
            return count
        }
    }

    func run() async throws {
        try await reportingErrors {
            let lengths = try Self.counts(prompt, option: "-p", what: "a prompt length")
            let depths = try Self.counts(depth, option: "-d", what: "a context depth")
            guard let cacheType = KeyValueCacheType(rawValue: cacheType) else {
                throw InferenceError(.invalidInput, "--cache-type must be f32 or f16, not '\(self.cacheType)'")
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
            var profiles: [(backend: String, test: String, profile: VulkanProfile)] = []
            var header = ""
            var measuredBandwidth: Double?
            for choice in choices {
                let loadStart = Self.now()
                let model = try BitNetModel(path: path, backend: choice, threads: threadCount, device: device,
                                            onFallback: { printError("bitnet: \($0)\n") })
                let loadSeconds = Self.now() - loadStart
                let vulkan = model.backend as? VulkanBackend
                let bytesPerToken = Double(model.bytesReadPerToken)
                // The host's read bandwidth over what a decode step reads, in the form the first backend keeps on the
                // host (the CPU's lookup panels, not the stored rows they were packed from; Vulkan's stored rows):
                // measured once, whichever backend runs.
                let bandwidth = measuredBandwidth ?? model.withBytesReadPerToken { CPUBackend(threads: threadCount).readBandwidth(of: $0) }
                measuredBandwidth = bandwidth
                header = String(format: "%@: %@, %.1f MiB read per decode step; read bandwidth here %.2f GB/s with %d thread(s), roofline %.1f tokens/s",
                                path, model.configuration.architecture.rawValue, bytesPerToken / 1_048_576, bandwidth / 1e9, threadCount,
                                bandwidth / bytesPerToken)
                if !json { printError(header + "\n") }
                // A decode step at depth d also reads the cache's d + 1 positions and more, each layer's keys and values.
                let (layers, width) = model.loaded.graph.cacheShape
                let cacheBytesPerPosition = Double(2 * layers * width * cacheType.byteWidth)
                for depth in depths {
                    let suffix = depth > 0 ? " @ d\(depth)" : ""
                    // One session a depth, filled once; each test truncates it back to the depth.
                    var generator = Xoshiro256(seed: UInt64(depth))
                    let session = try Self.session(model, depth: depth, more: max(lengths.max() ?? 0, generate + 1),
                                                   cacheType: cacheType, generator: &generator)
                    for length in lengths where length > 0 {
                        let samples = try (0..<repetitions).map { _ in
                            try Self.promptSpeed(session, depth: depth, length: length, generator: &generator)
                        }
                        var result = Result(backend: model.backend.name, test: "pp\(length)\(suffix)", depth: depth, samples: samples,
                                            gigabytesPerSecond: 0, loadSeconds: loadSeconds, deviceMemoryBytes: vulkan?.deviceMemoryInUse)
                        result.gigabytesPerSecond = bytesPerToken * result.mean / Double(length) / 1e9  // weights are read once per batch
                        results.append(result)
                    }
                    if generate > 0 {
                        let samples = try (0..<repetitions).map { _ in try Self.decodeSpeed(session, depth: depth, tokens: generate) }
                        // Step i reads positions 0 … depth + 1 + i: on average depth + 1 + (n + 1) / 2 of them.
                        let bytesPerStep = bytesPerToken + cacheBytesPerPosition * (Double(depth + 1) + Double(generate + 1) / 2)
                        var result = Result(backend: model.backend.name, test: "tg\(generate)\(suffix)", depth: depth, samples: samples,
                                            gigabytesPerSecond: 0, loadSeconds: loadSeconds, deviceMemoryBytes: vulkan?.deviceMemoryInUse)
                        result.gigabytesPerSecond = bytesPerStep * result.mean / 1e9
                        // The roofline is this machine's host memory bandwidth: a CPU figure.
                        result.rooflinePercent = vulkan == nil ? 100 * result.mean / (bandwidth / bytesPerStep) : nil
                        results.append(result)
                    }
                    if profile, let vulkan {
                        vulkan.profiling = true
                        defer { vulkan.profiling = false }
                        _ = vulkan.takeProfile()
                        for length in lengths where length > 0 {
                            _ = try Self.promptSpeed(session, depth: depth, length: length, generator: &generator)
                            profiles.append((model.backend.name, "pp\(length)\(suffix)", vulkan.takeProfile()))
                        }
                        if generate > 0 {
                            _ = try Self.decodeSpeed(session, depth: depth, tokens: generate)
                            profiles.append((model.backend.name, "tg\(generate)\(suffix)", vulkan.takeProfile()))
                        }
                    }
                }
            }
            if json {
                let entries: [JSONValue] = results.map { result in
                    let roofline: JSONValue = result.rooflinePercent.map { .double($0) } ?? .null
                    return .object([("backend", .string(result.backend)), ("test", .string(result.test)), ("depth", .int(result.depth)),
                                    ("tokens_per_second", .double(result.mean)), ("stddev", .double(result.standardDeviation)),
                                    ("gbps", .double(result.gigabytesPerSecond)), ("roofline_percent", roofline),
                                    ("load_seconds", .double(result.loadSeconds)),
                                    ("device_memory_bytes", result.deviceMemoryBytes.map { .int($0) } ?? .null),
                                    ("samples", .array(result.samples.map { .double($0) }))])
                }
                let profileEntries: [JSONValue] = profiles.map { item in
                    .object([("backend", .string(item.backend)), ("test", .string(item.test)), ("passes", .int(item.profile.passes)),
                             ("dispatches", .array(item.profile.entries.map { entry in
                                 .object([("label", .string(entry.label)), ("nanoseconds", .double(entry.nanoseconds)),
                                          ("count", .int(entry.dispatches))])
                             }))])
                }
                print(JSONValue.object([("results", .array(entries))] + (profile ? [("profiles", .array(profileEntries))] : [])).serialized())
            } else {
                print("| backend | test | tokens/s | GB/s | roofline | load | device memory |")
                print("|---|---|---:|---:|---:|---:|---:|")
                for result in results {
                    print(String(format: "| %@ | %@ | %.2f ± %.2f | %.2f | %@ | %.2f s | %@ |", result.backend, result.test, result.mean,
                                 result.standardDeviation, result.gigabytesPerSecond, result.rooflinePercent.map { String(format: "%.0f %%", $0) } ?? "–",
                                 result.loadSeconds, result.deviceMemoryBytes.map { String(format: "%.1f MiB", Double($0) / 1_048_576) } ?? "–"))
                }
                for item in profiles { print("\n" + item.profile.table(title: "\(item.backend), \(item.test)")) }
            }
            if profile && profiles.isEmpty { printError("bitnet: --profile times Vulkan backends only; none ran\n") }
        }
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// A session holding `depth` random tokens (evaluated untimed, 512 at a time) with room for `more`.
    static func session(_ model: BitNetModel, depth: Int, more: Int, cacheType: KeyValueCacheType,
                        generator: inout Xoshiro256) throws -> InferenceSession {
        let session = try InferenceSession(model: model, contextLength: depth + more, cacheType: cacheType)
        var filled = 0
        while filled < depth {
            let count = min(512, depth - filled)
            _ = try session.evaluate(randomTokens(model, count: count, generator: &generator))
            filled += count
        }
        return session
    }

    static func randomTokens(_ model: BitNetModel, count: Int, generator: inout Xoshiro256) -> [Int] {
        (0..<count).map { _ in Int(generator.next() % UInt64(model.configuration.vocabularySize)) }
    }

    /// Tokens/s of one prompt of `length` random tokens after the session's first `depth`, processed as one batch.
    static func promptSpeed(_ session: InferenceSession, depth: Int, length: Int, generator: inout Xoshiro256) throws -> Double {
        session.truncate(to: depth)
        let tokens = randomTokens(session.model, count: length, generator: &generator)
        let start = now()
        _ = try session.evaluate(tokens)
        return Double(length) / (now() - start)
    }

    /// Tokens/s of `tokens` decode steps after the session's first `depth` tokens, one token at a time, each the
    /// greedy choice after the last, made where the backend holds the logits (as `generate` does when greedy).
    static func decodeSpeed(_ session: InferenceSession, depth: Int, tokens: Int) throws -> Double {
        session.truncate(to: depth)
        var next = try session.evaluateGreedy([0])
        let start = now()
        for _ in 0..<tokens {
            next = try session.evaluateGreedy([next])
        }
        return Double(tokens) / (now() - start)
    }
}
