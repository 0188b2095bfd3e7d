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
