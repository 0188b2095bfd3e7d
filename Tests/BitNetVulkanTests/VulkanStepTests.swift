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

    /// Dispatches a pass of a few tokens of one sequence records (an attention op has two: store, then attend; a
    /// group of BitLinear ops one).
    static func dispatches(_ steps: [VulkanStep]) -> Int {
        steps.reduce(0) { count, step in
            switch step {
            case .op(.attention), .ropedAttention: count + 2
            case .chainedQuantize(let chain): count + (chain.bitLinears.isEmpty ? 2 : 1)
            default: count + 1
            }
        }
    }

    /// The row-quantize steps, chained or not.
    static func quantizeSteps(_ steps: [VulkanStep]) -> [RowQuantizeStep] {
        steps.compactMap {
            switch $0 {
            case .rowQuantize(let step): step
            case .chainedQuantize(let chain): chain.quantize
            default: nil
            }
        }
    }

    static func chains(_ steps: [VulkanStep]) -> [ChainedQuantizeStep] {
        steps.compactMap { if case .chainedQuantize(let chain) = $0 { chain } else { nil } }
    }

    /// BitNet b1.58 (sub-norms, relu²): per block the input norm (after the last block's residual add), the attention
    /// sub-norm, the feed-forward norm after the residual add, and the gated activation with its sub-norm each
    /// become one dispatch with their quantization, and the two RoPE dispatches fold into the attention op's:
    /// 22 dispatches a block become 13.
    @Test func bitNetBlocksFuseFourRunsEach() throws {
        let graph = try Self.graph(VulkanBackendTests.bundledModel)
        let layers = graph.configuration.layerCount
        let fused = VulkanStep.plan(graph, chaining: false).flatMap(Self.ungrouped), unfused = VulkanStep.plan(graph, fusing: false)
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

    /// Q, K and V step as one group (one dispatch where a pass takes the row shader).
    static func ungrouped(_ step: VulkanStep) -> [VulkanStep] {
        if case .bitLinears(let group) = step { group.map { .op($0.forwardOp) } } else { [step] }
    }

    /// Chained, a BitNet block's attention runs the sub-norm and quantization after it in the last workgroup of each
    /// token's heads, its O projection the residual add, norm and quantization after it, gate and up (one dispatch) the
    /// gated activation's, and down the next block's input norm's (not the last block's, whose final norm has no
    /// quantization); Q, K and V are one dispatch: in a decode step (which also stores the keys as it attends) 13
    /// dispatches a block become 5, one a stage. Taking the chains and groups apart gives the unchained plan back.
    @Test func bitLinearsAndAttentionChainTheQuantizationsAfterThem() throws {
        let graph = try Self.graph(VulkanBackendTests.bundledModel)
        let layers = graph.configuration.layerCount
        let chained = VulkanStep.plan(graph), unchained = VulkanStep.plan(graph, chaining: false).flatMap(Self.ungrouped)
        #expect(chained.filter { if case .bitLinears(let group) = $0 { group.count == 3 } else { false } }.count == layers)
        let chains = Self.chains(chained)
        #expect(chains.count == 4 * layers - 1)
        #expect(chains.map(\.counter) == Array(chains.indices))
        #expect(chains.filter { $0.bitLinears.count == 2 }.count == layers)
        #expect(chains.filter { if case .attention(let op, let rotary) = $0.producer { rotary != nil && op.output == $0.quantize.input } else { false } }.count == layers)
        #expect(chains.allSatisfy { chain in
            let read = [chain.quantize.input, chain.quantize.second]
            return chain.bitLinears.allSatisfy { read.contains($0.output) } && chain.quantize.norm != nil
        })
        #expect(Self.dispatches(unchained) - Self.dispatches(chained) == 7 * layers - 1)  // per block: 2 (Q, K, V), 1, 2 (gate, up), 1, 1
        let apart = chained.flatMap { step -> [VulkanStep] in
            guard case .chainedQuantize(let chain) = step else { return Self.ungrouped(step) }
            switch chain.producer {
            case .bitLinears(let bitLinears):
                return bitLinears.map { .op($0.forwardOp) } + [.rowQuantize(chain.quantize)]
            case .attention(let op, let rotary):
                return [rotary.map { .ropedAttention(op, $0) } ?? .op(.attention(op)), .rowQuantize(chain.quantize)]
            }
        }
        #expect(apart.map { String(describing: $0) } == unchained.map { String(describing: $0) })
        #expect(Self.chains(VulkanStep.plan(graph, fusing: false)).isEmpty)
    }

    /// Chained and unchained passes give the same logits, bit for bit: a 21-token prompt through the row shader (tiles
    /// off: six tiles of 4 tokens, each quantized by its own last workgroup, the last tile short), then decode steps,
    /// then steps of two sequences; the counters go back to 0 after every pass, or a later pass would never quantize.
    /// BitNet (relu²) with and without the integer dot product, and LLaMA-style (silu, no sub-norms) with an f16 cache.
    @Test(arguments: [(VulkanBackendTests.bundledModel, false, KeyValueCacheType.f32), (VulkanBackendTests.bundledModel, true, .f32), (silu, false, .f16)])
    func chainedQuantizationGivesTheUnchainedFloats(path: String, integerDotProduct: Bool, cacheType: KeyValueCacheType) throws {
        var results: [[[Float]]] = []
        for chaining in [true, false] {
            let backend = try VulkanTesting.backend(integerDotProduct: integerDotProduct, chainsQuantization: chaining, tilesPrompts: false)
            let model = try BitNetModel(path: path, backend: backend)
            let vocabulary = model.configuration.vocabularySize
            let prompt = (0..<21).map { ($0 * 7 + 3) % vocabulary }
            let session = try InferenceSession(model: model, contextLength: 48, cacheType: cacheType)
            var logits = try session.evaluate(prompt, allPositions: true)
            logits += try (0..<6).map { try session.evaluate([($0 * 11 + 5) % vocabulary])[0] }
            let cache = try model.makeCache(slots: 2, contextLength: 16, type: cacheType)
            for position in 0..<5 {
                var batch = ForwardBatch()
                for slot in 0..<2 { batch.append((position * 13 + slot * 29 + 1) % vocabulary, position: position, slot: slot, wantsLogits: true) }
                logits += try model.forward(batch, cache: cache)
            }
            results.append(logits)
            try VulkanTesting.expectNoValidationMessages(backend)
        }
        #expect(results[0].count == 37 && results[1].count == 37)
        let differing = zip(results[0], results[1]).enumerated().filter { $1.0.map(\.bitPattern) != $1.1.map(\.bitPattern) }.map(\.offset)
        #expect(differing.isEmpty, "rows whose floats differ (21 of a prompt, 6 decode steps, 5 steps of two sequences): \(differing)")
    }

    /// A decode step's attention stores the keys and values itself (its tokens are of different slots), rounded and
    /// rotated as kv_store.comp stores them: steps of two sequences, one past 256 positions (split attention, the block
    /// holding the position stores), then a prompt whose tiled attention reads what those steps stored, all give the
    /// floats of a pass recording every op alone, to the bit; f32 and f16 caches.
    @Test(arguments: [KeyValueCacheType.f32, .f16])
    func attentionStoresWhatTheKeyValueStoreWould(cache: KeyValueCacheType) throws {
        var results: [[[Float]]] = []
        for fusing in [true, false] {
            let backend = try VulkanTesting.backend(fusesOps: fusing, chainsQuantization: fusing)
            let model = try BitNetModel(path: VulkanBackendTests.bundledModel, backend: backend)
            let vocabulary = model.configuration.vocabularySize
            let kv = try model.makeCache(slots: 2, contextLength: 340, type: cache)
            _ = try model.forward(ForwardBatch(tokens: (0..<290).map { ($0 * 131 + 7) % vocabulary }, slot: 0, start: 0), cache: kv)
            _ = try model.forward(ForwardBatch(tokens: [5, 17, 42], slot: 1, start: 0), cache: kv)
            var logits: [[Float]] = []
            for step in 0..<8 {
                var batch = ForwardBatch()
                batch.append((step * 13 + 1) % vocabulary, position: 290 + step, slot: 0, wantsLogits: true)
                batch.append((step * 29 + 2) % vocabulary, position: 3 + step, slot: 1, wantsLogits: true)
                logits += try model.forward(batch, cache: kv)
            }
            for slot in 0..<2 {
                let start = slot == 0 ? 298 : 11
                logits += try model.forward(ForwardBatch(tokens: (0..<20).map { ($0 * 37 + slot) % vocabulary }, slot: slot, start: start, allLogits: true), cache: kv)
            }
            results.append(logits)
            try VulkanTesting.expectNoValidationMessages(backend)
        }
        #expect(results[0].count == 56 && results[1].count == 56)
        let differing = zip(results[0], results[1]).enumerated().filter { $1.0.map(\.bitPattern) != $1.1.map(\.bitPattern) }.map(\.offset)
        #expect(differing.isEmpty, "rows whose floats differ (16 of decode steps, then two prompts of 20): \(differing)")
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
        let steps = VulkanStep.plan(graph, chaining: false).flatMap(Self.ungrouped)
        let folded = steps.filter { if case .ropedAttention = $0 { true } else { false } }.count
        #expect(folded == graph.configuration.layerCount - 1)
        #expect(steps.filter { if case .op(.rope) = $0 { true } else { false } }.count == 2)
    }

    static let interleaved = Fixtures.repositoryRoot.appendingPathComponent("Tests/Fixtures/models/llama-ternary-packed-tq2_0.gguf").path

    /// A fused (and chained) pass and an unfused one give the same logits, bit for bit, in a batch and one token at a time: BitNet
    /// (relu², sub-norms), LLaMA-style (silu, RoPE in halves) and a LLaMA-arch GGUF (interleaved RoPE) with an f16 cache.
    @Test(arguments: [(VulkanBackendTests.bundledModel, KeyValueCacheType.f32), (silu, .f32), (interleaved, .f16)])
    func fusedPassesGiveTheUnfusedFloats(path: String, cacheType: KeyValueCacheType) throws {
        var results: [[[Float]]] = []
        for fusing in [true, false] {
            let backend = try VulkanTesting.backend(fusesOps: fusing, chainsQuantization: fusing)
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
