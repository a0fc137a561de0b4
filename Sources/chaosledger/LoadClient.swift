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
        for l in lines.dropFirst() {
            let kv = l.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard kv.count == 2 else { continue }
            if kv[0] == "content-length" { length = Int(kv[1]) }
            if kv[0] == "transfer-encoding", kv[1].contains("chunked") { chunked = true }
        }
        if chunked {
            var out: [UInt8] = []
            while true {
                let end = try readUntil([13, 10])
                let size = Int(String(decoding: pending[..<end], as: UTF8.self).split(separator: ";")[0], radix: 16)
                pending.removeFirst(end + 2)
                guard let size else { throw Failure(description: "bad chunk size") }
                try fill(size + 2)
                out += pending[..<size]
                pending.removeFirst(size + 2)
                if size == 0 { return (status, out) }
            }
        }
        guard let length else { throw Failure(description: "response without a length") }
        try fill(length)
        let out = Array(pending[..<length])
        pending.removeFirst(length)
        return (status, out)
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, bytes.count - off) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw Failure(description: "write: errno \(errno)") }
            off += n
        }
    }

    /// Reads more into `pending`; throws when the peer closed.
    private func readMore() throws {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
        if n < 0, errno == EINTR { return }
        guard n > 0 else { throw Failure(description: n == 0 ? "connection closed" : "read: errno \(errno)") }
        pending += chunk[..<n]
    }

    private func fill(_ count: Int) throws { while pending.count < count { try readMore() } }

    /// The offset of `marker` in `pending`, reading until it is there.
    private func readUntil(_ marker: [UInt8]) throws -> Int {
        var from = 0
        while true {
            if pending.count >= marker.count {
                for i in from ... pending.count - marker.count where pending[i] == marker[0] && Array(pending[i ..< i + marker.count]) == marker { return i }
                from = pending.count - marker.count + 1
            }
            guard pending.count < 65_536 else { throw Failure(description: "header too long") }
            try readMore()
        }
    }
}
