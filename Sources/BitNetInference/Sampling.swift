import BitNetEngine
import Foundation

/// Chooses the next token from logits.
public protocol TokenSampler {
    /// Picks a token given the logits of the last position and the tokens so far.
    mutating func sample(_ logits: [Float], history: [Int]) -> Int
}

/// Sampling settings, with llama.cpp's defaults and order: penalties → top-k → top-p → min-p →
/// temperature → a draw from a seeded generator. A temperature of 0 is greedy.
public struct SamplingParameters: Sendable, Hashable {
    public var temperature: Float = 0.8
    /// Keep the k most likely tokens (0 = all).
    public var topK: Int = 40
    /// Keep the smallest set whose probability reaches p (1 = all).
    public var topP: Float = 0.95
    /// Drop tokens less likely than `minP` × the most likely one (0 = none).
    public var minP: Float = 0.05
    /// Divides positive logits (multiplies negative ones) of recently seen tokens (1 = off).
    public var repetitionPenalty: Float = 1.0
    /// Subtracted once from the logit of every token seen in the window.
    public var presencePenalty: Float = 0
    /// Subtracted per occurrence in the window.
    public var frequencyPenalty: Float = 0
    /// How many recent tokens the penalties look at.
    public var penaltyWindow: Int = 64
    /// The same seed gives the same text.
    public var seed: UInt64 = 0x5EED

    public init() {}

    /// Always the most likely token.
    public static var greedy: SamplingParameters {
        var parameters = SamplingParameters()
        parameters.temperature = 0
        return parameters
    }

    /// Greedy with no penalty in effect: the choice depends on the logits alone, so the backend may make it where
    /// they are (``InferenceSession/evaluateGreedy(_:)``).
    public var isGreedyWithoutPenalties: Bool { temperature == 0 && penalizesNothing }

    /// Top-k sampling (k > 0) with no penalty in effect: the draw needs the k largest logits alone, so the backend may
    /// find them where the logits are (``InferenceSession/evaluateTopLogits(_:count:)``) and ``Sampler/sample(_:)``
    /// draws from them.
    public var samplesFromTopLogits: Bool { temperature > 0 && topK > 0 && penalizesNothing }

    private var penalizesNothing: Bool {
        penaltyWindow == 0 || (repetitionPenalty == 1 && presencePenalty == 0 && frequencyPenalty == 0)
    }

    /// Checks ranges; throws ``InferenceError`` with code `invalidInput` naming the bad setting.
    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws {
            if !ok { throw InferenceError(.invalidInput, message) }
        }
        try check(temperature >= 0 && temperature.isFinite, "temperature must be ≥ 0, got \(temperature)")
        try check(topK >= 0, "top-k must be ≥ 0, got \(topK)")
        try check(topP > 0 && topP <= 1, "top-p must be in (0, 1], got \(topP)")
        try check(minP >= 0 && minP < 1, "min-p must be in [0, 1), got \(minP)")
        try check(repetitionPenalty > 0 && repetitionPenalty.isFinite, "repeat penalty must be > 0, got \(repetitionPenalty)")
        try check(penaltyWindow >= 0, "penalty window must be ≥ 0, got \(penaltyWindow)")
    }
}

/// The standard sampler chain over ``SamplingParameters``.
public struct Sampler: TokenSampler {
    public let parameters: SamplingParameters
    private var generator: Xoshiro256

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        generator = Xoshiro256(seed: parameters.seed)
    }

    public mutating func sample(_ logits: [Float], history: [Int]) -> Int {
        var logits = logits
        applyPenalties(&logits, history: history)
        if parameters.temperature == 0 {
            return logits.withUnsafeBufferPointer(LogitRows.greedyToken)
        }
        // Candidates sorted by logit, most likely first: the top k picked without sorting the vocabulary.
        let candidates = LogitRows.largest(parameters.topK > 0 ? parameters.topK : logits.count, of: logits)
        return draw(among: candidates, logits: candidates.map { logits[$0] })
    }

    /// The token ``sample(_:history:)`` gives for a row whose largest logits the backend chose: `top` holds at least
    /// the `topK` largest (``SamplingParameters/samplesFromTopLogits``), or one for greedy decoding without penalties;
    /// with a top-k of 0, all of `top` are the candidates.
    public mutating func sample(_ top: TopLogits) -> Int {
        if parameters.temperature == 0 { return top.tokens[0] }
        let count = parameters.topK > 0 ? min(parameters.topK, top.tokens.count) : top.tokens.count
        return draw(among: Array(top.tokens.prefix(count)), logits: Array(top.logits.prefix(count)))
    }

    /// Top-p, min-p, temperature and the draw, over candidates sorted by logit, most likely first.
    private mutating func draw(among candidates: [Int], logits: [Float]) -> Int {
        var candidates = candidates
        var probabilities = softmax(logits)
        if parameters.topP < 1 {
            var total: Float = 0
            var keep = candidates.count
            for (index, probability) in probabilities.enumerated() {
                total += probability
                if total >= parameters.topP { keep = index + 1; break }
            }
            candidates = Array(candidates.prefix(keep))
            probabilities = Array(probabilities.prefix(keep))
        }
        if parameters.minP > 0, let top = probabilities.first {
            let keep = max(1, probabilities.prefix { $0 >= parameters.minP * top }.count)
            candidates = Array(candidates.prefix(keep))
        }
        let tempered = softmax(logits.prefix(candidates.count).map { $0 / parameters.temperature })
        let draw = Float(generator.next() >> 40) / Float(1 << 24)
        var cumulative: Float = 0
        for (index, probability) in tempered.enumerated() {
            cumulative += probability
            if draw < cumulative { return candidates[index] }
        }
        return candidates.last!
    }

    private func applyPenalties(_ logits: inout [Float], history: [Int]) {
        let p = parameters
        guard p.penaltyWindow > 0, p.repetitionPenalty != 1 || p.presencePenalty != 0 || p.frequencyPenalty != 0 else { return }
        var counts: [Int: Int] = [:]
        for token in history.suffix(p.penaltyWindow) where token >= 0 && token < logits.count { counts[token, default: 0] += 1 }
        for (token, count) in counts {
            logits[token] = logits[token] > 0 ? logits[token] / p.repetitionPenalty : logits[token] * p.repetitionPenalty
            logits[token] -= Float(count) * p.frequencyPenalty + p.presencePenalty
        }
    }

    private func softmax(_ values: [Float]) -> [Float] {
        guard let maximum = values.max() else { return [] }
        let exponentials = values.map { expf($0 - maximum) }
        let total = exponentials.reduce(0, +)
        return exponentials.map { $0 / total }
    }
}

/// xoshiro256** seeded by SplitMix64: small, fast, and the same sequence on every platform.
public struct Xoshiro256: RandomNumberGenerator, Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var splitMix = seed
        func nextSplitMix() -> UInt64 {
            splitMix &+= 0x9E37_79B9_7F4A_7C15
            var z = splitMix
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (nextSplitMix(), nextSplitMix(), nextSplitMix(), nextSplitMix())
    }

    public mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }
}

