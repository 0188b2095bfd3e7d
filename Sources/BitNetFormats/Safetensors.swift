import Foundation

/// A safetensors element type.
public enum SafetensorsDType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case bool = "BOOL", u8 = "U8", i8 = "I8", f8_e5m2 = "F8_E5M2", f8_e4m3 = "F8_E4M3", f8_e8m0 = "F8_E8M0"
    case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32", f64 = "F64", i64 = "I64", u64 = "U64"
    case f4 = "F4", f6_e2m3 = "F6_E2M3", f6_e3m2 = "F6_E3M2"

    public var description: String { rawValue }

    /// Bits per element.
    public var bitWidth: Int {
        switch self {
        case .f4: 4
        case .f6_e2m3, .f6_e3m2: 6
        case .bool, .u8, .i8, .f8_e5m2, .f8_e4m3, .f8_e8m0: 8
        case .i16, .u16, .f16, .bf16: 16
        case .i32, .u32, .f32: 32
        case .f64, .i64, .u64: 64
        }
    }

    /// Bytes taken by `elementCount` elements (sub-byte types are packed).
    public func byteCount(elementCount: Int) -> Int? {
        let (bits, overflow) = elementCount.multipliedReportingOverflow(by: bitWidth)
        let (rounded, overflowRounding) = bits.addingReportingOverflow(7)
        return overflow || overflowRounding ? nil : rounded / 8
    }
}

/// One tensor of a safetensors file.
public struct SafetensorsTensorInfo: Sendable, Hashable {
    public var name: String
    public var dtype: SafetensorsDType
    /// Row-major (PyTorch) shape: the last dimension is contiguous.
    public var shape: [Int]
    /// Absolute byte range in the file.
    public var dataRange: Range<Int>

    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { dataRange.count }
}

/// A memory-mapped `.safetensors` file: an 8-byte little-endian header length, a JSON header, then data.
public final class SafetensorsFile: Sendable {
    public let path: String
    /// The header's `__metadata__` strings.
    public let metadata: [(String, String)]
    /// Tensors in header order.
    public let tensors: [SafetensorsTensorInfo]
    private let mapping: MappedFile
    private let indexByName: [String: Int]
    /// The largest header accepted (the reference implementation's limit).
    public static let maximumHeaderSize = 100_000_000

    public convenience init(path: String) throws {
        try self.init(mapping: try MappedFile(path: path))
    }

    /// Parses safetensors bytes held in memory; `path` names them in errors.
    public convenience init(bytes: [UInt8], path: String = "<memory>") throws {
        try self.init(mapping: MappedFile(bytes: bytes, path: path))
    }

    private init(mapping: MappedFile) throws {
        let path = mapping.path
        self.mapping = mapping
        self.path = path
        (metadata, tensors) = try attributing(to: path) { try mapping.withUnsafeBytes { try Self.parse($0) } }
        indexByName = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
    }

    public func tensor(named name: String) -> SafetensorsTensorInfo? {
        indexByName[name].map { tensors[$0] }
    }

    /// Drops a tensor's pages from the resident set once it has been read (see ``MappedFile/releasePages(in:)``).
    public func releasePages(of tensor: SafetensorsTensorInfo) {
        mapping.releasePages(in: tensor.dataRange)
    }

    /// Calls `body` with a tensor's bytes, read in place from the memory map.
    public func withTensorData<R>(_ tensor: SafetensorsTensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try mapping.withUnsafeBytes(in: tensor.dataRange, body)
    }

    private static func parse(_ bytes: UnsafeRawBufferPointer) throws -> ([(String, String)], [SafetensorsTensorInfo]) {
        var reader = ByteReader(bytes)
        let headerSize = try reader.read(UInt64.self, "the header length")
        guard headerSize <= UInt64(maximumHeaderSize) else {
            throw FormatError(.countExceedsFile, "header length \(headerSize) exceeds the \(maximumHeaderSize)-byte limit (not a safetensors file?)")
        }
        let headerBytes = try reader.readBytes(headerSize, "the JSON header")
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw FormatError(.invalidHeader, "the header does not start with '{' (not a safetensors file?)")
        }
        let header = try JSONValue.parse(Data(headerBytes))
        guard let members = header.objectValue else { throw FormatError(.invalidHeader, "the header is not a JSON object") }
        let dataStart = reader.offset
        let dataSize = bytes.count - dataStart

        var metadata: [(String, String)] = []
        var tensors: [SafetensorsTensorInfo] = []
        for (name, value) in members {
            if name == "__metadata__" {
                guard let entries = value.objectValue else { throw FormatError(.invalidHeader, "__metadata__ is not an object") }
                for (key, entry) in entries {
                    guard let text = entry.stringValue else { throw FormatError(.invalidHeader, "__metadata__ '\(key)' is not a string") }
                    metadata.append((key, text))
                }
                continue
            }
            tensors.append(try tensorInfo(name: name, value, dataStart: dataStart, dataSize: dataSize))
        }
        // Each non-empty tensor must start at or after the end of every non-empty tensor before it (empty
        // ones take no bytes and cannot hide an overlap between their neighbours).
        var furthest: SafetensorsTensorInfo?
        for tensor in tensors.filter({ !$0.dataRange.isEmpty }).sorted(by: { $0.dataRange.lowerBound < $1.dataRange.lowerBound }) {
            if let earlier = furthest, tensor.dataRange.lowerBound < earlier.dataRange.upperBound {
                throw FormatError(.overlappingTensors, "tensor '\(earlier.name)' overlaps tensor '\(tensor.name)'")
            }
            if tensor.dataRange.upperBound > furthest?.dataRange.upperBound ?? 0 { furthest = tensor }
        }
        return (metadata, tensors)
    }

    private static func tensorInfo(name: String, _ value: JSONValue, dataStart: Int, dataSize: Int) throws -> SafetensorsTensorInfo {
        guard let dtypeName = value["dtype"]?.stringValue else {
            throw FormatError(.invalidHeader, "tensor '\(name)' has no dtype")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw FormatError(.unknownDType, "tensor '\(name)' has unknown dtype '\(dtypeName)'")
        }
        guard let dims = value["shape"]?.arrayValue else { throw FormatError(.invalidHeader, "tensor '\(name)' has no shape") }
        var shape: [Int] = []
        var elements = 1
        for dim in dims {
            guard let extent = dim.intValue, extent >= 0 else {
                throw FormatError(.invalidHeader, "tensor '\(name)' has an invalid dimension \(dim.serialized())")
            }
            let (product, overflow) = elements.multipliedReportingOverflow(by: extent)
            guard !overflow else { throw FormatError(.elementCountOverflow, "tensor '\(name)' shape overflows a 64-bit element count") }
            elements = product
            shape.append(extent)
        }
        guard let offsets = value["data_offsets"]?.arrayValue, offsets.count == 2,
              let begin = offsets[0].intValue, let end = offsets[1].intValue, begin >= 0, begin <= end
        else { throw FormatError(.invalidHeader, "tensor '\(name)' has invalid data_offsets") }
        guard let expected = dtype.byteCount(elementCount: elements), expected == end - begin else {
            throw FormatError(.invalidHeader, "tensor '\(name)': \(dtype) \(shape) needs \(dtype.byteCount(elementCount: elements).map(String.init) ?? "too many") bytes but data_offsets span \(end - begin)")
        }
        guard end <= dataSize else {
            throw FormatError(.dataOutOfBounds, "tensor '\(name)' data ends at \(end) but the data section has \(dataSize) bytes (truncated file?)")
        }
        return SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, dataRange: dataStart + begin..<dataStart + end)
    }
}
