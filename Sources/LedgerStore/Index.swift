import Foundation
import LedgerCore

/// The id and stream indexes are derived data, like projections: every entry follows
/// from the committed events (`events` holds each event's id; its streams follow from
/// its payload). They live in a second LMDB environment (`<dir>/index`) that an indexer
/// catches up every `Limits.indexMergeBlocks` blocks, in one sorted batch.
///
/// Why: ids are hashes, so inserting a block's ids into a B-tree inside the block's
/// transaction dirtied a page per id — appends ran ~6x slower than writing the events
/// alone. Batched and sorted, each page is touched once per catch-up; on a separate
/// environment, with its own write lock, the catch-up runs beside the appends.
///
/// Lookups read the index, then the tail of events it has not reached yet (derived
/// from `events`, cached, and extended in place by the writer). Both are checked
/// against the event they name, so a stale or damaged index can never return a wrong
/// event; it can always be dropped and rebuilt.
struct TailIndex: Sendable {
    /// The tail covers sequences [from, to).
    var from: UInt64 = 0
    var to: UInt64 = 0
    var ids: [EventID: UInt64] = [:]
    /// Derived on the first stream read, dropped when the tail changes.
    var streamEntries: [StreamEntry]?

    mutating func trim(below x: UInt64) {
        guard x > from else { return }
        ids = ids.filter { $0.value >= x }
        streamEntries = streamEntries?.filter { $0.seq >= x }
        from = x
        if to < x { to = x }
    }
}

/// One stream index entry; ordered as its key `tag | id | seq` is.
struct StreamEntry: Comparable, Sendable {
    var tag: UInt8
    var id: Bytes32
    var seq: UInt64
    static func < (a: StreamEntry, b: StreamEntry) -> Bool {
        if a.tag != b.tag { return a.tag < b.tag }
        if a.id != b.id { return a.id < b.id }
        return a.seq < b.seq
    }
    var key: StreamKey { StreamKey(tag: tag, id: id)! }

    static func of(_ e: LoggedEvent) -> [StreamEntry] {
        let streams = (try? e.envelope.decodePayload())?.streams(author: e.envelope.author, id: e.id) ?? [.account(e.envelope.author)]
        return streams.map { StreamEntry(tag: $0.tag, id: $0.id, seq: e.sequence.value) }
    }
}

/// Runs the catch-up on its own thread when poked; stopped when the log goes away.
final class Indexer: @unchecked Sendable {
    private let cond = NSCondition()
    private var wanted = false
    private var stopping = false
    private var running = false
    private var thread: Thread?

    func start(_ work: @escaping @Sendable () -> Bool) {
        let t = Thread { [self] in
            while true {
                cond.lock()
                while !wanted && !stopping { cond.wait() }
                if stopping { running = false; cond.broadcast(); cond.unlock(); return }
                wanted = false
                cond.unlock()
                if !work() {  // the log is gone
                    cond.lock(); running = false; cond.broadcast(); cond.unlock()
                    return
                }
            }
        }
        t.name = "chaosledger-indexer"
        running = true
        thread = t
        t.start()
    }

    func poke() { cond.lock(); wanted = true; cond.signal(); cond.unlock() }

    /// Stops the thread and waits for it — unless called on that thread, which happens
    /// when a catch-up held the log's last reference: then it exits after this catch-up.
    func stop() {
        cond.lock()
        stopping = true
        cond.broadcast()
        if Thread.current !== thread { while running { cond.wait() } }
        cond.unlock()
    }
}

/// `NSLock.withLock` that keeps a typed error.
func locked<R, E: Error>(_ lock: NSLock, _ body: () throws(E) -> R) throws(E) -> R {
    lock.lock()
    defer { lock.unlock() }
    return try body()
}

extension LedgerLog {
    static var indexedKey: [UInt8] { Array("indexed".utf8) }

    /// How far the index has been caught up: (height, next sequence).
    static func indexed(_ t: any KVTxn) throws(StoreError) -> (height: UInt64, next: UInt64) {
        guard let v = try t.get(.indexMeta, indexedKey) else { return (0, 0) }
        var r = ByteReader(try Record.open(v, record: "index/meta[indexed]"))
        do throws(DecodeError) {
            let h = try r.u64("indexed.height"), s = try r.u64("indexed.next")
            try r.end()
            return (h, s)
        } catch { throw .corrupt(record: "index/meta[indexed]", reason: error.description) }
    }

    func indexed() throws(StoreError) -> (height: UInt64, next: UInt64) {
        guard let index else { return (0, 0) }
        return try index.read { t throws(StoreError) in try Self.indexed(t) }
    }

    /// The tail index from sequence `x` to the head, from the cache when it is current.
    func tail(from x: UInt64) throws(StoreError) -> TailIndex {
        let next = try head()?.nextSequence.value ?? 0
        var cached = cacheLock.withLock { tailCache }
        if cached.from <= x, cached.to == next {
            cached.trim(below: x)
            cacheLock.withLock { tailCache = cached }
            return cached
        }
        if !(cached.from <= x && cached.to >= x && cached.to < next) { cached = TailIndex(from: x, to: x) }
        cached.trim(below: x)
        cached.streamEntries = nil
        var s = cached.to
        while s < next {
            let batch = try events(from: SequenceNumber(s), count: Int(min(next - s, 10_000)))
            guard !batch.isEmpty else { throw .corrupt(record: "events[\(s)]", reason: "missing below the head") }
            for e in batch { cached.ids[e.id] = e.sequence.value }
            s += UInt64(batch.count)
        }
        cached.to = next
        cacheLock.withLock { tailCache = cached }
        return cached
    }

    /// The stream entries of the tail from `x`, derived from the events once per tail.
    func tailStreams(from x: UInt64) throws(StoreError) -> [StreamEntry] {
        var t = try tail(from: x)
        if let s = t.streamEntries { return s }
        var entries: [StreamEntry] = []
        var s = t.from
        while s < t.to {
            let batch = try events(from: SequenceNumber(s), count: Int(min(t.to - s, 10_000)))
            for e in batch { entries.append(contentsOf: StreamEntry.of(e)) }
            s += UInt64(max(batch.count, 1))
        }
        t.streamEntries = entries
        let done = t
        cacheLock.withLock { if tailCache.from == done.from && tailCache.to == done.to { tailCache = done } }
        return entries
    }

    /// Brings the index up to the head: reads the new events (main environment, read
    /// transaction), then writes their entries, sorted, and the new mark in one index
    /// transaction. The order — read everything first, then write — means the indexer
    /// never waits for the main environment while it holds the index's write lock.
    public func catchUpIndex() throws(StoreError) {
        guard let index else { return }
        try locked(indexLock) { () throws(StoreError) in
            let (fromHeight, fromSeq) = try indexed()
            guard let h = try head(), h.height.value > fromHeight else { return }
            var ids: [(EventID, UInt64)] = []
            var streams: [StreamEntry] = []
            var s = fromSeq
            while s < h.nextSequence.value {
                let batch = try events(from: SequenceNumber(s), count: Int(min(h.nextSequence.value - s, 10_000)))
                guard !batch.isEmpty else { throw StoreError.corrupt(record: "events[\(s)]", reason: "missing below the head") }
                for e in batch {
                    ids.append((e.id, e.sequence.value))
                    streams.append(contentsOf: StreamEntry.of(e))
                }
                s += UInt64(batch.count)
            }
            ids.sort { $0.0 < $1.0 }
            streams.sort()
            try index.write { t throws(StoreError) in
                let none = UnsafeRawBufferPointer(start: nil, count: 0)
                for (id, seq) in ids {
                    let fresh = try withBytes(of: id) { k throws(StoreError) in
                        try withBytes(of: seq.bigEndian) { v throws(StoreError) in try t.insertNew(.eventIDs, k, v) }
                    }
                    // An id already indexed at another sequence: the log holds an event twice.
                    if !fresh, let old = try t.get(.eventIDs, id.bytes).flatMap(Key.decodeU64), old != seq {
                        throw StoreError.corrupt(record: "events[\(seq)]", reason: "event \(id.short) is also events[\(old)]")
                    }
                }
                var buf = [UInt8](repeating: 0, count: 41)  // tag | id | seq
                for e in streams {
                    let seq = e.seq
                    buf.withUnsafeMutableBytes { b in
                        b[0] = e.tag
                        e.id.withBytes { UnsafeMutableRawBufferPointer(rebasing: b[1 ..< 33]).copyMemory(from: $0) }
                        b.storeBytes(of: seq.bigEndian, toByteOffset: 33, as: UInt64.self)
                    }
                    try withBytes(of: buf) { k throws(StoreError) in try t.put(.streams, k, none, none, append: false) }
                }
                var w = ByteWriter(capacity: 16)
                w.u64(h.height.value); w.u64(h.nextSequence.value)
                try t.put(.indexMeta, Self.indexedKey, Record.seal(w.bytes), append: false)
            }
        }
        cacheLock.withLock { lastIndexError = nil }
    }

    /// Drops the index and builds it again from the events.
    public func rebuildIndex() throws(StoreError) {
        guard let index else { return }
        try locked(indexLock) { () throws(StoreError) in
            try index.write { t throws(StoreError) in
                try t.clear(.eventIDs); try t.clear(.streams); try t.clear(.indexMeta)
            }
        }
        cacheLock.withLock { tailCache = TailIndex() }
        try catchUpIndex()
    }

    /// After an append: catch up now (memory), or wake the indexer thread (LMDB).
    func indexAfterAppend(height: UInt64) {
        guard let index = self.index else { return }
        let lag = height - ((try? index.read { t throws(StoreError) in try Self.indexed(t) })?.height ?? 0)
        guard lag >= UInt64(Limits.indexMergeBlocks) else { return }
        if let indexer { indexer.poke(); return }
        do throws(StoreError) { try catchUpIndex() } catch { cacheLock.withLock { lastIndexError = error } }
    }
}
