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
        let reference = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: Self.folder + "/reference.json")))
        let text = try String(contentsOfFile: Self.folder + "/heldout.txt", encoding: .utf8)
        let model = try BitNetModel(path: Self.model, threads: 2)
        #expect(model.configuration.architecture == .bitnetB158)
        let tokenizer = try model.loadTokenizer()
        let context = reference["context"]!.intValue!
        let result = try model.perplexity(of: tokenizer.encode(text), contextLength: context, beginningOfSequence: tokenizer.beginningOfSequence)
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
