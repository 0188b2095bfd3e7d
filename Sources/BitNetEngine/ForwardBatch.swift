/// The tokens of one forward pass, in the style of llama.cpp's `llama_batch`: each token belongs to a
/// sequence (its cache slot) at a position. Tokens of several sequences may share a batch, so a server
/// decodes all its requests in one step; within a sequence, positions must follow on from what its slot
/// holds, in order.
public struct ForwardBatch: Sendable, Hashable {
    public private(set) var tokens: [Int] = []
    public private(set) var positions: [Int] = []
    public private(set) var slots: [Int] = []
    /// Whether each token's logits are returned.
    public private(set) var wantsLogits: [Bool] = []

    public init() {}

    /// The tokens of one sequence: `tokens` at positions `start…` of `slot`, logits for the last only,
    /// or for every token with `allLogits`.
    public init(tokens: [Int], slot: Int = 0, start: Int, allLogits: Bool = false) {
        for (offset, token) in tokens.enumerated() {
            append(token, position: start + offset, slot: slot, wantsLogits: allLogits || offset == tokens.count - 1)
        }
    }

    public mutating func append(_ token: Int, position: Int, slot: Int, wantsLogits: Bool) {
        tokens.append(token)
        positions.append(position)
        slots.append(slot)
        self.wantsLogits.append(wantsLogits)
    }

    public var count: Int { tokens.count }
    public var isEmpty: Bool { tokens.isEmpty }
    public var outputCount: Int { wantsLogits.lazy.filter { $0 }.count }
}
