import CBitNetVulkan
import Foundation

/// A Vulkan physical device and what it offers the backend.
public struct VulkanDevice: Sendable, Hashable {
    public enum Kind: String, Sendable {
        case other, integratedGPU = "integrated-gpu", discreteGPU = "discrete-gpu", virtualGPU = "virtual-gpu", cpu
    }

    public var index: Int
    public var name: String
    public var kind: Kind
    public var vendorID: UInt32
    public var deviceID: UInt32
    /// The driver's name and version text ("llvmpipe", "NVIDIA").
    public var driverName: String
    public var driverInfo: String
    /// "major.minor.patch" of the Vulkan API the device supports.
    public var apiVersion: String
    /// Bytes of device-local memory heaps, and of the others.
    public var deviceLocalBytes: UInt64
    public var otherBytes: UInt64
    public var subgroupSize: Int
    /// Compute shaders may use subgroup arithmetic (reductions without shared memory).
    public var subgroupArithmetic: Bool
    /// `VK_KHR_shader_integer_dot_product` (or Vulkan 1.3), and whether its signed 4×8-bit dot is accelerated.
    public var integerDotProduct: Bool
    public var integerDotProductAccelerated: Bool
    /// `VK_KHR_cooperative_matrix` is offered.
    public var cooperativeMatrix: Bool
    /// A queue family for transfers alone (uploads beside compute).
    public var hasTransferQueue: Bool
}

/// Why Vulkan is not usable here.
public struct VulkanError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// No loader (`libvulkan.so.1`): Vulkan is not installed.
        case noLoader = "no-loader"
        /// No instance (no driver), no such device, or a device without what the backend needs.
        case unavailable
        /// Device (or host) memory ran out, at load or for a cache.
        case outOfMemory = "out-of-memory"
        /// The device was lost (driver reset or hang).
        case deviceLost = "device-lost"
        /// The model uses something the Vulkan backend does not implement.
        case unsupported
        /// Any other failure of a Vulkan call.
        case failed
    }

    public var code: Code
    public var message: String
    public var description: String { message }

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }
}

/// The Vulkan devices of this machine, found through the loader opened at run time.
public enum VulkanDevices {
    /// Lists the physical devices; throws ``VulkanError`` (`.noLoader`, `.unavailable`) when there is no loader or no driver.
    /// - Parameter library: the loader to open (default: `$BITNET_VULKAN_LOADER`, else `libvulkan.so.1`).
    public static func list(library: String? = nil) throws -> [VulkanDevice] {
        let library = library ?? defaultLoader
        var devices = [bitnet_vulkan_device](repeating: bitnet_vulkan_device(), count: 64)
        var error = [CChar](repeating: 0, count: 512)
        let count = Int(bitnet_vulkan_list_devices(library, &devices, Int32(devices.count), &error, Int32(error.count)))
        guard count >= 0 else {
            throw VulkanError(code: count == -2 ? .noLoader : .unavailable, message: text(error))
        }
        return devices.prefix(min(count, devices.count)).enumerated().map { index, device in
            VulkanDevice(
                index: index,
                name: text(device.name),
                kind: [0: .other, 1: .integratedGPU, 2: .discreteGPU, 3: .virtualGPU, 4: .cpu][device.type] ?? .other,
                vendorID: device.vendor_id,
                deviceID: device.device_id,
                driverName: text(device.driver_name),
                driverInfo: text(device.driver_info),
                apiVersion: "\(device.api_version >> 22 & 0x7F).\(device.api_version >> 12 & 0x3FF).\(device.api_version & 0xFFF)",
                deviceLocalBytes: device.device_local_bytes,
                otherBytes: device.other_bytes,
                subgroupSize: Int(device.subgroup_size),
                subgroupArithmetic: device.subgroup_arithmetic != 0,
                integerDotProduct: device.integer_dot_product != 0,
                integerDotProductAccelerated: device.integer_dot_product_accelerated != 0,
                cooperativeMatrix: device.cooperative_matrix != 0,
                hasTransferQueue: device.transfer_queue_family >= 0)
        }
    }

    /// The loader `$BITNET_VULKAN_LOADER` names, or nil for `libvulkan.so.1`.
    static var defaultLoader: String? { ProcessInfo.processInfo.environment["BITNET_VULKAN_LOADER"].flatMap { $0.isEmpty ? nil : $0 } }

    /// A fixed-size C string field as a String.
    private static func text<T>(_ field: T) -> String {
        withUnsafeBytes(of: field) { bytes in String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// A C string written into `buffer` (an error or validation message) as a String.
    static func text(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBytes { bytes in String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self) }
    }
}
