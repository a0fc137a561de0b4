import Foundation
import LedgerCore
import LedgerCrypto

/// The consensus records as one append-only file (schemas/FORMAT.md §12): a header,
/// then `u32 n | BLAKE2b-256(body) | body` per record. An append is one `pwrite` and
/// one `fdatasync`, where an LMDB commit needs two syncs (its data pages, then its meta
/// page): the records are written on the path of every pre-prepare, prepare and commit.
///
/// A crash during an append can leave a torn last record; it was never acknowledged
/// (its sync had not returned, so nothing that depends on it was sent), and opening
/// the file cuts it off. A record that fails its checksum with records after it is
/// damage, not a torn write: `StoreError.corrupt`, and the node refuses to start.
/// Compaction writes a new file, syncs it, renames it over the old one and syncs the
/// directory: a crash leaves one list or the other.
final class RecordFile: @unchecked Sendable {
    static let magic = Array("CLRECORD".utf8)
    static let version: UInt16 = 1
    static var headerBytes: Int { magic.count + 2 }
    static let fileName = "records"

    let dir: String
    var path: String { dir + "/" + Self.fileName }
    private var fd: Int32 = -1
    private var lockFD: Int32 = -1
    private var end: Int = 0
    /// Bytes of a torn last record cut off when the file was opened (0: none).
    private(set) var truncatedTailBytes = 0

    /// Opens the file in directory `dir`, holding its writer lock. A missing file is
    /// created holding `initial` (a migration's records), whole or not at all.
    init(dir: String, initial: () throws(StoreError) -> [[UInt8]] = { [] }) throws(StoreError) {
        self.dir = dir
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        catch { throw Self.ioError("mkdir", dir, errno) }
        lockFD = open(dir + "/writer.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFD >= 0 else { throw Self.ioError("open writer.lock", dir, errno) }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            let e = errno
            Glibc.close(lockFD); lockFD = -1
            if e == EWOULDBLOCK { throw .locked(path: dir) }
            throw Self.ioError("flock writer.lock", dir, e)
        }
        do throws(StoreError) {
            unlink(path + ".new")  // a compaction that did not finish
            if access(path, F_OK) != 0 {
                Glibc.close(try write(Self.contents(try initial())))
            }
            fd = open(path, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { throw Self.ioError("open", path, errno) }
            let bytes = try readAll()
            let (_, good) = try Self.parse(bytes, path: path)
            if good < bytes.count {
                // The torn tail of an append that never completed.
                guard ftruncate(fd, off_t(good)) == 0, fdatasync(fd) == 0 else { throw Self.ioError("truncate torn tail", path, errno) }
                truncatedTailBytes = bytes.count - good
            }
            end = good
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
        if lockFD >= 0 { flock(lockFD, LOCK_UN); Glibc.close(lockFD); lockFD = -1 }
    }

    static var header: [UInt8] {
        var w = ByteWriter(capacity: headerBytes)
        w.raw(magic); w.u16(version)
        return w.bytes
    }

    static func contents(_ records: [[UInt8]]) -> [UInt8] {
        var w = ByteWriter(capacity: headerBytes + records.reduce(0) { $0 + $1.count + 36 })
        w.raw(header)
        frame(records, into: &w)
        return w.bytes
    }

    static func frame(_ records: [[UInt8]], into w: inout ByteWriter) {
        for r in records {
            precondition(r.count <= Int(UInt32.max), "a consensus record over 4 GiB")
            w.u32(UInt32(r.count))
            w.raw(Blake2b.hash(r).bytes)
            w.raw(r)
        }
    }

    /// The records in `bytes` and where the last whole one ends. The first record that
    /// does not check out (cut short, or failing its checksum) ends the list — a torn
    /// append — unless a whole record follows it: then it is damage in the middle of the
    /// file, and corrupt.
    static func parse(_ bytes: [UInt8], path: String) throws(StoreError) -> (records: [[UInt8]], end: Int) {
        guard bytes.count >= headerBytes, Array(bytes[0 ..< magic.count]) == magic else {
            throw .corrupt(record: path, reason: "not a consensus record file (bad magic)")
        }
        let v = UInt16(bytes[magic.count]) << 8 | UInt16(bytes[magic.count + 1])
        guard v == version else { throw .corrupt(record: path, reason: "unknown record file version \(v)") }
        var out: [[UInt8]] = []
        var at = headerBytes
        while at < bytes.count {
            if let (body, next) = record(bytes, at: at) {
                out.append(body)
                at = next
                continue
            }
            if let next = declaredEnd(bytes, at: at), next < bytes.count, record(bytes, at: next) != nil {
                throw .corrupt(record: "\(path)[\(out.count)]", reason: "checksum mismatch")
            }
            break
        }
        return (out, at)
    }

    /// Where the record at `at` says it ends (nil: not even its frame is there).
    static func declaredEnd(_ bytes: [UInt8], at: Int) -> Int? {
        guard bytes.count - at >= 36 else { return nil }
        let n = Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
        return at + 36 + n
    }

    /// The record at `at` and where the next begins, if it is whole and checks out.
    static func record(_ bytes: [UInt8], at: Int) -> ([UInt8], Int)? {
        guard let next = declaredEnd(bytes, at: at), next <= bytes.count else { return nil }
        let body = Array(bytes[at + 36 ..< next])
        guard Blake2b.hash(body) == Bytes32(bytes[at + 4 ..< at + 36]) else { return nil }
        return (body, next)
    }

    func all() throws(StoreError) -> [[UInt8]] {
        let bytes = try readAll()
        return try Self.parse(Array(bytes.prefix(end)), path: path).records
    }

    /// Appends in one write and makes it durable before returning. On failure the file
    /// is cut back to where it was, so nothing half-written stays.
    func append(_ records: [[UInt8]]) throws(StoreError) {
        guard fd >= 0 else { throw .closed(path: path) }
        var w = ByteWriter(capacity: records.reduce(0) { $0 + $1.count + 36 })
        Self.frame(records, into: &w)
        let bytes = w.bytes
        do throws(StoreError) {
            try writeFully(fd, bytes, at: end)
            guard fdatasync(fd) == 0 else { throw Self.ioError("fdatasync", path, errno) }
        } catch {
            _ = ftruncate(fd, off_t(end))
            throw error
        }
        end += bytes.count
    }

    /// Replaces the whole list (compaction).
    func replaceAll(_ records: [[UInt8]]) throws(StoreError) {
        guard fd >= 0 else { throw .closed(path: path) }
        let bytes = Self.contents(records)
        let newFD = try write(bytes)
        Glibc.close(fd)
        fd = newFD
        end = bytes.count
    }

    /// Makes `bytes` the record file: written to a new file, synced, renamed over the
    /// old one, the directory synced (a crash leaves the old file or the new one).
    /// Returns the new file's descriptor.
    private func write(_ bytes: [UInt8]) throws(StoreError) -> Int32 {
        let tmp = path + ".new"
        let f = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard f >= 0 else { throw Self.ioError("create", tmp, errno) }
        do throws(StoreError) {
            try writeFully(f, bytes, at: 0)
            guard fdatasync(f) == 0 else { throw Self.ioError("fdatasync", tmp, errno) }
            guard rename(tmp, path) == 0 else { throw Self.ioError("rename", path, errno) }
            try syncDirectory()
        } catch {
            Glibc.close(f)
            unlink(tmp)
            throw error
        }
        return f
    }

    private func syncDirectory() throws(StoreError) {
        let d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard d >= 0 else { throw Self.ioError("open directory", dir, errno) }
        defer { Glibc.close(d) }
        guard fsync(d) == 0 else { throw Self.ioError("fsync directory", dir, errno) }
    }

    private func writeFully(_ f: Int32, _ bytes: [UInt8], at offset: Int) throws(StoreError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(f, $0.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                if e == ENOSPC || e == EDQUOT { throw .diskFull(path: path) }
                throw Self.ioError("pwrite", path, e)
            }
            done += n
        }
    }

    private func readAll() throws(StoreError) -> [UInt8] {
        guard fd >= 0 else { throw .closed(path: path) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw Self.ioError("fstat", path, errno) }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < out.count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(done)) }
            if n < 0 { if errno == EINTR { continue }; throw Self.ioError("pread", path, errno) }
            if n == 0 { break }
            done += n
        }
        return Array(out.prefix(done))
    }

    static func ioError(_ op: String, _ path: String, _ code: Int32) -> StoreError {
        .io(operation: op, path: path, code: code, message: String(cString: strerror(code)))
    }
}
