import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStore
import LedgerWorkload
import Testing

/// A flag two threads share in a test (NSLock-guarded).
final class UnsafeSendableFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var v = false
    var value: Bool { lock.withLock { v } }
    func set() { lock.withLock { v = true } }
}

final class UnsafeSendableCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var v = 0
    var value: Int { lock.withLock { v } }
    func increment() { lock.withLock { v += 1 } }
}

@Suite(.serialized) struct LMDBFailureTests {
    let f = Fixture()

    func fill(_ log: LedgerLog, blocks: Int, perBlock: Int = 20, memo: Int = 0) throws {
        let p = try f.producer(on: log)
        var nonce = p.state.accounts[f.alice.publicKey]!.nonce
        for _ in 0 ..< blocks {
            for _ in 0 ..< perBlock {
                nonce += 1
                try p.submit(f.event(f.alice, nonce, .transfer(to: f.bob.publicKey, amount: 1, memo: String(repeating: "x", count: memo))).bytes)
            }
            try p.commit()
        }
    }

    /// Commits blocks of ~280-byte events until the store refuses one; returns the last
    /// committed height and the store's error.
    func appendUntilTheStoreFails(_ log: LedgerLog) throws -> (Height, StoreError?) {
        var committed: Height = 0
        do {
            let p = try f.producer(on: log)
            var nonce: UInt64 = 0
            for _ in 0 ..< 1_000 {
                for _ in 0 ..< 20 {
                    nonce += 1
                    try p.submit(f.event(f.alice, nonce, .transfer(to: f.bob.publicKey, amount: 1, memo: String(repeating: "y", count: 250))).bytes)
                }
                guard let b = try p.commit() else { break }
                committed = b.header.height
            }
        } catch let e as ProducerError {
            if case let .store(s) = e { return (committed, s) }
            throw e
        }
        return (committed, nil)
    }

    @Test func anIndexThatIsNotThisLogsIsClearedOrIgnored() throws {
        let d = TempDir("index"); defer { d.cleanup() }
        do {
            let log = try LedgerLog.openLMDB(path: d.path)
            try fill(log, blocks: Limits.indexLagBlocksMax + 3, perBlock: 2)
            try log.catchUpIndex()
            // A mark ahead of the log, as an index restored from elsewhere would have.
            try log.tamperIndexMark(height: 1_000, next: 5_000)
            log.close()
        }
        let reader = try LedgerLog.openLMDB(path: d.path, mode: .readOnly)
        let all = try reader.events(from: 0, count: 1_000)
        for e in all { #expect(try reader.event(id: e.id)?.sequence == e.sequence) }
        #expect(try reader.stream(.account(f.bob.publicKey), after: nil, limit: 1_000).count == all.count)
        reader.close()
        let writer = try LedgerLog.openLMDB(path: d.path)
        for e in all { #expect(try writer.event(id: e.id)?.sequence == e.sequence) }
        try fill(writer, blocks: 1, perBlock: 2)  // appends go on
        #expect(try writer.stream(.account(f.bob.publicKey), after: nil, limit: 1_000).count == all.count + 2)
    }

    /// A reader looking up events while the writer appends and the indexer catches up in
    /// the background gets the right event or "not found", never an error; afterwards
    /// every event is found at its sequence.
    @Test func lookupsRacingAppendsNeverFail() throws {
        let d = TempDir("race"); defer { d.cleanup() }
        let log = try LedgerLog.openLMDB(path: d.path)
        defer { log.close() }
        let p = try f.producer(on: log)
        let blocks = Limits.indexLagBlocksMax * 2
        let events = (1 ... blocks * 10).map { f.event(f.alice, UInt64($0), .transfer(to: f.bob.publicKey, amount: 1, memo: "")) }
        let ids = events.map { EventCrypto.id($0.bytes) }
        let done = UnsafeSendableFlag()
        let failures = UnsafeSendableFlag()
        let committed = UnsafeSendableCounter()
        // The reader aims at the block being appended now, where the tail cache and the
        // writer's claim on it change under its feet.
        let reader = Thread {
            var i = 0
            while !done.value {
                let k = min(committed.value * 10 + i % 10, ids.count - 1)
                do {
                    if let e = try log.event(id: ids[k]), e.sequence.value != UInt64(k) { failures.set() }
                } catch { failures.set() }
                i += 1
            }
        }
        reader.start()
        for b in 0 ..< blocks {
            for e in events[(b * 10) ..< (b * 10 + 10)] { try p.submit(e.bytes) }
            try p.commit()
            committed.increment()
        }
        done.set()
        while !reader.isFinished { usleep(1_000) }
        #expect(!failures.value, "a lookup failed or returned the wrong event while appends ran")
        for (k, id) in ids.enumerated() { #expect(try log.event(id: id)?.sequence.value == UInt64(k)) }
    }

    @Test func secondWriterIsRefusedReadersAreNot() throws {
        let d = TempDir("lock"); defer { d.cleanup() }
        let first = try LedgerLog.openLMDB(path: d.path)
        try fill(first, blocks: 1)
        #expect(throws: StoreError.locked(path: d.path)) { _ = try LedgerLog.openLMDB(path: d.path) }
        let reader = try LedgerLog.openLMDB(path: d.path, mode: .readOnly)
        #expect(try reader.metadata()?.head == 1)
        #expect(throws: StoreError.readOnly(path: d.path)) { try reader.dropCheckpoints() }
        // A second process is refused too.
        let r = try run(chaosledgerBinary, ["crash-writer", "--dir", d.path, "--blocks", "1"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("another process is writing"))
    }

    @Test func mapFullLosesNothing() throws {
        let d = TempDir("mapfull"); defer { d.cleanup() }
        // Cap the map at 4 MiB: reaching the cap must be a clean error with nothing lost.
        let log = try LedgerLog.openLMDB(path: d.path, mapBytesInitial: 1 << 20, mapBytesMax: 4 << 20)
        let (committed, full) = try appendUntilTheStoreFails(log)
        #expect(full == .mapFull(path: d.path))
        #expect(committed.value > 10)
        #expect(try log.metadata()?.head == committed, "the head is the last block that committed")
        let report = Replayer(log: log).run().report
        #expect(report.ok, "\(String(describing: report.failure))")
        #expect(report.blocks == committed.value)
    }

    @Test func mapGrowsAutomatically() throws {
        let d = TempDir("grow"); defer { d.cleanup() }
        // Start with a 256 KiB map and write ~1 MiB of events: the map must grow by itself.
        let log = try LedgerLog.openLMDB(path: d.path, mapBytesInitial: 256 << 10, mapBytesMax: 1 << 30)
        try fill(log, blocks: 50, perBlock: 50, memo: 250)
        #expect(try log.metadata()?.head == 50)
        #expect(log.mapGrowths >= 1)
        #expect(Replayer(log: log).run().report.ok)
    }

    @Test func readOnlyDirectoryAndFullDisk() throws {
        // tmpfs mounts give a real EROFS and ENOSPC; the test suite runs as root here and in CI.
        let d = TempDir("mnt"); defer { d.cleanup() }
        let mnt = d.sub("fs")
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let mounted = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt])
        try #require(mounted.status == 0, "mount failed: \(mounted.stderr) — these tests need root")
        defer { _ = try? run("/bin/umount", ["-l", mnt]) }
        let dir = mnt + "/log"

        // Full disk: append until ENOSPC, then check nothing committed was lost.
        let (committed, diskFull): (Height, StoreError?)
        do {
            let log = try LedgerLog.openLMDB(path: dir)
            defer { log.close() }  // before the remount below
            (committed, diskFull) = try appendUntilTheStoreFails(log)
        }
        #expect(diskFull == .diskFull(path: dir))
        #expect(committed.value > 5)

        // Read-only: remount and check a writer is refused cleanly while replay still works.
        let ro = try run("/bin/mount", ["-o", "remount,ro", mnt])
        try #require(ro.status == 0, "\(ro.stderr)")
        #expect(throws: StoreError.readOnly(path: dir)) { _ = try LedgerLog.openLMDB(path: dir) }
        let reader = try LedgerLog.openLMDB(path: dir, mode: .readOnly)
        #expect(try reader.metadata()?.head == committed)
        let report = Replayer(log: reader).run().report
        #expect(report.ok, "\(String(describing: report.failure))")
        #expect(report.blocks == committed.value)
    }

    /// Flips bytes of committed records inside data.mdb and shows `replay` failing with
    /// the record named (LMDB itself has no page checksums).
    @Test func flippedBytesInDataFileAreNamedByReplay() throws {
        let d = TempDir("flip"); defer { d.cleanup() }
        do {
            let log = try LedgerLog.openLMDB(path: d.path)
            try fill(log, blocks: 3, perBlock: 10)
        }
        let clean = try run(chaosledgerBinary, ["replay", "--dir", d.path, "--quiet"])
        #expect(clean.status == 0, "\(clean.stdout)\(clean.stderr)")
        let original = try Data(contentsOf: URL(fileURLWithPath: d.sub("data.mdb")))
        let log = try LedgerLog.openLMDB(path: d.path, mode: .readOnly)
        let events = try log.events(from: 0, count: 30)
        let blocks = try (1 ... 3).map { try #require(try log.block(at: Height($0))) }

        // Targets: a memo inside an event, a signature, a block's meme, a certificate signature.
        var targets: [(needle: [UInt8], offsetInNeedle: Int, expectRecord: String)] = [
            (events[13].envelope.bytes, events[13].envelope.bytes.count - 70, "events[13]"),
            (events[25].envelope.bytes, events[25].envelope.bytes.count - 10, "events[25]"),
            (blocks[1].headerBytes, blocks[1].headerBytes.count - 3, "blocks[2]"),
        ]
        targets.append((blocks[2].certificate.votes[0].signature.bytes, 5, "blocks[3]"))
        for t in targets {
            // LMDB copies pages on write, so stale copies of a record can sit in free
            // pages: flip the byte in every copy, which includes the live one.
            var bytes = original
            var from = bytes.startIndex
            var found = 0
            while let r = bytes[from...].firstRange(of: Data(t.needle)) {
                bytes[r.lowerBound + t.offsetInNeedle] ^= 0x10
                from = r.upperBound
                found += 1
            }
            guard found > 0 else { Issue.record("record bytes for \(t.expectRecord) not found in data.mdb"); continue }
            try bytes.write(to: URL(fileURLWithPath: d.sub("data.mdb")))
            let r = try run(chaosledgerBinary, ["replay", "--dir", d.path, "--json", "--quiet"])
            #expect(r.status == 1, "replay must fail for a flip in \(t.expectRecord)")
            let report = try JSONDecoder().decode(ReplayReport.self, from: Data(r.stdout.utf8))
            #expect(report.failure?.record.hasPrefix(t.expectRecord) == true, "named \(String(describing: report.failure)) for \(t.expectRecord)")
        }
        try original.write(to: URL(fileURLWithPath: d.sub("data.mdb")))
        #expect(try run(chaosledgerBinary, ["replay", "--dir", d.path, "--quiet"]).status == 0)
    }
}
