import Foundation
import LedgerCore
import LedgerCrypto

/// The consensus records as one append-only file (schemas/FORMAT.md §12): a header,
/// then one frame per append — `"CLAPPEND" | u32 n | BLAKE2b-256(u32 n ‖ body) | body`,
/// the body holding the append's records as `u32 len | record`. An append is one
/// `pwrite` and one `fdatasync`, where an LMDB commit needs two syncs (its data pages,
/// then its meta page): these records are written on the path of every pre-prepare,
/// prepare and commit.
///
/// A crash during an append can leave its frame torn (cut short, or with holes where
/// the disk had not written its sectors yet). It was never acknowledged — its sync had
/// not returned, so nothing that depended on it was sent — and opening the file cuts
/// it off, whole. A frame that fails its check with a whole frame anywhere after it is
/// damage, not a torn append: `StoreError.corrupt`, the file is left as it is, and the
/// node refuses to start. (Damage to the last frame looks like a torn append and is
/// cut off: a checksummed log cannot tell the two apart.) Compaction writes a new
/// file, syncs it, renames it over the old one and syncs the directory: a crash leaves
/// one list or the other. After a failed write or sync the store is closed: the
/// kernel may have dropped the pages, so going on could acknowledge what is not on disk.
final class RecordFile: @unchecked Sendable {
    static let magic = Array("CLRECORD".utf8)
    static let frameMarker = Array("CLAPPEND".utf8)
    static let frameOverhead = 8 + 4 + 32
    static let version: UInt16 = 1
    static var headerBytes: Int { magic.count + 2 }
    static let fileName = "records"

    let dir: String
    var path: String { dir + "/" + Self.fileName }
    private var fd: Int32 = -1
    private var lockFD: Int32 = -1
    private var end: Int = 0
    /// Bytes of a torn last append cut off when the file was opened (0: none).
    private(set) var truncatedTailBytes = 0
    /// Records the file held when it was opened.
    private(set) var countAtOpen = 0
    /// Those records, parsed (and checked) at open, until the first `all()` takes them:
    /// a node reads its records once at start, and reading and hashing the file a
    /// second time for that would repeat what the open just did.
    private var recordsAtOpen: [[UInt8]]?

    /// Opens the file in directory `dir`, holding its writer lock. A missing file is
    /// created holding `initial` (a migration's records), whole or not at all.
    init(dir: String, initial: () throws(StoreError) -> [[UInt8]] = { [] }) throws(StoreError) {
        self.dir = dir
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        catch { throw LMDBBackend.ioError("mkdir", dir, errno) }
        lockFD = try LMDBBackend.lockWriter(dir)
        do throws(StoreError) {
            unlink(path + ".new")  // a compaction that did not finish
            if access(path, F_OK) != 0 {
                Glibc.close(try write(Self.contents(try initial())))
                try Self.syncDirectory(dir)
            }
            fd = open(path, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { throw LMDBBackend.ioError("open", path, errno) }
            let bytes = try readAll()
            let (records, good) = try Self.parse(bytes, path: path)
            countAtOpen = records.count
            recordsAtOpen = records
            if good < bytes.count {
                // The torn tail of an append that never completed.
                guard ftruncate(fd, off_t(good)) == 0, fdatasync(fd) == 0 else { throw LMDBBackend.ioError("truncate torn tail", path, errno) }
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
        LMDBBackend.unlockWriter(lockFD)
        lockFD = -1
    }

    static var header: [UInt8] {
        var w = ByteWriter(capacity: headerBytes)
        w.raw(magic); w.u16(version)
        return w.bytes
    }

    static func contents(_ records: [[UInt8]]) -> [UInt8] {
        var w = ByteWriter(capacity: headerBytes + frameOverhead + records.reduce(0) { $0 + $1.count + 4 })
        w.raw(header)
        if !records.isEmpty { frame(records, into: &w) }
        return w.bytes
    }

    /// One append's frame.
    static func frame(_ records: [[UInt8]], into w: inout ByteWriter) {
        var body = ByteWriter(capacity: records.reduce(0) { $0 + $1.count + 4 })
        for r in records { body.blob32(r) }
        precondition(body.bytes.count <= Int(UInt32.max), "an append over 4 GiB")
        var n = ByteWriter(capacity: 4)
        n.u32(UInt32(body.bytes.count))
        w.raw(frameMarker)
        w.raw(n.bytes)
        w.raw(Blake2b.hash(n.bytes + body.bytes).bytes)
        w.raw(body.bytes)
    }

    /// The records in `bytes` and where the last whole frame ends. The first frame that
    /// does not check out ends the list — a torn append — unless a whole frame follows
    /// it anywhere: then it is damage in the middle of the file, and corrupt.
    static func parse(_ bytes: [UInt8], path: String) throws(StoreError) -> (records: [[UInt8]], end: Int) {
        var header = ByteReader(bytes)
        guard let m = try? header.raw(magic.count, "records.magic"), m.elementsEqual(magic), let v = try? header.u16("records.version") else {
            throw .corrupt(record: path, reason: "not a consensus record file (bad magic)")
        }
        guard v == version else { throw .corrupt(record: path, reason: "unknown record file version \(v)") }
        var out: [[UInt8]] = []
        var at = headerBytes
        while at < bytes.count {
            if let (records, next) = try frame(bytes, at: at, path: path) {
                out += records
                at = next
                continue
            }
            var p = at + 1
            while p + frameOverhead <= bytes.count {
                if bytes[p] == frameMarker[0] {
                    let whole: Bool
                    do throws(StoreError) { whole = try frame(bytes, at: p, path: path) != nil } catch { whole = true }
                    if whole { throw .corrupt(record: "\(path)@\(at)", reason: "a damaged append with whole appends after it (at \(p))") }
                }
                p += 1
            }
            break
        }
        return (out, at)
    }

    /// The records of the frame at `at` and where the next begins; nil if the frame is
    /// not whole or fails its checksum. A frame that checks out but whose body does not
    /// split into records was written wrong: corrupt.
    static func frame(_ bytes: [UInt8], at: Int, path: String) throws(StoreError) -> ([[UInt8]], Int)? {
        var r = ByteReader(bytes[at...])
        guard let marker = try? r.raw(frameMarker.count, "frame.marker"), marker.elementsEqual(frameMarker),
              let n = try? r.u32("frame.length"), let sum = try? r.b32("frame.checksum"), let body = try? r.raw(Int(n), "frame.body"),
              Blake2b.hash(Array(bytes[at + frameMarker.count ..< at + frameMarker.count + 4]) + Array(body)) == sum else { return nil }
        var records: [[UInt8]] = []
        var b = ByteReader(body)
        while b.remaining > 0 {
            guard let record = try? b.blob32("record", max: b.remaining) else {
                throw .corrupt(record: "\(path)@\(at)", reason: "an append whose records do not fill it")
            }
            records.append(record)
        }
        return (records, r.offset)
    }

    func all() throws(StoreError) -> [[UInt8]] {
        if let r = recordsAtOpen {
            recordsAtOpen = nil
            return r
        }
        let bytes = try readAll()
        return try Self.parse(Array(bytes.prefix(end)), path: path).records
    }

    /// Appends in one frame and makes it durable before returning. On failure the store
    /// closes itself (the kernel may have dropped the pages); a reopen cuts off a torn
    /// frame.
    func append(_ records: [[UInt8]]) throws(StoreError) {
        guard fd >= 0 else { throw .closed(path: path) }
        recordsAtOpen = nil
        var w = ByteWriter(capacity: Self.frameOverhead + records.reduce(0) { $0 + $1.count + 4 })
        Self.frame(records, into: &w)
        let bytes = w.bytes
        do throws(StoreError) {
            try writeFully(fd, bytes, at: end)
            guard fdatasync(fd) == 0 else { throw LMDBBackend.ioError("fdatasync", path, errno) }
        } catch {
            // A full disk: the part written is cut off again, so the file is as it was
            // and the same append can be retried once there is room (the node waits
            // for that rather than stopping).
            if case .diskFull = error, ftruncate(fd, off_t(end)) == 0, fdatasync(fd) == 0 { throw error }
            // Otherwise closed: a reopen reads what did reach the disk (a torn append is cut off).
            Glibc.close(fd); fd = -1
            throw error
        }
        end += bytes.count
    }

    /// Replaces the whole list (compaction).
    func replaceAll(_ records: [[UInt8]]) throws(StoreError) {
        guard fd >= 0 else { throw .closed(path: path) }
        recordsAtOpen = nil
        let bytes = Self.contents(records)
        let newFD = try write(bytes)
        Glibc.close(fd)
        fd = newFD
        end = bytes.count
        do throws(StoreError) { try Self.syncDirectory(dir) } catch {
            Glibc.close(fd); fd = -1
            throw error
        }
    }

    /// Makes `bytes` the record file: written to a new file, synced, renamed over the
    /// old one (a crash leaves the old file or the new one; the caller syncs the
    /// directory). Returns the new file's descriptor.
    private func write(_ bytes: [UInt8]) throws(StoreError) -> Int32 {
        let tmp = path + ".new"
        let f = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard f >= 0 else { throw LMDBBackend.ioError("create", tmp, errno) }
        do throws(StoreError) {
            try writeFully(f, bytes, at: 0)
            guard fdatasync(f) == 0 else { throw LMDBBackend.ioError("fdatasync", tmp, errno) }
            guard rename(tmp, path) == 0 else { throw LMDBBackend.ioError("rename", path, errno) }
        } catch {
            Glibc.close(f)
            unlink(tmp)
            throw error
        }
        return f
    }

    static func syncDirectory(_ dir: String) throws(StoreError) {
        let d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard d >= 0 else { throw LMDBBackend.ioError("open directory", dir, errno) }
        defer { Glibc.close(d) }
        guard fsync(d) == 0 else { throw LMDBBackend.ioError("fsync directory", dir, errno) }
    }

    private func writeFully(_ f: Int32, _ bytes: [UInt8], at offset: Int) throws(StoreError) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(f, $0.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                if e == ENOSPC || e == EDQUOT { throw .diskFull(path: path) }
                throw LMDBBackend.ioError("pwrite", path, e)
            }
            done += n
        }
    }

    private func readAll() throws(StoreError) -> [UInt8] {
        guard fd >= 0 else { throw .closed(path: path) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw LMDBBackend.ioError("fstat", path, errno) }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < out.count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(done)) }
            if n < 0 { if errno == EINTR { continue }; throw LMDBBackend.ioError("pread", path, errno) }
            if n == 0 { break }
            done += n
        }
        return Array(out.prefix(done))
    }

}
