import BitNetFormats
import BitNetModels
import BitNetQuantization
import Dispatch
import Foundation

/// A conversion that cannot be done: bad input, or tensors that do not fit the chosen type.
public struct ConversionError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let invalidInput = Code("invalidInput")
        /// Tensors whose row length the chosen type cannot hold (and no `--fallback` was given).
        public static let unfitRowLength = Code("unfitRowLength")
        public static let invalidOption = Code("invalidOption")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// Options of `bitnet quantize`.
public struct ConversionOptions: Sendable {
    /// The type of BitLinear weights: tq2_0, tq1_0 or i2_s.
    public var weightType: GGMLType = .tq2_0
    /// The type of the embeddings and output projection: f16 (default), bf16, f32, q8_0 or q6_K (llama.cpp's
    /// choice for a tied output: 6.6 bits a weight, a third of f16's bytes read per decoded token).
    public var embeddingType: GGMLType = .f16
    /// The type for BitLinear weights whose rows do not fit ``weightType``; nil makes them an error.
    public var fallbackType: GGMLType?
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    public init(weightType: GGMLType = .tq2_0, embeddingType: GGMLType = .f16, fallbackType: GGMLType? = nil, threads: Int? = nil) {
        self.weightType = weightType
        self.embeddingType = embeddingType
        self.fallbackType = fallbackType
        if let threads { self.threads = max(1, threads) }
    }

    static let ternaryTypes: [GGMLType] = [.tq2_0, .tq1_0, .i2_s]
    static let floatTypes: [GGMLType] = [.f16, .bf16, .f32]

    func validate() throws {
        guard Self.ternaryTypes.contains(weightType) else {
            throw ConversionError(.invalidOption, "--type must be tq2_0, tq1_0 or i2_s, not \(weightType)")
        }
        guard (Self.floatTypes + [.q8_0, .q6_K]).contains(embeddingType) else {
            throw ConversionError(.invalidOption, "--embed-type must be f16, bf16, f32, q8_0 or q6_k, not \(embeddingType)")
        }
        if let fallbackType, !(Self.ternaryTypes + Self.floatTypes).contains(fallbackType) {
            throw ConversionError(.invalidOption, "--fallback must be tq2_0, tq1_0, i2_s, f16, bf16 or f32, not \(fallbackType)")
        }
    }
}

/// Where a conversion stands, reported after each tensor.
public struct ConversionProgress: Sendable {
    public var tensorIndex: Int
    public var tensorCount: Int
    public var tensorName: String
    public var bytesWritten: Int
    public var totalBytes: Int
    public var elapsedSeconds: Double
}

/// Converts a Hugging Face checkpoint (float master weights or packed uint8, any architecture the
/// engine runs) or a GGUF with float weights into a GGUF with ternary BitLinear weights.
///
/// Ternarization is the QAT formula (``AbsmeanQuantizer``); only the BitLinear projections are
/// ternarized. Tensors are read from the memory map, converted and written one at a time (ternary
/// weights in parallel windows of `threads`, embeddings in blocks of rows), so memory stays near a few
/// tensors. The output is written atomically and deterministically (``GGUFWriter``).
public final class ModelConverter: Sendable {
    public let input: String
    public let options: ConversionOptions
    public let configuration: ModelConfiguration
    /// The output's tensors, in order.
    public let plan: [PlannedTensor]
    let metadata: GGUFMetadata
    private let source: WeightSource
    /// Things the user should know that do not stop the conversion (a checkpoint without a tokenizer).
    public let warnings: [String]

    /// One tensor of the output and where it comes from.
    public struct PlannedTensor: Sendable {
        public enum Role: Sendable, Equatable { case bitLinear, embedding, norm }
        public var name: String
        public var role: Role
        public var type: GGMLType
        /// GGUF order: ne0 (row length) first.
        public var shape: [Int]
        var sourceName: String
        /// The tensor's role (and block) in the model being converted.
        var sourceRole: TensorRole
        var layer: Int
        /// For Q and K going from halves to interleaved RoPE (LLaMA-arch GGUF): heads to permute rows of.
        var permuteHeads: Int?

        public var byteCount: Int { type.byteCount(elementCount: shape.reduce(1, *)) ?? 0 }
    }

    public init(input: String, options: ConversionOptions) throws {
        try options.validate()
        self.input = input
        self.options = options
        source = try WeightSource(path: input)
        configuration = source.configuration
        plan = try Self.makePlan(source: source, options: options)
        metadata = try Self.makeMetadata(source: source, options: options, input: input)
        var warnings: [String] = []
        if metadata["tokenizer.ggml.model"] == nil {
            warnings.append("\(input) has no tokenizer (tokenizer.json or tokenizer.ggml.*): the output can compute logits but not encode text")
        }
        warnings += source.architecture.conversionWarnings(hasOutputProjection: plan.contains { $0.sourceRole == .output })
        self.warnings = warnings
    }

    // MARK: - Planning

    private static func makePlan(source: WeightSource, options: ConversionOptions) throws -> [PlannedTensor] {
        let c = source.configuration
        let architecture = source.architecture
        func floatTensor(_ role: TensorRole, layer: Int = 0, type: GGMLType, kind: PlannedTensor.Role) throws -> PlannedTensor {
            let (rows, columns) = role.shape(c)
            return PlannedTensor(name: role.ggufName(layer: layer), role: kind, type: type, shape: rows == 1 ? [columns] : [columns, rows],
                                 sourceName: try source.checkedName(of: role, layer: layer), sourceRole: role, layer: layer)
        }
        var plan = [try floatTensor(.tokenEmbedding, type: options.embeddingType, kind: .embedding)]
        var unfit: [(String, Int)] = []
        for layer in 0..<c.layerCount {
            for role in architecture.layerTensors {
                guard role.isBitLinear else {
                    plan.append(try floatTensor(role, layer: layer, type: .f32, kind: .norm))
                    continue
                }
                let sourceName = try source.checkedName(of: role, layer: layer)
                try source.checkTernaryType(role, layer: layer)
                let (rows, columns) = role.shape(c)
                var type = options.weightType
                if columns % type.rowMultiple != 0 {
                    guard let fallback = options.fallbackType else {
                        unfit.append((role.ggufName(layer: layer), columns))
                        continue
                    }
                    guard columns % fallback.rowMultiple == 0 else {
                        throw ConversionError(.unfitRowLength, "tensor '\(role.ggufName(layer: layer))' has rows of \(columns); the fallback \(fallback) needs multiples of \(fallback.rowMultiple)")
                    }
                    type = fallback
                }
                let permute = c.rotaryLayout != architecture.ggufRotaryLayout && (role == .query || role == .key)
                    ? (role == .query ? c.headCount : c.keyValueHeadCount) : nil
                plan.append(PlannedTensor(name: role.ggufName(layer: layer), role: .bitLinear, type: type, shape: [columns, rows],
                                          sourceName: sourceName, sourceRole: role, layer: layer, permuteHeads: permute))
            }
        }
        if !unfit.isEmpty {
            let list = unfit.map { name, columns in
                let fitting = (ConversionOptions.ternaryTypes + ConversionOptions.floatTypes).filter { columns % $0.rowMultiple == 0 }.map(\.name)
                return "\(name) (rows of \(columns); fits \(fitting.joined(separator: ", ")))"
            }
            throw ConversionError(.unfitRowLength, "\(unfit.count) tensor\(unfit.count == 1 ? "" : "s") cannot be stored as \(options.weightType) (rows must be multiples of \(options.weightType.rowMultiple)); choose a --fallback type for them:\n  " + list.joined(separator: "\n  "))
        }
        plan.append(try floatTensor(.outputNorm, type: .f32, kind: .norm))
        if !source.tiesOutputToEmbedding {
            plan.append(try floatTensor(.output, type: options.embeddingType, kind: .embedding))
        }
        if c.hiddenSize % options.embeddingType.rowMultiple != 0 {
            throw ConversionError(.unfitRowLength, "--embed-type \(options.embeddingType) needs a hidden size that is a multiple of \(options.embeddingType.rowMultiple), not \(c.hiddenSize)")
        }
        return plan
    }

    private static func makeMetadata(source: WeightSource, options: ConversionOptions, input: String) throws -> GGUFMetadata {
        var metadata = GGUFMetadata()
        let hyperparameters = source.configuration.ggufMetadata
        metadata[hyperparameters[0].key] = hyperparameters[0].value  // general.architecture first
        metadata["general.name"] = .string(URL(fileURLWithPath: input).deletingPathExtension().lastPathComponent)
        // llama.cpp's LLAMA_FTYPE: MOSTLY_TQ1_0 = 36, MOSTLY_TQ2_0 = 37; bitnet.cpp's MOSTLY_I2_S = 40.
        let fileType: UInt32 = options.weightType == .tq1_0 ? 36 : (options.weightType == .tq2_0 ? 37 : 40)
        metadata["general.file_type"] = .uint32(fileType)
        metadata["general.quantization_version"] = .uint32(2)
        for (key, value) in hyperparameters.dropFirst() { metadata[key] = value }
        for (key, value) in try source.tokenizerMetadata() { metadata[key] = value }
        return metadata
    }

    // MARK: - Conversion

    /// Writes the output GGUF and returns the per-tensor statistics.
    public func convert(to output: String, progress: ((ConversionProgress) -> Void)? = nil) throws -> ConversionReport {
        let writer = try GGUFWriter(path: output, metadata: metadata, tensors: plan.map { ($0.name, $0.type, $0.shape) })
        let totalBytes = plan.reduce(0) { $0 + $1.byteCount }
        let start = DispatchTime.now().uptimeNanoseconds
        var written = 0
        var statistics: [TensorStatistics] = []
        let testDelay = ProcessInfo.processInfo.environment["BITNET_TEST_CONVERSION_DELAY_MS"].flatMap(Double.init)
        func report(_ index: Int) {
            written += plan[index].byteCount
            progress?(ConversionProgress(tensorIndex: index + 1, tensorCount: plan.count, tensorName: plan[index].name,
                                         bytesWritten: written, totalBytes: totalBytes,
                                         elapsedSeconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9))
            if let testDelay { usleep(useconds_t(testDelay * 1000)) }  // lets tests interrupt a conversion mid-way
        }
        var index = 0
        while index < plan.count {
            if plan[index].role == .embedding {
                try writeFloatMatrix(plan[index], to: writer)
                report(index)
                index += 1
                continue
            }
            // A window of consecutive non-embedding tensors, converted in parallel, written in order.
            var end = index
            while end < plan.count, end - index < options.threads, plan[end].role != .embedding { end += 1 }
            let window = Array(plan[index..<end])
            let results = try convertInParallel(window)
            for (offset, result) in results.enumerated() {
                try writer.write(result.bytes)
                if let stats = result.statistics { statistics.append(stats) }
                report(index + offset)
            }
            index = end
        }
        try writer.finish()
        return ConversionReport(input: input, output: output, architecture: configuration.architecture,
                                weightType: options.weightType, tensors: statistics, calibration: nil)
    }

    private struct ConvertedTensor: Sendable {
        var bytes: [UInt8]
        var statistics: TensorStatistics?
    }

    private func convertInParallel(_ window: [PlannedTensor]) throws -> [ConvertedTensor] {
        let results = ResultSlots<ConvertedTensor>(count: window.count)
        DispatchQueue.concurrentPerform(iterations: window.count) { slot in
            results.set(slot, Result { try self.convert(window[slot]) })
        }
        return try results.values()
    }

    private func convert(_ tensor: PlannedTensor) throws -> ConvertedTensor {
        switch tensor.role {
        case .norm:
            let values = try source.floats(tensor.sourceName)
            return ConvertedTensor(bytes: values.withUnsafeBytes(Array.init), statistics: nil)
        case .bitLinear:
            let (rows, columns) = (tensor.shape[1], tensor.shape[0])
            var (ternary, master) = try source.ternary(tensor.sourceRole, layer: tensor.layer)
            if let heads = tensor.permuteHeads {
                ternary.codes = Self.permuteRows(ternary.codes, rows: rows, columns: columns, heads: heads)
                master = master.map { Self.permuteRows($0, rows: rows, columns: columns, heads: heads) }
            }
            let statistics = TensorStatistics(name: tensor.name, type: tensor.type, shape: tensor.shape, ternary: ternary, master: master)
            let bytes: [UInt8]
            switch tensor.type {
            case .tq2_0: bytes = try TQ2_0.pack(ternary)
            case .tq1_0: bytes = try TQ1_0.pack(ternary)
            case .i2_s: bytes = try I2S.pack(ternary)
            default: bytes = try Self.encodeFloats(ternary.dequantized(), as: tensor.type, rowLength: columns)
            }
            return ConvertedTensor(bytes: bytes, statistics: statistics)
        case .embedding:
            preconditionFailure("embeddings are streamed by writeFloatMatrix")
        }
    }

    /// llama.cpp's Q/K permutation for interleaved RoPE: within each head, rows (i, j) → (j, i) for i < 2.
    static func permuteRows<T>(_ values: [T], rows: Int, columns: Int, heads: Int) -> [T] {
        let half = rows / heads / 2
        var result = values
        for head in 0..<heads {
            for i in 0..<2 {
                for j in 0..<half {
                    let from = head * 2 * half + i * half + j
                    let to = head * 2 * half + j * 2 + i
                    result[to * columns..<(to + 1) * columns] = values[from * columns..<(from + 1) * columns]
                }
            }
        }
        return result
    }

    /// Streams a large float matrix in blocks of rows.
    private func writeFloatMatrix(_ tensor: PlannedTensor, to writer: GGUFWriter) throws {
        let (rows, columns) = (tensor.shape[1], tensor.shape[0])
        let blockRows = max(1, (1 << 22) / columns)
        for first in stride(from: 0, to: rows, by: blockRows) {
            let count = min(blockRows, rows - first)
            let values = try source.floats(tensor.sourceName, rows: first..<first + count, columns: columns)
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw ConversionError(.invalidInput, "\(source.path): tensor '\(tensor.sourceName)' has a non-finite value at row \(first + bad / columns)")
            }
            try writer.write(try Self.encodeFloats(values, as: tensor.type, rowLength: columns))
        }
    }

    static func encodeFloats(_ values: [Float], as type: GGMLType, rowLength: Int) throws -> [UInt8] {
        switch type {
        case .f32: return values.withUnsafeBytes(Array.init)
        case .f16: return values.map { Float16($0).bitPattern }.withUnsafeBytes(Array.init)
        case .bf16: return values.map { BFloat16($0).bitPattern }.withUnsafeBytes(Array.init)
        case .q8_0: return try Q8_0.quantize(values, rowLength: rowLength)
        case .q6_K: return try Q6_K.quantize(values, rowLength: rowLength)
        default: throw ConversionError(.invalidOption, "cannot encode floats as \(type)")
        }
    }
}

/// Results filled in by concurrent workers, one slot each.
private final class ResultSlots<T: Sendable>: @unchecked Sendable {
    private var slots: [Result<T, any Error>?]
    private let lock = NSLock()

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ result: Result<T, any Error>) {
        lock.lock()
        slots[index] = result
        lock.unlock()
    }

    func values() throws -> [T] {
        try slots.map { try $0!.get() }
    }
}
