import Foundation
import Hummingbird
import Metrics
import NIOCore
import Synchronization
import LedgerCore
import LedgerNode
import LedgerStore

/// What the SSE writer loop receives: an event or a keep-alive tick.
private enum SSEItem: Sendable {
    case event(LoggedEvent)
    case keepAlive
}

/// Live subscriptions, counted against `APIConfig.subscribersMax`.
final class SubscriberCount: Sendable {
    private let count = Mutex(0)
    var current: Int { count.withLock { $0 } }
    /// A slot, or nil when all `max` are taken. The slot is given back when the token
    /// goes away (with the response body, however the connection ends).
    func acquire(max: Int) -> Token? {
        let ok = count.withLock { n in
            guard n < max else { return false }
            n += 1
            return true
        }
        return ok ? Token(self) : nil
    }
    fileprivate func release() { count.withLock { $0 -= 1 } }

    final class Token: Sendable {
        let owner: SubscriberCount
        init(_ owner: SubscriberCount) { self.owner = owner }
        deinit { owner.release() }
    }
}

/// When the write in progress started (0: none), read by the slow-subscriber watchdog.
private final class WriteWatch: Sendable {
    let startedMs = Atomic<UInt64>(0)
    static func nowMs() -> UInt64 { UInt64(DispatchTime.now().uptimeNanoseconds / 1_000_000) }
}

/// Requests the API refused to protect itself, by reason (`/metrics`).
enum Refusal: String {
    case tooManySubscribers = "too_many_subscribers"
    case slowSubscriber = "slow_subscriber"
    func count() { Counter(label: "chaosledger_http_refusals_total", dimensions: [("reason", rawValue)]).increment() }
}

extension Handlers {
    func subscribe(_ request: Request, closing channel: any Channel) throws(APIError) -> Response {
        try subscribe(request, close: { channel.close(mode: .all, promise: nil) })
    }

    /// `GET /v1/subscribe?from=SEQ`: committed events as Server-Sent Events, from `from`
    /// (or after the `Last-Event-ID` a reconnecting client sends), then live.
    ///
    /// Bounded (issue 16): at most `subscribersMax` at once; at most
    /// `Limits.subscriberLagEventsMax` events queued for one; and a subscriber whose
    /// socket takes nothing for `subscriberWriteTimeoutMs` is disconnected through
    /// `close` (it resumes with Last-Event-ID). A client that never reads used to hold
    /// its queue, its reader and its socket buffers for as long as it stayed.
    func subscribe(_ request: Request, close: @escaping @Sendable () -> Void = {}) throws(APIError) -> Response {
        var from = try Input.uint(request, "from") ?? 0
        if let last = Input.header(request, "last-event-id") {
            guard let seq = UInt64(last.trimmingCharacters(in: .whitespaces)), seq < UInt64.max else {
                throw .badParameter("Last-Event-ID", last, expected: "an event sequence number")
            }
            from = seq + 1
        }
        guard let slot = subscribers.acquire(max: config.subscribersMax) else {
            Refusal.tooManySubscribers.count()
            throw APIError(status: .serviceUnavailable, code: Refusal.tooManySubscribers.rawValue,
                           message: "this node serves \(config.subscribersMax) subscriptions at once; retry later")
        }
        let service = service, start = SequenceNumber(from)
        let keepAlive = Duration.milliseconds(config.keepAliveMs)
        let writeTimeoutMs = config.subscriberWriteTimeoutMs
        let body = ResponseBody { writer in
            let watch = WriteWatch()
            withExtendedLifetime(slot) {}
            // Two producers (the node's committed events and a keep-alive clock) feed one
            // bounded queue; only this task writes, since the writer is not shareable.
            let (queue, input) = AsyncStream<SSEItem>.makeStream(bufferingPolicy: .bufferingOldest(Limits.subscriberLagEventsMax))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await e in service.committedEvents(from: start) {
                        // A subscriber `Limits.subscriberLagEventsMax` events behind is
                        // cut off after what it has queued; it resumes from its
                        // Last-Event-ID, which loses nothing and holds no memory here.
                        if case .dropped = input.yield(.event(e)) { break }
                    }
                    input.finish()
                }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: keepAlive)
                        input.yield(.keepAlive)
                    }
                }
                group.addTask {
                    // The watchdog: a write that has not completed in time means the
                    // client stopped reading. Closing the connection fails that write.
                    let step = Duration.milliseconds(max(10, min(writeTimeoutMs / 4, 1_000)))
                    while !Task.isCancelled {
                        try await Task.sleep(for: step)
                        let started = watch.startedMs.load(ordering: .acquiring)
                        if started != 0, WriteWatch.nowMs() &- started >= writeTimeoutMs {
                            Refusal.slowSubscriber.count()
                            close()
                            return
                        }
                    }
                }
                func send(_ text: String) async throws {
                    watch.startedMs.store(WriteWatch.nowMs(), ordering: .releasing)
                    defer { watch.startedMs.store(0, ordering: .releasing) }
                    try await writer.write(ByteBuffer(string: text))
                }
                try await send(": subscribed from \(start.value)\nretry: 2000\n\n")
                for await item in queue {
                    switch item {
                    case let .event(e):
                        let data = String(decoding: Render.json(Render.event(e)), as: UTF8.self)
                        try await send("id: \(e.sequence.value)\nevent: event\ndata: \(data)\n\n")
                    case .keepAlive:
                        try await send(": keep-alive\n\n")
                    }
                }
                group.cancelAll()
            }
            try await writer.finish(nil)
            withExtendedLifetime(slot) {}
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}
