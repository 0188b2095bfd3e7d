import BitNetEngine
import BitNetModels
import CBitNetVulkan
import Foundation

/// One recorded forward pass over tokens `range` of a batch: the per-pass inputs written to host-visible memory,
/// every op recorded into the cache's command buffer with a barrier only where an op touches what an earlier
/// one of the same stretch wrote (or writes what it read), one submission, one fence wait, the logits read back.
struct VulkanPass {
    let storage: VulkanKeyValueStorage
    let batch: ForwardBatch
    let range: Range<Int>
    /// Rows of logits the pass computes: its tokens that want them.
    private let outputs: Int
    /// Whether the pass's tokens are one slot's, at consecutive positions (a prompt): what the tiled attention takes.
    private let isOneSequence: Bool
    /// Whether attention takes 8 queries a workgroup: a prompt of ``VulkanBackend/tiledMinimumTokens`` or more.
    private let tiledAttention: Bool
    /// Whether attention stores the pass's keys and values itself, with no dispatch of their own before it: the
    /// pass's tokens are of different slots (a decode step), so each reads only its own from the pass's rows.
    private let storesInAttention: Bool
    /// Blocks of positions a short pass's attention is split into, a workgroup each (0: not split), where a token sees
    /// more than one block: a decode step's few workgroups would otherwise each walk the whole cache alone.
    private let attentionBlocks: Int
    private var model: VulkanModel { storage.model }
    private var pipelines: VulkanPipelines { model.backend.pipelines }
    private var context: OpaquePointer { model.backend.context.pointer }

    init(storage: VulkanKeyValueStorage, batch: ForwardBatch, range: Range<Int>) {
        self.storage = storage
        self.batch = batch
        self.range = range
        outputs = batch.wantsLogits[range].lazy.filter { $0 }.count
        isOneSequence = range.allSatisfy {
            batch.slots[$0] == batch.slots[range.lowerBound] && batch.positions[$0] == batch.positions[range.lowerBound] + $0 - range.lowerBound
        }
        let backend = storage.model.backend
        tiledAttention = backend.tilesPrompts && range.count >= VulkanBackend.tiledMinimumTokens && isOneSequence
        let blocks = batch.positions[range].max().map { $0 / storage.attentionBlockPositions + 1 } ?? 0
        storesInAttention = backend.fusesOps && !tiledAttention && Set(batch.slots[range]).count == range.count
        attentionBlocks = backend.splitsAttention && range.count <= VulkanKeyValueStorage.splitMaximumTokens && !tiledAttention && blocks > 1 ? blocks : 0
    }

    private var tokens: Int { range.count }
    /// Where each input array starts in the inputs buffer (in ints).
    private var tokenBase: UInt32 { 0 }
    private var positionBase: UInt32 { UInt32(model.maxTokens) }
    private var slotBase: UInt32 { UInt32(2 * model.maxTokens) }
    private var outputRowBase: UInt32 { UInt32(3 * model.maxTokens) }

    /// Runs the pass and appends the logits of its tokens that want them, copied to host-visible memory.
    func run(appendingLogitsTo logits: inout [Float]) throws {
        let vocabulary = model.graph.configuration.vocabularySize
        try run(.logits) { hazards in
            guard outputs > 0 else { return }
            record(label: "logits copy", hazards: &hazards) {
                bitnet_vk_stream_copy(context, storage.stream, storage.activations[model.graph.logits.index].pointer,
                                      storage.logitsReadback.pointer, UInt64(outputs * vocabulary * 4))
            }
        }
        let results = storage.logitsReadback.mapped!.assumingMemoryBound(to: Float.self)
        logits.append(contentsOf: UnsafeBufferPointer(start: results, count: outputs * vocabulary))
    }

    /// Runs the pass and appends the greedy token of each logit row (`argmax.comp`), reading back three words a row.
    func run(appendingGreedyTokensTo tokens: inout [Int]) throws {
        let vocabulary = model.graph.configuration.vocabularySize
        try run(.greedy) { hazards in
            guard outputs > 0 else { return }
            dispatch(pipelines.argmax, storage.argmaxBinding, [UInt32(vocabulary), UInt32(outputs)], groups: grid(outputs),
                     reads: [model.graph.logits], writes: [], label: "argmax", hazards: &hazards)
        }
        let choices = storage.greedyChoices.mapped!.assumingMemoryBound(to: UInt32.self)
        for row in 0..<outputs {
            if choices[3 * row + 1] != UInt32.max {
                throw LogitRows.nonFinite(Float(bitPattern: choices[3 * row + 2]), token: Int(choices[3 * row + 1]))
            }
            tokens.append(Int(choices[3 * row]))
        }
    }

    /// Runs the pass and appends the `count` largest logits of each row with their tokens (`top_logits.comp`, then
    /// `top_logits_merge.comp`), reading back 2 + 2 · `count` words a row; `count` is at most
    /// ``VulkanKeyValueStorage/maxTopCount``.
    func run(appendingTopLogitsTo rows: inout [TopLogits], count: Int) throws {
        let vocabulary = model.graph.configuration.vocabularySize, slices = storage.topSlices
        try run(.top(count)) { hazards in
            guard outputs > 0 else { return }
            let push = [UInt32(vocabulary), UInt32(outputs), UInt32(count), UInt32(slices), UInt32(storage.topSliceColumns)]
            dispatch(pipelines.topLogits, storage.topLogitsBinding, push, groups: (slices, outputs, 1), reads: [model.graph.logits], writes: [],
                     partials: (false, true), label: "top logits", hazards: &hazards)
            dispatch(pipelines.topLogitsMerge, storage.topLogitsMergeBinding, push + [UInt32(storage.topResultWords)], groups: grid(outputs),
                     reads: [model.graph.logits], writes: [], partials: (true, false), label: "top logits merged", hazards: &hazards)
        }
        let results = storage.topResults.mapped!.assumingMemoryBound(to: UInt32.self)
        for row in 0..<outputs {
            let words = results + row * storage.topResultWords
            if words[0] != UInt32.max { throw LogitRows.nonFinite(Float(bitPattern: words[1]), token: Int(words[0])) }
            rows.append(TopLogits(tokens: (0..<count).map { Int(words[2 + 2 * $0]) }, logits: (0..<count).map { Float(bitPattern: words[3 + 2 * $0]) }))
        }
    }

    /// What a pass reads back.
    enum Readback: Hashable {
        case logits, greedy
        /// The largest logits of each row, this many.
        case top(Int)
    }

    /// What decides the commands a pass records; everything else it reads from the per-pass inputs. A pass shaped
    /// like the one before on the same cache (every decode step after the first) submits that recording again.
    struct Shape: Hashable {
        var tokens, outputs: Int
        var readback: Readback
        var oneSequence, storesInAttention: Bool
        var attentionBlocks: Int
        var profiled: Bool
    }

    /// Records every step, then `readback`, submits and waits; or submits the cache's last recording again if it
    /// was of a pass of the same shape.
    private func run(_ readback: Readback, then recordReadback: (inout Hazards) -> Void) throws {
        writeInputs()
        let profile = model.backend.profile
        let shape = Shape(tokens: tokens, outputs: outputs, readback: readback, oneSequence: isOneSequence, storesInAttention: storesInAttention,
                          attentionBlocks: attentionBlocks,
                          profiled: storage.timestamps && profile.isEnabled)
        if storage.recordedShape == shape, !shape.profiled {
            try VulkanError.check { bitnet_vk_stream_resubmit(context, storage.stream, $0, $1) }
            return
        }
        storage.recordedShape = nil
        try VulkanError.check { bitnet_vk_stream_begin(context, storage.stream, $0, $1) }
        var hazards = Hazards(labels: shape.profiled ? [] : nil)
        if hazards.labels != nil { bitnet_vk_stream_timestamp(context, storage.stream) }
        for (index, step) in model.steps.enumerated() {
            switch step {
            case .op(let op): record(op, bindings: storage.bindings[index], hazards: &hazards)
            case .rowQuantize(let quantize): record(quantize, binding: storage.bindings[index][0], hazards: &hazards)
            case .ropedAttention(let attention, let rotary): record(attention, rotary: rotary, bindings: storage.bindings[index], hazards: &hazards)
            case .chainedQuantize(let chain): record(chain, bindings: storage.bindings[index], hazards: &hazards)
            case .bitLinears(let group): record(group, bindings: storage.bindings[index], hazards: &hazards)
            }
        }
        recordReadback(&hazards)
        try VulkanError.check { bitnet_vk_stream_submit(context, storage.stream, $0, $1) }
        storage.recordedShape = shape
        if let labels = hazards.labels {
            var timestamps = [Double](repeating: 0, count: storage.timestampCapacity)
            let count = Int(bitnet_vk_stream_timestamps(context, storage.stream, &timestamps, Int32(timestamps.count)))
            if count == labels.count + 1 { profile.add(labels: labels, timestamps: Array(timestamps[..<count])) }
        }
    }

    private func writeInputs() {
        let ints = storage.inputs.mapped!.assumingMemoryBound(to: Int32.self)
        var outputRow = 0
        for (row, index) in range.enumerated() {
            ints[Int(tokenBase) + row] = Int32(batch.tokens[index])
            ints[Int(positionBase) + row] = Int32(batch.positions[index])
            ints[Int(slotBase) + row] = Int32(batch.slots[index])
            if batch.wantsLogits[index] {
                ints[Int(outputRowBase) + outputRow] = Int32(row)
                outputRow += 1
            }
        }
    }

    private func rows(_ buffer: ActivationID) -> Int { model.graph[buffer].rows == .outputs ? outputs : tokens }
    private func width(_ buffer: ActivationID) -> Int { model.graph[buffer].width }

    /// Which buffers the dispatches since the last barrier read and wrote; while profiling, each dispatch's label.
    private struct Hazards {
        var read: Set<Int> = []
        var written: Set<Int> = []
        var labels: [String]?
    }

    /// Records one dispatch after a barrier if it depends on what the stretch so far wrote or read.
    private func dispatch(_ pipeline: VulkanPipeline, _ binding: bitnet_vk_binding, _ push: [UInt32], groups: (Int, Int, Int),
                          reads: [ActivationID], writes: [ActivationID], cache: Int? = nil, partials: (read: Bool, written: Bool) = (false, false),
                          label: @autoclosure () -> String, hazards: inout Hazards) {
        let partialsID = Int.min  // scratch outside the graph's buffers: the split attention's partials, the top logits' partials
        let readIDs = Set(reads.map(\.index) + (cache.map { [-1 - $0] } ?? []) + (partials.read ? [partialsID] : []))
        let writeIDs = Set(writes.map(\.index) + (cache.map { [-1 - $0] } ?? []) + (partials.written ? [partialsID] : []))
        if !readIDs.isDisjoint(with: hazards.written) || !writeIDs.isDisjoint(with: hazards.written.union(hazards.read)) {
            bitnet_vk_stream_barrier(context, storage.stream)
            hazards.read = []
            hazards.written = []
        }
        hazards.read.formUnion(readIDs)
        hazards.written.formUnion(writeIDs)
        push.withUnsafeBytes { push in
            bitnet_vk_stream_dispatch(context, storage.stream, pipeline.pointer, binding, push.baseAddress, UInt32(push.count),
                                      UInt32(groups.0), UInt32(groups.1), UInt32(groups.2))
        }
        if hazards.labels != nil { timestamp(label(), hazards: &hazards) }  // profiling: this dispatch alone between two timestamps
    }

    /// While profiling: a barrier and a timestamp after the command just recorded, labelled `label`.
    private func timestamp(_ label: String, hazards: inout Hazards) {
        bitnet_vk_stream_barrier(context, storage.stream)
        bitnet_vk_stream_timestamp(context, storage.stream)
        hazards.labels!.append(label)
        hazards.read = []
        hazards.written = []
    }

    /// Records a command other than a dispatch (it brings its own barrier), followed by a timestamp while profiling.
    private func record(label: String, hazards: inout Hazards, _ command: () -> Void) {
        command()
        if hazards.labels != nil { timestamp(label, hazards: &hazards) }
    }

    /// Workgroups for `count` rows (or elements over `perGroup`), wrapped into y past 65,535.
    private func grid(_ count: Int, perGroup: Int = 1, z: Int = 1) -> (Int, Int, Int) {
        let groups = max(1, (count + perGroup - 1) / perGroup)
        let x = min(groups, 65_535)
        return (x, (groups + x - 1) / x, z)
    }

    /// A row-quantize step: its prologue, norm and quantization in one dispatch, a workgroup a row.
    private func record(_ step: RowQuantizeStep, binding: bitnet_vk_binding, hazards: inout Hazards) {
        let (reads, writes) = buffers(of: step)
        dispatch(pipelines.quantize, binding, quantizeShape(step), groups: grid(rows(step.input)), reads: reads, writes: writes,
                 label: step.label, hazards: &hazards)
    }

    /// What a row-quantize step reads and writes.
    private func buffers(of step: RowQuantizeStep) -> (reads: [ActivationID], writes: [ActivationID]) {
        if case .residual = step.prologue { return ([step.input] + [step.second!], [step.output, step.input]) }
        return ([step.input] + (step.second.map { [$0] } ?? []), [step.output])
    }

    /// quantize.glsl's `QuantizeShape`: columns, words a row, where the scales start, prologue, normalize, ε.
    private func quantizeShape(_ step: RowQuantizeStep) -> [UInt32] {
        let columns = width(step.input), words = TernaryPacking.paddedColumns(columns) / 4
        return [UInt32(columns), UInt32(words), UInt32(model.maxTokens * words), step.prologueCode, step.norm == nil ? 0 : 1,
                (step.norm?.epsilon ?? 0).bitPattern]
    }

    /// Whether a BitLinear of `rows` rows over `tokens` rows of input takes the tiled prompt shader.
    private func tilesBitLinear(rows: Int, tokens: Int) -> Bool {
        model.backend.tilesPrompts && tokens >= VulkanBackend.tiledMinimumTokens && rows <= 65_535 * 64
    }

    /// bitlinear.comp's push constants (before a chained variant's) for up to three matrices of one input.
    private func bitLinearPush(_ packings: [TernaryPacking], tokens: Int) -> [UInt32] {
        let first = packings[0], missing = 3 - packings.count
        return [UInt32(first.wordsPerRow), UInt32(first.blockWords), UInt32(model.maxTokens * first.wordsPerRow * 4), UInt32(tokens)]
            + packings.map { UInt32($0.rows) } + Array(repeating: 0, count: missing)
            + packings.map { UInt32($0.scaleOffset) } + Array(repeating: 0, count: missing)
    }

    /// The packings of BitLinear ops of one input that one row-shader dispatch can run in this pass: ternary, rows of
    /// one length and scale blocks, none tiled. Nil: each takes its own dispatch.
    private func rowShaderPackings(_ bitLinears: [BitLinearOp]) -> [TernaryPacking]? {
        let tokens = rows(bitLinears[0].input)
        let packings = bitLinears.compactMap { bitLinear -> TernaryPacking? in
            if case .ternary(_, let packing) = model.weights[bitLinear.weight.index] { packing } else { nil }
        }
        guard packings.count == bitLinears.count, (1...3).contains(packings.count),
              packings.allSatisfy({ $0.wordsPerRow == packings[0].wordsPerRow && $0.blockWords == packings[0].blockWords }),
              !packings.contains(where: { tilesBitLinear(rows: $0.rows, tokens: tokens) }) else { return nil }
        return packings
    }

    /// One row-shader dispatch of BitLinear ops of one input: its push constants (before a chained variant's), grid
    /// and label.
    private func rowShaderDispatch(_ group: [BitLinearOp], _ packings: [TernaryPacking]) -> (push: [UInt32], groups: (Int, Int, Int), label: String) {
        let tokens = rows(group[0].input)
        return (bitLinearPush(packings, tokens: tokens), grid(packings.reduce(0) { $0 + $1.rows }, z: (tokens + 3) / 4),
                "bitlinear \(packings.map { String($0.rows) }.joined(separator: "+"))×\(width(group[0].input))")
    }

    /// Each BitLinear op of a step in its own dispatch, with its binding alone (the step's first ones).
    private func recordEachAlone(_ group: [BitLinearOp], bindings: [bitnet_vk_binding], hazards: inout Hazards) {
        for (index, bitLinear) in group.enumerated() { record(bitLinear.forwardOp, bindings: [bindings[index]], hazards: &hazards) }
    }

    /// Two or three BitLinear ops of one input as one dispatch, or each alone where the pass tiles them.
    private func record(_ group: [BitLinearOp], bindings: [bitnet_vk_binding], hazards: inout Hazards) {
        guard let packings = rowShaderPackings(group) else { return recordEachAlone(group, bindings: bindings, hazards: &hazards) }
        let (push, groups, label) = rowShaderDispatch(group, packings)
        dispatch(pipelines.bitLinear, bindings[group.count], push, groups: groups, reads: [group[0].input], writes: group.map(\.output),
                 label: label, hazards: &hazards)
    }

    /// A chained step: its BitLinear ops in one dispatch whose last workgroup of each tile of 4 tokens quantizes them
    /// (bitlinear.comp's CHAINED variant), or attention chained; where the pass tiles a BitLinear, each op alone.
    private func record(_ chain: ChainedQuantizeStep, bindings: [bitnet_vk_binding], hazards: inout Hazards) {
        if case .attention(let attention, let rotary) = chain.producer {
            record(attention, rotary: rotary, bindings: bindings, then: chain, hazards: &hazards)
            return
        }
        let bitLinears = chain.bitLinears, quantize = chain.quantize
        guard let packings = rowShaderPackings(bitLinears) else {
            recordEachAlone(bitLinears, bindings: bindings, hazards: &hazards)
            record(quantize, binding: bindings[bitLinears.count], hazards: &hazards)
            return
        }
        let (bitLinearPush, groups, label) = rowShaderDispatch(bitLinears, packings)
        let outputSecond = bitLinears.enumerated().reduce(UInt32(0)) { $0 | ($1.element.output == quantize.second ? 1 << UInt32($1.offset) : 0) }
        let push = bitLinearPush + quantizeShape(quantize)
            + [UInt32(chain.counter * storage.chainCounterStride), UInt32(groups.0 * groups.1), outputSecond]
        let (reads, writes) = buffers(of: quantize)
        dispatch(pipelines.bitLinearChained, bindings[bitLinears.count + 1], push, groups: groups,
                 reads: [bitLinears[0].input] + reads, writes: bitLinears.map(\.output) + writes,
                 label: label + " + " + quantize.label,
                 hazards: &hazards)
    }

    /// Stores the keys and values, then attends (or attends and stores them as it goes: ``storesInAttention``); with
    /// `rotary`, the keys are rotated as they are stored and the queries as attention reads them (the RoPE ops before
    /// it were folded in). With `chain`, the quantization after it runs in the last workgroup of each token's heads
    /// (attention.comp's or attention_combine.comp's CHAINED variant), or after it where attention is tiled.
    private func record(_ attention: AttentionOp, rotary: RotaryEmbedding?, bindings: [bitnet_vk_binding], then chain: ChainedQuantizeStep? = nil,
                        hazards: inout Hazards) {
        let half: UInt32 = storage.type == .f16 ? 1 : 0
        let valueOffset = UInt32(storage.slots * storage.capacity * storage.width)
        let words = storage.type == .f16 ? storage.width / 2 : storage.width
        let rotation: [UInt32] = rotary.map { [UInt32($0.dimension / 2), $0.layout == .interleaved ? 1 : 0] } ?? [0, 0]
        if !storesInAttention {
            dispatch(pipelines.storeKeysAndValues, bindings[0],
                     [UInt32(storage.width), UInt32(storage.capacity), valueOffset, half, UInt32(tokens), positionBase, slotBase] + rotation,
                     groups: grid(tokens * words, perGroup: pipelines.storeKeysAndValues.workgroupSize),
                     reads: [attention.key, attention.value], writes: [], cache: attention.layer,
                     label: rotary == nil ? "kv store" : "rope + kv store", hazards: &hazards)
        }
        let reads = storesInAttention ? [attention.query, attention.key, attention.value] : [attention.query]
        let stores: UInt32 = storesInAttention ? 1 : 0
        // Chained (not tiled): the quantization's push constants after the attention's, counting each token's heads.
        let chained = chain != nil && !tiledAttention
        var tail: [UInt32] = [], writes = [attention.output], suffix = ""
        if let chain, chained {
            tail = quantizeShape(chain.quantize) + [UInt32(chain.counter * storage.chainCounterStride), UInt32(attention.heads)]
            writes += buffers(of: chain.quantize).writes
            suffix = " + " + chain.quantize.label
        }
        let scale = 1 / Float(attention.headDimension).squareRoot()
        let push = [UInt32(width(attention.query)), UInt32(storage.width), UInt32(attention.heads), UInt32(attention.keyValueHeads),
                    UInt32(attention.headDimension), UInt32(storage.capacity), valueOffset, half, scale.bitPattern, positionBase, slotBase]
            + rotation + [UInt32(tokens)]
        if attentionBlocks > 0 {  // each block a workgroup, then their combination
            dispatch(pipelines.attention, bindings[2], push + [UInt32(storage.attentionBlockPositions), stores],
                     groups: (attention.heads, tokens, attentionBlocks), reads: reads, writes: [], cache: attention.layer,
                     partials: (false, true), label: storesInAttention ? "attention by blocks + kv store" : "attention by blocks", hazards: &hazards)
            dispatch(chained ? pipelines.attentionCombineChained : pipelines.attentionCombine, bindings[chained ? 6 : 3],
                     [UInt32(width(attention.query)), UInt32(attention.heads), UInt32(attention.headDimension), positionBase,
                      UInt32(storage.attentionBlockPositions), UInt32(attentionBlocks)] + tail,
                     groups: (attention.heads, tokens, 1), reads: [], writes: writes, partials: (true, false),
                     label: "attention blocks combined" + suffix, hazards: &hazards)
        } else {
            let pipeline = tiledAttention ? pipelines.attentionTiled : chained ? pipelines.attentionChained : pipelines.attention
            dispatch(pipeline, bindings[chained ? 5 : 1], push + [0, stores] + tail,
                     groups: (attention.heads, tiledAttention ? (tokens + 7) / 8 : tokens, 1), reads: reads, writes: writes,
                     cache: attention.layer, label: (tiledAttention ? "attention tiled" : storesInAttention ? "attention + kv store" : "attention") + suffix,
                     hazards: &hazards)
        }
        if let chain, !chained { record(chain.quantize, binding: bindings[4], hazards: &hazards) }
    }

    private func record(_ op: ForwardOp, bindings: [bitnet_vk_binding], hazards: inout Hazards) {
        let elementwise = pipelines.elementwise

        switch op {
        case .embed(let table, let output):
            guard case .matrix(_, _, let columns, let encoding) = model.weights[table.index] else { return }
            dispatch(pipelines.embed, bindings[0], [UInt32(columns), encoding, UInt32(tokens), tokenBase],
                     groups: grid(columns * tokens, perGroup: pipelines.embed.workgroupSize), reads: [], writes: [output], label: "embed", hazards: &hazards)

        case .rmsNorm(let input, _, let epsilon, let output):
            dispatch(pipelines.rmsNorm, bindings[0], [UInt32(width(input)), epsilon.bitPattern], groups: grid(rows(input)), reads: [input], writes: [output], label: "rms norm", hazards: &hazards)

        case .bitLinear(let input, let weight, let output):
            guard case .ternary(_, let packing) = model.weights[weight.index] else { return }
            let tokens = rows(input), tiled = tilesBitLinear(rows: packing.rows, tokens: tokens)
            // The tiled shader's push constants are the row shader's for one matrix: its first ten words.
            dispatch(tiled ? pipelines.bitLinearTiled : pipelines.bitLinear, bindings[0], bitLinearPush([packing], tokens: tokens),
                     groups: tiled ? ((packing.rows + 63) / 64, 1, (tokens + 31) / 32) : grid(packing.rows, z: (tokens + 3) / 4),
                     reads: [input], writes: [output], label: "bitlinear \(packing.rows)×\(width(input))\(tiled ? " tiled" : "")",
                     hazards: &hazards)

        case .rope(let buffer, let heads, let rotary):
            let half = rotary.dimension / 2
            dispatch(pipelines.rope, bindings[0],
                     [UInt32(width(buffer)), UInt32(heads), UInt32(half), rotary.layout == .interleaved ? 1 : 0, UInt32(tokens), positionBase],
                     groups: grid(tokens * heads * half, perGroup: pipelines.rope.workgroupSize), reads: [buffer], writes: [buffer], label: "rope", hazards: &hazards)

        case .attention(let attention):
            record(attention, rotary: nil, bindings: bindings, hazards: &hazards)

        case .gatedActivation(let activation, let gate, let up, let output):
            let count = tokens * width(gate)
            let code: UInt32 = switch activation {
            case .squaredReLU: 1
            case .silu: 2
            case .gelu: 3
            }
            dispatch(elementwise, bindings[0], [UInt32(count), code, 1, 0], groups: grid(count, perGroup: elementwise.workgroupSize),
                     reads: [gate, up], writes: [output], label: "gated activation", hazards: &hazards)

        case .add(let input, let accumulator):
            let count = rows(input) * width(input)
            dispatch(elementwise, bindings[0], [UInt32(count), 0, 1, 0], groups: grid(count, perGroup: elementwise.workgroupSize),
                     reads: [input, accumulator], writes: [accumulator], label: "add", hazards: &hazards)

        case .selectOutputs(let input, let output):
            let count = outputs * width(input)
            dispatch(elementwise, bindings[0], [UInt32(count), 4, UInt32(width(input)), outputRowBase],
                     groups: grid(count, perGroup: elementwise.workgroupSize), reads: [input], writes: [output], label: "select outputs",
                     hazards: &hazards)

        case .project(let input, let weight, let output):
            guard case .matrix(_, let rows, let columns, let encoding) = model.weights[weight.index] else { return }
            let tokens = self.rows(input)
            dispatch(pipelines.project, bindings[0], [UInt32(rows), UInt32(columns), encoding, UInt32(tokens)],
                     groups: grid(rows, z: (tokens + 3) / 4), reads: [input], writes: [output], label: "output projection",
                     hazards: &hazards)

        case .quantize, .pool:
            break  // a row-quantize step (VulkanStep.plan); refused at load
        }
    }
}
