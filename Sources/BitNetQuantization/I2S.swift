/// bitnet.cpp's I2_S (ggml type 36 in its fork): 2 bits per ternary value and one float32 scale per tensor.
///
/// The flattened tensor is cut into blocks of 128 values, each stored in 32 bytes: byte j of a block
/// holds the values j, j+32, j+64 and j+96 at bits 6–7, 4–5, 2–3 and 0–1, as codes 0, 1, 2 meaning
/// −1, 0, +1. Blocks run across row ends. After the `n/4` packed bytes comes a 32-byte tail whose first
/// four bytes are the float32 scale (little-endian); the rest is zero.
public enum I2S: TernaryPacking {
    public static let name = "i2_s"
    public static let valuesPerBlock = 128
    public static let bytesPerBlock = 32
    /// Bytes after the packed codes: the float32 scale and padding.
    public static let tailBytes = 32

    /// Bytes of an I2_S tensor of `valueCount` values in rows of `rowLength`.
    public static func byteCount(valueCount: Int, rowLength: Int) throws -> Int {
        try checkWholeRows(valueCount: valueCount, rowLength: rowLength, multipleOf: valuesPerBlock, format: name)
        return valueCount / 4 + tailBytes
    }

    /// Packs codes in {-1, 0, 1} and the tensor scale into `output` (exactly ``byteCount(valueCount:rowLength:)`` bytes).
    public static func pack(
        _ codes: UnsafeBufferPointer<Int8>, rowLength: Int, scale: Float, into output: UnsafeMutableRawBufferPointer
    ) throws {
        let needed = try byteCount(valueCount: codes.count, rowLength: rowLength)
        guard output.count == needed else {
            throw QuantizationError.sizeMismatch("I2_S output bytes", expected: needed, actual: output.count)
        }
        let packed = output.bindMemory(to: UInt8.self)
        for block in 0..<codes.count / valuesPerBlock {
            let base = block * valuesPerBlock
            for byte in 0..<32 {
                var value: UInt8 = 0
                for group in 0..<4 {
                    let code = codes[base + group * 32 + byte]
                    guard code >= -1, code <= 1 else {
                        throw QuantizationError(.invalidTernaryCode, "code \(code) at index \(base + group * 32 + byte) is not in {-1, 0, 1}")
                    }
                    value |= UInt8(code + 1) << (6 - 2 * group)
                }
                packed[block * bytesPerBlock + byte] = value
            }
        }
        let tail = codes.count / 4
        for index in tail..<needed { packed[index] = 0 }
        output.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: tail, as: UInt32.self)
    }

    /// Unpacks one block of 128 codes without validation (the unused code 3 reads as +2, as in bitnet.cpp):
    /// the inference engine's decode step, for bytes whose extent was validated when the file was opened.
    @inlinable public static func unpackBlock(_ block: UnsafeRawPointer, into codes: UnsafeMutablePointer<Int8>) {
        let bytes = block.assumingMemoryBound(to: UInt8.self)
        for byte in 0..<32 {
            let value = bytes[byte]
            codes[byte] = Int8(value >> 6) - 1
            codes[32 + byte] = Int8((value >> 4) & 3) - 1
            codes[64 + byte] = Int8((value >> 2) & 3) - 1
            codes[96 + byte] = Int8(value & 3) - 1
        }
    }

    /// Unpacks `rows × columns` codes and the tensor scale.
    public static func unpackTensor(_ bytes: UnsafeRawBufferPointer, rows: Int, columns: Int) throws -> TernaryTensor {
        let valueCount = rows * columns
        let needed = try byteCount(valueCount: valueCount, rowLength: columns)
        guard bytes.count == needed else {
            throw QuantizationError.sizeMismatch("I2_S bytes for \(rows)×\(columns)", expected: needed, actual: bytes.count)
        }
        var codes = [Int8](repeating: 0, count: valueCount)
        for block in 0..<valueCount / valuesPerBlock {
            for byte in 0..<32 {
                let value = bytes[block * bytesPerBlock + byte]
                for group in 0..<4 {
                    let code = (value >> (6 - 2 * group)) & 3
                    guard code < 3 else {
                        throw QuantizationError(.invalidTernaryCode, "I2_S byte \(block * bytesPerBlock + byte) holds the unused 2-bit code 3")
                    }
                    codes[block * valuesPerBlock + group * 32 + byte] = Int8(code) - 1
                }
            }
        }
        let scale = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: valueCount / 4, as: UInt32.self)))
        return TernaryTensor(uncheckedRows: rows, columns: columns, codes: codes, scale: scale)
    }
}
