import Dispatch

/// Two-stage pipeline: while `consume` handles item i on the caller's thread,
/// `prepare` already runs for the next items on other threads. Replay and ingest use it so that
/// signature verification (parallel, on every core) overlaps the serial work of
/// applying and committing the previous block, instead of leaving cores idle.
public enum Pipeline {
    final class Slot<T>: @unchecked Sendable {
        // Written once by the preparing thread before `done` is signalled, read after.
        var value: T?
        let done = DispatchSemaphore(value: 0)
        func wait() -> T { done.wait(); return value! }
    }

    /// `depth` items are prepared ahead of the one being consumed.
    public static func run<Mid: Sendable, E: Error>(
        count: Int, depth: Int = 2, prepare: @escaping @Sendable (Int) -> Mid, consume: (Int, Mid) throws(E) -> Void
    ) throws(E) {
        guard count > 0 else { return }
        func start(_ i: Int) -> Slot<Mid> {
            let s = Slot<Mid>()
            DispatchQueue.global().async { s.value = prepare(i); s.done.signal() }
            return s
        }
        var inFlight: [Slot<Mid>] = []
        var started = 0
        func fill() {
            while started < count, inFlight.count < max(1, depth) { inFlight.append(start(started)); started += 1 }
        }
        // Whatever happens, no preparation outlives this call.
        defer { for s in inFlight { _ = s.wait() } }
        fill()
        for i in 0 ..< count {
            let current = inFlight.removeFirst().wait()
            fill()
            try consume(i, current)
        }
    }
}
