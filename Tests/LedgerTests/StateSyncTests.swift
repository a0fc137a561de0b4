import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerProjections
import LedgerStore
import LedgerTree
import LedgerWorkload
import Logging
import Testing

/// A peer in memory: serves one state's chunks, and lies as told.
struct MemoryPeer: SnapshotPeer {
    enum Lie: Sendable { case none, alterValue, dropEntry, alterSibling, garbage, unreachable, wrongHeight }
    let name: String
    let offered: SyncOffer
    let chunker: StateChunker
    let changes: [AuditBundle.PowerChange]
    var lie: Lie = .none

    struct Down: Error {}

    func offer() async throws -> SyncOffer {
        if lie == .unreachable { throw Down() }
        return offered
    }
    func powerChanges(upTo height: Height) async throws -> [AuditBundle.PowerChange] { changes }
    func chunk(height: Height, depth: Int, index: UInt32) async throws -> [UInt8] {
        var c = chunker.chunk(depth: depth, index: index)
        switch lie {
        case .none: break
        case .unreachable: throw Down()
        case .garbage: return Array("not a chunk".utf8)
        case .wrongHeight: c.height = Height(height.value + 1)
        case .alterValue: if !c.entries.isEmpty { c.entries[0].value[c.entries[0].value.count - 1] ^= 1 } else { c.siblings[0] = .node(Blake2b.hash([1])) }
        case .dropEntry: if !c.entries.isEmpty { c.entries.removeLast() } else { c.siblings[0] = .empty; c.siblings[1] = .node(Blake2b.hash([2])) }
        case .alterSibling: c.siblings[depth - 1] = .node(Blake2b.hash([3]))
        }
        return c.encoded()
    }
}

/// State sync from a certified snapshot (issue 18, step 4), in one process: chunks and
/// their assembly, a lying peer refused and scored down, a crash resumed, and a synced
/// log that replays from its base to the same roots as the log it came from.
@Suite(.serialized) struct StateSyncTests {
    let f = Fixture()
    let logger = Logger(label: "test.statesync")

    /// The fixture's eight blocks (a power change at 4), with checkpoint certificates at 4 and 8.
    func source() throws -> LedgerLog {
        let log = LedgerLog.memory()
        try AuditQueryTests().build(log)
        for h in [4, 8] as [Height] {
            let b = try #require(try log.block(at: h))
            let root = try #require(b.header.post?.stateRoot)
            let m = ConsensusMessage.checkpoint(height: h, blockHash: Blake2b.hash(b.headerBytes), stateRoot: root)
            let vote = SignedConsensusMessage.sign(m, chain: f.genesis.chainID.raw, signer: f.producer)
            try log.putCheckpointCertificate(height: h, bytes: CheckpointCertificate(height: h, blockHash: Blake2b.hash(b.headerBytes), stateRoot: root,
                                                                                     votes: [.init(key: f.producer.publicKey, signature: vote.signature)]).encoded())
        }
        return log
    }

    /// A peer offering the state at `h` of `log`, cut into 2^`depth` chunks.
    func peer(_ name: String, _ log: LedgerLog, at h: Height, depth: Int, lie: MemoryPeer.Lie = .none) throws -> MemoryPeer {
        let state = try StateLoader.load(log, upTo: h).0
        let chunker = try #require(StateChunker(state: state))
        let cert = try #require(try log.checkpointCertificate(at: h))
        let b = try #require(try log.block(at: h))
        let changes = try AuditBundle.export(from: log, from: h, to: Height(h.value + 1)).powerChanges
        return MemoryPeer(name: name, offered: SyncOffer(height: h, certificate: cert, leaves: chunker.leafCount, depth: depth,
                                                         nextSequence: SequenceNumber(b.firstSequence.value + UInt64(b.header.eventCount))),
                          chunker: chunker, changes: changes, lie: lie)
    }

    func workDir() -> String { NSTemporaryDirectory() + "statesync-\(UInt64.random(in: 0 ... .max))" }

    /// Copies blocks `from...` of `source` into `log`, as the replica's block fetch would.
    func copyBlocks(_ source: LedgerLog, into log: LedgerLog, from: Height) throws {
        var h = from
        while let b = try source.block(at: h) {
            let events = try source.events(from: b.firstSequence, count: Int(b.header.eventCount)).map { (id: $0.id, envelope: $0.envelope) }
            try log.append(BlockCommit(block: b, blockHash: Blake2b.hash(b.headerBytes), events: events))
            h = h.next
        }
    }

    @Test func chunksOfARichStateAssembleToItsRoot() throws {
        let log = LedgerLog.memory()
        _ = try DemoWorkload(seed: 3, agents: 12, events: 1_500).run(into: log)
        var state = try StateLoader.load(log).0
        let root = state.sealRoot()
        let chunker = try #require(StateChunker(state: state))
        #expect(chunker.leafCount > 50)
        for depth in [0, 4] {
            var entries: [(leaf: StateLeaf, value: [UInt8])] = []
            for i in 0 ..< UInt32(1 << depth) {
                let c = try StateChunk.decode(chunker.chunk(depth: depth, index: i).encoded())
                #expect(c.refusal(height: state.height, depth: depth, index: i, root: root, state.treeRules) == nil)
                entries += c.entries
            }
            #expect(entries.count == chunker.leafCount)
            var assembled = try LedgerState.assemble(entries.shuffled(), crypto: Sodium())
            #expect(assembled.sealRoot() == root, "the assembled state commits to the same root (depth \(depth))")
            #expect(assembled.height == state.height && assembled.totalSupply == state.totalSupply)
        }
    }

    @Test func syncsFromAnHonestPeerAndReplaysFromTheBase() async throws {
        let src = try source()
        let dir = workDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = LedgerLog.memory()
        let sync = StateSync(genesisBytes: f.genesis.encoded(), peers: [try peer("honest", src, at: 4, depth: 3)], workDir: dir, logger: logger)
        let r = try await sync.run(into: log)
        #expect(r.height == 4 && r.chunks == 8 && r.fetched == 8 && r.resumed == 0 && r.refused == 0)
        #expect(!FileManager.default.fileExists(atPath: dir), "the work directory goes once the log is installed")
        let base = try #require(try log.base())
        #expect(base.height == 4)
        let meta = try #require(try log.metadata())
        let b4 = try #require(try src.block(at: 4))
        #expect(meta.head == 4 && meta.headHash == Blake2b.hash(b4.headerBytes))
        #expect(try StateLoader.load(log).0.stateRoot() == r.stateRoot)
        // The blocks after the base, as the replica fetches them; then the whole log replays
        // from its base, trusting the genesis alone, to the source's roots.
        try copyBlocks(src, into: log, from: 5)
        try log.putCheckpointCertificate(height: 8, bytes: try #require(try src.checkpointCertificate(at: 8)))
        let (report, state) = Replayer(log: log).run()
        #expect(report.ok, "\(String(describing: report.failure))")
        #expect(report.fromHeight == 4 && report.blocks == 4 && report.checkpointCertificatesVerified == 1)
        #expect(report.anchor.contains("certified power changes"))
        let (_, srcState) = Replayer(log: src).run()
        #expect(state?.stateRoot() == srcState?.stateRoot())
        // A bundle exported from the synced log starts at its base, anchored the same way;
        // one that asks for blocks before the base is refused.
        let bundle = try AuditBundle.decode(AuditBundle.export(from: log, from: 4).encoded())
        let (br, _) = bundle.verify()
        #expect(br.ok && br.anchor == "the genesis, through 1 certified power changes up to block 4", "\(br.anchor) \(String(describing: br.failure))")
        #expect(throws: BundleError.badRange("this log was state-synced at 4: it holds no block before it")) { try AuditBundle.export(from: log, from: 2) }
        let b6 = try #require(try src.block(at: 6))
        let e6 = try #require(try src.events(from: b6.firstSequence, count: 1).first)
        try log.catchUpIndex()
        #expect(try log.event(id: e6.id)?.sequence == e6.sequence, "events after the base are indexed, at the source's sequence numbers")
        // `chaosledger rebuild` on a synced log: the index and the checkpoints start again
        // at the base, to the same state.
        try log.rebuildIndex()
        #expect(try log.event(id: e6.id)?.sequence == e6.sequence)
        let (rebuilt, _) = try StateLoader.rebuild(log)
        #expect(rebuilt.stateRoot() == srcState?.stateRoot())
        #expect(try StateLoader.load(log, upTo: 6).0.height == 6)
        #expect(throws: StateLoader.LoadError.self) { try StateLoader.load(log, upTo: 3) }
    }

    @Test(arguments: [MemoryPeer.Lie.alterValue, .dropEntry, .alterSibling, .garbage, .wrongHeight, .unreachable])
    func aLyingPeerIsRefusedAndScoredDown(lie: MemoryPeer.Lie) async throws {
        let src = try source()
        let dir = workDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The liar comes first, so it is asked first.
        let liar = try peer("liar", src, at: 4, depth: 3, lie: lie), honest = try peer("honest", src, at: 4, depth: 3)
        let log = LedgerLog.memory()
        let r = try await StateSync(genesisBytes: f.genesis.encoded(), peers: [liar, honest], workDir: dir, logger: logger, parallel: 1).run(into: log)
        #expect(r.chunks == 8)
        #expect(r.scores["liar", default: 0] < 0 && r.scores["honest", default: 0] > 0, "\(r.scores)")
        if lie != .unreachable { #expect(r.refused >= 1) }
        #expect(try StateLoader.load(log).0.stateRoot() == r.stateRoot)
    }

    @Test func withOnlyLiarsNothingIsInstalled() async throws {
        let src = try source()
        let dir = workDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = LedgerLog.memory()
        let peers = [try peer("a", src, at: 4, depth: 2, lie: .alterValue), try peer("b", src, at: 4, depth: 2, lie: .dropEntry)]
        await #expect(throws: StateSyncError.self) { try await StateSync(genesisBytes: f.genesis.encoded(), peers: peers, workDir: dir, logger: logger).run(into: log) }
        #expect(try log.metadata() == nil, "a sync that fails leaves the log empty")
    }

    @Test func aForgedOrUnanchoredOfferIsRefused() async throws {
        let src = try source()
        let dir = workDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = try peer("good", src, at: 4, depth: 1)
        // A certificate signed by a key with no power.
        var forged = good
        var cert = try CheckpointCertificate.decode(bytes: good.offered.certificate)
        let other = SigningKey.derived("nobody")
        let vote = SignedConsensusMessage.sign(cert.message, chain: f.genesis.chainID.raw, signer: other)
        cert.votes = [.init(key: other.publicKey, signature: vote.signature)]
        forged = MemoryPeer(name: "forged", offered: SyncOffer(height: 4, certificate: cert.encoded(), leaves: good.offered.leaves, depth: 1,
                                                                nextSequence: good.offered.nextSequence), chunker: good.chunker, changes: good.changes)
        // The power change at 4 left out: the walk ends at the genesis power, which did not sign.
        let bare = MemoryPeer(name: "bare", offered: good.offered, chunker: good.chunker, changes: [])
        for p in [forged, bare] {
            let log = LedgerLog.memory()
            let dir = workDir()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            await #expect(throws: StateSyncError.self) { try await StateSync(genesisBytes: f.genesis.encoded(), peers: [p], workDir: dir, logger: logger).run(into: log) }
            #expect(try log.metadata() == nil)
            #expect(!StateSync.unfinished(workDir: dir), "a snapshot that cannot be anchored is not kept")
        }
        // With a good peer beside them, the sync goes on from the good one.
        let log = LedgerLog.memory()
        let r = try await StateSync(genesisBytes: f.genesis.encoded(), peers: [forged, bare, good], workDir: dir, logger: logger).run(into: log)
        #expect(r.height == 4 && r.scores["forged"]! < 0 && r.scores["bare"]! < 0, "\(r.scores)")
    }

    @Test func aCrashMidSyncResumesWithTheChunksItKept() async throws {
        let src = try source()
        let dir = workDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = try peer("honest", src, at: 4, depth: 3)
        let log = LedgerLog.memory()
        await #expect(throws: StateSyncError.self) {
            try await StateSync(genesisBytes: f.genesis.encoded(), peers: [p], workDir: dir, logger: logger, parallel: 2, stopAfter: 4).run(into: log)
        }
        let unset = try log.metadata() == nil
        #expect(StateSync.unfinished(workDir: dir) && unset)
        // One kept chunk damaged on disk: proven again on resume, so fetched again.
        let damaged = dir + "/chunk-0"
        var bytes = try #require(FileManager.default.contents(atPath: damaged))
        bytes[bytes.count - 1] ^= 1
        try bytes.write(to: URL(fileURLWithPath: damaged))
        let r = try await StateSync(genesisBytes: f.genesis.encoded(), peers: [p], workDir: dir, logger: logger).run(into: log)
        #expect(r.resumed == 3 && r.fetched == 5, "kept \(r.resumed), fetched \(r.fetched)")
        #expect(try StateLoader.load(log).0.stateRoot() == r.stateRoot)
    }

    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        return (0 ... hay.count - needle.count).first { Array(hay[$0 ..< $0 + needle.count]) == needle }
    }

    @Test func aBaseThatWasAlteredDoesNotReplay() async throws {
        let src = try source()
        let dir = workDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = LedgerLog.memory()
        _ = try await StateSync(genesisBytes: f.genesis.encoded(), peers: [try peer("p", src, at: 4, depth: 0)], workDir: dir, logger: logger).run(into: log)
        let base = try #require(try log.base())
        // Rebuilt with an altered snapshot (a balance changed), written into a fresh log.
        var forged = base
        let at = try #require(Self.find(f.dave.publicKey.bytes, in: base.snapshot)) + 32 + 7
        forged.snapshot[at] ^= 1
        #expect(try LedgerState.decodeSnapshot(forged.snapshot, crypto: Sodium()).accounts[f.dave.publicKey]?.balance != nil)
        let meta = try #require(try log.metadata())
        let bad = LedgerLog.memory()
        try bad.initialize(chainID: meta.chainID, genesisBytes: meta.genesisBytes, genesisHash: meta.genesisHash, base: forged)
        let (r, _) = Replayer(log: bad).run()
        #expect(!r.ok && r.failure?.record == "meta[base].certificate", "\(String(describing: r.failure))")
        var unanchored = base
        unanchored.anchor = AuditBundle.PowerChange.encoded([])
        let bad2 = LedgerLog.memory()
        try bad2.initialize(chainID: meta.chainID, genesisBytes: meta.genesisBytes, genesisHash: meta.genesisHash, base: unanchored)
        let (r2, _) = Replayer(log: bad2).run()
        #expect(!r2.ok && r2.failure?.record == "meta[base].anchor", "\(String(describing: r2.failure))")
    }
}
