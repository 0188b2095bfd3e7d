import Foundation
import TestSupport
import Testing

/// `bitnet serve` as a user starts it: driven by the official `openai` Python client, stopped by SIGTERM.
@Suite struct ServeCommandTests {
    static let model = Fixtures.path("models/bitnet-chat-tiny-tq2_0.gguf")
    /// The venv `scripts/bootstrap` makes.
    static let python = Fixtures.repositoryRoot.appendingPathComponent(".venv-openai/bin/python").path
    static let check = Fixtures.repositoryRoot.appendingPathComponent("Tests/Server/openai_client_check.py").path

    /// A `bitnet serve` process and the port it listens on.
    final class ServerProcess {
        let process = Process()
        private let errors = Pipe()
        private(set) var stderr = Data()
        let port: Int

        init(_ arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: BitNetExecutable.executable)
            process.arguments = ["serve", "--port", "0"] + arguments
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            // The port chosen is announced on stderr once the socket is bound.
            var port: Int?
            while port == nil {
                let data = errors.fileHandleForReading.availableData
                guard !data.isEmpty else { break }
                stderr += data
                let text = String(decoding: stderr, as: UTF8.self)
                if let range = text.range(of: #"listening on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                    port = Int(text[range].split(separator: ":").last!)
                }
            }
            guard let port else {
                process.terminate()
                throw Failure(message: "bitnet serve did not start: \(String(decoding: stderr, as: UTF8.self))")
            }
            self.port = port
        }

        /// Sends SIGTERM and waits: the exit status and everything it wrote on stderr.
        func terminate() -> (status: Int32, stderr: String) {
            process.terminate()
            stderr += errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: stderr, as: UTF8.self))
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    @Test func theOpenAIClientGetsWhatItExpects() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.python), "no \(Self.python): run scripts/bootstrap, which makes it")
        let server = try ServerProcess(["-m", Self.model, "--threads", "1", "--ctx", "256", "--parallel", "2"])
        let client = Process()
        client.executableURL = URL(fileURLWithPath: Self.python)
        client.arguments = [Self.check, "--base-url", "http://127.0.0.1:\(server.port)/v1"]
        let output = Pipe()
        client.standardOutput = output
        client.standardError = output
        try client.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        client.waitUntilExit()
        let (status, stderr) = server.terminate()
        #expect(client.terminationStatus == 0, "\(text)")
        #expect(text.contains("all checks passed"), "\(text)")
        #expect(status == 0, "SIGTERM ends the server cleanly: \(stderr)")
        #expect(stderr.contains("bitnet serve: stopped"), "\(stderr)")
    }

    @Test func badOptionsAndModelsAreRefused() throws {
        let port = try BitNetExecutable.run(["serve", "--port", "70000"])
        #expect(port.status != 0 && port.stderr.contains("--port"), "\(port.stderr)")
        let batch = try BitNetExecutable.run(["serve", "--parallel", "8", "--batch-size", "4"])
        #expect(batch.status != 0 && batch.stderr.contains("--batch-size"), "\(batch.stderr)")
        let missing = try BitNetExecutable.run(["serve", "-m", "/nonexistent/model.gguf", "--port", "0"])
        #expect(missing.status == 1 && missing.stderr.contains("/nonexistent/model.gguf"), "\(missing.stderr)")
    }
}
