import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// bench-net's load generator: a blocking HTTP/1.1 client on one kept-alive loopback
/// connection, one per client thread. The load shares the nodes' two cores, so its cost
/// is taken from what it measures: URLSession (libcurl and its dispatch threads) spent
/// about 5% of the machine at full load; a socket, a write and a read per request spend
/// a fraction of that. It speaks only what the node's submit route answers
/// (`Content-Length` or chunked bodies) and nothing else: `NodeClient` is the CLI's client.
final class LoadConnection {
    let port: UInt16
    private var fd: Int32 = -1
    /// Bytes read past the previous response.
    private var pending: [UInt8] = []
    private var chunk = [UInt8](repeating: 0, count: 65_536)

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    init(port: Int) { self.port = UInt16(port) }
    deinit { disconnect() }

    private func disconnect() {
        if fd >= 0 { close(fd) }
        fd = -1
        pending.removeAll()
    }

    private func connect() throws {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        // A node that stops answering fails its requests instead of hanging the benchmark.
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard r == 0 else { close(s); throw Failure(description: "connect to port \(port): errno \(errno)") }
        fd = s
    }

    /// POSTs `body` to `path`: the status and the response body. A failed exchange closes
    /// the connection (the next one opens a new one); it is not retried.
    func post(_ path: String, _ body: [UInt8]) throws -> (Int, [UInt8]) {
        if fd < 0 { try connect() }
        do { return try exchange(path, body) } catch {
            disconnect()
            throw error
        }
    }

    private func exchange(_ path: String, _ body: [UInt8]) throws -> (Int, [UInt8]) {
        let head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
        try writeAll(Array(head.utf8) + body)
        let headerEnd = try readUntil([13, 10, 13, 10])
        let lines = String(decoding: pending[..<headerEnd], as: UTF8.self).split(separator: "\r\n")
        pending.removeFirst(headerEnd + 4)
        guard let first = lines.first, let status = first.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else {
            throw Failure(description: "bad status line")
        }
        var length: Int?
        var chunked = false
        var close = false
        for l in lines.dropFirst() {
            let kv = l.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard kv.count == 2 else { continue }
            if kv[0] == "content-length" { length = Int(kv[1]) }
            if kv[0] == "transfer-encoding", kv[1].contains("chunked") { chunked = true }
            if kv[0] == "connection", kv[1].contains("close") { close = true }
        }
        defer { if close { disconnect() } }
        if chunked {
            var out: [UInt8] = []
            while true {
                let end = try readUntil([13, 10])
                let line = String(decoding: pending[..<end], as: UTF8.self)
                pending.removeFirst(end + 2)
                guard let field = line.split(separator: ";").first, let size = Int(field.trimmingCharacters(in: .whitespaces), radix: 16),
                      size >= 0, size <= 64 << 20 else { throw Failure(description: "bad chunk size line \(line.prefix(40))") }
                if size == 0 {
                    // Trailers, if any, end with an empty line.
                    while true {
                        let e = try readUntil([13, 10])
                        pending.removeFirst(e + 2)
                        if e == 0 { return (status, out) }
                    }
                }
                try fill(size + 2)
                out += pending[..<size]
                pending.removeFirst(size + 2)
            }
        }
        guard let length, length >= 0, length <= 64 << 20 else {
            if length == nil, status == 204 || (100 ..< 200).contains(status) { return (status, []) }
            throw Failure(description: "response without a usable length")
        }
        try fill(length)
        let out = Array(pending[..<length])
        pending.removeFirst(length)
        return (status, out)
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            // send with MSG_NOSIGNAL: a closed peer is an error here, not a SIGPIPE.
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw Failure(description: "write: errno \(errno)") }
            off += n
        }
    }

    /// Reads at least one more byte into `pending`; throws when the peer closed or the
    /// read timed out.
    private func readMore() throws {
        while true {
            let fd = self.fd
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw Failure(description: n == 0 ? "connection closed" : "read: errno \(errno)") }
            pending += chunk[..<n]
            return
        }
    }

    private func fill(_ count: Int) throws { while pending.count < count { try readMore() } }

    /// The offset of `marker` in `pending`, reading until it is there.
    private func readUntil(_ marker: [UInt8]) throws -> Int {
        var from = 0
        while true {
            if pending.count >= from + marker.count {
                let last = pending.count - marker.count
                for i in from ... last where pending[i] == marker[0] {
                    var k = 1
                    while k < marker.count, pending[i + k] == marker[k] { k += 1 }
                    if k == marker.count { return i }
                }
                from = last + 1
            }
            guard pending.count < 65_536 else { throw Failure(description: "header too long") }
            try readMore()
        }
    }
}
