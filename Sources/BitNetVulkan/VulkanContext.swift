import CBitNetVulkan
import Foundation

extension VulkanError {
    /// Runs a runtime call that reports a status and a message; throws the matching error.
    static func check(_ body: (UnsafeMutablePointer<CChar>, Int32) -> bitnet_vk_status) throws {
        var message = [CChar](repeating: 0, count: 512)
        let status = message.withUnsafeMutableBufferPointer { body($0.baseAddress!, Int32($0.count)) }
        guard status != BITNET_VK_OK else { return }
        let text = VulkanDevices.text(message)
        let code: Code = switch status {
        case BITNET_VK_UNAVAILABLE: .unavailable
        case BITNET_VK_OUT_OF_MEMORY: .outOfMemory
        case BITNET_VK_DEVICE_LOST: .deviceLost
        default: .failed
        }
        throw VulkanError(code: code, message: text)
    }
}

/// A Vulkan device opened for computing: its queues, memory blocks, staging ring and the pipeline layout.
final class VulkanContext: @unchecked Sendable {
    let pointer: OpaquePointer
    /// Serializes uploads: the staging ring is one per context.
    private let uploadLock = NSLock()

    init(library: String?, deviceIndex: Int, validation: Bool, integerDotProduct: Bool) throws {
        var context: OpaquePointer?
        try VulkanError.check { error, size in
            withOptionalCString(library) { library in
                var options = bitnet_vk_options(library: library, device_index: Int32(deviceIndex), validation: validation ? 1 : 0,
                                                integer_dot_product: integerDotProduct ? 1 : 0)
                return bitnet_vk_context_create(&options, &context, error, size)
            }
        }
        pointer = context!
    }

    deinit { bitnet_vk_context_destroy(pointer) }

    /// Warnings and errors of the validation layer so far, and the last one's text.
    var validationMessages: (count: Int, last: String) {
        var message = [CChar](repeating: 0, count: 1024)
        let count = bitnet_vk_validation_messages(pointer, &message, Int32(message.count))
        return (Int(count), VulkanDevices.text(message))
    }

    var memoryInUse: Int { Int(bitnet_vk_memory_in_use(pointer)) }

    /// Runs `body`, which uploads with ``VulkanBuffer/upload(_:at:)``, holding the staging ring, then waits for
    /// its last copy: every upload (weights at load, a cache's tables) goes through here.
    func uploading<R>(_ body: () throws -> R) throws -> R {
        uploadLock.lock()
        defer { uploadLock.unlock() }
        let result = try body()
        try VulkanError.check { bitnet_vk_upload_finish(pointer, $0, $1) }
        return result
    }
}

private func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let string else { return body(nil) }
    return string.withCString(body)
}

/// A storage buffer in sub-allocated device (or host-visible) memory.
final class VulkanBuffer: @unchecked Sendable {
    let context: VulkanContext
    let pointer: OpaquePointer
    let byteCount: Int

    init(_ context: VulkanContext, byteCount: Int, memory: bitnet_vk_memory = BITNET_VK_MEMORY_DEVICE) throws {
        self.context = context
        self.byteCount = byteCount
        var buffer: OpaquePointer?
        try VulkanError.check { bitnet_vk_buffer_create(context.pointer, UInt64(max(byteCount, 4)), memory, &buffer, $0, $1) }
        pointer = buffer!
    }

    deinit { bitnet_vk_buffer_destroy(context.pointer, pointer) }

    /// The bytes, when the memory is host-visible.
    var mapped: UnsafeMutableRawPointer? { bitnet_vk_buffer_mapped(pointer) }

    /// Copies `bytes` in at `offset` (staged when the memory is not host-visible); call it inside ``VulkanContext/uploading(_:)``.
    func upload(_ bytes: UnsafeRawBufferPointer, at offset: Int = 0) throws {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        try VulkanError.check { bitnet_vk_upload(context.pointer, pointer, UInt64(offset), base, UInt64(bytes.count), $0, $1) }
    }
}

/// A compute pipeline of one shader with its workgroup size.
final class VulkanPipeline: @unchecked Sendable {
    let context: VulkanContext
    let pointer: OpaquePointer
    let workgroupSize: Int

    init(_ context: VulkanContext, code base64: String, workgroupSize: Int) throws {
        self.context = context
        self.workgroupSize = workgroupSize
        let words = ShaderCode.words(base64)
        var pipeline: OpaquePointer?
        try words.withUnsafeBufferPointer { words in
            try VulkanError.check {
                bitnet_vk_pipeline_create(context.pointer, words.baseAddress!, words.count * 4, UInt32(workgroupSize), &pipeline, $0, $1)
            }
        }
        pointer = pipeline!
    }

    deinit { bitnet_vk_pipeline_destroy(context.pointer, pointer) }
}

/// The backend's pipelines, created once per device.
struct VulkanPipelines: Sendable {
    let embed, rmsNorm, quantize, bitLinear, bitLinearChained, bitLinearTiled, project, rope, storeKeysAndValues, attention, attentionChained, attentionTiled, attentionCombine,
        attentionCombineChained, elementwise, topLogits, topLogitsMerge,
        argmax: VulkanPipeline
    /// Whether BitLinear uses the integer dot product instructions.
    let integerDotProduct: Bool
    /// Whether quantization, attention and the output projection reduce with subgroup operations.
    let subgroups: Bool

    init(_ context: VulkanContext, integerDotProduct: Bool, subgroups: Bool) throws {
        embed = try VulkanPipeline(context, code: ShaderCode.embed, workgroupSize: 256)
        rmsNorm = try VulkanPipeline(context, code: ShaderCode.rmsNorm, workgroupSize: 256)
        quantize = try VulkanPipeline(context, code: subgroups ? ShaderCode.quantizeSubgroups : ShaderCode.quantize, workgroupSize: 256)
        bitLinear = try VulkanPipeline(context, code: integerDotProduct ? ShaderCode.bitlinearIntegerDot : ShaderCode.bitlinear, workgroupSize: 64)
        bitLinearChained = try VulkanPipeline(context, code: integerDotProduct ? ShaderCode.bitlinearChainedIntegerDot : ShaderCode.bitlinearChained,
                                              workgroupSize: 64)
        // bitlinear_tiled.comp maps its 256 invocations onto 16 × 16 (rows, tokens).
        bitLinearTiled = try VulkanPipeline(context, code: integerDotProduct ? ShaderCode.bitlinearTiledIntegerDot : ShaderCode.bitlinearTiled, workgroupSize: 256)
        project = try VulkanPipeline(context, code: subgroups ? ShaderCode.projectSubgroups : ShaderCode.project, workgroupSize: 64)
        rope = try VulkanPipeline(context, code: ShaderCode.rope, workgroupSize: 256)
        storeKeysAndValues = try VulkanPipeline(context, code: ShaderCode.kvStore, workgroupSize: 256)
        attention = try VulkanPipeline(context, code: subgroups ? ShaderCode.attentionSubgroups : ShaderCode.attention, workgroupSize: 64)
        attentionChained = try VulkanPipeline(context, code: subgroups ? ShaderCode.attentionChainedSubgroups : ShaderCode.attentionChained, workgroupSize: 64)
        attentionTiled = try VulkanPipeline(context, code: ShaderCode.attentionTiled, workgroupSize: 64)
        attentionCombine = try VulkanPipeline(context, code: ShaderCode.attentionCombine, workgroupSize: 64)
        attentionCombineChained = try VulkanPipeline(context, code: ShaderCode.attentionCombineChained, workgroupSize: 64)
        elementwise = try VulkanPipeline(context, code: ShaderCode.elementwise, workgroupSize: 256)
        argmax = try VulkanPipeline(context, code: ShaderCode.argmax, workgroupSize: 256)
        topLogits = try VulkanPipeline(context, code: ShaderCode.topLogits, workgroupSize: 256)
        topLogitsMerge = try VulkanPipeline(context, code: ShaderCode.topLogitsMerge, workgroupSize: 256)
        self.integerDotProduct = integerDotProduct
        self.subgroups = subgroups
    }
}
