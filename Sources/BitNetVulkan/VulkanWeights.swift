import BitNetModels
import Foundation

/// A weight on the device, in the form the shader that reads it wants.
enum VulkanWeight: @unchecked Sendable {
    /// Ternary codes repacked for the BitLinear shader (``TernaryPacking``).
    case ternary(VulkanBuffer, TernaryPacking)
    /// A float matrix in its stored encoding (F32, F16, BF16, Q8_0, Q6_K), read by the embedding and
    /// projection shaders; `encoding` is the shaders' number for it.
    case matrix(VulkanBuffer, rows: Int, columns: Int, encoding: UInt32)
    /// A float32 vector (a norm weight).
    case vector(VulkanBuffer)

    var buffer: VulkanBuffer {
        switch self {
        case .ternary(let buffer, _), .matrix(let buffer, _, _, _), .vector(let buffer): buffer
        }
    }
}

/// How a ternary weight is laid out for the BitLinear shader: 16 codes `w + 1` per 32-bit word, code `4s + j` of
/// a word at bit `8j + 2s` (so `(word >> 2s) & 0x03030303` is four codes as bytes), rows padded with zero weights to
/// whole blocks of 256; then the float scales, one per `blockWords` words of a row. TQ2_0 and TQ1_0 keep their
/// scale per 256 values; I2_S and int8 codes have one per tensor, repeated per row.
struct TernaryPacking: Sendable, Equatable {
    let rows: Int
    let columns: Int
    /// Words per row (the padded row length over 16).
    let wordsPerRow: Int
    /// Words sharing one scale.
    let blockWords: Int

    init(_ weight: WeightTensor) {
        rows = weight.rows
        columns = weight.columns
        wordsPerRow = Self.paddedColumns(weight.columns) / 16
        blockWords = weight.ternaryBlockLength == 256 ? 16 : wordsPerRow
    }

    /// Activations (and weight rows) are padded to whole blocks of 256 values.
    static func paddedColumns(_ columns: Int) -> Int { (columns + 255) / 256 * 256 }

    var blocksPerRow: Int { wordsPerRow / blockWords }
    /// The BitLinear shader's MAX_BLOCKS: scales per row it sums in shared memory.
    static let maximumBlocksPerRow = 128
    /// The word at which the scales start.
    var scaleOffset: Int { rows * wordsPerRow }
    var wordCount: Int { rows * (wordsPerRow + blocksPerRow) }

    /// The packed words of `weight`, rows decoded and repacked in parallel.
    static func pack(_ weight: WeightTensor) -> [UInt32] {
        let packing = TernaryPacking(weight)
        let blockLength = weight.ternaryBlockLength
        var words = [UInt32](repeating: 0, count: packing.wordCount)
        let chunk = 64
        weight.bytes.withUnsafeBytes { packed in
            words.withUnsafeMutableBufferPointer { output in
                let output = UncheckedSendable(output.baseAddress!)
                let packed = UncheckedSendable(packed.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: (packing.rows + chunk - 1) / chunk) { index in
                    var codes = [Int8](repeating: 0, count: packing.wordsPerRow * 16)
                    var scales = [Float](repeating: 0, count: weight.columns / blockLength)
                    for row in index * chunk..<min(packing.rows, (index + 1) * chunk) {
                        codes.withUnsafeMutableBufferPointer { codes in
                            scales.withUnsafeMutableBufferPointer { scales in
                                weight.decodeTernaryRow(row, packed: packed.value, codes: codes.baseAddress!, scales: scales.baseAddress!)
                            }
                        }
                        // Codes past `columns` stay 0 (weight 0) from the buffer's start: decoding writes only `columns`.
                        let rowWords = output.value + row * packing.wordsPerRow
                        codes.withUnsafeBytes { codes in
                            for word in 0..<packing.wordsPerRow {
                                var value: UInt32 = 0
                                for s in 0..<4 {  // codes 4s…4s+3, as bytes w + 1 (no carries between bytes), at bit 2s of each
                                    let four = codes.loadUnaligned(fromByteOffset: 16 * word + 4 * s, as: UInt32.self).littleEndian
                                    value |= (((four & 0x7F7F_7F7F) &+ 0x0101_0101) ^ (four & 0x8080_8080)) << UInt32(2 * s)
                                }
                                rowWords[word] = value
                            }
                        }
                        let rowScales = output.value + packing.scaleOffset + row * packing.blocksPerRow
                        for block in 0..<packing.blocksPerRow {
                            rowScales[block] = scales[packing.blockWords == 16 ? block : 0].bitPattern
                        }
                    }
                }
            }
        }
        return words
    }
}

/// A value handed to `concurrentPerform`'s closure, whose iterations touch disjoint parts of it.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

extension WeightEncoding {
    /// The float matrix shaders' number for this encoding (`Shaders/matrix.glsl`).
    var matrixShaderCode: UInt32? {
        switch self {
        case .f32: 0
        case .f16: 1
        case .bf16: 2
        case .q8_0: 3
        case .q6_K: 4
        default: nil
        }
    }
}
