import BitNetFormats
import BitNetQuantization

/// Element types of float weights the loaders accept.
enum FloatElement {
    case f32, f16, bf16

    init?(_ dtype: SafetensorsDType) {
        switch dtype {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        default: return nil
        }
    }

    init?(_ type: GGMLType) {
        switch type {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        default: return nil
        }
    }

    var matrixElement: FloatMatrix.Element {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        }
    }

    /// Ternarizes `rows × columns` float weights from their stored type. Weights that are already
    /// ternary (every value 0 or ±s, as llama.cpp's converter stores BitNet weights in F16/F32) keep their
    /// codes and `s`; others are master weights and get the QAT formula.
    func ternarize(_ bytes: UnsafeRawBufferPointer, rows: Int, columns: Int, name: String) throws -> TernaryTensor {
        if let ternary = TernaryTensor.exactly(floats(bytes), rows: rows, columns: columns) { return ternary }
        return try ternarizeMasterWeights(bytes, rows: rows, columns: columns, name: name)
    }

    private func ternarizeMasterWeights(_ bytes: UnsafeRawBufferPointer, rows: Int, columns: Int, name: String) throws -> TernaryTensor {
        func load<T>(_: T.Type, _ make: (UInt32) -> T) -> [T] where T: FloatWidening {
            (0..<rows * columns).map { index in
                switch self {
                case .f32: make(bytes.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self))
                default: make(UInt32(bytes.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)))
                }
            }
        }
        do {
            switch self {
            case .f32: return try AbsmeanQuantizer.ternarize(load(Float.self) { Float(bitPattern: $0) }, rows: rows, columns: columns)
            case .f16: return try AbsmeanQuantizer.ternarize(load(Float16.self) { Float16(bitPattern: UInt16($0)) }, rows: rows, columns: columns)
            case .bf16: return try AbsmeanQuantizer.ternarize(load(BFloat16.self) { BFloat16(bitPattern: UInt16($0)) }, rows: rows, columns: columns)
            }
        } catch let error as QuantizationError {
            throw InferenceError(.invalidModel, "tensor '\(name)': \(error.message)")
        }
    }

    func floats(_ bytes: UnsafeRawBufferPointer) -> [Float] {
        switch self {
        case .f32: (0..<bytes.count / 4).map { Float(bitPattern: bytes.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) }
        case .f16: (0..<bytes.count / 2).map { floatFromHalfBits(bytes.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) }
        case .bf16: (0..<bytes.count / 2).map { BFloat16(bitPattern: bytes.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)).floatValue }
        }
    }
}

/// Tensor names of one decoder block, per naming scheme (Hugging Face per architecture, or GGUF).
public struct LayerTensorNames: Sendable {
    public var attentionNorm, query, key, value, attentionOutput, attentionSubNorm: String
    public var feedForwardNorm, gate, up, down, feedForwardSubNorm: String

    /// The BitLinear projections, in the order they are stored.
    public var projections: [String] { [query, key, value, attentionOutput, gate, up, down] }
    /// Every tensor of the block for an architecture (sub-norms only where it has them).
    public func all(subNorms: Bool) -> [String] {
        [attentionNorm, query, key, value] + (subNorms ? [attentionSubNorm] : []) + [attentionOutput, feedForwardNorm, gate, up]
            + (subNorms ? [feedForwardSubNorm] : []) + [down]
    }

    public static func huggingFace(_ layer: Int, architecture: BitNetArchitecture) -> LayerTensorNames {
        let p = "model.layers.\(layer)."
        let bitnet2B = architecture == .bitnetB158
        return LayerTensorNames(
            attentionNorm: p + "input_layernorm.weight", query: p + "self_attn.q_proj.weight",
            key: p + "self_attn.k_proj.weight", value: p + "self_attn.v_proj.weight", attentionOutput: p + "self_attn.o_proj.weight",
            attentionSubNorm: p + (bitnet2B ? "self_attn.attn_sub_norm.weight" : "self_attn.inner_attn_ln.weight"),
            feedForwardNorm: p + "post_attention_layernorm.weight", gate: p + "mlp.gate_proj.weight",
            up: p + "mlp.up_proj.weight", down: p + "mlp.down_proj.weight",
            feedForwardSubNorm: p + (bitnet2B ? "mlp.ffn_sub_norm.weight" : "mlp.ffn_layernorm.weight"))
    }

    public static func gguf(_ layer: Int) -> LayerTensorNames {
        let p = "blk.\(layer)."
        return LayerTensorNames(
            attentionNorm: p + "attn_norm.weight", query: p + "attn_q.weight", key: p + "attn_k.weight",
            value: p + "attn_v.weight", attentionOutput: p + "attn_output.weight", attentionSubNorm: p + "attn_sub_norm.weight",
            feedForwardNorm: p + "ffn_norm.weight", gate: p + "ffn_gate.weight", up: p + "ffn_up.weight",
            down: p + "ffn_down.weight", feedForwardSubNorm: p + "ffn_sub_norm.weight")
    }
}

/// What a loader provides; the layer assembly is shared.
protocol WeightSource {
    var configuration: ModelConfiguration { get }
    func vector(_ name: String, count: Int) throws -> [Float]
    /// A BitLinear weight of `rows` outputs × `columns` inputs.
    func linear(_ name: String, rows: Int, columns: Int) throws -> TernaryLinear
    /// A float matrix of `rows × columns` (embedding, output).
    func matrix(_ name: String, rows: Int, columns: Int) throws -> FloatMatrix
    func contains(_ name: String) -> Bool
    var embeddingName: String { get }
    var outputName: String { get }
    var outputNormName: String { get }
    func layerNames(_ layer: Int) -> LayerTensorNames
}

extension WeightSource {
    func makeTransformer() throws -> Transformer {
        let c = configuration
        var layers: [DecoderLayer] = []
        for index in 0..<c.layerCount {
            let n = layerNames(index)
            let subNorms = c.architecture.hasSubNorms
            layers.append(DecoderLayer(
                attentionNorm: try vector(n.attentionNorm, count: c.hiddenSize),
                query: try linear(n.query, rows: c.queryDimension, columns: c.hiddenSize),
                key: try linear(n.key, rows: c.keyValueDimension, columns: c.hiddenSize),
                value: try linear(n.value, rows: c.keyValueDimension, columns: c.hiddenSize),
                attentionOutput: try linear(n.attentionOutput, rows: c.hiddenSize, columns: c.queryDimension),
                attentionSubNorm: subNorms ? try vector(n.attentionSubNorm, count: c.queryDimension) : nil,
                feedForwardNorm: try vector(n.feedForwardNorm, count: c.hiddenSize),
                gate: try linear(n.gate, rows: c.intermediateSize, columns: c.hiddenSize),
                up: try linear(n.up, rows: c.intermediateSize, columns: c.hiddenSize),
                down: try linear(n.down, rows: c.hiddenSize, columns: c.intermediateSize),
                feedForwardSubNorm: subNorms ? try vector(n.feedForwardSubNorm, count: c.intermediateSize) : nil))
        }
        let embedding = try matrix(embeddingName, rows: c.vocabularySize, columns: c.hiddenSize)
        let output = contains(outputName) ? try matrix(outputName, rows: c.vocabularySize, columns: c.hiddenSize) : embedding
        return Transformer(configuration: c, embedding: embedding, layers: layers,
                           outputNorm: try vector(outputNormName, count: c.hiddenSize), output: output)
    }
}

/// Loads a Hugging Face directory: `config.json` plus safetensors shards.
struct HuggingFaceLoader: WeightSource {
    let directory: String
    let configuration: ModelConfiguration
    let checkpoint: SafetensorsCheckpoint
    let quantization: BitNetQuantizationConfiguration?
    let tiedEmbeddings: Bool

    init(directory: String) throws {
        self.directory = directory
        let config = try HuggingFaceConfiguration.load(directory: directory)
        configuration = try ModelConfiguration(huggingFace: config, file: directory)
        try configuration.validate(file: directory)
        checkpoint = try SafetensorsCheckpoint(directory: directory)
        quantization = config.quantization
        tiedEmbeddings = config.tieWordEmbeddings
    }

    func load() throws -> Transformer { try makeTransformer() }

    var embeddingName: String { "model.embed_tokens.weight" }
    var outputName: String { tiedEmbeddings ? "" : "lm_head.weight" }
    var outputNormName: String { "model.norm.weight" }
    func layerNames(_ layer: Int) -> LayerTensorNames { .huggingFace(layer, architecture: configuration.architecture) }
    func contains(_ name: String) -> Bool { checkpoint.tensor(named: name) != nil }

    private func tensor(_ name: String, shape: [Int]? = nil) throws -> (SafetensorsFile, SafetensorsTensorInfo) {
        guard let file = checkpoint.file(containing: name), let info = file.tensor(named: name) else {
            throw InferenceError(.invalidModel, "\(directory): tensor '\(name)' is missing")
        }
        if let shape, info.shape != shape {
            throw InferenceError(.invalidModel, "\(directory): tensor '\(name)' has shape \(info.shape), expected \(shape)")
        }
        return (file, info)
    }

    private func element(_ info: SafetensorsTensorInfo) throws -> FloatElement {
        guard let element = FloatElement(info.dtype) else {
            throw InferenceError(.unsupportedModel, "\(directory): tensor '\(info.name)' has dtype \(info.dtype), expected F32, F16 or BF16")
        }
        return element
    }

    func vector(_ name: String, count: Int) throws -> [Float] {
        let (file, info) = try tensor(name, shape: [count])
        let element = try element(info)
        return file.withTensorData(info) { element.floats($0) }
    }

    func matrix(_ name: String, rows: Int, columns: Int) throws -> FloatMatrix {
        let (file, info) = try tensor(name, shape: [rows, columns])
        return try FloatMatrix(name: name, element: try element(info).matrixElement, rows: rows, columns: columns, bytes: .mapped(file, info))
    }

    func linear(_ name: String, rows: Int, columns: Int) throws -> TernaryLinear {
        let (file, info) = try tensor(name)
        let ternary: TernaryTensor
        if info.dtype == .u8 {
            // Packed "offline" checkpoint: four rows per byte and a separate weight_scale.
            let packedRows = HuggingFacePacking.packedRows(outFeatures: rows)
            guard info.shape == [packedRows, columns] else {
                throw InferenceError(.invalidModel, "\(directory): packed tensor '\(name)' has shape \(info.shape), expected \([packedRows, columns])")
            }
            let scaleName = String(name.dropLast("weight".count)) + "weight_scale"
            let (scaleFile, scaleInfo) = try tensor(scaleName)
            guard scaleInfo.elementCount == 1 else {
                throw InferenceError(.invalidModel, "\(directory): '\(scaleName)' should hold one value, it has \(scaleInfo.elementCount)")
            }
            let weightScale = try scaleFile.withTensorData(scaleInfo) { try element(scaleInfo).floats($0)[0] }
            let scale = HuggingFacePacking.effectiveScale(weightScale: weightScale, linearClass: quantization?.linearClass)
            ternary = try file.withTensorData(info) {
                try HuggingFacePacking.unpack($0, packedRows: packedRows, columns: columns, outFeatures: rows, scale: scale)
            }
        } else {
            guard info.shape == [rows, columns] else {
                throw InferenceError(.invalidModel, "\(directory): tensor '\(name)' has shape \(info.shape), expected \([rows, columns])")
            }
            let element = try element(info)
            ternary = try file.withTensorData(info) { try element.ternarize($0, rows: rows, columns: columns, name: name) }
        }
        return try TernaryLinear(name: name, ternary: ternary)
    }
}

/// Loads a GGUF file written by llama.cpp, bitnet.cpp or swift-bitnet.
struct GGUFLoader: WeightSource {
    let file: GGUFFile
    let configuration: ModelConfiguration

    init(file: GGUFFile) throws {
        self.file = file
        configuration = try ModelConfiguration(gguf: file)
    }

    func load() throws -> Transformer { try makeTransformer() }

    var embeddingName: String { "token_embd.weight" }
    var outputName: String { "output.weight" }
    var outputNormName: String { "output_norm.weight" }
    func layerNames(_ layer: Int) -> LayerTensorNames { .gguf(layer) }
    func contains(_ name: String) -> Bool { file.tensor(named: name) != nil }

    /// The tensor `name`, checked to have GGUF shape `shape` (ne0 first).
    private func tensor(_ name: String, shape: [Int]) throws -> GGUFTensorInfo {
        guard let info = file.tensor(named: name) else {
            throw InferenceError(.invalidModel, "\(file.path): tensor '\(name)' is missing")
        }
        guard info.shape == shape else {
            throw InferenceError(.invalidModel, "\(file.path): tensor '\(name)' has shape \(info.shape), expected \(shape)")
        }
        return info
    }

    func vector(_ name: String, count: Int) throws -> [Float] {
        let info = try tensor(name, shape: [count])
        guard let element = FloatElement(info.type) else {
            throw InferenceError(.unsupportedModel, "\(file.path): norm '\(name)' has type \(info.type), expected f32, f16 or bf16")
        }
        return file.withTensorData(info) { element.floats($0) }
    }

    func matrix(_ name: String, rows: Int, columns: Int) throws -> FloatMatrix {
        let info = try tensor(name, shape: [columns, rows])
        let element: FloatMatrix.Element
        if let float = FloatElement(info.type) {
            element = float.matrixElement
        } else if info.type == .q8_0 {
            element = .q8_0
        } else if info.type == .q6_K {
            element = .q6_K
        } else {
            throw InferenceError(.unsupportedModel, "\(file.path): tensor '\(name)' has type \(info.type); embeddings and output are supported in f32, f16, bf16, q8_0 and q6_K")
        }
        return try FloatMatrix(name: name, element: element, rows: rows, columns: columns, bytes: .mapped(file, info))
    }

    func linear(_ name: String, rows: Int, columns: Int) throws -> TernaryLinear {
        let info = try tensor(name, shape: [columns, rows])
        switch info.type {
        case .tq2_0: return try TernaryLinear(name: name, layout: .tq2_0, rows: rows, columns: columns, bytes: .mapped(file, info))
        case .tq1_0: return try TernaryLinear(name: name, layout: .tq1_0, rows: rows, columns: columns, bytes: .mapped(file, info))
        case .i2_s: return try TernaryLinear(name: name, layout: .i2_s, rows: rows, columns: columns, bytes: .mapped(file, info))
        default:
            guard let element = FloatElement(info.type) else {
                throw InferenceError(.unsupportedModel, "\(file.path): tensor '\(name)' has type \(info.type); BitLinear weights must be tq1_0, tq2_0, i2_s or float")
            }
            let ternary = try file.withTensorData(info) { try element.ternarize($0, rows: rows, columns: columns, name: name) }
            return try TernaryLinear(name: name, ternary: ternary)
        }
    }
}
