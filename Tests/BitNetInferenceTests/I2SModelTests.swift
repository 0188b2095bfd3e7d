import BitNetFormats
import BitNetInference
import BitNetQuantization
import Foundation
import TestSupport
import Testing

/// bitnet.cpp's I2_S weights, read in place from a GGUF file.
@Suite struct I2SModelTests {
    @Test func i2_sFileMatchesTheReference() throws {
        // The TQ2_0 fixture with every ternary weight repacked as I2_S (one float32 scale per tensor).
        let source = try GGUFFile(path: Fixtures.path("models/bitnet-gqa-tied-bf16-tq2_0.gguf"))
        let scratch = TemporaryDirectory()
        let path = scratch.path + "/i2s.gguf"
        let declared = source.tensors.map { ($0.name, $0.type == .tq2_0 ? GGMLType.i2_s : $0.type, $0.shape) }
        let writer = try GGUFWriter(path: path, metadata: source.metadata, tensors: declared)
        for tensor in source.tensors {
            if tensor.type == .tq2_0 {
                let ternary = try source.withTensorData(tensor) { try TQ2_0.unpackTensor($0, rows: tensor.shape[1], columns: tensor.shape[0]) }
                try writer.write(try I2S.pack(ternary))
            } else {
                try source.withTensorData(tensor) { try writer.write($0) }
            }
        }
        try writer.finish()
        let model = try BitNetModel(path: path, threads: 2)
        #expect(model.weightBytes.owned == 0)
        let reference = try ReferenceLogits("bitnet-gqa-tied-bf16")
        let session = try InferenceSession(model: model, contextLength: 32)
        reference.expectAgreement(try session.evaluate(reference.tokens, allPositions: true), within: .of("bitnet-gqa-tied-bf16-tq2_0-as-i2_s.gguf"), "i2_s file")
    }
}
