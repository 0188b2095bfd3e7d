import BitNetFormats
import BitNetQuantization

/// The bytes of one tensor: a view into a memory-mapped model file, or owned memory for weights that
/// had to be converted at load (Hugging Face layouts, float master weights, norm vectors).
public struct TensorBytes: Sendable {
    private enum Source: Sendable {
        case gguf(GGUFFile, GGUFTensorInfo)
        case safetensors(SafetensorsFile, SafetensorsTensorInfo)
        case owned([UInt8])
    }

    private let source: Source

    public static func mapped(_ file: GGUFFile, _ tensor: GGUFTensorInfo) -> TensorBytes { TensorBytes(source: .gguf(file, tensor)) }
    public static func mapped(_ file: SafetensorsFile, _ tensor: SafetensorsTensorInfo) -> TensorBytes { TensorBytes(source: .safetensors(file, tensor)) }
    public static func owned(_ bytes: [UInt8]) -> TensorBytes { TensorBytes(source: .owned(bytes)) }

    /// Whether the bytes live in the memory map of the model file (not copied).
    public var isMapped: Bool {
        if case .owned = source { return false }
        return true
    }

    public var count: Int {
        switch source {
        case .gguf(_, let tensor): tensor.byteCount
        case .safetensors(_, let tensor): tensor.byteCount
        case .owned(let bytes): bytes.count
        }
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch source {
        case .gguf(let file, let tensor): try file.withTensorData(tensor, body)
        case .safetensors(let file, let tensor): try file.withTensorData(tensor, body)
        case .owned(let bytes): try bytes.withUnsafeBytes(body)
        }
    }
}

/// How a weight's values are stored, row by row.
public enum WeightEncoding: String, Sendable, Hashable {
    /// llama.cpp's ternary blocks of 256 values with an f16 scale each.
    case tq2_0, tq1_0
    /// bitnet.cpp's 2-bit codes in blocks of 128, then one float32 scale for the tensor (also the
    /// in-memory form of weights converted at load).
    case i2_s
    /// One int8 code per weight, then one float32 scale: converted weights whose rows are not whole I2_S
    /// blocks (such as the FFN of 5460 of bitnet_b1_58-xl).
    case int8Codes = "int8"
    /// Float weights: embeddings, output projections, norms.
    case f32, f16, bf16, q8_0, q6_K

    public var isTernary: Bool { [.tq2_0, .tq1_0, .i2_s, .int8Codes].contains(self) }

    /// Bytes of `rows × columns` values, or nil when rows of `columns` are not whole blocks.
    public func byteCount(rows: Int, columns: Int) -> Int? {
        let (count, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow else { return nil }
        switch self {
        case .tq2_0: return try? TQ2_0.byteCount(valueCount: count, rowLength: columns)
        case .tq1_0: return try? TQ1_0.byteCount(valueCount: count, rowLength: columns)
        case .i2_s: return try? I2S.byteCount(valueCount: count, rowLength: columns)
        case .int8Codes: return count + 4
        case .f32: return count * 4
        case .f16, .bf16: return count * 2
        case .q8_0: return columns % 32 == 0 ? count / 32 * 34 : nil
        case .q6_K: return columns % 256 == 0 ? count / 256 * 210 : nil
        }
    }
}

/// One weight tensor as a backend receives it: its encoding, shape and bytes, checked to fit each other.
public struct WeightTensor: Sendable {
    public let name: String
    public let encoding: WeightEncoding
    /// Output features (1 for a norm vector).
    public let rows: Int
    /// Input features.
    public let columns: Int
    public let bytes: TensorBytes

    public init(name: String, encoding: WeightEncoding, rows: Int, columns: Int, bytes: TensorBytes) throws {
        guard let expected = encoding.byteCount(rows: rows, columns: columns) else {
            throw ModelError(.invalidModel, "tensor '\(name)': \(encoding) rows of \(columns) are not whole blocks")
        }
        guard bytes.count == expected else {
            throw ModelError(.invalidModel, "tensor '\(name)': \(bytes.count) bytes, expected \(expected) for \(rows)×\(columns) \(encoding)")
        }
        self.name = name
        self.encoding = encoding
        self.rows = rows
        self.columns = columns
        self.bytes = bytes
    }

    /// Packs a ternary tensor into memory: I2_S when rows are whole blocks of 128, else one byte per code.
    public init(name: String, ternary: TernaryTensor) throws {
        if ternary.columns % I2S.valuesPerBlock == 0 {
            try self.init(name: name, encoding: .i2_s, rows: ternary.rows, columns: ternary.columns, bytes: .owned(try I2S.pack(ternary)))
        } else {
            let bytes = ternary.codes.map { UInt8(bitPattern: $0) } + Swift.withUnsafeBytes(of: ternary.scale.bitPattern.littleEndian, Array.init)
            try self.init(name: name, encoding: .int8Codes, rows: ternary.rows, columns: ternary.columns, bytes: .owned(bytes))
        }
    }

    /// A float32 vector (a norm weight), owned.
    public init(name: String, vector: [Float]) throws {
        try self.init(name: name, encoding: .f32, rows: 1, columns: vector.count, bytes: .owned(vector.withUnsafeBytes(Array.init)))
    }
}

extension WeightTensor {
    /// Values sharing one scale in a ternary tensor: a TQ2_0/TQ1_0 block of 256, or a whole row (I2_S and int8
    /// codes have one scale for the tensor).
    public var ternaryBlockLength: Int { encoding == .i2_s || encoding == .int8Codes ? columns : 256 }

    /// Decodes row `row` of a ternary tensor whose bytes are `packed` into `codes` (`columns` values in -1…1) and
    /// `scales` (one per ``ternaryBlockLength`` values).
    public func decodeTernaryRow(_ row: Int, packed: UnsafeRawPointer, codes: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>) {
        switch encoding {
        case .tq2_0, .tq1_0:
            let blocks = columns / 256
            let blockBytes = encoding == .tq2_0 ? TQ2_0.bytesPerBlock : TQ1_0.bytesPerBlock
            for block in 0..<blocks {
                let source = packed + (row * blocks + block) * blockBytes
                scales[block] = encoding == .tq2_0
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
            UnsafeMutableRawPointer(codes).copyMemory(from: packed + row * columns, byteCount: columns)
            scales[0] = packed.loadUnaligned(fromByteOffset: rows * columns, as: Float.self)
        default:
            preconditionFailure("\(encoding) is not a ternary encoding")
        }
    }
}
