/// A model file that cannot be read or written: wrong magic, truncation, absurd sizes, unknown types…
///
/// Every error names the file (``file``) and says what is wrong in ``message``; ``code`` is stable and
/// meant for matching. Reading never traps or allocates by an untrusted count: it throws one of these.
public struct FormatError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, stable across releases.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let cannotOpen = Code("cannotOpen")
        public static let badMagic = Code("badMagic")
        public static let unsupportedVersion = Code("unsupportedVersion")
        /// The file ends before a header field, a value or a tensor's data.
        public static let truncated = Code("truncated")
        /// A count or length larger than the rest of the file could possibly hold.
        public static let countExceedsFile = Code("countExceedsFile")
        public static let invalidUTF8 = Code("invalidUTF8")
        public static let invalidValueType = Code("invalidValueType")
        public static let nestingTooDeep = Code("nestingTooDeep")
        public static let duplicateKey = Code("duplicateKey")
        public static let duplicateTensor = Code("duplicateTensor")
        public static let tooManyDimensions = Code("tooManyDimensions")
        public static let elementCountOverflow = Code("elementCountOverflow")
        public static let unknownTensorType = Code("unknownTensorType")
        /// Type id 39 whose writer (ggml's MXFP4 or bitnet.cpp's TL2) cannot be told.
        public static let ambiguousTensorType = Code("ambiguousTensorType")
        public static let invalidAlignment = Code("invalidAlignment")
        public static let misalignedOffset = Code("misalignedOffset")
        public static let dataOutOfBounds = Code("dataOutOfBounds")
        public static let overlappingTensors = Code("overlappingTensors")
        /// A row length the tensor type cannot hold (not a multiple of its block).
        public static let invalidShape = Code("invalidShape")
        public static let invalidHeader = Code("invalidHeader")
        public static let unknownDType = Code("unknownDType")
        public static let missingFile = Code("missingFile")
        public static let missingTensor = Code("missingTensor")
        public static let invalidConfiguration = Code("invalidConfiguration")
        public static let unsupportedFormat = Code("unsupportedFormat")
        public static let writeFailed = Code("writeFailed")
        public static let invalidArgument = Code("invalidArgument")
    }

    public var code: Code
    /// The file (or directory) concerned, when known.
    public var file: String?
    public var message: String
    /// The lower-level error that caused this one, if any.
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, file: String? = nil, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.file = file
        self.message = message
        self.cause = cause
    }

    /// `file: message`, the one line the command-line tool prints.
    public var description: String {
        var text = file.map { "\($0): \(message)" } ?? message
        if let cause { text += " (\(cause))" }
        return text
    }

    /// The same error attributed to `file` unless it already names one.
    func inFile(_ path: String) -> FormatError {
        var copy = self
        if copy.file == nil { copy.file = path }
        return copy
    }
}

/// Runs `body`, attributing any ``FormatError`` it throws to `path`.
func attributing<R>(to path: String, _ body: () throws -> R) throws -> R {
    do {
        return try body()
    } catch let error as FormatError {
        throw error.inFile(path)
    }
}
