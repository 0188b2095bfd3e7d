import Dispatch

/// Runs forward passes on a thread of their own, so that they never occupy Swift's cooperative pool.
/// One pass at a time: each already uses the backend's threads, and more at once would only oversubscribe
/// the cores (a server batches its sequences into one pass instead).
enum ComputeThreads {
    private static let queue = DispatchQueue(label: "swift-bitnet.compute", qos: .userInitiated)

    /// Runs `body` on the compute thread and waits for it without blocking the caller's thread.
    static func run<T: Sendable>(_ body: @escaping () throws -> T) async throws -> T {
        nonisolated(unsafe) let work = body
        return try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}
