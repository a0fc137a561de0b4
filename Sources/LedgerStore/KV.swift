import LedgerCore
import LedgerCrypto

/// The named databases (schemas/FORMAT.md §5).
enum DB: Int, CaseIterable {
    case events, blocks, meta, checkpoints  // the main environment
    case eventIDs, streams, indexMeta  // the index environment (Index.swift)
    case records  // a record store's environment (RecordStore.swift)

    static let main: [DB] = [.events, .blocks, .meta, .checkpoints]
    static let index: [DB] = [.eventIDs, .streams, .indexMeta]
    static let recordStore: [DB] = [.records]
    var name: String {
        switch self {
        case .events: "events"
        case .blocks: "blocks"
        case .eventIDs: "event_ids"
        case .streams: "streams"
        case .meta: "meta"
        case .checkpoints: "checkpoints"
        case .indexMeta: "index_meta"
        case .records: "records"
        }
    }
}

/// The operations the log needs from a key-value store with ordered keys and
/// transactions. LMDB and an in-memory map implement it.
protocol KVTxn {
    func get(_ db: DB, _ key: [UInt8]) throws(StoreError) -> [UInt8]?
    /// `append`: the key is larger than every key in `db` (LMDB's MDB_APPEND). The
    /// value is the concatenation of `value` and `suffix` (written in place, no copy).
    func put(_ db: DB, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ suffix: UnsafeRawBufferPointer,
             append: Bool) throws(StoreError)
    /// Puts unless the key exists; returns false (and writes nothing) when it does.
    func insertNew(_ db: DB, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws(StoreError) -> Bool
    /// Keys ≥ `from` that start with `prefix`, in order, at most `limit`.
    func scan(_ db: DB, from: [UInt8], prefix: [UInt8], limit: Int) throws(StoreError) -> [(key: [UInt8], value: [UInt8])]
    /// Visits keys ≥ `from` in order, at most `limit`, with pointers valid only during
    /// the call (no copies); stops early when `body` returns false.
    func visit(_ db: DB, from: [UInt8], limit: Int,
               _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws(StoreError) -> Bool) throws(StoreError)
    /// The greatest key ≤ `key` that starts with `prefix`.
    func floor(_ db: DB, _ key: [UInt8], prefix: [UInt8]) throws(StoreError) -> (key: [UInt8], value: [UInt8])?
    func delete(_ db: DB, _ key: [UInt8]) throws(StoreError)
    func clear(_ db: DB) throws(StoreError)
}

protocol KVBackend: AnyObject, Sendable {
    var path: String { get }
    /// Releases the files; later transactions fail with `StoreError.closed`.
    func close()
    func read<T>(_ body: (any KVTxn) throws(StoreError) -> T) throws(StoreError) -> T
    /// Runs `body` in a write transaction and commits durably; `body` may run more than
    /// once (after the map grows), so it must only depend on its inputs.
    func write<T>(_ body: (any KVTxn) throws(StoreError) -> T) throws(StoreError) -> T
}

extension KVTxn {
    func put(_ db: DB, _ key: [UInt8], _ value: [UInt8], append: Bool) throws(StoreError) {
        try withBytes(of: key) { k throws(StoreError) in
            try withBytes(of: value) { v throws(StoreError) in try put(db, k, v, UnsafeRawBufferPointer(start: nil, count: 0), append: append) }
        }
    }
}

/// `withUnsafeBytes` that keeps a typed error (the standard library's only rethrows
/// `any Error`), for the in-memory bytes of a big-endian integer. Not generic: the
/// memory of a struct is not its encoding (an identifier's words are host-endian).
func withBytes<R, E: Error>(of value: UInt64, _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    var v = value
    let r: Result<R, E> = withUnsafeBytes(of: &v) { p in Result { () throws(E) in try body(p) } }
    return try r.get()
}

/// The 32 bytes of a key, digest or identifier, in their encoded order.
func withBytes<N: Bytes32Named, R, E: Error>(of b: N, _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    let r: Result<R, E> = b.raw.withBytes { p in Result { () throws(E) in try body(p) } }
    return try r.get()
}

func withBytes<R, E: Error>(of a: [UInt8], _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    let r: Result<R, E> = a.withUnsafeBytes { p in Result { () throws(E) in try body(p) } }
    return try r.get()
}

enum Key {
    static func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }
    static func decodeU64(_ b: [UInt8]) -> UInt64? {
        guard b.count == 8 else { return nil }
        return b.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// Checksummed records: every value that is not self-verifying is stored as
/// BLAKE2b-256(body) | body and checked on every read (LMDB has no page checksums).
enum Record {
    static func seal(_ body: [UInt8]) -> [UInt8] {
        var out = Blake2b.hash(body).bytes
        out.append(contentsOf: body)
        return out
    }

    static func open(_ value: [UInt8], record: @autoclosure () -> String) throws(StoreError) -> ArraySlice<UInt8> {
        guard value.count >= 32 else { throw .corrupt(record: record(), reason: "shorter than its checksum") }
        let body = value[32...]
        guard Blake2b.hash(body) == Bytes32(value[0 ..< 32]) else {
            throw .corrupt(record: record(), reason: "checksum mismatch")
        }
        return body
    }
}
