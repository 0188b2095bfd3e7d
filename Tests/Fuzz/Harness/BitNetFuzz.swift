// The libFuzzer harness for swift-bitnet's parsers: `BITNET_FUZZ_TARGET=gguf bitnet-fuzz [libFuzzer options]
// [corpus…]` (scripts/fuzz builds it with -sanitize=fuzzer,address and runs it). The target comes from the
// environment so that libFuzzer's -fork children inherit it. Built without libFuzzer, it runs each file
// given as an argument through the target once (replaying a reproducer).
import CFuzzDriver
import Foundation
import FuzzTargets

nonisolated(unsafe) var selectedTarget: FuzzTarget?

@main
struct BitNetFuzz {
    static func main() {
        let name = ProcessInfo.processInfo.environment["BITNET_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(Data("set BITNET_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
            exit(2)
        }
        selectedTarget = target
        guard bitnet_fuzz_available() != 0 else {
            for path in CommandLine.arguments.dropFirst() {
                guard let data = FileManager.default.contents(atPath: path) else { continue }
                target.run(Array(data))
                print("\(path): ok")
            }
            exit(0)
        }
        exit(bitnet_fuzz_run(CommandLine.argc, CommandLine.unsafeArgv) { data, size in
            selectedTarget!.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
            return 0
        })
    }
}
