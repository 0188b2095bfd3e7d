import Foundation

/// The server's counters, gauges and latency histograms, served at `GET /metrics` in Prometheus' text
/// format (version 0.0.4).
final class ServerMetrics: @unchecked Sendable {
    /// A cumulative histogram with fixed bucket bounds, in seconds.
    struct Histogram {
        let bounds: [Double]
        var counts: [Int]
        var sum = 0.0
        var count = 0

        init(bounds: [Double]) {
            self.bounds = bounds
            counts = Array(repeating: 0, count: bounds.count)
        }

        mutating func observe(_ value: Double) {
            for (index, bound) in bounds.enumerated() where value <= bound { counts[index] += 1 }
            sum += value
            count += 1
        }
    }

    /// The paths with a label of their own; every other path counts as "other".
    static let endpoints: Set<String> = ["/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions"]

    private struct RequestKey: Hashable, Comparable {
        var endpoint: String
        var status: Int
        static func < (a: RequestKey, b: RequestKey) -> Bool { (a.endpoint, a.status) < (b.endpoint, b.status) }
    }

    private let lock = NSLock()
    private var requests: [RequestKey: Int] = [:]
    private var promptTokens = 0
    private var generatedTokens = 0
    private var timeToFirstToken = Histogram(bounds: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60])
    private var tokenLatency = Histogram(bounds: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1])

    func countRequest(endpoint: String, status: Int) {
        lock.withLock { requests[RequestKey(endpoint: endpoint, status: status), default: 0] += 1 }
    }

    func countTokens(prompt: Int, generated: Int) {
        lock.withLock {
            promptTokens += prompt
            generatedTokens += generated
        }
    }

    func observeTimeToFirstToken(_ seconds: Double) { lock.withLock { timeToFirstToken.observe(seconds) } }
    func observeTokenLatency(_ seconds: Double) { lock.withLock { tokenLatency.observe(seconds) } }

    /// The exposition text; `queued` and `active` are read from the scheduler at the time of the scrape.
    func exposition(queued: Int, active: Int, parallel: Int) -> String {
        lock.withLock {
            var text = ""
            func family(_ name: String, _ type: String, _ help: String) {
                text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            }
            family("bitnet_requests_total", "counter", "HTTP requests answered, by endpoint and status.")
            for (key, count) in requests.sorted(by: { $0.key < $1.key }) {
                text += "bitnet_requests_total{endpoint=\"\(key.endpoint)\",status=\"\(key.status)\"} \(count)\n"
            }
            family("bitnet_prompt_tokens_total", "counter", "Prompt tokens of finished generations.")
            text += "bitnet_prompt_tokens_total \(promptTokens)\n"
            family("bitnet_generated_tokens_total", "counter", "Tokens generated.")
            text += "bitnet_generated_tokens_total \(generatedTokens)\n"
            family("bitnet_queue_length", "gauge", "Requests waiting for a sequence slot.")
            text += "bitnet_queue_length \(queued)\n"
            family("bitnet_active_sequences", "gauge", "Sequences being decoded.")
            text += "bitnet_active_sequences \(active)\n"
            family("bitnet_parallel_sequences", "gauge", "Sequence slots (--parallel).")
            text += "bitnet_parallel_sequences \(parallel)\n"
            func histogram(_ name: String, _ help: String, _ histogram: Histogram) {
                family(name, "histogram", help)
                for (bound, count) in zip(histogram.bounds, histogram.counts) {
                    text += "\(name)_bucket{le=\"\(bound)\"} \(count)\n"
                }
                text += "\(name)_bucket{le=\"+Inf\"} \(histogram.count)\n\(name)_sum \(histogram.sum)\n\(name)_count \(histogram.count)\n"
            }
            histogram("bitnet_time_to_first_token_seconds", "From a request's arrival to its first generated token.", timeToFirstToken)
            histogram("bitnet_token_latency_seconds", "Between consecutive generated tokens of a request.", tokenLatency)
            return text
        }
    }
}
