import Dispatch
import LedgerCore

/// Verifies many event signatures spread over every core. Each worker takes a
/// contiguous chunk and reuses one scratch buffer; results come back in input order.
public enum ParallelVerifier {
    public static var cores: Int { max(1, sysconf_cores()) }

    public static func verify(_ events: [Envelope], workers: Int = cores) -> [Bool] {
        let n = events.count
        if n == 0 { return [] }
        let chunks = min(workers, max(1, n / 16))
        if chunks <= 1 {
            var s: [UInt8] = []
            return events.map { EventCrypto.verify($0, scratch: &s) }
        }
        var out = [Bool](repeating: false, count: n)
        out.withUnsafeMutableBufferPointer { buf in
            let base = UncheckedSendable(buf)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = n * c / chunks, hi = n * (c + 1) / chunks
                var scratch = [UInt8](); scratch.reserveCapacity(Limits.eventBytesMax + 64)
                for i in lo ..< hi { base.value[i] = EventCrypto.verify(events[i], scratch: &scratch) }
            }
        }
        return out
    }

    /// The benchmark baseline: raw `crypto_sign_verify_detached` over prepared
    /// (message, signature, key) triples on `workers` threads, with no ChaosLedger code
    /// in the loop. Returns how many verified.
    public static func rawBaseline(messages: [[UInt8]], signatures: [Signature], keys: [PublicKey], workers: Int) -> Int {
        let n = messages.count
        let sigs = signatures.map(\.bytes), pks = keys.map(\.bytes)
        let counts = UncheckedSendable(UnsafeMutableBufferPointer<Int>.allocate(capacity: workers))
        defer { counts.value.deallocate() }
        DispatchQueue.concurrentPerform(iterations: workers) { c in
            let lo = n * c / workers, hi = n * (c + 1) / workers
            var ok = 0
            for i in lo ..< hi where rawVerify(sigs[i], messages[i], pks[i]) { ok += 1 }
            counts.value[c] = ok
        }
        return counts.value.reduce(0, +)
    }
}

struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}
