import BitNetQuantization

extension SafetensorsDType {
    /// Widens little-endian elements of this type to `Float` (integers convert by value).
    /// Throws ``FormatError/Code-swift.struct/unsupportedFormat`` for the 4-, 6- and 8-bit float types.
    public func floats(from bytes: UnsafeRawBufferPointer) throws -> [Float] {
        func widen<T: FixedWidthInteger>(_: T.Type, _ convert: (T) -> Float) -> [Float] {
            let stride = MemoryLayout<T>.size
            return (0..<bytes.count / stride).map { convert(T(littleEndian: bytes.loadUnaligned(fromByteOffset: $0 * stride, as: T.self))) }
        }
        switch self {
        case .f32: return widen(UInt32.self) { Float(bitPattern: $0) }
        case .f16: return widen(UInt16.self) { Float(Float16(bitPattern: $0)) }
        case .bf16: return widen(UInt16.self) { BFloat16(bitPattern: $0).floatValue }
        case .f64: return widen(UInt64.self) { Float(Double(bitPattern: $0)) }
        case .u8, .bool: return bytes.map { Float($0) }
        case .i8: return bytes.map { Float(Int8(bitPattern: $0)) }
        case .i16: return widen(Int16.self) { Float($0) }
        case .u16: return widen(UInt16.self) { Float($0) }
        case .i32: return widen(Int32.self) { Float($0) }
        case .u32: return widen(UInt32.self) { Float($0) }
        case .i64: return widen(Int64.self) { Float($0) }
        case .u64: return widen(UInt64.self) { Float($0) }
        case .f8_e5m2, .f8_e4m3, .f8_e8m0, .f4, .f6_e2m3, .f6_e3m2:
            throw FormatError(.unsupportedFormat, "cannot convert \(rawValue) elements to float")
        }
    }
}

extension GGMLType {
    /// Dequantizes tensor data of this type to `Float` with ggml's (gguf-py's) formulas.
    /// Supported: F32, F16, BF16, F64, I8, I16, I32, Q8_0, Q6_K, TQ1_0, TQ2_0 and I2_S.
    public func floats(from bytes: UnsafeRawBufferPointer, elementCount: Int) throws -> [Float] {
        switch self {
        case .f32: return try SafetensorsDType.f32.floats(from: bytes)
        case .f16: return try SafetensorsDType.f16.floats(from: bytes)
        case .bf16: return try SafetensorsDType.bf16.floats(from: bytes)
        case .f64: return try SafetensorsDType.f64.floats(from: bytes)
        case .i8: return try SafetensorsDType.i8.floats(from: bytes)
        case .i16: return try SafetensorsDType.i16.floats(from: bytes)
        case .i32: return try SafetensorsDType.i32.floats(from: bytes)
        case .q8_0: return try dequantized(Q8_0.self, bytes, elementCount)
        case .tq1_0: return try dequantized(TQ1_0.self, bytes, elementCount)
        case .tq2_0: return try dequantized(TQ2_0.self, bytes, elementCount)
        case .q6_K:
            var values = [Float](repeating: 0, count: elementCount)
            try values.withUnsafeMutableBufferPointer { try Q6_K.dequantize(bytes, into: $0) }
            return values
        case .i2_s:
            let tensor = try I2S.unpackTensor(bytes, rows: 1, columns: elementCount)
            return tensor.dequantized()
        default:
            throw FormatError(.unsupportedFormat, "dequantizing \(name) is not supported")
        }
    }

    private func dequantized<Format: BlockFormat>(_: Format.Type, _ bytes: UnsafeRawBufferPointer, _ count: Int) throws -> [Float] {
        var values = [Float](repeating: 0, count: count)
        try values.withUnsafeMutableBufferPointer { try Format.dequantize(bytes, into: $0) }
        return values
    }
}
