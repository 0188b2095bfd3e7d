/// A bounds-checked little-endian cursor over untrusted bytes. Every read checks the remaining length
/// first and throws ``FormatError/Code-swift.struct/truncated`` rather than reading past the end.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset: Int

    init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else {
            throw FormatError(.truncated, "file ends inside \(what()) at byte \(offset)")
        }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: value)
    }

    mutating func readFloat(_ what: @autoclosure () -> String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, what()))
    }

    mutating func readDouble(_ what: @autoclosure () -> String) throws -> Double {
        Double(bitPattern: try read(UInt64.self, what()))
    }

    /// Reads a length-checked byte run (the length was already read from the file).
    mutating func readBytes(_ count: UInt64, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        guard count <= UInt64(remaining) else {
            throw FormatError(.countExceedsFile, "\(what()) claims \(count) bytes but only \(remaining) remain after byte \(offset)")
        }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + Int(count)])
        offset += Int(count)
        return slice
    }

    /// Checks that `count` items of at least `minimumSize` bytes each could fit in the rest of the file.
    func checkCount(_ count: UInt64, minimumSize: Int, _ what: @autoclosure () -> String) throws -> Int {
        guard count <= UInt64(remaining / max(minimumSize, 1)) else {
            throw FormatError(.countExceedsFile, "\(what()) count \(count) is larger than the \(remaining) remaining bytes could hold")
        }
        return Int(count)
    }
}
