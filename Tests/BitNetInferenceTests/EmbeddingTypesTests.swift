import BitNetFormats
@testable import BitNetCPU
import BitNetInference
import BitNetQuantization
import Foundation
import TestSupport
import Testing

/// Embeddings and output weights are used in their stored type.
@Suite struct EmbeddingTypesTests {
    @Test func q6_KRowsDecodeLikeGGUFPy() throws {
        let fixtures = try FixtureTensors("packing/gguf-py.safetensors")
        let matrix = FloatMatrix(try WeightTensor(name: "q6", encoding: .q6_K, rows: 3, columns: 256, bytes: .owned(try fixtures.bytes("q6_k.bytes"))))
        let expected = try fixtures.floats("q6_k.dequantized")
        var row = [Float](repeating: 0, count: 256)
        for index in 0..<3 {
            row.withUnsafeMutableBufferPointer { matrix.row(index, into: $0.baseAddress!) }
            #expect(row == Array(expected[index * 256..<(index + 1) * 256]))
        }
    }

    @Test func q8_0EmbeddingsStayCloseToTheReference() throws {
        // The TQ2_0 fixture with its f16 embedding requantized to Q8_0 by our (gguf-py-identical) quantizer.
        let source = try GGUFFile(path: Fixtures.path("models/bitnet-gqa-tied-bf16-tq2_0.gguf"))
        let scratch = TemporaryDirectory()
        let path = scratch.path + "/q8.gguf"
        let declared = source.tensors.map { ($0.name, $0.name == "token_embd.weight" ? GGMLType.q8_0 : $0.type, $0.shape) }
        let writer = try GGUFWriter(path: path, metadata: source.metadata, tensors: declared)
        for tensor in source.tensors {
            if tensor.name == "token_embd.weight" {
                let floats = try source.withTensorData(tensor) { try tensor.type.floats(from: $0, elementCount: tensor.elementCount) }
                try writer.write(try Q8_0.quantize(floats, rowLength: tensor.shape[0]))
            } else {
                try source.withTensorData(tensor) { try writer.write($0) }
            }
        }
        try writer.finish()
        let reference = try ReferenceLogits("bitnet-gqa-tied-bf16")
        let model = try BitNetModel(path: path, threads: 2)
        let session = try InferenceSession(model: model, contextLength: 32)
        reference.expectAgreement(try session.evaluate(reference.tokens, allPositions: true), within: .of("bitnet-gqa-tied-bf16-q8_0-embeddings.gguf"), "q8_0 embeddings")
    }
}
