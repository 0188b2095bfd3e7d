/// llama.cpp's Q6_K (ggml type 14): 6-bit values in super-blocks of 256, 210 bytes each. Used for the
/// embeddings and output of many llama.cpp files; swift-bitnet reads it (dequantization only).
///
/// Layout of one block: `ql` (128 bytes, low 4 bits), `qh` (64 bytes, high 2 bits), 16 int8 `scales`
/// (one per 16 values), f16 `d`. Value = d · scale · (q − 32), computed as `(d · scale) · q` like ggml.
public enum Q6_K {
    public static let name = "q6_K"
    public static let valuesPerBlock = 256
    public static let bytesPerBlock = 210

    /// Expands one block into 256 floats.
    public static func dequantizeBlock(_ block: UnsafeRawPointer, into values: UnsafeMutablePointer<Float>) {
        let bytes = block.assumingMemoryBound(to: UInt8.self)
        let d = HalfBits.load(block, offset: 208)
        for half in 0..<2 {
            let ql = bytes + half * 64
            let qh = bytes + 128 + half * 32
            let scales = (block + 192 + half * 8).assumingMemoryBound(to: Int8.self)
            let output = values + half * 128
            for l in 0..<32 {
                let group = l / 16
                let q1 = Int(ql[l] & 0xF | ((qh[l] >> 0) & 3) << 4) - 32
                let q2 = Int(ql[l + 32] & 0xF | ((qh[l] >> 2) & 3) << 4) - 32
                let q3 = Int(ql[l] >> 4 | ((qh[l] >> 4) & 3) << 4) - 32
                let q4 = Int(ql[l + 32] >> 4 | ((qh[l] >> 6) & 3) << 4) - 32
                output[l] = d * Float(scales[group]) * Float(q1)
                output[l + 32] = d * Float(scales[group + 2]) * Float(q2)
                output[l + 64] = d * Float(scales[group + 4]) * Float(q3)
                output[l + 96] = d * Float(scales[group + 6]) * Float(q4)
            }
        }
    }

    /// Expands whole blocks of `bytes` into `output`.
    public static func dequantize(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<Float>) throws {
        guard bytes.count % bytesPerBlock == 0, output.count == bytes.count / bytesPerBlock * valuesPerBlock else {
            throw QuantizationError.sizeMismatch("q6_K values for \(bytes.count) bytes", expected: bytes.count / bytesPerBlock * valuesPerBlock, actual: output.count)
        }
        guard let source = bytes.baseAddress, let destination = output.baseAddress else { return }
        for block in 0..<bytes.count / bytesPerBlock {
            dequantizeBlock(source + block * bytesPerBlock, into: destination + block * valuesPerBlock)
        }
    }
}
