import BitNetFormats
import BitNetInference
import Foundation
import TestSupport
import Testing

/// Our engine against transformers' BitNetForCausalLM (QAT forward, float32) on tiny random models.
///
/// Random networks are chaotic: one int8 rounding flip moves logits by about 1 %, a real bug by 50 % or
/// more. So every position must agree within 10 % relative L2 (median ≤ 5 %) with the same top-1 token
/// at ≥ 90 % of positions, both with the whole sequence as one batch and fed one token at a time.
@Suite struct ParityTests {
    struct Reference {
        let name: String
        let tokens: [Int]
        let logits: [[Float]]
    }

    static func references() throws -> [Reference] {
        let summary = try Fixtures.json("models/models.json")
        return try summary.objectValue!.map { name, _ in
            let tensors = try FixtureTensors("models/\(name)/reference-logits.safetensors")
            let tokens = try tensors.floats("tokens").map { Int($0) }
            let flat = try tensors.floats("logits")
            let vocabulary = flat.count / tokens.count
            return Reference(name: name, tokens: tokens, logits: (0..<tokens.count).map { Array(flat[$0 * vocabulary..<($0 + 1) * vocabulary]) })
        }
    }

    static func argmax(_ row: [Float]) -> Int { row.indices.max { row[$0] < row[$1] }! }

    func expectAgreement(_ ours: [[Float]], _ reference: Reference, _ label: String) {
        #expect(ours.count == reference.logits.count, "\(label): positions")
        let errors = zip(ours, reference.logits).map { $0.relativeError(to: $1) }
        let sorted = errors.sorted()
        let median = sorted[sorted.count / 2]
        let agreeing = zip(ours, reference.logits).filter { Self.argmax($0) == Self.argmax($1) }.count
        print("\(label): max \(errors.max()!) median \(median) top-1 \(agreeing)/\(ours.count)")
        #expect(errors.max()! <= 0.1, "\(label): worst relative L2 error \(errors.max()!)")
        #expect(median <= 0.05, "\(label): median relative L2 error \(median)")
        #expect(Double(agreeing) >= 0.9 * Double(ours.count), "\(label): top-1 agrees at \(agreeing)/\(ours.count)")
    }

    @Test(arguments: try references())
    func huggingFaceDirectoryMatchesTransformers(_ reference: Reference) throws {
        let model = try BitNetModel(path: Fixtures.path("models/\(reference.name)"), threads: 2)
        let batch = try InferenceSession(model: model, contextLength: 64)
        expectAgreement(try batch.evaluate(reference.tokens, allPositions: true), reference, "\(reference.name) batch")

        let decode = try InferenceSession(model: model, contextLength: 64)
        let stepwise = try reference.tokens.map { try decode.evaluate([$0])[0] }
        expectAgreement(stepwise, reference, "\(reference.name) one token at a time")
    }
}

extension ParityTests.Reference: CustomTestStringConvertible {
    var testDescription: String { name }
}
