import BitNetFormats
import BitNetQuantization
import Foundation

/// A model file — a GGUF file or a Hugging Face directory — seen through its architecture: the one place
/// that knows tensor names, shapes, `weight_scale` and the ternarization rules. Loading reads weights
/// from it (in place where the file allows), and so does conversion.
public struct WeightSource: Sendable {
    private enum Storage: Sendable {
        case gguf(GGUFFile)
        case huggingFace(HuggingFaceConfiguration, SafetensorsCheckpoint)
    }

    public let path: String
    public let configuration: ModelConfiguration
    private let storage: Storage

    /// Opens `path`: a `.gguf` file or a Hugging Face directory (`config.json` and safetensors).
    public init(path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError(.invalidModel, "\(path): no such file or directory")
        }
        if isDirectory.boolValue {
            try self.init(huggingFaceDirectory: path)
        } else {
            try self.init(gguf: try GGUFFile(path: path))
        }
    }

    private init(huggingFaceDirectory path: String) throws {
        guard FileManager.default.fileExists(atPath: path + "/config.json") else {
            throw ModelError(.invalidModel, "\(path): no config.json (not a Hugging Face model directory)")
        }
        self.path = path
        let config = try HuggingFaceConfiguration.load(directory: path)
        configuration = try ModelConfiguration(huggingFace: config, file: path)
        storage = .huggingFace(config, try SafetensorsCheckpoint(directory: path))
    }

    /// A GGUF file already opened (from a path or from bytes).
    public init(gguf file: GGUFFile) throws {
        path = file.path
        configuration = try ModelConfiguration(gguf: file)
        if file.tensor(named: "rope_freqs.weight") != nil {
            throw ModelError(.unsupportedConfiguration, "\(path): tensor rope_freqs.weight (scaled rotary frequencies, as in Llama 3.1) is not supported")
        }
        storage = .gguf(file)
    }

    public var architecture: any ModelArchitecture { configuration.architecture.definition }

    /// The GGUF file, when the model is one.
    public var ggufFile: GGUFFile? {
        if case .gguf(let file) = storage { return file }
        return nil
    }

    /// The name `role` has in this file.
    public func name(of role: TensorRole, layer: Int = 0) -> String {
        switch storage {
        case .gguf: role.ggufName(layer: layer)
        case .huggingFace(let config, _):
            role == .output && config.tieWordEmbeddings ? "" : architecture.huggingFaceName(role, layer: layer)
        }
    }

    /// Whether the file has the tensor of `role`.
    public func contains(_ role: TensorRole, layer: Int = 0) -> Bool { shape(ofTensor: name(of: role, layer: layer)) != nil }

    /// Whether the output projection is the token embedding: `tie_word_embeddings` in a Hugging Face
    /// directory (an untied one must have `lm_head.weight`), no `output.weight` in a GGUF file (llama.cpp's rule).
    public var tiesOutputToEmbedding: Bool {
        switch storage {
        case .gguf: !contains(.output)
        case .huggingFace(let config, _): config.tieWordEmbeddings
        }
    }

    /// A tensor's shape as stored, in GGUF order (the row length first).
    public func shape(ofTensor name: String) -> [Int]? {
        switch storage {
        case .gguf(let file): file.tensor(named: name)?.shape
        case .huggingFace(_, let checkpoint): checkpoint.tensor(named: name).map { Array($0.shape.reversed()) }
        }
    }

    /// The shape, in GGUF order, the tensor of `role` must have in this file.
    public func expectedShape(of role: TensorRole, layer: Int = 0) -> [Int] {
        let (rows, columns) = role.shape(configuration)
        if role.isNorm { return [columns] }
        if case .huggingFace(_, let checkpoint) = storage, role.isBitLinear, checkpoint.tensor(named: name(of: role, layer: layer))?.dtype == .u8 {
            return [columns, HuggingFacePacking.packedRows(outFeatures: rows)]
        }
        return [columns, rows]
    }

    private func missing(_ name: String) -> ModelError { ModelError(.invalidModel, "\(path): tensor '\(name)' is missing") }

    /// The tensor `name` after checking that it has the shape `expected` (GGUF order).
    private func checkShape(_ name: String, _ expected: [Int]) throws {
        guard let shape = shape(ofTensor: name) else { throw missing(name) }
        guard shape == expected else {
            throw ModelError(.invalidModel, "\(path): tensor '\(name)' has shape \(shape), but the configuration implies \(expected)")
        }
    }

    /// The file's name of `role`, after checking that the tensor is there with the shape the configuration
    /// implies (conversion checks every tensor this way before writing anything).
    public func checkedName(of role: TensorRole, layer: Int = 0) throws -> String {
        let name = name(of: role, layer: layer)
        try checkShape(name, expectedShape(of: role, layer: layer))
        return name
    }

    /// Calls `body` with a tensor's bytes in place; with `releasing`, its pages are dropped afterwards
    /// (conversion streams its input instead of keeping it resident).
    private func withData<R>(_ name: String, releasing: Bool = false, _ body: (Element, UnsafeRawBufferPointer) throws -> R) throws -> R {
        switch storage {
        case .gguf(let file):
            guard let info = file.tensor(named: name) else { throw missing(name) }
            defer { if releasing { file.releasePages(of: info) } }
            return try file.withTensorData(info) { try body(.gguf(info.type, info.elementCount), $0) }
        case .huggingFace(_, let checkpoint):
            guard let file = checkpoint.file(containing: name), let info = file.tensor(named: name) else { throw missing(name) }
            defer { if releasing { file.releasePages(of: info) } }
            return try file.withTensorData(info) { try body(.safetensors(info.dtype), $0) }
        }
    }

    private enum Element {
        case gguf(GGMLType, Int)
        case safetensors(SafetensorsDType)

        func floats(_ bytes: UnsafeRawBufferPointer, elementCount: Int? = nil) throws -> [Float] {
            switch self {
            case .gguf(let type, let count): try type.floats(from: bytes, elementCount: elementCount ?? count)
            case .safetensors(let dtype): try dtype.floats(from: bytes)
            }
        }
    }

    // MARK: - Values, for conversion and norms

    /// Every value of a tensor as float32.
    public func floats(_ name: String) throws -> [Float] {
        do {
            return try withData(name, releasing: true) { element, bytes in try element.floats(bytes) }
        } catch let error as FormatError {
            throw ModelError(.unsupportedModel, "\(path): tensor '\(name)': \(error.message)")
        }
    }

    /// Rows `rows` of a `columns`-wide tensor as float32 (a large embedding, read in blocks).
    public func floats(_ name: String, rows: Range<Int>, columns: Int) throws -> [Float] {
        do {
            return try rowFloats(name, rows: rows, columns: columns)
        } catch let error as FormatError {
            throw ModelError(.unsupportedModel, "\(path): tensor '\(name)': \(error.message)")
        }
    }

    private func rowFloats(_ name: String, rows: Range<Int>, columns: Int) throws -> [Float] {
        try withData(name, releasing: true) { element, bytes in
            let rowBytes: Int
            switch element {
            case .gguf(let type, _):
                guard let size = type.byteCount(elementCount: columns), type != .i2_s else {
                    throw ModelError(.unsupportedModel, "\(path): tensor '\(name)' of type \(type) cannot be read by rows")
                }
                rowBytes = size
            case .safetensors(let dtype): rowBytes = dtype.bitWidth / 8 * columns
            }
            guard rowBytes > 0, rows.lowerBound >= 0, rows.upperBound <= bytes.count / rowBytes else {
                throw ModelError(.invalidModel, "\(path): tensor '\(name)' has no rows \(rows) of \(columns) values")
            }
            return try element.floats(UnsafeRawBufferPointer(rebasing: bytes[rows.lowerBound * rowBytes..<rows.upperBound * rowBytes]),
                                      elementCount: rows.count * columns)
        }
    }

    /// The norm weight of `role`, as float32.
    public func vector(_ role: TensorRole, layer: Int = 0) throws -> [Float] {
        try floats(checkedName(of: role, layer: layer))
    }

    /// The BitLinear weight of `role` as ternary codes and one scale, with the float master weights when
    /// the file holds those. The rules, exact with transformers: packed types (TQ1_0, TQ2_0, I2_S, Hugging
    /// Face uint8 with `weight_scale`) are unpacked; float weights that are already ternary (every value 0
    /// or ±s, as llama.cpp's converter stores BitNet weights in F16/F32) keep their codes and `s`; other
    /// float weights are master weights and get the QAT formula (``AbsmeanQuantizer``).
    public func ternary(_ role: TensorRole, layer: Int = 0) throws -> (TernaryTensor, master: [Float]?) {
        let name = name(of: role, layer: layer)
        let (rows, columns) = role.shape(configuration)
        try checkShape(name, expectedShape(of: role, layer: layer))
        if case .huggingFace(let config, _) = storage, let info = checkpointInfo(name), info.dtype == .u8 {
            let scaleName = String(name.dropLast("weight".count)) + "weight_scale"
            let weightScale = try floats(scaleName)
            guard weightScale.count == 1, weightScale[0].isFinite, weightScale[0] != 0 else {
                throw ModelError(.invalidModel, "\(path): '\(scaleName)' should hold one finite, non-zero value; it holds \(weightScale.prefix(4))")
            }
            let scale = HuggingFacePacking.effectiveScale(weightScale: weightScale[0], linearClass: config.quantization?.linearClass)
            let ternary = try withData(name, releasing: true) { _, bytes in
                try HuggingFacePacking.unpack(bytes, packedRows: HuggingFacePacking.packedRows(outFeatures: rows), columns: columns, outFeatures: rows, scale: scale)
            }
            return (ternary, nil)
        }
        if let file = ggufFile, let info = file.tensor(named: name), let packing = Self.packing(info.type) {
            defer { file.releasePages(of: info) }
            return (try file.withTensorData(info) { try packing.unpackTensor($0, rows: rows, columns: columns) }, nil)
        }
        try checkTernaryType(role, layer: layer)
        let values = try floats(name)
        if let exact = TernaryTensor.exactly(values, rows: rows, columns: columns) { return (exact, values) }
        do {
            return (try AbsmeanQuantizer.ternarize(values, rows: rows, columns: columns), values)
        } catch let error as QuantizationError {
            throw ModelError(.invalidModel, "\(path): tensor '\(name)': \(error.message)")
        }
    }

    private func checkpointInfo(_ name: String) -> SafetensorsTensorInfo? {
        if case .huggingFace(_, let checkpoint) = storage { return checkpoint.tensor(named: name) }
        return nil
    }

    /// Float types BitLinear weights may be stored in (and are ternarized from).
    private static let floatTypes: Set<GGMLType> = [.f32, .f16, .bf16, .f64, .q8_0, .q6_K]
    private static let floatDTypes: Set<SafetensorsDType> = [.f32, .f16, .bf16, .f64]

    /// Throws unless the BitLinear weight of `role` is stored in a type its ternary codes can be read from.
    public func checkTernaryType(_ role: TensorRole, layer: Int = 0) throws {
        let name = name(of: role, layer: layer)
        switch storage {
        case .gguf(let file):
            guard let info = file.tensor(named: name) else { throw missing(name) }
            guard Self.packing(info.type) != nil || Self.floatTypes.contains(info.type) else {
                throw ModelError(.unsupportedModel, "\(path): tensor '\(name)' has type \(info.type); BitLinear weights must be tq1_0, tq2_0, i2_s or float (f32, f16, bf16, f64, q8_0, q6_K)")
            }
        case .huggingFace(_, let checkpoint):
            guard let info = checkpoint.tensor(named: name) else { throw missing(name) }
            guard info.dtype == .u8 || Self.floatDTypes.contains(info.dtype) else {
                throw ModelError(.unsupportedModel, "\(path): tensor '\(name)' has dtype \(info.dtype); BitLinear weights must be packed U8 or F32, F16, BF16, F64")
            }
        }
    }

    private static func packing(_ type: GGMLType) -> (any TernaryPacking.Type)? {
        switch type {
        case .tq2_0: TQ2_0.self
        case .tq1_0: TQ1_0.self
        case .i2_s: I2S.self
        default: nil
        }
    }

    // MARK: - Weights, for loading

    /// The tensor of `role` as a backend takes it: packed ternary and float weights of a GGUF file in place
    /// from the memory map; Hugging Face packed or float BitLinear weights ternarized into memory (I2_S);
    /// norm weights as float32.
    public func weight(_ role: TensorRole, layer: Int = 0) throws -> WeightTensor {
        do {
            return try loadWeight(role, layer: layer)
        } catch let error as ModelError where !error.message.hasPrefix(path) {
            throw ModelError(error.code, "\(path): \(error.message)", cause: error.cause)
        }
    }

    private func loadWeight(_ role: TensorRole, layer: Int) throws -> WeightTensor {
        let name = name(of: role, layer: layer)
        let (rows, columns) = role.shape(configuration)
        if role.isBitLinear {
            if let file = ggufFile, let info = file.tensor(named: name), let encoding = WeightEncoding(rawValue: info.type.name),
               encoding.isTernary {
                try checkShape(name, [columns, rows])
                return try WeightTensor(name: name, encoding: encoding, rows: rows, columns: columns, bytes: .mapped(file, info))
            }
            return try WeightTensor(name: name, ternary: try ternary(role, layer: layer).0)
        }
        if role.isNorm { return try WeightTensor(name: name, vector: try vector(role, layer: layer)) }
        try checkShape(name, [columns, rows])
        switch storage {
        case .gguf(let file):
            let info = file.tensor(named: name)!
            guard let encoding = WeightEncoding(rawValue: info.type.name), !encoding.isTernary else {
                throw ModelError(.unsupportedModel, "\(path): tensor '\(name)' has type \(info.type); embeddings and output are supported in f32, f16, bf16, q8_0 and q6_K")
            }
            return try WeightTensor(name: name, encoding: encoding, rows: rows, columns: columns, bytes: .mapped(file, info))
        case .huggingFace(_, let checkpoint):
            let file = checkpoint.file(containing: name)!, info = file.tensor(named: name)!
            guard let encoding = WeightEncoding(rawValue: info.dtype.rawValue.lowercased()), [.f32, .f16, .bf16].contains(encoding) else {
                throw ModelError(.unsupportedModel, "\(path): tensor '\(name)' has dtype \(info.dtype), expected F32, F16 or BF16")
            }
            return try WeightTensor(name: name, encoding: encoding, rows: rows, columns: columns, bytes: .mapped(file, info))
        }
    }

    // MARK: - Tokenizer and chat template

    /// The model's tokenizer: GGUF `tokenizer.ggml.*` metadata, or `tokenizer.json` beside `config.json`.
    public func loadTokenizer() throws -> BPETokenizer {
        switch storage {
        case .gguf(let file): return try BPETokenizer.load(gguf: file)
        case .huggingFace(let config, _):
            let tokenizerPath = path + "/tokenizer.json"
            guard FileManager.default.fileExists(atPath: tokenizerPath) else {
                throw ModelError(.invalidModel, "\(path): no tokenizer.json")
            }
            return try BPETokenizer.load(tokenizerJSON: tokenizerPath, bos: config.beginningOfSequenceTokenID, eos: config.endOfSequenceTokenIDs)
        }
    }

    /// The Jinja chat template the model ships (`tokenizer.chat_template` or tokenizer_config.json).
    public var chatTemplateSource: String? {
        if let file = ggufFile { return file.metadata.string("tokenizer.chat_template") }
        guard let data = FileManager.default.contents(atPath: path + "/tokenizer_config.json"),
              let config = try? JSONValue.parse(data) else { return nil }
        return config["chat_template"]?.stringValue
    }

    /// The tokenizer and chat template as GGUF `tokenizer.*` metadata (empty when the model has none).
    public func tokenizerMetadata() throws -> [(key: String, value: GGUFValue)] {
        switch storage {
        case .gguf(let file):
            return file.metadata.entries.filter { $0.key.hasPrefix("tokenizer.") }.map { ($0.key, $0.value) }
        case .huggingFace:
            guard FileManager.default.fileExists(atPath: path + "/tokenizer.json") else { return [] }
            return try loadTokenizer().ggufMetadata(chatTemplate: chatTemplateSource)
        }
    }
}
