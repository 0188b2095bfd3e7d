import BitNetFormats
import BitNetInference
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import UnixSignals

/// An OpenAI-compatible HTTP server for a BitNet model, with continuous batching.
///
/// It listens at once and loads the model in the background (`GET /health` answers 503 until it is
/// ready), then decodes every request through one ``GenerationScheduler``. SIGTERM and SIGINT shut it
/// down gracefully: it stops accepting connections, lets running requests finish within
/// ``ServerConfiguration/shutdownDeadline``, cancels what is left, and returns.
///
/// ```swift
/// let server = BitNetHTTPServer(configuration: configuration) { try BitNetModel(path: path) }
/// try await server.run { port in print("listening on \(port)") }
/// ```
public final class BitNetHTTPServer: Sendable {
    public let configuration: ServerConfiguration
    let state: EngineState
    let metrics = ServerMetrics()
    private let group = LockedValue<ServiceGroup?>(nil)
    private let logger: Logger

    /// - Parameter loadModel: loads the model; called once, off the server's threads, when ``run(onListening:)`` starts.
    public init(configuration: ServerConfiguration, logger: Logger = Logger(label: "bitnet-serve"),
                loadModel: @escaping @Sendable () throws -> BitNetModel) {
        self.configuration = configuration
        self.logger = logger
        state = EngineState(load: loadModel)
    }

    /// Serves until SIGTERM or SIGINT (or ``shutdown()``); `onListening` gets the port once the socket is
    /// bound. Throws when the port cannot be bound or the model cannot be loaded.
    public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        try await run(signals: [.sigterm, .sigint], onListening: onListening)
    }

    /// `signals`: none for servers inside tests, which stop with ``shutdown()``.
    func run(signals: [UnixSignal], onListening: @escaping @Sendable (Int) -> Void) async throws {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: RequestMetricsMiddleware(metrics: metrics))
        router.add(middleware: OpenAIErrorMiddleware())
        if let key = configuration.apiKey { router.add(middleware: APIKeyMiddleware(key: key)) }
        addRoutes(to: router)
        let application = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "swift-bitnet"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        let engine = EngineService(state: state, configuration: configuration, logger: logger)
        // Shut down in reverse order: the HTTP server drains its requests while the engine still decodes.
        var groupConfiguration = ServiceGroupConfiguration(services: [engine, application], gracefulShutdownSignals: signals, logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownDeadline
        let group = ServiceGroup(configuration: groupConfiguration)
        self.group.set(group)
        try await group.run()
    }

    /// Starts a graceful shutdown, as SIGTERM does.
    public func shutdown() async {
        await group.get()?.triggerGracefulShutdown()
    }

    private func addRoutes(to router: Router<BasicRequestContext>) {
        router.get("/health") { [state] _, _ -> Response in
            _ = try state.engine()
            return .json(.object([("status", .string("ok"))]))
        }
        router.get("/metrics") { [state, metrics, configuration] _, _ -> Response in
            let load = state.loadedEngine?.scheduler.load
            let text = metrics.exposition(queued: load?.queued ?? 0, active: load?.active ?? 0, parallel: configuration.scheduler.parallel)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/v1/models") { [state] _, _ -> Response in
            let engine = try state.engine()
            let model = JSONValue.object([("id", .string(engine.name)), ("object", .string("model")), ("created", .int(engine.created)),
                                          ("owned_by", .string("swift-bitnet"))])
            return .json(.object([("object", .string("list")), ("data", .array([model]))]))
        }
        router.post("/v1/chat/completions") { [self] request, _ in try await complete(request, kind: .chat) }
        router.post("/v1/completions") { [self] request, _ in try await complete(request, kind: .text) }
    }

    /// Both completion endpoints: read and check the request, queue it, answer it whole or as a stream.
    private func complete(_ request: Request, kind: CompletionResponder.Kind) async throws -> Response {
        let arrival = ContinuousClock.now
        var request = request
        let body = try await request.collectBody(upTo: configuration.maximumBodyBytes)
        let engine = try state.engine()
        let fields = try RequestFields(body: Data(body.readableBytesView))
        let prompt: [Int]
        switch kind {
        case .chat:
            let messages = try fields.messages()
            guard let template = engine.template else {
                throw APIError(.badRequest, "the model has no known chat template; start the server with --chat-template (\(ChatTemplate.knownNames))", code: "no_chat_template")
            }
            prompt = template.prompt(messages, tokenizer: engine.tokenizer, isStart: true)
        case .text:
            prompt = try fields.prompt(tokenizer: engine.tokenizer)
        }
        let settings = try CompletionSettings(fields, chat: kind == .chat, contextLength: engine.scheduler.contextLength)
        if Task.isShuttingDownGracefully { throw APIError(engineError: SchedulerError.stopped) }
        let events: AsyncThrowingStream<ScheduledEvent, any Error>
        do {
            events = try engine.scheduler.submit(GenerationRequest(prompt: prompt, parameters: settings.parameters, logprobs: settings.logprobs))
        } catch {
            throw APIError(engineError: error, param: kind == .chat ? "messages" : "prompt")
        }
        let responder = CompletionResponder(kind: kind, model: engine.name, tokenizer: engine.tokenizer, promptTokens: prompt.count,
                                            logprobs: settings.logprobs != nil)
        // Hang-ups are noticed by watching the request's side of the connection, which Hummingbird then
        // closes after the response: say so, so that pooling clients do not reuse it.
        let headers: HTTPFields = settings.stream
            ? [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "close"]
            : [.contentType: "application/json", .connection: "close"]
        let requestBody = request.body
        if settings.stream {
            return Response(status: .ok, headers: headers, body: ResponseBody { [self] writer in
                func send(_ value: JSONValue) async throws {
                    try await writer.write(ByteBuffer(string: "data: \(value.serialized())\n\n"))
                }
                do {
                    try await requestBody.consumeWithCancellationOnInboundClose { _ in
                        if kind == .chat { try await send(responder.chunk(text: "", first: true)) }
                        var textOffset = 0
                        let summary = try await drive(events, arrival: arrival) { token in
                            guard !token.text.isEmpty || responder.logprobs else { return }
                            try await send(responder.chunk(text: token.text, tokens: responder.logprobs ? [token] : [], textOffset: textOffset))
                            textOffset += token.text.utf16.count
                        }
                        if !summary.trailingText.isEmpty { try await send(responder.chunk(text: summary.trailingText, textOffset: textOffset)) }
                        try await send(responder.chunk(text: "", finishReason: summary.stopReason))
                        if settings.includeUsage { try await send(responder.usageChunk(generated: summary.generatedTokens)) }
                    }
                } catch is CancellationError {
                    return  // the client has gone, or the shutdown deadline has passed: nothing more to say
                } catch {
                    // The status line has gone out: report the error as an event, as OpenAI's streams do.
                    try await send(APIError(engineError: error).json)
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            })
        }
        let (text, tokens, summary) = try await requestBody.consumeWithCancellationOnInboundClose { _ in
            var text = "", tokens: [ScheduledToken] = []
            let summary = try await drive(events, arrival: arrival) { token in
                text += token.text
                if responder.logprobs { tokens.append(token) }
            }
            return (text + summary.trailingText, tokens, summary)
        }
        var response = Response.json(responder.response(text: text, tokens: tokens, summary: summary))
        response.headers = headers
        return response
    }

    /// Reads a request's events to the end, passing each token on; records its latencies and token counts.
    /// Throws `CancellationError` when the stream ends without its summary (the client has gone).
    private func drive(_ events: AsyncThrowingStream<ScheduledEvent, any Error>, arrival: ContinuousClock.Instant,
                       onToken: (ScheduledToken) async throws -> Void) async throws -> GenerationSummary {
        var timing = TokenTiming(arrival: arrival, metrics: metrics)
        for try await event in events {
            switch event {
            case .token(let token):
                timing.tokenArrived()
                try await onToken(token)
            case .finished(let summary):
                metrics.countTokens(prompt: summary.promptTokens, generated: summary.generatedTokens)
                return summary
            }
        }
        throw CancellationError()
    }
}

/// Records time to first token and the time between tokens of one request.
struct TokenTiming {
    private var last: ContinuousClock.Instant
    private var first = true
    private let metrics: ServerMetrics

    init(arrival: ContinuousClock.Instant, metrics: ServerMetrics) {
        last = arrival
        self.metrics = metrics
    }

    mutating func tokenArrived() {
        let now = ContinuousClock.now
        let seconds = (now - last) / .seconds(1)
        if first { metrics.observeTimeToFirstToken(seconds) } else { metrics.observeTokenLatency(seconds) }
        first = false
        last = now
    }
}

/// A value behind a lock, for the few mutable things the server shares between tasks.
final class LockedValue<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }
    func get() -> Value { lock.withLock { value } }
    func set(_ newValue: Value) { lock.withLock { value = newValue } }
}
