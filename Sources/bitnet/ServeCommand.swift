import ArgumentParser
import BitNetInference
import BitNetServer
import Foundation
import Logging

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over HTTP with OpenAI's API (chat completions, completions, streaming), decoding requests together.",
        discussion: """
            Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health (503 until \
            the model is loaded), GET /metrics (Prometheus). SIGTERM or SIGINT shut down gracefully: running \
            requests get --shutdown-timeout seconds to finish.
            """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port; the one chosen is printed).") var port = 8080
    @Option(help: "Sequences decoded together (KV cache slots of --ctx positions each).") var parallel = 4
    @Option(help: "Requests that may wait for a slot; more get 503 with Retry-After.") var queue = 64
    @Option(name: .customLong("batch-size"), help: "Most tokens per forward step: one per generating sequence, the rest prompt chunks.")
    var batchSize = 128
    @Option(name: .customLong("api-key"), help: "Require 'Authorization: Bearer KEY' on /v1/ (default: $BITNET_API_KEY, if set).")
    var apiKey: String?
    @Option(name: .customLong("chat-template"), help: "Override the model's chat template: \(ChatTemplate.knownNames).")
    var chatTemplate: String?
    @Option(help: "The model name /v1/models lists (default: the file's name).") var alias: String?
    @Option(name: .customLong("max-body"), help: "Largest request body in bytes; larger ones get 413.") var maximumBody = 1 << 20
    @Option(name: .customLong("shutdown-timeout"), help: "Seconds running requests get to finish after SIGTERM/SIGINT.")
    var shutdownTimeout = 10.0

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0 to 65535") }
        guard parallel >= 1 else { throw ValidationError("--parallel must be at least 1") }
        guard queue >= 0 else { throw ValidationError("--queue must be ≥ 0") }
        guard batchSize >= parallel else { throw ValidationError("--batch-size must be at least --parallel") }
        guard maximumBody >= 1024 else { throw ValidationError("--max-body must be at least 1024") }
        guard shutdownTimeout >= 0, shutdownTimeout <= 86400 else { throw ValidationError("--shutdown-timeout must be 0 to 86400 seconds") }
        if let chatTemplate, ChatTemplate(rawValue: chatTemplate) == nil {
            throw ValidationError("unknown --chat-template '\(chatTemplate)' (known: \(ChatTemplate.knownNames))")
        }
    }

    func run() async throws {
        try await reportingErrors {
            LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
            var configuration = ServerConfiguration()
            configuration.host = host
            configuration.port = port
            configuration.scheduler = GenerationScheduler.Configuration(
                parallel: parallel, queueLimit: queue, contextLength: modelOptions.contextLength,
                cacheType: modelOptions.keyValueCacheType, batchSize: batchSize)
            configuration.apiKey = apiKey ?? ProcessInfo.processInfo.environment["BITNET_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
            configuration.chatTemplate = chatTemplate.flatMap(ChatTemplate.init(rawValue:))
            configuration.modelName = alias
            configuration.maximumBodyBytes = maximumBody
            configuration.shutdownDeadline = .milliseconds(Int(shutdownTimeout * 1000))
            let options = modelOptions
            let server = BitNetHTTPServer(configuration: configuration) { try options.load() }
            let host = self.host
            try await server.run { port in
                printError("bitnet serve: listening on http://\(host):\(port)\n")
            }
            printError("bitnet serve: stopped\n")
        }
    }
}
