import ArgumentParser
import BitNetConversion
import BitNetFormats
import BitNetInference
import Foundation

struct Quantize: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a Hugging Face checkpoint (or a float GGUF) to a ternary GGUF, QAT-exact, with a calibration report.")

    @Argument(help: "A Hugging Face directory (sharded or not; float master weights or packed uint8) or a GGUF with float weights.")
    var input: String

    @Option(name: .shortAndLong, help: "The GGUF file to write.") var output: String
    @Option(name: .customLong("type"), help: "BitLinear weight type: tq2_0, tq1_0 or i2_s.") var weightType = "tq2_0"
    @Option(name: .customLong("embed-type"), help: "Embedding and output type: f16, bf16, f32, q8_0 or q6_k.") var embeddingType = "f16"
    @Option(help: "Type for BitLinear weights whose rows do not fit --type (tq2_0, tq1_0, i2_s, f16, bf16, f32).") var fallback: String?
    @Option(help: "Write the calibration report as JSON here.") var report: String?
    @Option(help: "Measure perplexity and activation ranges on this text, float QAT forward against the packed model.") var calibration: String?
    @Option(help: "Threads (default: all cores).") var threads: Int?

    func parseType(_ name: String, _ option: String) throws -> GGMLType {
        guard let type = GGMLType(name: name) else { throw ConversionError(.invalidOption, "\(option): unknown type '\(name)'") }
        return type
    }

    func run() async throws {
        do {
            let options = ConversionOptions(
                weightType: try parseType(weightType, "--type"), embeddingType: try parseType(embeddingType, "--embed-type"),
                fallbackType: try fallback.map { try parseType($0, "--fallback") }, threads: threads)
            let text: String? = try calibration.map { path in
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw ConversionError(.invalidInput, "\(path): cannot read the calibration text")
                }
                return String(decoding: data, as: UTF8.self)
            }
            let converter = try ModelConverter(input: input, options: options)
            for warning in converter.warnings { printError("bitnet: warning: \(warning)\n") }
            let cleanup = InterruptCleanup(output: output)
            defer { withExtendedLifetime(cleanup) {} }
            let progress = ProgressLine()
            var result = try converter.convert(to: output) { progress.show($0) }
            progress.finish()
            if let text {
                printError("calibrating…\n")
                result.calibration = try converter.calibrate(output: output, text: text)
            }
            print(result.table)
            if let report {
                try Data((result.json.serialized(pretty: true) + "\n").utf8).write(to: URL(fileURLWithPath: report), options: .atomic)
            }
        } catch let error as ConversionError where error.code == .unfitRowLength {
            printError("bitnet: error: \(error.message)\n")
            throw ExitCode.failure
        } catch {
            throw fail(error)
        }
    }
}

/// Removes a half-written output (`OUTPUT.partial-*`) when the process is interrupted or terminated.
final class InterruptCleanup {
    private var sources: [DispatchSourceSignal] = []

    init(output: String) {
        let url = URL(fileURLWithPath: output)
        let directory = url.deletingLastPathComponent().path
        let prefix = url.lastPathComponent + ".partial-"
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix(prefix) {
                    unlink(directory + "/" + name)
                }
                printError("\nbitnet: interrupted; no output written\n")
                exit(128 + signalNumber)
            }
            source.resume()
            sources.append(source)
        }
    }

    deinit {
        for source in sources { source.cancel() }
    }
}

/// Progress on stderr: a redrawn bar on a terminal, plain lines otherwise.
final class ProgressLine {
    private let isTerminal = isatty(2) != 0
    private var lastLine = 0.0

    func show(_ progress: ConversionProgress) {
        let fraction = Double(progress.bytesWritten) / Double(max(progress.totalBytes, 1))
        let rate = Double(progress.bytesWritten) / max(progress.elapsedSeconds, 1e-6) / 1_048_576
        let remaining = fraction > 0 ? progress.elapsedSeconds * (1 - fraction) / fraction : 0
        let status = String(format: "tensor %d/%d  %.1f MB/s  ETA %.0f s  %@", progress.tensorIndex, progress.tensorCount, rate, remaining, progress.tensorName)
        if isTerminal {
            let width = 30
            let filled = Int(fraction * Double(width))
            printError("\r[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] " + status + "\u{1B}[K")
        } else if progress.tensorIndex == progress.tensorCount || progress.elapsedSeconds - lastLine >= 1 || progress.tensorIndex == 1 {
            lastLine = progress.elapsedSeconds
            printError(status + "\n")
        }
    }

    func finish() {
        if isTerminal { printError("\n") }
    }
}
