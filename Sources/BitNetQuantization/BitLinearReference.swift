/// The scalar BitLinear oracle: int8 activations × ternary weights with integer accumulation and one
/// rescale per output, `y[t, o] = Float(Σᵢ q[t, i] · w[o, i]) / a[t] · s`.
///
/// Deliberately plain Swift: every fast kernel (SIMD, Vulkan) is tested against this.
public enum BitLinearReference {
    /// Multiplies quantized activations (`tokens × in`) by ternary weights (`out × in`), giving `tokens × out`.
    public static func forward(_ activations: QuantizedActivations, _ weights: TernaryTensor) throws -> [Float] {
        guard activations.columns == weights.columns else {
            throw QuantizationError.sizeMismatch("BitLinear input features", expected: weights.columns, actual: activations.columns)
        }
        let inputs = weights.columns
        var output = [Float](repeating: 0, count: activations.rows * weights.rows)
        for token in 0..<activations.rows {
            let inputRow = token * inputs
            for feature in 0..<weights.rows {
                let weightRow = feature * inputs
                var accumulator: Int32 = 0
                for index in 0..<inputs {
                    accumulator &+= Int32(activations.values[inputRow + index]) * Int32(weights.codes[weightRow + index])
                }
                output[token * weights.rows + feature] = Float(accumulator) / activations.scales[token] * weights.scale
            }
        }
        return output
    }

    /// Quantizes float activations per row, then applies ``forward(_:_:)-(QuantizedActivations,_)``.
    public static func forward(_ input: [Float], rows: Int, _ weights: TernaryTensor) throws -> [Float] {
        try forward(AbsmaxQuantizer.quantize(input, rows: rows, columns: weights.columns), weights)
    }
}
