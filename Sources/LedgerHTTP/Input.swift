import Hummingbird
import LedgerCore

/// Reading what a client sent: bounded bodies, and path and query values parsed
/// strictly into the ledger's types, each failure a 4xx `APIError`.
enum Input {
    /// Reads the whole body, refusing (413) as soon as it passes `max` bytes: a declared
    /// Content-Length over the bound is refused before anything is read, and a chunked
    /// body is counted as it streams, so at most one chunk past the bound is held.
    static func body(_ request: Request, max: Int) async throws(APIError) -> [UInt8] {
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > max {
            throw .bodyTooLarge(max: max)
        }
        var out: [UInt8] = []
        do {
            for try await chunk in request.body {
                guard out.count + chunk.readableBytes <= max else { throw APIError.bodyTooLarge(max: max) }
                out.append(contentsOf: chunk.readableBytesView)
            }
        } catch let e as APIError {
            throw e
        } catch {
            throw .badRequest("body_unreadable", "the request body could not be read")
        }
        return out
    }

    /// A header by its lowercase name. (Iterating the fields spares naming HTTPTypes'
    /// `HTTPField.Name`, whose module this layer does not import.)
    static func header(_ request: Request, _ lowercaseName: String) -> String? {
        request.headers.first { $0.name.canonicalName == lowercaseName }?.value
    }

    static func query(_ request: Request, _ name: String) -> String? {
        request.uri.queryParameters.get(name)
    }

    /// An optional unsigned decimal query parameter: absent is nil, anything else that is
    /// not a UInt64 is a 400 (never silently the default).
    static func uint(_ request: Request, _ name: String) throws(APIError) -> UInt64? {
        guard let raw = query(request, name) else { return nil }
        guard let v = UInt64(raw) else { throw .badParameter(name, raw, expected: "an unsigned integer") }
        return v
    }

    /// A page size: `default` when absent, at least 1, at most `max` (larger asks are cut to `max`).
    static func limit(_ request: Request, default d: Int = Limits.listPageDefault, max: Int = Limits.listPageMax) throws(APIError) -> Int {
        guard let v = try uint(request, "limit") else { return d }
        guard v >= 1 else { throw .badParameter("limit", "0", expected: "at least 1") }
        return Int(min(v, UInt64(max)))
    }

    static func bool(_ request: Request, _ name: String) throws(APIError) -> Bool? {
        guard let raw = query(request, name) else { return nil }
        switch raw {
        case "true", "1": return true
        case "false", "0": return false
        default: throw .badParameter(name, raw, expected: "true or false")
        }
    }

    static func height(_ request: Request) throws(APIError) -> Height? {
        try uint(request, "height").map { Height($0) }
    }

    /// A 32-byte key, id or hash as 64 hex digits.
    static func bytes32(_ raw: String, name: String) throws(APIError) -> Bytes32 {
        guard let v = Bytes32(hex: raw) else { throw .badParameter(name, raw, expected: "64 hex digits") }
        return v
    }

    static func pathBytes32(_ context: APIContext, _ name: String) throws(APIError) -> Bytes32 {
        try bytes32(context.parameters.get(name) ?? "", name: name)
    }

    static func pathUInt(_ context: APIContext, _ name: String) throws(APIError) -> UInt64 {
        let raw = context.parameters.get(name) ?? ""
        guard let v = UInt64(raw) else { throw .badParameter(name, raw, expected: "an unsigned integer") }
        return v
    }
}
