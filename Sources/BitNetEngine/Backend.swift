import BitNetModels

/// Where a model's forward pass runs. A backend takes a model's ``ForwardGraph`` once — wrapping or
/// uploading its weights — and returns a ``BackendModel`` that runs it.
public protocol Backend: Sendable {
    /// A short description for users: "cpu (avx2, 2 threads)".
    var name: String { get }
    /// Takes the model's weights and plans the forward pass.
    func load(_ graph: ForwardGraph) throws -> any BackendModel
}

/// A model loaded on a backend. Safe to share: forward passes on different caches may run concurrently.
public protocol BackendModel: Sendable {
    var graph: ForwardGraph { get }
    /// Storage for the keys and values of `slots` sequences of up to `capacity` positions each.
    func makeCacheStorage(slots: Int, capacity: Int, type: KeyValueCacheType) throws -> any KeyValueStorage
    /// Runs the graph on `batch`, storing its keys and values at each token's slot and position in
    /// `storage`; returns the logits of the tokens that want them, one row of `vocabularySize` each, in
    /// batch order. The batch has been checked against the cache (``KeyValueCache/check(_:)``).
    func forward(_ batch: ForwardBatch, storage: any KeyValueStorage) throws -> [Float]
    /// Runs the graph on `batch` as ``forward(_:storage:)`` does and returns, for each token that wants logits,
    /// the index of its largest logit, the lowest among equal ones (``LogitRows/greedyToken(_:)``): greedy decoding
    /// without reading the logits back. Throws ``InferenceError`` `nonFiniteResult` where a row holds a non-finite
    /// logit. The default computes the logits and chooses on the host.
    func forwardGreedy(_ batch: ForwardBatch, storage: any KeyValueStorage) throws -> [Int]
    /// Runs the graph on `batch` as ``forward(_:storage:)`` does and returns, for each token that wants logits, its
    /// `count` largest logits and their tokens (``LogitRows/largest(_:of:)``'s order), without reading the rest back.
    /// Throws ``InferenceError`` `nonFiniteResult` where a row holds a non-finite logit. The default computes the
    /// logits and chooses on the host.
    func forwardTopLogits(_ batch: ForwardBatch, storage: any KeyValueStorage, count: Int) throws -> [TopLogits]
    /// Calls `body` with the bytes a forward pass reads of `weight` where the backend reads a form of its own kept
    /// in host memory (rows repacked at load), and returns what it returns; nil, without calling it, where the backend
    /// reads the stored bytes. The default is nil.
    func withBytesRead<R>(of weight: WeightID, _ body: (UnsafeRawBufferPointer) -> R) -> R?
}

extension BackendModel {
    public func withBytesRead<R>(of weight: WeightID, _ body: (UnsafeRawBufferPointer) -> R) -> R? { nil }

    /// How many bytes a forward pass reads of `weight`: those of ``withBytesRead(of:_:)``'s form, else the stored ones.
    public func bytesRead(of weight: WeightID) -> Int {
        withBytesRead(of: weight) { $0.count } ?? graph[weight].bytes.count
    }

    public func forwardGreedy(_ batch: ForwardBatch, storage: any KeyValueStorage) throws -> [Int] {
        LogitRows.greedyTokens(try finiteLogits(batch, storage: storage), vocabularySize: graph.configuration.vocabularySize)
    }

    public func forwardTopLogits(_ batch: ForwardBatch, storage: any KeyValueStorage, count: Int) throws -> [TopLogits] {
        try hostTopLogits(batch, storage: storage, count: count)
    }

    /// ``forwardTopLogits(_:storage:count:)`` from the logits, chosen on the host.
    public func hostTopLogits(_ batch: ForwardBatch, storage: any KeyValueStorage, count: Int) throws -> [TopLogits] {
        LogitRows.topLogits(try finiteLogits(batch, storage: storage), vocabularySize: graph.configuration.vocabularySize, count: count)
    }

    /// ``forward(_:storage:)``'s logits, checked finite (``LogitRows/checkFinite(_:vocabularySize:)``).
    public func finiteLogits(_ batch: ForwardBatch, storage: any KeyValueStorage) throws -> [Float] {
        let logits = try forward(batch, storage: storage)
        try LogitRows.checkFinite(logits, vocabularySize: graph.configuration.vocabularySize)
        return logits
    }
}

/// The element type of the KV cache.
public enum KeyValueCacheType: String, Sendable, CaseIterable {
    /// Exact; 4 bytes per value.
    case f32
    /// Half the memory; values are rounded to float16 when stored.
    case f16

    public var byteWidth: Int { self == .f32 ? 4 : 2 }
}

/// Keys and values as a backend stores them (host memory, device buffers). Used by one forward pass
/// at a time.
public protocol KeyValueStorage: AnyObject {
    /// Bytes held.
    var byteCount: Int { get }
}
