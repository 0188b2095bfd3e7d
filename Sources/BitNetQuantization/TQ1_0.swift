/// llama.cpp's TQ1_0 (ggml type 34): 1.6875 bits per ternary value, 54 bytes per block of 256.
///
/// Five trits go in one byte as a base-3 number `q = Σ tⱼ·3^(4−j)` (tⱼ = code + 1), stored in
/// fixed point as `⌈q · 256 / 243⌉` so that the trit j is read back as `((byte · 3ʲ mod 256) · 3) >> 8`,
/// a multiply and a shift instead of a division. Layout of one block:
/// ```
/// bytes 0..<32   values 0..<160: byte i holds trits i + 32j, j = 0…4
/// bytes 32..<48  values 160..<240: byte i holds trits 160 + i + 16j, j = 0…4
/// bytes 48..<52  qh, values 240..<256: byte i holds trits 240 + i + 4j, j = 0…3 (fifth trit 0)
/// bytes 52..<54  d: float16 block scale
/// ```
public enum TQ1_0: TernaryBlockFormat {
    public static let name = "tq1_0"
    public static let valuesPerBlock = 256
    public static let bytesPerBlock = 54

    /// (first value, trits per byte, stride between trits, bytes) of the three regions of a block.
    private static let regions: [(start: Int, byteOffset: Int, trits: Int, stride: Int, bytes: Int)] = [
        (0, 0, 5, 32, 32),
        (160, 32, 5, 16, 16),
        (240, 48, 4, 4, 4),
    ]
    private static let powersOfThree: [UInt16] = [81, 27, 9, 3, 1]

    public static func packBlock(_ codes: UnsafePointer<Int8>, scale: Float, into block: UnsafeMutableRawPointer) {
        let bytes = block.assumingMemoryBound(to: UInt8.self)
        for region in regions {
            for byte in 0..<region.bytes {
                var number: UInt16 = 0
                for trit in 0..<region.trits {
                    number += UInt16(codes[region.start + byte + trit * region.stride] + 1) * powersOfThree[trit]
                }
                bytes[region.byteOffset + byte] = UInt8((number * 256 + 242) / 243)
            }
        }
        HalfBits.store(scale, block, offset: 52)
    }

    @inline(__always)
    private static func trit(_ byte: UInt8, _ position: Int) -> UInt8 {
        let shifted = UInt16(byte &* UInt8(powersOfThree[4 - position]))
        return UInt8((shifted * 3) >> 8)
    }

    public static func unpackBlock(_ block: UnsafeRawPointer, into codes: UnsafeMutablePointer<Int8>) throws -> Float {
        let bytes = block.assumingMemoryBound(to: UInt8.self)
        for region in regions {
            for byte in 0..<region.bytes {
                for position in 0..<region.trits {
                    // Always 0, 1 or 2: ((b · 3ʲ mod 256) · 3) >> 8 ≤ 765 >> 8.
                    let value = trit(bytes[region.byteOffset + byte], position)
                    codes[region.start + byte + position * region.stride] = Int8(value) - 1
                }
            }
        }
        return HalfBits.load(block, offset: 52)
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into values: UnsafeMutablePointer<Float>) {
        let bytes = block.assumingMemoryBound(to: UInt8.self)
        let d = HalfBits.load(block, offset: 52)
        for region in regions {
            for byte in 0..<region.bytes {
                for position in 0..<region.trits {
                    let value = Int(trit(bytes[region.byteOffset + byte], position)) - 1
                    values[region.start + byte + position * region.stride] = d * Float(value)
                }
            }
        }
    }
}
