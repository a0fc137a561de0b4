import LedgerCore
import LedgerCrypto

/// An append-only list of opaque records in its own LMDB environment, each sealed with
/// its BLAKE2b-256 and checked on read (schemas/FORMAT.md §12). A validator keeps its
/// consensus state here (its votes, view and prepared certificates): what it must find
/// again after a crash so it never contradicts itself. Every append is one durable
/// transaction; `replaceAll` compacts in one transaction too, so a crash leaves either
/// the old list or the new one.
public final class RecordStore: @unchecked Sendable {
    let kv: any KVBackend
    private var next: UInt64 = 0

    init(_ kv: any KVBackend) throws(StoreError) {
        self.kv = kv
        next = try kv.read { t throws(StoreError) in
            var last: UInt64?
            try t.visit(.records, from: [], limit: .max) { k, _ throws(StoreError) in
                last = Key.decodeU64(Array(k)); return true
            }
            return last.map { $0 + 1 } ?? 0
        }
    }

    /// Opens (creating if needed) the store in directory `path`.
    public static func openLMDB(path: String) throws(StoreError) -> RecordStore {
        try RecordStore(LMDBBackend(path: path, mode: .readWrite, dbs: DB.recordStore, writerLock: true,
                                    mapBytesInitial: 64 << 20, mapBytesMax: Limits.mapBytesMax))
    }

    public static func memory() -> RecordStore { try! RecordStore(MemoryBackend()) }

    public var count: UInt64 { next }

    public func close() { kv.close() }

    /// Appends records durably, in order, in one transaction.
    public func append(_ records: [[UInt8]]) throws(StoreError) {
        guard !records.isEmpty else { return }
        let first = next
        try kv.write { t throws(StoreError) in
            for (i, r) in records.enumerated() { try t.put(.records, Key.u64(first + UInt64(i)), Record.seal(r), append: true) }
        }
        next = first + UInt64(records.count)
    }

    /// Every record, in order; a record whose seal does not match is `StoreError.corrupt`.
    public func all() throws(StoreError) -> [[UInt8]] {
        try kv.read { t throws(StoreError) in
            var out: [[UInt8]] = []
            var failure: StoreError?
            try t.visit(.records, from: [], limit: .max) { k, v throws(StoreError) in
                let key = Key.decodeU64(Array(k)) ?? 0
                do throws(StoreError) { out.append(Array(try Record.open(Array(v), record: "records/\(key)"))) } catch {
                    failure = error; return false
                }
                return true
            }
            if let failure { throw failure }
            return out
        }
    }

    /// Replaces the whole list in one durable transaction (compaction).
    public func replaceAll(_ records: [[UInt8]]) throws(StoreError) {
        try kv.write { t throws(StoreError) in
            try t.clear(.records)
            for (i, r) in records.enumerated() { try t.put(.records, Key.u64(UInt64(i)), Record.seal(r), append: true) }
        }
        next = UInt64(records.count)
    }

    /// Test hook: overwrites the stored bytes of record `index` (as a damaged disk would).
    public func tamper(_ index: UInt64, bytes: [UInt8]) throws(StoreError) {
        try kv.write { t throws(StoreError) in try t.put(.records, Key.u64(index), bytes, append: false) }
    }
}
