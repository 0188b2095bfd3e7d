/// A bfloat16 value stored as its bit pattern: the upper half of an IEEE float32.
///
/// Swift has no native `BFloat16`; this type converts exactly as PyTorch and gguf-py do:
/// widening is exact, narrowing rounds to nearest-even and keeps NaN a (quiet) NaN.
public struct BFloat16: Hashable, Sendable, BitwiseCopyable {
    public var bitPattern: UInt16

    @inlinable public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    /// Rounds `value` to the nearest bfloat16, ties to even; NaN stays NaN (quieted).
    @inlinable public init(_ value: Float) {
        let bits = value.bitPattern
        if bits & 0x7fff_ffff > 0x7f80_0000 {
            bitPattern = UInt16(truncatingIfNeeded: (bits & 0xffff_0000 | 0x0040_0000) >> 16)
        } else {
            let rounded = UInt64(bits) + 0x7fff + UInt64((bits >> 16) & 1)
            bitPattern = UInt16(truncatingIfNeeded: rounded >> 16)
        }
    }

    @inlinable public var floatValue: Float { Float(bitPattern: UInt32(bitPattern) << 16) }
}

/// A scalar type that widens exactly to `Float`: the element types of master weights.
public protocol FloatWidening: BitwiseCopyable, Sendable {
    var floatValue: Float { get }
}

extension Float: FloatWidening {
    @inlinable public var floatValue: Float { self }
}

extension Float16: FloatWidening {
    @inlinable public var floatValue: Float { Float(self) }
}

extension BFloat16: FloatWidening {}

/// Little-endian half-precision helpers for reading and writing packed blocks.
@usableFromInline
enum HalfBits {
    @inlinable static func load(_ pointer: UnsafeRawPointer, offset: Int) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: pointer.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
    }

    @inlinable static func store(_ value: Float, _ pointer: UnsafeMutableRawPointer, offset: Int) {
        pointer.storeBytes(of: Float16(value).bitPattern.littleEndian, toByteOffset: offset, as: UInt16.self)
    }
}
