@testable import BitNetFormats
import Foundation
import TestSupport
import Testing

/// Builds GGUF bytes field by field, so a test can damage exactly one thing.
struct GGUFBuilder {
    struct Tensor {
        var name: String
        var dims: [UInt64]
        var type: UInt32
        var offset: UInt64
    }

    var magic: UInt32 = GGUF.magic
    var version: UInt32 = 3
    var metadata: [(String, GGUFValue)] = [("general.architecture", .string("bitnet"))]
    var tensors: [Tensor] = [Tensor(name: "a", dims: [32, 2], type: 0, offset: 0)]
    var tensorCount: UInt64?
    var metadataCount: UInt64?
    var dataBytes = 256
    /// Raw bytes appended after the metadata entries (before tensor infos), for hand-made values.
    var rawMetadata: [UInt8] = []

    func bytes() -> [UInt8] {
        var encoder = HeaderEncoder()
        encoder.integer(magic)
        encoder.integer(version)
        encoder.integer(tensorCount ?? UInt64(tensors.count))
        encoder.integer(metadataCount ?? UInt64(metadata.count + (rawMetadata.isEmpty ? 0 : 1)))
        for (key, value) in metadata {
            encoder.string(key)
            encoder.value(value)
        }
        encoder.bytes += rawMetadata
        for tensor in tensors {
            encoder.string(tensor.name)
            encoder.integer(UInt32(tensor.dims.count))
            for dim in tensor.dims { encoder.integer(dim) }
            encoder.integer(tensor.type)
            encoder.integer(tensor.offset)
        }
        var alignment = 32
        if case .uint32(let value)? = metadata.first(where: { $0.0 == GGUF.alignmentKey })?.1, value > 0 { alignment = Int(value) }
        while encoder.bytes.count % alignment != 0 { encoder.bytes.append(0) }
        return encoder.bytes + [UInt8](repeating: 0, count: dataBytes)
    }
}

@Suite struct GGUFValidationTests {
    let scratch = TemporaryDirectory()

    /// Opens `bytes` as a GGUF file and returns the error code it fails with (or records that it did not).
    func failure(_ bytes: [UInt8], _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) -> (FormatError.Code, String)? {
        let path = scratch.file("bad-\(UUID().uuidString).gguf", bytes)
        do {
            _ = try GGUFFile(path: path)
            Issue.record("opened a damaged file", sourceLocation: sourceLocation)
            return nil
        } catch let error as FormatError {
            #expect(error.file == path, "the error names the file", sourceLocation: sourceLocation)
            #expect(error.description.hasPrefix(path + ": "), sourceLocation: sourceLocation)
            return (error.code, error.message)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    @Test func validBuilderFileOpens() throws {
        let path = scratch.file("ok.gguf", GGUFBuilder().bytes())
        let file = try GGUFFile(path: path)
        #expect(file.tensors.map(\.name) == ["a"])
        #expect(file.tensors[0].byteCount == 256)
    }

    @Test func wrongMagic() {
        var builder = GGUFBuilder()
        builder.magic = 0x4C4C_4747  // "GGLL"
        let result = failure(builder.bytes())
        #expect(result?.0 == .badMagic)
        #expect(result?.1.contains("47 47 4c 4c") == true)
    }

    @Test func unsupportedVersion() {
        var builder = GGUFBuilder()
        builder.version = 1
        #expect(failure(builder.bytes())?.0 == .unsupportedVersion)
        builder.version = 3 << 24  // a big-endian file
        #expect(failure(builder.bytes())?.1.contains("big-endian") == true)
    }

    @Test func emptyAndTruncatedHeaders() {
        #expect(failure([])?.0 == .truncated)
        let bytes = GGUFBuilder().bytes()
        // Cut inside the counts, the metadata, and the tensor infos: every cut is a clean error.
        let headerEnd = bytes.count - 256
        for cut in [3, 6, 12, 20, 30, 45, headerEnd - 20, headerEnd - 3] {
            let code = failure(Array(bytes.prefix(cut)), "cut at \(cut)")?.0
            #expect(code == .truncated || code == .countExceedsFile || code == .dataOutOfBounds, "cut at \(cut): \(String(describing: code))")
        }
    }

    @Test func tensorDataBeyondTheEnd() {
        var builder = GGUFBuilder()
        builder.dataBytes = 100  // the f32 tensor needs 256
        let result = failure(builder.bytes())
        #expect(result?.0 == .dataOutOfBounds)
        #expect(result?.1.contains("'a'") == true)
    }

    @Test func misalignedOffset() {
        var builder = GGUFBuilder()
        builder.tensors[0].offset = 4
        #expect(failure(builder.bytes())?.0 == .misalignedOffset)
    }

    @Test func overlappingTensors() {
        var builder = GGUFBuilder()
        builder.tensors.append(.init(name: "b", dims: [32], type: 0, offset: 128))  // a covers 0..<256
        builder.dataBytes = 512
        let result = failure(builder.bytes())
        #expect(result?.0 == .overlappingTensors)
        #expect(result?.1.contains("'a'") == true && result?.1.contains("'b'") == true)
    }

    @Test func tooManyDimensions() {
        var builder = GGUFBuilder()
        builder.tensors[0].dims = [1, 1, 1, 1, 64]
        #expect(failure(builder.bytes())?.0 == .tooManyDimensions)
    }

    @Test func elementCountOverflow() {
        var builder = GGUFBuilder()
        builder.tensors[0].dims = [1 << 32, 1 << 32]
        #expect(failure(builder.bytes())?.0 == .elementCountOverflow)
        builder.tensors[0].dims = [UInt64.max]
        #expect(failure(builder.bytes())?.0 == .elementCountOverflow)
    }

    @Test func hugeDimensionsFailWithoutAllocating() {
        var builder = GGUFBuilder()
        builder.tensors[0].dims = [1 << 40, 1 << 20]  // 2^60 floats: far beyond the file
        #expect(failure(builder.bytes())?.0 == .dataOutOfBounds)
    }

    @Test func countsLargerThanTheFile() {
        var builder = GGUFBuilder()
        builder.metadataCount = 1 << 60
        #expect(failure(builder.bytes())?.0 == .countExceedsFile)
        builder = GGUFBuilder()
        builder.tensorCount = 1 << 40
        #expect(failure(builder.bytes())?.0 == .countExceedsFile)
        // A string claiming 2^62 bytes.
        builder = GGUFBuilder()
        var raw = HeaderEncoder()
        raw.string("test.string")
        raw.integer(GGUFValueType.string.rawValue)
        raw.integer(UInt64(1) << 62)
        builder.rawMetadata = raw.bytes
        #expect(failure(builder.bytes())?.0 == .countExceedsFile)
        // An array claiming 2^50 uint32 elements.
        raw = HeaderEncoder()
        raw.string("test.array")
        raw.integer(GGUFValueType.array.rawValue)
        raw.integer(GGUFValueType.uint32.rawValue)
        raw.integer(UInt64(1) << 50)
        builder.rawMetadata = raw.bytes
        #expect(failure(builder.bytes())?.0 == .countExceedsFile)
    }

    @Test func duplicateTensorNames() {
        var builder = GGUFBuilder()
        builder.tensors.append(.init(name: "a", dims: [32], type: 0, offset: 256))
        builder.dataBytes = 512
        #expect(failure(builder.bytes())?.0 == .duplicateTensor)
    }

    @Test func duplicateMetadataKeys() {
        var builder = GGUFBuilder()
        builder.metadata.append(("general.architecture", .string("llama")))
        #expect(failure(builder.bytes())?.0 == .duplicateKey)
    }

    @Test func unknownTensorType() {
        var builder = GGUFBuilder()
        builder.tensors[0].type = 77
        let result = failure(builder.bytes())
        #expect(result?.0 == .unknownTensorType)
        #expect(result?.1.contains("77") == true)
        builder.tensors[0].type = 4  // Q4_2, removed from ggml
        #expect(failure(builder.bytes())?.0 == .unknownTensorType)
    }

    @Test func typeID39IsTL2OnlyWhenTheFileSaysBitnetCpp() throws {
        // MXFP4-sized data in an upstream architecture: MXFP4.
        var builder = GGUFBuilder()
        builder.metadata = [("general.architecture", .string("gpt-oss"))]
        builder.tensors = [.init(name: "w", dims: [64, 2], type: 39, offset: 0)]  // 4 blocks × 17 bytes
        builder.dataBytes = 68
        let mxfp4 = try GGUFFile(path: scratch.file("mxfp4.gguf", builder.bytes()))
        #expect(mxfp4.tensors[0].type == .mxfp4 && mxfp4.dialect == .ggml)
        // A bitnet.cpp architecture: TL2.
        builder.metadata = [("general.architecture", .string("bitnet-b1.58"))]
        let tl2 = try GGUFFile(path: scratch.file("tl2.gguf", builder.bytes()))
        #expect(tl2.tensors[0].type == .tl2 && tl2.dialect == .bitnetCpp)
        // Neither the architecture nor the size tells: say so.
        builder.metadata = [("general.architecture", .string("llama"))]
        builder.dataBytes = 200
        let result = failure(builder.bytes())
        #expect(result?.0 == .ambiguousTensorType)
        #expect(result?.1.contains("MXFP4") == true && result?.1.contains("TL2") == true)
    }

    @Test func typeID36IsI2S() throws {
        var builder = GGUFBuilder()
        builder.tensors = [.init(name: "w", dims: [128, 2], type: 36, offset: 0)]
        builder.dataBytes = 96
        let file = try GGUFFile(path: scratch.file("i2s.gguf", builder.bytes()))
        #expect(file.tensors[0].type == .i2_s && file.tensors[0].byteCount == 96)
        #expect(file.dialect == .bitnetCpp)
    }

    @Test func rowLengthNotAMultipleOfTheBlock() {
        var builder = GGUFBuilder()
        builder.tensors[0] = .init(name: "q", dims: [100, 2], type: 35, offset: 0)  // TQ2_0 needs 256
        let result = failure(builder.bytes())
        #expect(result?.0 == .invalidShape)
        #expect(result?.1.contains("256") == true)
    }

    @Test func invalidAlignment() {
        var builder = GGUFBuilder()
        builder.metadata.append((GGUF.alignmentKey, .uint32(48)))
        #expect(failure(builder.bytes())?.0 == .invalidAlignment)
        builder.metadata[1] = (GGUF.alignmentKey, .int32(32))  // must be UINT32
        #expect(failure(builder.bytes())?.0 == .invalidAlignment)
    }

    @Test func unknownValueTypeAndBadBool() {
        var builder = GGUFBuilder()
        var raw = HeaderEncoder()
        raw.string("test.weird")
        raw.integer(UInt32(13))
        builder.rawMetadata = raw.bytes
        #expect(failure(builder.bytes())?.0 == .invalidValueType)
        raw = HeaderEncoder()
        raw.string("test.bool")
        raw.integer(GGUFValueType.bool.rawValue)
        raw.integer(UInt8(2))
        builder.rawMetadata = raw.bytes
        #expect(failure(builder.bytes())?.0 == .invalidValueType)
    }

    @Test func invalidUTF8() {
        var builder = GGUFBuilder()
        var raw = HeaderEncoder()
        raw.integer(UInt64(2))
        raw.bytes += [0xC3, 0x28]
        raw.integer(GGUFValueType.uint8.rawValue)
        raw.integer(UInt8(1))
        builder.rawMetadata = raw.bytes
        #expect(failure(builder.bytes())?.0 == .invalidUTF8)
    }

    @Test func arraysNestedTooDeep() {
        var builder = GGUFBuilder()
        var raw = HeaderEncoder()
        raw.string("test.deep")
        raw.integer(GGUFValueType.array.rawValue)
        for _ in 0..<20 {
            raw.integer(GGUFValueType.array.rawValue)
            raw.integer(UInt64(1))
        }
        raw.bytes += [UInt8](repeating: 0, count: 64)
        builder.rawMetadata = raw.bytes
        #expect(failure(builder.bytes())?.0 == .nestingTooDeep)
    }

    @Test func missingFileAndDirectory() {
        #expect(throws: FormatError.self) { try GGUFFile(path: scratch.path + "/absent.gguf") }
        let error = #expect(throws: FormatError.self) { try GGUFFile(path: scratch.path) }
        #expect(error?.code == .cannotOpen)
    }

    @Test func aDataSectionPastTheEndIsRefused() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Fixtures.directory).deletingLastPathComponent().appendingPathComponent("Fuzz/regressions").appendingPathComponent("gguf/data-section-past-end"))
        let error = #expect(throws: FormatError.self) { try GGUFFile(bytes: Array(bytes), path: "x.gguf") }
        #expect(error?.code == .dataOutOfBounds)
        #expect(error?.message.contains("past the end") == true)
    }

    @Test func jsonObjectsWithARepeatedMemberAreRefused() {
        #expect(throws: FormatError.self) { try JSONValue.parse(Data(#"{"a": 1, "b": {"c": 2, "c": 3}}"#.utf8)) }
        #expect(throws: FormatError.self) { try HuggingFaceConfiguration.decode(Data(#"{"model_type": "bitnet", "hidden_size": 64, "hidden_size": 4096}"#.utf8)) }
    }
}
