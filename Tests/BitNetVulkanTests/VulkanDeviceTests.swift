import BitNetVulkan
import Testing

/// Device discovery through the loader opened at run time. `scripts/bootstrap` installs Mesa's lavapipe, so
/// every machine that runs the tests has at least that (software) device.
@Suite struct VulkanDeviceTests {
    @Test func lavapipeIsListedWithWhatItOffers() throws {
        let devices = try VulkanDevices.list()
        let lavapipe = try #require(devices.first { $0.driverName == "llvmpipe" }, "no lavapipe among \(devices.map(\.name)): run scripts/bootstrap")
        #expect(lavapipe.kind == .cpu)
        #expect(lavapipe.name.contains("llvmpipe"))
        #expect(lavapipe.subgroupSize >= 4 && lavapipe.subgroupSize.nonzeroBitCount == 1, "a power of two: \(lavapipe.subgroupSize)")
        #expect(lavapipe.apiVersion.hasPrefix("1.") && lavapipe.apiVersion.split(separator: ".").count == 3)
        #expect(lavapipe.deviceLocalBytes + lavapipe.otherBytes > 0)
        #expect(devices.map(\.index) == Array(devices.indices))
    }

    @Test func aMissingLoaderIsATypedError() {
        #expect {
            try VulkanDevices.list(library: "/nonexistent/libvulkan.so.1")
        } throws: { error in
            guard let error = error as? VulkanError else { return false }
            return error.code == .noLoader && error.message.contains("/nonexistent/libvulkan.so.1")
        }
    }
}
