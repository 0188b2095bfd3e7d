import ArgumentParser
import BitNetFormats
import BitNetInference
import BitNetVulkan
import Foundation

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List where models can run: the CPU and the Vulkan devices the loader finds (it is opened at run time).")

    @Flag(help: "Print {\"cpu\": {…}, \"vulkan\": {\"devices\": […]} or {\"error\": …}}.") var json = false

    func run() throws {
        let cpu = (try? BackendChoice.cpu.makeBackend(threads: BitNetModel.defaultThreads))?.name ?? "cpu"
        let vulkan = Result { try VulkanDevices.list() }
        if json {
            let devices: JSONValue = switch vulkan {
            case .success(let devices): .object([("devices", .array(devices.map(Self.json)))])
            case .failure(let error): .object([("error", .string("\(error)"))])
            }
            print(JSONValue.object([("cpu", .object([("name", .string(cpu)), ("threads", .int(BitNetModel.defaultThreads))])),
                                    ("vulkan", devices)]).serialized(pretty: true))
            return
        }
        print("cpu: \(cpu)")
        switch vulkan {
        case .failure(let error): print("vulkan: unavailable: \(error)")
        case .success(let devices) where devices.isEmpty: print("vulkan: no devices")
        case .success(let devices):
            for device in devices {
                let memory = String(format: "%.1f GiB", Double(device.deviceLocalBytes) / 1_073_741_824)
                let dot = device.integerDotProductAccelerated ? "int8 dot accelerated" : device.integerDotProduct ? "int8 dot (not accelerated)" : "no int8 dot"
                print("vulkan \(device.index): \(device.name) (\(device.kind.rawValue)), driver \(device.driverName) \(device.driverInfo), "
                      + "Vulkan \(device.apiVersion), \(memory) device-local, subgroup \(device.subgroupSize), \(dot)"
                      + (device.cooperativeMatrix ? ", cooperative matrix" : "") + (device.hasTransferQueue ? ", transfer queue" : ""))
            }
        }
    }

    static func json(_ device: VulkanDevice) -> JSONValue {
        .object([
            ("index", .int(device.index)), ("name", .string(device.name)), ("type", .string(device.kind.rawValue)),
            ("vendor_id", .int(Int(device.vendorID))), ("device_id", .int(Int(device.deviceID))),
            ("driver", .string(device.driverName)), ("driver_info", .string(device.driverInfo)), ("api_version", .string(device.apiVersion)),
            ("device_local_bytes", .int(Int(clamping: device.deviceLocalBytes))), ("other_bytes", .int(Int(clamping: device.otherBytes))),
            ("subgroup_size", .int(device.subgroupSize)), ("subgroup_arithmetic", .bool(device.subgroupArithmetic)),
            ("integer_dot_product", .bool(device.integerDotProduct)), ("integer_dot_product_accelerated", .bool(device.integerDotProductAccelerated)),
            ("cooperative_matrix", .bool(device.cooperativeMatrix)), ("transfer_queue", .bool(device.hasTransferQueue)),
        ])
    }
}
