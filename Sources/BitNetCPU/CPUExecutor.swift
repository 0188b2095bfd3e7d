import BitNetEngine
import BitNetModels
import BitNetQuantization
import Foundation

/// One forward pass on the CPU: runs the graph's ops in order over the activation buffers of the cache.
struct CPUExecution {
    let model: CPUModel
    let batch: ForwardBatch
    let cache: CPUKeyValueStorage
    /// Each sequence's slot and its tokens' indices in the batch, in order of first appearance.
    private let sequences: [(slot: Int, tokens: [Int])]
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
    }

    func run() -> [Float] {
        let graph = model.graph
        for (index, buffer) in graph.buffers.enumerated() where buffer.element == .float32 {
            cache.prepareActivation(index, count: rows(buffer.rows) * buffer.width)
        }
        for op in graph.ops { execute(op) }
        return Array(values(graph.logits))
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
            let values = Array(values(input))
            model.backend.observer?(site, layer, values, width(input))
            // Sizes are consistent by construction.
            cache.quantized[output.index] = try! AbsmaxQuantizer.quantize(values, rows: values.count / width(input), columns: width(input))

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
            let gateValues = values(gate), upValues = values(up)
            withBuffer(output) { out in
                switch activation {
                case .squaredReLU:
                    for index in gateValues.indices {
                        let relu = max(gateValues[index], 0)
                        out[index] = relu * relu * upValues[index]
                    }
                case .silu:
                    for index in gateValues.indices {
                        let x = gateValues[index]
                        out[index] = x / (1 + expf(-x)) * upValues[index]
                    }
                case .gelu:
                    for index in gateValues.indices {
                        let x = gateValues[index]
                        out[index] = 0.5 * x * (1 + tanhf(0.797_884_6 * (x + 0.044_715 * x * x * x))) * upValues[index]
                    }
                }
            }

        case .add(let input, let accumulator):
            let values = values(input)
            withBuffer(accumulator) { out in
                for index in values.indices { out[index] += values[index] }
            }

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
        let values = values(input)
        let width = weight.count
        withBuffer(output) { out in
            for row in 0..<values.count / width {
                let base = row * width
                var sum: Float = 0
                for index in base..<base + width { sum += values[index] * values[index] }
                let scale = 1 / (sum / Float(width) + epsilon).squareRoot()
                for index in 0..<width { out[base + index] = weight[index] * (values[base + index] * scale) }
            }
        }
    }

    /// Rotary position embedding of `heads` heads per row, at each token's position.
    private func rope(_ buffer: ActivationID, heads: Int, _ rotary: RotaryEmbedding, frequencies: [Float]) {
        let width = width(buffer)
        let dimension = rotary.dimension, half = dimension / 2
        withBuffer(buffer) { vectors in
            for (index, position) in batch.positions.enumerated() {
                for pair in 0..<half {
                    let angle = Float(position) * frequencies[pair]
                    let cosine = cosf(angle), sine = sinf(angle)
                    for head in 0..<heads {
                        let base = index * width + head * dimension
                        let (first, second) = rotary.layout == .halves ? (base + pair, base + pair + half) : (base + 2 * pair, base + 2 * pair + 1)
                        let x = vectors[first], y = vectors[second]
                        vectors[first] = x * cosine - y * sine
                        vectors[second] = y * cosine + x * sine
                    }
                }
            }
        }
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
        let dimension = op.headDimension
        let group = op.heads / op.keyValueHeads
        let scale = 1 / Float(dimension).squareRoot()
        let queryWidth = width(op.query), width = cache.width
        let q = cache.activation(op.query.index), output = cache.activation(op.output.index)
        for (slot, tokens) in sequences {
            let visibleEnd = batch.positions[tokens.last!] + 1  // a sequence's positions rise through the batch
            cache.withSlot(layer: op.layer, slot: slot, positions: visibleEnd) { k, v in
                pool.runEvenly(tokens.count * op.heads) { range in
                    var scores = [Float](repeating: 0, count: visibleEnd)
                    for item in range {
                        let (tokenIndex, head) = item.quotientAndRemainder(dividingBy: op.heads)
                        let index = tokens[tokenIndex]
                        let query = q + index * queryWidth + head * dimension
                        let kvOffset = (head / group) * dimension
                        let visible = batch.positions[index] + 1
                        var maximum = -Float.infinity
                        for position in 0..<visible {
                            let key = k + position * width + kvOffset
                            var dot: Float = 0
                            for d in 0..<dimension { dot += query[d] * key[d] }
                            scores[position] = dot * scale
                            maximum = max(maximum, scores[position])
                        }
                        var total: Float = 0
                        for position in 0..<visible {
                            scores[position] = expf(scores[position] - maximum)
                            total += scores[position]
                        }
                        let result = output + index * queryWidth + head * dimension
                        for d in 0..<dimension { result[d] = 0 }
                        for position in 0..<visible {
                            let weight = scores[position] / total
                            let value = v + position * width + kvOffset
                            for d in 0..<dimension { result[d] += weight * value[d] }
                        }
                    }
                }
            }
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
