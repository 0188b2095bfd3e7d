import BitNetFormats
import BitNetQuantization
import CBitNetKernels
import Dispatch

/// The bytes of one tensor: a view into a memory-mapped model file, or owned memory for weights that
/// had to be converted at load (Hugging Face layouts, float master weights).
struct TensorBytes: Sendable {
    private enum Source: Sendable {
        case gguf(GGUFFile, GGUFTensorInfo)
        case safetensors(SafetensorsFile, SafetensorsTensorInfo)
        case owned([UInt8])
    }

    private let source: Source

    static func mapped(_ file: GGUFFile, _ tensor: GGUFTensorInfo) -> TensorBytes { TensorBytes(source: .gguf(file, tensor)) }
    static func mapped(_ file: SafetensorsFile, _ tensor: SafetensorsTensorInfo) -> TensorBytes { TensorBytes(source: .safetensors(file, tensor)) }
    static func owned(_ bytes: [UInt8]) -> TensorBytes { TensorBytes(source: .owned(bytes)) }

    var isMapped: Bool {
        if case .owned = source { return false }
        return true
    }

    var count: Int {
        switch source {
        case .gguf(_, let tensor): tensor.byteCount
        case .safetensors(_, let tensor): tensor.byteCount
        case .owned(let bytes): bytes.count
        }
    }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch source {
        case .gguf(let file, let tensor): try file.withTensorData(tensor, body)
        case .safetensors(let file, let tensor): try file.withTensorData(tensor, body)
        case .owned(let bytes): try bytes.withUnsafeBytes(body)
        }
    }
}

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
    enum Layout: Sendable {
        /// llama.cpp TQ2_0 or TQ1_0: an f16 scale per 256 values.
        case tq2_0, tq1_0
        /// bitnet.cpp I2_S: one float32 scale per tensor (also the in-memory form of converted weights).
        case i2_s
        /// One int8 code per weight and a float32 scale: converted weights whose rows are not whole
        /// I2_S blocks (such as the FFN of 5460 of bitnet_b1_58-xl).
        case int8
    }

    let name: String
    let layout: Layout
    /// Output features.
    let rows: Int
    /// Input features.
    let columns: Int
    let bytes: TensorBytes

    /// Wraps packed bytes after checking that their size fits the shape.
    init(name: String, layout: Layout, rows: Int, columns: Int, bytes: TensorBytes) throws {
        let expected: Int
        switch layout {
        case .tq2_0: expected = try TQ2_0.byteCount(valueCount: rows * columns, rowLength: columns)
        case .tq1_0: expected = try TQ1_0.byteCount(valueCount: rows * columns, rowLength: columns)
        case .i2_s: expected = try I2S.byteCount(valueCount: rows * columns, rowLength: columns)
        case .int8: expected = rows * columns + 4
        }
        guard bytes.count == expected else {
            throw InferenceError(.invalidModel, "tensor '\(name)': \(bytes.count) bytes, expected \(expected) for \(rows)×\(columns) \(layout)")
        }
        self.name = name
        self.layout = layout
        self.rows = rows
        self.columns = columns
        self.bytes = bytes
    }

    /// Packs a ternary tensor into memory: I2_S when rows are whole blocks of 128, else one byte per code.
    init(name: String, ternary: TernaryTensor) throws {
        if ternary.columns % I2S.valuesPerBlock == 0 {
            try self.init(name: name, layout: .i2_s, rows: ternary.rows, columns: ternary.columns, bytes: .owned(try I2S.pack(ternary)))
        } else {
            let bytes = ternary.codes.map { UInt8(bitPattern: $0) } + withUnsafeBytes(of: ternary.scale.bitPattern.littleEndian, Array.init)
            try self.init(name: name, layout: .int8, rows: ternary.rows, columns: ternary.columns, bytes: .owned(bytes))
        }
    }

    /// Values sharing one scale.
    private var blockLength: Int { layout == .i2_s || layout == .int8 ? columns : 256 }

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
        case .int8:
            (UnsafeMutableRawPointer(codes)).copyMemory(from: packed + row * columns, byteCount: columns)
            scales[0] = packed.loadUnaligned(fromByteOffset: rows * columns, as: Float.self)
        }
    }

    /// `output[t, o] = Σ_b d_b · (Σ_{i∈b} q[t, i] · w[o, i]) / a[t]` for every token t and output o; with
    /// `.fakeQuantizedFloat`, `Σ_i (q[t, i] / a[t]) · (w[o, i] · d_b)` in float32, as PyTorch's QAT forward.
    func forward(_ input: QuantizedActivations, into output: UnsafeMutablePointer<Float>, threads: Int, arithmetic: BitLinearArithmetic = .integer) {
        precondition(input.columns == columns)
        let tokens = input.rows
        if arithmetic == .integer, layout != .int8 {
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

/// How BitLinear layers compute.
public enum BitLinearArithmetic: Sendable {
    /// int8 × ternary with integer accumulation and one rescale: the deployed model.
    case integer
    /// Dequantized activations × dequantized weights in float32: the QAT forward pass as PyTorch runs it.
    case fakeQuantizedFloat
}

/// A float matrix stored row-major (`rows × columns`) in F32, F16, BF16, Q8_0 or Q6_K: embeddings and the
/// output projection, kept in their stored type.
struct FloatMatrix: Sendable {
    enum Element: Sendable { case f32, f16, bf16, q8_0, q6_K }

    let name: String
    let element: Element
    let rows: Int
    let columns: Int
    let bytes: TensorBytes

    init(name: String, element: Element, rows: Int, columns: Int, bytes: TensorBytes) throws {
        let expected: Int
        switch element {
        case .f32: expected = rows * columns * 4
        case .f16, .bf16: expected = rows * columns * 2
        case .q8_0:
            guard columns % 32 == 0 else { throw InferenceError(.invalidModel, "tensor '\(name)': Q8_0 rows of \(columns) are not whole blocks") }
            expected = rows * columns / 32 * 34
        case .q6_K:
            guard columns % 256 == 0 else { throw InferenceError(.invalidModel, "tensor '\(name)': Q6_K rows of \(columns) are not whole blocks") }
            expected = rows * columns / 256 * 210
        }
        guard bytes.count == expected else {
            throw InferenceError(.invalidModel, "tensor '\(name)': \(bytes.count) bytes, expected \(expected) for \(rows)×\(columns) \(element)")
        }
        self.name = name
        self.element = element
        self.rows = rows
        self.columns = columns
        self.bytes = bytes
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
