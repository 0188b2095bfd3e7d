import BitNetFormats
import Foundation

/// What ends a generation.
public enum StopReason: String, Sendable {
    case endOfSequence, stopString, maximumTokens, contextFull
}

/// Timings and counts of one generation.
public struct GenerationSummary: Sendable {
    public var promptTokens: Int
    public var generatedTokens: Int
    public var promptSeconds: Double
    public var generationSeconds: Double
    public var stopReason: StopReason
    /// Text held back until the end (what might have begun a stop string, an unfinished UTF-8 character):
    /// the last of the output, after the last token's text. Empty when a stop string ended it.
    public var trailingText = ""

    public var promptTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokens) / promptSeconds : 0 }
    public var generationTokensPerSecond: Double { generationSeconds > 0 ? Double(generatedTokens) / generationSeconds : 0 }
}

/// One step of a generation.
public enum GenerationEvent: Sendable {
    /// A new token and the text it completes (may be empty while a UTF-8 character is unfinished).
    case token(id: Int, text: String)
    /// The end, with statistics and the text held back until now (``GenerationSummary/trailingText``).
    case finished(GenerationSummary)
}

/// Settings of a generation.
public struct GenerationParameters: Sendable {
    public var maximumTokens: Int = 128
    public var sampling = SamplingParameters()
    /// Generation stops when the text contains one of these (the stop string is not emitted).
    public var stopStrings: [String] = []

    public init(maximumTokens: Int = 128, sampling: SamplingParameters = SamplingParameters(), stopStrings: [String] = []) {
        self.maximumTokens = maximumTokens
        self.sampling = sampling
        self.stopStrings = stopStrings
    }
}

/// Generates text after a prompt as an `AsyncSequence` of ``GenerationEvent``s.
///
/// The prompt is processed as one batch, then tokens are decoded one at a time into the session's KV
/// cache, so a chat can continue in the same session: every emitted token is evaluated into the cache,
/// except one that ends the generation on a stop string or a full context (and the end token itself,
/// which is not emitted). The forward passes run outside Swift's cooperative pool; cancelling the
/// iterating task ends the generation at the next token with `CancellationError`.
public struct TextGeneration: AsyncSequence {
    public typealias Element = GenerationEvent
    public let session: InferenceSession
    public let tokenizer: any Tokenizer
    /// The prompt's token ids.
    public let prompt: [Int]
    public let parameters: GenerationParameters

    /// - Parameters:
    ///   - prompt: token ids appended to whatever the session already holds.
    public init(session: InferenceSession, tokenizer: any Tokenizer, prompt: [Int], parameters: GenerationParameters) {
        self.session = session
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.parameters = parameters
    }

    /// Generates after `text`, encoded with `tokenizer`; a prompt that starts the session gets the
    /// beginning-of-sequence token when the tokenizer uses one.
    public init(session: InferenceSession, tokenizer: any Tokenizer, prompt text: String, parameters: GenerationParameters) {
        self.init(session: session, tokenizer: tokenizer,
                  prompt: tokenizer.encode(text, addingBeginningOfSequence: session.tokens.isEmpty), parameters: parameters)
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(generation: self)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let generation: TextGeneration
        private var sampler: Sampler
        private var text: StopStringFilter
        /// What the last evaluation gave: the logits to sample from, or the backend's greedy choice.
        private var next: NextToken?
        private var summary: GenerationSummary
        private var done = false
        /// Set when the last token ended the generation: the next call reports the summary.
        private var finishing: StopReason?

        init(generation: TextGeneration) {
            self.generation = generation
            sampler = Sampler(generation.parameters.sampling)
            text = StopStringFilter(tokenizer: generation.tokenizer, stopStrings: generation.parameters.stopStrings)
            summary = GenerationSummary(promptTokens: generation.prompt.count, generatedTokens: 0, promptSeconds: 0, generationSeconds: 0, stopReason: .maximumTokens)
        }

        public mutating func next() async throws -> GenerationEvent? {
            if done { return nil }
            if let reason = finishing { return finish(reason) }
            try Task.checkCancellation()
            let session = generation.session
            if next == nil {
                try generation.parameters.sampling.validate()
                let start = DispatchTime.now().uptimeNanoseconds
                next = try await evaluate(generation.prompt)
                summary.promptSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            }
            guard summary.generatedTokens < generation.parameters.maximumTokens else { return finish(.maximumTokens) }
            let start = DispatchTime.now().uptimeNanoseconds
            let token = switch next! {
            case .logits(let logits): sampler.sample(logits, history: session.tokens)
            case .top(let top): sampler.sample(top)
            case .token(let token): token
            }
            if generation.tokenizer.endOfGeneration.contains(token) { return finish(.endOfSequence) }
            summary.generatedTokens += 1
            let (piece, stopped) = text.append(token)
            if stopped {
                finishing = .stopString
                return .token(id: token, text: piece)
            }
            if session.remainingContext == 0 {
                finishing = .contextFull
                return .token(id: token, text: piece)
            }
            next = try await evaluate([token])
            summary.generationSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            return .token(id: token, text: piece)
        }

        /// Without penalties, the backend chooses the greedy token, or the top-k candidates, where the logits are.
        private func evaluate(_ tokens: [Int]) async throws -> NextToken {
            let sampling = generation.parameters.sampling
            if sampling.isGreedyWithoutPenalties {
                return .token(try await generation.session.evaluateGreedy(tokens))
            }
            if sampling.samplesFromTopLogits {
                return .top(try await generation.session.evaluateTopLogits(tokens, count: sampling.topK))
            }
            return .logits(try await generation.session.evaluate(tokens).last!)
        }

        private mutating func finish(_ reason: StopReason) -> GenerationEvent {
            done = true
            summary.stopReason = reason
            summary.trailingText = text.flush()
            return .finished(summary)
        }
    }
}

/// What an evaluation gives the sampling step.
enum NextToken {
    case logits([Float])
    /// The largest logits, found by the backend (top-k sampling without penalties).
    case top(TopLogits)
    /// Chosen by the backend (greedy decoding).
    case token(Int)
}

/// Turns generated tokens into the text to show: complete UTF-8 characters only, nothing from a stop
/// string on, and nothing yet of what may be the start of one.
///
/// Text is counted in Unicode scalars, not `Character`s: a later token may extend the last character
/// (a combining accent, the `\n` of `\r\n`, an emoji modifier), and counting characters would lose it.
struct StopStringFilter {
    private var decoder: StreamingDecoder
    private let stops: [[Unicode.Scalar]]
    private var text: [Unicode.Scalar] = []
    /// Scalars of `text` shown so far.
    private var emitted = 0
    /// Whether a stop string appeared: nothing after it is ever shown.
    private var stopped = false

    init(tokenizer: any Tokenizer, stopStrings: [String]) {
        decoder = StreamingDecoder(tokenizer: tokenizer)
        stops = stopStrings.filter { !$0.isEmpty }.map { Array($0.unicodeScalars) }
    }

    /// Adds a token: the text it lets through, and whether a stop string has now appeared (the text
    /// before it is the last to show).
    mutating func append(_ token: Int) -> (piece: String, stopped: Bool) {
        let previous = text.count
        text += decoder.append(token).unicodeScalars
        // The earliest stop string that ends in the new text (one that ended before was found then).
        var earliest: Int?
        for stop in stops where stop.count <= text.count {
            var start = max(0, previous - stop.count + 1)
            while start + stop.count <= text.count, start < (earliest ?? .max) {
                if text[start] == stop[0], text[start..<start + stop.count].elementsEqual(stop) {
                    earliest = start
                    break
                }
                start += 1
            }
        }
        if let earliest {
            stopped = true
            return (take(upTo: earliest), true)
        }
        return (take(upTo: text.count - heldBack()), false)
    }

    /// What is still held back when the generation ends: nothing once a stop string appeared.
    mutating func flush() -> String {
        guard !stopped else { return "" }
        text += decoder.finish().unicodeScalars
        return take(upTo: text.count)
    }

    private mutating func take(upTo end: Int) -> String {
        guard end > emitted else { return "" }
        defer { emitted = end }
        return String(String.UnicodeScalarView(text[emitted..<end]))
    }

    /// Scalars at the end of the text that may be the start of a stop string, and so are not shown yet.
    private func heldBack() -> Int {
        var longest = 0
        for stop in stops where stop.count > 1 {
            for length in stride(from: min(stop.count - 1, text.count), to: longest, by: -1)
            where text[(text.count - length)...].elementsEqual(stop[..<length]) {
                longest = length
                break
            }
        }
        return longest
    }
}
