import BitNetEngine
import BitNetModels
import BitNetQuantization
import CBitNetKernels

/// Keys and values on the host, preallocated: for each layer, `slots × capacity` positions of `width`
/// values, f32 or f16. A slot keeps each key/value head's positions side by side (head-major: `capacity` rows of
/// `headDimension` values a head), so attention streams a head's cache from contiguous memory, which the cores'
/// prefetchers follow. Also holds the activation buffers of the forward passes that use it, reused from one pass
/// to the next.
final class CPUKeyValueStorage: KeyValueStorage, @unchecked Sendable {
    let layers: Int
    let slots: Int
    let capacity: Int
    let width: Int
    /// Values of one key/value head at one position; `width / headDimension` heads.
    let headDimension: Int
    /// The activation buffers of the graph the storage was made for.
    let buffers: [ActivationBuffer]
    let type: KeyValueCacheType
    private var keys: [[Float]] = []
    private var values: [[Float]] = []
    private var halfKeys: [[UInt16]] = []
    private var halfValues: [[UInt16]] = []
    /// Float activations by buffer index, grown as batches need; `activationCounts` values in use.
    private var activations: [UnsafeMutablePointer<Float>?]
    private var activationCapacities: [Int]
    private(set) var activationCounts: [Int]
    /// int8 activations by buffer index.
    var quantized: [QuantizedActivations?]

    init(layers: Int, slots: Int, capacity: Int, width: Int, headDimension: Int, type: KeyValueCacheType, buffers: [ActivationBuffer]) {
        precondition(headDimension > 0 && width % headDimension == 0, "a position's width is whole heads")
        self.layers = layers
        self.headDimension = headDimension
        self.buffers = buffers
        self.slots = slots
        self.capacity = capacity
        self.width = width
        self.type = type
        let count = slots * capacity * width
        switch type {
        case .f32:
            keys = Array(repeating: [Float](repeating: 0, count: count), count: layers)
            values = keys
        case .f16:
            halfKeys = Array(repeating: [UInt16](repeating: 0, count: count), count: layers)
            halfValues = halfKeys
        }
        activations = Array(repeating: nil, count: buffers.count)
        activationCapacities = Array(repeating: 0, count: buffers.count)
        activationCounts = Array(repeating: 0, count: buffers.count)
        quantized = Array(repeating: nil, count: buffers.count)
    }

    deinit {
        for pointer in activations { pointer?.deallocate() }
    }

    /// Makes buffer `index` hold `count` values (contents undefined).
    func prepareActivation(_ index: Int, count: Int) {
        if activations[index] == nil || activationCapacities[index] < count {
            activations[index]?.deallocate()
            activations[index] = .allocate(capacity: max(count, 1))
            activationCapacities[index] = max(count, 1)
        }
        activationCounts[index] = count
    }

    /// The values of activation buffer `index` (prepared for this pass).
    func activation(_ index: Int) -> UnsafeMutablePointer<Float> { activations[index]! }

    var byteCount: Int { (keys.count + values.count + halfKeys.count + halfValues.count) * slots * capacity * width * type.byteWidth }

    /// Elements between one position of a head and the next, and between one head and the next.
    var positionStride: Int { headDimension }
    var headStride: Int { capacity * headDimension }

    /// Stores one position's keys and values (`width` floats each, head after head) in `slot`.
    func store(layer: Int, slot: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        for head in 0..<width / headDimension {
            let base = slot * capacity * width + head * headStride + position * positionStride, source = head * headDimension
            switch type {
            case .f32:
                keys[layer].withUnsafeMutableBufferPointer { ($0.baseAddress! + base).update(from: key + source, count: headDimension) }
                values[layer].withUnsafeMutableBufferPointer { ($0.baseAddress! + base).update(from: value + source, count: headDimension) }
            case .f16:
                halfKeys[layer].withUnsafeMutableBufferPointer { bitnet_float_to_half(key + source, Int64(headDimension), $0.baseAddress! + base) }
                halfValues[layer].withUnsafeMutableBufferPointer { bitnet_float_to_half(value + source, Int64(headDimension), $0.baseAddress! + base) }
            }
        }
    }

    /// Calls `body` with the stored keys and values of `slot` in `layer` (f32 or f16 as ``type``, laid out by
    /// ``positionStride`` and ``headStride``), read in place.
    func withStoredSlot<R>(layer: Int, slot: Int, _ body: (UnsafeRawPointer, UnsafeRawPointer) -> R) -> R {
        let start = slot * capacity * width
        switch type {
        case .f32:
            return keys[layer].withUnsafeBytes { k in
                values[layer].withUnsafeBytes { v in body(k.baseAddress! + start * 4, v.baseAddress! + start * 4) }
            }
        case .f16:
            return halfKeys[layer].withUnsafeBytes { k in
                halfValues[layer].withUnsafeBytes { v in body(k.baseAddress! + start * 2, v.baseAddress! + start * 2) }
            }
        }
    }
}
