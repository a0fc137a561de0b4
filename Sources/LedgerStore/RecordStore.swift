import Foundation
import LedgerCore
import LedgerCrypto

/// An append-only list of opaque records, each sealed with its BLAKE2b-256 and checked
/// on read (schemas/FORMAT.md §12). A validator keeps its consensus state here (its
/// votes, view and prepared certificates): what it must find again after a crash so it
/// never contradicts itself. Every append is durable when it returns; `replaceAll`
/// compacts, and a crash leaves either the old list or the new one.
///
/// On disk it is one append-only file (RecordFile: one sync per append); the LMDB
/// form it had before is still read, to migrate a data directory, and the memory form
/// serves tests.
public final class RecordStore: @unchecked Sendable {
    enum Backing {
        case kv(any KVBackend)
        case file(RecordFile)
    }

    let backing: Backing
    private var next: UInt64 = 0

    init(_ kv: any KVBackend) throws(StoreError) {
        backing = .kv(kv)
        next = try kv.read { t throws(StoreError) in
            var last: UInt64?
            try t.visit(.records, from: [], limit: .max) { k, _ throws(StoreError) in
                last = Key.decodeU64(Array(k)); return true
            }
            return last.map { $0 + 1 } ?? 0
        }
    }

    init(_ file: RecordFile) {
        backing = .file(file)
        next = UInt64(file.countAtOpen)
    }

    /// Opens (creating if needed) the store in directory `path`. A directory that holds
    /// the store in its older LMDB form is migrated: its records are copied into the
    /// file (whole or not at all), then `data.mdb` is renamed `data.mdb.migrated`, so an
    /// older binary cannot start from records that are no longer kept up to date. A
    /// `data.mdb` beside both of those means an older binary ran here after the
    /// migration: its votes are not in the file, and the store refuses to open.
    public static func open(path: String) throws(StoreError) -> RecordStore {
        let legacy = path + "/data.mdb", fm = FileManager.default
        if fm.fileExists(atPath: legacy), fm.fileExists(atPath: legacy + ".migrated"), fm.fileExists(atPath: path + "/" + RecordFile.fileName) {
            throw .corrupt(record: legacy, reason: "an older binary wrote consensus records here after they moved to \(RecordFile.fileName); recover the node from its peers (ops/RUNBOOK.md)")
        }
        let file = try RecordFile(dir: path) { () throws(StoreError) -> [[UInt8]] in
            guard fm.fileExists(atPath: legacy) else { return [] }
            let old = try openLMDB(path: path, writerLock: false)  // the file holds writer.lock
            defer { old.close() }
            return try old.all()
        }
        if fm.fileExists(atPath: legacy) {
            // The file holds every record now (written whole before it was named).
            guard rename(legacy, legacy + ".migrated") == 0 else { throw LMDBBackend.ioError("rename", legacy, errno) }
            unlink(path + "/lock.mdb")
            try RecordFile.syncDirectory(path)
        }
        return RecordStore(file)
    }

    /// The older LMDB form (kept to read a data directory written before the file).
    public static func openLMDB(path: String) throws(StoreError) -> RecordStore { try openLMDB(path: path, writerLock: true) }

    static func openLMDB(path: String, writerLock: Bool) throws(StoreError) -> RecordStore {
        try RecordStore(LMDBBackend(path: path, mode: .readWrite, dbs: DB.recordStore, writerLock: writerLock,
                                    mapBytesInitial: 64 << 20, mapBytesMax: Limits.mapBytesMax))
    }

    public static func memory() -> RecordStore { try! RecordStore(MemoryBackend()) }

    public var count: UInt64 { next }

    /// Bytes of a torn last append cut off at open (file form; 0: none).
    public var truncatedTailBytes: Int {
        if case let .file(f) = backing { return f.truncatedTailBytes }
        return 0
    }

    public func close() {
        switch backing {
        case let .kv(kv): kv.close()
        case let .file(f): f.close()
        }
    }

    /// Appends records durably, in order, at once.
    public func append(_ records: [[UInt8]]) throws(StoreError) {
        guard !records.isEmpty else { return }
        let first = next
        switch backing {
        case let .kv(kv):
            try kv.write { t throws(StoreError) in
                for (i, r) in records.enumerated() { try t.put(.records, Key.u64(first + UInt64(i)), Record.seal(r), append: true) }
            }
        case let .file(f): try f.append(records)
        }
        next = first + UInt64(records.count)
    }

    /// Every record, in order; a record whose seal does not match is `StoreError.corrupt`.
    public func all() throws(StoreError) -> [[UInt8]] {
        switch backing {
        case let .file(f): try f.all()
        case let .kv(kv): try Self.all(kv)
        }
    }

    private static func all(_ kv: any KVBackend) throws(StoreError) -> [[UInt8]] {
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

    /// Replaces the whole list durably, at once (compaction).
    public func replaceAll(_ records: [[UInt8]]) throws(StoreError) {
        switch backing {
        case let .kv(kv):
            try kv.write { t throws(StoreError) in
                try t.clear(.records)
                for (i, r) in records.enumerated() { try t.put(.records, Key.u64(UInt64(i)), Record.seal(r), append: true) }
            }
        case let .file(f): try f.replaceAll(records)
        }
        next = UInt64(records.count)
    }
}
