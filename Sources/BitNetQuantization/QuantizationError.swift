/// A failure of a quantization or packing routine: bad input values or a shape the format cannot hold.
///
/// Like swift-nio's errors, it carries a stable ``code`` to match on and a human-readable ``message``.
public struct QuantizationError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, stable across releases.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A row length is not a multiple of the format's block length.
        public static let rowLengthNotMultiple = Code("rowLengthNotMultiple")
        /// Buffer sizes do not agree with the declared shape.
        public static let sizeMismatch = Code("sizeMismatch")
        /// A NaN or infinity in a tensor that is being quantized.
        public static let nonFiniteValue = Code("nonFiniteValue")
        /// A packed 2-bit code outside {0, 1, 2}, or a ternary value outside {-1, 0, 1}.
        public static let invalidTernaryCode = Code("invalidTernaryCode")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

extension QuantizationError {
    @usableFromInline static func sizeMismatch(_ what: String, expected: Int, actual: Int) -> QuantizationError {
        QuantizationError(.sizeMismatch, "\(what): expected \(expected), got \(actual)")
    }

    static func rowLength(_ rowLength: Int, format: String, multipleOf block: Int) -> QuantizationError {
        QuantizationError(
            .rowLengthNotMultiple,
            "\(format) needs rows whose length is a multiple of \(block); this row has \(rowLength) values")
    }
}
