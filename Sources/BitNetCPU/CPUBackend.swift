import BitNetEngine
import BitNetModels
import CBitNetKernels
import Foundation

/// How BitLinear layers compute on the CPU.
public enum BitLinearArithmetic: Sendable {
    /// int8 × ternary with integer accumulation and one rescale: the deployed model.
    case integer
    /// Dequantized activations × dequantized weights in float32: the QAT forward pass as PyTorch runs it.
    case fakeQuantizedFloat
}

/// Receives every BitLinear input before it is quantized: the site, the layer, and the float values
/// (`width` per token). Calibration uses it to measure activation ranges.
public typealias ActivationObserver = @Sendable (ActivationSite, Int, [Float], Int) -> Void

/// The CPU backend: weights used in place from the memory map, the ops run by the C kernels
/// (`CBitNetKernels`, the best SIMD variant of this CPU chosen at run time) on a pool of `threads` persistent
/// threads.
public struct CPUBackend: Backend {
    public let threads: Int
    public let arithmetic: BitLinearArithmetic
    public let observer: ActivationObserver?
    let pool: KernelPool

    /// The default thread count: the physical cores this process may use.
    public static var defaultThreads: Int { KernelPool.physicalCores }

    public init(threads: Int = CPUBackend.defaultThreads, arithmetic: BitLinearArithmetic = .integer,
                observer: ActivationObserver? = nil) {
        self.threads = max(1, threads)
        self.arithmetic = arithmetic
        self.observer = observer
        pool = KernelPool(threads: self.threads)
    }

    public var name: String { "cpu (\(String(cString: bitnet_kernels_isa())), \(threads) thread\(threads == 1 ? "" : "s"))" }

    public func load(_ graph: ForwardGraph) throws -> any BackendModel { try CPUModel(graph: graph, backend: self) }
}

/// A weight as the CPU kernels read it.
enum CPUWeight: Sendable {
    case ternary(TernaryLinear)
    case matrix(FloatMatrix)
    case vector([Float])

    /// The weights of `graph`, each in the form the ops that use it read; throws when a weight does not
    /// suit its op (a norm that is not one float32 row, a BitLinear weight that is not ternary, …).
    /// With `repackingOn`, BitLinear weights are also repacked into lookup panels.
    static func forGraph(_ graph: ForwardGraph, repackingOn pool: KernelPool? = nil) throws -> [CPUWeight] {
        try graph.mapWeights { tensor, use in
            switch use {
            case .vector:
                .vector(tensor.bytes.withUnsafeBytes { bytes in
                    (0..<tensor.columns).map { bytes.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
                })
            case .ternary: .ternary(TernaryLinear(tensor, repackingOn: pool))
            case .matrix: .matrix(FloatMatrix(tensor))
            }
        }
    }
}

/// A model on the CPU backend: the graph and its weights, ready to run.
struct CPUModel: BackendModel {
    let graph: ForwardGraph
    let backend: CPUBackend
    let weights: [CPUWeight]
    /// Rotary inverse frequencies for each embedding the graph uses.
    let inverseFrequencies: [RotaryEmbedding: [Float]]
    /// For each op index (and one past the last), the weight of the first matmul at or after it.
    let nextMatrix: [Int?]

    init(graph: ForwardGraph, backend: CPUBackend) throws {
        self.graph = graph
        self.backend = backend
        // Repacked at load where this thread's level decodes by lookup (``bitnet_kernels_decode_by_lookup``): 2B-4T's
        // 2.1 billion weights take ~0.1 s on 2 Zen 3 cores, besides paging the file in (a load of 0.3 s in all).
        let repacks = backend.arithmetic == .integer && bitnet_kernels_decode_by_lookup() != 0
        weights = try CPUWeight.forGraph(graph, repackingOn: repacks ? backend.pool : nil)
        var frequencies: [RotaryEmbedding: [Float]] = [:]
        for case .rope(_, _, let rotary) in graph.ops { frequencies[rotary] = rotary.inverseFrequencies }
        inverseFrequencies = frequencies
        var next: [Int?] = [nil]
        for op in graph.ops.reversed() { next.append(op.matrixWeight?.index ?? next.last!) }
        nextMatrix = next.reversed()
    }

    func withBytesRead<R>(of weight: WeightID, _ body: (UnsafeRawBufferPointer) -> R) -> R? {
        guard case .ternary(let linear) = weights[weight.index], linear.readsLookupPanels else { return nil }
        return linear.withBytesRead(body)
    }

    func makeCacheStorage(slots: Int, capacity: Int, type: KeyValueCacheType) throws -> any KeyValueStorage {
        let (layers, width) = graph.cacheShape
        return CPUKeyValueStorage(layers: layers, slots: slots, capacity: capacity, width: width,
                                  headDimension: graph.configuration.headDimension, type: type, buffers: graph.buffers)
    }

    func forward(_ batch: ForwardBatch, storage: any KeyValueStorage) throws -> [Float] {
        guard let storage = storage as? CPUKeyValueStorage else {
            throw InferenceError(.invalidInput, "the cache was made by another backend")
        }
        guard storage.layers == graph.cacheShape.layers, storage.width == graph.cacheShape.width, storage.buffers == graph.buffers else {
            throw InferenceError(.invalidInput, "the cache was made for another model")
        }
        return CPUExecution(model: self, batch: batch, cache: storage).run()
    }
}

extension CPUBackend {
    /// Bytes per second of reading `regions` once on this backend's threads with the widest loads its kernels
    /// use, the best of `passes` (the first also faults a memory map in): the fastest a kernel could stream the
    /// same bytes, a benchmark's bandwidth roofline.
    public func readBandwidth(of regions: [UnsafeRawBufferPointer], passes: Int = 3) -> Double {
        let total = regions.reduce(0) { $0 + $1.count }
        let bases = regions.map { UnsafeRawPointer($0.baseAddress) }
        let counts = regions.map(\.count)
        var best = 0.0
        for _ in 0..<max(1, passes) {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = bitnet_stream_read(pool.pointer, bases, counts, Int64(regions.count))
            best = max(best, Double(total) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9))
        }
        return best
    }
}
