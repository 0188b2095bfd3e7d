import BitNetCPU
import BitNetEngine
import Foundation

/// Which backend runs a model, as users choose it (`--backend`).
public enum BackendChoice: String, Sendable, CaseIterable {
    /// The CPU backend.
    case cpu
    /// The best backend available here: a GPU when a GPU backend is built and finds a device, else the CPU.
    case auto

    /// The backend this choice stands for on this machine.
    public func makeBackend(threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> any Backend {
        switch self {
        case .cpu, .auto: CPUBackend(threads: threads)
        }
    }
}

/// Runs blocking compute on threads of its own, so that it never occupies Swift's cooperative pool.
enum ComputeThreads {
    private static let queue = DispatchQueue(label: "swift-bitnet.compute", qos: .userInitiated, attributes: .concurrent)

    /// Runs `body` on a compute thread and waits for it without blocking the caller's thread.
    static func run<T: Sendable>(_ body: @escaping () throws -> T) async throws -> T {
        nonisolated(unsafe) let work = body
        return try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}
