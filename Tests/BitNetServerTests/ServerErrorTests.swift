import BitNetFormats
import BitNetInference
@testable import BitNetServer
import Foundation
import Testing

/// Bad requests get OpenAI-shaped errors with the right status; hostile ones never break the server.
@Suite(.serialized) struct ServerErrorTests {
    struct Case: Sendable {
        var body: String
        var status: Int
        var param: String?
        var code: String?
    }

    static let chatCases: [Case] = [
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}"#, status: 400, code: "invalid_json"),
        Case(body: #"[1, 2]"#, status: 400, code: "invalid_json"),
        Case(body: #"{"messages": "hello"}"#, status: 400, param: "messages"),
        Case(body: #"{"messages": []}"#, status: 400, param: "messages"),
        Case(body: #"{}"#, status: 400, param: "messages"),
        Case(body: #"{"messages": [{"role": 5, "content": "hi"}]}"#, status: 400, param: "messages[0].role"),
        Case(body: #"{"messages": [{"role": "tool", "content": "hi"}]}"#, status: 400, param: "messages[0].role"),
        Case(body: #"{"messages": [{"role": "user", "content": 7}]}"#, status: 400, param: "messages[0].content"),
        Case(body: #"{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#, status: 400, param: "messages[0].content[0]"),
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}"#, status: 400, param: "temperature"),
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}], "temperature": 3}"#, status: 400, param: "temperature"),
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}"#, status: 400, param: "max_tokens"),
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1.5}"#, status: 400, param: "max_tokens"),
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}"#, status: 400, param: "stream"),
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}], "stop": [1]}"#, status: 400, param: "stop"),
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}], "n": 2}"#, status: 400, param: "n"),
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 3}"#, status: 400, param: "top_logprobs"),
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}], "logprobs": true, "top_logprobs": 21}"#, status: 400, param: "top_logprobs"),
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": true}}"#, status: 400, param: "stream_options"),
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}"#, status: 400, param: "tools"),
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}], "seed": "x"}"#, status: 400, param: "seed"),
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}], "stop": "\#(String(repeating: "z", count: 257))"}"#, status: 400, param: "stop"),
        // Far longer than the context of 256: refused, never truncated.
        Case(body: #"{"messages": [{"role": "user", "content": "\#(String(repeating: "word ", count: 400))"}]}"#, status: 400, param: "messages", code: "context_length_exceeded"),
    ]

    static let completionCases: [Case] = [
        Case(body: #"{"prompt": 5}"#, status: 400, param: "prompt"),
        Case(body: #"{"prompt": ["a", "b"]}"#, status: 400, param: "prompt"),
        Case(body: #"{"prompt": [1, "x"]}"#, status: 400, param: "prompt"),
        Case(body: #"{"prompt": [1, 99999999]}"#, status: 400, param: "prompt"),
        Case(body: #"{"prompt": []}"#, status: 400, param: "prompt"),
        Case(body: #"{"prompt": "x", "logprobs": 6}"#, status: 400, param: "logprobs"),
        Case(body: #"{"prompt": "x", "echo": true}"#, status: 400, param: "echo"),
        Case(body: #"{"prompt": \#(Array(repeating: 5, count: 256))}"#, status: 400, param: "prompt", code: "context_length_exceeded"),
    ]

    @Test func badRequestsGetOpenAIErrors() async throws {
        let server = try await TestServer.start { $0.maximumBodyBytes = 8192 }
        for (path, cases) in [("/v1/chat/completions", Self.chatCases), ("/v1/completions", Self.completionCases)] {
            for item in cases {
                let response = try await server.client.post(path, item.body)
                let error = response.json?["error"]
                #expect(response.status == item.status, "\(path) \(item.body.prefix(120)): \(response.status) \(response.text)")
                #expect(error?["message"]?.stringValue?.isEmpty == false, "\(response.text)")
                #expect(error?["type"]?.stringValue == "invalid_request_error")
                if let param = item.param { #expect(error?["param"]?.stringValue == param, "\(item.body.prefix(120)): \(response.text)") }
                if let code = item.code { #expect(error?["code"]?.stringValue == code, "\(item.body.prefix(120)): \(response.text)") }
            }
        }
        // An assistant turn without content (as clients replay it after tool calls) is accepted.
        let nullContent = try await server.client.post("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": null}, {"role": "user", "content": "go on"}], "max_tokens": 2}"#)
        #expect(nullContent.status == 200, "\(nullContent.text)")
        #expect(nullContent.headers["connection"] == "close")
        let large = try await server.client.post("/v1/completions", #"{"prompt": "\#(String(repeating: "a", count: 10000))"}"#)
        #expect(large.status == 413)
        #expect(large.json?.at("error", "message")?.stringValue?.contains("size limit") == true)
        let unknown = try await server.client.send("GET", "/v2/everything")
        #expect(unknown.status == 404 && unknown.json?.at("error", "code")?.stringValue == "not_found")
        let wrongMethod = try await server.client.send("GET", "/v1/chat/completions")
        #expect(wrongMethod.status == 404 || wrongMethod.status == 405)
        let metrics = try await server.client.send("GET", "/metrics")
        #expect(metrics.text.contains(#"bitnet_requests_total{endpoint="/v1/chat/completions",status="400"} \#(Self.chatCases.count)"#), "\(metrics.text)")
        #expect(metrics.text.contains(#"bitnet_requests_total{endpoint="other",status="404"} 1"#))
        try await server.stop()
    }

    @Test func theAPIKeyIsRequiredOnTheAPI() async throws {
        let server = try await TestServer.start { $0.apiKey = "sk-test-123" }
        let request = #"{"prompt": "x", "max_tokens": 1}"#
        let missing = try await server.client.post("/v1/completions", request)
        #expect(missing.status == 401 && missing.json?.at("error", "type")?.stringValue == "authentication_error")
        let wrong = try await server.client.post("/v1/completions", request, headers: ["Authorization": "Bearer sk-test-124"])
        #expect(wrong.status == 401 && wrong.json?.at("error", "code")?.stringValue == "invalid_api_key")
        let models = try await server.client.send("GET", "/v1/models")
        #expect(models.status == 401)
        let right = try await server.client.post("/v1/completions", request, headers: ["Authorization": "Bearer sk-test-123"])
        #expect(right.status == 200, "\(right.text)")
        #expect(try await server.client.send("GET", "/health").status == 200)
        try await server.stop()
    }

    /// 1,000 requests — malformed, hostile, and good ones between them — over 8 connections at a time:
    /// every one gets an answer, none a 5xx, and the good ones the right text.
    @Test func aThousandHostileRequestsAmongGoodOnes() async throws {
        let server = try await TestServer.start {
            $0.maximumBodyBytes = 65536
            $0.scheduler = .init(parallel: 4, queueLimit: 64, contextLength: 256, batchSize: 32)
        }
        let good = #"{"prompt": "def main(", "max_tokens": 6, "temperature": 0}"#
        let expected = try #require(try await server.client.post("/v1/completions", good).json?.at("choices", 0, "text")?.stringValue)
        var generator = SystemRandomNumberGenerator()
        func hostile(_ index: Int) -> Data {
            let valid = #"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}"#
            switch index % 12 {
            case 0: return HTTPTestClient.request("/v1/chat/completions", body: String(valid.prefix(Int.random(in: 0..<valid.count, using: &generator))))
            case 1: return HTTPTestClient.request("/v1/completions", body: String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000))
            case 2: return HTTPTestClient.request("/v1/completions", body: #"{"prompt": "x", "max_tokens": 1e400}"#)
            case 3: return HTTPTestClient.request("/v1/completions", body: #"{"prompt": "\ud800 \u0000", "max_tokens": 1, "stop": ["", "\u0000"]}"#)
            case 4:  // invalid UTF-8 and random bytes
                var bytes = HTTPTestClient.request("/v1/completions", body: String(repeating: " ", count: 64))
                bytes.replaceSubrange(bytes.count - 64..<bytes.count, with: (0..<64).map { _ in UInt8.random(in: 0...255, using: &generator) })
                return bytes
            case 5: return HTTPTestClient.request("/v1/chat/completions", body: #"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "temperature": -1, "top_p": 0}"#)
            case 6: return HTTPTestClient.request("/v1/completions", body: #"{"prompt": "\#(String(repeating: "a", count: 70000))"}"#)
            case 7: return Data("GARBAGE\r\n\r\n".utf8)
            case 8: return HTTPTestClient.request("/v1/completions", body: #"{"prompt": [[1, 2], [3]], "n": 1}"#)
            case 9: return HTTPTestClient.request("/v1/models", method: "DELETE", body: "{}")
            case 10: return HTTPTestClient.request("/v1/completions", body: #"{"prompt": "x", "max_tokens": 2, "logprobs": 5, "stream": true, "stop": "\#(String(repeating: "z", count: 256))"}"#)
            default: return HTTPTestClient.request("/v1/completions", body: good)
            }
        }
        let requests = (0..<1000).map { hostile($0) }
        let outcomes = try await withThrowingTaskGroup(of: (Int, Int, String).self) { group in
            var results: [(Int, Int, String)] = []
            var next = 0
            func add() {
                let index = next, bytes = requests[index]
                next += 1
                group.addTask {
                    do {
                        let response = try await server.client.sendRaw(bytes)
                        let text = index % 12 == 11 ? response.json?.at("choices", 0, "text")?.stringValue ?? response.text : ""
                        return (index, response.status, text)
                    } catch {
                        return (index, -1, "\(error)")
                    }
                }
            }
            for _ in 0..<8 { add() }
            while let result = try await group.next() {
                results.append(result)
                if next < requests.count { add() }
            }
            return results
        }
        #expect(outcomes.count == 1000)
        let failures = outcomes.filter { $0.1 < 0 && $0.0 % 12 != 7 }  // a request line that is not HTTP may just be hung up on
        #expect(failures.isEmpty, "no answer: \(failures.prefix(5))")
        let serverErrors = outcomes.filter { $0.1 >= 500 }
        #expect(serverErrors.isEmpty, "\(serverErrors.prefix(5))")
        let goodOnes = outcomes.filter { $0.0 % 12 == 11 }
        #expect(goodOnes.allSatisfy { $0.1 == 200 && $0.2 == expected }, "\(goodOnes.filter { $0.1 != 200 || $0.2 != expected }.prefix(3))")
        #expect(outcomes.filter { $0.0 % 12 == 10 }.allSatisfy { $0.1 == 200 })
        #expect(try await server.client.send("GET", "/health").status == 200)
        #expect(try await server.waitForMetric("bitnet_active_sequences", 0))
        try await server.stop()
    }
}
