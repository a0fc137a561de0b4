import Foundation
import Glibc
import HTTPTypes
import Hummingbird
import LedgerCore
@testable import LedgerHTTP
import LedgerNode
import Logging
import NIOCore
import Synchronization
import Testing

/// A raw TCP client: what a slowloris or a subscriber that never reads looks like.
final class RawClient {
    let fd: Int32
    /// Closed once only: a second close of the number could close a descriptor the
    /// server (in this process) was given meanwhile, and NIO traps on it.
    private var open = true

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { disconnect(); throw POSIXError(.ECONNREFUSED) }
    }
    deinit { disconnect() }

    func disconnect() {
        guard open else { return }
        open = false
        close(fd)
    }

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
            a.disconnect()
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

    /// A subscriber whose socket takes nothing holds one batch: the subscription reads
    /// the log only when the previous write went out. (A reader that queued up to 1,000
    /// events ahead of a stuck socket, for each of 300 subscribers, kept both cores busy
    /// and the node's memory up.)
    @Test func aSubscriberThatDoesNotReadHoldsOneBatch() async throws {
        let service = try SoloService()
        let f = Fixture()
        for start in stride(from: 1, through: 400, by: 100) {
            let events = (start ..< start + 100).map { f.event(f.alice, UInt64($0), .transfer(to: f.bob.publicKey, amount: 1, memo: "")).bytes }
            _ = await service.submit(events, waitCommitted: true, timeoutMs: 0)
        }
        let response = try service.subscription { $0.subscriberWriteTimeoutMs = 600_000 }
        let writer = StuckWriter()
        let body = Task { try? await response.body.write(writer) }
        // The first batch is read and its write never completes.
        let deadline = ContinuousClock.now + .seconds(600)
        while writer.writes.withLock({ $0 }) < 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        // Time for a reader that does not wait for the socket to read on (it read all 400).
        try await Task.sleep(for: .milliseconds(300))
        let read = service.eventsRead.withLock { $0 }
        body.cancel()
        _ = await body.value
        #expect(read == Limits.subscriberReadAheadEvents, "a subscription read \(read) events for a socket that took none")
    }

    /// Subscriptions take turns at the log: however many wait, one reads at a time, and
    /// every one gets its turn.
    @Test func subscriptionsTakeTurnsAtTheLog() async {
        final class Tally: Sendable { let state = Mutex((inside: 0, most: 0, done: 0, sink: UInt64(0))) }
        let turns = ReadTurns(), tally = Tally()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0 ..< 64 {
                group.addTask {
                    await turns.take {
                        tally.state.withLock { $0.inside += 1; $0.most = max($0.most, $0.inside) }
                        var x: UInt64 = 0
                        for i in 0 ..< 20_000 as Range<UInt64> { x = x &* 31 &+ i }
                        tally.state.withLock { $0.inside -= 1; $0.done += 1; $0.sink &+= x }
                    }
                }
            }
        }
        let s = tally.state.withLock { $0 }
        #expect(s.most == 1 && s.done == 64)
    }
}

/// A client socket that takes the first write and then nothing: the write blocks until
/// the task is cancelled.
final class StuckWriter: ResponseBodyWriter, Sendable {
    let writes = Mutex(0)
    func write(_ buffer: ByteBuffer) async throws {
        let n = writes.withLock { $0 += 1; return $0 }
        if n >= 2 { try await Task.sleep(for: .seconds(3_600)) }
    }
    func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
