/// A llama.cpp block quantization: each run of ``valuesPerBlock`` consecutive values of a row becomes
/// ``bytesPerBlock`` bytes, and rows must hold a whole number of blocks.
///
/// Conforming types implement one block; the row validation and loops live here, once.
public protocol BlockFormat {
    /// ggml's name of the type, for messages.
    static var name: String { get }
    static var valuesPerBlock: Int { get }
    static var bytesPerBlock: Int { get }
    /// Quantizes `valuesPerBlock` finite floats at `values` into one block at `block`.
    static func quantizeBlock(_ values: UnsafePointer<Float>, into block: UnsafeMutableRawPointer)
    /// Expands one block into `valuesPerBlock` floats, as gguf-py's `dequantize` does.
    static func dequantizeBlock(_ block: UnsafeRawPointer, into values: UnsafeMutablePointer<Float>)
}

extension BlockFormat {
    /// Bytes taken by `valueCount` values in rows of `rowLength`; throws if rows do not fill whole blocks.
    public static func byteCount(valueCount: Int, rowLength: Int) throws -> Int {
        try checkWholeRows(valueCount: valueCount, rowLength: rowLength, multipleOf: valuesPerBlock, format: name)
        return valueCount / valuesPerBlock * bytesPerBlock
    }

    /// Quantizes rows of `rowLength` values into `output`, byte-identical to gguf-py's `quants.quantize`.
    public static func quantize(
        _ values: UnsafeBufferPointer<Float>, rowLength: Int, into output: UnsafeMutableRawBufferPointer
    ) throws {
        let needed = try byteCount(valueCount: values.count, rowLength: rowLength)
        guard output.count == needed else {
            throw QuantizationError.sizeMismatch("\(name) output bytes", expected: needed, actual: output.count)
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw QuantizationError(.nonFiniteValue, "value \(bad) is \(values[bad]); \(name) cannot encode it")
        }
        guard let source = values.baseAddress, let destination = output.baseAddress else { return }
        for block in 0..<values.count / valuesPerBlock {
            quantizeBlock(source + block * valuesPerBlock, into: destination + block * bytesPerBlock)
        }
    }

    /// Array convenience for ``quantize(_:rowLength:into:)``.
    public static func quantize(_ values: [Float], rowLength: Int) throws -> [UInt8] {
        let count = try byteCount(valueCount: values.count, rowLength: rowLength)
        var output = [UInt8](repeating: 0, count: count)
        try values.withUnsafeBufferPointer { source in
            try output.withUnsafeMutableBytes { try quantize(source, rowLength: rowLength, into: $0) }
        }
        return output
    }

    /// Expands whole blocks of `bytes` into `output` (`valuesPerBlock` floats per block).
    public static func dequantize(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<Float>) throws {
        guard bytes.count % bytesPerBlock == 0, output.count == bytes.count / bytesPerBlock * valuesPerBlock else {
            throw QuantizationError.sizeMismatch(
                "\(name) dequantized values for \(bytes.count) bytes",
                expected: bytes.count / bytesPerBlock * valuesPerBlock, actual: output.count)
        }
        guard let source = bytes.baseAddress, let destination = output.baseAddress else { return }
        for block in 0..<bytes.count / bytesPerBlock {
            dequantizeBlock(source + block * bytesPerBlock, into: destination + block * valuesPerBlock)
        }
    }

    /// Array convenience for ``dequantize(_:into:)``.
    public static func dequantize(_ bytes: [UInt8]) throws -> [Float] {
        var output = [Float](repeating: 0, count: bytes.count / bytesPerBlock * valuesPerBlock)
        try bytes.withUnsafeBytes { source in
            try output.withUnsafeMutableBufferPointer { try dequantize(source, into: $0) }
        }
        return output
    }
}

/// Throws unless `valueCount` values form whole rows of `rowLength`, a positive multiple of `multiple`.
func checkWholeRows(valueCount: Int, rowLength: Int, multipleOf multiple: Int, format: String) throws {
    guard rowLength > 0, rowLength % multiple == 0 else {
        throw QuantizationError.rowLength(rowLength, format: format, multipleOf: multiple)
    }
    guard valueCount % rowLength == 0 else {
        throw QuantizationError(.sizeMismatch, "\(valueCount) values do not form whole rows of \(rowLength)")
    }
}

/// A storage form of a ``TernaryTensor``: codes in {-1, 0, 1} and a scale (TQ1_0, TQ2_0, I2_S).
public protocol TernaryPacking {
    /// ggml's name of the type, for messages.
    static var name: String { get }
    /// Bytes taken by `valueCount` codes in rows of `rowLength`; throws if the rows do not fit the format.
    static func byteCount(valueCount: Int, rowLength: Int) throws -> Int
    /// Packs rows of codes in {-1, 0, 1} with the tensor scale into exactly `byteCount` bytes.
    static func pack(_ codes: UnsafeBufferPointer<Int8>, rowLength: Int, scale: Float, into output: UnsafeMutableRawBufferPointer) throws
    /// Unpacks a `rows × columns` tensor with one scale.
    static func unpackTensor(_ bytes: UnsafeRawBufferPointer, rows: Int, columns: Int) throws -> TernaryTensor
}

extension TernaryPacking {
    /// Packs a ternary tensor into a new byte array.
    public static func pack(_ tensor: TernaryTensor) throws -> [UInt8] {
        let count = try byteCount(valueCount: tensor.codes.count, rowLength: tensor.columns)
        var output = [UInt8](repeating: 0, count: count)
        try tensor.codes.withUnsafeBufferPointer { codes in
            try output.withUnsafeMutableBytes { try pack(codes, rowLength: tensor.columns, scale: tensor.scale, into: $0) }
        }
        return output
    }
}

/// A block format that holds ternary codes and one f16 scale `d` per block (TQ1_0, TQ2_0).
///
/// Besides the float path shared with gguf-py, these pack a ``TernaryTensor`` directly: every block's
/// `d` is the tensor scale, which is what llama.cpp's converter produces for BitNet weights.
public protocol TernaryBlockFormat: BlockFormat, TernaryPacking {
    /// Packs `valuesPerBlock` codes in {-1, 0, 1} and the block scale `d` into one block.
    static func packBlock(_ codes: UnsafePointer<Int8>, scale: Float, into block: UnsafeMutableRawPointer)
    /// Unpacks one block's codes, returning its f16 scale `d`; throws on a code outside {-1, 0, 1}.
    static func unpackBlock(_ block: UnsafeRawPointer, into codes: UnsafeMutablePointer<Int8>) throws -> Float
}

extension TernaryBlockFormat {
    /// gguf-py's quantization of ternary block formats: `d = max|x|`, codes `roundf(x / d)` (ties away from zero).
    public static func quantizeBlock(_ values: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        var absmax: Float = 0
        for index in 0..<valuesPerBlock { absmax = max(absmax, values[index].magnitude) }
        let inverse: Float = absmax == 0 ? 0 : 1 / absmax
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: valuesPerBlock) { codes in
            for index in 0..<valuesPerBlock {
                let rounded = (values[index] * inverse).rounded(.toNearestOrAwayFromZero)
                codes[index] = rounded >= 1 ? 1 : (rounded <= -1 ? -1 : 0)
            }
            packBlock(codes.baseAddress!, scale: absmax, into: block)
        }
    }

    /// Packs rows of ternary codes, writing `scale` as every block's `d`.
    public static func pack(
        _ codes: UnsafeBufferPointer<Int8>, rowLength: Int, scale: Float, into output: UnsafeMutableRawBufferPointer
    ) throws {
        let needed = try byteCount(valueCount: codes.count, rowLength: rowLength)
        guard output.count == needed else {
            throw QuantizationError.sizeMismatch("\(name) output bytes", expected: needed, actual: output.count)
        }
        if let bad = codes.firstIndex(where: { $0 < -1 || $0 > 1 }) {
            throw QuantizationError(.invalidTernaryCode, "code \(codes[bad]) at index \(bad) is not in {-1, 0, 1}")
        }
        guard let source = codes.baseAddress, let destination = output.baseAddress else { return }
        for block in 0..<codes.count / valuesPerBlock {
            packBlock(source + block * valuesPerBlock, scale: scale, into: destination + block * bytesPerBlock)
        }
    }

    /// Unpacks whole blocks into codes, returning each block's scale `d`.
    public static func unpack(_ bytes: UnsafeRawBufferPointer, into codes: UnsafeMutableBufferPointer<Int8>) throws -> [Float] {
        guard bytes.count % bytesPerBlock == 0, codes.count == bytes.count / bytesPerBlock * valuesPerBlock else {
            throw QuantizationError.sizeMismatch(
                "\(name) codes for \(bytes.count) bytes", expected: bytes.count / bytesPerBlock * valuesPerBlock, actual: codes.count)
        }
        guard let source = bytes.baseAddress, let destination = codes.baseAddress else { return [] }
        return try (0..<bytes.count / bytesPerBlock).map { block in
            try unpackBlock(source + block * bytesPerBlock, into: destination + block * valuesPerBlock)
        }
    }

    /// Unpacks a whole tensor of `rows × columns` into a ``TernaryTensor``; blocks must share one scale.
    public static func unpackTensor(_ bytes: UnsafeRawBufferPointer, rows: Int, columns: Int) throws -> TernaryTensor {
        let needed = try byteCount(valueCount: rows * columns, rowLength: columns)
        guard bytes.count == needed else {
            throw QuantizationError.sizeMismatch("\(name) bytes for \(rows)×\(columns)", expected: needed, actual: bytes.count)
        }
        var codes = [Int8](repeating: 0, count: rows * columns)
        let scales = try codes.withUnsafeMutableBufferPointer { try unpack(bytes, into: $0) }
        // All-zero blocks may carry d = 0 (gguf-py writes the block absmax); they do not decide the scale.
        let nonzero = scales.filter { $0 != 0 }
        let scale = nonzero.first ?? 0
        if let other = nonzero.first(where: { $0 != scale }) {
            throw QuantizationError(.sizeMismatch, "\(name) blocks carry different scales (\(scale) and \(other)); not a per-tensor ternary weight")
        }
        return TernaryTensor(uncheckedRows: rows, columns: columns, codes: codes, scale: scale)
    }
}
