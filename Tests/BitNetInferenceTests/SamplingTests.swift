import BitNetFormats
@testable import BitNetInference
import Foundation
import TestSupport
import Testing

@Suite struct SamplingTests {
    let logits: [Float] = [0.1, 2.0, -1.0, 1.9, 0.5, 1.0]

    @Test func greedyIsArgmax() {
        var sampler = Sampler(.greedy)
        #expect(sampler.sample(logits, history: []) == 1)
        var topOne = SamplingParameters()
        topOne.topK = 1
        var sampler2 = Sampler(topOne)
        #expect((0..<20).allSatisfy { _ in sampler2.sample(logits, history: []) == 1 })
    }

    @Test func sameSeedSameDraws() {
        var parameters = SamplingParameters()
        parameters.temperature = 1.5
        parameters.topK = 0
        parameters.topP = 1
        parameters.minP = 0
        var a = Sampler(parameters), b = Sampler(parameters)
        let first = (0..<50).map { _ in a.sample(logits, history: []) }
        #expect(first == (0..<50).map { _ in b.sample(logits, history: []) })
        #expect(Set(first).count >= 4, "a hot, unfiltered sampler visits most tokens")
        parameters.seed = 99
        var c = Sampler(parameters)
        #expect((0..<50).map { _ in c.sample(logits, history: []) } != first)
    }

    @Test func filtersKeepOnlyLikelyTokens() {
        var parameters = SamplingParameters()
        parameters.temperature = 5
        parameters.topK = 2
        parameters.minP = 0
        var sampler = Sampler(parameters)
        #expect(Set((0..<100).map { _ in sampler.sample(logits, history: []) }) == [1, 3])
        parameters.topK = 0
        parameters.minP = 0.5  // p(x) ≥ 0.5 · p(best): logits within ln 2 of the best
        var minP = Sampler(parameters)
        #expect(Set((0..<100).map { _ in minP.sample(logits, history: []) }) == [1, 3])
        parameters.minP = 0
        parameters.topP = 0.3  // the best token alone carries more than 30 %
        var topP = Sampler(parameters)
        #expect(Set((0..<50).map { _ in topP.sample(logits, history: []) }) == [1])
    }

    @Test func penaltiesDiscourageRepeats() {
        var parameters = SamplingParameters.greedy
        parameters.repetitionPenalty = 1.5
        var sampler = Sampler(parameters)
        #expect(sampler.sample(logits, history: [1]) == 3)  // 2.0 / 1.5 < 1.9
        parameters.repetitionPenalty = 1
        parameters.presencePenalty = 0.05
        parameters.frequencyPenalty = 0.03
        var counted = Sampler(parameters)
        #expect(counted.sample(logits, history: [1]) == 1)  // 2.0 − 0.08 > 1.9
        #expect(counted.sample(logits, history: [1, 1]) == 3)  // 2.0 − 0.11 < 1.9
        parameters.penaltyWindow = 1
        var windowed = Sampler(parameters)
        #expect(windowed.sample(logits, history: [1, 1, 5]) == 1)  // the repeats fell out of the window
    }

    @Test func invalidSettingsAreNamed() {
        var parameters = SamplingParameters()
        parameters.topP = 0
        let error = #expect(throws: InferenceError.self) { try parameters.validate() }
        #expect(error?.message.contains("top-p") == true)
        parameters = SamplingParameters()
        parameters.temperature = -1
        #expect(throws: InferenceError.self) { try parameters.validate() }
    }

    @Test func partialSelectionEqualsAFullSort() {
        var generator = SeededGenerator(seed: 11)
        // Few distinct values, so ties are everywhere.
        let logits = (0..<5000).map { _ in Float(Int.random(in: 0..<200, using: &generator)) / 8 }
        let sorted = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        for k in [0, 1, 2, 40, 999, 4999, 5000, 6000] {
            #expect(LogitRows.largest(k, of: logits) == Array(sorted.prefix(k)), "k = \(k)")
        }
    }

    /// Drawing from the k largest logits a backend found gives the token drawing from the whole row gives, draw for
    /// draw from the same seed: top-k of 1, 5, 40 and more than the vocabulary, rows full of equal logits, and more
    /// candidates than asked for (a scheduler step finds as many as its most demanding request); greedy from one.
    @Test func drawingFromTheTopLogitsIsDrawingFromTheRow() {
        var rows = Xoshiro256(seed: 7)
        for topK in [1, 5, 40, 300] {
            var parameters = SamplingParameters()
            parameters.topK = topK
            parameters.seed = UInt64(topK)
            #expect(parameters.samplesFromTopLogits)
            var fromRow = Sampler(parameters), fromTop = Sampler(parameters), fromMore = Sampler(parameters)
            for _ in 0..<200 {
                let logits = (0..<257).map { _ in Float(Int(rows.next() % 64)) / 8 - 4 }  // 64 values: many ties
                let expected = fromRow.sample(logits, history: [])
                #expect(fromTop.sample(LogitRows.topLogits(logits, vocabularySize: 257, count: topK)[0]) == expected)
                #expect(fromMore.sample(LogitRows.topLogits(logits, vocabularySize: 257, count: topK + 7)[0]) == expected)
            }
        }
        var greedy = Sampler(.greedy)
        let logits: [Float] = [1, 3, 2, 3]
        #expect(greedy.sample(LogitRows.topLogits(logits, vocabularySize: 4, count: 1)[0]) == greedy.sample(logits, history: []))
        var penalized = SamplingParameters()
        penalized.repetitionPenalty = 1.1
        var all = SamplingParameters()
        all.topK = 0
        #expect(!penalized.samplesFromTopLogits && !all.samplesFromTopLogits && !SamplingParameters.greedy.samplesFromTopLogits)
    }
}
