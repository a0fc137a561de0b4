import Foundation
import LedgerCore
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

    /// A record file of two appends (records 0–1, then 2), closed.
    static func twoAppends(_ path: String) throws {
        let s = try RecordStore.open(path: path)
        defer { s.close() }
        try s.append(records(2))
        try s.append(records(1, from: 2))
    }

    @Test func aTornLastAppendIsCutOffWholeAndNothingElse() throws {
        let d = TempDir("records"); defer { d.cleanup() }
        try Self.twoAppends(d.path)
        var s: RecordStore
        let whole = try Self.fileBytes(d.path)
        // A torn append: its frame cut short; its body cut short; its blocks never
        // written (the file grew, the bytes stayed zero); and a whole frame of two
        // records with a hole where a sector had not reached the disk.
        var w = ByteWriter()
        RecordFile.frame(Self.records(2, from: 50), into: &w)
        var holed = w.bytes
        for i in RecordFile.frameOverhead + 6 ..< RecordFile.frameOverhead + 12 { holed[i] = 0 }
        let torn: [[UInt8]] = [[0x43, 0x4C, 0x41], RecordFile.frameMarker + [0, 0, 0, 200] + [UInt8](repeating: 9, count: 50),
                               [UInt8](repeating: 0, count: 100), holed]
        for t in torn {
            try Self.appendRaw(d.path, t)
            s = try RecordStore.open(path: d.path)
            #expect(s.truncatedTailBytes == t.count)
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

    @Test(arguments: ["body", "length", "marker"])
    func damageWithAppendsAfterItIsCorruptNotCutOff(_ place: String) throws {
        let d = TempDir("records"); defer { d.cleanup() }
        try Self.twoAppends(d.path)
        var bytes = try Self.fileBytes(d.path)
        let first = RecordFile.headerBytes
        let second = first + RecordFile.frameOverhead + Self.records(2).reduce(0) { $0 + 4 + $1.count }
        switch place {
        case "body": bytes[first + RecordFile.frameOverhead + 6] ^= 0x40
        case "length": bytes[first + 8] ^= 0x01  // the frame now claims 16 MiB more than the file holds
        default: bytes[first] ^= 0x20
        }
        try Data(bytes).write(to: URL(fileURLWithPath: d.path + "/records"))
        #expect(throws: StoreError.corrupt(record: d.path + "/records@\(first)", reason: "a damaged append with whole appends after it (at \(second))")) {
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
        // An older binary that ran here afterwards would have voted from an empty LMDB
        // store: its votes are not in the file, so the store refuses to open.
        let downgraded = try RecordStore.openLMDB(path: d.path)
        try downgraded.append(Self.records(1, from: 99))
        downgraded.close()
        #expect(throws: StoreError.self) { try RecordStore.open(path: d.path) }
        #expect(FileManager.default.fileExists(atPath: d.path + "/data.mdb"))
    }
}
