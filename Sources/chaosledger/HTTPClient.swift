import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerCore
import LedgerHTTP
import LedgerNode

/// The few HTTP calls the CLI makes to a node's API (`submit`, `devnet`, `bench-net`).
struct NodeClient: Sendable {
    let base: String
    let session: URLSession

    init(_ base: String) {
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
        let c = URLSessionConfiguration.ephemeral
        c.timeoutIntervalForRequest = 60
        c.httpMaximumConnectionsPerHost = 16
        session = URLSession(configuration: c)
    }

    struct HTTPFailure: Error, CustomStringConvertible {
        var status: Int
        var body: String
        var description: String { "HTTP \(status): \(body)" }
    }

    func request(_ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json") async throws -> (Int, Data) {
        guard let url = URL(string: base + path) else { throw CLIError("bad URL \(base + path)") }
        var r = URLRequest(url: url)
        r.httpMethod = method
        if let body { r.httpBody = body; r.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        let (data, resp) = try await session.data(for: r)
        return ((resp as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    func getJSON(_ path: String) async throws -> [String: Any] {
        let (status, data) = try await request("GET", path)
        guard status == 200, let d = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw HTTPFailure(status: status, body: String(decoding: data.prefix(300), as: UTF8.self))
        }
        return d
    }

    struct SubmitReceipt: Sendable, Decodable {
        var id: String?
        var status: String
        var code: String?
        var error: String?
        var height: UInt64?
    }
    struct Receipts: Decodable { var receipts: [SubmitReceipt] }

    /// POST /v1/events with hex-encoded events; 200 and 422 both carry receipts.
    func submit(_ events: [[UInt8]], wait: Bool, timeoutMs: Int = 10_000) async throws -> [SubmitReceipt] {
        let body = Data(JSONText.submission(events))
        let (status, data) = try await request("POST", "/v1/events?wait=\(wait)&timeoutMs=\(timeoutMs)", body: body)
        // JSONDecoder (swift-foundation's parser) costs the load generator a fraction of
        // what JSONSerialization did, and bench-net's client shares the nodes' cores.
        guard status == 200 || status == 422, let d = try? JSONDecoder().decode(Receipts.self, from: data) else {
            throw HTTPFailure(status: status, body: String(decoding: data.prefix(300), as: UTF8.self))
        }
        return d.receipts
    }

    /// The account's committed nonce (0 for an account the node does not know).
    func nonce(of key: PublicKey) async throws -> UInt64 {
        let (status, data) = try await request("GET", "/v1/accounts/\(key.hex)")
        if status == 404 { return 0 }
        guard status == 200, let d = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw HTTPFailure(status: status, body: String(decoding: data.prefix(300), as: UTF8.self))
        }
        return (d["nonce"] as? NSNumber)?.uint64Value ?? 0
    }
}
