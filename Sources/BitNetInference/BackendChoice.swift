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
    public func makeBackend(threads: Int = CPUBackend.defaultThreads) throws -> any Backend {
        switch self {
        case .cpu, .auto: CPUBackend(threads: threads)
        }
    }
}
