import Foundation
import Hummingbird
import Metrics
import NIOCore
import Synchronization
import LedgerCore
import LedgerNode
import LedgerStore
import LedgerViews

/// Turns at the log for subscriptions: one at a time, first come first served. Each
/// turn reads and renders one batch. Hundreds of subscribers replaying history would
/// otherwise keep every thread of the cooperative pool busy, and every other request
/// (a `/v1/status` among them) would queue behind them.
final class ReadTurns: Sendable {
    private struct State {
        var busy = false
        var waiting = CircularBuffer<CheckedContinuation<Void, Never>>()
    }
    private let state = Mutex(State())

    func take<T>(_ body: () throws -> T) async rethrows -> T {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.busy { s.waiting.append(c); return false }
                s.busy = true
                return true
            }
            if now { c.resume() }
        }
        defer {
            let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
                if let c = s.waiting.popFirst() { return c }
                s.busy = false
                return nil
            }
            next?.resume()
        }
        return try body()
    }
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
    /// (or after the `Last-Event-ID` a reconnecting client sends), then live. Filters
    /// (`kinds`, `stream`, `author`; `SubscriptionFilter`) narrow what is sent.
    ///
    /// Bounded (issue 16): at most `subscribersMax` at once. A subscription reads the log
    /// when its socket has taken the previous batch, `Limits.subscriberReadAheadEvents`
    /// at a time, taking turns with the others (`ReadTurns`); a subscriber whose socket
    /// takes nothing for `subscriberWriteTimeoutMs` is disconnected through `close`, and
    /// resumes with Last-Event-ID. A client that never reads holds one batch and its
    /// socket's buffers, for that long.
    func subscribe(_ request: Request, close: @escaping @Sendable () -> Void = {}) throws(APIError) -> Response {
        var from = try Input.uint(request, "from") ?? 0
        if let last = Input.header(request, "last-event-id") {
            guard let seq = UInt64(last.trimmingCharacters(in: .whitespaces)), seq < UInt64.max else {
                throw .badParameter("Last-Event-ID", last, expected: "an event sequence number")
            }
            from = seq + 1
        }
        let filter = try SubscriptionFilter(request)
        guard let slot = subscribers.acquire(max: config.subscribersMax) else {
            Refusal.tooManySubscribers.count()
            throw APIError(status: .serviceUnavailable, code: Refusal.tooManySubscribers.rawValue,
                           message: "this node serves \(config.subscribersMax) subscriptions at once; retry later")
        }
        let service = service, turns = readTurns, start = SequenceNumber(from)
        let keepAlive = Duration.milliseconds(config.keepAliveMs)
        let idleStep = Duration.milliseconds(min(50, max(1, config.keepAliveMs)))
        let writeTimeoutMs = config.subscriberWriteTimeoutMs
        let body = ResponseBody { writer in
            let watch = WriteWatch()
            withExtendedLifetime(slot) {}
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await Self.watchdog(watch, timeoutMs: writeTimeoutMs, close: close) }
                func send(_ text: String) async throws {
                    watch.startedMs.store(WriteWatch.nowMs(), ordering: .releasing)
                    defer { watch.startedMs.store(0, ordering: .releasing) }
                    try await writer.write(ByteBuffer(string: text))
                }
                try await send(": subscribed from \(start.value)\nretry: 2000\n\n")
                var next = start
                var quietSince = ContinuousClock.now
                while !Task.isCancelled {
                    let from = next
                    let read = try await turns.take { try Self.readBatch(service, from: from, filter: filter) }
                    guard let read else { break }  // the node is stopping
                    if let (text, after) = read {
                        try await send(text)
                        next = after
                        quietSince = .now
                    } else if ContinuousClock.now - quietSince >= keepAlive {
                        try await send(": keep-alive\n\n")
                        quietSince = .now
                    } else {
                        try await Task.sleep(for: idleStep)
                    }
                }
                group.cancelAll()
            }
            try await writer.finish(nil)
            withExtendedLifetime(slot) {}
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    /// A subscriber's watchdog: a write that has not completed in time means the client
    /// stopped reading. Closing the connection fails that write.
    fileprivate static func watchdog(_ watch: WriteWatch, timeoutMs: UInt64, close: @Sendable () -> Void) async throws {
        let step = Duration.milliseconds(max(10, min(timeoutMs / 4, 1_000)))
        while !Task.isCancelled {
            try await Task.sleep(for: step)
            let started = watch.startedMs.load(ordering: .acquiring)
            if started != 0, WriteWatch.nowMs() &- started >= timeoutMs {
                Refusal.slowSubscriber.count()
                close()
                return
            }
        }
    }

    /// The next batch of events from `from` that pass `filter`, as SSE text, and the
    /// sequence after the last event looked at; `.some(nil)` when there is nothing new,
    /// nil when the node is stopping. A stream or author filter reads that stream's index,
    /// so its cost follows the matching events, not the log; a kinds-only filter reads
    /// the log. When a batch looked at events that did not match, it ends with an
    /// `id:`-only record: an SSE client dispatches nothing for it but remembers the id,
    /// so a reconnect resumes after what was already looked at.
    static func readBatch(_ service: any NodeService, from: SequenceNumber,
                          filter: SubscriptionFilter = .all) throws(ServiceError) -> (text: String, next: SequenceNumber)?? {
        let batch: [LoggedEvent]
        if let key = filter.indexKey {
            let head: LogHead?
            do {
                batch = try service.log.stream(key, after: from.value == 0 ? nil : SequenceNumber(from.value - 1),
                                               limit: Limits.subscriberReadAheadEvents)
                head = batch.isEmpty ? try service.log.head() : nil
            } catch { throw .store(error) }
            // Nothing new in the stream: is the node still serving?
            if batch.isEmpty, try service.committedEvents(from: head?.nextSequence ?? from, max: 1) == nil { return nil }
        } else {
            guard let read = try service.committedEvents(from: from, max: Limits.subscriberReadAheadEvents) else { return nil }
            batch = read
        }
        guard let last = batch.last else { return .some(nil) }
        var text = ""
        var sentLast = false
        for e in batch where filter.admits(e) {
            text += "id: \(e.sequence.value)\nevent: event\ndata: "
            text += String(decoding: Render.json(Render.event(e)), as: UTF8.self)
            text += "\n\n"
            sentLast = e.sequence == last.sequence
        }
        if !sentLast { text += "id: \(last.sequence.value)\n\n" }
        return (text, SequenceNumber(last.sequence.value + 1))
    }
}

/// What a subscription sends (`/v1/subscribe`): all of the given conditions hold.
/// `kinds` is a comma-separated list of kind names (`transfer,job.post`), `stream` a
/// stream key (`job:<hex>`, as `/v1/streams` names them), `author` a public key.
struct SubscriptionFilter: Sendable {
    var kinds: Set<EventKind>?
    var stream: StreamKey?
    var author: PublicKey?

    static let all = SubscriptionFilter()

    init(kinds: Set<EventKind>? = nil, stream: StreamKey? = nil, author: PublicKey? = nil) {
        self.kinds = kinds; self.stream = stream; self.author = author
    }

    init(_ request: Request) throws(APIError) {
        if let raw = Input.query(request, "kinds") {
            var set = Set<EventKind>()
            for name in raw.split(separator: ",", omittingEmptySubsequences: false) {
                guard let k = EventKind(name: String(name)) else {
                    throw .badParameter("kinds", raw, expected: "event kind names separated by commas, such as transfer,job.post")
                }
                set.insert(k)
            }
            kinds = set
        }
        if let raw = Input.query(request, "stream") {
            guard let k = StreamKey(parsing: raw) else {
                throw .badParameter("stream", raw, expected: "account:<hex>, agent:<hex>, alliance:<hex> or job:<hex>")
            }
            stream = k
        }
        if let raw = Input.query(request, "author") {
            guard let k = Bytes32(hex: raw) else { throw .badParameter("author", raw, expected: "a 32-byte public key in hex") }
            author = k
        }
    }

    /// The stream index to read instead of the log: the stream, else the author's account
    /// stream (which holds every event the author signed).
    var indexKey: StreamKey? { stream ?? author.map { .account($0) } }

    func admits(_ e: LoggedEvent) -> Bool {
        if let kinds, !kinds.contains(e.envelope.kind) { return false }
        if let author, e.envelope.author != author { return false }
        return true
    }
}
