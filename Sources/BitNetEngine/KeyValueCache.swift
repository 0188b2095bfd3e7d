import BitNetModels
import Foundation

/// The KV cache of a model on its backend: `slots` sequences of up to `capacity` positions each, and how
/// many positions each one holds. The backend owns the storage; this class keeps the bookkeeping every
/// backend shares, and checks batches against it.
///
/// One forward pass at a time per cache: a second one started while the first runs throws.
public final class KeyValueCache: @unchecked Sendable {
    public let capacity: Int
    public let type: KeyValueCacheType
    /// Positions held by each slot.
    public private(set) var lengths: [Int]
    public let storage: any KeyValueStorage
    private let lock = NSLock()
    private var busy = false

    public init(model: any BackendModel, slots: Int, capacity: Int, type: KeyValueCacheType) throws {
        guard slots >= 1, slots <= 1 << 16 else { throw InferenceError(.invalidInput, "a cache needs 1 to \(1 << 16) slots, not \(slots)") }
        guard capacity >= 1, capacity <= 1 << 20 else {
            throw InferenceError(.invalidInput, "context length \(capacity) must be between 1 and \(1 << 20)")
        }
        let (layers, width) = model.graph.cacheShape
        let bytes = [2, layers, slots, capacity, width, type.byteWidth].reduce((1, false)) { product, factor in
            let (value, overflow) = product.0.multipliedReportingOverflow(by: factor)
            return (value, product.1 || overflow)
        }
        let memory = ProcessInfo.processInfo.physicalMemory
        guard !bytes.1, UInt64(bytes.0) <= memory else {
            let gibibytes = { (value: Double) in String(format: "%.1f GiB", value / 1_073_741_824) }
            let needed = bytes.1 ? "more than 2^63 bytes" : gibibytes(Double(bytes.0))
            throw InferenceError(.invalidInput, "a KV cache of \(slots) × \(capacity) positions needs \(needed); this machine has \(gibibytes(Double(memory))) (use a shorter context)")
        }
        self.capacity = capacity
        self.type = type
        lengths = Array(repeating: 0, count: slots)
        storage = try model.makeCacheStorage(slots: slots, capacity: capacity, type: type)
    }

    public var slotCount: Int { lengths.count }
    public var byteCount: Int { storage.byteCount }

    /// Forgets positions `length…` of `slot` (what they held is overwritten by later tokens).
    public func truncate(slot: Int, to length: Int) throws {
        guard slot >= 0, slot < slotCount else { throw InferenceError(.invalidInput, "slot \(slot) is not one of the cache's \(slotCount)") }
        try exclusively { lengths[slot] = max(0, min(length, lengths[slot])) }
    }

    private func exclusively<R>(_ body: () throws -> R) throws -> R {
        lock.lock()
        guard !busy else {
            lock.unlock()
            throw InferenceError(.invalidInput, "the cache is in use by another forward pass")
        }
        busy = true
        lock.unlock()
        defer {
            lock.lock()
            busy = false
            lock.unlock()
        }
        return try body()
    }

    /// Throws unless every token is in the vocabulary and every slot's positions follow on from what it
    /// holds, in order and within the capacity.
    public func check(_ batch: ForwardBatch, vocabularySize: Int) throws {
        guard !batch.isEmpty else { throw InferenceError(.invalidInput, "no tokens to evaluate") }
        if let bad = batch.tokens.first(where: { $0 < 0 || $0 >= vocabularySize }) {
            throw InferenceError(.invalidInput, "token id \(bad) is outside the vocabulary of \(vocabularySize)")
        }
        var next = [Int: Int]()
        for index in 0..<batch.count {
            let slot = batch.slots[index]
            guard slot >= 0, slot < slotCount else { throw InferenceError(.invalidInput, "slot \(slot) is not one of the cache's \(slotCount)") }
            let expected = next[slot] ?? lengths[slot]
            guard batch.positions[index] == expected else {
                throw InferenceError(.invalidInput, "slot \(slot): position \(batch.positions[index]) does not follow position \(expected - 1)")
            }
            guard expected < capacity else {
                throw InferenceError(.contextOverflow, "slot \(slot): \(expected + 1) tokens do not fit the context of \(capacity)")
            }
            next[slot] = expected + 1
        }
    }

    /// Checks `batch`, runs it and records the new lengths: the logits of the tokens that want them.
    public func forward(_ batch: ForwardBatch, on model: any BackendModel) throws -> [Float] {
        try recording(batch, on: model) { try model.finiteLogits(batch, storage: storage) }
    }

    /// Like ``forward(_:on:)``, returning the greedy token of each row instead (``BackendModel/forwardGreedy(_:storage:)``).
    public func forwardGreedy(_ batch: ForwardBatch, on model: any BackendModel) throws -> [Int] {
        try recording(batch, on: model) { try model.forwardGreedy(batch, storage: storage) }
    }

    /// Like ``forward(_:on:)``, returning the `count` largest logits of each row with their tokens instead
    /// (``BackendModel/forwardTopLogits(_:storage:count:)``).
    public func forwardTopLogits(_ batch: ForwardBatch, on model: any BackendModel, count: Int) throws -> [TopLogits] {
        try recording(batch, on: model) { try model.forwardTopLogits(batch, storage: storage, count: count) }
    }

    /// Checks `batch`, runs `pass`, and records the new lengths if it returns (a pass that throws is not recorded).
    private func recording<R>(_ batch: ForwardBatch, on model: any BackendModel, _ pass: () throws -> R) throws -> R {
        try exclusively {
            try check(batch, vocabularySize: model.graph.configuration.vocabularySize)
            let result = try pass()
            for (slot, position) in zip(batch.slots, batch.positions) { lengths[slot] = max(lengths[slot], position + 1) }
            return result
        }
    }
}
