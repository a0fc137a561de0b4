import Foundation
import LedgerCore
import LedgerCrypto

/// The event log, written once over any `KVBackend`: the record formats and the checks
/// on both sides of the disk live here (STYLE §5). `LedgerLog.memory()` and
/// `LedgerLog.openLMDB(path:mode:)` give the two implementations.
public final class LedgerLog: EventLog, @unchecked Sendable {
    let kv: any KVBackend
    /// The derived id and stream indexes (Index.swift); nil for a read-only log without one.
    let index: (any KVBackend)?
    let indexer: Indexer?
    /// Serialises index catch-ups.
    let indexLock = NSLock()
    // Guarded by `cacheLock`.
    let cacheLock = NSLock()
    var tailCache = TailIndex()
    var markCache: Mark?
    var lastIndexError: StoreError?
    /// Blocks this log appended that its indexer has not reached yet, by height: the
    /// catch-up takes their ids and streams from here instead of reading the events back
    /// (Index.swift). Bounded; a block missing here is read from the log.
    var unindexed: [UInt64: BlockCommit] = [:]
    /// This log writes its index (a writer, or memory): its mark changes only here.
    let ownsIndex: Bool

    /// The error of the last index catch-up that failed, if any. Lookups stay correct
    /// (they read the unindexed tail from the events); the next append retries.
    public var indexError: StoreError? { cacheLock.withLock { lastIndexError } }

    init(_ kv: any KVBackend, index: (any KVBackend)?, background: Bool) {
        self.kv = kv
        self.index = index
        ownsIndex = index != nil && (background || kv is MemoryBackend)
        indexer = index != nil && background ? Indexer() : nil
        if let indexer {
            indexer.start { [weak self] in
                guard let self else { return false }
                do throws(StoreError) { try self.catchUpIndex() } catch { self.cacheLock.withLock { self.lastIndexError = error } }
                return true
            }
        }
    }

    deinit { indexer?.stop() }

    /// Stops the indexer (waiting for a catch-up under way) and closes the files.
    /// Any later call fails with `StoreError.closed`. Also done when the log is released.
    public func close() {
        indexer?.stop()
        index?.close()
        kv.close()
    }

    /// An in-memory log with the same records and checks as the LMDB one; its index
    /// catches up synchronously.
    public static func memory() -> LedgerLog { LedgerLog(MemoryBackend(), index: MemoryBackend(), background: false) }

    /// Test hook: replaces the index mark, as a stale or foreign index would have it.
    public func tamperIndexMark(height: UInt64, next: UInt64) throws(StoreError) {
        try index?.write { t throws(StoreError) in
            var m = try Self.indexed(t)
            m.height = height; m.next = next
            try t.put(.indexMeta, Self.indexedKey, m.encoded, append: false)
        }
    }

    public var path: String { kv.path }
    /// How many times the LMDB map grew while this log was open (0 for memory).
    public var mapGrowths: Int { (kv as? LMDBBackend)?.growths ?? 0 }

    static var genesisKey: [UInt8] { Array("genesis".utf8) }
    static var chainKey: [UInt8] { Array("chain".utf8) }
    static var headKey: [UInt8] { Array("head".utf8) }

    public func metadata() throws(StoreError) -> LogMetadata? {
        try kv.read { t throws(StoreError) in try Self.meta(t) }
    }

    public func head() throws(StoreError) -> LogHead? {
        try kv.read { t throws(StoreError) in try Self.head(t).map { LogHead(height: $0.height, hash: $0.hash, nextSequence: $0.nextSequence) } }
    }

    /// The small records an append needs: chain id, genesis hash and head — not the
    /// genesis document, which can be megabytes and is hash-checked when read.
    struct Head {
        var chainID: ChainID
        var formatVersion: UInt16
        var genesisHash: Hash32
        var height: Height
        var hash: Hash32
        var nextSequence: SequenceNumber
    }

    static func head(_ t: any KVTxn) throws(StoreError) -> Head? {
        guard let c = try t.get(.meta, chainKey) else { return nil }
        guard let h = try t.get(.meta, headKey) else { throw .corrupt(record: "meta[head]", reason: "missing while chain is present") }
        let cb = try Record.open(c, record: "meta[chain]")
        let hb = try Record.open(h, record: "meta[head]")
        do throws(DecodeError) {
            var r = ByteReader(cb)
            let version = try r.u16("meta.formatVersion")
            let chain = try ChainID(raw: try r.b32("meta.chainID"))
            let gh = try r.b32("meta.genesisHash")
            try r.end()
            var hr = ByteReader(hb)
            let head = Head(chainID: chain, formatVersion: version, genesisHash: gh, height: Height(try hr.u64("head.height")),
                            hash: try hr.b32("head.hash"), nextSequence: SequenceNumber(try hr.u64("head.nextSequence")))
            try hr.end()
            return head
        } catch {
            throw .corrupt(record: "meta", reason: error.description)
        }
    }

    static func meta(_ t: any KVTxn) throws(StoreError) -> LogMetadata? {
        guard let h = try head(t) else { return nil }
        guard let g = try t.get(.meta, genesisKey) else { throw .corrupt(record: "meta[genesis]", reason: "missing while chain is present") }
        let gb = Array(try Record.open(g, record: "meta[genesis]"))
        guard Blake2b.hash(gb) == h.genesisHash else { throw .corrupt(record: "meta[genesis]", reason: "genesis hash mismatch") }
        return LogMetadata(chainID: h.chainID, formatVersion: h.formatVersion, genesisHash: h.genesisHash, genesisBytes: gb,
                           head: h.height, headHash: h.hash, nextSequence: h.nextSequence)
    }

    static func headRecord(_ height: Height, _ hash: Hash32, _ next: SequenceNumber) -> [UInt8] {
        var w = ByteWriter(capacity: 48)
        w.u64(height.value); w.b32(hash); w.u64(next.value)
        return Record.seal(w.bytes)
    }

    public func initialize(chainID: ChainID, genesisBytes: [UInt8], genesisHash: Hash32) throws(StoreError) {
        guard Blake2b.hash(genesisBytes) == genesisHash else { throw .invalidAppend("genesis hash does not match its bytes") }
        try kv.write { t throws(StoreError) in
            try Self.putChain(t, chainID, genesisBytes, genesisHash)
            try t.put(.meta, Self.headKey, Self.headRecord(0, genesisHash, 0), append: false)
        }
    }

    /// The chain and genesis records of an empty log (refused when it has them already).
    static func putChain(_ t: any KVTxn, _ chainID: ChainID, _ genesisBytes: [UInt8], _ genesisHash: Hash32) throws(StoreError) {
        guard try t.get(.meta, chainKey) == nil else { throw StoreError.alreadyInitialized }
        var w = ByteWriter(capacity: 80)
        w.u16(Envelope.formatVersion); w.b32(chainID.raw); w.b32(genesisHash)
        try t.put(.meta, chainKey, Record.seal(w.bytes), append: false)
        try t.put(.meta, genesisKey, Record.seal(genesisBytes), append: false)
    }

    public func append(_ c: BlockCommit) throws(StoreError) { try append(contentsOf: [c]) }

    /// Appends consecutive blocks in one durable transaction (a node that commits
    /// several blocks in one turn pays one sync instead of one per block): all of them
    /// or, if any check or the write fails, none.
    public func append(contentsOf commits: [BlockCommit]) throws(StoreError) {
        guard let last = commits.last else { return }
        var sealed: [[UInt8]] = []
        for c in commits {
            let h = c.block.header
            guard Int(h.eventCount) == c.events.count else {
                throw .invalidAppend("header counts \(h.eventCount) events, commit has \(c.events.count)")
            }
            guard c.block.certificate.blockHash == c.blockHash, c.block.certificate.height == h.height else {
                throw .invalidAppend("certificate is for another block")
            }
            sealed.append(Record.seal(c.block.encoded()))
        }
        // Duplicates are refused here within the blocks and the unindexed tail (in
        // memory, before the write); older ones are caught by the indexer, which never
        // indexes an id twice (Index.swift). Upstream, an event already in the log can
        // never be admitted again: its nonce is stale.
        var claimed: [Bool] = []
        func release() {
            for (i, cl) in claimed.enumerated().reversed() where cl { releaseIDs(commits[i].events, firstSequence: commits[i].block.firstSequence.value) }
        }
        do throws(StoreError) {
            // The tail is brought to the head once: each block's claim then extends it in
            // memory (the head record moves only when the write commits).
            let from = try tail(from: try indexed().next).from
            for c in commits { claimed.append(try claimIDs(c.events, firstSequence: c.block.firstSequence.value, tailFrom: from)) }
            try kv.write { t throws(StoreError) in
                guard let m = try Self.head(t) else { throw StoreError.notInitialized }
                var height = m.height, hash = m.hash, seq = m.nextSequence.value
                for (k, c) in commits.enumerated() {
                    let h = c.block.header
                    guard h.chainID == m.chainID.raw else { throw StoreError.invalidAppend("block is for chain \(h.chainID.short)") }
                    guard h.height == height.next else { throw StoreError.invalidAppend("height \(h.height) does not follow head \(height)") }
                    guard h.parentHash == hash else { throw StoreError.invalidAppend("parent hash does not match head \(height)") }
                    guard c.block.firstSequence.value == seq else {
                        throw StoreError.invalidAppend("first sequence \(c.block.firstSequence) is not \(seq)")
                    }
                    for i in c.events.indices {
                        try withBytes(of: seq.bigEndian) { key throws(StoreError) in
                            try withBytes(of: c.events[i].id) { id throws(StoreError) in
                                try withBytes(of: c.events[i].envelope.bytes) { b throws(StoreError) in try t.put(.events, key, id, b, append: true) }
                            }
                        }
                        seq += 1
                    }
                    try t.put(.blocks, Key.u64(h.height.value), sealed[k], append: true)
                    if let p = c.nextPower {
                        try t.put(.meta, Self.powerKey(h.height), Self.powerRecord(p), append: false)
                    }
                    height = h.height
                    hash = c.blockHash
                }
                try t.put(.meta, Self.headKey, Self.headRecord(height, hash, SequenceNumber(seq)), append: false)
            }
        } catch {
            release()
            throw error
        }
        if ownsIndex { keepForIndex(commits) }
        indexAfterAppend(height: last.block.header.height.value)
    }

    /// Claims the block's ids in the unindexed tail cache (brought to the head by the
    /// caller, starting at `from`), refusing any that repeats within the block or is
    /// already there — one hash operation per event. Returns
    /// whether a claim was made, to release if the write then fails.
    func claimIDs(_ events: [(id: EventID, envelope: Envelope)], firstSequence: UInt64, tailFrom from: UInt64) throws(StoreError) -> Bool {
        var claimed = false
        let dup: EventID? = cacheLock.withLock {
            guard tailCache.from == from, tailCache.to == firstSequence else {
                // The cache is not at the head: check without claiming.
                var seen = Set<EventID>()
                for i in events.indices where !seen.insert(events[i].id).inserted || tailCache.ids[events[i].id] != nil { return events[i].id }
                return nil
            }
            var s = firstSequence
            for i in events.indices {
                if let old = tailCache.ids.updateValue(s, forKey: events[i].id) {
                    // Undo: drop this block's claims, and put back an entry that was there before.
                    for j in 0 ... i { tailCache.ids[events[j].id] = nil }
                    if old < firstSequence { tailCache.ids[events[i].id] = old }
                    return events[i].id
                }
                s += 1
            }
            tailCache.to = s
            tailCache.streamEntries = nil
            claimed = true
            return nil
        }
        if let dup { throw .invalidAppend("event \(dup.short) is already in the log") }
        return claimed
    }

    /// Releases a claim after a failed write.
    func releaseIDs(_ events: [(id: EventID, envelope: Envelope)], firstSequence: UInt64) {
        cacheLock.withLock {
            guard tailCache.to == firstSequence + UInt64(events.count) else { return }
            for i in events.indices where tailCache.ids[events[i].id] == firstSequence + UInt64(i) { tailCache.ids[events[i].id] = nil }
            tailCache.to = firstSequence
            tailCache.streamEntries = nil
        }
    }

    public func block(at height: Height) throws(StoreError) -> StoredBlock? {
        try kv.read { t throws(StoreError) in try Self.block(t, height) }
    }

    static func block(_ t: any KVTxn, _ height: Height) throws(StoreError) -> StoredBlock? {
        guard let v = try t.get(.blocks, Key.u64(height.value)) else { return nil }
        let name = "blocks[\(height)]"
        do {
            let b = try StoredBlock.decode(try Record.open(v, record: name))
            guard b.header.height == height else { throw StoreError.corrupt(record: name, reason: "holds height \(b.header.height)") }
            return b
        } catch let e as DecodeError {
            throw .corrupt(record: name, reason: e.description)
        } catch let e as StoreError { throw e } catch { throw .corrupt(record: name, reason: "\(error)") }
    }

    /// One copy: the bytes out of the map; the id is checked against them.
    static func decodeEvent(_ seq: UInt64, _ v: UnsafeRawBufferPointer) throws(StoreError) -> LoggedEvent {
        let name = "events[\(seq)]"
        guard v.count > 32 else { throw .corrupt(record: name, reason: "too short") }
        let id = EventID(Bytes32(v))
        let bytes = Array(UnsafeRawBufferPointer(rebasing: v[32...]))
        guard EventCrypto.id(bytes) == id else { throw .corrupt(record: name, reason: "event id does not match its bytes") }
        do {
            return LoggedEvent(sequence: SequenceNumber(seq), id: id, envelope: try Envelope(bytes: bytes))
        } catch {
            throw .corrupt(record: name, reason: error.description)
        }
    }

    static func decodeEvent(_ seq: UInt64, _ v: [UInt8]) throws(StoreError) -> LoggedEvent {
        try withBytes(of: v) { p throws(StoreError) in try decodeEvent(seq, p) }
    }

    public func events(from: SequenceNumber, count: Int) throws(StoreError) -> [LoggedEvent] {
        let n = min(count, Limits.readRangeEventsMax)
        return try kv.read { t throws(StoreError) in
            var out: [LoggedEvent] = []
            out.reserveCapacity(n)
            var expect = from.value
            try t.visit(.events, from: Key.u64(from.value), limit: n) { k, v throws(StoreError) in
                guard k.count == 8, UInt64(bigEndian: k.loadUnaligned(as: UInt64.self)) == expect else {
                    throw StoreError.corrupt(record: "events[\(expect)]", reason: "missing; found key \(Hex.encode(k))")
                }
                out.append(try Self.decodeEvent(expect, v))
                expect += 1
                return true
            }
            return out
        }
    }

    public func event(id: EventID) throws(StoreError) -> LoggedEvent? {
        // The index first, then the tail it has not reached (read in this order, an entry
        // the indexer adds meanwhile is still in the tail).
        var found: UInt64?
        var next: UInt64 = 0
        if let index {
            try index.read { t throws(StoreError) in
                next = try Self.indexed(t).next
                if let k = try t.get(.eventIDs, id.bytes) {
                    guard let s = Key.decodeU64(k) else { throw StoreError.corrupt(record: "event_ids[\(id.short)]", reason: "value is not a sequence") }
                    found = s
                }
            }
        }
        if found == nil { found = try tail(from: next).ids[id] }
        guard let seq = found else { return nil }
        return try kv.read { t throws(StoreError) -> LoggedEvent? in
            let k = Key.u64(seq)
            guard let v = try t.get(.events, k) else {
                // Defensive: a sequence at or past the head is not an event yet, never
                // corruption. (tail() serves claimed ids only once they are committed.)
                if let h = try Self.head(t), seq >= h.nextSequence.value { return nil }
                throw StoreError.corrupt(record: "event_ids[\(id.short)]", reason: "points at missing events[\(seq)]")
            }
            let e = try Self.decodeEvent(seq, v)
            guard e.id == id else { throw StoreError.corrupt(record: "event_ids[\(id.short)]", reason: "points at another event") }
            return e
        }
    }

    public func stream(_ key: StreamKey, after: SequenceNumber?, limit: Int) throws(StoreError) -> [LoggedEvent] {
        // Nothing follows the largest sequence number (and `after + 1` below would
        // overflow: the HTTP API passes clients' values through; found by schemathesis).
        if after?.value == .max { return [] }
        let prefix = key.bytes
        let start = prefix + Key.u64(after.map { $0.value + 1 } ?? 0)
        let n = min(limit, Limits.readRangeEventsMax)
        let name = "streams[\(key)]"
        var seqs: [UInt64] = []
        var next: UInt64 = 0
        if let index {
            try index.read { t throws(StoreError) in
                next = try Self.indexed(t).next
                for row in try t.scan(.streams, from: start, prefix: prefix, limit: n) {
                    guard row.key.count == 41, let seq = Key.decodeU64(Array(row.key[33...])) else {
                        throw StoreError.corrupt(record: name, reason: "malformed key")
                    }
                    if seq < next { seqs.append(seq) }
                }
            }
        }
        // The tail follows the indexed entries in sequence order.
        if seqs.count < n {
            let floor = max(after.map { $0.value + 1 } ?? 0, next)
            let tag = key.tag, id = key.id
            for e in try tailStreams(from: next) where e.tag == tag && e.id == id && e.seq >= floor && seqs.count < n {
                seqs.append(e.seq)
            }
        }
        let found = seqs
        return try kv.read { t throws(StoreError) in
            var out: [LoggedEvent] = []
            for seq in found {
                guard let v = try t.get(.events, Key.u64(seq)) else {
                    throw StoreError.corrupt(record: name, reason: "points at missing events[\(seq)]")
                }
                let e = try Self.decodeEvent(seq, v)
                // The index is not checksummed; prove each entry against the event it names.
                guard e.envelope.streams(id: e.id).contains(key) else {
                    throw StoreError.corrupt(record: name, reason: "entry \(seq) names an event outside the stream")
                }
                out.append(e)
            }
            return out
        }
    }

    /// Every record of the main environment as stored, database by database in key
    /// order, at most `limit` each: the bytes FORMAT.md §5 describes (test vectors, audits
    /// of a log's files).
    public func rawRecords(limit: Int) throws(StoreError) -> [(db: String, key: [UInt8], value: [UInt8])] {
        try kv.read { t throws(StoreError) in
            var out: [(db: String, key: [UInt8], value: [UInt8])] = []
            for db in DB.main {
                for row in try t.scan(db, from: [], prefix: [], limit: limit) { out.append((db.name, row.key, row.value)) }
            }
            return out
        }
    }

    public func putCheckpoint(height: Height, snapshot: [UInt8]) throws(StoreError) {
        try kv.write { t throws(StoreError) in
            try t.put(.checkpoints, Key.u64(height.value), Record.seal(snapshot), append: false)
        }
    }

    public func checkpoint(atOrBelow height: Height) throws(StoreError) -> (height: Height, snapshot: [UInt8])? {
        try kv.read { t throws(StoreError) in
            guard let row = try t.floor(.checkpoints, Key.u64(height.value), prefix: []) else { return nil }
            guard let h = Key.decodeU64(row.key) else { throw StoreError.corrupt(record: "checkpoints", reason: "malformed key") }
            return (Height(h), Array(try Record.open(row.value, record: "checkpoints[\(h)]")))
        }
    }

    public func checkpointHeights() throws(StoreError) -> [Height] {
        try kv.read { t throws(StoreError) in
            var out: [Height] = []
            var from: [UInt8] = []
            while true {
                let rows = try t.scan(.checkpoints, from: from, prefix: [], limit: 1)
                guard let row = rows.first, let h = Key.decodeU64(row.key) else { return out }
                out.append(Height(h))
                guard h < .max else { return out }
                from = Key.u64(h + 1)
            }
        }
    }

    public func pruneCheckpoints(keeping keep: (Height) -> Bool) throws(StoreError) {
        let doomed = try checkpointHeights().filter { !keep($0) }
        guard !doomed.isEmpty else { return }
        try kv.write { t throws(StoreError) in
            for h in doomed { try t.delete(.checkpoints, Key.u64(h.value)) }
        }
    }

    /// `meta` key of the power stored with block `h`: `"power"` | u64 height.
    static func powerKey(_ h: Height) -> [UInt8] { Array("power".utf8) + Key.u64(h.value) }

    /// checksum | u32 n | n × (b32 key | u64 power), keys ascending.
    static func powerRecord(_ p: [(key: PublicKey, power: UInt64)]) -> [UInt8] {
        var w = ByteWriter(capacity: 4 + 40 * p.count)
        w.u32(UInt32(p.count))
        for e in p.sorted(by: { $0.key < $1.key }) { w.b32(e.key); w.u64(e.power) }
        return Record.seal(w.bytes)
    }

    public func putNextPower(height: Height, power: [(key: PublicKey, power: UInt64)]) throws(StoreError) {
        try kv.write { t throws(StoreError) in try t.put(.meta, Self.powerKey(height), Self.powerRecord(power), append: false) }
    }

    public func nextPower(at height: Height) throws(StoreError) -> [(key: PublicKey, power: UInt64)]? {
        let name = "meta[power \(height.value)]"
        return try kv.read { t throws(StoreError) in
            guard let v = try t.get(.meta, Self.powerKey(height)) else { return nil }
            var r = ByteReader(Array(try Record.open(v, record: name)))
            do throws(DecodeError) {
                let n = Int(try r.u32("power.count"))
                guard n <= Limits.certificateSignersMax else { throw DecodeError.tooLong(field: "power", length: n, max: Limits.certificateSignersMax) }
                var out: [(key: PublicKey, power: UInt64)] = []
                for _ in 0 ..< n { out.append((try r.b32("power.key"), try r.u64("power.power"))) }
                try r.end()
                return out
            } catch { throw StoreError.corrupt(record: name, reason: error.description) }
        }
    }

    /// `meta` key of the checkpoint certificate of `h`: `"stable"` | u64 height.
    static let certificatePrefix = Array("stable".utf8)
    static func certificateKey(_ h: Height) -> [UInt8] { certificatePrefix + Key.u64(h.value) }

    public func putCheckpointCertificate(height: Height, bytes: [UInt8]) throws(StoreError) {
        try kv.write { t throws(StoreError) in try t.put(.meta, Self.certificateKey(height), Record.seal(bytes), append: false) }
    }

    public func checkpointCertificate(at height: Height) throws(StoreError) -> [UInt8]? {
        try kv.read { t throws(StoreError) in
            guard let v = try t.get(.meta, Self.certificateKey(height)) else { return nil }
            return Array(try Record.open(v, record: "meta[stable \(height.value)]"))
        }
    }

    public func checkpointCertificateHeights(from start: Height, limit: Int) throws(StoreError) -> [Height] {
        try kv.read { t throws(StoreError) in
            var out: [Height] = []
            var from = Self.certificateKey(start)
            while out.count < limit {
                let want = min(256, limit - out.count)
                let rows = try t.scan(.meta, from: from, prefix: Self.certificatePrefix, limit: want)
                for row in rows {
                    guard let h = Key.decodeU64(Array(row.key.dropFirst(Self.certificatePrefix.count))) else {
                        throw StoreError.corrupt(record: "meta[stable]", reason: "malformed key")
                    }
                    out.append(Height(h))
                }
                guard rows.count == want, let last = out.last, last.value < .max else { return out }
                from = Self.certificateKey(last.next)
            }
            return out
        }
    }

    public func dropCheckpoints() throws(StoreError) {
        try kv.write { t throws(StoreError) in try t.clear(.checkpoints) }
    }
}
