import ArgumentParser
import BitNetFormats
import Foundation

@main
struct BitNet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bitnet",
        abstract: "Convert and run BitNet b1.58 models (ternary weights, int8 activations).",
        version: "0.1.0",
        subcommands: [Inspect.self]
    )
}

/// Prints `error` as one line on stderr and exits with status 1.
func fail(_ error: any Error) -> ExitCode {
    FileHandle.standardError.write(Data("bitnet: error: \(error)\n".utf8))
    return ExitCode.failure
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
