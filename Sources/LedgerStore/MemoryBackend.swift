import Foundation
import LedgerCore

/// An in-memory backend with LMDB's semantics: ordered keys, all-or-nothing write
/// transactions (a copy of the maps is committed only when the body returns).
final class MemoryBackend: KVBackend, @unchecked Sendable {
    let path = ":memory:"
    private let lock = NSLock()
    private var dbs = [[[UInt8]: [UInt8]]](repeating: [:], count: DB.allCases.count)

    final class Txn: KVTxn {
        var dbs: [[[UInt8]: [UInt8]]]
        let writable: Bool
        init(_ dbs: [[[UInt8]: [UInt8]]], writable: Bool) { self.dbs = dbs; self.writable = writable }

        func get(_ db: DB, _ key: [UInt8]) throws(StoreError) -> [UInt8]? { dbs[db.rawValue][key] }
        func put(_ db: DB, _ keyP: UnsafeRawBufferPointer, _ valueP: UnsafeRawBufferPointer, _ suffix: UnsafeRawBufferPointer,
                 append: Bool) throws(StoreError) {
            guard writable else { throw .readOnly(path: ":memory:") }
            let key = Array(keyP), value = Array(valueP) + Array(suffix)
            if append, let last = dbs[db.rawValue].keys.max(by: { $0.lexicographicallyPrecedes($1) }),
               !last.lexicographicallyPrecedes(key) {
                throw .invalidAppend("key out of order in \(db.name)")
            }
            dbs[db.rawValue][key] = value
        }
        func insertNew(_ db: DB, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws(StoreError) -> Bool {
            guard writable else { throw .readOnly(path: ":memory:") }
            let k = Array(key)
            guard dbs[db.rawValue][k] == nil else { return false }
            dbs[db.rawValue][k] = Array(value)
            return true
        }
        func sortedKeys(_ db: DB) -> [[UInt8]] { dbs[db.rawValue].keys.sorted { $0.lexicographicallyPrecedes($1) } }
        func scan(_ db: DB, from: [UInt8], prefix: [UInt8], limit: Int) throws(StoreError) -> [(key: [UInt8], value: [UInt8])] {
            var out: [(key: [UInt8], value: [UInt8])] = []
            for k in sortedKeys(db) where !k.lexicographicallyPrecedes(from) {
                guard k.starts(with: prefix), out.count < limit else { break }
                out.append((k, dbs[db.rawValue][k]!))
            }
            return out
        }
        func visit(_ db: DB, from: [UInt8], limit: Int,
                   _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws(StoreError) -> Bool) throws(StoreError) {
            for row in try scan(db, from: from, prefix: [], limit: limit) {
                let go = try withBytes(of: row.key) { k throws(StoreError) in try withBytes(of: row.value) { v throws(StoreError) in try body(k, v) } }
                if !go { return }
            }
        }
        func floor(_ db: DB, _ key: [UInt8], prefix: [UInt8]) throws(StoreError) -> (key: [UInt8], value: [UInt8])? {
            guard let k = sortedKeys(db).last(where: { !key.lexicographicallyPrecedes($0) && $0.starts(with: prefix) }) else { return nil }
            return (k, dbs[db.rawValue][k]!)
        }
        func clear(_ db: DB) throws(StoreError) { dbs[db.rawValue] = [:] }
        func delete(_ db: DB, _ key: [UInt8]) throws(StoreError) {
            guard writable else { throw .readOnly(path: ":memory:") }
            dbs[db.rawValue][key] = nil
        }
    }

    func close() {}

    func read<T>(_ body: (any KVTxn) throws(StoreError) -> T) throws(StoreError) -> T {
        lock.lock(); defer { lock.unlock() }
        return try body(Txn(dbs, writable: false))
    }

    func write<T>(_ body: (any KVTxn) throws(StoreError) -> T) throws(StoreError) -> T {
        lock.lock(); defer { lock.unlock() }
        let t = Txn(dbs, writable: true)
        let r = try body(t)
        dbs = t.dbs
        return r
    }

    /// Test hook: overwrite a stored value, as a flipped bit on disk would.
    func tamper(_ db: DB, _ key: [UInt8], _ f: (inout [UInt8]) -> Void) {
        lock.lock(); defer { lock.unlock() }
        if var v = dbs[db.rawValue][key] { f(&v); dbs[db.rawValue][key] = v }
    }
}

extension LedgerLog {
    /// Test hook for the in-memory backend: change a stored event's record, as a flipped
    /// bit on disk would. Does nothing on other backends.
    public func tamperEvent(_ seq: SequenceNumber, _ f: (inout [UInt8]) -> Void) {
        (kv as? MemoryBackend)?.tamper(.events, Key.u64(seq.value), f)
        cacheLock.withLock { tailCache = TailIndex() }
    }
}
