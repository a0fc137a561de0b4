import Foundation
@testable import LedgerStore
import Testing

/// The consensus record store: what a validator must find again after a crash so it
/// never contradicts itself (schemas/FORMAT.md §12).
@Suite struct RecordStoreTests {
    enum Form: String, CaseIterable, CustomTestStringConvertible {
        case file, lmdb
        var testDescription: String { rawValue }
        func open(_ path: String) throws -> RecordStore {
            switch self {
            case .file: try RecordStore.open(path: path)
            case .lmdb: try RecordStore.openLMDB(path: path)
            }
        }
    }

    static func records(_ n: Int, from: Int = 0) -> [[UInt8]] {
        (from ..< from + n).map { i in Array("record \(i) ".utf8) + [UInt8](repeating: UInt8(i & 0xFF), count: i * 7) }
    }

    /// Appends bytes to the record file, as a crash or a damaged disk would leave them.
    static func appendRaw(_ dir: String, _ bytes: [UInt8]) throws {
        let h = try #require(FileHandle(forWritingAtPath: dir + "/records"))
        defer { try? h.close() }
        try h.seekToEnd()
        try h.write(contentsOf: Data(bytes))
    }

    static func fileBytes(_ dir: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/records"))) }

    @Test(arguments: Form.allCases)
    func appendsAndCompactionsSurviveAReopen(_ form: Form) throws {
        let d = TempDir("records"); defer { d.cleanup() }
        var s = try form.open(d.path)
        #expect(try s.all().isEmpty && s.count == 0)
        try s.append(Self.records(3))
        try s.append(Self.records(2, from: 3))
        #expect(try s.all() == Self.records(5))
        s.close()
        s = try form.open(d.path)
        #expect(try s.all() == Self.records(5) && s.count == 5)
        try s.replaceAll(Self.records(2, from: 10))
        try s.append(Self.records(1, from: 20))
        s.close()
        s = try form.open(d.path)
        #expect(try s.all() == Self.records(2, from: 10) + Self.records(1, from: 20))
        #expect(s.count == 3)
        s.close()
    }

    @Test func aSecondWriterIsRefused() throws {
        let d = TempDir("records"); defer { d.cleanup() }
        let s = try RecordStore.open(path: d.path)
        defer { s.close() }
        #expect(throws: StoreError.locked(path: d.path)) { try RecordStore.open(path: d.path) }
    }

    @Test func aTornLastAppendIsCutOffAndNothingElse() throws {
        let d = TempDir("records"); defer { d.cleanup() }
        var s = try RecordStore.open(path: d.path)
        try s.append(Self.records(3))
        s.close()
        let whole = try Self.fileBytes(d.path)
        // Three ways an append is torn: its frame cut short, its body cut short, and
        // its blocks never written (the file grew, the bytes stayed zero); and a whole
        // frame whose body was only partly written (checksum fails, nothing after it).
        var wrongBody: [UInt8] = [0, 0, 0, 4] + [UInt8](repeating: 7, count: 32) + [1, 2, 3, 4]
        wrongBody[5] ^= 1
        for torn in [[0, 0, 1] as [UInt8], [0, 0, 0, 200] + [UInt8](repeating: 9, count: 50), [UInt8](repeating: 0, count: 100), wrongBody] {
            try Self.appendRaw(d.path, torn)
            s = try RecordStore.open(path: d.path)
            #expect(s.truncatedTailBytes == torn.count)
            #expect(try s.all() == Self.records(3))
            #expect(try Self.fileBytes(d.path) == whole)
            s.close()
        }
        // And appends go on after the cut.
        s = try RecordStore.open(path: d.path)
        try s.append(Self.records(1, from: 3))
        s.close()
        s = try RecordStore.open(path: d.path)
        #expect(try s.all() == Self.records(4) && s.truncatedTailBytes == 0)
        s.close()
    }

    @Test func damageWithRecordsAfterItIsCorruptNotCutOff() throws {
        let d = TempDir("records"); defer { d.cleanup() }
        let s = try RecordStore.open(path: d.path)
        try s.append(Self.records(3))
        s.close()
        var bytes = try Self.fileBytes(d.path)
        // A byte of the first record's body (after the 10-byte header and its 36-byte frame).
        bytes[RecordFile.headerBytes + 36 + 2] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: d.path + "/records"))
        #expect(throws: StoreError.corrupt(record: d.path + "/records[0]", reason: "checksum mismatch")) {
            try RecordStore.open(path: d.path)
        }
        // Refused, and nothing was cut: the damage is still there to look at.
        #expect(try Self.fileBytes(d.path) == bytes)
    }

    @Test func aFileThatIsNotARecordFileIsCorrupt() throws {
        let d = TempDir("records"); defer { d.cleanup() }
        try Data("CLRECORD\u{0}\u{9}".utf8).write(to: URL(fileURLWithPath: d.path + "/records"))
        #expect(throws: StoreError.corrupt(record: d.path + "/records", reason: "unknown record file version 9")) {
            try RecordStore.open(path: d.path)
        }
        try Data("not ours".utf8).write(to: URL(fileURLWithPath: d.path + "/records"))
        #expect(throws: StoreError.corrupt(record: d.path + "/records", reason: "not a consensus record file (bad magic)")) {
            try RecordStore.open(path: d.path)
        }
    }

    @Test func anLMDBStoreIsMigratedOnce() throws {
        let d = TempDir("records"); defer { d.cleanup() }
        let old = try RecordStore.openLMDB(path: d.path)
        try old.append(Self.records(4))
        old.close()
        var s = try RecordStore.open(path: d.path)
        #expect(try s.all() == Self.records(4))
        #expect(!FileManager.default.fileExists(atPath: d.path + "/data.mdb"))
        #expect(FileManager.default.fileExists(atPath: d.path + "/data.mdb.migrated"))
        try s.append(Self.records(1, from: 4))
        s.close()
        s = try RecordStore.open(path: d.path)
        #expect(try s.all() == Self.records(5))
        s.close()
    }
}
