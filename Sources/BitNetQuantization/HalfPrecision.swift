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

/// IEEE half → single precision in integer arithmetic. Exact, and inlined: without `-march` flags
/// `Float(Float16)` on x86 is a library call (`__extendhfsf2`) that dominated decode time.
@inlinable public func floatFromHalfBits(_ bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = UInt32(bits >> 10) & 0x1F
    let mantissa = UInt32(bits & 0x3FF)
    if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13) }
    if exponent != 0 { return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13) }
    // Zero or subnormal: mantissa · 2⁻²⁴, exact in float32.
    let magnitude = Float(mantissa) * 0x1p-24
    return sign == 0 ? magnitude : -magnitude
}

/// Little-endian half-precision helpers for reading and writing packed blocks.
@usableFromInline
enum HalfBits {
    @inlinable static func load(_ pointer: UnsafeRawPointer, offset: Int) -> Float {
        floatFromHalfBits(UInt16(littleEndian: pointer.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    @inlinable static func store(_ value: Float, _ pointer: UnsafeMutableRawPointer, offset: Int) {
        pointer.storeBytes(of: Float16(value).bitPattern.littleEndian, toByteOffset: offset, as: UInt16.self)
    }
}
