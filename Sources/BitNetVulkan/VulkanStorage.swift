import BitNetEngine
import BitNetModels
import CBitNetVulkan
import Foundation

/// A KV cache on the device with everything a pass needs, allocated once: one buffer of keys then values per
/// layer (f32, or f16 two to a word), the activation buffers sized for ``VulkanModel/maxTokens`` tokens, the
/// rotary cos/sin table, the per-pass inputs (host-visible), host-visible buffers the logits or the greedy tokens are
/// read back from, and a command stream with every op's descriptor sets.
final class VulkanKeyValueStorage: KeyValueStorage, @unchecked Sendable {
    let model: VulkanModel
    let slots: Int
    let capacity: Int
    let width: Int
    let type: KeyValueCacheType
    let stream: OpaquePointer
    /// By graph buffer index.
    let activations: [VulkanBuffer]
    /// By layer.
    let layers: [VulkanBuffer]
    let rotaryTables: [RotaryEmbedding: VulkanBuffer]
    /// Tokens, positions, slots and the rows whose logits are wanted, ``VulkanModel/maxTokens`` each.
    let inputs: VulkanBuffer
    /// Host-visible: the logits, copied from their device buffer when a pass returns them.
    let logitsReadback: VulkanBuffer
    /// Host-visible: three words a logit row when a pass returns greedy tokens (`argmax.comp`).
    let greedyChoices: VulkanBuffer
    /// The argmax dispatch's descriptor set: the logits, then ``greedyChoices``.
    private(set) var argmaxBinding: bitnet_vk_binding = 0
    /// The most largest logits a row the device finds (more: the host picks them from the logits).
    static let maxTopCount = 64
    /// Columns of each slice a row of logits is sorted in by `top_logits.comp` (``VulkanBackend/topSliceColumns`` when
    /// the cache was made), and how many slices a row has.
    let topSliceColumns: Int
    let topSlices: Int
    /// Each (row, slice)'s best ``maxTopCount`` (value bits, column) pairs.
    let topPartials: VulkanBuffer
    /// Host-visible: per row, the first non-finite column and its bits, then (column, value bits) pairs.
    let topResults: VulkanBuffer
    var topResultWords: Int { 2 + 2 * Self.maxTopCount }
    private(set) var topLogitsBinding: bitnet_vk_binding = 0, topLogitsMergeBinding: bitnet_vk_binding = 0
    /// A split decode's attention: positions per block, blocks at most, and each (token, head, block)'s partial.
    let attentionBlockPositions: Int
    let attentionBlocks: Int
    let attentionPartials: VulkanBuffer
    /// The most tokens a pass splits its attention for (more: there are workgroups enough without).
    static let splitMaximumTokens = 16
    /// Zeroed at creation: the workgroups each chained step's dispatches have finished, per tile of 4 tokens
    /// (BitLinear) or per token (attention), ``chainCounterStride`` a step; the last workgroup sets its count back to 0.
    let chainCounters: VulkanBuffer
    var chainCounterStride: Int { model.maxTokens }
    /// The descriptor sets of each of the model's steps (an attention op has four: store, attend, attend by blocks,
    /// combine the blocks).
    private(set) var bindings: [[bitnet_vk_binding]] = []
    /// The shape of the pass the stream's command buffer holds, once submitted (nil: none, or being recorded).
    var recordedShape: VulkanPass.Shape?
    /// Whether the stream can take timestamps (for ``VulkanBackend/profiling``), and how many a pass.
    private(set) var timestamps = false
    private(set) var timestampCapacity = 0
    let byteCount: Int

    init(model: VulkanModel, slots: Int, capacity: Int, type: KeyValueCacheType) throws {
        let graph = model.graph
        let context = model.backend.context
        let (layerCount, width) = graph.cacheShape
        guard type == .f32 || width % 2 == 0 else { throw VulkanError(code: .unsupported, message: "an f16 cache needs an even key width, not \(width)") }
        self.model = model
        self.slots = slots
        self.capacity = capacity
        self.width = width
        self.type = type

        let layerBytes = 2 * slots * capacity * width * type.byteWidth
        layers = try (0..<layerCount).map { _ in try VulkanBuffer(context, byteCount: layerBytes) }
        byteCount = layerBytes * layerCount
        activations = try graph.buffers.enumerated().map { index, buffer in
            let rows = buffer.rows == .outputs ? model.maxOutputs : model.maxTokens
            let bytes = buffer.element == .int8 ? rows * (TernaryPacking.paddedColumns(buffer.width) + 4) : rows * buffer.width * 4
            return try VulkanBuffer(context, byteCount: bytes)
        }
        inputs = try VulkanBuffer(context, byteCount: 4 * model.maxTokens * 4, memory: BITNET_VK_MEMORY_HOST)
        // Blocks of 256 positions, as the CPU backend reads a long cache, or longer ones so that at most 64 make a context.
        attentionBlockPositions = max(256, (capacity + 64 * 64 - 1) / (64 * 64) * 64)
        attentionBlocks = (capacity + attentionBlockPositions - 1) / attentionBlockPositions
        let floatsPerToken = graph.ops.reduce(1) { if case .attention(let op) = $1 { max($0, op.heads * (op.headDimension + 2)) } else { $0 } }
        attentionPartials = try VulkanBuffer(context, byteCount: Self.splitMaximumTokens * floatsPerToken * attentionBlocks * 4)
        logitsReadback = try VulkanBuffer(context, byteCount: model.maxOutputs * graph.configuration.vocabularySize * 4, memory: BITNET_VK_MEMORY_HOST)
        greedyChoices = try VulkanBuffer(context, byteCount: model.maxOutputs * 3 * 4, memory: BITNET_VK_MEMORY_HOST)
        topSliceColumns = min(max(1, model.backend.topSliceColumns), 2048)  // top_logits.comp sorts at most 2,048
        topSlices = (graph.configuration.vocabularySize + topSliceColumns - 1) / topSliceColumns
        topPartials = try VulkanBuffer(context, byteCount: model.maxOutputs * topSlices * Self.maxTopCount * 2 * 4)
        topResults = try VulkanBuffer(context, byteCount: model.maxOutputs * (2 + 2 * Self.maxTopCount) * 4, memory: BITNET_VK_MEMORY_HOST)
        guard inputs.mapped != nil, logitsReadback.mapped != nil, greedyChoices.mapped != nil, topResults.mapped != nil else {
            throw VulkanError(code: .unavailable, message: "\(model.backend.device.name) offers no host-visible memory for results")
        }
        let chains = model.steps.reduce(0) { if case .chainedQuantize = $1 { $0 + 1 } else { $0 } }
        let counterBytes = max(1, chains) * model.maxTokens * 4
        let counters = try VulkanBuffer(context, byteCount: counterBytes)
        try context.uploading { try [UInt8](repeating: 0, count: counterBytes).withUnsafeBytes { try counters.upload($0) } }
        chainCounters = counters
        rotaryTables = try context.uploading {
            var tables: [RotaryEmbedding: VulkanBuffer] = [:]
            for case .rope(_, _, let rotary) in graph.ops where tables[rotary] == nil {
                let frequencies = rotary.inverseFrequencies
                var table = [Float](repeating: 0, count: capacity * frequencies.count * 2)
                for position in 0..<capacity {
                    for (pair, frequency) in frequencies.enumerated() {
                        let angle = Float(position) * frequency  // as the CPU backend computes it
                        table[2 * (position * frequencies.count + pair)] = cosf(angle)
                        table[2 * (position * frequencies.count + pair) + 1] = sinf(angle)
                    }
                }
                let buffer = try VulkanBuffer(context, byteCount: table.count * 4)
                try table.withUnsafeBytes { try buffer.upload($0) }
                tables[rotary] = buffer
            }
            return tables
        }

        var stream: OpaquePointer?
        try VulkanError.check { bitnet_vk_stream_create(context.pointer, UInt32(graph.ops.count * 4 + 2), &stream, $0, $1) }
        self.stream = stream!
        // Room for a timestamp after every dispatch (a step has at most three), the readback's two and one at the start.
        timestampCapacity = 3 * model.steps.count + 3
        timestamps = bitnet_vk_stream_enable_timestamps(context.pointer, self.stream, UInt32(timestampCapacity), nil, 0) == BITNET_VK_OK
        bindings = try model.steps.map { step in try buffers(of: step).map(makeBinding) }
        argmaxBinding = try makeBinding([activations[graph.logits.index], greedyChoices])
        topLogitsBinding = try makeBinding([activations[graph.logits.index], topPartials])
        topLogitsMergeBinding = try makeBinding([activations[graph.logits.index], topPartials, topResults])
    }

    deinit { bitnet_vk_stream_destroy(model.backend.context.pointer, stream) }

    private func makeBinding(_ buffers: [VulkanBuffer?]) throws -> bitnet_vk_binding {
        var binding: bitnet_vk_binding = 0
        let pointers: [OpaquePointer?] = buffers.map { $0?.pointer }
        try pointers.withUnsafeBufferPointer { pointers in
            try VulkanError.check {
                bitnet_vk_stream_binding(model.backend.context.pointer, stream, pointers.baseAddress, Int32(pointers.count), &binding, $0, $1)
            }
        }
        return binding
    }

    private func weight(_ id: WeightID) -> VulkanBuffer { model.weights[id.index].buffer }
    private func activation(_ id: ActivationID) -> VulkanBuffer { activations[id.index] }

    /// A BitLinear op alone (bitlinear.comp, bitlinear_tiled.comp): weights, input, output.
    private func buffers(of op: BitLinearOp) -> [VulkanBuffer?] { [weight(op.weight), activation(op.input), activation(op.output)] }

    /// A row-quantize step alone (quantize.comp): row, norm weights, codes, second input.
    private func buffers(of step: RowQuantizeStep) -> [VulkanBuffer?] {
        [activation(step.input), step.norm.map { weight($0.weight) }, activation(step.output), step.second.map(activation)]
    }

    /// An attention op's four dispatches: store, attend (the keys and values beside, for a pass that stores as it
    /// attends), attend by blocks, combine the blocks.
    private func attentionBuffers(_ op: AttentionOp, table: VulkanBuffer?) -> [[VulkanBuffer?]] {
        [[activation(op.key), activation(op.value), inputs, layers[op.layer], table],
         [activation(op.query), layers[op.layer], inputs, activation(op.output), table, activation(op.key), activation(op.value)],
         [activation(op.query), layers[op.layer], inputs, attentionPartials, table, activation(op.key), activation(op.value)],
         [attentionPartials, nil, inputs, activation(op.output)]]
    }

    /// The buffers each of a step's dispatches binds, in the order its shader declares them.
    private func buffers(of step: VulkanStep) -> [[VulkanBuffer?]] {
        let op: ForwardOp
        switch step {
        case .op(let stepOp): op = stepOp
        case .ropedAttention(let op, let rotary):
            return attentionBuffers(op, table: rotaryTables[rotary]!)
        case .rowQuantize(let quantize):
            return [buffers(of: quantize)]
        case .bitLinears(let bitLinears):  // each alone, then all in one dispatch
            let weights: [VulkanBuffer?] = bitLinears.map { weight($0.weight) } + [nil, nil]
            let outputs: [VulkanBuffer?] = bitLinears.map { activation($0.output) } + [nil, nil]
            return bitLinears.map(buffers(of:))
                + [[weights[0], activation(bitLinears[0].input), outputs[0], weights[1], weights[2], outputs[1], outputs[2]]]
        case .chainedQuantize(let chain):
            let quantize = chain.quantize, norm = quantize.norm.map { weight($0.weight) }
            let chained = [norm, activation(quantize.output), chainCounters]  // chain.glsl's bindings 7–9
            switch chain.producer {
            case .bitLinears(let bitLinears):  // each BitLinear alone, the quantization alone, then all chained in one dispatch
                let weights: [VulkanBuffer?] = bitLinears.map { weight($0.weight) } + [nil, nil]
                return bitLinears.map(buffers(of:)) + [buffers(of: quantize)]
                    + [[weights[0], activation(bitLinears[0].input), activation(quantize.input), weights[1], weights[2],
                        quantize.second.map(activation), nil] + chained]
            case .attention(let op, let rotary):  // the attention op's four, the quantization alone, attend and combine chained
                let attention = attentionBuffers(op, table: rotary.map { rotaryTables[$0]! })
                return attention + [buffers(of: quantize), attention[1] + chained, attention[3] + [nil, nil, nil] + chained]
            }
        }
        return switch op {
        case .embed(let table, let output): [[weight(table), inputs, activation(output)]]
        case .rmsNorm(let input, let weight, _, let output): [[activation(input), self.weight(weight), activation(output)]]
        case .bitLinear(let input, let weight, let output): [buffers(of: BitLinearOp(input: input, weight: weight, output: output))]
        case .rope(let buffer, _, let rotary): [[activation(buffer), inputs, rotaryTables[rotary]!]]
        case .attention(let op): attentionBuffers(op, table: nil)
        case .gatedActivation(_, let gate, let up, let output): [[activation(gate), activation(up), activation(output), inputs]]
        case .add(let input, let accumulator): [[activation(input), activation(accumulator), nil, inputs]]
        case .selectOutputs(let input, let output): [[activation(input), nil, activation(output), inputs]]
        case .project(let input, let weight, let output): [[self.weight(weight), activation(input), activation(output)]]
        case .quantize, .pool: []  // a row-quantize step; refused at load
        }
    }
}
