import BitNetEngine
import Foundation

/// One sequence on a model: its own KV cache, preallocated to `contextLength` positions, and the tokens
/// seen so far.
///
/// Not thread-safe; use one session per conversation (many sessions may share a model).
public final class InferenceSession {
    public let model: BitNetModel
    public let contextLength: Int
    private let cache: KeyValueCache
    /// The tokens processed so far, in order.
    public private(set) var tokens: [Int] = []

    /// - Parameters:
    ///   - contextLength: positions the KV cache holds (default: the model's, at most 4096).
    ///   - cacheType: f32 (exact) or f16 (half the memory).
    public init(model: BitNetModel, contextLength: Int? = nil, cacheType: KeyValueCacheType = .f32) throws {
        self.model = model
        cache = try model.makeCache(slots: 1, contextLength: contextLength, type: cacheType)
        self.contextLength = cache.capacity
    }

    /// Bytes held by the KV cache.
    public var cacheBytes: Int { cache.byteCount }

    /// Positions still free in the context.
    public var remainingContext: Int { contextLength - tokens.count }

    private func batch(_ newTokens: [Int], allPositions: Bool) -> ForwardBatch {
        ForwardBatch(tokens: newTokens, slot: 0, start: tokens.count, allLogits: allPositions)
    }

    /// Processes `newTokens` as one batch, appending them to the context, and returns logits: one row per
    /// new token with `allPositions`, else only the last row. Blocks the calling thread.
    public func evaluate(_ newTokens: [Int], allPositions: Bool = false) throws -> [[Float]] {
        let logits = try model.forward(batch(newTokens, allPositions: allPositions), cache: cache)
        tokens += newTokens
        return logits
    }

    /// Like ``evaluate(_:allPositions:)``, computed outside Swift's cooperative pool.
    public func evaluate(_ newTokens: [Int], allPositions: Bool = false) async throws -> [[Float]] {
        let logits = try await model.forward(batch(newTokens, allPositions: allPositions), cache: cache)
        tokens += newTokens
        return logits
    }

    /// Processes `newTokens` as one batch, appending them to the context, and returns the most likely next token
    /// (the largest logit of the last, the lowest id among equal ones) without reading the logits back from the
    /// backend. Blocks the calling thread.
    public func evaluateGreedy(_ newTokens: [Int]) throws -> Int {
        let next = try model.forwardGreedy(batch(newTokens, allPositions: false), cache: cache)
        tokens += newTokens
        return next[0]
    }

    /// Like ``evaluateGreedy(_:)``, computed outside Swift's cooperative pool.
    public func evaluateGreedy(_ newTokens: [Int]) async throws -> Int {
        let next = try await model.forwardGreedy(batch(newTokens, allPositions: false), cache: cache)
        tokens += newTokens
        return next[0]
    }

    /// Processes `newTokens` as one batch, appending them to the context, and returns the `count` largest logits of
    /// the last with their tokens (what top-k sampling needs), without reading the other logits back from the
    /// backend. Blocks the calling thread.
    public func evaluateTopLogits(_ newTokens: [Int], count: Int) throws -> TopLogits {
        let top = try model.forwardTopLogits(batch(newTokens, allPositions: false), cache: cache, count: count)
        tokens += newTokens
        return top[0]
    }

    /// Like ``evaluateTopLogits(_:count:)``, computed outside Swift's cooperative pool.
    public func evaluateTopLogits(_ newTokens: [Int], count: Int) async throws -> TopLogits {
        let top = try await model.forwardTopLogits(batch(newTokens, allPositions: false), cache: cache, count: count)
        tokens += newTokens
        return top[0]
    }

    /// Forgets everything after the first `count` tokens (the cache keeps their keys and values).
    public func truncate(to count: Int) {
        let kept = max(0, min(count, tokens.count))
        tokens.removeLast(tokens.count - kept)
        try? cache.truncate(slot: 0, to: kept)  // slot 0 exists; a session runs one pass at a time
    }

    /// Empties the context.
    public func reset() { truncate(to: 0) }
}
