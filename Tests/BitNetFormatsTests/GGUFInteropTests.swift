@testable import BitNetFormats
import BitNetQuantization
import Foundation
import TestSupport
import Testing

/// GGUF reading and writing, proven against gguf-py in both directions.
@Suite struct GGUFInteropTests {
    /// Compares our view of a GGUF file with gguf-py's (recorded by generate.py).
    func expectMatchesGGUFPy(_ file: GGUFFile, expectedPath: String) throws {
        let expected = try Fixtures.json(expectedPath)
        #expect(Int(file.version) == expected["version"]?.intValue)
        #expect(file.alignment == expected["alignment"]?.intValue)
        #expect(file.dataOffset == expected["data_offset"]?.intValue)
        let entries = expected["metadata"]!.arrayValue!
        #expect(file.metadata.count == entries.count)
        for (entry, ours) in zip(entries, file.metadata.entries) {
            let key = entry["key"]!.stringValue!
            #expect(ours.key == key)
            let typeName = ours.value.arrayValue.map { "ARRAY[\($0.elementType.name)]" } ?? ours.value.type.name
            #expect(typeName == entry["type"]!.stringValue!, "type of \(key)")
            let value = JSONValue(ours.value)
            let reference = entry["value"]!
            if case .double(let number) = reference, case .int(let integer) = value {
                #expect(Double(integer) == number, "value of \(key)")  // integers beyond Int64 parse as Double
            } else if case .int(let integer) = reference, case .double(let number) = value {
                #expect(Double(integer) == number, "value of \(key)")
            } else {
                #expect(value == reference, "value of \(key)")
            }
        }
        let tensors = expected["tensors"]!.arrayValue!
        #expect(file.tensors.count == tensors.count)
        for (tensor, reference) in zip(file.tensors, tensors) {
            #expect(tensor.name == reference["name"]!.stringValue!)
            #expect(tensor.type.name == reference["type"]!.stringValue!)
            #expect(tensor.shape == reference["shape"]!.arrayValue!.map { $0.intValue! })
            #expect(tensor.byteCount == reference["bytes"]!.intValue!)
            #expect(file.dataOffset + tensor.offset == reference["offset"]!.intValue!)
            #expect(file.withTensorData(tensor) { fnv1a64($0) } == reference["fnv1a64"]!.stringValue!, "bytes of \(tensor.name)")
        }
    }

    @Test func readsWhatGGUFPyWrites() throws {
        let file = try GGUFFile(path: Fixtures.path("gguf/gguf-py-written.gguf"))
        try expectMatchesGGUFPy(file, expectedPath: "gguf/gguf-py-written.expected.json")
        #expect(file.dialect == .ggml)
        #expect(file.metadata.string("general.architecture") == "bitnet")
        #expect(file.metadata["test.array.nested"] == .array(.array([.int32([1, 2]), .int32([3])])))
        // Tensor data decodes with ggml's formulas.
        let tq2 = file.tensor(named: "blk.0.attn_q.weight")!
        let values = try file.withTensorData(tq2) { try tq2.type.floats(from: $0, elementCount: tq2.elementCount) }
        #expect(Set(values.map { $0.magnitude }).count == 2)  // 0 and d
    }

    /// A file exercising every metadata type and every writable tensor type, deterministic.
    static func sampleContent() throws -> (GGUFMetadata, [(name: String, type: GGMLType, shape: [Int])], [[UInt8]]) {
        var metadata = GGUFMetadata()
        metadata["general.architecture"] = .string("bitnet")
        metadata["general.name"] = .string("swift-bitnet writer sample")
        metadata["general.alignment"] = .uint32(64)
        metadata["test.u8"] = .uint8(7)
        metadata["test.i8"] = .int8(-7)
        metadata["test.u16"] = .uint16(65535)
        metadata["test.i16"] = .int16(-32768)
        metadata["test.u32"] = .uint32(4_294_967_295)
        metadata["test.i32"] = .int32(-123_456)
        metadata["test.u64"] = .uint64(1 << 40)
        metadata["test.i64"] = .int64(-(1 << 40))
        metadata["test.f32"] = .float32(-0.25)
        metadata["test.f64"] = .float64(2.718281828459045)
        metadata["test.bool"] = .bool(false)
        metadata["test.string"] = .string("ternary ±1 · 0 — ✓")
        metadata["test.array.strings"] = .array(.string(["<s>", "</s>", "ĠHello", ""]))
        metadata["test.array.f32"] = .array(.float32([0.5, -2, 1e-5]))
        metadata["test.array.i32"] = .array(.int32([-1, 0, 1]))
        metadata["test.array.u8"] = .array(.uint8([1, 2, 3]))
        metadata["test.array.bool"] = .array(.bool([true, false]))
        metadata["test.array.empty"] = .array(.string([]))
        var generator = SeededGenerator(seed: 42)
        let codes = (0..<2 * 256).map { _ in Int8(generator.next() % 3) - 1 }
        let ternary = try TernaryTensor(rows: 2, columns: 256, codes: codes, scale: 0.03125)
        let floats = (0..<2 * 64).map { _ in Float(Int(generator.next() % 2001) - 1000) / 1000 }
        let tensors: [(name: String, type: GGMLType, shape: [Int])] = [
            ("token_embd.weight", .f16, [64, 2]),
            ("output_norm.weight", .f32, [64, 2]),
            ("blk.0.attn_norm.weight", .bf16, [64, 2]),
            ("blk.0.ffn_up.weight", .q8_0, [64, 2]),
            ("blk.0.attn_q.weight", .tq2_0, [256, 2]),
            ("blk.0.attn_k.weight", .tq1_0, [256, 2]),
        ]
        let data: [[UInt8]] = [
            floats.flatMap { withUnsafeBytes(of: Float16($0).bitPattern.littleEndian, Array.init) },
            floats.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) },
            floats.flatMap { withUnsafeBytes(of: BFloat16($0).bitPattern.littleEndian, Array.init) },
            try Q8_0.quantize(floats, rowLength: 64),
            try TQ2_0.pack(ternary),
            try TQ1_0.pack(ternary),
        ]
        return (metadata, tensors, data)
    }

    static func writeSample(to path: String) throws {
        let (metadata, tensors, data) = try sampleContent()
        let writer = try GGUFWriter(path: path, metadata: metadata, tensors: tensors)
        for bytes in data { try writer.write(bytes) }
        try writer.finish()
    }

    @Test func gguFPyReadsWhatWeWrite() throws {
        // gguf-py read the committed file (generate.py); we must still write exactly those bytes.
        let committed = Fixtures.path("gguf/swift-written.gguf")
        if ProcessInfo.processInfo.environment["BITNET_WRITE_FIXTURES"] == "1" {
            try Self.writeSample(to: committed)
        }
        let scratch = TemporaryDirectory()
        let path = scratch.path + "/sample.gguf"
        try Self.writeSample(to: path)
        #expect(FileManager.default.contents(atPath: path) == FileManager.default.contents(atPath: committed))
        try expectMatchesGGUFPy(try GGUFFile(path: committed), expectedPath: "gguf/swift-written.expected.json")
    }

    @Test func writeThenReadRoundTrips() throws {
        let scratch = TemporaryDirectory()
        let path = scratch.path + "/round.gguf"
        let (metadata, tensors, data) = try Self.sampleContent()
        try Self.writeSample(to: path)
        let file = try GGUFFile(path: path)
        #expect(file.metadata == metadata)
        #expect(file.alignment == 64)
        #expect(file.dataOffset % 64 == 0)
        for (index, tensor) in file.tensors.enumerated() {
            #expect(tensor.name == tensors[index].name && tensor.type == tensors[index].type && tensor.shape == tensors[index].shape)
            #expect(tensor.offset % 64 == 0)
            #expect(file.withTensorData(tensor) { Array($0) } == data[index])
        }
        // No temporary file is left beside the output.
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path) == ["round.gguf"])
    }

    @Test func writerStreamsPiecesAndChecksCompleteness() throws {
        let scratch = TemporaryDirectory()
        let path = scratch.path + "/stream.gguf"
        let writer = try GGUFWriter(path: path, metadata: GGUFMetadata(), tensors: [("a", .f32, [3]), ("b", .i8, [5])])
        try writer.write([1, 2, 3, 4, 5, 6])
        try writer.write([7, 8, 9, 10, 11, 12, 13])  // ends a, starts b
        #expect(throws: FormatError.self) { try writer.finish() }  // b is 4 bytes short
        try writer.write([14, 15, 16, 17])
        #expect(throws: FormatError.self) { try writer.write([0]) }  // nothing left to write
        try writer.finish()
        let file = try GGUFFile(path: path)
        #expect(try file.withTensorData(named: "b") { Array($0) } == [13, 14, 15, 16, 17])
    }

    @Test func abandonedWriterLeavesNothing() throws {
        let scratch = TemporaryDirectory()
        do {
            let writer = try GGUFWriter(path: scratch.path + "/never.gguf", metadata: GGUFMetadata(), tensors: [("a", .f32, [4])])
            try writer.write([1, 2, 3])
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).isEmpty)
        #expect(throws: FormatError.self) {
            _ = try GGUFWriter(path: scratch.path + "/bad.gguf", metadata: GGUFMetadata(), tensors: [("t", .tq2_0, [100, 2])])
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).isEmpty)
    }

    @Test func bitnetCppTypesUseTheForkNumbering() throws {
        let scratch = TemporaryDirectory()
        let path = scratch.path + "/i2s.gguf"
        var metadata = GGUFMetadata()
        metadata["general.architecture"] = .string("bitnet-b1.58")
        let tensor = try TernaryTensor(rows: 2, columns: 128, codes: [Int8](repeating: 1, count: 256), scale: 0.5)
        let writer = try GGUFWriter(path: path, metadata: metadata, tensors: [("blk.0.attn_q.weight", .i2_s, [128, 2])])
        try writer.write(try I2S.pack(tensor))
        try writer.finish()
        let file = try GGUFFile(path: path)
        #expect(file.dialect == .bitnetCpp)
        let info = file.tensors[0]
        #expect(info.type == .i2_s && info.byteCount == 256 / 4 + 32)
        // In the tensor info, after the name: n_dims (u32), two dims (u64), then the type id, 36.
        let raw = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let name = Array("blk.0.attn_q.weight".utf8)
        let nameEnd = (0...raw.count - name.count).first { Array(raw[$0..<$0 + name.count]) == name }! + name.count
        #expect(raw[nameEnd + 4 + 16] == 36)
        #expect(try file.withTensorData(info) { try I2S.unpackTensor($0, rows: 2, columns: 128) } == tensor)
    }
}
