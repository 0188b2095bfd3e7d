import Hummingbird

/// Counts every answered request by endpoint and status (unknown paths share one label, so hostile
/// requests cannot grow the metrics without bound).
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let endpoint = ServerMetrics.endpoints.contains(request.uri.path) ? request.uri.path : "other"
        do {
            let response = try await next(request, context)
            metrics.countRequest(endpoint: endpoint, status: Int(response.status.code))
            return response
        } catch let error as any HTTPResponseError {
            metrics.countRequest(endpoint: endpoint, status: Int(error.status.code))
            throw error
        }
    }
}

/// Requires `Authorization: Bearer <key>` on the API's paths (`/v1/…`); `/health` and `/metrics` stay open.
struct APIKeyMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path.hasPrefix("/v1/") {
            let given = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
            guard let given, constantTimeEqual(Array(given.utf8), Array(key.utf8)) else {
                throw APIError(.unauthorized, given == nil ? "missing API key: send 'Authorization: Bearer <key>'" : "incorrect API key",
                               type: "authentication_error", code: "invalid_api_key")
            }
        }
        return try await next(request, context)
    }

    /// Compares without returning early, so timing does not tell how much of a guess was right.
    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}
