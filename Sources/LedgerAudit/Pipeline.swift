import Dispatch

/// Two-stage pipeline: while `consume` handles item i on the caller's thread,
/// `prepare` already runs for item i+1 on another. Replay and ingest use it so that
/// signature verification (parallel, on every core) overlaps the serial work of
/// applying and committing the previous block, instead of leaving cores idle.
public enum Pipeline {
    final class Slot<T>: @unchecked Sendable {
        // Written once by the preparing thread before `done` is signalled, read after.
        var value: T?
        let done = DispatchSemaphore(value: 0)
        func wait() -> T { done.wait(); return value! }
    }

    public static func run<Mid: Sendable, E: Error>(
        count: Int, prepare: @escaping @Sendable (Int) -> Mid, consume: (Int, Mid) throws(E) -> Void
    ) throws(E) {
        guard count > 0 else { return }
        func start(_ i: Int) -> Slot<Mid> {
            let s = Slot<Mid>()
            DispatchQueue.global().async { s.value = prepare(i); s.done.signal() }
            return s
        }
        var next: Slot<Mid>? = start(0)
        // Whatever happens, no preparation outlives this call.
        defer { if let n = next { _ = n.wait() } }
        for i in 0 ..< count {
            let current = next!.wait()
            next = i + 1 < count ? start(i + 1) : nil
            try consume(i, current)
        }
    }
}
