import BitNetQuantization
import Foundation

/// One decoder block's weights.
struct DecoderLayer: Sendable {
    let attentionNorm: [Float]
    let query: TernaryLinear
    let key: TernaryLinear
    let value: TernaryLinear
    let attentionOutput: TernaryLinear
    /// `attn_sub_norm`, applied to the attention output before its projection (BitNet only).
    let attentionSubNorm: [Float]?
    let feedForwardNorm: [Float]
    let gate: TernaryLinear
    let up: TernaryLinear
    let down: TernaryLinear
    /// `ffn_sub_norm`, applied to the gated hidden state before the down projection (BitNet only).
    let feedForwardSubNorm: [Float]?
}

/// The element type of the KV cache.
public enum KeyValueCacheType: String, Sendable, CaseIterable {
    /// Exact; 4 bytes per value.
    case f32
    /// Half the memory; values are rounded to float16 when stored.
    case f16
}

/// Keys and values of every processed position, preallocated to the context length.
final class KeyValueCache {
    let capacity: Int
    let width: Int
    let type: KeyValueCacheType
    private var keys: [[Float]] = []
    private var values: [[Float]] = []
    private var halfKeys: [[Float16]] = []
    private var halfValues: [[Float16]] = []
    var count = 0

    init(layers: Int, capacity: Int, width: Int, type: KeyValueCacheType) {
        self.capacity = capacity
        self.width = width
        self.type = type
        switch type {
        case .f32:
            keys = Array(repeating: [Float](repeating: 0, count: capacity * width), count: layers)
            values = keys
        case .f16:
            halfKeys = Array(repeating: [Float16](repeating: 0, count: capacity * width), count: layers)
            halfValues = halfKeys
        }
    }

    /// Bytes the cache occupies.
    var byteCount: Int { (keys.count + values.count) * capacity * width * 4 + (halfKeys.count + halfValues.count) * capacity * width * 2 }

    func store(layer: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        let base = position * width
        switch type {
        case .f32:
            keys[layer].withUnsafeMutableBufferPointer { ($0.baseAddress! + base).update(from: key, count: width) }
            values[layer].withUnsafeMutableBufferPointer { ($0.baseAddress! + base).update(from: value, count: width) }
        case .f16:
            for index in 0..<width {
                halfKeys[layer][base + index] = Float16(key[index])
                halfValues[layer][base + index] = Float16(value[index])
            }
        }
    }

    /// Calls `body` with the keys and values of the first `positions` positions of `layer` as floats.
    func withLayer<R>(_ layer: Int, positions: Int, _ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>) -> R) -> R {
        switch type {
        case .f32:
            return keys[layer].withUnsafeBufferPointer { k in values[layer].withUnsafeBufferPointer { v in body(k, v) } }
        case .f16:
            let k = halfKeys[layer].prefix(positions * width).map { floatFromHalfBits($0.bitPattern) }
            let v = halfValues[layer].prefix(positions * width).map { floatFromHalfBits($0.bitPattern) }
            return k.withUnsafeBufferPointer { k in v.withUnsafeBufferPointer { v in body(k, v) } }
        }
    }
}

/// The input of a BitLinear layer, where activations are quantized.
public enum ActivationSite: String, Sendable, CaseIterable {
    /// The normalized hidden state read by the Q, K and V projections.
    case attentionInput = "attn_qkv"
    /// The attention output read by the output projection.
    case attentionOutput = "attn_output"
    /// The normalized hidden state read by the gate and up projections.
    case feedForwardInput = "ffn_gate_up"
    /// The gated hidden state read by the down projection.
    case feedForwardHidden = "ffn_down"
}

/// Receives every BitLinear input: the site, the layer, and the float values (`width` per token).
public typealias ActivationObserver = (ActivationSite, Int, [Float], Int) -> Void

/// The forward pass, shared by every architecture (they differ in sub-norms, activation and RoPE layout).
struct Transformer: Sendable {
    let configuration: ModelConfiguration
    let embedding: FloatMatrix
    let layers: [DecoderLayer]
    let outputNorm: [Float]
    let output: FloatMatrix
    /// Rotary inverse frequencies, `1 / θ^(2i/d)`, in float32 as transformers computes them.
    let inverseFrequencies: [Float]

    init(configuration: ModelConfiguration, embedding: FloatMatrix, layers: [DecoderLayer], outputNorm: [Float], output: FloatMatrix) {
        self.configuration = configuration
        self.embedding = embedding
        self.layers = layers
        self.outputNorm = outputNorm
        self.output = output
        let dimension = configuration.headDimension
        inverseFrequencies = stride(from: 0, to: dimension, by: 2).map {
            1 / powf(configuration.ropeTheta, Float($0) / Float(dimension))
        }
    }

    /// Runs `tokens` at positions `cache.count…` through the model, appending to the cache; returns the
    /// logits of every position (`tokens.count × vocabulary`) or of the last only.
    func forward(_ tokens: [Int], cache: KeyValueCache, allPositions: Bool, threads: Int,
                 arithmetic: BitLinearArithmetic = .integer, observer: ActivationObserver? = nil) -> [Float] {
        let c = configuration
        let count = tokens.count
        let start = cache.count
        var hidden = [Float](repeating: 0, count: count * c.hiddenSize)
        hidden.withUnsafeMutableBufferPointer { buffer in
            for (index, token) in tokens.enumerated() { embedding.row(token, into: buffer.baseAddress! + index * c.hiddenSize) }
        }
        var normalized: [Float]
        var queries = [Float](repeating: 0, count: count * c.queryDimension)
        var keys = [Float](repeating: 0, count: count * c.keyValueDimension)
        var values = [Float](repeating: 0, count: count * c.keyValueDimension)
        var attention = [Float](repeating: 0, count: count * c.queryDimension)
        var projected = [Float](repeating: 0, count: count * c.hiddenSize)
        var gate = [Float](repeating: 0, count: count * c.intermediateSize)
        var up = [Float](repeating: 0, count: count * c.intermediateSize)

        for (layerIndex, layer) in layers.enumerated() {
            // Attention block.
            normalized = rmsNorm(hidden, weight: layer.attentionNorm, width: c.hiddenSize)
            observer?(.attentionInput, layerIndex, normalized, c.hiddenSize)
            let attentionInput = quantize(normalized, width: c.hiddenSize)
            layer.query.forward(attentionInput, into: &queries, threads: threads, arithmetic: arithmetic)
            layer.key.forward(attentionInput, into: &keys, threads: threads, arithmetic: arithmetic)
            layer.value.forward(attentionInput, into: &values, threads: threads, arithmetic: arithmetic)
            for index in 0..<count {
                rotate(&queries, offset: index * c.queryDimension, heads: c.headCount, position: start + index)
                rotate(&keys, offset: index * c.keyValueDimension, heads: c.keyValueHeadCount, position: start + index)
                keys.withUnsafeBufferPointer { k in
                    values.withUnsafeBufferPointer { v in
                        cache.store(layer: layerIndex, position: start + index,
                                    key: k.baseAddress! + index * c.keyValueDimension,
                                    value: v.baseAddress! + index * c.keyValueDimension)
                    }
                }
            }
            attend(queries, layer: layerIndex, cache: cache, start: start, count: count, into: &attention, threads: threads)
            if let subNorm = layer.attentionSubNorm {
                attention = rmsNorm(attention, weight: subNorm, width: c.queryDimension)
            }
            observer?(.attentionOutput, layerIndex, attention, c.queryDimension)
            layer.attentionOutput.forward(quantize(attention, width: c.queryDimension), into: &projected, threads: threads, arithmetic: arithmetic)
            for index in hidden.indices { hidden[index] += projected[index] }

            // Feed-forward block.
            normalized = rmsNorm(hidden, weight: layer.feedForwardNorm, width: c.hiddenSize)
            observer?(.feedForwardInput, layerIndex, normalized, c.hiddenSize)
            let feedForwardInput = quantize(normalized, width: c.hiddenSize)
            layer.gate.forward(feedForwardInput, into: &gate, threads: threads, arithmetic: arithmetic)
            layer.up.forward(feedForwardInput, into: &up, threads: threads, arithmetic: arithmetic)
            if c.architecture.usesSquaredReLU {
                for index in gate.indices {
                    let relu = max(gate[index], 0)
                    gate[index] = relu * relu * up[index]
                }
            } else {
                for index in gate.indices {
                    let x = gate[index]
                    gate[index] = x / (1 + expf(-x)) * up[index]
                }
            }
            if let subNorm = layer.feedForwardSubNorm {
                gate = rmsNorm(gate, weight: subNorm, width: c.intermediateSize)
            }
            observer?(.feedForwardHidden, layerIndex, gate, c.intermediateSize)
            layer.down.forward(quantize(gate, width: c.intermediateSize), into: &projected, threads: threads, arithmetic: arithmetic)
            for index in hidden.indices { hidden[index] += projected[index] }
        }
        cache.count = start + count

        let firstOutput = allPositions ? 0 : count - 1
        let outputs = count - firstOutput
        let finalHidden = Array(hidden[(firstOutput * c.hiddenSize)...])
        let normalizedOutput = rmsNorm(finalHidden, weight: outputNorm, width: c.hiddenSize)
        var logits = [Float](repeating: 0, count: outputs * output.rows)
        normalizedOutput.withUnsafeBufferPointer { input in
            logits.withUnsafeMutableBufferPointer { output.multiply(input.baseAddress!, tokens: outputs, into: $0.baseAddress!, threads: threads) }
        }
        return logits
    }

    /// Per-token int8 quantization of a BitLinear input (once per input, shared by the projections that read it).
    private func quantize(_ values: [Float], width: Int) -> QuantizedActivations {
        // Sizes are consistent by construction.
        try! AbsmaxQuantizer.quantize(values, rows: values.count / width, columns: width)
    }

    /// `x · rsqrt(mean(x²) + ε) · w` per row, in float32 as transformers' RMSNorm.
    private func rmsNorm(_ input: [Float], weight: [Float], width: Int) -> [Float] {
        var output = input
        let epsilon = configuration.rmsNormEpsilon
        for row in 0..<input.count / width {
            let base = row * width
            var sum: Float = 0
            for index in base..<base + width { sum += input[index] * input[index] }
            let scale = 1 / (sum / Float(width) + epsilon).squareRoot()
            for index in 0..<width { output[base + index] = weight[index] * (input[base + index] * scale) }
        }
        return output
    }

    /// Rotary position embedding of `heads` heads stored from `offset`.
    private func rotate(_ vectors: inout [Float], offset: Int, heads: Int, position: Int) {
        let dimension = configuration.headDimension
        let half = dimension / 2
        for pair in 0..<half {
            let angle = Float(position) * inverseFrequencies[pair]
            let cosine = cosf(angle), sine = sinf(angle)
            for head in 0..<heads {
                let base = offset + head * dimension
                let (first, second) = configuration.rotaryLayout == .halves ? (base + pair, base + pair + half) : (base + 2 * pair, base + 2 * pair + 1)
                let x = vectors[first], y = vectors[second]
                vectors[first] = x * cosine - y * sine
                vectors[second] = y * cosine + x * sine
            }
        }
    }

    /// Causal grouped-query attention of `count` new queries over the cache.
    private func attend(_ queries: [Float], layer: Int, cache: KeyValueCache, start: Int, count: Int, into output: inout [Float], threads: Int) {
        let c = configuration
        let dimension = c.headDimension
        let group = c.headCount / c.keyValueHeadCount
        let scale = 1 / Float(dimension).squareRoot()
        let width = c.keyValueDimension
        queries.withUnsafeBufferPointer { q in
            cache.withLayer(layer, positions: start + count) { k, v in
                    output.withUnsafeMutableBufferPointer { out in
                        let outBase = out.baseAddress!
                        parallelChunks(count * c.headCount, threads: threads) { range in
                            var scores = [Float](repeating: 0, count: start + count)
                            for item in range {
                                let (index, head) = item.quotientAndRemainder(dividingBy: c.headCount)
                                let query = q.baseAddress! + index * c.queryDimension + head * dimension
                                let kvOffset = (head / group) * dimension
                                let visible = start + index + 1
                                var maximum = -Float.infinity
                                for position in 0..<visible {
                                    let key = k.baseAddress! + position * width + kvOffset
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
                                let result = outBase + index * c.queryDimension + head * dimension
                                for d in 0..<dimension { result[d] = 0 }
                                for position in 0..<visible {
                                    let weight = scores[position] / total
                                    let value = v.baseAddress! + position * width + kvOffset
                                    for d in 0..<dimension { result[d] += weight * value[d] }
                                }
                            }
                        }
                    }
            }
        }
    }
}

extension TernaryLinear {
    func forward(_ input: QuantizedActivations, into output: inout [Float], threads: Int, arithmetic: BitLinearArithmetic) {
        output.withUnsafeMutableBufferPointer { forward(input, into: $0.baseAddress!, threads: threads, arithmetic: arithmetic) }
    }
}
