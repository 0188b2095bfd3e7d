#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Tensor data is read through it in place, never copied.
///
/// The bytes are only reachable inside ``withUnsafeBytes(_:)``, so no pointer outlives the mapping.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let base: UnsafeMutableRawPointer?
    /// Whether `base` is memory of our own (``init(bytes:path:)``) rather than a mapping.
    private let ownsMemory: Bool

    /// A copy of `bytes` standing in for a file called `path`: the readers parse it exactly as they parse a
    /// mapped file (fuzzing, files received over a network).
    public init(bytes: [UInt8], path: String) {
        self.path = path
        size = bytes.count
        ownsMemory = true
        if bytes.isEmpty {
            base = nil
        } else {
            let memory = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 64)
            bytes.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
            base = memory
        }
    }

    /// Maps `path`; throws ``FormatError/Code-swift.struct/cannotOpen`` if it is missing, unreadable
    /// or not a regular file.
    public init(path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw FormatError(.cannotOpen, file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw FormatError(.cannotOpen, file: path, "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw FormatError(.cannotOpen, file: path, "not a regular file")
        }
        self.path = path
        self.size = Int(status.st_size)
        ownsMemory = false
        if size == 0 {
            base = nil
        } else {
            let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
            guard let mapping, mapping != MAP_FAILED else {
                throw FormatError(.cannotOpen, file: path, "cannot memory-map: \(String(cString: strerror(errno)))")
            }
            base = mapping
        }
    }

    deinit {
        guard let base else { return }
        if ownsMemory { base.deallocate() } else { munmap(base, size) }
    }

    /// Calls `body` with the mapped bytes; the buffer must not escape the closure.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: size))
    }

    /// Tells the kernel the pages of `range` are not needed for now: they leave this process's resident
    /// set and are read again from the file if touched. Streaming readers call this after each tensor, so
    /// that converting a model does not keep the whole input resident.
    public func releasePages(in range: Range<Int>) {
        guard let base, !ownsMemory, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound + page - 1) / page * page
        let end = min(size, range.upperBound) / page * page
        guard start < end else { return }
        _ = madvise(base + start, end - start, MADV_DONTNEED)
    }

    /// Calls `body` with `range` of the mapped bytes (validated by the caller when the file was parsed).
    public func withUnsafeBytes<R>(in range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= size, "range outside the mapped file")
        return try body(UnsafeRawBufferPointer(start: base.map { UnsafeRawPointer($0) + range.lowerBound }, count: range.count))
    }
}
