import BitNetEngine
import BitNetModels
import CBitNetVulkan
import Foundation

/// A model on a Vulkan device: its weights uploaded, its graph checked against what the shaders implement.
final class VulkanModel: BackendModel, @unchecked Sendable {
    let graph: ForwardGraph
    let backend: VulkanBackend
    let weights: [VulkanWeight]
    /// What a pass records: the graph's ops, some fused (``VulkanStep/plan(_:fusing:chaining:)``).
    let steps: [VulkanStep]
    /// Tokens per recorded pass, and logit rows per pass; longer batches run as several passes.
    let maxTokens: Int
    let maxOutputs: Int

    init(graph: ForwardGraph, backend: VulkanBackend) throws {
        self.graph = graph
        self.backend = backend
        for op in graph.ops {
            switch op {
            case .pool:
                throw VulkanError(code: .unsupported, message: "pooled embeddings are not implemented on the Vulkan backend (use --backend cpu)")
            case .attention(let attention):
                guard attention.headDimension <= 256, attention.headDimension % 2 == 0, attention.keyValueHeads > 0,
                      attention.heads % attention.keyValueHeads == 0 else {
                    throw VulkanError(code: .unsupported, message: "attention with \(attention.heads)/\(attention.keyValueHeads) heads of \(attention.headDimension) is not implemented on the Vulkan backend (head dimension: even, at most 256)")
                }
            default: break
            }
        }
        steps = VulkanStep.plan(graph, fusing: backend.fusesOps, chaining: backend.chainsQuantization)
        maxTokens = 256
        maxOutputs = max(1, min(maxTokens, (64 << 20) / max(1, graph.configuration.vocabularySize * 4)))
        weights = try backend.context.uploading { try Self.upload(graph, backend.context) }
    }

    /// Each weight in the form its op reads, uploaded through the staging ring.
    private static func upload(_ graph: ForwardGraph, _ context: VulkanContext) throws -> [VulkanWeight] {
        try graph.mapWeights { tensor, use -> VulkanWeight? in
            switch use {
            case .vector:
                let buffer = try VulkanBuffer(context, byteCount: tensor.bytes.count)
                try tensor.bytes.withUnsafeBytes { try buffer.upload($0) }
                return .vector(buffer)
            case .ternary:
                let packing = TernaryPacking(tensor)
                guard packing.blocksPerRow <= TernaryPacking.maximumBlocksPerRow else {
                    throw VulkanError(code: .unsupported, message: "tensor '\(tensor.name)': rows of \(tensor.columns) values have more than \(TernaryPacking.maximumBlocksPerRow) scales, more than the BitLinear shader holds")
                }
                let words = TernaryPacking.pack(tensor)
                let buffer = try VulkanBuffer(context, byteCount: words.count * 4)
                try words.withUnsafeBytes { try buffer.upload($0) }
                return .ternary(buffer, packing)
            case .matrix:
                guard let code = tensor.encoding.matrixShaderCode else { return nil }
                let buffer = try VulkanBuffer(context, byteCount: (tensor.bytes.count + 3) / 4 * 4)
                try tensor.bytes.withUnsafeBytes { try buffer.upload($0) }  // read from the file's map while the last chunk copies
                return .matrix(buffer, rows: tensor.rows, columns: tensor.columns, encoding: code)
            }
        }
    }

    func makeCacheStorage(slots: Int, capacity: Int, type: KeyValueCacheType) throws -> any KeyValueStorage {
        try VulkanKeyValueStorage(model: self, slots: slots, capacity: capacity, type: type)
    }

    func forward(_ batch: ForwardBatch, storage: any KeyValueStorage) throws -> [Float] {
        var logits: [Float] = []
        logits.reserveCapacity(batch.outputCount * graph.configuration.vocabularySize)
        try passes(batch, storage) { try $0.run(appendingLogitsTo: &logits) }
        return logits
    }

    /// The greedy tokens chosen on the device: three words a row read back instead of the vocabulary's logits.
    func forwardGreedy(_ batch: ForwardBatch, storage: any KeyValueStorage) throws -> [Int] {
        var tokens: [Int] = []
        try passes(batch, storage) { try $0.run(appendingGreedyTokensTo: &tokens) }
        return tokens
    }

    /// The largest logits of each row found on the device (at most ``VulkanKeyValueStorage/maxTopCount``; more are
    /// picked on the host from the logits).
    func forwardTopLogits(_ batch: ForwardBatch, storage: any KeyValueStorage, count: Int) throws -> [TopLogits] {
        let count = min(count, graph.configuration.vocabularySize)
        guard count >= 1, count <= VulkanKeyValueStorage.maxTopCount else { return try hostTopLogits(batch, storage: storage, count: count) }
        var rows: [TopLogits] = []
        try passes(batch, storage) { try $0.run(appendingTopLogitsTo: &rows, count: count) }
        return rows
    }

    /// Runs `batch` as passes of at most ``maxTokens`` tokens and ``maxOutputs`` logit rows.
    private func passes(_ batch: ForwardBatch, _ storage: any KeyValueStorage, _ run: (VulkanPass) throws -> Void) throws {
        guard let storage = storage as? VulkanKeyValueStorage, storage.model === self else {
            throw InferenceError(.invalidInput, "the cache was made for another model or backend")
        }
        var start = 0
        while start < batch.count {
            var end = start, outputs = 0
            while end < batch.count, end - start < maxTokens, outputs < maxOutputs || !batch.wantsLogits[end] {
                if batch.wantsLogits[end] { outputs += 1 }
                end += 1
            }
            try run(VulkanPass(storage: storage, batch: batch, range: start..<end))
            start = end
        }
    }
}
