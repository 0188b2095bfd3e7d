import Foundation
import TestSupport
import Testing

/// `--backend vulkan|auto` and `--device` as a user meets them (lavapipe is this machine's Vulkan device).
@Suite struct VulkanCommandLineTests {
    static let model = Fixtures.path("models/bitnet-chat-tiny-tq2_0.gguf")

    func generate(_ extra: [String], environment: [String: String] = [:]) throws -> BitNetExecutable.Result {
        try BitNetExecutable.run(["generate", "-m", Self.model, "-p", "def main", "-n", "12", "--temp", "0"] + extra, environment: environment)
    }

    @Test func vulkanGeneratesTheCPUsGreedyText() throws {
        let cpu = try generate(["--backend", "cpu"])
        let vulkan = try generate(["--backend", "vulkan"], environment: ["BITNET_VULKAN_VALIDATION": "1"])
        #expect(cpu.status == 0 && vulkan.status == 0, "\(cpu.stderr)\(vulkan.stderr)")
        #expect(!cpu.stdout.isEmpty && vulkan.stdout == cpu.stdout)
        #expect(vulkan.stderr.contains("backend: vulkan (") && !vulkan.stderr.contains("Validation"), "\(vulkan.stderr)")
    }

    /// No usable Vulkan: `vulkan` is an error naming why; `auto` falls back to the CPU, and says so when Vulkan
    /// is there but fails (no driver); without a loader, or with only a software device, the CPU is simply the
    /// best backend.
    @Test func withoutVulkanOnlyAutoFallsBack() throws {
        let noLoader = ["BITNET_VULKAN_LOADER": "/nonexistent/libvulkan.so.1"]
        let noDriver = ["VK_ICD_FILENAMES": "/nonexistent/icd.json", "VK_DRIVER_FILES": "/nonexistent/icd.json"]
        for environment in [noLoader, noDriver] {
            let vulkan = try generate(["--backend", "vulkan"], environment: environment)
            #expect(vulkan.status == 1 && vulkan.stderr.hasPrefix("bitnet: error:") && vulkan.stderr.split(separator: "\n").count == 1, "\(vulkan.stderr)")
            let auto = try generate(["--backend", "auto"], environment: environment)
            #expect(auto.status == 0 && auto.stderr.contains("backend: cpu ("), "\(auto.stderr)")
            #expect(auto.stderr.contains("Vulkan is not usable") == (environment == noDriver), "\(auto.stderr)")
        }
        let software = try generate(["--backend", "auto"])
        #expect(software.status == 0 && software.stderr.contains("backend: cpu (") && !software.stderr.contains("Vulkan"), "\(software.stderr)")
        let device = try generate(["--backend", "vulkan", "--device", "99"])
        #expect(device.status == 1 && device.stderr.contains("no Vulkan device 99"), "\(device.stderr)")
    }
}
