/// The packed uint8 ternary weights of Hugging Face BitNet checkpoints (`pack_weights` in transformers'
/// `integrations/bitnet.py`), as published for bitnet-b1.58-2B-4T.
///
/// A weight of shape `(out, in)` becomes uint8 of shape `(⌈out/4⌉, in)`: bits 2i…2i+1 of packed row r
/// hold original row `i·⌈out/4⌉ + r` as `code + 1`. The tensor's scale is the separate `weight_scale`
/// tensor (one value), whose direction depends on the layer class named by `quantization_config.linear_class`
/// (both established by the `hf.*` fixtures, which run the two layers):
/// - `"bitlinear"` (transformers' default, used by bitnet-b1.58-2B-4T): `BitLinear` computes
///   `F.linear(q, codes) / (input_scale · weight_scale)`, so `weight_scale` is the *inverse* scale and the
///   effective weight is `code / weight_scale`;
/// - `"autobitlinear"` in offline mode: `F.linear(x, codes) * weight_scale`, effective weight `code · weight_scale`.
public enum HuggingFacePacking {
    /// The per-tensor scale `s` (a dequantized `+1`) for a checkpoint's `weight_scale` value.
    public static func effectiveScale(weightScale: Float, linearClass: String?) -> Float {
        linearClass == "autobitlinear" ? weightScale : 1 / weightScale
    }

    /// Rows of the packed tensor for `outFeatures` original rows.
    public static func packedRows(outFeatures: Int) -> Int { (outFeatures + 3) / 4 }

    /// Packs a ternary tensor's codes exactly as `pack_weights` does (missing rows are packed as zeros).
    public static func pack(_ tensor: TernaryTensor) -> [UInt8] {
        let packedRows = packedRows(outFeatures: tensor.rows)
        let columns = tensor.columns
        var packed = [UInt8](repeating: 0, count: packedRows * columns)
        for row in 0..<tensor.rows {
            let (slot, packedRow) = row.quotientAndRemainder(dividingBy: max(packedRows, 1))
            for column in 0..<columns {
                packed[packedRow * columns + column] |= UInt8(tensor.codes[row * columns + column] + 1) << (2 * slot)
            }
        }
        return packed
    }

    /// Unpacks `packedRows × columns` bytes into the first `outFeatures` rows of codes.
    ///
    /// `outFeatures` is usually `4 · packedRows` (what `unpack_weights` returns); pass the true row count
    /// when it is not a multiple of four.
    public static func unpack(
        _ packed: UnsafeRawBufferPointer, packedRows: Int, columns: Int, outFeatures: Int? = nil, scale: Float
    ) throws -> TernaryTensor {
        let rows = outFeatures ?? packedRows * 4
        guard packed.count == packedRows * columns else {
            throw QuantizationError.sizeMismatch("packed bytes for \(packedRows)×\(columns)", expected: packedRows * columns, actual: packed.count)
        }
        guard rows <= packedRows * 4, self.packedRows(outFeatures: rows) == packedRows else {
            throw QuantizationError(.sizeMismatch, "\(rows) output features do not pack into \(packedRows) rows of four")
        }
        var codes = [Int8](repeating: 0, count: rows * columns)
        for row in 0..<rows {
            let (slot, packedRow) = row.quotientAndRemainder(dividingBy: packedRows)
            for column in 0..<columns {
                let code = (packed[packedRow * columns + column] >> (2 * slot)) & 3
                guard code < 3 else {
                    throw QuantizationError(.invalidTernaryCode, "packed byte (\(packedRow), \(column)) holds the unused 2-bit code 3")
                }
                codes[row * columns + column] = Int8(code) - 1
            }
        }
        return TernaryTensor(uncheckedRows: rows, columns: columns, codes: codes, scale: scale)
    }
}
