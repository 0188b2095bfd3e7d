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
