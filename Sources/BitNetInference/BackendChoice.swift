import BitNetCPU
import BitNetEngine
import BitNetVulkan
import Foundation

/// Which backend runs a model, as users choose it (`--backend`).
public enum BackendChoice: String, Sendable, CaseIterable {
    /// The CPU backend.
    case cpu
    /// The Vulkan backend on a GPU (or a software driver such as lavapipe); an error when there is none.
    case vulkan
    /// The best backend here: a discrete GPU, then an integrated one, through Vulkan; else the CPU. A machine
    /// without Vulkan or without a GPU gets the CPU quietly; one whose Vulkan fails gets it with the reason.
    case auto

    /// The backend this choice stands for on this machine.
    /// - Parameters:
    ///   - device: the Vulkan device's index (`bitnet devices`); default: the preferred one.
    ///   - onFallback: told why, when `auto` falls back to the CPU because Vulkan failed (not when there is no
    ///     loader or no GPU, where the CPU is simply the best backend).
    public func makeBackend(threads: Int = CPUBackend.defaultThreads, device: Int? = nil,
                            onFallback: ((String) -> Void)? = nil) throws -> any Backend {
        switch self {
        case .cpu:
            return CPUBackend(threads: threads)
        case .vulkan:
            return try VulkanBackends.shared(device: device)
        case .auto:
            do {
                let devices = try VulkanDevices.list()
                let candidates = device.map { index in devices.filter { $0.index == index } }
                    ?? devices.filter { $0.kind == .discreteGPU || $0.kind == .integratedGPU }
                guard let chosen = VulkanBackend.preferredDevice(among: candidates) else { return CPUBackend(threads: threads) }
                return try VulkanBackends.shared(device: chosen.index)
            } catch let error as VulkanError where error.code == .noLoader {
                return CPUBackend(threads: threads)
            } catch {
                onFallback?("Vulkan is not usable (\(error)); using the CPU")
                return CPUBackend(threads: threads)
            }
        }
    }
}

/// One Vulkan backend per device for the whole process: models loaded on the same device share its instance,
/// queues and pipelines.
enum VulkanBackends {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var backends: [Int: VulkanBackend] = [:]

    static func shared(device index: Int?) throws -> VulkanBackend {
        lock.lock()
        defer { lock.unlock() }
        let devices = try VulkanDevices.list()
        guard let device = index.map({ index in devices.first { $0.index == index } }) ?? VulkanBackend.preferredDevice(among: devices) else {
            throw VulkanError(code: .unavailable, message: index.map { "there is no Vulkan device \($0) (this machine has \(devices.count); see bitnet devices)" }
                ?? "the Vulkan loader found no device")
        }
        if let backend = backends[device.index] { return backend }
        let backend = try VulkanBackend(device: device)
        backends[device.index] = backend
        return backend
    }
}
