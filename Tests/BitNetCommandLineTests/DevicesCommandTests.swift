import BitNetFormats
import Foundation
import TestSupport
import Testing

/// `bitnet devices`: the CPU and the Vulkan devices (lavapipe everywhere `scripts/bootstrap` ran).
@Suite struct DevicesCommandTests {
    @Test func theCPUAndLavapipeAreListed() throws {
        let result = try BitNetExecutable.run(["devices", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONValue.parse(Data(result.stdout.utf8))
        #expect(json["cpu"]?["name"]?.stringValue?.hasPrefix("cpu (") == true)
        let devices = json["vulkan"]?["devices"]?.arrayValue ?? []
        #expect(devices.contains { $0["driver"]?.stringValue == "llvmpipe" && $0["type"]?.stringValue == "cpu" }, "\(result.stdout)")
        let text = try BitNetExecutable.run(["devices"])
        #expect(text.status == 0 && text.stdout.contains("vulkan 0: ") && text.stdout.contains("subgroup "), "\(text.stdout)")
    }

    @Test func withoutALoaderTheCPUIsStillListed() throws {
        let result = try BitNetExecutable.run(["devices"], environment: ["BITNET_VULKAN_LOADER": "/nonexistent/libvulkan.so.1"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("cpu: cpu ("))
        #expect(result.stdout.contains("vulkan: unavailable: the Vulkan loader could not be opened"), "\(result.stdout)")
    }
}
