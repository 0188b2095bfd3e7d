import BitNetFormats
import Foundation
import TestSupport
import Testing

/// Damaged files, by the hundred: every one either opens or throws a ``FormatError``; none crashes.
@Suite struct MutationTests {
    func mutations(of path: String, count: Int, seed: UInt64) throws -> [[UInt8]] {
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { index in
            var bytes = original
            switch index % 3 {
            case 0:  // truncate anywhere
                bytes.removeLast(Int.random(in: 1...bytes.count, using: &generator))
            case 1:  // overwrite a few header bytes
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    bytes[Int.random(in: 0..<min(bytes.count, 1400), using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            default:  // plant a huge little-endian count somewhere in the header
                let position = Int.random(in: 0..<min(bytes.count - 8, 1400), using: &generator)
                withUnsafeBytes(of: UInt64.random(in: 1 << 40...UInt64.max, using: &generator).littleEndian) {
                    bytes.replaceSubrange(position..<position + 8, with: $0)
                }
            }
            return bytes
        }
    }

    @Test func damagedGGUFFilesThrowOrOpen() throws {
        let scratch = TemporaryDirectory()
        var opened = 0, rejected = 0
        for (index, bytes) in try mutations(of: Fixtures.path("gguf/gguf-py-written.gguf"), count: 600, seed: 11).enumerated() {
            let path = scratch.file("m\(index).gguf", bytes)
            do {
                let file = try GGUFFile(path: path)
                // Whatever opened must be readable end to end.
                for tensor in file.tensors { _ = file.withTensorData(tensor) { $0.reduce(0) { $0 &+ Int($1) } } }
                opened += 1
            } catch is FormatError {
                rejected += 1
            }
            try FileManager.default.removeItem(atPath: path)
        }
        #expect(opened + rejected == 600)
        #expect(rejected > 300)
    }

    @Test func damagedSafetensorsFilesThrowOrOpen() throws {
        let scratch = TemporaryDirectory()
        var rejected = 0
        for (index, bytes) in try mutations(of: Fixtures.path("safetensors/mixed.safetensors"), count: 300, seed: 12).enumerated() {
            let path = scratch.file("m\(index).safetensors", bytes)
            do {
                let file = try SafetensorsFile(path: path)
                for tensor in file.tensors { _ = file.withTensorData(tensor) { Array($0) } }
            } catch is FormatError {
                rejected += 1
            }
            try FileManager.default.removeItem(atPath: path)
        }
        #expect(rejected > 100)
    }
}
