/// A request the engine cannot serve, or a backend that cannot run.
public struct InferenceError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// More tokens than a sequence's context holds.
        public static let contextOverflow = Code("contextOverflow")
        /// A token id outside the vocabulary, an empty input, a bad option value, an inconsistent batch.
        public static let invalidInput = Code("invalidInput")
        /// The backend asked for is not available here.
        public static let backendUnavailable = Code("backendUnavailable")
        /// The forward pass produced NaN or infinite values (weights that hold them, or overflow).
        public static let nonFiniteResult = Code("nonFiniteResult")
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
