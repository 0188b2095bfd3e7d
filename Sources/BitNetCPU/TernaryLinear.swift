import BitNetModels
import BitNetQuantization
import CBitNetKernels
import Foundation

/// A BitLinear weight kept in its packed form: each output row is decoded to int8 codes when it is
/// used, multiplied with int8 activations in integer arithmetic, and rescaled once per block.
struct TernaryLinear: Sendable {
    let weight: WeightTensor
    /// Which rows have one scale in every block: found on the first kernel matmul, then passed to every other.
    private let uniformRows = UniformRows()
    /// The rows repacked into lookup panels, where ``init(_:repackingOn:)`` made them.
    let lookupPanels: LookupPanels?

    /// With `pool`, also repacks the rows into lookup panels where the matrix allows it (the stored rows, where
    /// mapped, are then handed back: see ``LookupPanels``).
    init(_ weight: WeightTensor, repackingOn pool: KernelPool? = nil) {
        precondition(weight.encoding.isTernary, "\(weight.name) is not ternary")
        self.weight = weight
        lookupPanels = pool.flatMap { pool in TernaryLinear.kernelEncoding(of: weight.encoding).flatMap { LookupPanels(weight, encoding: $0, pool: pool) } }
    }

    /// TQ2_0, TQ1_0, I2_S or int8 codes.
    var layout: WeightEncoding { weight.encoding }
    /// Output features.
    var rows: Int { weight.rows }
    /// Input features.
    var columns: Int { weight.columns }
    var bytes: TensorBytes { weight.bytes }

    /// `output[t, o] = Σ_b d_b · (Σ_{i∈b} q[t, i] · w[o, i]) / a[t]` for every token t and output o; with
    /// `.fakeQuantizedFloat`, `Σ_i (q[t, i] / a[t]) · (w[o, i] · d_b)` in float32, as PyTorch's QAT forward.
    func forward(_ input: QuantizedActivations, into output: UnsafeMutablePointer<Float>, pool: KernelPool, arithmetic: BitLinearArithmetic = .integer) {
        precondition(input.columns == columns)
        let tokens = input.rows
        if arithmetic == .integer, let encoding = kernelEncoding {
            forwardWithKernels(input, encoding: encoding, into: output, pool: pool)
            return
        }
        let blockLength = weight.ternaryBlockLength
        let blocks = columns / blockLength
        bytes.withUnsafeBytes { packed in
            input.values.withUnsafeBufferPointer { activations in
                pool.run(rows, grain: 16) { rowRange in
                    withUnsafeTemporaryAllocation(of: Int8.self, capacity: columns) { codes in
                        withUnsafeTemporaryAllocation(of: Float.self, capacity: blocks) { scales in
                            for row in rowRange {
                                weight.decodeTernaryRow(row, packed: packed.baseAddress!, codes: codes.baseAddress!, scales: scales.baseAddress!)
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
    /// The C kernels' name for this layout, or nil for int8 codes (rows that are not whole I2_S blocks).
    var kernelEncoding: bitnet_ternary_encoding? { Self.kernelEncoding(of: layout) }

    static func kernelEncoding(of layout: WeightEncoding) -> bitnet_ternary_encoding? {
        switch layout {
        case .tq2_0: BITNET_TERNARY_TQ2_0
        case .tq1_0: BITNET_TERNARY_TQ1_0
        case .i2_s: BITNET_TERNARY_I2_S
        default: nil
        }
    }

    /// The integer path: one C call for the whole matmul, reading the packed bytes in place (no decode step);
    /// rows split over the pool's threads, each weight tile read once for all tokens.
    func forwardWithKernels(_ input: QuantizedActivations, encoding: bitnet_ternary_encoding, into output: UnsafeMutablePointer<Float>, pool: KernelPool) {
        let status = bytes.withUnsafeBytes { packed in
            var matrix = bitnet_ternary_matrix(encoding: Int32(encoding.rawValue), rows: Int64(rows), columns: Int64(columns),
                                               data: packed.baseAddress!.assumingMemoryBound(to: UInt8.self), uniform_rows: nil,
                                               lookup_panels: lookupPanels?.pointer)
            // Matmuls that read the panels take each row's one scale from them: no flags, no reads of the stored rows.
            let flags = readsLookupPanels ? [] : uniformRows.flags(of: matrix, pool: pool)
            return flags.withUnsafeBufferPointer { flags in
                matrix.uniform_rows = flags.isEmpty ? nil : flags.baseAddress
                return input.values.withUnsafeBufferPointer { x in
                    input.scales.withUnsafeBufferPointer { scales in
                        bitnet_ternary_matmul(pool.pointer, &matrix, x.baseAddress!, scales.baseAddress!, Int64(input.rows), output)
                    }
                }
            }
        }
        // The only failure is memory for a matmul's workspace (reordered activations, unpacked rows: ~100s of KiB).
        precondition(status == 0, "out of memory for the workspace of a \(rows)×\(columns) matmul")
    }
}

/// Per row of a ternary matrix, 1 where all its blocks share one scale (BitNet's per-tensor scale), else 0: a
/// property of the stored bytes, found once (``bitnet_ternary_uniform_rows``) so no matmul reads every block's
/// scale again. Shared by the copies of a ``TernaryLinear``; the lock makes the first finder the only one.
private final class UniformRows: @unchecked Sendable {
    private let lock = NSLock()
    private var found: [UInt8]?

    func flags(of matrix: bitnet_ternary_matrix, pool: KernelPool) -> [UInt8] {
        lock.withLock {
            if let found { return found }
            var matrix = matrix
            var flags = [UInt8](repeating: 0, count: Int(matrix.rows))
            _ = bitnet_ternary_uniform_rows(pool.pointer, &matrix, &flags)
            found = flags
            return flags
        }
    }
}

extension TernaryLinear {
    /// Whether matmuls on the calling thread's level read the lookup panels (up to 32 tokens by lookup, longer prompts
    /// from the panels unpacked) rather than the stored rows.
    var readsLookupPanels: Bool { lookupPanels != nil && bitnet_kernels_decode_by_lookup() != 0 }

    /// The bytes a matmul reads: the lookup panels where it reads them, else the stored rows.
    func withBytesRead<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        if readsLookupPanels, let panels = lookupPanels { return body(UnsafeRawBufferPointer(panels.bytes)) }
        return bytes.withUnsafeBytes(body)
    }
}

/// A ternary matrix's rows repacked once for table lookups (``bitnet_ternary_lookup_pack``: panels of 32 rows at 5
/// bits per three weights), owned here and shared by the copies of a ``TernaryLinear``. Decode steps and batches look
/// the panels up and longer prompts unpack them, so the stored rows, read once here, are handed back to the system
/// where they are mapped from the file: the weights are not kept twice.
final class LookupPanels: Sendable {
    nonisolated(unsafe) let bytes: UnsafeMutableRawBufferPointer

    /// Nil where the matrix cannot be repacked (rows not a multiple of 32, rows with block scales, the unused code 3)
    /// or there is no memory to do it.
    init?(_ weight: WeightTensor, encoding: bitnet_ternary_encoding, pool: KernelPool) {
        let made: UnsafeMutableRawBufferPointer? = weight.bytes.withUnsafeBytes { packed in
            var matrix = bitnet_ternary_matrix(encoding: Int32(encoding.rawValue), rows: Int64(weight.rows), columns: Int64(weight.columns),
                                               data: packed.baseAddress!.assumingMemoryBound(to: UInt8.self), uniform_rows: nil,
                                               lookup_panels: nil)
            let count = Int(bitnet_ternary_lookup_bytes(&matrix))
            guard count > 0 else { return nil }
            let panels = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 64)
            guard bitnet_ternary_lookup_pack(pool.pointer, &matrix, panels.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0 else {
                panels.deallocate()
                return nil
            }
            return panels
        }
        guard let made else { return nil }
        bytes = made
        if weight.bytes.isMapped { weight.bytes.withUnsafeBytes(LookupPanels.release) }
    }

    /// Drops the whole pages of mapped, never-written bytes from this process (a read would page them in again from
    /// the file).
    private static func release(_ mapped: UnsafeRawBufferPointer) {
        guard let base = mapped.baseAddress else { return }
        let page = UInt(sysconf(Int32(_SC_PAGESIZE)))
        let start = (UInt(bitPattern: base) + page - 1) / page * page, end = (UInt(bitPattern: base) + UInt(mapped.count)) / page * page
        if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), Int(end - start), MADV_DONTNEED) }
    }

    var pointer: UnsafePointer<UInt8> { UnsafePointer(bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)) }

    deinit { bytes.deallocate() }
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

    /// The C kernels' name for this element type.
    private var kernelEncoding: bitnet_float_encoding {
        switch element {
        case .f32: BITNET_FLOAT_F32
        case .f16: BITNET_FLOAT_F16
        case .bf16: BITNET_FLOAT_BF16
        case .q8_0: BITNET_FLOAT_Q8_0
        case .q6_K: BITNET_FLOAT_Q6_K
        default: preconditionFailure("\(element) is not a float encoding")
        }
    }

    /// `output[t, r] = Σ_c input[t, c] · W[r, c]` for `tokens` input rows; the C kernels read the rows in place.
    func multiply(_ input: UnsafePointer<Float>, tokens: Int, into output: UnsafeMutablePointer<Float>, pool: KernelPool) {
        let status = bytes.withUnsafeBytes { raw in
            bitnet_float_matmul(pool.pointer, Int32(kernelEncoding.rawValue), raw.baseAddress!, Int64(rows), Int64(columns), input, Int64(tokens), output)
        }
        // The only failure is memory for Q6_K's int8 activations (under 300 bytes per 256 values).
        precondition(status == 0, "out of memory for the activations of a \(rows)×\(columns) Q6_K matmul")
    }
}
