import Foundation

/// What `bitnet inspect` shows of a model file or directory: its format, metadata and tensors.
///
/// Works on a `.gguf` file, a `.safetensors` file, or a Hugging Face directory (`config.json` plus
/// one or more safetensors shards). Nothing is loaded beyond the headers.
public struct ModelInspection: Sendable {
    public enum Format: String, Sendable {
        case gguf
        case safetensors
        case huggingFaceDirectory = "hf-directory"
    }

    public struct Tensor: Sendable, Hashable {
        public var name: String
        /// ggml's type name ("tq2_0", "f16") for GGUF; the dtype ("BF16", "U8") for safetensors.
        public var type: String
        /// GGUF order (ne0 first) for GGUF; PyTorch order for safetensors.
        public var shape: [Int]
        public var bytes: Int
    }

    public var path: String
    public var format: Format
    /// One line describing the container (version, alignment, type numbering, shards).
    public var summary: String
    public var metadata: [(key: String, value: JSONValue)]
    public var tensors: [Tensor]

    /// Reads the headers at `path`; the kind is recognized from the content, not the name.
    public init(path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw FormatError(.cannotOpen, file: path, "no such file or directory")
        }
        if isDirectory.boolValue {
            let configPath = path + "/config.json"
            var metadata: [(key: String, value: JSONValue)] = []
            if let data = FileManager.default.contents(atPath: configPath) {
                let config = try attributing(to: configPath) { try JSONValue.parse(data) }
                metadata = (config.objectValue ?? []).map { (key: $0.0, value: $0.1) }
                _ = try HuggingFaceConfiguration.decode(data, file: configPath)
            }
            let checkpoint = try SafetensorsCheckpoint(directory: path)
            self.init(path: path, format: .huggingFaceDirectory,
                      summary: "Hugging Face directory, \(checkpoint.files.count) safetensors shard\(checkpoint.files.count == 1 ? "" : "s")",
                      metadata: metadata, tensors: checkpoint.tensorNames.compactMap { checkpoint.tensor(named: $0) }.map(Self.tensor))
        } else if try Self.startsWithGGUFMagic(path) {
            self.init(gguf: try GGUFFile(path: path))
        } else {
            let file: SafetensorsFile
            do {
                file = try SafetensorsFile(path: path)
            } catch let error as FormatError where !path.hasSuffix(".safetensors") && [.invalidHeader, .countExceedsFile, .truncated].contains(error.code) {
                throw FormatError(.unsupportedFormat, file: path, "neither a GGUF file (no \"GGUF\" magic) nor a safetensors file (\(error.message))")
            }
            self.init(safetensors: file)
        }
    }

    /// The headers of an opened GGUF file.
    public init(gguf file: GGUFFile) {
        self.init(path: file.path, format: .gguf,
                  summary: "GGUF v\(file.version), alignment \(file.alignment), \(file.dialect) type numbering, data at byte \(file.dataOffset)",
                  metadata: file.metadata.map { (key: $0.key, value: JSONValue($0.value)) },
                  tensors: file.tensors.map { Tensor(name: $0.name, type: $0.type.name, shape: $0.shape, bytes: $0.byteCount) })
    }

    /// The header of an opened safetensors file.
    public init(safetensors file: SafetensorsFile) {
        self.init(path: file.path, format: .safetensors, summary: "safetensors, \(file.tensors.count) tensors",
                  metadata: file.metadata.map { (key: $0.0, value: .string($0.1)) }, tensors: file.tensors.map(Self.tensor))
    }

    private init(path: String, format: Format, summary: String, metadata: [(key: String, value: JSONValue)], tensors: [Tensor]) {
        self.path = path
        self.format = format
        self.summary = summary
        self.metadata = metadata
        self.tensors = tensors
    }

    private static func tensor(_ info: SafetensorsTensorInfo) -> Tensor {
        Tensor(name: info.name, type: info.dtype.rawValue, shape: info.shape, bytes: info.byteCount)
    }

    private static func startsWithGGUFMagic(_ path: String) throws -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw FormatError(.cannotOpen, file: path, "cannot open for reading")
        }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 4)) ?? Data()
        return head == Data("GGUF".utf8)
    }

    /// `{"format", "metadata", "tensors": [{"name", "type", "shape", "bytes"}]}`.
    public var json: JSONValue {
        .object([
            ("format", .string(format.rawValue)),
            ("metadata", .object(metadata.map { ($0.key, $0.value) })),
            ("tensors", .array(tensors.map { tensor in
                .object([
                    ("name", .string(tensor.name)),
                    ("type", .string(tensor.type)),
                    ("shape", .array(tensor.shape.map { .int($0) })),
                    ("bytes", .int(tensor.bytes)),
                ])
            })),
        ])
    }

    /// A readable report; arrays longer than `arrayPreview` elements are shortened.
    public func text(arrayPreview: Int = 8) -> String {
        var lines = ["\(path): \(summary)", "", "metadata (\(metadata.count) entries):"]
        let keyWidth = min(metadata.map(\.key.count).max() ?? 0, 48)
        for (key, value) in metadata {
            lines.append("  " + key.padding(toLength: max(keyWidth, key.count), withPad: " ", startingAt: 0) + "  " + Self.preview(value, limit: arrayPreview))
        }
        let totalBytes = tensors.reduce(0) { $0 + $1.bytes }
        lines += ["", "tensors (\(tensors.count), \(Self.byteString(totalBytes))):"]
        let rows = tensors.map { [$0.name, $0.type, "[" + $0.shape.map(String.init).joined(separator: ", ") + "]", String($0.bytes)] }
        let widths = (0..<4).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            lines.append("  " + row[0].padding(toLength: widths[0], withPad: " ", startingAt: 0) + "  "
                + row[1].padding(toLength: widths[1], withPad: " ", startingAt: 0) + "  "
                + row[2].padding(toLength: widths[2], withPad: " ", startingAt: 0) + "  "
                + String(repeating: " ", count: widths[3] - row[3].count) + row[3])
        }
        return lines.joined(separator: "\n")
    }

    private static func preview(_ value: JSONValue, limit: Int) -> String {
        guard case .array(let elements) = value, elements.count > limit else { return value.serialized() }
        let shown = elements.prefix(limit).map { $0.serialized() }.joined(separator: ",")
        return "[\(shown), … (\(elements.count) elements)]"
    }

    static func byteString(_ bytes: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.2f %@", value, units[unit])
    }
}

extension JSONValue {
    /// The plain JSON form of a GGUF metadata value.
    public init(_ value: GGUFValue) {
        switch value {
        case .uint64(let v): self = Int(exactly: v).map(JSONValue.int) ?? .double(Double(v))
        case .float32(let v): self = .double(Double(v))
        case .float64(let v): self = .double(v)
        case .bool(let v): self = .bool(v)
        case .string(let v): self = .string(v)
        case .array(let array):
            self = .array((0..<array.count).map { JSONValue(array[$0]) })
        default: self = .int(value.intValue!)
        }
    }
}
