import BitNetEngine
import BitNetInference
import BitNetModels
@testable import BitNetVulkan
import Foundation
import TestSupport
import Testing

/// The Vulkan backend's fusion of the ops before a quantization: which runs fuse, which must not, and that a fused
/// pass gives the unfused pass's floats to the bit.
@Suite struct VulkanStepTests {
    static func graph(_ path: String) throws -> ForwardGraph {
        let source = try WeightSource(path: path)
        return try source.architecture.buildGraph(source)
    }

    static let silu = Fixtures.repositoryRoot.appendingPathComponent("Tests/Fixtures/models/llama-ternary-packed").path

    /// Dispatches a pass records (an attention op has two: store, then attend).
    static func dispatches(_ steps: [VulkanStep]) -> Int {
        steps.reduce(0) { count, step in
            switch step {
            case .op(.attention), .ropedAttention: count + 2
            default: count + 1
            }
        }
    }

    static func quantizeSteps(_ steps: [VulkanStep]) -> [RowQuantizeStep] {
        steps.compactMap { if case .rowQuantize(let step) = $0 { step } else { nil } }
    }

    /// BitNet b1.58 (sub-norms, relu²): per block the input norm (after the last block's residual add), the attention
    /// sub-norm, the feed-forward norm after the residual add, and the gated activation with its sub-norm each
    /// become one dispatch with their quantization, and the two RoPE dispatches fold into the attention op's:
    /// 22 dispatches a block become 13.
    @Test func bitNetBlocksFuseFourRunsEach() throws {
        let graph = try Self.graph(VulkanBackendTests.bundledModel)
        let layers = graph.configuration.layerCount
        let fused = VulkanStep.plan(graph), unfused = VulkanStep.plan(graph, fusing: false)
        let steps = Self.quantizeSteps(fused)
        #expect(steps.count == 4 * layers)
        #expect(steps.allSatisfy { $0.norm != nil })
        #expect(steps.filter { if case .residual = $0.prologue { true } else { false } }.count == 2 * layers - 1)
        #expect(steps.filter { if case .gated(.squaredReLU, _) = $0.prologue { true } else { false } }.count == layers)
        #expect(Self.quantizeSteps(unfused).allSatisfy { $0.norm == nil && $0.prologue == .none })
        #expect(Self.dispatches(unfused) - Self.dispatches(fused) == 9 * layers - 1)  // the first block's input norm has no add before it
        #expect(fused.filter { if case .ropedAttention = $0 { true } else { false } }.count == layers)
        #expect(!fused.contains { if case .op(.rope) = $0 { true } else { false } })
        #expect(Self.dispatches(unfused) == Self.dispatches(graph.ops.map(VulkanStep.op)))
    }

    /// LLaMA-style blocks without sub-norms (silu): the gated activation fuses with the quantization directly.
    @Test func gatedActivationsFuseWithoutASubNorm() throws {
        let graph = try Self.graph(Self.silu)
        let steps = Self.quantizeSteps(VulkanStep.plan(graph))
        let gated = steps.filter { if case .gated(.silu, _) = $0.prologue { true } else { false } }
        #expect(gated.count == graph.configuration.layerCount)
        #expect(gated.allSatisfy { $0.norm == nil })
    }

    /// A norm's or a gated activation's output that a later op still reads is written, so its run does not fuse.
    @Test func outputsReadLaterAreNotFused() throws {
        var graph = try Self.graph(VulkanBackendTests.bundledModel)
        let quantizes = graph.ops.indices.filter { if case .quantize = graph.ops[$0] { true } else { false } }
        // The first block's input norm: read again after its quantization.
        guard case .quantize(let normalized, _, _, _) = graph.ops[quantizes[0]],
              case .gatedActivation(_, _, _, let gated) = graph.ops[quantizes[3] - 2] else {
            Issue.record("unexpected block layout")
            return
        }
        let spare = graph.buffers.indices.first { graph.buffers[$0].width == graph[normalized].width && $0 != normalized.index }!
        graph.ops.insert(.add(gated, into: ActivationID(index: spare)), at: quantizes[3] + 1)
        graph.ops.insert(.add(normalized, into: ActivationID(index: spare)), at: quantizes[0] + 1)
        let steps = VulkanStep.plan(graph)
        let first = Self.quantizeSteps(steps)
        #expect(first[0].norm == nil && first[0].prologue == .none, "the first norm's output is read after the quantization")
        #expect(first[3].norm != nil && first[3].prologue == .none, "the gated output is read after the sub-norm: only norm and quantization fuse")
        #expect(first[1].norm != nil && first[2].norm != nil)
        #expect(steps.contains { if case .op(.gatedActivation(_, _, _, let output)) = $0 { output == gated } else { false } })
        #expect(steps.contains { if case .op(.rmsNorm(_, _, _, let output)) = $0 { output == normalized } else { false } })
    }

    /// Rotated queries or keys that a later op reads stay in memory: their RoPE runs as its own dispatch.
    @Test func rotatedVectorsReadLaterAreNotFolded() throws {
        var graph = try Self.graph(VulkanBackendTests.bundledModel)
        let attentionIndex = try #require(graph.ops.firstIndex { if case .attention = $0 { true } else { false } })
        guard case .attention(let attention) = graph.ops[attentionIndex] else { return }
        graph.ops.insert(.add(attention.query, into: attention.output), at: attentionIndex + 1)
        let steps = VulkanStep.plan(graph)
        let folded = steps.filter { if case .ropedAttention = $0 { true } else { false } }.count
        #expect(folded == graph.configuration.layerCount - 1)
        #expect(steps.filter { if case .op(.rope) = $0 { true } else { false } }.count == 2)
    }

    static let interleaved = Fixtures.repositoryRoot.appendingPathComponent("Tests/Fixtures/models/llama-ternary-packed-tq2_0.gguf").path

    /// A fused pass and an unfused one give the same logits, bit for bit, in a batch and one token at a time: BitNet
    /// (relu², sub-norms), LLaMA-style (silu, RoPE in halves) and a LLaMA-arch GGUF (interleaved RoPE) with an f16 cache.
    @Test(arguments: [(VulkanBackendTests.bundledModel, KeyValueCacheType.f32), (silu, .f32), (interleaved, .f16)])
    func fusedPassesGiveTheUnfusedFloats(path: String, cacheType: KeyValueCacheType) throws {
        var results: [[[Float]]] = []
        for fusing in [true, false] {
            let backend = try VulkanTesting.backend(fusesOps: fusing)
            let model = try BitNetModel(path: path, backend: backend)
            let tokens = Array(1...12)
            var logits = try InferenceSession(model: model, contextLength: 32, cacheType: cacheType).evaluate(tokens, allPositions: true)
            let session = try InferenceSession(model: model, contextLength: 32, cacheType: cacheType)
            logits += try tokens.map { try session.evaluate([$0])[0] }
            results.append(logits)
            try VulkanTesting.expectNoValidationMessages(backend)
        }
        #expect(results[0].count == 24 && results[1].count == 24)
        let differing = zip(results[0], results[1]).enumerated().filter { $1.0.map(\.bitPattern) != $1.1.map(\.bitPattern) }.map(\.offset)
        #expect(differing.isEmpty, "rows whose floats differ (12 in a batch, then 12 one token at a time): \(differing)")
    }
}
