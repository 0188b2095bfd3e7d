/// What every backend and sampler does with rows of logits, in one place.
public enum LogitRows {
    /// The index of the largest value, the lowest among equal ones (greedy decoding's token). `row` holds finite
    /// values (see ``checkFinite(_:vocabularySize:)``); it must not be empty.
    public static func greedyToken(_ row: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for index in row.indices.dropFirst() where row[index] > row[best] { best = index }
        return best
    }

    /// ``greedyToken(_:)`` of each row of `vocabularySize` logits.
    public static func greedyTokens(_ logits: [Float], vocabularySize: Int) -> [Int] {
        logits.withUnsafeBufferPointer { logits in
            stride(from: 0, to: logits.count, by: vocabularySize).map {
                greedyToken(UnsafeBufferPointer(rebasing: logits[$0..<$0 + vocabularySize]))
            }
        }
    }

    /// The indices of the `count` largest values of `row`, largest first, the lower index first among equal ones (the
    /// candidates of top-k sampling). A heap of the best `count` seen so far: O(n log count) instead of sorting all n.
    public static func largest(_ count: Int, of row: UnsafeBufferPointer<Float>) -> [Int] {
        let k = min(count, row.count)
        guard k > 0 else { return [] }
        guard k < row.count else {
            return row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
        }
        // `a` ranks below `b`: a smaller value, or an equal value at a higher index.
        func below(_ a: Int, _ b: Int) -> Bool { row[a] < row[b] || (row[a] == row[b] && a > b) }
        var heap = [Int]()  // a min-heap under `below`: heap[0] is the worst of the best k
        heap.reserveCapacity(k)
        func siftDown(_ start: Int) {
            var parent = start
            while true {
                let left = 2 * parent + 1, right = left + 1
                var lowest = parent
                if left < heap.count, below(heap[left], heap[lowest]) { lowest = left }
                if right < heap.count, below(heap[right], heap[lowest]) { lowest = right }
                if lowest == parent { return }
                heap.swapAt(parent, lowest)
                parent = lowest
            }
        }
        for index in 0..<k {
            heap.append(index)
            var child = heap.count - 1
            while child > 0, below(heap[child], heap[(child - 1) / 2]) {
                heap.swapAt(child, (child - 1) / 2)
                child = (child - 1) / 2
            }
        }
        // A later index ranks below an equal value already held, so only a larger value than the worst held gets in:
        // one comparison with a value kept at hand for almost every index.
        var worst = row[heap[0]]
        for index in k..<row.count where row[index] > worst {
            heap[0] = index
            siftDown(0)
            worst = row[heap[0]]
        }
        return heap.sorted { below($1, $0) }
    }

    /// ``largest(_:of:)`` of an array.
    public static func largest(_ count: Int, of row: [Float]) -> [Int] { row.withUnsafeBufferPointer { largest(count, of: $0) } }

    /// The `count` largest logits of each row of `vocabularySize` (finite: ``checkFinite(_:vocabularySize:)``).
    public static func topLogits(_ logits: [Float], vocabularySize: Int, count: Int) -> [TopLogits] {
        logits.withUnsafeBufferPointer { logits in
            stride(from: 0, to: logits.count, by: vocabularySize).map { start in
                let row = UnsafeBufferPointer(rebasing: logits[start..<start + vocabularySize])
                let tokens = largest(count, of: row)
                return TopLogits(tokens: tokens, logits: tokens.map { row[$0] })
            }
        }
    }

    /// Throws ``InferenceError`` `nonFiniteResult` naming the first non-finite logit: a NaN would otherwise come
    /// out as arbitrary text.
    public static func checkFinite(_ logits: [Float], vocabularySize: Int) throws {
        if let bad = logits.firstIndex(where: { !$0.isFinite }) {
            throw nonFinite(logits[bad], token: bad % vocabularySize)
        }
    }

    /// The error for a non-finite logit `value` of `token`.
    public static func nonFinite(_ value: Float, token: Int) -> InferenceError {
        InferenceError(.nonFiniteResult, "the model computed a non-finite logit (\(value) for token \(token)): the file's weights hold NaN or infinite values, or overflow float32")
    }
}

/// The largest logits of a row and their tokens, largest first, the lower token first among equal logits
/// (``LogitRows/largest(_:of:)``): what top-k sampling needs of a row, read back instead of the whole vocabulary.
public struct TopLogits: Sendable, Equatable {
    public var tokens: [Int]
    public var logits: [Float]

    public init(tokens: [Int], logits: [Float]) {
        self.tokens = tokens
        self.logits = logits
    }
}
