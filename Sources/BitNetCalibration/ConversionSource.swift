import BitNetFormats
import BitNetInference
import BitNetQuantization
import Foundation

/// The model being converted: a Hugging Face directory or a GGUF file, behind one interface.
/// Shapes are given in GGUF order (ne0, the row length, first).
enum ConversionSource: Sendable {
    case huggingFace(HuggingFaceSource)
    case gguf(GGUFSource)

    static func huggingFace(directory: String) throws -> ConversionSource { .huggingFace(try HuggingFaceSource(directory: directory)) }
    static func gguf(path: String) throws -> ConversionSource { .gguf(try GGUFSource(path: path)) }

    private var base: any ModelSource {
        switch self {
        case .huggingFace(let source): source
        case .gguf(let source): source
        }
    }

    var path: String { base.path }
    var configuration: ModelConfiguration { base.configuration }
    var embeddingName: String { base.embeddingName }
    var outputName: String? { base.outputName }
    var outputNormName: String { base.outputNormName }
    func layerNames(_ layer: Int, _ architecture: BitNetArchitecture) -> LayerTensorNames { base.layerNames(layer, architecture) }
    func shape(of name: String) -> [Int]? { base.shape(of: name) }
    func storedShape(rows: Int, columns: Int, name: String) -> [Int] { base.storedShape(rows: rows, columns: columns, name: name) }
    func floats(_ name: String) throws -> [Float] { try base.floats(name) }
    func floats(_ name: String, rows: Range<Int>, columns: Int) throws -> [Float] { try base.floats(name, rows: rows, columns: columns) }
    func ternary(_ name: String, rows: Int, columns: Int) throws -> (TernaryTensor, [Float]?) { try base.ternary(name, rows: rows, columns: columns) }
    func tokenizerMetadata() throws -> [(key: String, value: GGUFValue)] { try base.tokenizerMetadata() }
}

protocol ModelSource: Sendable {
    var path: String { get }
    var configuration: ModelConfiguration { get }
    var embeddingName: String { get }
    var outputName: String? { get }
    var outputNormName: String { get }
    func layerNames(_ layer: Int, _ architecture: BitNetArchitecture) -> LayerTensorNames
    func shape(of name: String) -> [Int]?
    func storedShape(rows: Int, columns: Int, name: String) -> [Int]
    func floats(_ name: String) throws -> [Float]
    func floats(_ name: String, rows: Range<Int>, columns: Int) throws -> [Float]
    /// The ternary weight and, when the source holds master weights, those floats (for the report).
    func ternary(_ name: String, rows: Int, columns: Int) throws -> (TernaryTensor, [Float]?)
    func tokenizerMetadata() throws -> [(key: String, value: GGUFValue)]
}

extension ModelSource {
    /// QAT ternarization of float master weights, with the tensor named in errors.
    func ternarize(_ values: [Float], rows: Int, columns: Int, name: String) throws -> (TernaryTensor, [Float]?) {
        if let exact = TernaryTensor.exactly(values, rows: rows, columns: columns) { return (exact, values) }
        do {
            return (try AbsmeanQuantizer.ternarize(values, rows: rows, columns: columns), values)
        } catch let error as QuantizationError {
            throw ConversionError(.invalidInput, "\(path): tensor '\(name)': \(error.message)")
        }
    }
}

struct HuggingFaceSource: ModelSource {
    let path: String
    let configuration: ModelConfiguration
    let config: HuggingFaceConfiguration
    let checkpoint: SafetensorsCheckpoint

    init(directory: String) throws {
        path = directory
        guard FileManager.default.fileExists(atPath: directory + "/config.json") else {
            throw ConversionError(.invalidInput, "\(directory): no config.json (not a Hugging Face model directory)")
        }
        config = try HuggingFaceConfiguration.load(directory: directory)
        configuration = try ModelConfiguration(huggingFace: config, file: directory)
        checkpoint = try SafetensorsCheckpoint(directory: directory)
    }

    var embeddingName: String { "model.embed_tokens.weight" }
    var outputName: String? { config.tieWordEmbeddings ? nil : "lm_head.weight" }
    var outputNormName: String { "model.norm.weight" }
    func layerNames(_ layer: Int, _ architecture: BitNetArchitecture) -> LayerTensorNames { .huggingFace(layer, architecture: architecture) }
    func shape(of name: String) -> [Int]? { checkpoint.tensor(named: name).map { Array($0.shape.reversed()) } }

    func storedShape(rows: Int, columns: Int, name: String) -> [Int] {
        checkpoint.tensor(named: name)?.dtype == .u8 ? [columns, HuggingFacePacking.packedRows(outFeatures: rows)] : [columns, rows]
    }

    /// Reads a tensor in place, then releases its pages: the input is streamed, not kept resident.
    private func data<R>(_ name: String, _ body: (SafetensorsTensorInfo, UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let info = checkpoint.tensor(named: name), let file = checkpoint.file(containing: name) else {
            throw ConversionError(.invalidInput, "\(path): tensor '\(name)' is missing")
        }
        defer { file.releasePages(of: info) }
        return try file.withTensorData(info) { try body(info, $0) }
    }

    func floats(_ name: String) throws -> [Float] {
        try data(name) { info, bytes in try info.dtype.floats(from: bytes) }
    }

    func floats(_ name: String, rows: Range<Int>, columns: Int) throws -> [Float] {
        try data(name) { info, bytes in
            let width = (info.dtype.bitWidth / 8) * columns
            return try info.dtype.floats(from: UnsafeRawBufferPointer(rebasing: bytes[rows.lowerBound * width..<rows.upperBound * width]))
        }
    }

    func ternary(_ name: String, rows: Int, columns: Int) throws -> (TernaryTensor, [Float]?) {
        let info = checkpoint.tensor(named: name)
        if info?.dtype == .u8 {
            let scaleName = String(name.dropLast("weight".count)) + "weight_scale"
            let weightScale = try floats(scaleName)
            guard weightScale.count == 1 else {
                throw ConversionError(.invalidInput, "\(path): '\(scaleName)' should hold one value, it has \(weightScale.count)")
            }
            let scale = HuggingFacePacking.effectiveScale(weightScale: weightScale[0], linearClass: config.quantization?.linearClass)
            let ternary = try data(name) { _, bytes in
                try HuggingFacePacking.unpack(bytes, packedRows: HuggingFacePacking.packedRows(outFeatures: rows), columns: columns, outFeatures: rows, scale: scale)
            }
            return (ternary, nil)
        }
        return try ternarize(try floats(name), rows: rows, columns: columns, name: name)
    }

    func tokenizerMetadata() throws -> [(key: String, value: GGUFValue)] {
        let tokenizerPath = path + "/tokenizer.json"
        guard FileManager.default.fileExists(atPath: tokenizerPath) else { return [] }
        let tokenizer = try BPETokenizer.load(tokenizerJSON: tokenizerPath, bos: config.beginningOfSequenceTokenID, eos: config.endOfSequenceTokenIDs)
        var template: String?
        if let data = FileManager.default.contents(atPath: path + "/tokenizer_config.json") {
            template = try JSONValue.parse(data)["chat_template"]?.stringValue
        }
        return tokenizer.ggufMetadata(chatTemplate: template)
    }
}

struct GGUFSource: ModelSource {
    let path: String
    let configuration: ModelConfiguration
    let file: GGUFFile

    init(path: String) throws {
        self.path = path
        file = try GGUFFile(path: path)
        configuration = try ModelConfiguration(gguf: file)
    }

    var embeddingName: String { "token_embd.weight" }
    var outputName: String? { file.tensor(named: "output.weight") == nil ? nil : "output.weight" }
    var outputNormName: String { "output_norm.weight" }
    func layerNames(_ layer: Int, _ architecture: BitNetArchitecture) -> LayerTensorNames { .gguf(layer) }
    func shape(of name: String) -> [Int]? { file.tensor(named: name)?.shape }
    func storedShape(rows: Int, columns: Int, name: String) -> [Int] { [columns, rows] }

    private func tensor(_ name: String) throws -> GGUFTensorInfo {
        guard let tensor = file.tensor(named: name) else { throw ConversionError(.invalidInput, "\(path): tensor '\(name)' is missing") }
        return tensor
    }

    func floats(_ name: String) throws -> [Float] {
        let info = try tensor(name)
        defer { file.releasePages(of: info) }
        return try file.withTensorData(info) { try info.type.floats(from: $0, elementCount: info.elementCount) }
    }

    func floats(_ name: String, rows: Range<Int>, columns: Int) throws -> [Float] {
        let info = try tensor(name)
        guard let rowBytes = info.type.byteCount(elementCount: columns), info.type != .i2_s else {
            throw ConversionError(.invalidInput, "\(path): tensor '\(name)' of type \(info.type) cannot be read by rows")
        }
        defer { file.releasePages(of: info) }
        return try file.withTensorData(info) { bytes in
            try info.type.floats(from: UnsafeRawBufferPointer(rebasing: bytes[rows.lowerBound * rowBytes..<rows.upperBound * rowBytes]),
                                 elementCount: rows.count * columns)
        }
    }

    func ternary(_ name: String, rows: Int, columns: Int) throws -> (TernaryTensor, [Float]?) {
        let info = try tensor(name)
        let packing: (any TernaryPacking.Type)? = switch info.type {
        case .tq2_0: TQ2_0.self
        case .tq1_0: TQ1_0.self
        case .i2_s: I2S.self
        default: nil
        }
        defer { file.releasePages(of: info) }
        if let packing, let ternary = try? file.withTensorData(info, { try packing.unpackTensor($0, rows: rows, columns: columns) }) {
            return (ternary, nil)
        }
        return try ternarize(try floats(name), rows: rows, columns: columns, name: name)
    }

    func tokenizerMetadata() throws -> [(key: String, value: GGUFValue)] {
        file.metadata.entries.filter { $0.key.hasPrefix("tokenizer.") }.map { ($0.key, $0.value) }
    }
}
