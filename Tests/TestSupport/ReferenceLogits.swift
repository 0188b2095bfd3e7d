import Testing

/// How closely our logits must follow transformers' for one fixture: the README's claims, as numbers, kept in
/// `Tests/Fixtures/models/tolerances.json` (with why each bound is what it is), which `scripts/vulkan_parity.py`
/// reads too.
public struct ParityTolerance: Sendable {
    /// Largest relative L2 error of any position.
    public var maximum: Float
    /// Median over positions.
    public var median: Float
    /// Positions (of 20) whose top-1 token must agree.
    public var topOneAgreement: Int

    public init(maximum: Float, median: Float, topOneAgreement: Int) {
        self.maximum = maximum
        self.median = median
        self.topOneAgreement = topOneAgreement
    }

    /// Every fixture's bound by name, and "default".
    private static let table: [String: ParityTolerance] = {
        let entries = (try? Fixtures.json("models/tolerances.json"))?.objectValue ?? []
        var table: [String: ParityTolerance] = [:]
        for (name, entry) in entries where !name.hasPrefix("_") {
            guard let maximum = entry["maximum"]?.doubleValue, let median = entry["median"]?.doubleValue,
                  let topOne = entry["top_one"]?.intValue else {
                preconditionFailure("Tests/Fixtures/models/tolerances.json: '\(name)' lacks a maximum, median or top_one")
            }
            table[name] = ParityTolerance(maximum: Float(maximum), median: Float(median), topOneAgreement: topOne)
        }
        precondition(table["default"] != nil, "Tests/Fixtures/models/tolerances.json has no default bound")
        return table
    }()

    /// Float32 QAT forward matched to rounding.
    public static var exact: ParityTolerance { table["default"]! }

    /// The bound for a fixture: a Hugging Face directory, or a GGUF file of the fixtures or converted from them.
    public static func of(_ fixture: String) -> ParityTolerance { table[fixture] ?? exact }
}

/// The logits transformers computed for a fixture model (float32 QAT forward), from
/// `Tests/Fixtures/models/NAME/reference-logits.safetensors` (written by `generate_models.py`).
public struct ReferenceLogits: Sendable, CustomTestStringConvertible {
    public let name: String
    public let tokens: [Int]
    public let logits: [[Float]]

    public init(_ name: String) throws {
        self.name = name
        let tensors = try FixtureTensors("models/\(name)/reference-logits.safetensors")
        tokens = try tensors.floats("tokens").map { Int($0) }
        let flat = try tensors.floats("logits")
        let vocabulary = flat.count / tokens.count
        logits = (0..<tokens.count).map { Array(flat[$0 * vocabulary..<($0 + 1) * vocabulary]) }
    }

    /// Every fixture with reference logits.
    public static func all() throws -> [ReferenceLogits] {
        try Fixtures.json("models/models.json").objectValue!.map { name, _ in try ReferenceLogits(name) }
    }

    public var testDescription: String { name }

    static func argmax(_ row: [Float]) -> Int { row.indices.max { row[$0] < row[$1] }! }

    /// Relative L2 errors per position and the number of positions whose top-1 token agrees.
    public func compare(_ ours: [[Float]]) -> (errors: [Float], topOne: Int) {
        (zip(ours, logits).map { $0.relativeError(to: $1) }, zip(ours, logits).filter { Self.argmax($0) == Self.argmax($1) }.count)
    }

    /// Expects `ours` to follow the reference within `tolerance` at every position.
    public func expectAgreement(_ ours: [[Float]], within tolerance: ParityTolerance, _ label: String,
                                sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(ours.count == logits.count, "\(label): positions", sourceLocation: sourceLocation)
        let (errors, agreeing) = compare(ours)
        let sorted = errors.sorted()
        let median = sorted[sorted.count / 2]
        print("\(label): max \(sorted.last!) median \(median) top-1 \(agreeing)/\(ours.count)")
        #expect(sorted.last! <= tolerance.maximum, "\(label): worst relative L2 error \(sorted.last!) > \(tolerance.maximum)", sourceLocation: sourceLocation)
        #expect(median <= tolerance.median, "\(label): median relative L2 error \(median) > \(tolerance.median)", sourceLocation: sourceLocation)
        #expect(agreeing >= tolerance.topOneAgreement * ours.count / 20, "\(label): top-1 agrees at \(agreeing)/\(ours.count)", sourceLocation: sourceLocation)
    }
}
