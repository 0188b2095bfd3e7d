import BitNetEngine
import BitNetModels
import Foundation

/// One generation asked of a ``GenerationScheduler``.
public struct GenerationRequest: Sendable {
    /// The prompt's token ids: a whole context (with its beginning-of-sequence token, if any).
    public var prompt: [Int]
    public var parameters: GenerationParameters
    /// How many alternatives to report with each token's log-probability; nil reports none.
    public var logprobs: Int?

    public init(prompt: [Int], parameters: GenerationParameters, logprobs: Int? = nil) {
        self.prompt = prompt
        self.parameters = parameters
        self.logprobs = logprobs
    }

    /// The most alternatives a token reports (OpenAI's limit).
    public static let maximumLogprobs = 20
}

/// A token and its log-probability under the model (before penalties and temperature).
public struct TokenLogprob: Sendable, Hashable {
    public var id: Int
    public var logprob: Float
}

/// A token generated for a ``GenerationRequest``.
public struct ScheduledToken: Sendable {
    public var id: Int
    /// The text it lets through (see ``TextGeneration``: may be empty).
    public var text: String
    /// Its log-probability, when the request asked for them.
    public var logprob: Float?
    /// The most likely tokens at its position, most likely first.
    public var topLogprobs: [TokenLogprob]
}

/// What a scheduled generation streams.
public enum ScheduledEvent: Sendable {
    case token(ScheduledToken)
    /// The end: statistics, and the text held back until now (``GenerationSummary/trailingText``).
    case finished(GenerationSummary)
}

/// Decodes many generations together, as a server does: **continuous batching**.
///
/// Each step is one forward pass over every active sequence — one token of each generation in progress,
/// plus chunks of the prompts being read, up to ``Configuration/batchSize`` tokens — so generations
/// join and leave between steps and a long prompt does not stall the others. Each sequence has a slot
/// of one KV cache; requests beyond ``Configuration/parallel`` wait in a bounded queue.
///
/// Every token computes what it computes alone (the backends are batch-invariant, see `BatchTests`),
/// and each request has its own sampler, so a request gets the text it gets when run by itself with
/// ``TextGeneration``.
///
/// ```swift
/// let scheduler = try GenerationScheduler(model: model, tokenizer: tokenizer)
/// Task { await scheduler.run() }
/// for try await event in try scheduler.submit(GenerationRequest(prompt: ids, parameters: parameters)) { … }
/// ```
public final class GenerationScheduler: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// Sequences decoded at once (cache slots).
        public var parallel: Int
        /// Requests that may wait for a slot; more are refused.
        public var queueLimit: Int
        /// Positions per sequence (default: the model's context, at most 4096).
        public var contextLength: Int?
        public var cacheType: KeyValueCacheType
        /// Most tokens per forward step, decoded and prompt tokens together.
        public var batchSize: Int

        public init(parallel: Int = 4, queueLimit: Int = 64, contextLength: Int? = nil,
                    cacheType: KeyValueCacheType = .f32, batchSize: Int = 128) {
            self.parallel = parallel
            self.queueLimit = queueLimit
            self.contextLength = contextLength
            self.cacheType = cacheType
            self.batchSize = batchSize
        }
    }

    /// Requests waiting and sequences being decoded, at one moment.
    public struct Load: Sendable {
        public var queued: Int
        public var active: Int
    }

    public let model: BitNetModel
    public let tokenizer: any Tokenizer
    public let configuration: Configuration
    /// Positions each sequence may take, prompt included.
    public let contextLength: Int

    private let cache: KeyValueCache
    private let lock = NSLock()
    // Guarded by `lock`:
    private var waiting: [Sequence] = []
    private var slots: [Sequence?]
    private var stopped = false
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    public init(model: BitNetModel, tokenizer: any Tokenizer, configuration: Configuration = Configuration()) throws {
        guard configuration.parallel >= 1 else { throw InferenceError(.invalidInput, "parallel sequences must be at least 1, not \(configuration.parallel)") }
        guard configuration.queueLimit >= 0 else { throw InferenceError(.invalidInput, "the queue limit must be ≥ 0, not \(configuration.queueLimit)") }
        guard configuration.batchSize >= configuration.parallel else {
            throw InferenceError(.invalidInput, "the batch size (\(configuration.batchSize)) must be at least the parallel sequences (\(configuration.parallel))")
        }
        self.model = model
        self.tokenizer = tokenizer
        self.configuration = configuration
        cache = try model.makeCache(slots: configuration.parallel, contextLength: configuration.contextLength, type: configuration.cacheType)
        contextLength = cache.capacity
        slots = Array(repeating: nil, count: configuration.parallel)
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public var load: Load {
        lock.withLock { Load(queued: waiting.count, active: slots.lazy.compactMap { $0 }.count) }
    }

    /// Queues `request`; its events stream as it is decoded. Ending the iteration early (or cancelling
    /// the task that iterates) cancels the generation and frees its slot before the next step.
    ///
    /// Throws ``InferenceError`` at once: `contextOverflow` when the prompt leaves no room to generate,
    /// `invalidInput` for bad parameters or token ids, ``SchedulerError/queueFull`` when the queue is full,
    /// ``SchedulerError/stopped`` after ``run()`` has returned.
    public func submit(_ request: GenerationRequest) throws -> AsyncThrowingStream<ScheduledEvent, any Error> {
        try request.parameters.sampling.validate()
        guard !request.prompt.isEmpty else { throw InferenceError(.invalidInput, "the prompt is empty") }
        guard request.prompt.count < contextLength else {
            throw InferenceError(.contextOverflow, "the prompt has \(request.prompt.count) tokens; the context holds \(contextLength), including the reply")
        }
        let vocabulary = model.configuration.vocabularySize
        if let bad = request.prompt.first(where: { $0 < 0 || $0 >= vocabulary }) {
            throw InferenceError(.invalidInput, "token id \(bad) is outside the vocabulary of \(vocabulary)")
        }
        guard request.parameters.maximumTokens >= 0 else { throw InferenceError(.invalidInput, "the token limit must be ≥ 0") }
        if let logprobs = request.logprobs, !(0...GenerationRequest.maximumLogprobs).contains(logprobs) {
            throw InferenceError(.invalidInput, "top log-probabilities must be 0 to \(GenerationRequest.maximumLogprobs), not \(logprobs)")
        }
        let (events, continuation) = AsyncThrowingStream.makeStream(of: ScheduledEvent.self)
        let sequence = Sequence(request: request, tokenizer: tokenizer, events: continuation)
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { self?.cancel(sequence) }
        }
        try lock.withLock {
            if stopped { throw SchedulerError.stopped }
            let free = slots.lazy.filter { $0 == nil }.count
            guard waiting.count < configuration.queueLimit + free else {
                throw SchedulerError.queueFull
            }
            waiting.append(sequence)
        }
        wake.yield()
        return events
    }

    private func cancel(_ sequence: Sequence) {
        lock.withLock { sequence.isCancelled = true }
        wake.yield()
    }

    /// Decodes until the calling task is cancelled; then every generation not finished ends with
    /// ``SchedulerError/stopped`` and later submissions are refused.
    public func run() async {
        var wakeup = wakeups.makeAsyncIterator()
        while !Task.isCancelled {
            let step = planStep()
            guard !step.batch.isEmpty else {
                if await wakeup.next() == nil { break }
                continue
            }
            do {
                // Requests without penalties or log-probabilities need no logits: greedy ones the backend's choice,
                // top-k ones the largest logits, found where the logits are (the most any of them asks for).
                let sampling = step.outputs.map(\.request.parameters.sampling)
                let plain = step.outputs.allSatisfy { $0.request.logprobs == nil }
                let rows: [NextToken]
                if plain, sampling.allSatisfy(\.isGreedyWithoutPenalties) {
                    rows = try await model.forwardGreedy(step.batch, cache: cache).map(NextToken.token)
                } else if plain, sampling.allSatisfy({ $0.isGreedyWithoutPenalties || $0.samplesFromTopLogits }) {
                    let count = sampling.map { $0.samplesFromTopLogits ? $0.topK : 1 }.max()!
                    rows = try await model.forwardTopLogits(step.batch, cache: cache, count: count).map(NextToken.top)
                } else {
                    rows = try await model.forward(step.batch, cache: cache).map(NextToken.logits)
                }
                for (sequence, count) in step.promptChunks {
                    sequence.context += sequence.request.prompt[sequence.context.count..<sequence.context.count + count]
                }
                for (sequence, row) in zip(step.outputs, rows) { advance(sequence, row) }
            } catch {
                // The pass was refused whole (nothing was stored): its sequences end with the error.
                for sequence in step.participants { end(sequence, throwing: error) }
            }
        }
        let unfinished = lock.withLock {
            stopped = true
            defer { waiting.removeAll() }
            return waiting + slots.compactMap { $0 }
        }
        for sequence in unfinished { end(sequence, throwing: SchedulerError.stopped) }
    }

    /// A forward pass planned: its batch, the sequences with a token in it, the sequence of each row of
    /// logits it returns, and how many prompt tokens of each sequence reading its prompt.
    private struct Step {
        var batch = ForwardBatch()
        var participants: [Sequence] = []
        var outputs: [Sequence] = []
        var promptChunks: [(Sequence, Int)] = []
    }

    /// Frees the slots of cancelled sequences, admits waiting ones, and plans the next forward pass:
    /// one token of every sequence that is generating, then prompt chunks up to the batch size.
    private func planStep() -> Step {
        lock.withLock {
            for (slot, sequence) in slots.enumerated() where sequence?.isCancelled == true { release(slot: slot) }
            waiting.removeAll { $0.isCancelled }
            for slot in slots.indices where slots[slot] == nil && !waiting.isEmpty {
                let sequence = waiting.removeFirst()
                sequence.slot = slot
                sequence.admitted = DispatchTime.now().uptimeNanoseconds
                slots[slot] = sequence
            }
            var step = Step()
            let active = slots.compactMap { $0 }
            for sequence in active {
                guard let token = sequence.next else { continue }
                step.batch.append(token, position: sequence.context.count, slot: sequence.slot, wantsLogits: true)
                step.participants.append(sequence)
                step.outputs.append(sequence)
            }
            // Prompts in the order they were admitted, so the oldest finishes reading first.
            for sequence in active.filter({ $0.next == nil }).sorted(by: { $0.admitted < $1.admitted }) {
                let room = configuration.batchSize - step.batch.count
                guard room > 0 else { break }
                let unread = sequence.request.prompt[sequence.context.count...]
                let chunk = unread.prefix(room)
                for (offset, token) in chunk.enumerated() {
                    let wantsLogits = chunk.count == unread.count && offset == chunk.count - 1
                    step.batch.append(token, position: sequence.context.count + offset, slot: sequence.slot, wantsLogits: wantsLogits)
                }
                step.participants.append(sequence)
                step.promptChunks.append((sequence, chunk.count))
                if chunk.count == unread.count { step.outputs.append(sequence) }
            }
            return step
        }
    }

    /// Records what the step stored for `sequence`, samples its next token (or takes the backend's) and streams it.
    private func advance(_ sequence: Sequence, _ row: NextToken) {
        let now = DispatchTime.now().uptimeNanoseconds
        if let token = sequence.next {
            sequence.context.append(token)
        } else {
            sequence.summary.promptSeconds = Double(now - sequence.admitted) / 1e9
            sequence.decodeStart = now
        }
        sequence.next = nil
        let parameters = sequence.request.parameters
        guard sequence.summary.generatedTokens < parameters.maximumTokens else { return finish(sequence, .maximumTokens) }
        let token = switch row {
        case .logits(let logits): sequence.sampler.sample(logits, history: sequence.context)
        case .top(let top): sequence.sampler.sample(top)
        case .token(let token): token
        }
        if tokenizer.endOfGeneration.contains(token) { return finish(sequence, .endOfSequence) }
        sequence.summary.generatedTokens += 1
        let (piece, stopped) = sequence.text.append(token)
        var emitted = ScheduledToken(id: token, text: piece, logprob: nil, topLogprobs: [])
        if let alternatives = sequence.request.logprobs, case .logits(let logits) = row {
            (emitted.logprob, emitted.topLogprobs) = Self.logprobs(of: token, in: logits, alternatives: alternatives)
        }
        sequence.events.yield(.token(emitted))
        if stopped { return finish(sequence, .stopString) }
        if sequence.summary.generatedTokens == parameters.maximumTokens { return finish(sequence, .maximumTokens) }
        if sequence.context.count == contextLength { return finish(sequence, .contextFull) }
        sequence.next = token
    }

    private func finish(_ sequence: Sequence, _ reason: StopReason) {
        sequence.summary.stopReason = reason
        sequence.summary.generationSeconds = Double(DispatchTime.now().uptimeNanoseconds - sequence.decodeStart) / 1e9
        sequence.summary.trailingText = sequence.text.flush()
        sequence.events.yield(.finished(sequence.summary))
        end(sequence, throwing: nil)
    }

    /// Closes the stream of `sequence` and frees its slot.
    private func end(_ sequence: Sequence, throwing error: (any Error)?) {
        // The slot first: a client that sends its next request as soon as this one ends finds it free.
        lock.withLock {
            if sequence.slot >= 0, slots[sequence.slot] === sequence { release(slot: sequence.slot) }
        }
        sequence.events.finish(throwing: error)
    }

    /// Empties `slot` for the next request. Called under the lock, between steps.
    private func release(slot: Int) {
        slots[slot] = nil
        try? cache.truncate(slot: slot, to: 0)  // the slot exists and no pass is running
    }

    /// The log-probability of `token` and the `alternatives` most likely tokens, from raw logits.
    static func logprobs(of token: Int, in logits: [Float], alternatives: Int) -> (Float, [TokenLogprob]) {
        let maximum = logits.max() ?? 0
        var total: Double = 0
        for logit in logits { total += Double(expf(logit - maximum)) }
        let normalizer = maximum + Float(log(total))
        let top = alternatives > 0 ? LogitRows.largest(alternatives, of: logits).map { TokenLogprob(id: $0, logprob: logits[$0] - normalizer) } : []
        return (logits[token] - normalizer, top)
    }

    /// A request's state from queue to end. Read and written by the decoding loop; `isCancelled`, `slot`
    /// and `admitted` under the scheduler's lock.
    private final class Sequence: @unchecked Sendable {
        let request: GenerationRequest
        let events: AsyncThrowingStream<ScheduledEvent, any Error>.Continuation
        var sampler: Sampler
        var text: StopStringFilter
        var summary: GenerationSummary
        var isCancelled = false
        var slot = -1
        var admitted: UInt64 = 0
        var decodeStart: UInt64 = 0
        /// Tokens stored in the slot.
        var context: [Int] = []
        /// The sampled token the next step evaluates; nil while the prompt is read.
        var next: Int?

        init(request: GenerationRequest, tokenizer: any Tokenizer, events: AsyncThrowingStream<ScheduledEvent, any Error>.Continuation) {
            self.request = request
            self.events = events
            sampler = Sampler(request.parameters.sampling)
            text = StopStringFilter(tokenizer: tokenizer, stopStrings: request.parameters.stopStrings)
            summary = GenerationSummary(promptTokens: request.prompt.count, generatedTokens: 0, promptSeconds: 0, generationSeconds: 0, stopReason: .maximumTokens)
        }
    }
}

/// Why a ``GenerationScheduler`` refused a request.
public enum SchedulerError: Error, Sendable, CustomStringConvertible {
    /// Every slot is busy and the queue is full: try again later.
    case queueFull
    /// The scheduler has stopped (the server is shutting down).
    case stopped

    public var description: String {
        switch self {
        case .queueFull: "every sequence slot is busy and the queue is full; try again later"
        case .stopped: "the scheduler has stopped"
        }
    }
}
