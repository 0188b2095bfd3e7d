/// llama.cpp's TQ2_0 (ggml type 35): 2 bits per ternary value, 66 bytes per block of 256.
///
/// Layout of one block:
/// ```
/// bytes 0..<64   qs: two halves of 32 bytes; in half h, byte i holds the values
///                h·128 + j·32 + i for j = 0…3 at bits 2j…2j+1, stored as code + 1 (0, 1, 2)
/// bytes 64..<66  d: float16 block scale; value = d · code
/// ```
public enum TQ2_0: TernaryBlockFormat {
    public static let name = "tq2_0"
    public static let valuesPerBlock = 256
    public static let bytesPerBlock = 66

    public static func packBlock(_ codes: UnsafePointer<Int8>, scale: Float, into block: UnsafeMutableRawPointer) {
        let qs = block.assumingMemoryBound(to: UInt8.self)
        for half in 0..<2 {
            for byte in 0..<32 {
                var packed: UInt8 = 0
                for lane in 0..<4 {
                    packed |= UInt8(codes[half * 128 + lane * 32 + byte] + 1) << (2 * lane)
                }
                qs[half * 32 + byte] = packed
            }
        }
        HalfBits.store(scale, block, offset: 64)
    }

    public static func unpackBlock(_ block: UnsafeRawPointer, into codes: UnsafeMutablePointer<Int8>) throws -> Float {
        let qs = block.assumingMemoryBound(to: UInt8.self)
        for half in 0..<2 {
            for byte in 0..<32 {
                for lane in 0..<4 {
                    let code = (qs[half * 32 + byte] >> (2 * lane)) & 3
                    guard code < 3 else {
                        throw QuantizationError(.invalidTernaryCode, "TQ2_0 byte \(half * 32 + byte) holds the unused 2-bit code 3")
                    }
                    codes[half * 128 + lane * 32 + byte] = Int8(code) - 1
                }
            }
        }
        return HalfBits.load(block, offset: 64)
    }

    /// Unpacks one block's codes without validation (code 3 reads as +2, as in ggml) and returns `d`:
    /// the inference engine's decode step, for bytes whose extent was validated when the file was opened.
    @inlinable public static func unpackBlockUnchecked(_ block: UnsafeRawPointer, into codes: UnsafeMutablePointer<Int8>) -> Float {
        let qs = block.assumingMemoryBound(to: UInt8.self)
        for half in 0..<2 {
            for byte in 0..<32 {
                let value = qs[half * 32 + byte]
                let out = codes + half * 128 + byte
                out[0] = Int8(value & 3) - 1
                out[32] = Int8((value >> 2) & 3) - 1
                out[64] = Int8((value >> 4) & 3) - 1
                out[96] = Int8(value >> 6) - 1
            }
        }
        return HalfBits.load(block, offset: 64)
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into values: UnsafeMutablePointer<Float>) {
        let qs = block.assumingMemoryBound(to: UInt8.self)
        let d = HalfBits.load(block, offset: 64)
        for half in 0..<2 {
            for byte in 0..<32 {
                for lane in 0..<4 {
                    let code = Int((qs[half * 32 + byte] >> (2 * lane)) & 3) - 1
                    values[half * 128 + lane * 32 + byte] = d * Float(code)
                }
            }
        }
    }
}
