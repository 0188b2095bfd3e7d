/// A model that cannot be loaded or run, or a request the engine cannot serve.
public struct InferenceError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// An architecture or tensor type the engine does not run.
        public static let unsupportedModel = Code("unsupportedModel")
        /// A tensor missing, or with the wrong shape or type for the architecture.
        public static let invalidModel = Code("invalidModel")
        /// More tokens than the session's context holds.
        public static let contextOverflow = Code("contextOverflow")
        /// A token id outside the vocabulary, an empty input, a bad option value.
        public static let invalidInput = Code("invalidInput")
    }

    public var code: Code
    public var message: String
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        cause.map { "\(message) (\($0))" } ?? message
    }
}
