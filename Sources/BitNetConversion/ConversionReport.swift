import BitNetCPU
import BitNetFormats
import BitNetInference
import BitNetQuantization
import Foundation

/// What ternarization did to one BitLinear weight.
public struct TensorStatistics: Sendable {
    public var name: String
    public var type: GGMLType
    public var shape: [Int]
    /// The per-tensor scale `s` (a dequantized +1).
    public var scale: Float
    /// Fractions of the codes −1, 0 and +1.
    public var fractions: (negative: Double, zero: Double, positive: Double)
    /// ‖W − s·Q‖ / ‖W‖ against the master weights; nil when the input was already ternary.
    public var relativeError: Double?

    init(name: String, type: GGMLType, shape: [Int], ternary: TernaryTensor, master: [Float]?) {
        self.name = name
        self.type = type
        self.shape = shape
        scale = ternary.scale
        var counts = [0, 0, 0]
        for code in ternary.codes { counts[Int(code) + 1] += 1 }
        let total = Double(max(ternary.codes.count, 1))
        fractions = (Double(counts[0]) / total, Double(counts[1]) / total, Double(counts[2]) / total)
        if let master {
            var difference = 0.0, norm = 0.0
            for (value, code) in zip(master, ternary.codes) {
                let delta = Double(value) - Double(code) * Double(ternary.scale)
                difference += delta * delta
                norm += Double(value) * Double(value)
            }
            relativeError = norm > 0 ? (difference / norm).squareRoot() : 0
        }
    }
}

/// Activation statistics at one BitLinear input.
public struct ActivationStatistics: Sendable {
    public var layer: Int
    public var site: ActivationSite
    /// Mean over tokens of the per-token max |x| (what sets the int8 scale).
    public var meanAbsmax: Double
    /// Largest per-token max |x|.
    public var maxAbsmax: Double
    public var tokens: Int
}

/// The answer to "did conversion cost anything?": the QAT forward of the float checkpoint (fake
/// quantization in float32) against the packed model, on the same text.
public struct CalibrationReport: Sendable {
    public var textTokens: Int
    public var contextLength: Int
    public var floatPerplexity: Double
    public var packedPerplexity: Double
    public var activations: [ActivationStatistics]

    public var perplexityDifference: Double { packedPerplexity - floatPerplexity }
}

/// The calibration report of a conversion.
public struct ConversionReport: Sendable {
    public var input: String
    public var output: String
    public var architecture: BitNetArchitecture
    public var weightType: GGMLType
    public var tensors: [TensorStatistics]
    public var calibration: CalibrationReport?

    public var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("input", .string(input)), ("output", .string(output)), ("architecture", .string(architecture.rawValue)),
            ("type", .string(weightType.name)),
            ("tensors", .array(tensors.map { tensor in
                .object([
                    ("name", .string(tensor.name)), ("type", .string(tensor.type.name)), ("shape", .array(tensor.shape.map { .int($0) })),
                    ("scale", .double(Double(tensor.scale))),
                    ("fractions", .object([("-1", .double(tensor.fractions.negative)), ("0", .double(tensor.fractions.zero)), ("+1", .double(tensor.fractions.positive))])),
                    ("relative_error", tensor.relativeError.map { .double($0) } ?? .null),
                ])
            })),
        ]
        if let calibration {
            members.append(("calibration", .object([
                ("text_tokens", .int(calibration.textTokens)), ("context", .int(calibration.contextLength)),
                ("float_perplexity", .double(calibration.floatPerplexity)), ("packed_perplexity", .double(calibration.packedPerplexity)),
                ("difference", .double(calibration.perplexityDifference)),
                ("activations", .array(calibration.activations.map { stats in
                    .object([("layer", .int(stats.layer)), ("site", .string(stats.site.rawValue)), ("mean_absmax", .double(stats.meanAbsmax)),
                             ("max_absmax", .double(stats.maxAbsmax)), ("tokens", .int(stats.tokens))])
                })),
            ])))
        }
        return .object(members)
    }

    /// A readable table.
    public var table: String {
        var lines = ["\(output): \(tensors.count) BitLinear weights as \(weightType) (\(architecture.rawValue))", ""]
        let width = max(6, tensors.map(\.name.count).max() ?? 0)
        lines.append("tensor".padding(toLength: width, withPad: " ", startingAt: 0) + "  type    scale      -1      0       +1      rel.err")
        for tensor in tensors {
            let error = tensor.relativeError.map { String(format: "%.4f", $0) } ?? "exact"
            lines.append(tensor.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                + tensor.type.name.padding(toLength: 6, withPad: " ", startingAt: 0)
                + String(format: "  %.5f  %5.1f%%  %5.1f%%  %5.1f%%  ", tensor.scale, tensor.fractions.negative * 100,
                         tensor.fractions.zero * 100, tensor.fractions.positive * 100) + error)
        }
        if let calibration {
            lines += ["", String(format: "calibration on %d tokens (windows of %d): float QAT forward PPL %.4f, packed PPL %.4f, difference %+.4f (%+.3f%%)",
                                 calibration.textTokens, calibration.contextLength, calibration.floatPerplexity, calibration.packedPerplexity,
                                 calibration.perplexityDifference, calibration.perplexityDifference / calibration.floatPerplexity * 100)]
            lines.append("layer  input         mean absmax   max absmax")
            for stats in calibration.activations {
                lines.append(String(format: "%5d  %@  %11.3f  %11.3f", stats.layer, stats.site.rawValue.padding(toLength: 12, withPad: " ", startingAt: 0), stats.meanAbsmax, stats.maxAbsmax))
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension ModelConverter {
    /// Measures the conversion on `text`: perplexity of the input under the QAT forward in float32 (fake
    /// quantization) against the converted model in integer arithmetic, and the activation absmax at every
    /// BitLinear input of the float run.
    public func calibrate(output: String, text: String, contextLength requested: Int = 512) throws -> CalibrationReport {
        let collector = ActivationCollector()
        let floatModel = try BitNetModel(path: input, backend: CPUBackend(threads: options.threads, arithmetic: .fakeQuantizedFloat,
                                                                          observer: { collector.observe($0, $1, $2, $3) }))
        let packedModel = try BitNetModel(path: output, backend: CPUBackend(threads: options.threads))
        let tokenizer = try packedModel.loadTokenizer()
        let tokens = tokenizer.encode(text)
        let context = min(requested, configuration.contextLength, tokens.count)
        guard context >= 16 else {
            throw ConversionError(.invalidInput, "the calibration text has \(tokens.count) tokens; at least 16 are needed")
        }
        let bos = tokenizer.addsBeginningOfSequence ? tokenizer.beginningOfSequence : nil
        let float = try floatModel.perplexity(of: tokens, contextLength: context, beginningOfSequence: bos)
        let packed = try packedModel.perplexity(of: tokens, contextLength: context, beginningOfSequence: bos)
        return CalibrationReport(textTokens: tokens.count, contextLength: context, floatPerplexity: float.perplexity,
                                 packedPerplexity: packed.perplexity, activations: collector.statistics)
    }
}

/// Accumulates per-token absmax statistics at each (layer, site).
private final class ActivationCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var sums: [String: (layer: Int, site: ActivationSite, sum: Double, max: Double, count: Int)] = [:]

    func observe(_ site: ActivationSite, _ layer: Int, _ values: [Float], _ width: Int) {
        lock.lock()
        defer { lock.unlock() }
        let key = "\(layer).\(site.rawValue)"
        var entry = sums[key] ?? (layer, site, 0, 0, 0)
        for token in 0..<values.count / width {
            var absmax: Float = 0
            for index in token * width..<(token + 1) * width { absmax = max(absmax, values[index].magnitude) }
            entry.sum += Double(absmax)
            entry.max = max(entry.max, Double(absmax))
            entry.count += 1
        }
        sums[key] = entry
    }

    var statistics: [ActivationStatistics] {
        sums.values.sorted { ($0.layer, ActivationSite.allCases.firstIndex(of: $0.site)!) < ($1.layer, ActivationSite.allCases.firstIndex(of: $1.site)!) }
            .map { ActivationStatistics(layer: $0.layer, site: $0.site, meanAbsmax: $0.sum / Double(max($0.count, 1)), maxAbsmax: $0.max, tokens: $0.count) }
    }
}
