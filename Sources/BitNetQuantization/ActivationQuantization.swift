/// Int8 activations with one scale per row (token): `x ≈ values / scales[row]`.
public struct QuantizedActivations: Sendable, Equatable {
    public var rows: Int
    public var columns: Int
    /// `rows · columns` int8 values, row-major.
    public var values: [Int8]
    /// Per-row multiplier `a` that took floats to int8 (`q = round(x · a)`).
    public var scales: [Float]

    public init(rows: Int, columns: Int, values: [Int8], scales: [Float]) {
        precondition(values.count == rows * columns && scales.count == rows, "\(rows)×\(columns) activations")
        self.rows = rows
        self.columns = columns
        self.values = values
        self.scales = scales
    }
}

/// BitNet b1.58 activation quantization ("absmax" per token), bit-exact with transformers' `ActQuant`.
///
/// The reference, in float32:
/// ```python
/// scale = 127 / activation.abs().max(dim=-1, keepdim=True).values.clamp_(min=1e-5)
/// activation = (activation * scale).round().clamp(-128, 127) / scale
/// ```
/// PyTorch evaluates `127 / t` as `t.reciprocal() * 127`: two float32 roundings, reproduced here
/// because they decide which values sit exactly on a rounding tie.
public enum AbsmaxQuantizer {
    /// The clamp applied to each row's maximum absolute value.
    public static let epsilon: Float = 1e-5

    /// The multiplier `a` for one row: `reciprocal(max(max|x|, 1e-5)) · 127`.
    @inlinable public static func scale(ofRow row: UnsafeBufferPointer<Float>) -> Float {
        var maximum: Float = 0
        for value in row {
            let magnitude = value.magnitude
            // A NaN anywhere makes the maximum NaN, as torch.max does.
            if magnitude > maximum || magnitude.isNaN { maximum = magnitude }
            if maximum.isNaN { break }
        }
        return (1 / max(maximum, epsilon)) * 127
    }

    /// Quantizes one row into `output`, returning its multiplier `a`.
    @inlinable public static func quantize(row: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Int8>) -> Float {
        precondition(output.count == row.count, "output row must match the input row")
        let scale = scale(ofRow: row)
        for index in row.indices {
            output[index] = int8Code(row[index] * scale)
        }
        return scale
    }

    /// `clamp(round(x), -128, 127)` with ties to even; NaN becomes 0.
    @inlinable static func int8Code(_ scaled: Float) -> Int8 {
        let rounded = scaled.rounded(.toNearestOrEven)
        if rounded >= 127 { return 127 }
        if rounded <= -128 { return -128 }
        return rounded.isNaN ? 0 : Int8(rounded)
    }

    /// Quantizes a row-major `rows × columns` matrix, one scale per row.
    public static func quantize(_ input: [Float], rows: Int, columns: Int) throws -> QuantizedActivations {
        guard rows >= 0, columns >= 0, input.count == rows * columns else {
            throw QuantizationError.sizeMismatch("activations for \(rows)×\(columns)", expected: rows * columns, actual: input.count)
        }
        var scales = [Float](repeating: 0, count: rows)
        let values = [Int8](unsafeUninitializedCapacity: input.count) { buffer, initialized in
            input.withUnsafeBufferPointer { source in
                for row in 0..<rows {
                    let range = row * columns..<(row + 1) * columns
                    scales[row] = quantize(
                        row: UnsafeBufferPointer(rebasing: source[range]),
                        into: UnsafeMutableBufferPointer(rebasing: buffer[range]))
                }
            }
            initialized = input.count
        }
        return QuantizedActivations(rows: rows, columns: columns, values: values, scales: scales)
    }
}
