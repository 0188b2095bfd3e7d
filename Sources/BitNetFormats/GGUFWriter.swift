#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a GGUF v3 file as a stream: the header first, then each tensor's data as it is produced,
/// so a converter never holds more than the tensor at hand.
///
/// The file is written to a temporary sibling (`OUTPUT.partial-XXXXXX`) and only renamed into place by
/// ``finish()`` after an `fsync`; a writer abandoned before that (an error, a thrown conversion)
/// removes the temporary file, so a failed run leaves nothing behind.
///
/// ```swift
/// let writer = try GGUFWriter(path: "out.gguf", metadata: metadata, tensors: infos)
/// for info in infos { try writer.write(bytes(of: info)) }   // in declaration order
/// try writer.finish()
/// ```
public final class GGUFWriter {
    public let path: String
    /// Tensor infos with their final offsets, in the order their data must be written.
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    public let dialect: GGUFDialect

    private let temporaryPath: String
    private var descriptor: Int32
    private var buffer: [UInt8] = []
    private var position = 0
    private var currentTensor = 0
    private var writtenOfCurrent = 0
    private var finished = false
    private static let bufferCapacity = 1 << 20

    /// Validates the tensors, opens a temporary file beside `path` and writes the header.
    ///
    /// - Parameters:
    ///   - metadata: written in its order; `general.alignment`, if present, must be a power-of-two UINT32.
    ///   - tensors: name, type and shape of each tensor (offsets and byte counts are computed here).
    public init(path: String, metadata: GGUFMetadata, tensors: [(name: String, type: GGMLType, shape: [Int])]) throws {
        self.path = path
        var alignment = GGUF.defaultAlignment
        if let value = metadata[GGUF.alignmentKey] {
            guard case .uint32(let requested) = value, requested > 0, requested.nonzeroBitCount == 1 else {
                throw FormatError(.invalidAlignment, file: path, "\(GGUF.alignmentKey) must be a power of two stored as UINT32")
            }
            alignment = Int(requested)
        }
        self.alignment = alignment

        let forkTypes: Set<GGMLType> = [.i2_s, .i8_s, .tl1, .tl2]
        let usesFork = tensors.contains { forkTypes.contains($0.type) }
        if usesFork, tensors.contains(where: { $0.type == .mxfp4 }) {
            throw FormatError(.invalidArgument, file: path, "MXFP4 (ggml) and bitnet.cpp's types share type id 39 and cannot be mixed in one file")
        }
        dialect = usesFork ? .bitnetCpp : .ggml

        var names = Set<String>()
        var infos: [GGUFTensorInfo] = []
        var offset = 0
        for tensor in tensors {
            guard names.insert(tensor.name).inserted else {
                throw FormatError(.duplicateTensor, file: path, "tensor name '\(tensor.name)' appears twice")
            }
            guard tensor.shape.count <= GGUF.maximumDimensions, tensor.shape.allSatisfy({ $0 >= 0 }) else {
                throw FormatError(.tooManyDimensions, file: path, "tensor '\(tensor.name)' shape \(tensor.shape) is not 0–4 non-negative dimensions")
            }
            let rowLength = tensor.shape.first ?? 1
            guard rowLength % tensor.type.rowMultiple == 0 else {
                throw FormatError(.invalidShape, file: path, "tensor '\(tensor.name)': \(tensor.type) needs rows that are a multiple of \(tensor.type.rowMultiple) values, not \(rowLength)")
            }
            guard let bytes = tensor.type.byteCount(elementCount: tensor.shape.reduce(1, *)) else {
                throw FormatError(.unsupportedFormat, file: path, "tensor '\(tensor.name)': cannot write type \(tensor.type), its layout is not known")
            }
            infos.append(GGUFTensorInfo(name: tensor.name, type: tensor.type, shape: tensor.shape, offset: offset, byteCount: bytes))
            offset += (bytes + alignment - 1) / alignment * alignment
        }
        self.tensors = infos

        var template = Array("\(path).partial-XXXXXX".utf8CString)
        descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else {
            throw FormatError(.writeFailed, file: path, "cannot create a temporary file beside it: \(String(cString: strerror(errno)))")
        }
        temporaryPath = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        fchmod(descriptor, 0o644)
        buffer.reserveCapacity(Self.bufferCapacity)

        do {
            try writeHeader(metadata: metadata)
        } catch {
            abandon()
            throw error
        }
    }

    deinit {
        if !finished { abandon() }
    }

    /// Appends `bytes` to the data of the current tensor (the first not yet complete, in declaration
    /// order). A tensor may be written in several pieces; padding is added when it is complete.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes
        while !rest.isEmpty {
            guard currentTensor < tensors.count else {
                throw FormatError(.writeFailed, file: path, "more tensor data written than the \(tensors.count) declared tensors hold")
            }
            let tensor = tensors[currentTensor]
            let take = min(rest.count, tensor.byteCount - writtenOfCurrent)
            try append(UnsafeRawBufferPointer(rebasing: rest[..<take]))
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
            writtenOfCurrent += take
            try completeTensorsIfFull()
        }
    }

    /// Array convenience for ``write(_:)-(UnsafeRawBufferPointer)``.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Flushes, syncs and renames the file into place; throws if a tensor's data is missing.
    public func finish() throws {
        try completeTensorsIfFull()
        guard currentTensor == tensors.count else {
            let tensor = tensors[currentTensor]
            throw FormatError(.writeFailed, file: path, "tensor '\(tensor.name)' got \(writtenOfCurrent) of its \(tensor.byteCount) bytes")
        }
        try flush()
        guard fsync(descriptor) == 0 else { throw failure("cannot sync") }
        close(descriptor)
        descriptor = -1
        guard rename(temporaryPath, path) == 0 else {
            let error = failure("cannot rename the temporary file into place")
            unlink(temporaryPath)
            throw error
        }
        finished = true
    }

    /// Gives up: closes and removes the temporary file. The output path is left untouched.
    public func abandon() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        unlink(temporaryPath)
        finished = true
    }

    // MARK: - Encoding

    private func completeTensorsIfFull() throws {
        while currentTensor < tensors.count, writtenOfCurrent == tensors[currentTensor].byteCount {
            try pad()
            currentTensor += 1
            writtenOfCurrent = 0
        }
    }

    private func writeHeader(metadata: GGUFMetadata) throws {
        var header = HeaderEncoder()
        header.integer(GGUF.magic)
        header.integer(UInt32(3))
        header.integer(UInt64(tensors.count))
        header.integer(UInt64(metadata.count))
        for entry in metadata {
            header.string(entry.key)
            header.value(entry.value)
        }
        for tensor in tensors {
            header.string(tensor.name)
            header.integer(UInt32(tensor.shape.count))
            for extent in tensor.shape { header.integer(UInt64(extent)) }
            header.integer(tensor.type.id(in: dialect)!)
            header.integer(UInt64(tensor.offset))
        }
        try header.bytes.withUnsafeBytes { try append($0) }
        try pad()
    }

    private func pad() throws {
        let padding = (alignment - position % alignment) % alignment
        if padding > 0 {
            try [UInt8](repeating: 0, count: padding).withUnsafeBytes { try append($0) }
        }
    }

    private func append(_ bytes: UnsafeRawBufferPointer) throws {
        position += bytes.count
        if buffer.count + bytes.count > Self.bufferCapacity { try flush() }
        if bytes.count >= Self.bufferCapacity {
            try writeFully(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    private func flush() throws {
        try buffer.withUnsafeBytes { try writeFully($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeFully(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let written = posixWrite(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw failure("cannot write")
            }
            offset += written
        }
    }

    private func failure(_ what: String) -> FormatError {
        FormatError(.writeFailed, file: path, "\(what): \(String(cString: strerror(errno)))")
    }
}

/// `write(2)`, named apart from the writer's own `write` methods.
private func posixWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}

/// Little-endian encoding of GGUF header fields.
struct HeaderEncoder {
    var bytes: [UInt8] = []

    mutating func integer<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ value: String) {
        integer(UInt64(value.utf8.count))
        bytes.append(contentsOf: value.utf8)
    }

    mutating func value(_ value: GGUFValue) {
        integer(value.type.rawValue)
        payload(value)
    }

    private mutating func payload(_ value: GGUFValue) {
        switch value {
        case .uint8(let v): integer(v)
        case .int8(let v): integer(v)
        case .uint16(let v): integer(v)
        case .int16(let v): integer(v)
        case .uint32(let v): integer(v)
        case .int32(let v): integer(v)
        case .uint64(let v): integer(v)
        case .int64(let v): integer(v)
        case .float32(let v): integer(v.bitPattern)
        case .float64(let v): integer(v.bitPattern)
        case .bool(let v): integer(UInt8(v ? 1 : 0))
        case .string(let v): string(v)
        case .array(let array): self.array(array)
        }
    }

    private mutating func array(_ array: GGUFArray) {
        integer(array.elementType.rawValue)
        integer(UInt64(array.count))
        switch array {
        case .array(let inner): for element in inner { self.array(element) }
        default: for index in 0..<array.count { payload(array[index]) }
        }
    }
}
