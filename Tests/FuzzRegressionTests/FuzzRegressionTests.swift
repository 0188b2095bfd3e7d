import Foundation
import BitNetModels
import FuzzTargets
import TestSupport
import Testing

/// Every input that once crashed, hung or over-allocated a parser (`Tests/Fuzz/regressions/TARGET/`), run
/// through the same walk as the fuzzer: each must now end in an error or a result, never a trap.
@Suite struct FuzzRegressionTests {
    static let root = URL(fileURLWithPath: Fixtures.directory).deletingLastPathComponent().appendingPathComponent("Fuzz/regressions").path

    static var cases: [String] {
        FuzzTarget.allCases.flatMap { target in
            ((try? FileManager.default.contentsOfDirectory(atPath: root + "/" + target.rawValue)) ?? []).sorted().map { target.rawValue + "/" + $0 }
        }
    }

    @Test(arguments: cases)
    func reproducerNoLongerCrashes(_ path: String) throws {
        let target = try #require(FuzzTarget(rawValue: String(path.split(separator: "/")[0])))
        let bytes = try #require(FileManager.default.contents(atPath: Self.root + "/" + path))
        target.run(Array(bytes))
    }

    /// The tiny model seeds are what `FuzzSeeds` writes, they load, and they run a forward step.
    @Test func modelSeedsAreCurrentAndLoad() throws {
        let directory = URL(fileURLWithPath: Self.root).deletingLastPathComponent().appendingPathComponent("seeds/model").path
        let write = ProcessInfo.processInfo.environment["BITNET_WRITE_FIXTURES"] == "1"
        if write { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        for (name, bytes) in try FuzzSeeds.models() {
            let path = directory + "/" + name
            if write { FileManager.default.createFile(atPath: path, contents: Data(bytes)) }
            #expect(FileManager.default.contents(atPath: path) == Data(bytes), "\(name) differs from what FuzzSeeds writes (BITNET_WRITE_FIXTURES=1 to update)")
            #expect(FuzzTarget.loadsAndRuns(bytes), "\(name) does not load and run")
        }
    }

    /// The small tokenizer seeds load (so the fuzzer starts from valid inputs), and the GGUF tokenizer seeds
    /// are what `FuzzSeeds` makes of them.
    @Test func tokenizerSeedsLoadAndAreCurrent() throws {
        let seeds = URL(fileURLWithPath: Self.root).deletingLastPathComponent().appendingPathComponent("seeds").path
        let write = ProcessInfo.processInfo.environment["BITNET_WRITE_FIXTURES"] == "1"
        if write { try FileManager.default.createDirectory(atPath: seeds + "/tokenizer-gguf", withIntermediateDirectories: true) }
        let names = try FileManager.default.contentsOfDirectory(atPath: seeds + "/tokenizer-json").sorted()
        #expect(names.count == 2)
        for name in names {
            let data = try #require(FileManager.default.contents(atPath: seeds + "/tokenizer-json/" + name))
            let tokenizer = try BPETokenizer.load(tokenizerJSON: data, path: name)
            #expect(tokenizer.decode(tokenizer.encode("hello world")) == "hello world", "\(name)")
            let gguf = try FuzzSeeds.tokenizerGGUF(data)
            let path = seeds + "/tokenizer-gguf/" + name.replacingOccurrences(of: ".json", with: ".gguf")
            if write { FileManager.default.createFile(atPath: path, contents: Data(gguf)) }
            #expect(FileManager.default.contents(atPath: path) == Data(gguf), "\(path) differs from what FuzzSeeds writes")
        }
    }
}
