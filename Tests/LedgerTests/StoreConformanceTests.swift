import Foundation
import LedgerCore
import LedgerCrypto
import LedgerAudit
import LedgerNode
import LedgerProjections
@testable import LedgerStore
import Testing

/// One suite, run against both EventLog implementations (STYLE §2).
enum StoreKind: String, CaseIterable, CustomTestStringConvertible {
    case memory, lmdb
    var testDescription: String { rawValue }

    func make() -> (log: LedgerLog, cleanup: () -> Void) {
        switch self {
        case .memory: return (LedgerLog.memory(), {})
        case .lmdb:
            let d = TempDir("conformance")
            return (try! LedgerLog.openLMDB(path: d.path), d.cleanup)
        }
    }
}

@Suite struct StoreConformanceTests {
    let f = Fixture()

    /// Commits `blocks` blocks of transfers through a producer and returns what it committed.
    /// A stored block as an append takes it again, with its events read from `source`.
    static func commit(_ b: StoredBlock, from source: LedgerLog) throws -> BlockCommit {
        let evs = try source.events(from: b.firstSequence, count: Int(b.header.eventCount))
        return BlockCommit(block: b, blockHash: Blake2b.hash(b.headerBytes), events: evs.map { ($0.id, $0.envelope) })
    }

    /// The producer keeps every checkpoint unless `retention` says otherwise.
    func fill(_ log: LedgerLog, blocks: Int, perBlock: Int = 5, retention: StateRetention = .archive) throws -> [StoredBlock] {
        let p = try f.producer(on: log)
        p.retention = retention
        var out: [StoredBlock] = []
        var nonce = p.state.accounts[f.alice.publicKey]!.nonce
        for b in 0 ..< blocks {
            for i in 0 ..< perBlock {
                nonce += 1
                try p.submit(f.event(f.alice, nonce, .transfer(to: f.bob.publicKey, amount: 1, memo: "b\(b)e\(i)")).bytes)
            }
            out.append(try #require(try p.commit()))
        }
        return out
    }

    @Test(arguments: StoreKind.allCases)
    func emptyLogHasNoMetadataAndRefusesAppends(_ kind: StoreKind) throws {
        let (log, done) = kind.make(); defer { done() }
        #expect(try log.metadata() == nil)
        #expect(try log.block(at: 1) == nil)
        #expect(try log.events(from: 0, count: 10).isEmpty)
        _ = try log.initialize(genesis: f.genesis)
        #expect(throws: StoreError.alreadyInitialized) { _ = try log.initialize(genesis: f.genesis) }
        let m = try #require(try log.metadata())
        #expect(m.head == 0 && m.headHash == f.genesisHash && m.nextSequence == 0 && m.chainID == Fixture.chain)
    }

    @Test(arguments: StoreKind.allCases)
    func appendAndReadBack(_ kind: StoreKind) throws {
        let (log, done) = kind.make(); defer { done() }
        let blocks = try fill(log, blocks: 6)
        let m = try #require(try log.metadata())
        #expect(m.head == 6)
        #expect(m.nextSequence == 30)
        #expect(m.headHash == Blake2b.hash(blocks.last!.headerBytes))
        for b in blocks { #expect(try log.block(at: b.header.height) == b) }
        let all = try log.events(from: 0, count: 100)
        #expect(all.count == 30)
        #expect(all.map(\.sequence.value) == Array(0 ..< 30))
        let mid = try log.events(from: 12, count: 3)
        #expect(mid.map(\.sequence.value) == [12, 13, 14])
        for e in all {
            #expect(e.id == EventCrypto.id(e.envelope.bytes))
            #expect(try log.event(id: e.id) == e)
        }
        #expect(try log.event(id: EventID(Blake2b.hash([9]))) == nil)
        // Streams: Alice authored all 30, Bob received all 30, Carol none.
        #expect(try log.stream(.account(f.alice.publicKey), after: nil, limit: 100).count == 30)
        let bob = try log.stream(.account(f.bob.publicKey), after: nil, limit: 100)
        #expect(bob.map(\.sequence.value) == Array(0 ..< 30))
        #expect(try log.stream(.account(f.bob.publicKey), after: 27, limit: 100).map(\.sequence.value) == [28, 29])
        #expect(try log.stream(.account(f.carol.publicKey), after: nil, limit: 100).isEmpty)
        #expect(try log.stream(.account(f.bob.publicKey), after: nil, limit: 4).count == 4)
    }

    @Test(arguments: StoreKind.allCases)
    func indexLookupsSpanIndexedAndTailBlocks(_ kind: StoreKind) throws {
        // The index catches up every Limits.indexLagBlocksMax blocks (in the background for
        // LMDB): lookups must see indexed and not-yet-indexed events alike, in order,
        // whatever the indexer has reached.
        let (log, done) = kind.make(); defer { done() }
        let blocks = Limits.indexLagBlocksMax + 7
        _ = try fill(log, blocks: blocks, perBlock: 2)
        let all = try log.events(from: 0, count: 1_000)
        #expect(all.count == blocks * 2)
        for e in all { #expect(try log.event(id: e.id)?.sequence == e.sequence) }
        let bob = try log.stream(.account(f.bob.publicKey), after: nil, limit: 1_000)
        #expect(bob.map(\.sequence.value) == Array(0 ..< UInt64(blocks * 2)))
        let tail = try log.stream(.account(f.bob.publicKey), after: SequenceNumber(UInt64(Limits.indexLagBlocksMax * 2 - 3)), limit: 5)
        #expect(tail.map(\.sequence.value) == Array(UInt64(Limits.indexLagBlocksMax * 2 - 2) ..< UInt64(Limits.indexLagBlocksMax * 2 + 3)))
        try log.catchUpIndex()
        #expect(log.indexError == nil)
        for e in all { #expect(try log.event(id: e.id)?.sequence == e.sequence) }
        #expect(try log.stream(.account(f.bob.publicKey), after: nil, limit: 1_000).map(\.sequence.value) == Array(0 ..< UInt64(blocks * 2)))
        #expect(try log.stream(.account(f.bob.publicKey), after: SequenceNumber(UInt64(blocks * 2 - 3)), limit: 10).count == 2)
        // The index is derived data: dropped and rebuilt, lookups give the same answers.
        try log.rebuildIndex()
        #expect(try log.stream(.account(f.alice.publicKey), after: nil, limit: 1_000).count == blocks * 2)
        for e in all.suffix(5) { #expect(try log.event(id: e.id)?.sequence == e.sequence) }
    }

    @Test(arguments: StoreKind.allCases)
    func appendsThatDoNotExtendTheHeadAreRefusedAndChangeNothing(_ kind: StoreKind) throws {
        let (log, done) = kind.make(); defer { done() }
        let blocks = try fill(log, blocks: 2)
        let before = try log.metadata()
        let events = try log.events(from: 5, count: 5).map { (id: $0.id, envelope: $0.envelope) }
        // Re-appending block 2 (wrong height).
        let b2 = blocks[1]
        #expect(throws: StoreError.self) {
            try log.append(BlockCommit(block: b2, blockHash: Blake2b.hash(b2.headerBytes), events: events))
        }
        // A block 3 with the wrong parent.
        var h = b2.header
        h.height = 3; h.parentHash = .zero
        let bad = StoredBlock(header: h, certificate: CommitCertificate(height: 3, view: 0, blockHash: Blake2b.hash(h.encoded()), votes: []),
                              firstSequence: 10)
        #expect(throws: StoreError.self) {  // refused as a duplicate before its parent is even looked at
            try log.append(BlockCommit(block: bad, blockHash: Blake2b.hash(h.encoded()), events: events))
        }
        var empty = h
        empty.eventCount = 0
        let emptyHash = Blake2b.hash(empty.encoded())
        #expect(throws: StoreError.invalidAppend("parent hash does not match head 2")) {
            try log.append(BlockCommit(block: StoredBlock(header: empty, certificate: CommitCertificate(height: 3, view: 0, blockHash: emptyHash, votes: []),
                                                          firstSequence: 10), blockHash: emptyHash, events: []))
        }
        // A block 3 that repeats already-logged events.
        h.parentHash = before!.headHash
        let dup = StoredBlock(header: h, certificate: CommitCertificate(height: 3, view: 0, blockHash: Blake2b.hash(h.encoded()), votes: []),
                              firstSequence: 10)
        #expect(throws: StoreError.invalidAppend("event \(events[0].id.short) is already in the log")) {
            try log.append(BlockCommit(block: dup, blockHash: Blake2b.hash(h.encoded()), events: events))
        }
        #expect(try log.metadata() == before)
        #expect(try log.events(from: 0, count: 100).count == 10)
        #expect(try log.block(at: 3) == nil)
    }

    @Test(arguments: StoreKind.allCases)
    func aFailedAppendReleasesItsEvents(_ kind: StoreKind) throws {
        let (log, done) = kind.make(); defer { done() }
        let blocks = try fill(log, blocks: 2)  // Alice's nonce is now 10
        let fresh = (11 ... 13).map { f.event(f.alice, UInt64($0), .transfer(to: f.carol.publicKey, amount: 1, memo: "")) }
        let events = fresh.map { (id: EventCrypto.id($0.bytes), envelope: $0) }
        func commit(parent: Hash32) -> BlockCommit {
            var h = blocks[1].header
            h.height = 3; h.parentHash = parent; h.eventCount = 3; h.eventsRoot = EventCrypto.eventsRoot(events.map(\.id))
            let hash = Blake2b.hash(h.encoded())
            return BlockCommit(block: StoredBlock(header: h, certificate: CommitCertificate(height: 3, view: 0, blockHash: hash, votes: []),
                                                  firstSequence: 10), blockHash: hash, events: events)
        }
        #expect(throws: StoreError.invalidAppend("parent hash does not match head 2")) { try log.append(commit(parent: .zero)) }
        try log.append(commit(parent: Blake2b.hash(blocks[1].headerBytes)))
        #expect(try log.event(id: events[2].id)?.sequence == 12)
        #expect(throws: StoreError.self) { try log.append(commit(parent: Blake2b.hash(blocks[1].headerBytes))) }
    }

    /// Several blocks in one transaction: all land, in order, readable like single
    /// appends; a batch with one bad link writes none of its blocks.
    @Test(arguments: StoreKind.allCases)
    func severalBlocksAppendInOneTransactionOrNotAtAll(_ kind: StoreKind) throws {
        let (source, doneSource) = kind.make(); defer { doneSource() }
        let blocks = try fill(source, blocks: 4)
        func commit(_ b: StoredBlock) throws -> BlockCommit { try Self.commit(b, from: source) }
        let (log, done) = kind.make(); defer { done() }
        _ = try log.initialize(genesis: f.genesis)
        // Blocks 1–3 at once, with block 3's parent broken: nothing is written.
        var broken = try commit(blocks[2])
        var h = broken.block.header
        h.parentHash = .zero
        broken = BlockCommit(block: StoredBlock(header: h, certificate: broken.block.certificate, firstSequence: broken.block.firstSequence),
                             blockHash: broken.blockHash, events: broken.events)
        #expect(throws: StoreError.invalidAppend("parent hash does not match head 2")) {
            try log.append(contentsOf: [try commit(blocks[0]), try commit(blocks[1]), broken])
        }
        #expect(try log.metadata()?.head == 0)
        #expect(try log.events(from: 0, count: 100).isEmpty)
        #expect(try log.event(id: try commit(blocks[0]).events[0].id) == nil)
        // A batch whose second block repeats an event of its first is refused whole.
        let first = try commit(blocks[0])
        var dupHeader = blocks[1].header
        dupHeader.eventCount = 1
        dupHeader.eventsRoot = EventCrypto.eventsRoot([first.events[0].id])
        let dupHash = Blake2b.hash(dupHeader.encoded())
        let dup = BlockCommit(block: StoredBlock(header: dupHeader, certificate: CommitCertificate(height: 2, view: 0, blockHash: dupHash, votes: []),
                                                 firstSequence: blocks[1].firstSequence),
                              blockHash: dupHash, events: [first.events[0]])
        #expect(throws: StoreError.invalidAppend("event \(first.events[0].id.short) is already in the log")) {
            try log.append(contentsOf: [first, dup])
        }
        #expect(try log.metadata()?.head == 0)
        // The same blocks, intact, land together and read back as the source has them.
        try log.append(contentsOf: try blocks.prefix(3).map(commit))
        try log.append(contentsOf: [try commit(blocks[3])])
        #expect(try log.metadata()?.head == 4)
        for b in blocks { #expect(try log.block(at: b.header.height) == b) }
        #expect(try log.events(from: 0, count: 100) == (try source.events(from: 0, count: 100)))
        let last = try source.events(from: 0, count: 100).last!
        #expect(try log.event(id: last.id) == last)
    }

    /// A reader that looks an event up while an append has claimed its ids but not yet
    /// written them neither serves the claimed event nor erases the claim (a second
    /// block repeating the first's event is still refused).
    @Test(arguments: StoreKind.allCases)
    func aReaderDuringAnAppendKeepsItsClaims(_ kind: StoreKind) throws {
        let (source, doneSource) = kind.make(); defer { doneSource() }
        let blocks = try fill(source, blocks: 2)
        func commit(_ b: StoredBlock) throws -> BlockCommit { try Self.commit(b, from: source) }
        let (log, done) = kind.make(); defer { done() }
        _ = try log.initialize(genesis: f.genesis)
        let first = try commit(blocks[0]), second = try commit(blocks[1])
        // The first block's claim, as append(contentsOf:) makes it before its write.
        let from = try log.tail(from: 0).from
        #expect(try log.claimIDs(first.events, firstSequence: first.block.firstSequence.value, tailFrom: from))
        #expect(try log.event(id: first.events[0].id) == nil)
        #expect(throws: StoreError.invalidAppend("event \(first.events[0].id.short) is already in the log")) {
            _ = try log.claimIDs([first.events[0]], firstSequence: second.block.firstSequence.value, tailFrom: from)
        }
        // Released, the log takes both blocks as usual.
        log.releaseIDs(first.events, firstSequence: first.block.firstSequence.value)
        try log.append(contentsOf: [first, second])
        #expect(try log.event(id: first.events[0].id)?.sequence == first.block.firstSequence)
    }

    @Test(arguments: StoreKind.allCases)
    func theIndexFedFromMemoryEqualsTheIndexReadBack(_ kind: StoreKind) throws {
        // The indexer takes the blocks this log appended from memory (no read-back); the
        // index it writes must be byte for byte the one built from the events on disk.
        let (log, done) = kind.make(); defer { done() }
        _ = try fill(log, blocks: Limits.indexLagBlocksMax + 3, perBlock: 3)
        try log.catchUpIndex()
        #expect(log.indexError == nil)
        #expect(log.cacheLock.withLock { log.unindexed.isEmpty })
        func dump() throws -> [[(key: [UInt8], value: [UInt8])]] {
            try #require(log.index).read { t throws(StoreError) in
                [try t.scan(.eventIDs, from: [], prefix: [], limit: .max), try t.scan(.streams, from: [], prefix: [], limit: .max),
                 try t.scan(.indexMeta, from: [], prefix: [], limit: .max)]
            }
        }
        let fromMemory = try dump()
        #expect(fromMemory[0].count == (Limits.indexLagBlocksMax + 3) * 3)
        try log.rebuildIndex()
        let readBack = try dump()
        #expect(fromMemory.map { $0.map(\.key) } == readBack.map { $0.map(\.key) })
        #expect(fromMemory.map { $0.map(\.value) } == readBack.map { $0.map(\.value) })
        // Only the newest blocks are kept for an indexer that falls behind; it reads
        // older ones back.
        let (source, done2) = StoreKind.memory.make(); defer { done2() }
        let blocks = try fill(source, blocks: LedgerLog.indexKeptBlocksMax + 5, perBlock: 1)
        log.keepForIndex(try blocks.map { try Self.commit($0, from: source) })
        #expect(log.cacheLock.withLock { log.unindexed.count } == LedgerLog.indexKeptBlocksMax)
        #expect(log.cacheLock.withLock { log.unindexed.keys.min() } == 6)
    }

    @Test(arguments: StoreKind.allCases)
    func anOldDuplicateIsReportedByTheIndexer(_ kind: StoreKind) throws {
        // Within the unindexed tail a duplicate is refused at append (above); beyond it,
        // the indexer refuses to index an id twice and reports the record.
        let (log, done) = kind.make(); defer { done() }
        let blocks = try fill(log, blocks: 2)
        try log.catchUpIndex()
        let old = try log.events(from: 0, count: 1)
        var h = blocks[1].header
        h.height = 3; h.parentHash = Blake2b.hash(blocks[1].headerBytes); h.eventCount = 1
        h.eventsRoot = EventCrypto.eventsRoot([old[0].id])
        let hash = Blake2b.hash(h.encoded())
        let b3 = StoredBlock(header: h, certificate: CommitCertificate(height: 3, view: 0, blockHash: hash, votes: []), firstSequence: 10)
        try log.append(BlockCommit(block: b3, blockHash: hash, events: [(old[0].id, old[0].envelope)]))
        #expect(throws: StoreError.corrupt(record: "events[10]", reason: "event \(old[0].id.short) is also events[0]")) {
            try log.catchUpIndex()
        }
        // Reported, not stuck: the index moved past it and keeps the first occurrence.
        #expect(log.indexError != nil)
        #expect(try log.event(id: old[0].id)?.sequence == 0)
        #expect(try log.stream(.account(f.alice.publicKey), after: nil, limit: 100).count == 11)
        // And replay refuses block 3 (this hand-made block fails its first check there).
        let r = Replayer(log: log).run().report
        #expect(!r.ok && r.failure?.height == 3)
    }

    @Test(arguments: StoreKind.allCases)
    func aTamperedCheckpointIsCaught(_ kind: StoreKind) throws {
        let (log, done) = kind.make(); defer { done() }
        _ = try fill(log, blocks: 9)  // checkpoints at 4 and 8
        #expect(try log.checkpointHeights() == [4, 8])
        #expect(Replayer(log: log).run().report.checkpointsVerified == 2)
        // A checkpoint with a valid checksum but the state of another height.
        let (at3, _) = try StateLoader.load(log, upTo: 3, useCheckpoints: false)
        try log.putCheckpoint(height: 4, snapshot: at3.canonicalBytes())  // height 3's state as height 4's
        let r = Replayer(log: log).run().report
        #expect(r.failure?.record == "checkpoints[4]")
        #expect(throws: StateLoader.LoadError.self) { try StateLoader.load(log, upTo: 5) }
    }

    @Test(arguments: StoreKind.allCases)
    func checkpointsFloorAndDrop(_ kind: StoreKind) throws {
        let (log, done) = kind.make(); defer { done() }
        _ = try fill(log, blocks: 9)  // checkpointInterval 4: checkpoints at 4 and 8
        #expect(try log.checkpoint(atOrBelow: 3) == nil)
        #expect(try log.checkpoint(atOrBelow: 4)?.height == 4)
        #expect(try log.checkpoint(atOrBelow: 7)?.height == 4)
        #expect(try log.checkpoint(atOrBelow: 100)?.height == 8)
        try log.dropCheckpoints()
        #expect(try log.checkpoint(atOrBelow: 100) == nil)
    }

    @Test(arguments: StoreKind.allCases)
    func stateFromCheckpointEqualsFullFold(_ kind: StoreKind) throws {
        let (log, done) = kind.make(); defer { done() }
        _ = try fill(log, blocks: 10)
        let (full, s1) = try StateLoader.load(log, useCheckpoints: false)
        let (fast, s2) = try StateLoader.load(log)
        #expect(full == fast)
        #expect(s1.blocks == 10 && s2.blocks == 2, "the checkpoint at 8 leaves 2 blocks to fold")
        let (at5, _) = try StateLoader.load(log, upTo: 5)
        #expect(at5.height == 5)
        #expect(at5.stateRoot() == (try log.block(at: 6))!.header.parentStateRoot)
        let (rebuilt, stats) = try StateLoader.rebuild(log, retention: .archive)
        #expect(rebuilt == full)
        #expect(stats.checkpointsWritten == 2)
        // Under a window, the rebuild writes only what the window keeps: the newest.
        let (again, windowed) = try StateLoader.rebuild(log, retention: StateRetention(window: 2))
        #expect(again == full && windowed.checkpointsWritten == 1)
        #expect(try log.checkpointHeights() == [8])
    }

    /// A producer under a window keeps the newest checkpoint and the spaced ones that
    /// cover the window; a state read inside the window refolds from one, a read below it
    /// is refused; the power of every epoch end stays, with the header committing to it.
    @Test(arguments: StoreKind.allCases)
    func aWindowPrunesCheckpointsAndKeepsPowers(_ kind: StoreKind) throws {
        let (log, done) = kind.make(); defer { done() }
        let retention = StateRetention(window: 12)  // K = 4: spacing 4, heights ≥ head − 12 served
        let blocks = try fill(log, blocks: 30, perBlock: 2, retention: retention)
        // Head 30: oldest served 18; kept: 16 (at or below 18), 20, 24, 28 (the newest).
        #expect(try log.checkpointHeights() == [16, 20, 24, 28])
        let (full, _) = try StateLoader.load(log, useCheckpoints: false)
        let head = try StateLoader.load(log).0
        #expect(head == full)
        #expect(try retention.state(at: 18, head: head, log: log).stateRoot() == blocks[18].header.parentStateRoot)
        #expect(throws: ServiceError.heightPruned(17, oldest: 18)) { try retention.state(at: 17, head: head, log: log) }
        #expect(throws: ServiceError.noSuchHeight(31)) { try retention.state(at: 31, head: head, log: log) }
        #expect(try StateRetention.archive.state(at: 3, head: head, log: log).height == 3, "an archive serves every height")
        // Every epoch end stored the next epoch's power, which its header commits to.
        for b in blocks {
            let h = b.header.height
            let stored = try log.nextPower(at: h)
            #expect((stored != nil) == (h.value % 4 == 0), "height \(h)")
            guard let stored else { continue }
            #expect(stored.map(\.key) == stored.map(\.key).sorted())
            let power = Dictionary(uniqueKeysWithValues: stored.map { ($0.key, $0.power) })
            #expect(LedgerState.powerHash(power, Sodium()) == b.header.post?.nextPowerHash)
        }
        // A rebuild puts back a power record that is wrong, and the same checkpoints.
        let right = try #require(try log.nextPower(at: 8))
        try log.putNextPower(height: 8, power: [])
        #expect(try log.nextPower(at: 8)?.isEmpty == true)
        _ = try StateLoader.rebuild(log, retention: retention)
        #expect(try log.nextPower(at: 8)?.map(\.key) == right.map(\.key))
        #expect(try log.nextPower(at: 8)?.map(\.power) == right.map(\.power))
        #expect(try log.checkpointHeights() == [16, 20, 24, 28])
    }

    /// Whatever the window, interval and head, every served height has a kept
    /// checkpoint at most one spacing below it (or the genesis), and the kept ones stay
    /// few: pruning as the driver does, after each checkpoint it writes.
    @Test func retentionCoversEveryServedHeightWithFewSnapshots() {
        for window: UInt64 in [0, 1, 5, 12, 100, 1_000, 10_000] {
            for k: UInt64 in [1, 4, 10, 100] {
                let r = StateRetention(window: window)
                let s = r.spacing(interval: k)
                var kept: [UInt64] = []
                for head in 1 ... UInt64(3_000) {
                    if head % k == 0 {
                        kept.append(head)
                        kept.removeAll { !r.keeps(Height($0), head: Height(head), interval: k) }
                    }
                    let oldest = r.oldest(head: Height(head)).value
                    for h in [oldest, (oldest + head) / 2, head] {
                        let base = kept.last { $0 <= h } ?? 0
                        #expect(h - base <= max(s, k), "window \(window) K \(k) head \(head): height \(h) is \(h - base) blocks above a checkpoint")
                    }
                    if window > 0 { #expect(kept.count <= Int(window / s) + 3, "window \(window) K \(k) head \(head): \(kept.count) kept") }
                }
            }
        }
    }

    /// In memory; for LMDB the same is shown by flipping bytes inside data.mdb
    /// (LMDBFailureTests.flippedBytesInDataFileAreNamedByReplay).
    @Test(arguments: [StoreKind.memory])
    func corruptedEventIsNamed(_ kind: StoreKind) throws {
        let (log, done) = kind.make(); defer { done() }
        _ = try fill(log, blocks: 2)
        log.tamperEvent(7) { $0[60] ^= 0x04 }
        #expect(throws: StoreError.corrupt(record: "events[7]", reason: "event id does not match its bytes")) {
            try log.events(from: 0, count: 10)
        }
        let r = Replayer(log: log).run().report
        #expect(!r.ok)
        #expect(r.failure?.record == "events[7]")
    }
}
