import CLMDB
import Foundation
import LedgerCore

extension LedgerLog {
    public enum OpenMode: Sendable { case readWrite, readOnly }

    /// Opens (creating if needed, in read-write mode) the LMDB log in directory `path`.
    /// A read-write open takes the directory's writer lock: a second writer gets
    /// `StoreError.locked`. A read-only open never writes and works on a copied log in a
    /// read-only directory.
    /// `mapBytesMax` caps automatic growth (tests use a small one to reach MDB_MAP_FULL).
    /// The id and stream indexes live in `<path>/index` (Index.swift): a writer keeps
    /// them caught up on a background thread; a reader uses them when they exist.
    public static func openLMDB(path: String, mode: OpenMode = .readWrite, mapBytesInitial: Int = Limits.mapBytesInitial,
                                mapBytesMax: Int = Limits.mapBytesMax) throws(StoreError) -> LedgerLog {
        let main = try LMDBBackend(path: path, mode: mode, dbs: DB.main, writerLock: mode == .readWrite,
                                   mapBytesInitial: mapBytesInitial, mapBytesMax: mapBytesMax)
        let indexPath = path + "/index"
        var index: LMDBBackend?
        switch mode {
        case .readWrite:
            let ix = try LMDBBackend(path: indexPath, mode: .readWrite, dbs: DB.index, writerLock: false,
                                     mapBytesInitial: mapBytesInitial, mapBytesMax: mapBytesMax)
            if !LedgerLog.validate(index: ix, main: main) {
                try ix.write { t throws(StoreError) in try t.clear(.eventIDs); try t.clear(.streams); try t.clear(.indexMeta) }
            }
            index = ix
        case .readOnly:
            // No index, one that cannot be opened, or one that does not belong to this
            // log: lookups derive everything from the events.
            index = try? LMDBBackend(path: indexPath, mode: .readOnly, dbs: DB.index, writerLock: false,
                                     mapBytesInitial: mapBytesInitial, mapBytesMax: mapBytesMax)
            if let ix = index, !LedgerLog.validate(index: ix, main: main) { index = nil }
        }
        let log = LedgerLog(main, index: index, background: mode == .readWrite)
        // A writer starts with the index caught up, so the unindexed tail it keeps in
        // memory is never more than the last few blocks.
        if mode == .readWrite { try log.catchUpIndex() }
        return log
    }
}

/// A pthread reader-writer lock.
final class RWLock: @unchecked Sendable {
    private let l = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
    init() { l.initialize(to: pthread_rwlock_t()); pthread_rwlock_init(l, nil) }
    deinit { pthread_rwlock_destroy(l); l.deallocate() }
    func shared() { pthread_rwlock_rdlock(l) }
    func exclusive() { pthread_rwlock_wrlock(l) }
    func unlock() { pthread_rwlock_unlock(l) }
}

final class LMDBBackend: KVBackend, @unchecked Sendable {
    let path: String
    let mode: LedgerLog.OpenMode
    private var env: OpaquePointer?
    private var dbis = [MDB_dbi](repeating: 0, count: DB.allCases.count)
    private let dbs: [DB]
    private var lockFD: Int32 = -1
    private var mapSize: Int
    private let mapBytesMax: Int
    // Transactions share this lock; growing the map takes it alone, since LMDB's map can
    // only grow while no transaction of this process is open. (LMDB itself serialises
    // writers and lets readers run beside them.)
    private let lock = RWLock()

    init(path: String, mode: LedgerLog.OpenMode, dbs: [DB], writerLock: Bool, mapBytesInitial: Int, mapBytesMax: Int) throws(StoreError) {
        self.path = path
        self.mode = mode
        self.dbs = dbs
        self.mapBytesMax = mapBytesMax
        mapSize = min(mapBytesInitial, mapBytesMax)
        if mode == .readWrite {
            do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
            catch { throw Self.ioError("mkdir", path, errno) }
            if writerLock { try takeWriterLock() }
        } else {
            guard FileManager.default.fileExists(atPath: path + "/data.mdb") else { throw .notInitialized }
        }
        var e: OpaquePointer?
        try check(mdb_env_create(&e), "mdb_env_create")
        env = e
        do {
            try check(mdb_env_set_maxdbs(e, MDB_dbi(DB.allCases.count + 2)), "mdb_env_set_maxdbs")
            // An existing file may be larger than our initial map: never shrink it.
            var st = stat()
            if stat(path + "/data.mdb", &st) == 0 { mapSize = max(mapSize, Self.rounded(Int(st.st_size))) }
            try check(mdb_env_set_mapsize(e, mapSize), "mdb_env_set_mapsize")
            var flags = UInt32(MDB_NOTLS)
            // The index is derived and checked against the log at open (Index.swift): a
            // crash may undo its last catch-up but, with NOMETASYNC, never its integrity.
            // One fsync per catch-up instead of two, beside the log's own.
            if dbs == DB.index { flags |= UInt32(MDB_NOMETASYNC) }
            if mode == .readOnly { flags |= UInt32(MDB_RDONLY) }
            var rc = mdb_env_open(e, path, flags, 0o644)
            if rc == EACCES || rc == EROFS, mode == .readOnly {
                // A copied log in a read-only directory: LMDB cannot create its lock
                // file, and no other process writes there, so open it without one.
                rc = mdb_env_open(e, path, flags | UInt32(MDB_NOLOCK), 0o644)
            }
            if rc == EACCES || rc == EROFS { throw StoreError.readOnly(path: path) }
            try check(rc, "mdb_env_open")
            try openDatabases()
        } catch let error as StoreError {
            mdb_env_close(e)
            env = nil
            releaseWriterLock()
            throw error
        } catch {
            fatalError("unreachable: only StoreError is thrown here")
        }
    }

    deinit { close() }

    func close() {
        lock.exclusive(); defer { lock.unlock() }
        if let env { mdb_env_close(env) }
        env = nil
        releaseWriterLock()
    }

    static func rounded(_ n: Int) -> Int { (n + (1 << 20) - 1) & ~((1 << 20) - 1) }

    private func takeWriterLock() throws(StoreError) { lockFD = try Self.lockWriter(path) }

    private func releaseWriterLock() {
        Self.unlockWriter(lockFD)
        lockFD = -1
    }

    /// Takes the exclusive `writer.lock` of directory `dir` (shared by every store that
    /// writes there, LMDB or not): its descriptor, or `.locked` if another holds it.
    static func lockWriter(_ dir: String) throws(StoreError) -> Int32 {
        let fd = open(dir + "/writer.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 {
            if errno == EACCES || errno == EROFS { throw .readOnly(path: dir) }
            throw Self.ioError("open writer.lock", dir, errno)
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let err = errno
            Glibc.close(fd)
            if err == EWOULDBLOCK { throw .locked(path: dir) }
            throw Self.ioError("flock writer.lock", dir, err)
        }
        return fd
    }

    static func unlockWriter(_ fd: Int32) {
        if fd >= 0 { flock(fd, LOCK_UN); Glibc.close(fd) }
    }

    private func openDatabases() throws(StoreError) {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, mode == .readOnly ? UInt32(MDB_RDONLY) : 0, &txn), "mdb_txn_begin")
        for db in dbs {
            var dbi: MDB_dbi = 0
            let rc = mdb_dbi_open(txn, db.name, mode == .readOnly ? 0 : UInt32(MDB_CREATE), &dbi)
            if rc == MDB_NOTFOUND { mdb_txn_abort(txn); throw .notInitialized }
            if rc != 0 { mdb_txn_abort(txn); throw mapError(rc, "mdb_dbi_open \(db.name)") }
            dbis[db.rawValue] = dbi
        }
        let rc = mdb_txn_commit(txn)
        if rc != 0 { throw mapError(rc, "mdb_txn_commit") }
    }

    static func ioError(_ op: String, _ path: String, _ code: Int32) -> StoreError {
        .io(operation: op, path: path, code: code, message: String(cString: strerror(code)))
    }

    func mapError(_ rc: Int32, _ op: String) -> StoreError {
        // LMDB turns a short write into EIO: when the filesystem has no room left, that is a full disk.
        if rc == EIO, diskIsFull() { return .diskFull(path: path) }
        return switch rc {
        case MDB_MAP_FULL: .mapFull(path: path)
        case ENOSPC, EDQUOT: .diskFull(path: path)
        case EACCES, EROFS: .readOnly(path: path)
        case MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_INVALID, MDB_VERSION_MISMATCH:
            .corrupt(record: "\(path)/data.mdb", reason: "\(op): \(String(cString: mdb_strerror(rc)))")
        default: .io(operation: op, path: path, code: rc, message: String(cString: mdb_strerror(rc)))
        }
    }

    func diskIsFull() -> Bool {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return false }
        return UInt64(s.f_bavail) * UInt64(s.f_frsize) < UInt64(1 << 20)
    }

    /// `op` is an autoclosure: the message is only built on failure (building it on
    /// every put was a fifth of the append path).
    @inline(__always)
    func check(_ rc: Int32, _ op: @autoclosure () -> String) throws(StoreError) {
        if rc != 0 { throw mapError(rc, op()) }
    }

    final class Txn: KVTxn {
        let txn: OpaquePointer?
        unowned let backend: LMDBBackend
        init(_ txn: OpaquePointer?, _ backend: LMDBBackend) { self.txn = txn; self.backend = backend }

        func dbi(_ db: DB) -> MDB_dbi { backend.dbis[db.rawValue] }

        func get(_ db: DB, _ key: [UInt8]) throws(StoreError) -> [UInt8]? {
            var v = MDB_val()
            let rc = key.withUnsafeBytes { kp in
                var kv = MDB_val(mv_size: kp.count, mv_data: UnsafeMutableRawPointer(mutating: kp.baseAddress))
                return mdb_get(txn, dbi(db), &kv, &v)
            }
            if rc == MDB_NOTFOUND { return nil }
            try backend.check(rc, "mdb_get \(db.name)")
            return Self.bytes(v)
        }

        static func bytes(_ v: MDB_val) -> [UInt8] {
            guard v.mv_size > 0, let p = v.mv_data else { return [] }
            return Array(UnsafeRawBufferPointer(start: p, count: v.mv_size))
        }

        func put(_ db: DB, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ suffix: UnsafeRawBufferPointer,
                 append: Bool) throws(StoreError) {
            // LMDB only reads the key. With MDB_RESERVE it hands back the value's place in
            // the map, and both parts are copied straight there.
            var kv = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
            var vv = MDB_val(mv_size: value.count + suffix.count, mv_data: nil)
            let rc = mdb_put(txn, dbi(db), &kv, &vv, UInt32(MDB_RESERVE) | (append ? UInt32(MDB_APPEND) : 0))
            if rc == MDB_KEYEXIST { throw .invalidAppend("key out of order in \(db.name)") }
            try backend.check(rc, "mdb_put \(db.name)")
            if value.count > 0 { vv.mv_data.copyMemory(from: value.baseAddress!, byteCount: value.count) }
            if suffix.count > 0 { (vv.mv_data + value.count).copyMemory(from: suffix.baseAddress!, byteCount: suffix.count) }
        }

        func insertNew(_ db: DB, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws(StoreError) -> Bool {
            var kv = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
            var vv = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
            let rc = mdb_put(txn, dbi(db), &kv, &vv, UInt32(MDB_NOOVERWRITE))
            if rc == MDB_KEYEXIST { return false }
            try backend.check(rc, "mdb_put \(db.name)")
            return true
        }

        func withCursor<T>(_ db: DB, _ body: (OpaquePointer?) throws(StoreError) -> T) throws(StoreError) -> T {
            var c: OpaquePointer?
            try backend.check(mdb_cursor_open(txn, dbi(db), &c), "mdb_cursor_open \(db.name)")
            defer { mdb_cursor_close(c) }
            return try body(c)
        }

        func scan(_ db: DB, from: [UInt8], prefix: [UInt8], limit: Int) throws(StoreError) -> [(key: [UInt8], value: [UInt8])] {
            try withCursor(db) { c throws(StoreError) in
                var out: [(key: [UInt8], value: [UInt8])] = []
                var start = from
                var k = MDB_val(), v = MDB_val()
                // LMDB refuses an empty key: a scan from the start is MDB_FIRST.
                var rc = start.isEmpty ? mdb_cursor_get(c, &k, &v, MDB_FIRST) : start.withUnsafeMutableBytes { p in
                    k = MDB_val(mv_size: p.count, mv_data: p.baseAddress)
                    return mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)
                }
                while rc == 0, out.count < limit {
                    let key = Self.bytes(k)
                    guard key.starts(with: prefix) else { break }
                    out.append((key, Self.bytes(v)))
                    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)
                }
                if rc != 0, rc != MDB_NOTFOUND { try backend.check(rc, "mdb_cursor_get \(db.name)") }
                return out
            }
        }

        func visit(_ db: DB, from: [UInt8], limit: Int,
                   _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws(StoreError) -> Bool) throws(StoreError) {
            try withCursor(db) { c throws(StoreError) in
                var start = from
                var k = MDB_val(), v = MDB_val()
                var rc = start.isEmpty ? mdb_cursor_get(c, &k, &v, MDB_FIRST) : start.withUnsafeMutableBytes { p in
                    k = MDB_val(mv_size: p.count, mv_data: p.baseAddress)
                    return mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)
                }
                var n = 0
                while rc == 0, n < limit {
                    let go = try body(UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
                                      UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
                    if !go { return }
                    n += 1
                    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)
                }
                if rc != 0, rc != MDB_NOTFOUND { try backend.check(rc, "mdb_cursor_get \(db.name)") }
            }
        }

        func floor(_ db: DB, _ key: [UInt8], prefix: [UInt8]) throws(StoreError) -> (key: [UInt8], value: [UInt8])? {
            try withCursor(db) { c throws(StoreError) in
                var start = key
                var k = MDB_val(), v = MDB_val()
                var rc = start.withUnsafeMutableBytes { p in
                    k = MDB_val(mv_size: p.count, mv_data: p.baseAddress)
                    return mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)
                }
                if rc == MDB_NOTFOUND {
                    rc = mdb_cursor_get(c, &k, &v, MDB_LAST)
                } else if rc == 0, Self.bytes(k) != key {
                    rc = mdb_cursor_get(c, &k, &v, MDB_PREV)
                }
                if rc == MDB_NOTFOUND { return nil }
                try backend.check(rc, "mdb_cursor_get \(db.name)")
                let found = Self.bytes(k)
                guard found.starts(with: prefix) else { return nil }
                return (found, Self.bytes(v))
            }
        }

        func delete(_ db: DB, _ key: [UInt8]) throws(StoreError) {
            let rc = key.withUnsafeBytes { kp in
                var kv = MDB_val(mv_size: kp.count, mv_data: UnsafeMutableRawPointer(mutating: kp.baseAddress))
                return mdb_del(txn, dbi(db), &kv, nil)
            }
            if rc == MDB_NOTFOUND { return }
            try backend.check(rc, "mdb_del \(db.name)")
        }

        func clear(_ db: DB) throws(StoreError) {
            try backend.check(mdb_drop(txn, dbi(db), 0), "mdb_drop \(db.name)")
        }
    }

    func read<T>(_ body: (any KVTxn) throws(StoreError) -> T) throws(StoreError) -> T {
        lock.shared()
        guard env != nil else { lock.unlock(); throw .closed(path: path) }
        var txn: OpaquePointer?
        var rc = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn)
        if rc == MDB_MAP_RESIZED {
            // Another process grew the map: adopt its size (alone) and try again.
            lock.unlock()
            lock.exclusive()
            let set = mdb_env_set_mapsize(env, 0)
            lock.unlock()
            try check(set, "mdb_env_set_mapsize")
            lock.shared()
            rc = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn)
        }
        defer { lock.unlock() }
        try check(rc, "mdb_txn_begin")
        defer { mdb_txn_abort(txn) }
        return try body(Txn(txn, self))
    }

    func write<T>(_ body: (any KVTxn) throws(StoreError) -> T) throws(StoreError) -> T {
        guard mode == .readWrite else { throw .readOnly(path: path) }
        while true {
            lock.shared()
            guard env != nil else { lock.unlock(); throw .closed(path: path) }
            var txn: OpaquePointer?
            let begun = mdb_txn_begin(env, nil, 0, &txn)
            if begun != 0 { lock.unlock(); throw mapError(begun, "mdb_txn_begin") }
            let result: T
            do throws(StoreError) {
                result = try body(Txn(txn, self))
            } catch {
                mdb_txn_abort(txn)
                lock.unlock()
                if case .mapFull = error, try grow() { continue }
                throw error
            }
            let rc = mdb_txn_commit(txn)  // frees txn whatever the result
            lock.unlock()
            if rc == MDB_MAP_FULL, try grow() { continue }
            try check(rc, "mdb_txn_commit")
            return result
        }
    }

    private(set) var growths = 0
    /// Takes the lock alone: no transaction of this process may be open meanwhile.
    private func grow() throws(StoreError) -> Bool {
        lock.exclusive(); defer { lock.unlock() }
        guard mapSize < mapBytesMax else { return false }
        mapSize = min(mapSize * 2, mapBytesMax)
        growths += 1
        try check(mdb_env_set_mapsize(env, mapSize), "mdb_env_set_mapsize")
        return true
    }
}
