import BitNetEngine
import BitNetModels
import CBitNetVulkan
import Foundation

/// The Vulkan backend: the whole forward pass on one Vulkan device, recorded into one command buffer per pass.
///
/// Weights are uploaded once at load through a ring of staging buffers (ternary weights repacked into the
/// layout the BitLinear shader reads); activations, the KV cache and the per-pass inputs live in buffers each
/// cache allocates once. BitLinear multiplies int8 activations with ternary weights in integers, with the
/// packed 4×8-bit dot product instruction where the device accelerates it.
public final class VulkanBackend: Backend, @unchecked Sendable {
    public let device: VulkanDevice
    let context: VulkanContext
    let pipelines: VulkanPipelines
    /// Whether passes record a residual add or gated activation, the RMSNorm after it and the quantization of
    /// the result as one dispatch.
    public let fusesOps: Bool
    /// Whether BitLinear runs batches of ``tiledMinimumTokens`` or more through the tiled prompt shader, and attention
    /// such batches of one sequence (a prompt).
    public let tilesPrompts: Bool
    /// Whether the quantization after a BitLinear runs in the BitLinear dispatches' last workgroup where a pass takes the
    /// row shader (a decode step), instead of a dispatch of its own after a barrier.
    public let chainsQuantization: Bool
    /// Whether a short pass (a decode step) splits attention over a long cache into blocks of positions.
    public let splitsAttention: Bool
    /// The fewest tokens a pass takes the tiled shaders for (fewer: BitLinear one workgroup a row, attention one a token).
    public static let tiledMinimumTokens = 16
    let profile = VulkanProfileRecorder()
    /// Columns of a row of logits each `top_logits.comp` workgroup sorts (at most its 2,048); tests make it small to
    /// have many slices and several merge rounds with a small vocabulary.
    var topSliceColumns = 2048

    /// Opens `device` (default: ``preferredDevice(among:)``).
    /// - Parameters:
    ///   - validation: run under the Khronos validation layer and count its messages (default: `$BITNET_VULKAN_VALIDATION` = 1).
    ///   - integerDotProduct: BitLinear with the packed integer dot product (default: where the device accelerates
    ///     it; `$BITNET_VULKAN_INTEGER_DOT` = 0 or 1 overrides). Needs the device to support it.
    ///   - subgroups: reduce across a workgroup with subgroup operations in quantization, attention and the output
    ///     projection (default: where the device has subgroup arithmetic; `$BITNET_VULKAN_SUBGROUPS` = 0 or 1
    ///     overrides). Maxima and integer sums are exact in any order, so the int8 codes do not change.
    ///   - fusesOps: record a residual add or gated activation, the RMSNorm after it and the quantization of the
    ///     result as one dispatch (default: yes; `$BITNET_VULKAN_FUSION` = 0 turns it off). The floats are the same
    ///     either way; off, each op is its own dispatch, to compare or to time.
    ///   - chainsQuantization: where a pass takes BitLinear's row shader or untiled attention (a decode step), run the
    ///     quantization that reads their output (with the residual add or gated activation and the norm before it) in
    ///     the last workgroup of their dispatches to finish, so no barrier and no dispatch stand between them (default:
    ///     with `fusesOps`, on a GPU; not on a CPU device such as lavapipe, which runs a workgroup's invocations as
    ///     coroutines and took twice as long a decode step chained; `$BITNET_VULKAN_CHAIN` = 0 or 1 overrides). The
    ///     floats are the same either way.
    ///   - tilesPrompts: BitLinear over ``tiledMinimumTokens`` or more tokens in tiles of 64 rows × 32 tokens staged in
    ///     shared memory, and attention of such a batch of one sequence 8 queries a workgroup, reading each cached key
    ///     and value once for all 8 (default: yes; `$BITNET_VULKAN_TILED` = 0 turns it off). The floats are the same
    ///     either way.
    ///   - splitsAttention: a pass of at most 16 tokens whose tokens see more than 256 cached positions attends to
    ///     blocks of 256 (more past 16,384 positions) in workgroups of their own and combines them as the CPU backend
    ///     does (default: yes; `$BITNET_VULKAN_SPLIT` = 0 turns it off; the floats differ by rounding).
    public init(device: VulkanDevice? = nil, validation: Bool? = nil, integerDotProduct: Bool? = nil, subgroups: Bool? = nil,
                fusesOps: Bool? = nil, chainsQuantization: Bool? = nil, tilesPrompts: Bool? = nil, splitsAttention: Bool? = nil) throws {
        let environment = ProcessInfo.processInfo.environment
        let library = VulkanDevices.defaultLoader
        let devices = try VulkanDevices.list(library: library)
        guard let chosen = device ?? Self.preferredDevice(among: devices) else {
            throw VulkanError(code: .unavailable, message: "the Vulkan loader found no device")
        }
        guard devices.contains(where: { $0.index == chosen.index }) else {
            throw VulkanError(code: .unavailable, message: "there is no Vulkan device \(chosen.index) (this machine has \(devices.count))")
        }
        let useDot = integerDotProduct ?? environment["BITNET_VULKAN_INTEGER_DOT"].map { $0 == "1" } ?? chosen.integerDotProductAccelerated
        if useDot && !chosen.integerDotProduct {
            throw VulkanError(code: .unavailable, message: "\(chosen.name) has no integer dot product (VK_KHR_shader_integer_dot_product)")
        }
        let useSubgroups = subgroups ?? environment["BITNET_VULKAN_SUBGROUPS"].map { $0 == "1" } ?? chosen.subgroupArithmetic
        if useSubgroups && !chosen.subgroupArithmetic {
            throw VulkanError(code: .unavailable, message: "\(chosen.name) has no subgroup arithmetic in compute shaders")
        }
        self.device = chosen
        context = try VulkanContext(library: library, deviceIndex: chosen.index, validation: validation ?? (environment["BITNET_VULKAN_VALIDATION"] == "1"),
                                    integerDotProduct: useDot)
        pipelines = try VulkanPipelines(context, integerDotProduct: useDot, subgroups: useSubgroups)
        self.fusesOps = fusesOps ?? (environment["BITNET_VULKAN_FUSION"] != "0")
        self.chainsQuantization = chainsQuantization ?? environment["BITNET_VULKAN_CHAIN"].map { $0 != "0" } ?? (chosen.kind != .cpu)
        self.tilesPrompts = tilesPrompts ?? (environment["BITNET_VULKAN_TILED"] != "0")
        self.splitsAttention = splitsAttention ?? (environment["BITNET_VULKAN_SPLIT"] != "0")
        profile.isEnabled = environment["BITNET_VULKAN_PROFILE"] == "1"
    }

    /// A discrete GPU, then an integrated one, then a virtual one, then any device (a software driver).
    public static func preferredDevice(among devices: [VulkanDevice]) -> VulkanDevice? {
        for kind in [VulkanDevice.Kind.discreteGPU, .integratedGPU, .virtualGPU] {
            if let device = devices.first(where: { $0.kind == kind }) { return device }
        }
        return devices.first
    }

    public var name: String { "vulkan (\(device.name), \(pipelines.integerDotProduct ? "int8 dot product" : "portable int8"))" }

    public func load(_ graph: ForwardGraph) throws -> any BackendModel { try VulkanModel(graph: graph, backend: self) }

    /// Warnings and errors the validation layer reported so far (zero unless validation is on), and the last one.
    public var validationMessages: (count: Int, last: String) { context.validationMessages }

    /// Bytes of device memory held by this backend's weights, caches and activations.
    public var deviceMemoryInUse: Int { context.memoryInUse }

    /// While on, every pass puts a barrier and a timestamp after each dispatch and adds its times to the profile
    /// ``takeProfile()`` returns (`$BITNET_VULKAN_PROFILE` = 1 turns it on from the start). Devices whose compute
    /// queue writes no timestamps leave the profile empty.
    public var profiling: Bool {
        get { profile.isEnabled }
        set { profile.isEnabled = newValue }
    }

    /// The time each kind of dispatch took while ``profiling`` was on, since the last call.
    public func takeProfile() -> VulkanProfile { profile.take() }

    /// Whether uploads run on a transfer-only queue.
    public var usesTransferQueue: Bool { bitnet_vk_has_transfer_queue(context.pointer) != 0 }
}
