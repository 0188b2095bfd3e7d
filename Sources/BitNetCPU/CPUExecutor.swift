import BitNetEngine
import BitNetModels
import BitNetQuantization
import CBitNetKernels
import Foundation

/// One forward pass on the CPU: runs the graph's ops in order over the activation buffers of the cache.
struct CPUExecution {
    let model: CPUModel
    let batch: ForwardBatch
    let cache: CPUKeyValueStorage
    /// Each sequence's slot and its tokens' indices in the batch, in order of first appearance.
    private let sequences: [(slot: Int, tokens: [Int])]
    /// Each token's position, as the kernels take it.
    private let positions: [Int64]
    private var pool: KernelPool { model.backend.pool }

    init(model: CPUModel, batch: ForwardBatch, cache: CPUKeyValueStorage) {
        self.model = model
        self.batch = batch
        self.cache = cache
        var indices: [Int: Int] = [:]
        var sequences: [(slot: Int, tokens: [Int])] = []
        for (token, slot) in batch.slots.enumerated() {
            if let index = indices[slot] {
                sequences[index].tokens.append(token)
            } else {
                indices[slot] = sequences.count
                sequences.append((slot, [token]))
            }
        }
        self.sequences = sequences
        positions = batch.positions.map(Int64.init)
    }

    func run() -> [Float] {
        let graph = model.graph
        for (index, buffer) in graph.buffers.enumerated() where buffer.element == .float32 {
            cache.prepareActivation(index, count: rows(buffer.rows) * buffer.width)
        }
        if let first = model.nextMatrix.first, let weight = first { warm(weight) }
        for (index, op) in graph.ops.enumerated() {
            execute(op)
            if op.endsWarming, let next = model.nextMatrix[index + 1] { warm(next) }
        }
        return Array(values(graph.logits))
    }

    /// Tells the pool's waiting threads which weights the next matmul reads.
    private func warm(_ weight: Int) {
        switch model.weights[weight] {
        case .ternary(let linear):
            linear.withBytesRead { bitnet_pool_warm(pool.pointer, $0.baseAddress, Int64($0.count)) }
        case .matrix(let matrix): matrix.bytes.withUnsafeBytes { bitnet_pool_warm(pool.pointer, $0.baseAddress, Int64($0.count)) }
        case .vector: return
        }
    }

    private func rows(_ domain: RowDomain) -> Int {
        switch domain {
        case .tokens: batch.count
        case .outputs: batch.outputCount
        case .sequences: sequences.count
        }
    }

    private func width(_ buffer: ActivationID) -> Int { model.graph[buffer].width }

    /// Calls `body` with the float buffer `buffer` (rows × width values).
    private func withBuffer<R>(_ buffer: ActivationID, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        body(cache.activation(buffer.index))
    }

    /// The values of a float buffer.
    private func values(_ buffer: ActivationID) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: cache.activation(buffer.index), count: cache.activationCounts[buffer.index])
    }

    private func execute(_ op: ForwardOp) {
        switch op {
        case .embed(let table, let output):
            guard case .matrix(let matrix) = model.weights[table.index] else { preconditionFailure("embedding is not a float matrix") }
            let width = width(output)
            withBuffer(output) { out in
                for (index, token) in batch.tokens.enumerated() { matrix.row(token, into: out + index * width) }
            }

        case .rmsNorm(let input, let weight, let epsilon, let output):
            guard case .vector(let scale) = model.weights[weight.index] else { preconditionFailure("norm weight is not a vector") }
            rmsNorm(input, scale, epsilon: epsilon, into: output)

        case .quantize(let input, let output, let site, let layer):
            let width = width(input), rows = values(input).count / width
            if let observer = model.backend.observer {
                observer(site, layer, Array(values(input)), width)
            }
            var scales = [Float](repeating: 0, count: rows)
            let codes = [Int8](unsafeUninitializedCapacity: rows * width) { codes, initialized in
                bitnet_quantize_rows(pool.pointer, cache.activation(input.index), Int64(rows), Int64(width), codes.baseAddress!, &scales)
                initialized = rows * width
            }
            cache.quantized[output.index] = QuantizedActivations(rows: rows, columns: width, values: codes, scales: scales)

        case .bitLinear(let input, let weight, let output):
            guard case .ternary(let linear) = model.weights[weight.index], let activations = cache.quantized[input.index] else {
                preconditionFailure("BitLinear needs a ternary weight and a quantized input")
            }
            withBuffer(output) { linear.forward(activations, into: $0, pool: pool, arithmetic: model.backend.arithmetic) }

        case .rope(let buffer, let heads, let rotary):
            rope(buffer, heads: heads, rotary, frequencies: model.inverseFrequencies[rotary]!)

        case .attention(let attention):
            storeKeysAndValues(attention)
            attend(attention)

        case .gatedActivation(let activation, let gate, let up, let output):
            let count = values(gate).count
            bitnet_gated_activation(pool.pointer, Int32(activation.kernel.rawValue), cache.activation(gate.index), cache.activation(up.index),
                                    Int64(count), cache.activation(output.index))

        case .add(let input, let accumulator):
            bitnet_add(pool.pointer, cache.activation(input.index), Int64(values(input).count), cache.activation(accumulator.index))

        case .selectOutputs(let input, let output):
            let width = width(input)
            let values = values(input)
            withBuffer(output) { out in
                var row = 0
                for (index, wanted) in batch.wantsLogits.enumerated() where wanted {
                    (out + row * width).update(from: values.baseAddress! + index * width, count: width)
                    row += 1
                }
            }

        case .project(let input, let weight, let output):
            guard case .matrix(let matrix) = model.weights[weight.index] else { preconditionFailure("projection is not a float matrix") }
            let values = values(input)
            withBuffer(output) { out in matrix.multiply(values.baseAddress!, tokens: values.count / matrix.columns, into: out, pool: pool) }

        case .pool(let pooling, let input, let output):
            pool(pooling, input, into: output)
        }
    }

    /// `x · rsqrt(mean(x²) + ε) · w` per row, in float32 as transformers' RMSNorm.
    private func rmsNorm(_ input: ActivationID, _ weight: [Float], epsilon: Float, into output: ActivationID) {
        let rows = values(input).count / weight.count
        bitnet_rms_norm(pool.pointer, cache.activation(input.index), weight, epsilon, Int64(rows), Int64(weight.count), cache.activation(output.index))
    }

    /// Rotary position embedding of `heads` heads per row, at each token's position.
    private func rope(_ buffer: ActivationID, heads: Int, _ rotary: RotaryEmbedding, frequencies: [Float]) {
        let layout = rotary.layout == .halves ? BITNET_ROPE_HALVES : BITNET_ROPE_INTERLEAVED
        bitnet_rope(pool.pointer, cache.activation(buffer.index), Int64(width(buffer)), positions, Int64(batch.count),
                    Int32(heads), Int32(rotary.dimension), Int32(layout.rawValue), frequencies)
    }

    private func storeKeysAndValues(_ op: AttentionOp) {
        let width = width(op.key)
        let keys = cache.activation(op.key.index), values = cache.activation(op.value.index)
        for index in 0..<batch.count {
            cache.store(layer: op.layer, slot: batch.slots[index], position: batch.positions[index],
                        key: keys + index * width, value: values + index * width)
        }
    }

    /// Causal grouped-query attention of each token over its own sequence's cache slot.
    private func attend(_ op: AttentionOp) {
        let queryWidth = width(op.query)
        for (slot, tokens) in sequences {
            let rows = tokens.map(Int64.init), positions = tokens.map { self.positions[$0] }
            let status = cache.withStoredSlot(layer: op.layer, slot: slot) { keys, values in
                rows.withUnsafeBufferPointer { rows in
                    positions.withUnsafeBufferPointer { positions in
                        var arguments = bitnet_attention_args(
                            cache_type: Int32(cache.type == .f16 ? BITNET_CACHE_F16.rawValue : BITNET_CACHE_F32.rawValue),
                            keys: keys, values: values, position_stride: Int64(cache.positionStride), head_stride: Int64(cache.headStride),
                            queries: cache.activation(op.query.index), output: cache.activation(op.output.index), row_stride: Int64(queryWidth),
                            rows: rows.baseAddress!, positions: positions.baseAddress!, tokens: Int64(tokens.count),
                            heads: Int32(op.heads), key_value_heads: Int32(op.keyValueHeads), head_dimension: Int32(op.headDimension),
                            scale: 1 / Float(op.headDimension).squareRoot())
                        return bitnet_attention(pool.pointer, &arguments)
                    }
                }
            }
            // It fails only without memory for one context's scores: the configuration rules out heads that do not group.
            precondition(status == 0, "out of memory for attention scores")
        }
    }

    /// One row per sequence: the mean of its tokens' rows, or its last token's row.
    private func pool(_ pooling: Pooling, _ input: ActivationID, into output: ActivationID) {
        let width = width(input)
        let values = values(input)
        withBuffer(output) { out in
            for (row, (_, tokens)) in sequences.enumerated() {
                let chosen = pooling == .last ? [tokens.last!] : tokens
                for d in 0..<width {
                    var sum: Float = 0
                    for token in chosen { sum += values[token * width + d] }
                    out[row * width + d] = sum / Float(chosen.count)
                }
            }
        }
    }
}

extension ForwardOp {
    /// The weight matrix the op multiplies by (the reads that bound a decode step), if any.
    var matrixWeight: WeightID? {
        switch self {
        case .bitLinear(_, let weight, _), .project(_, let weight, _): weight
        default: nil
        }
    }

    /// Whether the op's pool job stops the workers' warming of the next weights, so that the next matmul's is
    /// told again after it: matmuls and attention (a decode step's norms, quantization and pointwise ops run on
    /// the calling thread alone).
    var endsWarming: Bool {
        if case .attention = self { return true }
        return matrixWeight != nil
    }
}

extension GatedActivation {
    /// The kernels' name for this activation.
    var kernel: bitnet_activation {
        switch self {
        case .squaredReLU: BITNET_ACTIVATION_SQUARED_RELU
        case .silu: BITNET_ACTIVATION_SILU
        case .gelu: BITNET_ACTIVATION_GELU
        }
    }
}
