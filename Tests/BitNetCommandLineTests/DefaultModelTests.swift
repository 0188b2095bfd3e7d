import BitNetFormats
import BitNetInference
import Foundation
import TestSupport
import Testing

/// The bundled default model (Models/tiny-bitnet): trained, and converted without loss.
@Suite struct DefaultModelTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let model = root.appendingPathComponent("Sources/bitnet/Resources/tiny-bitnet.gguf").path
    static let folder = root.appendingPathComponent("Models/tiny-bitnet").path

    @Test func perplexityMatchesPyTorchAndBeatsAnUntrainedModel() throws {
        // The first 1536 held-out tokens (train.py's "short" reference): the full text is measured in
        // PHASES.md with the release build; a debug build takes minutes over all of it.
        let full = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: Self.folder + "/reference.json")))
        let reference = full["short"]!
        let text = try String(contentsOfFile: Self.folder + "/heldout.txt", encoding: .utf8)
        let model = try BitNetModel(path: Self.model, threads: 2)
        #expect(model.configuration.architecture == .bitnetB158)
        let tokenizer = try model.loadTokenizer()
        let context = full["context"]!.intValue!
        let tokens = Array(tokenizer.encode(text).prefix(reference["tokens"]!.intValue!))
        let result = try model.perplexity(of: tokens, contextLength: context, beginningOfSequence: tokenizer.beginningOfSequence)
        let pytorch = reference["qat_forward_perplexity"]!.doubleValue!
        let untrained = reference["untrained_perplexity"]!.doubleValue!
        #expect(result.tokens == reference["scored_tokens"]!.intValue!, "same tokenization and windows as the training script")
        #expect(abs(result.perplexity - pytorch) / pytorch < 0.01, "packed \(result.perplexity) vs PyTorch QAT forward \(pytorch)")
        #expect(result.perplexity < untrained / 10, "trained \(result.perplexity) vs untrained \(untrained)")
    }

    @Test func generateUsesItWhenNoModelIsGiven() throws {
        let result = try BitNetExecutable.run(["generate", "-p", "The list", "-n", "12", "--temp", "0", "--threads", "1"])
        let (stdout, stderr) = (result.stdout, result.stderr)
        #expect(result.status == 0, "\(stderr)")
        #expect(stdout.hasPrefix("The list") && stdout.count > "The list".count + 8)
    }
}
