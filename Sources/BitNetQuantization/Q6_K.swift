/// llama.cpp's Q6_K (ggml type 14): 6-bit values in super-blocks of 256, 210 bytes each. Used for the
/// embeddings and output of many llama.cpp files (llama.cpp's choice for a tied output), and what
/// `bitnet quantize --embed-type q6_k` writes.
///
/// Layout of one block: `ql` (128 bytes, low 4 bits), `qh` (64 bytes, high 2 bits), 16 int8 `scales`
/// (one per 16 values), f16 `d`. Value = d · scale · (q − 32), computed as `(d · scale) · q` like ggml.
public enum Q6_K: BlockFormat {
    public static let name = "q6_K"
    public static let valuesPerBlock = 256
    public static let bytesPerBlock = 210

    /// Quantizes 256 values as llama.cpp's `quantize_row_q6_K_ref` does: per 16 values a scale from
    /// `make_qx_quants` (a search over 19 candidate scales weighted by x²), the 16 scales quantized to int8
    /// against the largest, then each value rounded against its final scale. Byte-identical to llama.cpp's
    /// (tested on blocks its own build wrote); the sums are kept in the reference's order.
    public static func quantizeBlock(_ values: UnsafePointer<Float>, into block: UnsafeMutableRawPointer) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { buffer in
            let levels = buffer.baseAddress!
            var scales = [Float](repeating: 0, count: 16)
            var maxScale: Float = 0, maxAbsScale: Float = 0
            for group in 0..<16 {
                scales[group] = searchScale(values + 16 * group, levels: levels + 16 * group)
                if scales[group].magnitude > maxAbsScale { maxAbsScale = scales[group].magnitude; maxScale = scales[group] }
            }
            let bytes = block.bindMemory(to: UInt8.self, capacity: bytesPerBlock)
            guard maxAbsScale >= groupMaxEpsilon else {
                bytes.initialize(repeating: 0, count: bytesPerBlock)
                return
            }
            let inverseScale = -128 / maxScale
            HalfBits.store(1 / inverseScale, block, offset: 208)
            let d = HalfBits.load(block, offset: 208)
            let blockScales = (block + 192).assumingMemoryBound(to: Int8.self)
            for group in 0..<16 {
                blockScales[group] = Int8(min(127, nearestInt(inverseScale * scales[group])))
                let groupScale = d * Float(blockScales[group])
                if groupScale == 0 { continue }
                for index in 16 * group..<16 * group + 16 {
                    levels[index] = UInt8(max(-32, min(31, nearestInt(values[index] / groupScale))) + 32)
                }
            }
            for half in 0..<2 {
                let ql = bytes + 64 * half, qh = bytes + 128 + 32 * half, l = levels + 128 * half
                for i in 0..<32 {
                    ql[i] = l[i] & 0xF | (l[i + 64] & 0xF) << 4
                    ql[i + 32] = l[i + 32] & 0xF | (l[i + 96] & 0xF) << 4
                    qh[i] = l[i] >> 4 | (l[i + 32] >> 4) << 2 | (l[i + 64] >> 4) << 4 | (l[i + 96] >> 4) << 6
                }
            }
        }
    }

    /// ggml's GROUP_MAX_EPS: groups whose largest magnitude is below it quantize to zero.
    static let groupMaxEpsilon: Float = 1e-15

    /// ggml's `nearest_int`: round half to even through the 1.5·2^23 trick (|x| ≤ 4194303).
    static func nearestInt(_ value: Float) -> Int {
        let clamped = max(-4_194_303, min(4_194_303, value))
        return Int((clamped + 12_582_912).bitPattern & 0x007F_FFFF) - 0x0040_0000
    }

    /// ggml's `make_qx_quants(16, 32, x, L, rmse_type = 1, NULL)`: levels in 0..<64 written to `levels`, the
    /// scale returned.
    static func searchScale(_ x: UnsafePointer<Float>, levels: UnsafeMutablePointer<UInt8>) -> Float {
        let n = 16, levelMax = 32
        var maximum: Float = 0, absoluteMaximum: Float = 0
        for i in 0..<n where x[i].magnitude > absoluteMaximum { absoluteMaximum = x[i].magnitude; maximum = x[i] }
        guard absoluteMaximum >= groupMaxEpsilon else {
            for i in 0..<n { levels[i] = 0 }
            return 0
        }
        func level(_ i: Int, _ inverse: Float) -> Int { max(-levelMax, min(levelMax - 1, nearestInt(inverse * x[i]))) }
        func sums(_ inverse: Float) -> (lx: Float, l2: Float) {
            var lx: Float = 0, l2: Float = 0
            for i in 0..<n {
                let l = Float(level(i, inverse)), w = x[i] * x[i]
                lx += w * x[i] * l
                l2 += w * l * l
            }
            return (lx, l2)
        }
        var inverse = -Float(levelMax) / maximum
        for i in 0..<n { levels[i] = UInt8(level(i, inverse) + levelMax) }
        var (sumLX, sumL2) = sums(inverse)
        var scale = sumL2 != 0 ? sumLX / sumL2 : 0
        var best = scale * sumLX
        for step in -9...9 where step != 0 {
            inverse = -(Float(levelMax) + 0.1 * Float(step)) / maximum
            (sumLX, sumL2) = sums(inverse)
            if sumL2 > 0, sumLX * sumLX > best * sumL2 {
                for i in 0..<n { levels[i] = UInt8(level(i, inverse) + levelMax) }
                scale = sumLX / sumL2
                best = scale * sumLX
            }
        }
        return scale
    }

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
}
