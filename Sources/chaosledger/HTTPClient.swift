import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerAudit
import LedgerCore
import LedgerHTTP
import LedgerNode
import LedgerViews

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

/// A node's API as a state-sync source (`GET /v1/sync/…`, `/v1/light/powers`). Nothing it
/// answers is trusted: `StateSync` checks every answer against the genesis, and every
/// answer is read under a byte bound and a deadline, so a peer that sends without end or
/// trickles bytes costs one failed request, not the node's memory or its sync.
struct HTTPSnapshotPeer: SnapshotPeer {
    let base: String
    let deadline: TimeInterval
    var name: String { base }

    init(_ base: String, deadline: TimeInterval = 120) {
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
        self.deadline = deadline
    }

    struct TooLarge: Error, CustomStringConvertible {
        var max: Int
        var description: String { "the answer is over \(max) bytes" }
    }

    struct TooSlow: Error, CustomStringConvertible {
        var seconds: TimeInterval
        var description: String { "no whole answer within \(Int(seconds)) s" }
    }

    /// GET `path`: the status and at most `max` bytes of body (more cancels the request).
    func get(_ path: String, max: Int) async throws -> (Int, Data) {
        guard let url = URL(string: base + path) else { throw CLIError("bad URL \(base + path)") }
        let d = BoundedBody(max: max, deadline: deadline)
        let c = URLSessionConfiguration.ephemeral
        c.timeoutIntervalForRequest = min(60, deadline)
        c.timeoutIntervalForResource = deadline
        let session = URLSession(configuration: c, delegate: d, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        return try await withCheckedThrowingContinuation { cont in
            let task = session.dataTask(with: url)
            d.start(task, cont)
            // The whole answer within the deadline: a peer that trickles bytes resets any
            // idle timeout, and Foundation on Linux does not enforce the resource one.
            DispatchQueue.global().asyncAfter(deadline: .now() + deadline) { d.expire(task) }
        }
    }

    func getJSON(_ path: String, max: Int = 16 << 20) async throws -> [String: Any] {
        let (status, data) = try await get(path, max: max)
        guard status == 200, let d = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw NodeClient.HTTPFailure(status: status, body: String(decoding: data.prefix(300), as: UTF8.self))
        }
        return d
    }

    func offer() async throws -> SyncOffer {
        let d = try await getJSON("/v1/sync/snapshot", max: 1 << 20)
        func uint(_ k: String) throws -> UInt64 {
            guard let v = (d[k] as? NSNumber)?.uint64Value else { throw CLIError("\(name): /v1/sync/snapshot has no '\(k)'") }
            return v
        }
        guard let hex = d["certificate"] as? String, let cert = Hex.decode(hex) else { throw CLIError("\(name): /v1/sync/snapshot has no certificate") }
        return SyncOffer(height: Height(try uint("height")), certificate: cert, leaves: Int(clamping: try uint("leaves")),
                         depth: Int(clamping: try uint("depth")), nextSequence: SequenceNumber(try uint("nextSequence")))
    }

    func powerChanges(upTo height: Height) async throws -> [AuditBundle.PowerChange] {
        var out: [AuditBundle.PowerChange] = []
        var from: UInt64 = 1
        while from <= height.value {
            let d = try await getJSON("/v1/light/powers?from=\(from)&limit=\(Limits.listPageMax)")
            let page = d["powers"] as? [[String: Any]] ?? []
            for p in page {
                guard let h = (p["height"] as? NSNumber)?.uint64Value, h <= height.value else { continue }
                guard let header = (p["header"] as? String).flatMap(Hex.decode), let cert = (p["certificate"] as? String).flatMap(Hex.decode) else {
                    throw CLIError("\(name): a power change without header or certificate")
                }
                var power: [AuditBundle.PowerChange.Entry] = []
                for e in p["power"] as? [[String: Any]] ?? [] {
                    guard let k = (e["key"] as? String).flatMap(PublicKey.init(hex:)), let v = (e["power"] as? NSNumber)?.uint64Value else {
                        throw CLIError("\(name): a malformed power entry")
                    }
                    power.append(.init(key: k, power: v))
                }
                out.append(.init(header: header, certificate: cert, power: power))
            }
            guard let next = (d["next"] as? NSNumber)?.uint64Value, next > from, !page.isEmpty || next <= height.value else { break }
            from = next
        }
        return out
    }

    func chunk(height: Height, depth: Int, index: UInt32) async throws -> [UInt8] {
        let (status, data) = try await get("/v1/sync/chunks?height=\(height.value)&depth=\(depth)&index=\(index)", max: Limits.syncChunkBytesMax)
        guard status == 200 else { throw NodeClient.HTTPFailure(status: status, body: String(decoding: data.prefix(300), as: UTF8.self)) }
        return Array(data)
    }
}

/// Collects one response body up to `max` bytes, cancelling the request past it.
final class BoundedBody: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let max: Int
    let lock = NSLock()
    var data = Data()
    var status = 0
    var tooLarge = false
    var expired = false
    var cont: CheckedContinuation<(Int, Data), any Error>?

    let deadline: TimeInterval

    init(max: Int, deadline: TimeInterval) { self.max = max; self.deadline = deadline }

    /// The deadline passed: the request is cancelled unless it already completed.
    func expire(_ task: URLSessionDataTask) {
        let pending = lock.withLock { () -> Bool in
            guard cont != nil else { return false }
            expired = true
            return true
        }
        if pending { task.cancel() }
    }

    func start(_ task: URLSessionDataTask, _ c: CheckedContinuation<(Int, Data), any Error>) {
        lock.withLock { cont = c }
        task.resume()
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let over = response.expectedContentLength > Int64(max)
        lock.withLock { status = (response as? HTTPURLResponse)?.statusCode ?? 0; tooLarge = over }
        completionHandler(over ? .cancel : .allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive d: Data) {
        let over = lock.withLock { () -> Bool in
            data.append(d)
            if data.count > max { tooLarge = true; data = Data() }
            return tooLarge
        }
        if over { dataTask.cancel() }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        let (c, result): (CheckedContinuation<(Int, Data), any Error>?, Result<(Int, Data), any Error>) = lock.withLock {
            defer { cont = nil }
            if tooLarge { return (cont, .failure(HTTPSnapshotPeer.TooLarge(max: max))) }
            if expired { return (cont, .failure(HTTPSnapshotPeer.TooSlow(seconds: deadline))) }
            if let error { return (cont, .failure(error)) }
            return (cont, .success((status, data)))
        }
        c?.resume(with: result)
    }
}
