import Foundation
import LedgerCore
import LedgerCrypto

/// The id and stream indexes are derived data, like projections: every entry follows
/// from the committed events (`events` holds each event's id; its streams follow from
/// its payload). They live in a second LMDB environment (`<dir>/index`) that an indexer
/// catches up every `Limits.indexLagBlocksMax` blocks, in one sorted batch.
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

    static func of(_ e: LoggedEvent) -> [StreamEntry] { of(e.envelope, id: e.id, seq: e.sequence.value) }

    static func of(_ e: Envelope, id: EventID, seq: UInt64) -> [StreamEntry] {
        e.streams(id: id).map { StreamEntry(tag: $0.tag, id: $0.id, seq: seq) }
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

    /// The index mark: the index holds every event below `next`, the events of blocks
    /// up to `height`, whose hash — and the log's genesis hash — it records, so an index
    /// can be recognised as belonging to its log (Index.validate).
    struct Mark: Equatable {
        var height: UInt64 = 0
        var next: UInt64 = 0
        var blockHash: Hash32 = .zero
        var genesisHash: Hash32 = .zero

        var encoded: [UInt8] {
            var w = ByteWriter(capacity: 80)
            w.u64(height); w.u64(next); w.b32(blockHash); w.b32(genesisHash)
            return Record.seal(w.bytes)
        }
    }

    static func indexed(_ t: any KVTxn) throws(StoreError) -> Mark {
        guard let v = try t.get(.indexMeta, indexedKey) else { return Mark() }
        var r = ByteReader(try Record.open(v, record: "index/meta[indexed]"))
        do throws(DecodeError) {
            let m = Mark(height: try r.u64("indexed.height"), next: try r.u64("indexed.next"),
                         blockHash: try r.b32("indexed.blockHash"), genesisHash: try r.b32("indexed.genesisHash"))
            try r.end()
            return m
        } catch { throw .corrupt(record: "index/meta[indexed]", reason: error.description) }
    }

    /// Whether `index` belongs to the log in `main`: its mark names the log's genesis and
    /// a block the log has, with that hash. An index restored, copied or left over from
    /// another log fails this and is cleared (writer) or ignored (reader).
    static func validate(index: any KVBackend, main: any KVBackend) -> Bool {
        do {
            let mark = try index.read { t throws(StoreError) in try indexed(t) }
            let hasEntries = try index.read { t throws(StoreError) -> Bool in
                let ids = try t.scan(.eventIDs, from: [], prefix: [], limit: 1)
                let streams = try t.scan(.streams, from: [], prefix: [], limit: 1)
                return !ids.isEmpty || !streams.isEmpty
            }
            if mark == Mark() { return !hasEntries }
            return try main.read { t throws(StoreError) in
                // A state-synced log's index starts at its base, a block the log lacks.
                if let b = try baseMark(t), b == mark { return true }
                guard let h = try head(t), h.genesisHash == mark.genesisHash, mark.height <= h.height.value,
                      let b = try block(t, Height(mark.height)) else { return false }
                return Blake2b.hash(b.headerBytes) == mark.blockHash
                    && b.firstSequence.value + UInt64(b.header.eventCount) == mark.next
            }
        } catch {
            return false
        }
    }

    /// The mark: the writer's own copy when it keeps the index (no read, so appends never
    /// wait on a catch-up's transaction), else read from the index environment.
    func indexed() throws(StoreError) -> Mark {
        guard let index else { return Mark() }
        if ownsIndex, let m = cacheLock.withLock({ markCache }) { return m }
        let m = try index.read { t throws(StoreError) in try Self.indexed(t) }
        if ownsIndex { cacheLock.withLock { markCache = m } }
        return m
    }

    /// The tail index from sequence `x` to the head, from the cache when it is current.
    ///
    /// An append in progress may have claimed ids past the head (`claimIDs`): those are
    /// not served, and the cache is stored back only if no claim or release changed it
    /// meanwhile, so a reader never erases a writer's claims.
    func tail(from x: UInt64) throws(StoreError) -> TailIndex {
        let next = try head()?.nextSequence.value ?? 0
        let snapshot = cacheLock.withLock { tailCache }
        func store(_ t: TailIndex) {
            cacheLock.withLock { if tailCache.from == snapshot.from && tailCache.to == snapshot.to { tailCache = t } }
        }
        var cached = snapshot
        if cached.from <= x, cached.to >= next {
            cached.trim(below: x)
            if cached.to > next {
                cached.ids = cached.ids.filter { $0.value < next }
                cached.to = next
                cached.streamEntries = nil
                return cached
            }
            if cached.from != snapshot.from { store(cached) }
            return cached
        }
        let claimsAhead = snapshot.to > next
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
        if !claimsAhead { store(cached) }
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
        var duplicate: StoreError?
        try locked(indexLock) { () throws(StoreError) in
            guard let meta = try metadata() else { return }
            // In chunks of at most `indexCatchUpEventsMax` events, so memory stays bounded
            // however far behind the index is (after `rebuild`, the whole log).
            while true {
                var mark = try indexed()
                // An index cleared under a state-synced log starts again at its base.
                if mark.height == 0, let b = try kv.read({ t throws(StoreError) in try Self.baseMark(t) }) { mark = b }
                guard let h = try head(), h.height.value > mark.height else { return }
                var ids: [(EventID, UInt64)] = []
                var streams: [StreamEntry] = []
                var height = mark.height
                var next = mark.next
                var lastHash = mark.blockHash
                let kept = cacheLock.withLock { unindexed }
                var lastBlock: StoredBlock?
                while height < h.height.value, ids.count < Limits.indexCatchUpEventsMax {
                    // A block this log appended comes from memory: the same ids and
                    // envelopes the append wrote, without reading, hashing and decoding
                    // them again.
                    if let c = kept[height + 1], c.block.firstSequence.value == next {
                        for (i, e) in c.events.enumerated() {
                            let seq = next + UInt64(i)
                            ids.append((e.id, seq))
                            streams.append(contentsOf: StreamEntry.of(e.envelope, id: e.id, seq: seq))
                        }
                        lastBlock = c.block
                        next += UInt64(c.events.count)
                        height += 1
                        continue
                    }
                    guard let b = try block(at: Height(height + 1)) else {
                        throw StoreError.corrupt(record: "blocks[\(height + 1)]", reason: "missing below the head")
                    }
                    let batch = try events(from: b.firstSequence, count: Int(b.header.eventCount))
                    guard batch.count == Int(b.header.eventCount), b.firstSequence.value == next else {
                        throw StoreError.corrupt(record: "blocks[\(height + 1)]", reason: "events do not follow the index mark")
                    }
                    for e in batch {
                        ids.append((e.id, e.sequence.value))
                        streams.append(contentsOf: StreamEntry.of(e))
                    }
                    lastBlock = b
                    height += 1
                    next += UInt64(batch.count)
                }
                if let lastBlock { lastHash = Blake2b.hash(lastBlock.headerBytes) }
                ids.sort { $0.0 < $1.0 }
                streams.sort()
                let newMark = Mark(height: height, next: next, blockHash: lastHash, genesisHash: meta.genesisHash)
                if let d = try index.write({ t throws(StoreError) in try Self.writeEntries(t, ids, streams, newMark) }) { duplicate = d }
                cacheLock.withLock {
                    markCache = newMark
                    unindexed = unindexed.filter { $0.key > height }
                }
            }
        }
        cacheLock.withLock { lastIndexError = duplicate }
        if let duplicate { throw duplicate }
    }

    /// One catch-up's index entries, sorted, and the new mark, in transaction `t`. An id
    /// already indexed at another sequence means the log holds an event twice: the first
    /// is kept and the duplicate returned, since a stuck indexer would leave every later
    /// event to the tail.
    static func writeEntries(_ t: any KVTxn, _ ids: [(EventID, UInt64)], _ streams: [StreamEntry], _ newMark: Mark) throws(StoreError) -> StoreError? {
        var duplicate: StoreError?
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        for (id, seq) in ids {
            let fresh = try withBytes(of: id) { k throws(StoreError) in
                try withBytes(of: seq.bigEndian) { v throws(StoreError) in try t.insertNew(.eventIDs, k, v) }
            }
            // An id already indexed at another sequence: the log holds an event
            // twice. Keep the first, report it, and go on — a stuck indexer
            // would leave every later event to the tail.
            if !fresh, let old = try t.get(.eventIDs, id.bytes).flatMap(Key.decodeU64), old != seq {
                duplicate = StoreError.corrupt(record: "events[\(seq)]", reason: "event \(id.short) is also events[\(old)]")
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
        try t.put(.indexMeta, Self.indexedKey, newMark.encoded, append: false)
        return duplicate
    }

    /// Drops the index and builds it again from the events.
    public func rebuildIndex() throws(StoreError) {
        guard let index else { return }
        try locked(indexLock) { () throws(StoreError) in
            try index.write { t throws(StoreError) in
                try t.clear(.eventIDs); try t.clear(.streams); try t.clear(.indexMeta)
            }
            cacheLock.withLock { markCache = nil; tailCache = TailIndex() }
        }
        try catchUpIndex()
    }

    /// Keeps the blocks just appended for the indexer, at most `indexKeptBlocksMax` of
    /// them: an indexer further behind (a rebuild, a failing index) reads the rest back.
    func keepForIndex(_ commits: [BlockCommit]) {
        cacheLock.withLock {
            for c in commits { unindexed[c.block.header.height.value] = c }
            if unindexed.count > Self.indexKeptBlocksMax {
                for k in unindexed.keys.sorted().prefix(unindexed.count - Self.indexKeptBlocksMax) { unindexed[k] = nil }
            }
        }
    }

    static let indexKeptBlocksMax = 4 * Limits.indexLagBlocksMax

    /// After an append: catch up now (memory), or wake the indexer thread (LMDB).
    func indexAfterAppend(height: UInt64) {
        guard self.index != nil else { return }
        let mark = (try? indexed())?.height ?? 0
        let lag = height > mark ? height - mark : 0
        guard lag >= UInt64(Limits.indexLagBlocksMax) else { return }
        if let indexer { indexer.poke(); return }
        do throws(StoreError) { try catchUpIndex() } catch { cacheLock.withLock { lastIndexError = error } }
    }
}
