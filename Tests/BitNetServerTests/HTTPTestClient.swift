import BitNetFormats
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A small HTTP/1.1 client over a plain socket, so the tests see exactly what goes over the wire — and
/// can send what no well-behaved client sends, or hang up half-way. One request per connection
/// (`Connection: close`); blocking I/O runs on a thread of its own, never on Swift's cooperative pool.
struct HTTPTestClient {
    struct Response {
        var status: Int
        /// Lowercased names.
        var headers: [String: String]
        var body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: JSONValue? { try? JSONValue.parse(body) }
        /// The `data:` payloads of a server-sent event stream, in order.
        var events: [String] {
            text.components(separatedBy: "\n\n").compactMap { event in
                event.split(separator: "\n").first { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
            }
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let port: Int

    /// Sends a request and reads the whole response.
    func send(_ method: String, _ path: String, body: String? = nil, headers: [String: String] = [:]) async throws -> Response {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        var allHeaders = headers
        if let body {
            allHeaders["Content-Type"] = allHeaders["Content-Type"] ?? "application/json"
            allHeaders["Content-Length"] = String(body.utf8.count)
        }
        for (name, value) in allHeaders.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
        return try await sendRaw(Data((head + "\r\n" + (body ?? "")).utf8))
    }

    func post(_ path: String, _ json: String, headers: [String: String] = [:]) async throws -> Response {
        try await send("POST", path, body: json, headers: headers)
    }

    /// Writes `bytes` as they are and parses what comes back before the server closes the connection.
    func sendRaw(_ bytes: Data) async throws -> Response {
        let port = port
        return try await Self.onThread {
            let socket = try Self.connect(port: port)
            defer { close(socket) }
            try Self.write(socket, bytes)
            return try Self.parse(Self.readAll(socket))
        }
    }

    /// A connection kept open mid-answer.
    final class OpenConnection: Sendable {
        let socket: Int32
        /// What arrived before the marker (and perhaps a little more).
        let received: Data
        init(socket: Int32, received: Data) {
            self.socket = socket
            self.received = received
        }
        /// Hangs up without reading the rest: a client that goes away.
        func hangUp() { close(socket) }
    }

    /// Sends `bytes` and reads until `marker` has arrived (nothing, when it is empty); the connection stays open until ``OpenConnection/hangUp()``.
    func open(_ bytes: Data, until marker: String) async throws -> OpenConnection {
        let port = port
        return try await Self.onThread {
            let socket = try Self.connect(port: port)
            do {
                try Self.write(socket, bytes)
                var received = Data()
                var buffer = [UInt8](repeating: 0, count: 4096)
                while !marker.isEmpty, received.range(of: Data(marker.utf8)) == nil {
                    let count = read(socket, &buffer, buffer.count)
                    guard count > 0 else { throw Failure(description: "the connection ended before '\(marker)': \(String(decoding: received, as: UTF8.self))") }
                    received.append(contentsOf: buffer[0..<count])
                }
                return OpenConnection(socket: socket, received: received)
            } catch {
                close(socket)
                throw error
            }
        }
    }

    /// A raw request with a JSON body.
    static func request(_ path: String, method: String = "POST", body: String, extraHeaders: String = "") -> Data {
        Data("\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\(extraHeaders)\r\n\(body)".utf8)
    }

    private static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            // A thread of its own: GCD's pool grows slowly when its threads block in reads.
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    private static func connect(port: Int) throws -> Int32 {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw Failure(description: "socket() failed") }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            close(socket)
            throw Failure(description: "cannot connect to port \(port): errno \(errno)")
        }
        return socket
    }

    private static func write(_ socket: Int32, _ bytes: Data) throws {
        try bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let count = Glibc.send(socket, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                // The server may answer (413) and close before reading everything: that is not our failure.
                guard count > 0 else { return }
                offset += count
            }
        }
    }

    private static func readAll(_ socket: Int32) throws -> Data {
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(socket, &buffer, buffer.count)
            if count == 0 || (count < 0 && errno == ECONNRESET) { return received }
            guard count > 0 else { throw Failure(description: "read failed: errno \(errno) after \(received.count) bytes") }
            received.append(contentsOf: buffer[0..<count])
        }
    }

    static func parse(_ data: Data) throws -> Response {
        guard let end = data.range(of: Data("\r\n\r\n".utf8)) else {
            throw Failure(description: "no complete response head in \(data.count) bytes: \(String(decoding: data.prefix(200), as: UTF8.self))")
        }
        let lines = String(decoding: data[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure(description: "bad status line '\(lines[0])'") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Data(data[end.upperBound...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" { body = try dechunk(body) }
        return Response(status: status, headers: headers, body: body)
    }

    private static func dechunk(_ data: Data) throws -> Data {
        var output = Data()
        var index = data.startIndex
        while true {
            guard let lineEnd = data[index...].range(of: Data("\r\n".utf8)),
                  let size = Int(String(decoding: data[index..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? "", radix: 16)
            else { throw Failure(description: "bad chunked encoding") }
            if size == 0 { return output }
            let start = lineEnd.upperBound
            guard data.distance(from: start, to: data.endIndex) >= size + 2 else { throw Failure(description: "truncated chunk") }
            output.append(data[start..<data.index(start, offsetBy: size)])
            index = data.index(start, offsetBy: size + 2)
        }
    }
}
