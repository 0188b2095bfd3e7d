import BitNetFormats
import BitNetInference
import Hummingbird

/// An error answered as OpenAI's API answers it: `{"error": {"message", "type", "param", "code"}}` with
/// its HTTP status, so clients raise their usual exceptions (`openai.BadRequestError`, …).
public struct APIError: Error, HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    /// OpenAI's error type: `invalid_request_error`, `authentication_error`, `server_error`, ….
    public var type: String
    /// The request field at fault, when there is one (`messages[0].content`).
    public var param: String?
    public var code: String?
    /// Extra response headers (`Retry-After`).
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ message: String, type: String = "invalid_request_error",
                param: String? = nil, code: String? = nil, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers
    }

    public var description: String { "\(status.code) \(message)" }

    /// A field of the request that is missing, of the wrong type or out of range.
    static func invalid(_ param: String, _ message: String) -> APIError {
        APIError(.badRequest, message, param: param, code: "invalid_value")
    }

    static func unsupported(_ param: String, _ message: String) -> APIError {
        APIError(.badRequest, message, param: param, code: "unsupported_value")
    }

    static var modelLoading: APIError {
        APIError(.serviceUnavailable, "the model is still loading", type: "unavailable_error", code: "model_loading", headers: [.retryAfter: "1"])
    }

    /// The error a request gets for what the engine refused; `param` names the prompt's field.
    init(engineError error: any Error, param: String? = nil) {
        switch error {
        case let error as APIError: self = error
        case let error as InferenceError where error.code == .contextOverflow:
            self.init(.badRequest, error.message, param: param, code: "context_length_exceeded")
        case let error as InferenceError where error.code == .invalidInput:
            self.init(.badRequest, error.message, param: param, code: "invalid_value")
        case SchedulerError.queueFull:
            self.init(.serviceUnavailable, "\(SchedulerError.queueFull)", type: "unavailable_error", code: "queue_full", headers: [.retryAfter: "1"])
        case SchedulerError.stopped:
            self.init(.serviceUnavailable, "the server is shutting down", type: "unavailable_error", code: "shutting_down")
        case is CancellationError:
            // Nobody reads it: the client has gone (nginx's 499), as /metrics counts it.
            self.init(HTTPResponse.Status(code: 499, reasonPhrase: "Client Closed Request"), "the client closed the connection", code: "cancelled")
        default:
            self.init(.internalServerError, "\(error)", type: "server_error")
        }
    }

    var json: JSONValue {
        .object([("error", .object([
            ("message", .string(message)),
            ("type", .string(type)),
            ("param", param.map(JSONValue.string) ?? .null),
            ("code", code.map(JSONValue.string) ?? .null),
        ]))])
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = Response.json(json, status: status)
        for field in headers { response.headers.append(field) }
        return response
    }
}

extension Response {
    /// A JSON response.
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: value.serialized())))
    }
}

/// Answers every error in OpenAI's shape: the router's own (404 for an unknown path, 413 for a body
/// over the limit) and anything unexpected (500), which would otherwise get an empty body.
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as any HTTPResponseError {
            let message = switch error.status {
            case .notFound: "no route for \(request.method) \(request.uri.path)"
            case .contentTooLarge: "the request body is over the size limit"
            default: error.status.reasonPhrase
            }
            throw APIError(error.status, message, code: error.status == .notFound ? "not_found" : nil)
        } catch {
            throw APIError(engineError: error)
        }
    }
}
