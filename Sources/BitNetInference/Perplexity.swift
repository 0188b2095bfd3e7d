import Foundation

/// The result of a perplexity run.
public struct PerplexityResult: Sendable {
    public var perplexity: Double
    /// Standard error of the perplexity estimate.
    public var error: Double
    /// Tokens scored.
    public var tokens: Int
    public var chunks: Int
}

extension BitNetModel {
    /// Perplexity as llama.cpp's `llama-perplexity` measures it: the text is cut into non-overlapping
    /// windows of `contextLength` tokens (the first replaced by BOS when the tokenizer uses one), and
    /// each window scores the predictions of its second half.
    public func perplexity(of tokens: [Int], contextLength: Int, beginningOfSequence: Int?,
                           progress: ((Int, Int) -> Void)? = nil) throws -> PerplexityResult {
        guard contextLength >= 4 else { throw InferenceError(.invalidInput, "the perplexity context must be at least 4 tokens") }
        let chunks = tokens.count / contextLength
        guard chunks > 0 else {
            throw InferenceError(.invalidInput, "the text has \(tokens.count) tokens; perplexity with --ctx \(contextLength) needs at least \(contextLength)")
        }
        let session = try InferenceSession(model: self, contextLength: contextLength)
        let first = contextLength / 2
        var sum = 0.0, sumOfSquares = 0.0, count = 0
        for chunk in 0..<chunks {
            var window = Array(tokens[chunk * contextLength..<(chunk + 1) * contextLength])
            if let beginningOfSequence { window[0] = beginningOfSequence }
            session.reset()
            let logits = try session.evaluate(window, allPositions: true)
            for position in first..<contextLength - 1 {
                let row = logits[position]
                let maximum = row.max()!
                let logSum = log(row.reduce(0.0) { $0 + exp(Double($1 - maximum)) }) + Double(maximum)
                let negativeLogLikelihood = logSum - Double(row[window[position + 1]])
                sum += negativeLogLikelihood
                sumOfSquares += negativeLogLikelihood * negativeLogLikelihood
                count += 1
            }
            progress?(chunk + 1, chunks)
        }
        let mean = sum / Double(count)
        let variance = max(0, sumOfSquares / Double(count) - mean * mean)
        let perplexity = exp(mean)
        let error = count > 1 ? perplexity * (variance / Double(count - 1)).squareRoot() : 0
        return PerplexityResult(perplexity: perplexity, error: error, tokens: count, chunks: chunks)
    }
}
