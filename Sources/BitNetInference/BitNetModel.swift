import BitNetCPU
import BitNetEngine
import BitNetFormats
import BitNetModels
import Foundation

/// A BitNet model loaded on a backend: weights stay packed and, where the file allows, memory-mapped.
///
/// Load a GGUF file (llama.cpp's TQ1_0/TQ2_0, bitnet.cpp's I2_S, or float weights ternarized at load) or
/// a Hugging Face directory (packed uint8 "offline" checkpoints, or float master weights of a QAT
/// checkpoint, ternarized at load with the exact QAT formula). A model is `Sendable`: many sessions, each
/// with its own cache, may run on it at once.
public final class BitNetModel: Sendable {
    public let path: String
    /// The file, read through its architecture.
    public let source: WeightSource
    /// The backend the model runs on.
    public let backend: any Backend
    /// The model on its backend.
    public let loaded: any BackendModel

    /// The CPU threads a model uses unless told otherwise: the physical cores this process may run on.
    public static var defaultThreads: Int { CPUBackend.defaultThreads }

    /// Loads the model at `path` (a `.gguf` file or a Hugging Face directory) on the chosen backend.
    /// - Parameters:
    ///   - device: the Vulkan device's index (``VulkanDevices/list(library:)``), for `.vulkan` and `.auto`.
    ///   - onFallback: told why, when `.auto` runs on the CPU for want of a usable GPU.
    public convenience init(path: String, backend choice: BackendChoice = .auto, threads: Int = BitNetModel.defaultThreads,
                            device: Int? = nil, onFallback: ((String) -> Void)? = nil) throws {
        try self.init(path: path, backend: try choice.makeBackend(threads: threads, device: device, onFallback: onFallback))
    }

    /// Loads the model at `path` on `backend`.
    public convenience init(path: String, backend: any Backend) throws {
        try self.init(source: try WeightSource(path: path), backend: backend)
    }

    /// Loads the model of an opened file on `backend`.
    public init(source: WeightSource, backend: any Backend) throws {
        path = source.path
        self.source = source
        self.backend = backend
        loaded = try backend.load(try source.architecture.buildGraph(source))
    }

    public var configuration: ModelConfiguration { source.configuration }
    /// The GGUF file the model came from, for its metadata.
    public var ggufFile: GGUFFile? { source.ggufFile }

    /// Bytes of weight matrices that are used in place from the memory map, and bytes converted into
    /// memory at load (norm vectors, a few kilobytes, are not counted).
    public var weightBytes: (mapped: Int, owned: Int) {
        var mapped = 0, owned = 0
        for weight in loaded.graph.weights where weight.rows > 1 {
            if weight.bytes.isMapped { mapped += weight.bytes.count } else { owned += weight.bytes.count }
        }
        return (mapped, owned)
    }

    /// Bytes of weights a decode step reads (a prompt, once per batch): every BitLinear weight and the output
    /// projection, in the form the backend reads them (``BackendModel/withBytesRead(of:_:)``: on the CPU, BitLinear rows
    /// repacked for table lookups); the embedding lookup reads one row. Divided into a memory bandwidth, the fastest
    /// decode possible.
    public var bytesReadPerToken: Int {
        matrixWeights.reduce(0) { $0 + loaded.bytesRead(of: $1) }
    }

    /// Calls `body` with the ``bytesReadPerToken`` bytes a decode step reads, a region a weight, where the backend
    /// keeps them on the host: the regions a benchmark's bandwidth roofline reads.
    public func withBytesReadPerToken<R>(_ body: ([UnsafeRawBufferPointer]) -> R) -> R {
        withRegions(of: matrixWeights.sorted { $0.index < $1.index }[...], collected: [], body)
    }

    /// `body` with every weight's regions at once (each `withUnsafeBytes` lasts only for its closure).
    private func withRegions<R>(of weights: ArraySlice<WeightID>, collected: [UnsafeRawBufferPointer],
                                _ body: ([UnsafeRawBufferPointer]) -> R) -> R {
        guard let first = weights.first else { return body(collected) }
        func next(_ region: UnsafeRawBufferPointer) -> R { self.withRegions(of: weights.dropFirst(), collected: collected + [region], body) }
        return loaded.withBytesRead(of: first, next) ?? loaded.graph[first].bytes.withUnsafeBytes(next)
    }

    private var matrixWeights: Set<WeightID> {
        var read = Set<WeightID>()
        for op in loaded.graph.ops {
            switch op {
            case .bitLinear(_, let weight, _), .project(_, let weight, _): read.insert(weight)
            default: break
            }
        }
        return read
    }

    /// A KV cache for `slots` sequences of up to `contextLength` positions (default: the model's
    /// context, at most 4096), for batches of several sequences (``forward(_:cache:)``).
    public func makeCache(slots: Int = 1, contextLength: Int? = nil, type: KeyValueCacheType = .f32) throws -> KeyValueCache {
        try KeyValueCache(model: loaded, slots: slots, capacity: contextLength ?? min(configuration.contextLength, 4096), type: type)
    }

    /// Runs `batch` — tokens of one or several sequences — appending to their slots of `cache`; returns
    /// the logits of the tokens that want them, in batch order. Blocks the calling thread.
    public func forward(_ batch: ForwardBatch, cache: KeyValueCache) throws -> [[Float]] {
        rows(try cache.forward(batch, on: loaded))
    }

    /// Like ``forward(_:cache:)``, computed on threads outside Swift's cooperative pool.
    public func forward(_ batch: ForwardBatch, cache: KeyValueCache) async throws -> [[Float]] {
        let loaded = self.loaded
        return rows(try await ComputeThreads.run { try cache.forward(batch, on: loaded) })
    }

    /// Like ``forward(_:cache:)``, returning each row's greedy token instead of its logits: a GPU backend chooses it
    /// where the logits are and reads back one integer a row.
    public func forwardGreedy(_ batch: ForwardBatch, cache: KeyValueCache) throws -> [Int] {
        try cache.forwardGreedy(batch, on: loaded)
    }

    /// Like ``forwardGreedy(_:cache:)``, computed on threads outside Swift's cooperative pool.
    public func forwardGreedy(_ batch: ForwardBatch, cache: KeyValueCache) async throws -> [Int] {
        let loaded = self.loaded
        return try await ComputeThreads.run { try cache.forwardGreedy(batch, on: loaded) }
    }

    /// Runs `batch` and returns the `count` largest logits of each token that wants logits, with their tokens,
    /// largest first (the lower token first among equal logits), without reading the rest of the logits back from
    /// the backend. Blocks the calling thread.
    public func forwardTopLogits(_ batch: ForwardBatch, cache: KeyValueCache, count: Int) throws -> [TopLogits] {
        try cache.forwardTopLogits(batch, on: loaded, count: count)
    }

    /// Like ``forwardTopLogits(_:cache:count:)``, computed on threads outside Swift's cooperative pool.
    public func forwardTopLogits(_ batch: ForwardBatch, cache: KeyValueCache, count: Int) async throws -> [TopLogits] {
        let loaded = self.loaded
        return try await ComputeThreads.run { try cache.forwardTopLogits(batch, on: loaded, count: count) }
    }

    private func rows(_ flat: [Float]) -> [[Float]] {
        let width = configuration.vocabularySize
        return stride(from: 0, to: flat.count, by: width).map { Array(flat[$0..<$0 + width]) }
    }

    /// The model's tokenizer: GGUF `tokenizer.ggml.*` metadata, or `tokenizer.json` beside `config.json`.
    public func loadTokenizer() throws -> BPETokenizer { try source.loadTokenizer() }

    /// The Jinja chat template the model ships (`tokenizer.chat_template` or tokenizer_config.json).
    public var chatTemplateSource: String? { source.chatTemplateSource }

    /// The model's chat format; throws a clear error if its template is unknown (pass an override).
    public func chatTemplate(override: ChatTemplate? = nil) throws -> ChatTemplate {
        if let override { return override }
        let known = ChatTemplate.knownNames
        guard let source = chatTemplateSource else {
            throw ModelError(.invalidModel, "\(path) has no chat template; choose one with --chat-template (\(known))")
        }
        guard let template = ChatTemplate(jinja: source) else {
            throw ModelError(.unsupportedModel, "\(path): unknown chat template; choose one with --chat-template (\(known))")
        }
        return template
    }
}
