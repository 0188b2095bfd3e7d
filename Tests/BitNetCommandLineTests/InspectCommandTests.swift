import BitNetFormats
import Foundation
import TestSupport
import Testing

/// `bitnet inspect`, run as a user would.
@Suite struct InspectCommandTests {
    func run(_ arguments: [String]) throws -> BitNetExecutable.Result {
        try BitNetExecutable.run(arguments)
    }

    @Test func inspectJSON() throws {
        #expect(FileManager.default.isExecutableFile(atPath: BitNetExecutable.executable), "build the bitnet product first")
        let result = try run(["inspect", Fixtures.path("gguf/gguf-py-written.gguf"), "--json"])
        #expect(result.status == 0)
        let json = try JSONValue.parse(Data(result.stdout.utf8))
        #expect(json["format"]?.stringValue == "gguf")
        #expect(json["tensors"]?.arrayValue?.count == 6)
    }

    @Test func inspectErrorIsOneLineAndStatus1() throws {
        let result = try run(["inspect", "/nonexistent/model.gguf"])
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("/nonexistent/model.gguf") == true)
    }
}
