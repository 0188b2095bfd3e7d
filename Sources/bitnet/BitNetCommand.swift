import ArgumentParser
import BitNetFormats
import BitNetInference
import Foundation

@main
struct BitNet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bitnet",
        abstract: "Convert and run BitNet b1.58 models (ternary weights, int8 activations).",
        version: "0.2.0",
        subcommands: [Generate.self, Chat.self, Serve.self, Perplexity.self, Logits.self, Bench.self, Quantize.self, Inspect.self, Devices.self]
    )
}

/// Prints `error` as one line on stderr; the command then exits with status 1.
func fail(_ error: any Error) -> ExitCode {
    let line = "\(error)".replacingOccurrences(of: "\n", with: " ")
    FileHandle.standardError.write(Data("bitnet: error: \(line)\n".utf8))
    return ExitCode.failure
}

/// Runs a command's work, turning any error into one line on stderr and exit status 1.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        throw fail(error)
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}

/// Options shared by the commands that load a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "A .gguf file or a Hugging Face model directory (default: the bundled tiny-bitnet).")
    var model: String?

    @Option(name: .long, help: "Threads (default: the physical cores).")
    var threads: Int?

    @Option(name: .customLong("ctx"), help: "Context length in tokens (default: the model's, at most 4096).")
    var contextLength: Int?

    @Option(name: .customLong("cache-type"), help: "KV cache element type: f32 or f16.")
    var cacheType: String = "f32"

    @Option(name: .long, help: "Where the model runs: \(BackendChoice.allCases.map(\.rawValue).joined(separator: ", ")) (auto: a GPU through Vulkan if there is one, else the CPU).")
    var backend: String = BackendChoice.auto.rawValue

    @Option(name: .long, help: "The Vulkan device to run on, by its index in `bitnet devices` (default: a discrete GPU, then an integrated one).")
    var device: Int?

    func validate() throws {
        if BackendChoice(rawValue: backend) == nil {
            throw ValidationError("--backend must be \(BackendChoice.allCases.map(\.rawValue).joined(separator: " or "))")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let device, device < 0 { throw ValidationError("--device must be a device index from bitnet devices") }
        if let contextLength, contextLength < 1 { throw ValidationError("--ctx must be at least 1") }
        if KeyValueCacheType(rawValue: cacheType) == nil { throw ValidationError("--cache-type must be f32 or f16") }
    }

    var keyValueCacheType: KeyValueCacheType { KeyValueCacheType(rawValue: cacheType) ?? .f32 }

    func session(for model: BitNetModel, contextLength: Int? = nil) throws -> InferenceSession {
        try InferenceSession(model: model, contextLength: contextLength ?? self.contextLength, cacheType: keyValueCacheType)
    }

    /// The bundled default model: tiny-bitnet, trained on the Python documentation (Models/tiny-bitnet).
    static var defaultModel: String? { Bundle.module.path(forResource: "tiny-bitnet", ofType: "gguf") }

    func load() throws -> BitNetModel {
        guard let path = model ?? Self.defaultModel else {
            throw InferenceError(.invalidInput, "no model given (-m) and the bundled default model is missing")
        }
        return try BitNetModel(path: path, backend: BackendChoice(rawValue: backend) ?? .auto, threads: threads ?? BitNetModel.defaultThreads,
                               device: device, onFallback: { printError("bitnet: \($0)\n") })
    }
}

/// Sampling options of `generate` and `chat`.
struct SamplingOptions: ParsableArguments {
    @Option(name: .customLong("temp"), help: "Temperature; 0 is greedy.") var temperature: Float = 0.8
    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens (0 = all).") var topK: Int = 40
    @Option(name: .customLong("top-p"), help: "Nucleus sampling threshold.") var topP: Float = 0.95
    @Option(name: .customLong("min-p"), help: "Drop tokens below this fraction of the best one.") var minP: Float = 0.05
    @Option(name: .customLong("repeat-penalty"), help: "Penalty for recently seen tokens (1 = off).") var repeatPenalty: Float = 1.0
    @Option(name: .customLong("presence-penalty")) var presencePenalty: Float = 0
    @Option(name: .customLong("frequency-penalty")) var frequencyPenalty: Float = 0
    @Option(name: .customLong("repeat-last-n"), help: "Tokens the penalties look back over.") var penaltyWindow: Int = 64
    @Option(help: "Random seed: the same seed gives the same text.") var seed: UInt64 = 0x5EED
    @Option(name: .customLong("stop"), help: "Stop when this text appears (repeatable).") var stopStrings: [String] = []

    var parameters: SamplingParameters {
        var p = SamplingParameters()
        p.temperature = temperature
        p.topK = topK
        p.topP = topP
        p.minP = minP
        p.repetitionPenalty = repeatPenalty
        p.presencePenalty = presencePenalty
        p.frequencyPenalty = frequencyPenalty
        p.penaltyWindow = penaltyWindow
        p.seed = seed
        return p
    }

    func validate() throws {
        do { try parameters.validate() } catch let error as InferenceError { throw ValidationError(error.message) }
    }
}

struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text after a prompt, streaming it to stdout.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .shortAndLong, help: "The prompt.") var prompt: String
    @Option(name: .customShort("n"), help: "Tokens to generate.") var tokens: Int = 128
    @OptionGroup var sampling: SamplingOptions

    func validate() throws {
        if tokens < 0 { throw ValidationError("-n must be ≥ 0") }
    }

    func run() async throws {
        try await reportingErrors {
            let model = try modelOptions.load()
            let tokenizer = try model.loadTokenizer()
            let session = try modelOptions.session(for: model)
            let parameters = GenerationParameters(maximumTokens: tokens, sampling: sampling.parameters, stopStrings: sampling.stopStrings)
            let generation = TextGeneration(session: session, tokenizer: tokenizer, prompt: self.prompt, parameters: parameters)
            guard generation.prompt.count < session.contextLength else {
                throw InferenceError(.contextOverflow, "the prompt has \(generation.prompt.count) tokens; the context holds \(session.contextLength) (raise --ctx)")
            }
            print(self.prompt, terminator: "")
            for try await event in generation {
                switch event {
                case .token(_, let text):
                    print(text, terminator: "")
                    fflush(nil)
                case .finished(let summary):
                    print(summary.trailingText)
                    fflush(nil)
                    printError(String(format: "prompt: %d tokens, %.1f tokens/s | generation: %d tokens, %.1f tokens/s | stop: %@ | backend: %@\n",
                                      summary.promptTokens, summary.promptTokensPerSecond, summary.generatedTokens,
                                      summary.generationTokensPerSecond, summary.stopReason.rawValue, model.backend.name))
                }
            }
        }
    }
}

struct Chat: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Chat with a model: each line on stdin is a user turn; EOF ends the conversation.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "A system message.") var system: String?
    @Option(name: .customLong("chat-template"), help: "Override the model's template: \(ChatTemplate.knownNames).")
    var chatTemplate: String?
    @Option(name: .customShort("n"), help: "Most tokens per reply.") var tokens: Int = 256
    @OptionGroup var sampling: SamplingOptions

    func run() async throws {
        try await reportingErrors {
            let model = try modelOptions.load()
            let tokenizer = try model.loadTokenizer()
            var override: ChatTemplate?
            if let chatTemplate {
                guard let known = ChatTemplate(rawValue: chatTemplate) else {
                    throw InferenceError(.invalidInput, "unknown --chat-template '\(chatTemplate)' (known: \(ChatTemplate.knownNames))")
                }
                override = known
            }
            let parameters = GenerationParameters(maximumTokens: tokens, sampling: sampling.parameters, stopStrings: sampling.stopStrings)
            let chat = try ChatSession(model: model, tokenizer: tokenizer, template: override, systemPrompt: system,
                                       contextLength: modelOptions.contextLength, cacheType: modelOptions.keyValueCacheType, parameters: parameters)
            let interactive = isatty(0) != 0
            while true {
                if interactive { printError("> ") }
                guard let line = readLine() else { break }
                do {
                    for try await event in chat.respond(to: line) {
                        switch event {
                        case .token(_, let text): print(text, terminator: "")
                        case .finished(let summary): print(summary.trailingText, terminator: "")
                        }
                        fflush(nil)
                    }
                } catch let error as InferenceError where error.code == .contextOverflow {
                    throw InferenceError(.contextOverflow, "\(error.message) (raise --ctx)")
                }
                print("")
            }
        }
    }
}

struct Perplexity: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity of a text file, in non-overlapping windows as llama.cpp's llama-perplexity computes it.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .shortAndLong, help: "The text file.") var file: String
    @Flag(help: "Print {\"perplexity\": x, \"tokens\": n}.") var json = false

    func run() async throws {
        try await reportingErrors {
            let model = try modelOptions.load()
            let tokenizer = try model.loadTokenizer()
            guard let data = FileManager.default.contents(atPath: file) else {
                throw InferenceError(.invalidInput, "\(file): cannot read the text file")
            }
            let tokens = tokenizer.encode(String(decoding: data, as: UTF8.self))
            let context = modelOptions.contextLength ?? min(model.configuration.contextLength, 512)
            let result = try model.perplexity(of: tokens, contextLength: context,
                                              beginningOfSequence: tokenizer.addsBeginningOfSequence ? tokenizer.beginningOfSequence : nil, progress: { done, total in
                if !json { printError("\rchunk \(done)/\(total)") }
            })
            if json {
                print(JSONValue.object([("perplexity", .double(result.perplexity)), ("tokens", .int(result.tokens))]).serialized())
            } else {
                printError("\n")
                print(String(format: "PPL = %.4f +/- %.4f (%d tokens scored in %d windows of %d)", result.perplexity, result.error, result.tokens, result.chunks, context))
            }
        }
    }
}

struct Logits: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print raw logits for token ids: a debugging and parity tool.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Comma-separated token ids.") var tokens: String
    @Flag(name: .customLong("all-positions"), help: "One row per position instead of the last only.") var allPositions = false
    @Option(help: "Feed the tokens this many at a time (1 = the decode path).") var batch: Int?

    func run() async throws {
        try await reportingErrors {
            let ids = try tokens.split(separator: ",").map { part -> Int in
                guard let id = Int(part.trimmingCharacters(in: .whitespaces)) else {
                    throw InferenceError(.invalidInput, "--tokens: '\(part)' is not a token id")
                }
                return id
            }
            guard !ids.isEmpty else { throw InferenceError(.invalidInput, "--tokens is empty") }
            if let batch, batch < 1 { throw InferenceError(.invalidInput, "--batch must be at least 1") }
            let model = try modelOptions.load()
            let session = try modelOptions.session(for: model, contextLength: modelOptions.contextLength ?? max(ids.count, 1))
            var rows: [[Float]] = []
            let step = batch ?? ids.count
            for start in stride(from: 0, to: ids.count, by: step) {
                let part = Array(ids[start..<min(start + step, ids.count)])
                let logits = try await session.evaluate(part, allPositions: allPositions)
                rows += allPositions ? logits : (start + step >= ids.count ? logits : [])
            }
            print(JSONValue.object([("logits", .array(rows.map { .array($0.map { .double(Double($0)) }) }))]).serialized())
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the metadata and tensors of a GGUF file, a safetensors file or a Hugging Face directory.")

    @Argument(help: "A .gguf file, a .safetensors file, or a Hugging Face model directory.")
    var path: String

    @Flag(help: "Print one JSON object: format, metadata, tensors.")
    var json = false

    func run() throws {
        do {
            let inspection = try ModelInspection(path: path)
            print(json ? inspection.json.serialized(pretty: true) : inspection.text())
        } catch {
            throw fail(error)
        }
    }
}
