import BitNetInference

/// How `bitnet serve` listens and decodes.
public struct ServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    /// 0 lets the system choose (see ``BitNetHTTPServer/run(onListening:)``).
    public var port: Int = 8080
    /// Sequences decoded together, the queue, the context per sequence, tokens per step.
    public var scheduler = GenerationScheduler.Configuration()
    /// When set, `/v1/` requests need `Authorization: Bearer <key>`.
    public var apiKey: String?
    /// The chat format, when the model's own is missing or should be overridden.
    public var chatTemplate: ChatTemplate?
    /// The name `/v1/models` lists (default: the model file's name).
    public var modelName: String?
    /// Larger request bodies are refused with 413.
    public var maximumBodyBytes: Int = 1 << 20
    /// How long a graceful shutdown (SIGTERM, SIGINT) waits for running requests before cancelling them.
    public var shutdownDeadline: Duration = .seconds(10)

    public init() {}
}
