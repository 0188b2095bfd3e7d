/// A model file that cannot be described or loaded: an architecture, tensor type or configuration field
/// the engine does not implement, a missing tensor, a wrong shape.
public struct ModelError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// An architecture or tensor type the engine does not run.
        public static let unsupportedModel = Code("unsupportedModel")
        /// A configuration field that changes the model in a way the engine does not implement
        /// (`rope_scaling`, `attention_bias: true`, a contradicting `hidden_act`, …).
        public static let unsupportedConfiguration = Code("unsupportedConfiguration")
        /// A tensor missing, or with the wrong shape or type for the architecture; inconsistent hyperparameters.
        public static let invalidModel = Code("invalidModel")
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
