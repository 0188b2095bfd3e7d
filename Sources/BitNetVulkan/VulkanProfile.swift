import Foundation

/// Where a backend's GPU time went while ``VulkanBackend/profiling`` was on: each kind of dispatch's time, read from
/// timestamps the device writes after every dispatch. Profiled passes put a barrier after every dispatch, so the
/// times add up to more than an unprofiled pass takes; they show the shares, not the speed.
public struct VulkanProfile: Sendable {
    public struct Entry: Sendable {
        /// The kind of dispatch: "attention", "add + norm + quantize", "bitlinear 2560×6912", ….
        public var label: String
        public var nanoseconds: Double
        public var dispatches: Int
    }

    /// By total time, largest first.
    public var entries: [Entry]
    /// Passes profiled.
    public var passes: Int

    public var totalNanoseconds: Double { entries.reduce(0) { $0 + $1.nanoseconds } }

    /// A Markdown table: each kind's time per pass, its share and its dispatches per pass.
    public func table(title: String) -> String {
        guard passes > 0, totalNanoseconds > 0 else { return "\(title): no timestamps were taken" }
        var lines = ["\(title): \(passes) passes, \(String(format: "%.1f", totalNanoseconds / Double(passes) / 1000)) µs of GPU time a pass "
                     + "(each dispatch followed by a barrier)",
                     "", "| dispatch | µs a pass | share | dispatches a pass |", "|---|---:|---:|---:|"]
        for entry in entries {
            lines.append(String(format: "| %@ | %.1f | %.1f %% | %.1f |", entry.label, entry.nanoseconds / Double(passes) / 1000,
                                100 * entry.nanoseconds / totalNanoseconds, Double(entry.dispatches) / Double(passes)))
        }
        return lines.joined(separator: "\n")
    }
}

/// The profile as passes add to it (``VulkanBackend`` holds one).
final class VulkanProfileRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var enabled = false
    private var times: [String: (nanoseconds: Double, dispatches: Int)] = [:]
    private var passes = 0

    var isEnabled: Bool {
        get { lock.withLock { enabled } }
        set { lock.withLock { enabled = newValue } }
    }

    /// One pass: `labels[i]` ended at `timestamps[i + 1]`, counted from `timestamps[0]`.
    func add(labels: [String], timestamps: [Double]) {
        guard timestamps.count == labels.count + 1 else { return }
        lock.withLock {
            for (index, label) in labels.enumerated() {
                let elapsed = max(0, timestamps[index + 1] - timestamps[index])
                times[label, default: (0, 0)].nanoseconds += elapsed
                times[label, default: (0, 0)].dispatches += 1
            }
            passes += 1
        }
    }

    /// What was recorded since the last call, which starts afresh.
    func take() -> VulkanProfile {
        lock.withLock {
            let entries = times.map { VulkanProfile.Entry(label: $0.key, nanoseconds: $0.value.nanoseconds, dispatches: $0.value.dispatches) }
                .sorted { $0.nanoseconds > $1.nanoseconds }
            defer { times = [:]; passes = 0 }
            return VulkanProfile(entries: entries, passes: passes)
        }
    }
}
