import BitNetInference
import Dispatch
import Foundation
import Logging
import ServiceLifecycle

/// The loaded model and what requests need of it.
struct Engine: Sendable {
    let scheduler: GenerationScheduler
    let tokenizer: any Tokenizer
    /// nil when the model has no known chat template and none was given.
    let template: ChatTemplate?
    /// The name `/v1/models` lists.
    let name: String
    let created: Int
}

/// Where the engine is: loading, ready, or failed to load.
final class EngineState: Sendable {
    enum Phase {
        case loading
        case ready(Engine)
        case failed(String)
    }

    let load: @Sendable () throws -> BitNetModel
    private let phase = LockedValue(Phase.loading)

    init(load: @escaping @Sendable () throws -> BitNetModel) { self.load = load }

    var loadedEngine: Engine? {
        if case .ready(let engine) = phase.get() { engine } else { nil }
    }

    /// The engine, or the 503 that requests get while it loads.
    func engine() throws -> Engine {
        switch phase.get() {
        case .ready(let engine): return engine
        case .loading: throw APIError.modelLoading
        case .failed(let message): throw APIError(.serviceUnavailable, "the model failed to load: \(message)", type: "unavailable_error", code: "model_failed")
        }
    }

    func set(_ newPhase: Phase) { phase.set(newPhase) }
}

/// Loads the model, then runs the scheduler until graceful shutdown reaches it (after the HTTP server
/// has drained its requests) or the service group is cancelled.
struct EngineService: Service {
    let state: EngineState
    let configuration: ServerConfiguration
    let logger: Logger

    func run() async throws {
        let engine: Engine
        do {
            let started = ContinuousClock.now
            let load = state.load
            let model = try await withCheckedThrowingContinuation { continuation in
                DispatchQueue.global(qos: .userInitiated).async { continuation.resume(with: Result { try load() }) }
            }
            let tokenizer = try model.loadTokenizer()
            let template = try? model.chatTemplate(override: configuration.chatTemplate)
            let scheduler = try GenerationScheduler(model: model, tokenizer: tokenizer, configuration: configuration.scheduler)
            let name = configuration.modelName ?? URL(fileURLWithPath: model.path).lastPathComponent
            engine = Engine(scheduler: scheduler, tokenizer: tokenizer, template: template, name: name, created: Int(Date().timeIntervalSince1970))
            logger.info("model loaded", metadata: [
                "model": "\(model.path)", "backend": "\(model.backend.name)", "seconds": "\(String(format: "%.2f", (ContinuousClock.now - started) / .seconds(1)))",
                "parallel": "\(configuration.scheduler.parallel)", "context": "\(scheduler.contextLength)",
                "chat_template": "\(template?.rawValue ?? "none")",
            ])
        } catch {
            state.set(.failed("\(error)"))
            throw error
        }
        state.set(.ready(engine))
        let scheduler = engine.scheduler
        await cancelWhenGracefulShutdown { await scheduler.run() }
    }
}
