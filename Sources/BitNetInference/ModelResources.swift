import BitNetFormats
import Foundation

extension BitNetModel {
    /// The model's tokenizer: GGUF `tokenizer.ggml.*` metadata, or `tokenizer.json` beside `config.json`.
    public func loadTokenizer() throws -> BPETokenizer {
        if let file = ggufFile { return try BPETokenizer.load(gguf: file) }
        let path = self.path + "/tokenizer.json"
        guard FileManager.default.fileExists(atPath: path) else {
            throw InferenceError(.invalidModel, "\(self.path): no tokenizer.json")
        }
        let config = try HuggingFaceConfiguration.load(directory: self.path)
        return try BPETokenizer.load(tokenizerJSON: path, bos: config.beginningOfSequenceTokenID, eos: config.endOfSequenceTokenIDs)
    }

    /// The Jinja chat template the model ships (`tokenizer.chat_template` or tokenizer_config.json).
    public var chatTemplateSource: String? {
        if let file = ggufFile { return file.metadata.string("tokenizer.chat_template") }
        guard let data = FileManager.default.contents(atPath: path + "/tokenizer_config.json"),
              let config = try? JSONValue.parse(data) else { return nil }
        return config["chat_template"]?.stringValue
    }

    /// The model's chat format; throws a clear error if its template is unknown (pass an override).
    public func chatTemplate(override: ChatTemplate? = nil) throws -> ChatTemplate {
        if let override { return override }
        guard let source = chatTemplateSource else {
            throw InferenceError(.invalidModel, "\(path) has no chat template; choose one with --chat-template (\(ChatTemplate.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard let template = ChatTemplate(jinja: source) else {
            throw InferenceError(.unsupportedModel, "\(path): unknown chat template; choose one with --chat-template (\(ChatTemplate.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return template
    }
}

/// The result of a perplexity run.
public struct PerplexityResult: Sendable {
    public var perplexity: Double
    /// Standard error of the perplexity estimate.
    public var error: Double
    /// Tokens scored.
    public var tokens: Int
    public var chunks: Int
}

extension BitNetModel {
    /// Perplexity as llama.cpp's `llama-perplexity` measures it: the text is cut into non-overlapping
    /// windows of `contextLength` tokens (the first replaced by BOS when the tokenizer uses one), and
    /// each window scores the predictions of its second half.
    public func perplexity(of tokens: [Int], contextLength: Int, beginningOfSequence: Int?,
                           observer: ActivationObserver? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> PerplexityResult {
        guard contextLength >= 4 else { throw InferenceError(.invalidInput, "the perplexity context must be at least 4 tokens") }
        let chunks = tokens.count / contextLength
        guard chunks > 0 else {
            throw InferenceError(.invalidInput, "the text has \(tokens.count) tokens; perplexity with --ctx \(contextLength) needs at least \(contextLength)")
        }
        let session = try InferenceSession(model: self, contextLength: contextLength)
        session.activationObserver = observer
        let first = contextLength / 2
        var sum = 0.0, sumOfSquares = 0.0, count = 0
        for chunk in 0..<chunks {
            var window = Array(tokens[chunk * contextLength..<(chunk + 1) * contextLength])
            if let beginningOfSequence { window[0] = beginningOfSequence }
            session.reset()
            let logits = try session.evaluate(window, allPositions: true)
            for position in first..<contextLength - 1 {
                let row = logits[position]
                let maximum = row.max()!
                let logSum = log(row.reduce(0.0) { $0 + exp(Double($1 - maximum)) }) + Double(maximum)
                let negativeLogLikelihood = logSum - Double(row[window[position + 1]])
                sum += negativeLogLikelihood
                sumOfSquares += negativeLogLikelihood * negativeLogLikelihood
                count += 1
            }
            progress?(chunk + 1, chunks)
        }
        let mean = sum / Double(count)
        let variance = max(0, sumOfSquares / Double(count) - mean * mean)
        let perplexity = exp(mean)
        let error = count > 1 ? perplexity * (variance / Double(count - 1)).squareRoot() : 0
        return PerplexityResult(perplexity: perplexity, error: error, tokens: count, chunks: chunks)
    }
}
