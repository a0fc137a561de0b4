import Foundation
import LedgerCore

/// Index entries of recent blocks, not yet merged into `event_ids` and `streams`.
///
/// Why: ids are hashes, so inserting a block's 1,000 ids into a B-tree dirties a page
/// per id, and LMDB rewrites every dirty page on commit — the random-key indexes made
/// an append ~6x slower than the events alone. Instead, each block's commit writes its
/// index entries as one record keyed by height (a sequential append, in the same
/// durable transaction), and every `Limits.indexMergeBlocks` blocks one sorted merge
/// moves them into the random-access indexes, touching each page once.
struct PendingIndex: Sendable {
    var first: UInt64?
    var last: UInt64?
    var ids: [EventID: UInt64] = [:]
    /// Stream entries in log order. Stream reads filter it (it holds at most
    /// `indexMergeBlocks` blocks' entries), which keeps appends free of a second map.
    var streamEntries: [StreamEntry] = []

    func streams(_ key: StreamKey) -> [UInt64] {
        let tag = key.tag, id = key.id
        return streamEntries.compactMap { $0.tag == tag && $0.id == id ? $0.seq : nil }
    }

    static func encode(ids: [(EventID, UInt64)], streams: [(StreamKey, UInt64)]) -> [UInt8] {
        var w = ByteWriter(capacity: 8 + ids.count * 40 + streams.count * 41)
        w.u32(UInt32(ids.count))
        for (id, seq) in ids { w.b32(id); w.u64(seq) }
        w.u32(UInt32(streams.count))
        for (s, seq) in streams { w.u8(s.tag); w.b32(s.id); w.u64(seq) }
        return w.bytes
    }

    static func decode(_ body: ArraySlice<UInt8>) throws(DecodeError) -> (ids: [(EventID, UInt64)], streams: [(StreamKey, UInt64)]) {
        var r = ByteReader(body)
        let n = Int(try r.u32("pending.ids"))
        guard n <= Limits.blockEventsMax else { throw .tooLong(field: "pending.ids", length: n, max: Limits.blockEventsMax) }
        var ids: [(EventID, UInt64)] = []
        for _ in 0 ..< n { ids.append((try r.b32("pending.id"), try r.u64("pending.seq"))) }
        let m = Int(try r.u32("pending.streams"))
        guard m <= Limits.blockEventsMax * 8 else { throw .tooLong(field: "pending.streams", length: m, max: Limits.blockEventsMax * 8) }
        var streams: [(StreamKey, UInt64)] = []
        for _ in 0 ..< m {
            let tag = try r.u8("pending.stream.tag")
            guard let k = StreamKey(tag: tag, id: try r.b32("pending.stream.id")) else {
                throw .invalidValue(field: "pending.stream.tag", reason: "unknown tag \(tag)")
            }
            streams.append((k, try r.u64("pending.stream.seq")))
        }
        try r.end()
        return (ids, streams)
    }

    mutating func add(height: UInt64, _ entries: (ids: [(EventID, UInt64)], streams: [(StreamKey, UInt64)])) {
        if first == nil { first = height }
        last = height
        ids.reserveCapacity(ids.count + entries.ids.count)
        for (id, seq) in entries.ids { ids[id] = seq }
        streamEntries.reserveCapacity(streamEntries.count + entries.streams.count)
        for (k, seq) in entries.streams { streamEntries.append(StreamEntry(tag: k.tag, id: k.id, seq: seq)) }
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
}

extension LedgerLog {
    static func pendingRecord(_ t: any KVTxn, _ h: UInt64) throws(StoreError) -> (ids: [(EventID, UInt64)], streams: [(StreamKey, UInt64)]) {
        let name = "index_pending[\(h)]"
        guard let v = try t.get(.pendingIndex, Key.u64(h)) else { throw .corrupt(record: name, reason: "missing") }
        do { return try PendingIndex.decode(try Record.open(v, record: name)) } catch let e as DecodeError {
            throw .corrupt(record: name, reason: e.description)
        } catch let e as StoreError { throw e } catch { throw .corrupt(record: name, reason: "\(error)") }
    }

    /// The pending index as of transaction `t`, from the cache when it is current:
    /// pending heights are always one contiguous run, so its first and last name it.
    func pending(_ t: any KVTxn) throws(StoreError) -> PendingIndex {
        let firstRow = try t.scan(.pendingIndex, from: [], prefix: [], limit: 1).first
        let lastRow = try t.floor(.pendingIndex, Key.u64(.max), prefix: [])
        let first = firstRow.flatMap { Key.decodeU64($0.key) }
        let last = lastRow.flatMap { Key.decodeU64($0.key) }
        var cached = cacheLock.withLock { pendingCache }
        if cached.first == first, cached.last == last { return cached }
        guard let first, let last else {
            cacheLock.withLock { pendingCache = PendingIndex() }
            return PendingIndex()
        }
        guard last >= first else { throw .corrupt(record: "index_pending", reason: "keys out of order") }
        // Extend the cache when it is a prefix of what is pending; otherwise reload.
        var from = first
        if cached.first == first, let cl = cached.last, cl < last { from = cl + 1 } else { cached = PendingIndex() }
        for h in from ... last { cached.add(height: h, try Self.pendingRecord(t, h)) }
        cacheLock.withLock { pendingCache = cached }
        return cached
    }

    /// Moves every pending index entry into `event_ids` and `streams` in one write
    /// transaction, in key order. Idempotent: a crash before commit leaves the pending
    /// records in place, and merging them again writes the same entries.
    public func mergePendingIndexes() throws(StoreError) {
        try kv.write { t throws(StoreError) in
            var ids: [(EventID, UInt64)] = []
            var streams: [StreamEntry] = []
            var heights: [UInt64] = []
            for row in try t.scan(.pendingIndex, from: [], prefix: [], limit: Int.max) {
                guard let h = Key.decodeU64(row.key) else { throw StoreError.corrupt(record: "index_pending", reason: "malformed key") }
                let e = try Self.pendingRecord(t, h)
                ids.append(contentsOf: e.ids)
                streams.append(contentsOf: e.streams.map { StreamEntry(tag: $0.0.tag, id: $0.0.id, seq: $0.1) })
                heights.append(h)
            }
            ids.sort { $0.0 < $1.0 }
            let none = UnsafeRawBufferPointer(start: nil, count: 0)
            var buf = [UInt8](repeating: 0, count: 41)  // the longest key: tag | id | seq
            for (id, seq) in ids {
                try withBytes(of: id) { k throws(StoreError) in
                    try withBytes(of: seq.bigEndian) { vp throws(StoreError) in try t.put(.eventIDs, k, vp, none, append: false) }
                }
            }
            streams.sort()
            for e in streams {
                let seq = e.seq
                buf.withUnsafeMutableBytes { b in
                    b[0] = e.tag
                    e.id.withBytes { UnsafeMutableRawBufferPointer(rebasing: b[1 ..< 33]).copyMemory(from: $0) }
                    b.storeBytes(of: seq.bigEndian, toByteOffset: 33, as: UInt64.self)
                }
                try withBytes(of: buf) { kp throws(StoreError) in try t.put(.streams, kp, none, none, append: false) }
            }
            for h in heights { try t.delete(.pendingIndex, Key.u64(h)) }
        }
        cacheLock.withLock { pendingCache = PendingIndex(); lastMergeError = nil }
    }
}
