/// One tensor described in a GGUF file's header.
public struct GGUFTensorInfo: Sendable, Hashable {
    public var name: String
    public var type: GGMLType
    /// Dimensions in GGUF order: `ne0` (the contiguous row length) first.
    public var shape: [Int]
    /// Offset of the data from the start of the data section.
    public var offset: Int
    /// Bytes of data. For the fork types whose layout is not published (I8_S, TL1, TL2) this is the
    /// extent up to the next tensor or the end of the file.
    public var byteCount: Int

    public init(name: String, type: GGMLType, shape: [Int], offset: Int = 0, byteCount: Int) {
        self.name = name
        self.type = type
        self.shape = shape
        self.offset = offset
        self.byteCount = byteCount
    }

    public var elementCount: Int { shape.reduce(1, *) }
}

/// The GGUF format's constants.
public enum GGUF {
    /// "GGUF" read as a little-endian UInt32.
    public static let magic: UInt32 = 0x4655_4747
    public static let defaultAlignment = 32
    public static let maximumDimensions = 4
    /// Deepest nesting of arrays accepted when reading.
    static let maximumArrayNesting = 8
    /// The metadata key that sets the data alignment.
    public static let alignmentKey = "general.alignment"
}

/// A memory-mapped GGUF file (versions 2 and 3): metadata, tensor infos, and in-place tensor data.
///
/// Opening validates everything a later read relies on: every count against the file size, every
/// tensor's type, shape, alignment and extent, and that no two tensors overlap. A damaged or hostile
/// file yields a ``FormatError`` naming the file, never a trap or an allocation sized by the file's claims.
public final class GGUFFile: Sendable {
    public let path: String
    public let version: UInt32
    public let metadata: GGUFMetadata
    /// Tensors in header order.
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Absolute offset of the data section.
    public let dataOffset: Int
    /// Which numbering of type ids the file follows.
    public let dialect: GGUFDialect
    private let mapping: MappedFile
    private let indexByName: [String: Int]

    public convenience init(path: String) throws {
        try self.init(mapping: try MappedFile(path: path))
    }

    /// Parses GGUF bytes held in memory; `path` names them in errors.
    public convenience init(bytes: [UInt8], path: String = "<memory>") throws {
        try self.init(mapping: MappedFile(bytes: bytes, path: path))
    }

    private init(mapping: MappedFile) throws {
        let path = mapping.path
        self.mapping = mapping
        self.path = path
        let header = try attributing(to: path) { try mapping.withUnsafeBytes { try Header.parse($0) } }
        version = header.version
        metadata = header.metadata
        tensors = header.tensors
        alignment = header.alignment
        dataOffset = header.dataOffset
        dialect = header.dialect
        indexByName = Dictionary(uniqueKeysWithValues: header.tensors.enumerated().map { ($1.name, $0) })
    }

    /// The file's size in bytes.
    public var fileSize: Int { mapping.size }

    public func tensor(named name: String) -> GGUFTensorInfo? {
        indexByName[name].map { tensors[$0] }
    }

    /// Drops a tensor's pages from the resident set once it has been read (see ``MappedFile/releasePages(in:)``).
    public func releasePages(of tensor: GGUFTensorInfo) {
        mapping.releasePages(in: dataOffset + tensor.offset..<dataOffset + tensor.offset + tensor.byteCount)
    }

    /// Calls `body` with a tensor's bytes, read in place from the memory map.
    public func withTensorData<R>(_ tensor: GGUFTensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let start = dataOffset + tensor.offset
        return try mapping.withUnsafeBytes(in: start..<start + tensor.byteCount, body)
    }

    /// Calls `body` with the bytes of the tensor called `name`; throws if there is none.
    public func withTensorData<R>(named name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let tensor = tensor(named: name) else {
            throw FormatError(.missingTensor, file: path, "no tensor named '\(name)'")
        }
        return try withTensorData(tensor, body)
    }
}

/// The parsed header of a GGUF file, validated against the file's size.
private struct Header {
    var version: UInt32 = 0
    var metadata = GGUFMetadata()
    var tensors: [GGUFTensorInfo] = []
    var alignment = GGUF.defaultAlignment
    var dataOffset = 0
    var dialect = GGUFDialect.ggml

    private struct RawTensorInfo {
        var name: String
        var shape: [Int]
        var typeID: UInt32
        var offset: UInt64
    }

    static func parse(_ bytes: UnsafeRawBufferPointer) throws -> Header {
        var header = Header()
        var reader = ByteReader(bytes)
        guard bytes.count >= 4 else {
            throw FormatError(.truncated, "\(bytes.count)-byte file is too short to be GGUF")
        }
        let magic = try reader.read(UInt32.self, "the magic")
        guard magic == GGUF.magic else {
            let shown = (0..<4).map { String(format2: bytes[$0]) }.joined(separator: " ")
            throw FormatError(.badMagic, "not a GGUF file: magic bytes are \(shown), expected 47 47 55 46 (\"GGUF\")")
        }
        header.version = try reader.read(UInt32.self, "the version")
        guard header.version == 2 || header.version == 3 else {
            let hint = header.version.byteSwapped <= 3 ? " (a big-endian file?)" : ""
            throw FormatError(.unsupportedVersion, "GGUF version \(header.version) is not supported (only 2 and 3)\(hint)")
        }
        let tensorCount = try reader.read(UInt64.self, "the tensor count")
        let metadataCount = try reader.read(UInt64.self, "the metadata count")
        let entries = try reader.checkCount(metadataCount, minimumSize: 13, "metadata")
        _ = try reader.checkCount(tensorCount, minimumSize: 24, "tensor")

        for index in 0..<entries {
            let key = try readString(&reader, "the key of metadata entry \(index)")
            let rawType = try reader.read(UInt32.self, "the type of '\(key)'")
            let value = try readValue(&reader, typeID: rawType, key: key, depth: 0)
            guard header.metadata.appendUnique(.init(key: key, value: value)) else {
                throw FormatError(.duplicateKey, "metadata key '\(key)' appears twice")
            }
        }
        if let value = header.metadata[GGUF.alignmentKey] {
            guard case .uint32(let alignment) = value, alignment > 0, alignment.nonzeroBitCount == 1 else {
                throw FormatError(.invalidAlignment, "\(GGUF.alignmentKey) must be a power of two stored as UINT32, found \(value)")
            }
            header.alignment = Int(alignment)
        }

        var raws: [RawTensorInfo] = []
        var names = Set<String>()
        for index in 0..<Int(tensorCount) {
            let name = try readString(&reader, "the name of tensor \(index)")
            guard names.insert(name).inserted else {
                throw FormatError(.duplicateTensor, "tensor name '\(name)' appears twice")
            }
            let dimensionCount = try reader.read(UInt32.self, "the dimension count of '\(name)'")
            guard dimensionCount <= GGUF.maximumDimensions else {
                throw FormatError(.tooManyDimensions, "tensor '\(name)' has \(dimensionCount) dimensions; GGUF allows at most \(GGUF.maximumDimensions)")
            }
            var shape: [Int] = []
            var elements = 1
            for axis in 0..<Int(dimensionCount) {
                let extent = try reader.read(UInt64.self, "dimension \(axis) of '\(name)'")
                guard extent <= UInt64(Int64.max) else {
                    throw FormatError(.elementCountOverflow, "tensor '\(name)' dimension \(axis) is \(extent), more than a signed 64-bit count")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(extent))
                guard !overflow else {
                    throw FormatError(.elementCountOverflow, "tensor '\(name)' shape \(shape + [Int(extent)]) overflows a 64-bit element count")
                }
                elements = product
                shape.append(Int(extent))
            }
            let typeID = try reader.read(UInt32.self, "the type of '\(name)'")
            let offset = try reader.read(UInt64.self, "the offset of '\(name)'")
            raws.append(RawTensorInfo(name: name, shape: shape, typeID: typeID, offset: offset))
        }

        header.dataOffset = (reader.offset + header.alignment - 1) / header.alignment * header.alignment
        guard header.dataOffset <= bytes.count || raws.isEmpty else {
            throw FormatError(.dataOutOfBounds, "the data section would start at byte \(header.dataOffset), past the end of the \(bytes.count)-byte file (truncated file?)")
        }
        let dataSize = max(0, bytes.count - header.dataOffset)
        header.dialect = try dialect(of: raws, metadata: header.metadata, dataSize: dataSize)
        header.tensors = try raws.map { try tensorInfo($0, dialect: header.dialect, alignment: header.alignment) }
        try checkExtents(&header.tensors, dataSize: dataSize)
        return header
    }

    private static func readString(_ reader: inout ByteReader, _ what: @autoclosure () -> String) throws -> String {
        let length = try reader.read(UInt64.self, what())
        let bytes = try reader.readBytes(length, what())
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw FormatError(.invalidUTF8, "\(what()) is not valid UTF-8")
        }
        return string
    }

    private static func readValue(_ reader: inout ByteReader, typeID: UInt32, key: String, depth: Int) throws -> GGUFValue {
        guard let type = GGUFValueType(rawValue: typeID) else {
            throw FormatError(.invalidValueType, "metadata '\(key)' has unknown value type \(typeID)")
        }
        switch type {
        case .uint8: return .uint8(try reader.read(UInt8.self, key))
        case .int8: return .int8(try reader.read(Int8.self, key))
        case .uint16: return .uint16(try reader.read(UInt16.self, key))
        case .int16: return .int16(try reader.read(Int16.self, key))
        case .uint32: return .uint32(try reader.read(UInt32.self, key))
        case .int32: return .int32(try reader.read(Int32.self, key))
        case .uint64: return .uint64(try reader.read(UInt64.self, key))
        case .int64: return .int64(try reader.read(Int64.self, key))
        case .float32: return .float32(try reader.readFloat(key))
        case .float64: return .float64(try reader.readDouble(key))
        case .bool:
            let byte = try reader.read(UInt8.self, key)
            guard byte <= 1 else { throw FormatError(.invalidValueType, "metadata '\(key)' is a BOOL with byte value \(byte)") }
            return .bool(byte == 1)
        case .string: return .string(try readString(&reader, "the string '\(key)'"))
        case .array: return .array(try readArray(&reader, key: key, depth: depth))
        }
    }

    private static func readArray(_ reader: inout ByteReader, key: String, depth: Int) throws -> GGUFArray {
        guard depth < GGUF.maximumArrayNesting else {
            throw FormatError(.nestingTooDeep, "metadata '\(key)' nests arrays more than \(GGUF.maximumArrayNesting) deep")
        }
        let rawType = try reader.read(UInt32.self, "the element type of '\(key)'")
        guard let elementType = GGUFValueType(rawValue: rawType) else {
            throw FormatError(.invalidValueType, "array '\(key)' has unknown element type \(rawType)")
        }
        let count = try reader.checkCount(try reader.read(UInt64.self, "the length of '\(key)'"),
                                          minimumSize: elementType.minimumEncodedSize, "array '\(key)'")
        func numbers<T: FixedWidthInteger>(_: T.Type) throws -> [T] {
            try (0..<count).map { _ in try reader.read(T.self, key) }
        }
        switch elementType {
        case .uint8: return .uint8(try numbers(UInt8.self))
        case .int8: return .int8(try numbers(Int8.self))
        case .uint16: return .uint16(try numbers(UInt16.self))
        case .int16: return .int16(try numbers(Int16.self))
        case .uint32: return .uint32(try numbers(UInt32.self))
        case .int32: return .int32(try numbers(Int32.self))
        case .uint64: return .uint64(try numbers(UInt64.self))
        case .int64: return .int64(try numbers(Int64.self))
        case .float32: return .float32(try numbers(UInt32.self).map(Float.init(bitPattern:)))
        case .float64: return .float64(try numbers(UInt64.self).map(Double.init(bitPattern:)))
        case .bool:
            return .bool(try numbers(UInt8.self).map { byte in
                guard byte <= 1 else { throw FormatError(.invalidValueType, "array '\(key)' holds a BOOL with byte value \(byte)") }
                return byte == 1
            })
        case .string: return .string(try (0..<count).map { try readString(&reader, "element \($0) of '\(key)'") })
        case .array: return .array(try (0..<count).map { _ in try readArray(&reader, key: key, depth: depth + 1) })
        }
    }

    /// Decides the numbering of type ids 36–39 (see ``GGUFDialect``).
    private static func dialect(of raws: [RawTensorInfo], metadata: GGUFMetadata, dataSize: Int) throws -> GGUFDialect {
        if let architecture = metadata.string("general.architecture"), GGUFDialect.bitnetCppArchitectures.contains(architecture) {
            return .bitnetCpp
        }
        if raws.contains(where: { (36...38).contains($0.typeID) }) { return .bitnetCpp }
        let ambiguous = raws.filter { $0.typeID == 39 }
        guard let first = ambiguous.first else { return .ggml }
        // Types above 39 exist only upstream (NVFP4, Q1_0…).
        if raws.contains(where: { $0.typeID > 39 }) { return .ggml }
        // MXFP4 if every type-39 tensor's extent is exactly its MXFP4 size (up to alignment padding).
        let ends = raws.map(\.offset).sorted() + [UInt64(dataSize)]
        /// The first start (or the end of the data) after `offset`, by binary search: files may hold millions of tensors.
        func next(after offset: UInt64) -> UInt64? {
            var low = 0, high = ends.count
            while low < high {
                let middle = (low + high) / 2
                if ends[middle] > offset { high = middle } else { low = middle + 1 }
            }
            return low < ends.count ? ends[low] : nil
        }
        let fitsMXFP4 = ambiguous.allSatisfy { raw in
            guard let size = GGMLType.mxfp4.byteCount(elementCount: raw.shape.reduce(1, *)),
                  let next = next(after: raw.offset) else { return false }
            let extent = next - raw.offset
            return extent >= UInt64(size) && extent < UInt64(size) + 64
        }
        if fitsMXFP4 { return .ggml }
        throw FormatError(
            .ambiguousTensorType,
            "tensor '\(first.name)' has type id 39, which is MXFP4 in ggml but TL2 in bitnet.cpp; its size does not fit MXFP4 and the metadata does not name a bitnet.cpp architecture, so the writer cannot be told")
    }

    private static func tensorInfo(_ raw: RawTensorInfo, dialect: GGUFDialect, alignment: Int) throws -> GGUFTensorInfo {
        guard let type = GGMLType(id: raw.typeID, dialect: dialect) else {
            throw FormatError(.unknownTensorType, "tensor '\(raw.name)' has unknown type id \(raw.typeID) (\(dialect) numbering)")
        }
        let rowLength = raw.shape.first ?? 1
        guard rowLength % type.rowMultiple == 0 else {
            throw FormatError(.invalidShape, "tensor '\(raw.name)' of type \(type) has rows of \(rowLength) values, not a multiple of \(type.rowMultiple)")
        }
        guard raw.offset % UInt64(alignment) == 0 else {
            throw FormatError(.misalignedOffset, "tensor '\(raw.name)' starts at data offset \(raw.offset), not a multiple of the alignment \(alignment)")
        }
        guard raw.offset <= UInt64(Int.max) else {
            throw FormatError(.dataOutOfBounds, "tensor '\(raw.name)' data offset \(raw.offset) is beyond any file")
        }
        let elements = raw.shape.reduce(1, *)
        // -1 marks "extent up to the next tensor", resolved in checkExtents.
        let bytes: Int
        if let known = type.byteCount(elementCount: elements) {
            bytes = known
        } else if type.blockLayout != nil {
            throw FormatError(.elementCountOverflow, "tensor '\(raw.name)' byte size overflows")
        } else {
            bytes = -1
        }
        return GGUFTensorInfo(name: raw.name, type: type, shape: raw.shape, offset: Int(raw.offset), byteCount: bytes)
    }

    private static func checkExtents(_ tensors: inout [GGUFTensorInfo], dataSize: Int) throws {
        let order = tensors.indices.sorted { tensors[$0].offset < tensors[$1].offset }
        for (position, index) in order.enumerated() {
            let next = position + 1 < order.count ? tensors[order[position + 1]].offset : dataSize
            if tensors[index].byteCount < 0 { tensors[index].byteCount = max(0, min(next, dataSize) - tensors[index].offset) }
            let tensor = tensors[index]
            let (end, overflow) = tensor.offset.addingReportingOverflow(tensor.byteCount)
            guard !overflow, end <= dataSize else {
                throw FormatError(.dataOutOfBounds, "tensor '\(tensor.name)' needs bytes \(tensor.offset)..<\(overflow ? Int.max : end) of the data section, which has only \(dataSize) (truncated file?)")
            }
            if position + 1 < order.count, end > next {
                let other = tensors[order[position + 1]]
                throw FormatError(.overlappingTensors, "tensor '\(tensor.name)' (data \(tensor.offset)..<\(end)) overlaps tensor '\(other.name)' starting at \(other.offset)")
            }
        }
    }
}

extension String {
    /// Two lowercase hex digits.
    init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }
}
