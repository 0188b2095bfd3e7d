// Helpers shared by the test targets: fixture access, seeded randomness, scratch directories.
import BitNetFormats
import Foundation

/// The committed outputs of `Tests/Fixtures/generate.py`.
public enum Fixtures {
    public static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path

    public static func path(_ relative: String) -> String { directory + "/" + relative }

    /// The root of the repository (scripts, the venv `scripts/bootstrap` makes).
    public static let repositoryRoot = URL(fileURLWithPath: directory).deletingLastPathComponent().deletingLastPathComponent()

    public static func json(_ relative: String) throws -> JSONValue {
        try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: path(relative))))
    }
}

/// Typed access to the tensors of a fixture safetensors file.
public struct FixtureTensors {
    public let file: SafetensorsFile

    public init(_ relative: String) throws {
        file = try SafetensorsFile(path: Fixtures.path(relative))
    }

    public func info(_ name: String) throws -> SafetensorsTensorInfo {
        guard let info = file.tensor(named: name) else { throw FormatError(.missingTensor, "fixture has no tensor '\(name)'") }
        return info
    }

    public func floats(_ name: String) throws -> [Float] {
        let info = try info(name)
        return try file.withTensorData(info) { try info.dtype.floats(from: $0) }
    }

    public func bytes(_ name: String) throws -> [UInt8] {
        try file.withTensorData(try info(name)) { Array($0) }
    }

    public func int8s(_ name: String) throws -> [Int8] {
        try bytes(name).map { Int8(bitPattern: $0) }
    }

    /// The raw 16-bit elements of an F16 or BF16 tensor.
    public func halves(_ name: String) throws -> [UInt16] {
        let raw = try bytes(name)
        return stride(from: 0, to: raw.count, by: 2).map { UInt16(raw[$0]) | UInt16(raw[$0 + 1]) << 8 }
    }
}

/// A seeded generator (SplitMix64) so random tests are reproducible.
public struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Array where Element == Float {
    /// ‖self − other‖ / ‖other‖.
    public func relativeError(to other: [Float]) -> Float {
        var difference: Float = 0
        var norm: Float = 0
        for (a, b) in zip(self, other) {
            difference += (a - b) * (a - b)
            norm += b * b
        }
        return norm == 0 ? difference.squareRoot() : (difference / norm).squareRoot()
    }
}

/// A scratch directory removed when the value is released.
public final class TemporaryDirectory {
    public let path: String

    public init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("bitnet-tests-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func file(_ name: String, _ bytes: [UInt8]) -> String {
        let file = path + "/" + name
        FileManager.default.createFile(atPath: file, contents: Data(bytes))
        return file
    }
}

/// FNV-1a (64-bit), matching `fnv1a64` in generate.py.
public func fnv1a64(_ bytes: UnsafeRawBufferPointer) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    let hex = String(hash, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}

/// Runs the built `bitnet` executable (beside the test bundle) as a user would.
public enum BitNetExecutable {
    public static let executable = Bundle.main.bundleURL.appendingPathComponent("bitnet").path

    public struct Result {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs `bitnet arguments…`, feeding `input` on stdin, and waits for it.
    public static func run(_ arguments: [String], input: String? = nil, environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe(), inp = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = inp
        try process.run()
        if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
        try inp.fileHandleForWriting.close()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self))
    }
}

/// Turns the Khronos validation layer on for every Vulkan backend this test process opens; evaluate it before
/// the first one (the backends' `validationMessages` then count what it reports).
public enum VulkanValidation {
    public static let on: Void = { setenv("BITNET_VULKAN_VALIDATION", "1", 1) }()
}
