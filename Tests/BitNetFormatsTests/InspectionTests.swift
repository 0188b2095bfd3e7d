import BitNetFormats
import Foundation
import TestSupport
import Testing

@Suite struct InspectionTests {
    @Test func ggufReportUsesGGMLNamesAndGGUFOrder() throws {
        let inspection = try ModelInspection(path: Fixtures.path("gguf/gguf-py-written.gguf"))
        #expect(inspection.format == .gguf)
        let json = inspection.json
        #expect(json["format"]?.stringValue == "gguf")
        #expect(json["metadata"]?["general.architecture"]?.stringValue == "bitnet")
        #expect(json["metadata"]?["test.array.strings"]?.arrayValue?.count == 4)
        let tensors = try #require(json["tensors"]?.arrayValue)
        let q = try #require(tensors.first { $0["name"]?.stringValue == "blk.0.attn_q.weight" })
        #expect(q["type"]?.stringValue == "tq2_0")
        #expect(q["shape"] == .array([.int(256), .int(2)]))  // ne0 first
        #expect(q["bytes"]?.intValue == 132)
        // The text report lists every tensor.
        let text = inspection.text()
        for tensor in inspection.tensors { #expect(text.contains(tensor.name)) }
        // The JSON text parses back to the same value.
        #expect(try JSONValue.parse(Data(json.serialized(pretty: true).utf8)) == json)
    }

    @Test func huggingFaceDirectoryReport() throws {
        let inspection = try ModelInspection(path: Fixtures.path("safetensors/tiny-bitnet-sharded"))
        #expect(inspection.format == .huggingFaceDirectory)
        #expect(inspection.json["metadata"]?["model_type"]?.stringValue == "bitnet")
        let embed = try #require(inspection.tensors.first { $0.name == "model.embed_tokens.weight" })
        #expect(embed.type == "BF16" && embed.shape == [96, 64] && embed.bytes == 96 * 64 * 2)
    }

    @Test func safetensorsReport() throws {
        let inspection = try ModelInspection(path: Fixtures.path("safetensors/mixed.safetensors"))
        #expect(inspection.format == .safetensors)
        #expect(inspection.json["metadata"]?["note"]?.stringValue == "mixed dtypes")
    }

    @Test func anythingElseIsAClearError() throws {
        let scratch = TemporaryDirectory()
        let path = scratch.file("notes.txt", Array("hello, not a model".utf8))
        let error = #expect(throws: FormatError.self) { try ModelInspection(path: path) }
        #expect(error?.description.hasPrefix(path + ": neither a GGUF file") == true)
        #expect(throws: FormatError.self) { try ModelInspection(path: scratch.path + "/missing.gguf") }
    }

    @Test func jsonParserHandlesEscapesAndRejectsGarbage() throws {
        let value = try JSONValue.parse(Data(#"{"a":"\u00e9\ud83e\udd99\n","b":[1,-2.5e3,true,null]}"#.utf8))
        #expect(value["a"]?.stringValue == "é🦙\n")
        #expect(value["b"] == .array([.int(1), .double(-2500), .bool(true), .null]))
        for bad in ["{", "[1,]", "\"\\x\"", "01x", "{\"a\":1} 2", String(repeating: "[", count: 500)] {
            #expect(throws: FormatError.self, "\(bad)") { try JSONValue.parse(Data(bad.utf8)) }
        }
    }
}
