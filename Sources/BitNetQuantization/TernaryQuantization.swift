/// A ternary weight matrix: `W ≈ scale · codes`, each code in {-1, 0, +1}, stored row-major
/// (`rows` output features × `columns` input features, the layout of a PyTorch `nn.Linear` weight).
public struct TernaryTensor: Sendable, Equatable {
    /// Output features.
    public var rows: Int
    /// Input features.
    public var columns: Int
    /// `rows · columns` codes in {-1, 0, +1}, row-major.
    public var codes: [Int8]
    /// The magnitude of a dequantized `+1`: the per-tensor scale `s`.
    public var scale: Float

    /// Wraps existing codes; throws if the count disagrees with the shape or a code is not ternary.
    public init(rows: Int, columns: Int, codes: [Int8], scale: Float) throws {
        guard rows >= 0, columns >= 0, codes.count == rows * columns else {
            throw QuantizationError.sizeMismatch("ternary codes for \(rows)×\(columns)", expected: rows * columns, actual: codes.count)
        }
        if let bad = codes.firstIndex(where: { $0 < -1 || $0 > 1 }) {
            throw QuantizationError(.invalidTernaryCode, "code \(codes[bad]) at index \(bad) is not in {-1, 0, 1}")
        }
        self.rows = rows
        self.columns = columns
        self.codes = codes
        self.scale = scale
    }

    @usableFromInline init(uncheckedRows rows: Int, columns: Int, codes: [Int8], scale: Float) {
        self.rows = rows
        self.columns = columns
        self.codes = codes
        self.scale = scale
    }

    /// The codes and scale of float values that are already ternary — every value 0 or ±s for one s, as
    /// converters store BitNet weights in F16/F32 — or nil if they are not (master weights).
    public static func exactly(_ values: [Float], rows: Int, columns: Int) -> TernaryTensor? {
        guard values.count == rows * columns, let magnitude = values.first(where: { $0 != 0 })?.magnitude, magnitude.isFinite,
              values.allSatisfy({ $0 == 0 || $0.magnitude == magnitude }) else { return nil }
        let codes = values.map { Int8($0 > 0 ? 1 : ($0 < 0 ? -1 : 0)) }
        return TernaryTensor(uncheckedRows: rows, columns: columns, codes: codes, scale: magnitude)
    }

    /// `scale · code` for every weight, row-major.
    public func dequantized() -> [Float] {
        codes.map { Float($0) * scale }
    }
}

/// BitNet b1.58 weight quantization ("absmean"), bit-exact with transformers' `WeightQuant`.
///
/// The reference, in float32:
/// ```python
/// scale = 1.0 / weight.abs().mean().clamp_(min=1e-5)
/// weight = (weight * scale).round().clamp(-1, 1) / scale
/// ```
/// The reference runs under `torch.compile`: its float32 sum of `|W|` is a vectorized cascade sum split
/// across OpenMP threads, so its last bit depends on the CPU's vector width and thread count. Here the
/// sum is accumulated in `Double` and rounded once to `Float` (the correctly rounded sum, which the
/// reference's equals whenever its own rounding errors cancel), then divided by the count in float32 as
/// the compiled kernel does. The inverse scale is `1 / max(mean, 1e-5)` in float32, codes are
/// `round(w · inverse)` with ties to even (like `torch.round`), and the dequantized magnitude is
/// `1 / inverse`, exactly what the reference divides a `+1` by. The fixtures show identical codes and a
/// scale within one ulp of the reference's.
public enum AbsmeanQuantizer {
    /// The clamp applied to the mean absolute value.
    public static let epsilon: Float = 1e-5

    /// The reference's inverse scale `1 / max(mean(|W|), 1e-5)`; throws on NaN or infinity.
    @inlinable public static func inverseScale<Element: FloatWidening>(of weights: UnsafeBufferPointer<Element>) throws -> Float {
        var sum = 0.0
        for index in weights.indices {
            let value = weights[index].floatValue
            guard value.isFinite else {
                throw QuantizationError(.nonFiniteValue, "weight \(index) is \(value); a checkpoint with NaN or infinite weights cannot be quantized")
            }
            sum += Double(value.magnitude)
        }
        let mean = weights.isEmpty ? Float.nan : Float(sum) / Float(weights.count)
        return 1 / max(mean, epsilon)
    }

    /// Ternarizes a `rows × columns` weight matrix given in any float type that widens to float32.
    @inlinable public static func ternarize<Element: FloatWidening>(
        _ weights: UnsafeBufferPointer<Element>, rows: Int, columns: Int
    ) throws -> TernaryTensor {
        guard rows >= 0, columns >= 0, weights.count == rows * columns else {
            throw QuantizationError.sizeMismatch("weights for \(rows)×\(columns)", expected: rows * columns, actual: weights.count)
        }
        let inverse = try inverseScale(of: weights)
        let codes = [Int8](unsafeUninitializedCapacity: weights.count) { buffer, initialized in
            for index in weights.indices {
                buffer[index] = ternaryCode(weights[index].floatValue * inverse)
            }
            initialized = weights.count
        }
        return TernaryTensor(uncheckedRows: rows, columns: columns, codes: codes, scale: 1 / inverse)
    }

    /// Array convenience for ``ternarize(_:rows:columns:)-(UnsafeBufferPointer<Element>,_,_)``.
    @inlinable public static func ternarize<Element: FloatWidening>(_ weights: [Element], rows: Int, columns: Int) throws -> TernaryTensor {
        try weights.withUnsafeBufferPointer { try ternarize($0, rows: rows, columns: columns) }
    }

    /// `clamp(round(x), -1, 1)` with ties to even, as `torch.round` rounds.
    @inlinable static func ternaryCode(_ scaled: Float) -> Int8 {
        let rounded = scaled.rounded(.toNearestOrEven)
        return rounded >= 1 ? 1 : (rounded <= -1 ? -1 : 0)
    }
}
