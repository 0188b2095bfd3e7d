// The library used the way an app would: load a model, stream a reply, keep the conversation in the
// session's KV cache for the next turn.
//
//   swift run GenerateText Tests/Fixtures/models/bitnet-chat-tiny-tq2_0.gguf "Hello!"
import BitNetInference
import Foundation

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    print("usage: GenerateText MODEL PROMPT")
    exit(2)
}

do {
    let model = try BitNetModel(path: arguments[1])
    let tokenizer = try model.loadTokenizer()
    let session = try InferenceSession(model: model, contextLength: 512)
    let template = (try? model.chatTemplate()) ?? .bitnet
    let bos = tokenizer.beginningOfSequence.map { tokenizer.decode([$0]) }

    var sampling = SamplingParameters()
    sampling.temperature = 0.7
    sampling.seed = 42
    let parameters = GenerationParameters(maximumTokens: 48, sampling: sampling)

    for (turn, question) in [arguments[2], "And in one word?"].enumerated() {
        let text = template.render([ChatMessage(role: .user, content: question)], beginning: bos, isStart: turn == 0)
        print("> \(question)")
        for try await event in TextGeneration(session: session, tokenizer: tokenizer, prompt: tokenizer.encode(text), parameters: parameters) {
            switch event {
            case .token(_, let piece):
                print(piece, terminator: "")
            case .finished(let summary):
                print(String(format: "\n[%d tokens at %.1f tokens/s, %@]", summary.generatedTokens, summary.generationTokensPerSecond, summary.stopReason.rawValue))
            }
        }
        // Close the assistant's turn so the next question follows the template.
        if let end = tokenizer.id(of: "<|eot_id|>") { _ = try session.evaluate([end]) }
    }
} catch {
    print("error: \(error)")
    exit(1)
}
