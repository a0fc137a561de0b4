import Hummingbird
import LedgerNode
import Logging
import LedgerViews

/// An error a client can act on: an HTTP status, a stable machine-readable code and a
/// sentence. Every error response of the API has the body
/// `{"error":{"code":"...","message":"..."}}`.
struct APIError: Error, Sendable, Equatable {
    var status: HTTPResponse.Status
    var code: String
    var message: String
    var headers: HTTPFields = [:]

    static func badRequest(_ code: String, _ message: String) -> APIError { .init(status: .badRequest, code: code, message: message) }
    static func notFound(_ code: String, _ message: String) -> APIError { .init(status: .notFound, code: code, message: message) }

    static func badParameter(_ name: String, _ value: String, expected: String) -> APIError {
        .badRequest("bad_parameter", "'\(name)' must be \(expected), got '\(value.prefix(80))'")
    }

    static func bodyTooLarge(max: Int) -> APIError {
        .init(status: .contentTooLarge, code: "body_too_large", message: "request body is over \(max) bytes")
    }

    /// Service errors: a height the node does not have is the client's mistake; a store
    /// that fails or a node that cannot answer now is the node's, and temporary.
    static func service(_ e: ServiceError) -> APIError {
        switch e {
        case let .noSuchHeight(h): .notFound("height_not_found", "no state at height \(h.value)")
        case .heightPruned: .init(status: .gone, code: "height_pruned", message: e.description)
        case let .store(s): .init(status: .serviceUnavailable, code: "store_unavailable", message: s.description)
        case let .unavailable(why): .init(status: .serviceUnavailable, code: "unavailable", message: why)
        }
    }

    var body: [String: Any] { ["error": ["code": code, "message": message]] }

    func response() -> Response {
        var r = JSONResponse.make(body, status: status)
        for field in headers { r.headers.append(field) }
        return r
    }
}

/// Turns everything thrown below it into a JSON error response, so no request ends in
/// a bare status or a dropped connection. Hummingbird's own errors keep their status;
/// anything else is a defect of ours: 500, logged, with no internals in the body.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = APIContext
    let logger: Logger

    func handle(_ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as APIError {
            return e.response()
        } catch let e as HTTPError {
            return translate(e, request, context).response()
        } catch let e as any HTTPResponseError {
            return APIError(status: e.status, code: Self.code(e.status), message: e.status.reasonPhrase).response()
        } catch {
            logger.error("unhandled error", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            return APIError(status: .internalServerError, code: "internal", message: "internal error").response()
        }
    }

    /// The router answers an unmatched request with a bare 404: say whether the path
    /// is unknown or only the method is wrong.
    private func translate(_ e: HTTPError, _ request: Request, _ context: APIContext) -> APIError {
        guard e.status == .notFound, context.endpointPath == "NotFound" else {
            return APIError(status: e.status, code: Self.code(e.status), message: e.body ?? e.status.reasonPhrase)
        }
        let allowed = API.methods(servingPath: request.uri.path)
        if allowed.isEmpty {
            return .notFound("no_such_route", "no route \(request.method) \(request.uri.path.prefix(200))")
        }
        var err = APIError(status: .methodNotAllowed, code: "method_not_allowed",
                           message: "\(request.method) is not allowed here; allowed: \(allowed.joined(separator: ", "))")
        err.headers[.allow] = allowed.joined(separator: ", ")
        return err
    }

    static func code(_ status: HTTPResponse.Status) -> String {
        switch status.code {
        case 400: "bad_request"
        case 404: "not_found"
        case 405: "method_not_allowed"
        case 408: "request_timeout"
        case 413: "body_too_large"
        case 415: "unsupported_media_type"
        case 429: "rate_limited"
        case 503: "unavailable"
        default: status.code < 500 ? "bad_request" : "internal"
        }
    }
}

enum JSONResponse {
    static func make(_ value: Any, status: HTTPResponse.Status = .ok) -> Response {
        let bytes = Render.json(value)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
