@testable import BitNetCPU
import BitNetEngine
import BitNetModels
import Foundation
import Testing

/// Ops of the graph vocabulary that no architecture uses yet (GELU, pooling), run by the CPU backend on a
/// hand-built graph and compared with their formulas.
@Suite struct CPUOpTests {
    /// A graph over a 4-row f32 embedding table of width 3: embed → `ops`, reading `result`.
    func run(_ ops: (ActivationID) -> (ops: [ForwardOp], buffers: [ActivationBuffer], result: ActivationID), batch: ForwardBatch) throws -> [Float] {
        let table: [Float] = [0.5, -1, 2, -0.25, 0, 1.5, 3, -2, 0.75, 1, 1, -1]
        let configuration = ModelConfiguration(architecture: .bitnetB158, vocabularySize: 4, hiddenSize: 3, intermediateSize: 3, layerCount: 1,
                                               headCount: 1, keyValueHeadCount: 1, headDimension: 2, rmsNormEpsilon: 1e-5, ropeTheta: 10_000,
                                               rotaryLayout: .halves, contextLength: 8)
        let weight = try WeightTensor(name: "table", encoding: .f32, rows: 4, columns: 3, bytes: .owned(table.withUnsafeBytes(Array.init)))
        let hidden = ActivationID(index: 0)
        let (more, buffers, result) = ops(hidden)
        let graph = ForwardGraph(configuration: configuration, weights: [weight],
                                 buffers: [ActivationBuffer(name: "hidden", width: 3, rows: .tokens, element: .float32)] + buffers,
                                 ops: [.embed(table: WeightID(index: 0), output: hidden)] + more, logits: result)
        let model = try CPUBackend(threads: 1).load(graph)
        let storage = try model.makeCacheStorage(slots: 2, capacity: 8, type: .f32)
        return try model.forward(batch, storage: storage)
    }

    @Test func geluGateMatchesTheTanhFormula() throws {
        let values = try run({ hidden in
            let output = ActivationID(index: 1)
            return ([.gatedActivation(.gelu, gate: hidden, up: hidden, output: output)],
                    [ActivationBuffer(name: "gated", width: 3, rows: .tokens, element: .float32)], output)
        }, batch: ForwardBatch(tokens: [0, 2], start: 0))
        let inputs: [Float] = [0.5, -1, 2, 3, -2, 0.75]
        for (value, x) in zip(values, inputs) {
            let gelu = 0.5 * Double(x) * (1 + tanh(0.7978845608 * (Double(x) + 0.044715 * pow(Double(x), 3))))
            #expect(abs(Double(value) - gelu * Double(x)) < 1e-6, "gelu(\(x))·\(x)")
        }
    }

    @Test func poolingGivesOneRowPerSequence() throws {
        var batch = ForwardBatch()
        batch.append(0, position: 0, slot: 1, wantsLogits: false)
        batch.append(1, position: 0, slot: 0, wantsLogits: false)
        batch.append(2, position: 1, slot: 1, wantsLogits: false)
        batch.append(3, position: 1, slot: 0, wantsLogits: true)
        for pooling in [Pooling.mean, .last] {
            let values = try run({ hidden in
                let output = ActivationID(index: 1)
                return ([.pool(pooling, input: hidden, output: output)], [ActivationBuffer(name: "pooled", width: 3, rows: .sequences, element: .float32)], output)
            }, batch: batch)
            // Sequences in order of first appearance: slot 1 (rows 0 and 2), then slot 0 (rows 1 and 3).
            let expected: [Float] = pooling == .mean ? [1.75, -1.5, 1.375, 0.375, 0.5, 0.25] : [3, -2, 0.75, 1, 1, -1]
            #expect(values == expected, "\(pooling)")
        }
    }
}
