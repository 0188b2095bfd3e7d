import BitNetFormats
import BitNetQuantization
import Foundation

/// Where a model's matrix products run.
public enum ComputeBackend: String, Sendable, CaseIterable {
    /// The CPU, with `threads` worker threads.
    case cpu
}

/// A BitNet model loaded for inference: weights stay packed and, where the file allows, memory-mapped.
///
/// Load a GGUF file (llama.cpp's TQ1_0/TQ2_0, bitnet.cpp's I2_S, or float weights ternarized at load) or
/// a Hugging Face directory (packed uint8 "offline" checkpoints, or float master weights of a QAT
/// checkpoint, ternarized at load with the exact QAT formula).
public final class BitNetModel: Sendable {
    public let path: String
    public let configuration: ModelConfiguration
    /// Threads used by the matrix products.
    public let threads: Int
    public let backend: ComputeBackend
    /// How BitLinear layers compute (integer by default).
    public let arithmetic: BitLinearArithmetic
    let transformer: Transformer
    /// The GGUF file the model came from, for its tokenizer metadata.
    public let ggufFile: GGUFFile?

    /// Loads the model at `path`: a `.gguf` file or a Hugging Face directory.
    public init(path: String, backend: ComputeBackend = .cpu, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                arithmetic: BitLinearArithmetic = .integer) throws {
        self.path = path
        self.backend = backend
        self.arithmetic = arithmetic
        self.threads = max(1, threads)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw InferenceError(.invalidInput, "\(path): no such file or directory")
        }
        if isDirectory.boolValue {
            let loaded = try HuggingFaceLoader(directory: path).load()
            (configuration, transformer, ggufFile) = (loaded.configuration, loaded, nil)
        } else {
            let file = try GGUFFile(path: path)
            let loaded = try GGUFLoader(file: file).load()
            (configuration, transformer, ggufFile) = (loaded.configuration, loaded, file)
        }
    }

    /// Bytes of weights that live in the memory map (not copied), and bytes converted into memory at load.
    public var weightBytes: (mapped: Int, owned: Int) {
        var mapped = 0, owned = 0
        func add(_ bytes: TensorBytes) {
            if bytes.isMapped { mapped += bytes.count } else { owned += bytes.count }
        }
        add(transformer.embedding.bytes)
        if transformer.output.name != transformer.embedding.name { add(transformer.output.bytes) }
        for layer in transformer.layers {
            for linear in [layer.query, layer.key, layer.value, layer.attentionOutput, layer.gate, layer.up, layer.down] { add(linear.bytes) }
        }
        return (mapped, owned)
    }
}

/// An inference context: a KV cache preallocated to `contextLength` positions and the tokens seen so far.
///
/// Not thread-safe; use one session per conversation.
public final class InferenceSession {
    public let model: BitNetModel
    public let contextLength: Int
    private let cache: KeyValueCache
    /// The tokens processed so far, in order.
    public private(set) var tokens: [Int] = []
    /// Called with every BitLinear input during ``evaluate(_:allPositions:)`` (calibration statistics).
    public var activationObserver: ActivationObserver?

    /// - Parameters:
    ///   - contextLength: positions the KV cache holds (default: the model's, at most 4096).
    ///   - cacheType: f32 (exact) or f16 (half the memory).
    public init(model: BitNetModel, contextLength: Int? = nil, cacheType: KeyValueCacheType = .f32) throws {
        let length = contextLength ?? min(model.configuration.contextLength, 4096)
        guard length > 0, length <= 1 << 20 else {
            throw InferenceError(.invalidInput, "context length \(length) must be between 1 and \(1 << 20)")
        }
        self.model = model
        self.contextLength = length
        let c = model.configuration
        cache = KeyValueCache(layers: c.layerCount, capacity: length, width: c.keyValueDimension, type: cacheType)
    }

    /// Bytes held by the KV cache.
    public var cacheBytes: Int { cache.byteCount }

    /// Positions still free in the context.
    public var remainingContext: Int { contextLength - tokens.count }

    /// Processes `newTokens` as one batch, appending them to the context, and returns logits:
    /// one row per new token with `allPositions`, else only the last row.
    public func evaluate(_ newTokens: [Int], allPositions: Bool = false) throws -> [[Float]] {
        guard !newTokens.isEmpty else { throw InferenceError(.invalidInput, "no tokens to evaluate") }
        let vocabulary = model.configuration.vocabularySize
        if let bad = newTokens.first(where: { $0 < 0 || $0 >= vocabulary }) {
            throw InferenceError(.invalidInput, "token id \(bad) is outside the vocabulary of \(vocabulary)")
        }
        guard newTokens.count <= remainingContext else {
            throw InferenceError(.contextOverflow, "\(tokens.count + newTokens.count) tokens do not fit the context of \(contextLength)")
        }
        let flat = model.transformer.forward(newTokens, cache: cache, allPositions: allPositions, threads: model.threads,
                                             arithmetic: model.arithmetic, observer: activationObserver)
        tokens += newTokens
        let width = model.transformer.output.rows
        return stride(from: 0, to: flat.count, by: width).map { Array(flat[$0..<$0 + width]) }
    }

    /// Forgets everything after the first `count` tokens (the cache keeps their keys and values).
    public func truncate(to count: Int) {
        let kept = max(0, min(count, tokens.count))
        tokens.removeLast(tokens.count - kept)
        cache.count = kept
    }

    /// Empties the context.
    public func reset() { truncate(to: 0) }
}
