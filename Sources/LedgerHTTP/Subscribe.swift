import Foundation
import Hummingbird
import LedgerCore
import LedgerNode
import LedgerStore

/// What the SSE writer loop receives: an event or a keep-alive tick.
private enum SSEItem: Sendable {
    case event(LoggedEvent)
    case keepAlive
}

extension Handlers {
    /// `GET /v1/subscribe?from=SEQ`: committed events as Server-Sent Events, from `from`
    /// (or after the `Last-Event-ID` a reconnecting client sends), then live.
    func subscribe(_ request: Request) throws(APIError) -> Response {
        var from = try Input.uint(request, "from") ?? 0
        if let last = Input.header(request, "last-event-id") {
            guard let seq = UInt64(last.trimmingCharacters(in: .whitespaces)), seq < UInt64.max else {
                throw .badParameter("Last-Event-ID", last, expected: "an event sequence number")
            }
            from = seq + 1
        }
        let service = service, start = SequenceNumber(from)
        let keepAlive = Duration.milliseconds(config.keepAliveMs)
        let body = ResponseBody { writer in
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
                try await writer.write(ByteBuffer(string: ": subscribed from \(start.value)\nretry: 2000\n\n"))
                for await item in queue {
                    switch item {
                    case let .event(e):
                        let data = String(decoding: Render.json(Render.event(e)), as: UTF8.self)
                        try await writer.write(ByteBuffer(string: "id: \(e.sequence.value)\nevent: event\ndata: \(data)\n\n"))
                    case .keepAlive:
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    }
                }
                group.cancelAll()
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}
