import BitNetModels
import BitNetQuantization
import CBitNetKernels
import Dispatch

/// Splits `count` items into contiguous chunks run on up to `threads` threads.
func parallelChunks(_ count: Int, threads: Int, _ body: (Range<Int>) -> Void) {
    let workers = max(1, min(threads, count))
    if workers == 1 {
        body(0..<count)
        return
    }
    let chunk = (count + workers - 1) / workers
    // Each worker gets a disjoint range; callers write only the outputs of their own range.
    nonisolated(unsafe) let body = body
    DispatchQueue.concurrentPerform(iterations: workers) { worker in
        let start = worker * chunk
        let end = min(count, start + chunk)
        if start < end { body(start..<end) }
    }
}

/// A BitLinear weight kept in its packed form: each output row is decoded to int8 codes when it is
/// used, multiplied with int8 activations in integer arithmetic, and rescaled once per block.
struct TernaryLinear: Sendable {
    /// TQ2_0, TQ1_0, I2_S or int8 codes.
    let layout: WeightEncoding
    /// Output features.
    let rows: Int
    /// Input features.
    let columns: Int
    let bytes: TensorBytes

    init(_ weight: WeightTensor) {
        precondition(weight.encoding.isTernary, "\(weight.name) is not ternary")
        layout = weight.encoding
        rows = weight.rows
        columns = weight.columns
        bytes = weight.bytes
    }

    /// Values sharing one scale.
    private var blockLength: Int { layout == .i2_s || layout == .int8Codes ? columns : 256 }

    /// Decodes row `row` into `codes` (`columns` values) and `scales` (one per block).
    private func decodeRow(_ row: Int, packed: UnsafeRawPointer, codes: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>) {
        switch layout {
        case .tq2_0, .tq1_0:
            let blocks = columns / 256
            let blockBytes = layout == .tq2_0 ? TQ2_0.bytesPerBlock : TQ1_0.bytesPerBlock
            for block in 0..<blocks {
                let source = packed + (row * blocks + block) * blockBytes
                scales[block] = layout == .tq2_0
                    ? TQ2_0.unpackBlockUnchecked(source, into: codes + block * 256)
                    : (try? TQ1_0.unpackBlock(source, into: codes + block * 256)) ?? 0  // TQ1_0 never throws
            }
        case .i2_s:
            let blocks = columns / I2S.valuesPerBlock
            for block in 0..<blocks {
                I2S.unpackBlock(packed + (row * blocks + block) * I2S.bytesPerBlock, into: codes + block * I2S.valuesPerBlock)
            }
            scales[0] = packed.loadUnaligned(fromByteOffset: rows * columns / 4, as: Float.self)
        case .int8Codes:
            (UnsafeMutableRawPointer(codes)).copyMemory(from: packed + row * columns, byteCount: columns)
            scales[0] = packed.loadUnaligned(fromByteOffset: rows * columns, as: Float.self)
        default:
            preconditionFailure("\(layout) is not a ternary layout")
        }
    }

    /// `output[t, o] = Σ_b d_b · (Σ_{i∈b} q[t, i] · w[o, i]) / a[t]` for every token t and output o; with
    /// `.fakeQuantizedFloat`, `Σ_i (q[t, i] / a[t]) · (w[o, i] · d_b)` in float32, as PyTorch's QAT forward.
    func forward(_ input: QuantizedActivations, into output: UnsafeMutablePointer<Float>, threads: Int, arithmetic: BitLinearArithmetic = .integer) {
        precondition(input.columns == columns)
        let tokens = input.rows
        if arithmetic == .integer, layout != .int8Codes {
            forwardWithKernels(input, into: output, threads: threads)
            return
        }
        let blockLength = self.blockLength
        let blocks = columns / blockLength
        bytes.withUnsafeBytes { packed in
            input.values.withUnsafeBufferPointer { activations in
                parallelChunks(rows, threads: threads) { rowRange in
                    withUnsafeTemporaryAllocation(of: Int8.self, capacity: columns) { codes in
                        withUnsafeTemporaryAllocation(of: Float.self, capacity: blocks) { scales in
                            for row in rowRange {
                                decodeRow(row, packed: packed.baseAddress!, codes: codes.baseAddress!, scales: scales.baseAddress!)
                                if arithmetic == .fakeQuantizedFloat {
                                    for token in 0..<tokens {
                                        let x = activations.baseAddress! + token * columns
                                        let a = input.scales[token]
                                        var sum: Float = 0
                                        for index in 0..<columns {
                                            sum += (Float(x[index]) / a) * (Float(codes[index]) * scales[index / blockLength])
                                        }
                                        output[token * rows + row] = sum
                                    }
                                    continue
                                }
                                for token in 0..<tokens {
                                    let x = activations.baseAddress! + token * columns
                                    var sum: Float = 0
                                    for block in 0..<blocks {
                                        var accumulator: Int32 = 0
                                        let start = block * blockLength
                                        for index in start..<start + blockLength {
                                            accumulator &+= Int32(x[index]) &* Int32(codes[index])
                                        }
                                        sum += scales[block] * Float(accumulator)
                                    }
                                    output[token * rows + row] = sum / input.scales[token]
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

extension TernaryLinear {
    /// The integer path through the C kernels, reading the packed bytes directly (no decode step).
    func forwardWithKernels(_ input: QuantizedActivations, into output: UnsafeMutablePointer<Float>, threads: Int) {
        let tokens = input.rows
        let blocks = columns / 256
        // Σ x per token (I2_S) or per 256-value block (TQ2_0), computed once for all rows.
        var xSums = [Int32](repeating: 0, count: tokens * max(blocks, 1))
        input.values.withUnsafeBufferPointer { x in
            for token in 0..<tokens {
                for index in 0..<columns {
                    let slot = layout == .i2_s ? token : token * blocks + index / 256
                    xSums[slot] &+= Int32(x[token * columns + index])
                }
            }
        }
        bytes.withUnsafeBytes { packed in
            input.values.withUnsafeBufferPointer { activations in
                xSums.withUnsafeBufferPointer { sums in
                    parallelChunks(rows, threads: threads) { rowRange in
                        withUnsafeTemporaryAllocation(of: Int32.self, capacity: max(blocks, 1)) { blockSums in
                            for row in rowRange {
                                for token in 0..<tokens {
                                    let x = activations.baseAddress! + token * columns
                                    var sum: Float
                                    if layout == .tq2_0 || layout == .tq1_0 {
                                        let blockBytes = layout == .tq2_0 ? TQ2_0.bytesPerBlock : TQ1_0.bytesPerBlock
                                        let rowBytes = packed.baseAddress!.assumingMemoryBound(to: UInt8.self) + row * blocks * blockBytes
                                        if layout == .tq2_0 {
                                            bitnet_tq2_0_block_dots(rowBytes, x, sums.baseAddress! + token * blocks, Int64(blocks), blockSums.baseAddress!)
                                        } else {
                                            bitnet_tq1_0_block_dots(rowBytes, x, sums.baseAddress! + token * blocks, Int64(blocks), blockSums.baseAddress!)
                                        }
                                        sum = 0
                                        for block in 0..<blocks {
                                            // d, the f16 block scale, is the block's last two bytes.
                                            let d = floatFromHalfBits(UInt16(littleEndian: (UnsafeRawPointer(rowBytes) + block * blockBytes)
                                                .loadUnaligned(fromByteOffset: blockBytes - 2, as: UInt16.self)))
                                            sum += d * Float(blockSums[block])
                                        }
                                    } else {
                                        let rowBytes = packed.baseAddress!.assumingMemoryBound(to: UInt8.self) + row * columns / 4
                                        let scale = packed.loadUnaligned(fromByteOffset: rows * columns / 4, as: Float.self)
                                        sum = scale * Float(bitnet_i2_s_dot(rowBytes, x, sums[token], Int64(columns)))
                                    }
                                    output[token * rows + row] = sum / input.scales[token]
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A float matrix stored row-major (`rows × columns`) in F32, F16, BF16, Q8_0 or Q6_K: embeddings and the
/// output projection, kept in their stored type.
struct FloatMatrix: Sendable {
    let element: WeightEncoding
    let rows: Int
    let columns: Int
    let bytes: TensorBytes

    init(_ weight: WeightTensor) {
        precondition(!weight.encoding.isTernary, "\(weight.name) is ternary")
        element = weight.encoding
        rows = weight.rows
        columns = weight.columns
        bytes = weight.bytes
    }

    private func decodeRow(_ row: Int, _ raw: UnsafeRawPointer, into output: UnsafeMutablePointer<Float>) {
        switch element {
        case .f32:
            for index in 0..<columns { output[index] = raw.loadUnaligned(fromByteOffset: (row * columns + index) * 4, as: Float.self) }
        case .f16:
            for index in 0..<columns {
                output[index] = floatFromHalfBits(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: (row * columns + index) * 2, as: UInt16.self)))
            }
        case .bf16:
            for index in 0..<columns {
                output[index] = BFloat16(bitPattern: raw.loadUnaligned(fromByteOffset: (row * columns + index) * 2, as: UInt16.self)).floatValue
            }
        case .q8_0:
            let blocks = columns / 32
            for block in 0..<blocks {
                Q8_0.dequantizeBlock(raw + (row * blocks + block) * 34, into: output + block * 32)
            }
        case .q6_K:
            let blocks = columns / 256
            for block in 0..<blocks {
                Q6_K.dequantizeBlock(raw + (row * blocks + block) * 210, into: output + block * 256)
            }
        default:
            preconditionFailure("\(element) is not a float encoding")
        }
    }

    /// Copies row `row` (an embedding) into `output` as floats.
    func row(_ row: Int, into output: UnsafeMutablePointer<Float>) {
        bytes.withUnsafeBytes { decodeRow(row, $0.baseAddress!, into: output) }
    }

    /// `output[t, r] = Σ_c input[t, c] · W[r, c]` for `tokens` input rows.
    func multiply(_ input: UnsafePointer<Float>, tokens: Int, into output: UnsafeMutablePointer<Float>, threads: Int) {
        if element == .f16 || element == .bf16 || element == .f32 {
            // Rows are read in place by the C kernels (AVX2/F16C where available).
            bytes.withUnsafeBytes { raw in
                parallelChunks(rows, threads: threads) { rowRange in
                    for row in rowRange {
                        for token in 0..<tokens {
                            let x = input + token * columns
                            let value: Float
                            switch element {
                            case .f16: value = bitnet_dot_f16(raw.baseAddress!.assumingMemoryBound(to: UInt16.self) + row * columns, x, Int64(columns))
                            case .bf16: value = bitnet_dot_bf16(raw.baseAddress!.assumingMemoryBound(to: UInt16.self) + row * columns, x, Int64(columns))
                            default: value = bitnet_dot_f32(raw.baseAddress!.assumingMemoryBound(to: Float.self) + row * columns, x, Int64(columns))
                            }
                            output[token * rows + row] = value
                        }
                    }
                }
            }
            return
        }
        bytes.withUnsafeBytes { raw in
            parallelChunks(rows, threads: threads) { rowRange in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: columns) { weights in
                    for row in rowRange {
                        decodeRow(row, raw.baseAddress!, into: weights.baseAddress!)
                        for token in 0..<tokens {
                            let x = input + token * columns
                            var sum: Float = 0
                            for index in 0..<columns { sum += x[index] * weights[index] }
                            output[token * rows + row] = sum
                        }
                    }
                }
            }
        }
    }
}
