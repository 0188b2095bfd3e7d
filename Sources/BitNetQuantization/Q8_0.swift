/// llama.cpp's Q8_0 (ggml type 8): 32 int8 values and a float16 scale, 34 bytes per block.
///
/// Layout: bytes 0..<2 `d` (float16), bytes 2..<34 the values `q`, with value = d · q.
/// Quantization follows gguf-py: `d = max|x| / 127`, `q = roundf(x / d)` (ties away from zero).
public enum Q8_0: BlockFormat {
    public static let name = "q8_0"
    public static let valuesPerBlock = 32
    public static let bytesPerBlock = 34

    public static func quantizeBlock(_ values: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        var absmax: Float = 0
        for index in 0..<valuesPerBlock { absmax = max(absmax, values[index].magnitude) }
        let d = absmax / 127
        let inverse: Float = d == 0 ? 0 : 1 / d
        HalfBits.store(d, block, offset: 0)
        let qs = (block + 2).assumingMemoryBound(to: Int8.self)
        for index in 0..<valuesPerBlock {
            let rounded = (values[index] * inverse).rounded(.toNearestOrAwayFromZero)
            qs[index] = Int8(max(-128, min(127, rounded)))
        }
    }

    public static func dequantizeBlock(_ block: UnsafeRawPointer, into values: UnsafeMutablePointer<Float>) {
        let d = HalfBits.load(block, offset: 0)
        let qs = (block + 2).assumingMemoryBound(to: Int8.self)
        for index in 0..<valuesPerBlock { values[index] = d * Float(qs[index]) }
    }
}
