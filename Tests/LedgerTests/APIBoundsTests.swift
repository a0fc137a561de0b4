import Foundation
import Glibc
import Hummingbird
import LedgerHTTP
import Logging
import NIOCore
import Testing

/// A raw TCP client: what a slowloris or a subscriber that never reads looks like.
final class RawClient {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { close(fd); throw POSIXError(.ECONNREFUSED) }
    }
    deinit { close(fd) }

    func send(_ text: String) { _ = text.withCString { Glibc.send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) } }

    /// Reads until `stop` says enough, the peer closes (returns with `closed`), or `seconds` pass.
    func read(seconds: Double, until stop: (String) -> Bool = { _ in false }) -> (text: String, closed: Bool) {
        var text = ""
        let end = Date().addingTimeInterval(seconds)
        var buf = [UInt8](repeating: 0, count: 4096)
        while Date() < end {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0 else { continue }
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { return (text, true) }
            text += String(decoding: buf[0 ..< n], as: UTF8.self)
            if stop(text) { return (text, false) }
        }
        return (text, false)
    }
}

final class LockedPort: @unchecked Sendable {
    private let lock = NSLock()
    private var port: Int?
    func set(_ p: Int?) { lock.withLock { port = p } }
    func get() -> Int? { lock.withLock { port } }
}

/// The HTTP API's resource bounds (issue 16), against a live server on a free port.
@Suite(.serialized) struct APIBoundsTests {
    /// Runs the API with `config` on a free port and calls `body` with the port.
    func live(_ config: APIConfig, _ body: @Sendable @escaping (Int) async throws -> Void) async throws {
        let service = try SoloService()
        let port = LockedPort()
        let app = API.application(service: service, config: config, registry: NodeMetrics.bootstrap(), logger: Logger(label: "bounds"),
                                  onServerRunning: { ch in port.set(ch.localAddress?.port) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService() }
            // Long: in the full suite the simulation suites can hold the cooperative pool
            // for minutes, and the server's start is reported on it.
            let deadline = Date().addingTimeInterval(600)
            while port.get() == nil, Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
            let p = try #require(port.get())
            try await body(p)
            group.cancelAll()
        }
    }

    /// A client that trickles its request head never completes one: it is closed after
    /// the idle timeout, and a normal request is still answered meanwhile.
    @Test func aSlowlorisConnectionIsClosedAfterTheIdleTimeout() async throws {
        var config = APIConfig(port: 0)
        config.idleTimeoutMs = 400
        try await live(config) { port in
            let slow = try RawClient(port: port)
            slow.send("GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            let start = Date()
            let r = slow.read(seconds: 60)
            #expect(r.closed, "the server kept a connection whose request head never arrived")
            #expect(Date().timeIntervalSince(start) >= 0.3)
            let ok = try RawClient(port: port)
            ok.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(ok.read(seconds: 300) { $0.contains("\r\n\r\n") }.text.hasPrefix("HTTP/1.1 200"))
        }
    }

    /// Subscriptions are capped; a refused one gets a typed 503; a subscriber that goes
    /// away gives its slot back.
    @Test func subscriptionsAreCappedAndGiveTheirSlotBack() async throws {
        var config = APIConfig(port: 0)
        config.subscribersMax = 2
        config.keepAliveMs = 50
        try await live(config) { port in
            let request = "GET /v1/subscribe?from=0 HTTP/1.1\r\nHost: x\r\n\r\n"
            let a = try RawClient(port: port), b = try RawClient(port: port)
            for c in [a, b] {
                c.send(request)
                #expect(c.read(seconds: 300) { $0.contains(": subscribed") }.text.hasPrefix("HTTP/1.1 200"))
            }
            let c = try RawClient(port: port)
            c.send(request)
            let refused = c.read(seconds: 300) { $0.contains("}") }.text
            #expect(refused.hasPrefix("HTTP/1.1 503") && refused.contains("too_many_subscribers"), "\(refused)")
            // One leaves: its next keep-alive write fails and its slot is free again.
            close(a.fd)
            var admitted = false
            let until = Date().addingTimeInterval(300)
            while !admitted, Date() < until {
                let d = try RawClient(port: port)
                d.send(request)
                admitted = d.read(seconds: 30) { $0.contains(": subscribed") || $0.contains("}") }.text.hasPrefix("HTTP/1.1 200")
                if !admitted { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(admitted, "the slot of a subscriber that left was never given back")
        }
    }
}
