import BitNetFormats
import BitNetInference
@testable import BitNetServer
import Foundation
import Logging
import TestSupport

/// A server on a loopback port the system chooses, run in this process until ``stop()``.
final class TestServer: Sendable {
    static let modelPath = Fixtures.path("models/bitnet-chat-tiny-tq2_0.gguf")

    let server: BitNetHTTPServer
    let client: HTTPTestClient
    private let task: Task<Void, any Error>

    private init(server: BitNetHTTPServer, client: HTTPTestClient, task: Task<Void, any Error>) {
        self.server = server
        self.client = client
        self.task = task
    }

    static func start(_ configure: (inout ServerConfiguration) -> Void = { _ in }) async throws -> TestServer {
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.scheduler.contextLength = 256
        configure(&configuration)
        var logger = Logger(label: "bitnet-serve-test")
        logger.logLevel = .warning
        let server = BitNetHTTPServer(configuration: configuration, logger: logger) {
            try BitNetModel(path: modelPath, backend: .cpu, threads: 1)
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let task = Task {
            defer { continuation.finish() }  // a server that fails before it listens ends the wait below
            try await server.run(signals: []) { continuation.yield($0) }
        }
        guard let port = await ports.first(where: { _ in true }) else { throw HTTPTestClient.Failure(description: "the server did not start") }
        let running = TestServer(server: server, client: HTTPTestClient(port: port), task: task)
        for _ in 0..<500 {
            if try await running.client.send("GET", "/health").status == 200 { return running }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HTTPTestClient.Failure(description: "the model did not load")
    }

    /// Shuts down gracefully and waits for the server to return.
    func stop() async throws {
        await server.shutdown()
        try await task.value
    }

    /// A value of `/metrics` (the first sample of that name).
    func metric(_ name: String) async throws -> Double? {
        let text = try await client.send("GET", "/metrics").text
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") || line.hasPrefix(name + "{") {
            return Double(line.split(separator: " ").last!)
        }
        return nil
    }

    /// Waits until `/metrics` shows `value` for `name`, for up to `seconds`.
    func waitForMetric(_ name: String, _ value: Double, seconds: Double = 10) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if try await metric(name) == value { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return false
    }
}

extension JSONValue {
    /// `self[a][b]…`, array indices given as Int.
    func at(_ path: Any...) -> JSONValue? {
        var value: JSONValue? = self
        for step in path {
            if let key = step as? String { value = value?[key] } else if let index = step as? Int, let array = value?.arrayValue, index < array.count { value = array[index] } else { return nil }
        }
        return value
    }
}
