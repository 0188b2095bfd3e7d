// The library used the way an app would: load a model on the best backend here, then chat — the chat
// session adds BOS, renders the model's template, streams each reply and keeps the conversation in its
// KV cache for the next turn.
//
//   swift run GenerateText Tests/Fixtures/models/bitnet-chat-tiny-tq2_0.gguf "Hello!" [cpu|vulkan|auto]
import BitNetInference
import Foundation

let arguments = CommandLine.arguments
guard arguments.count >= 3, let backend = BackendChoice(rawValue: arguments.count > 3 ? arguments[3] : "auto") else {
    print("usage: GenerateText MODEL PROMPT [\(BackendChoice.allCases.map(\.rawValue).joined(separator: "|"))]")
    exit(2)
}

do {
    let model = try BitNetModel(path: arguments[1], backend: backend)
    var sampling = SamplingParameters()
    sampling.temperature = 0.7
    sampling.seed = 42
    let chat = try ChatSession(model: model, template: (try? model.chatTemplate()) ?? .bitnet, contextLength: 512,
                               parameters: GenerationParameters(maximumTokens: 48, sampling: sampling))
    print("[\(model.configuration.architecture.rawValue) on \(model.backend.name)]")
    for question in [arguments[2], "And in one word?"] {
        print("> \(question)")
        for try await event in chat.respond(to: question) {
            switch event {
            case .token(_, let piece):
                print(piece, terminator: "")
                fflush(nil)
            case .finished(let summary):
                print(String(format: "\n[%d tokens at %.1f tokens/s, %@]", summary.generatedTokens, summary.generationTokensPerSecond, summary.stopReason.rawValue))
            }
        }
    }
} catch {
    print("error: \(error)")
    exit(1)
}
