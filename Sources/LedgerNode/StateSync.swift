import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore
import LedgerTree
import Logging
import Synchronization

/// What a peer offers to state-sync from (`GET /v1/sync/snapshot`, FORMAT.md §15.1).
public struct SyncOffer: Sendable, Equatable {
    public var height: Height
    /// The checkpoint certificate of `height` (§12 bytes): the only thing trusted, once
    /// the power changes from the genesis lead to the quorum that signed it.
    public var certificate: [UInt8]
    public var leaves: Int
    public var depth: Int
    /// The sequence number of the first event after `height` on the peer.
    public var nextSequence: SequenceNumber
    public init(height: Height, certificate: [UInt8], leaves: Int, depth: Int, nextSequence: SequenceNumber) {
        self.height = height; self.certificate = certificate; self.leaves = leaves; self.depth = depth; self.nextSequence = nextSequence
    }
}

/// A node a syncing node fetches from (over HTTP in `chaosledger node`, in memory in tests).
/// Nothing it returns is trusted: every answer is checked before it is kept.
public protocol SnapshotPeer: Sendable {
    var name: String { get }
    func offer() async throws -> SyncOffer
    /// The headers that changed the power, at or below `height`, with their certificates
    /// and the new power (`GET /v1/light/powers`).
    func powerChanges(upTo height: Height) async throws -> [AuditBundle.PowerChange]
    /// Chunk `index` of depth `depth` of the state at `height` (§15.2 bytes).
    func chunk(height: Height, depth: Int, index: UInt32) async throws -> [UInt8]
}

public enum StateSyncError: Error, CustomStringConvertible {
    /// No peer offered a snapshot whose certificate verifies from the genesis.
    case noSnapshot([String])
    /// Every peer failed to give a chunk that verifies.
    case chunkUnavailable(index: UInt32, [String])
    /// The verified chunks do not make a state of that root (a defect: each was proven).
    case assembly(String)
    case store(StoreError)
    case workDir(String)
    /// Stopped on purpose after this many chunks (tests: a crash mid-sync).
    case stopped(chunks: Int)

    public var description: String {
        switch self {
        case let .noSnapshot(why): "no peer offered a snapshot that verifies: \(why.joined(separator: "; "))"
        case let .chunkUnavailable(i, why): "no peer gave chunk \(i) that verifies: \(why.joined(separator: "; "))"
        case let .assembly(why): "the verified chunks do not assemble: \(why)"
        case let .store(e): "store: \(e)"
        case let .workDir(why): "sync directory: \(why)"
        case let .stopped(n): "stopped after \(n) chunks"
        }
    }
}

public struct StateSyncReport: Sendable {
    public var height: Height
    public var stateRoot: Hash32
    public var leaves: Int
    public var chunks: Int
    /// Chunks fetched in this run, and chunks a previous run had kept.
    public var fetched: Int
    public var resumed: Int
    /// Chunks refused (a peer's answer that did not verify).
    public var refused: Int
    public var seconds: Double
    /// Each peer's score at the end: +1 a verified chunk, -1 a failed request, -10 a lie.
    public var scores: [String: Int]
    /// The state installed (its root checked against the certificate): the driver starts
    /// from it instead of decoding the base again.
    public var state: LedgerState
}

/// State sync (issue 18, step 4; FORMAT.md §15): a new or wiped node takes the state at
/// a peer's newest stable checkpoint instead of replaying every block. It trusts the
/// genesis alone: the power changes from the genesis lead to the quorum that signed the
/// checkpoint's certificate, each chunk is proven against the certified root as it
/// arrives (a lying peer's chunk is refused and the peer scored down), verified chunks
/// are kept on disk so a crash resumes where it stopped, and the assembled state's root
/// is checked once more before the log is initialised at that base. The node then
/// fetches only the blocks after it, as any replica that fell behind.
public final class StateSync: Sendable {
    public let genesisBytes: [UInt8]
    public let peers: [any SnapshotPeer]
    public let workDir: String
    let logger: Logger
    /// Chunks fetched at once.
    public let parallel: Int
    /// A peer below this score is not asked again.
    public static let banScore = -30
    let scores: Mutex<[String: Int]>
    let refusedCount = Mutex(0)
    /// Tests: stop (as a crash would) once this many chunks were fetched in this run.
    let stopAfter: Int?

    public init(genesisBytes: [UInt8], peers: [any SnapshotPeer], workDir: String, logger: Logger, parallel: Int = 4, stopAfter: Int? = nil) {
        self.genesisBytes = genesisBytes; self.peers = peers; self.workDir = workDir; self.logger = logger
        self.parallel = max(1, parallel); self.stopAfter = stopAfter
        scores = Mutex(Dictionary(peers.map { ($0.name, 0) }, uniquingKeysWith: { a, _ in a }))
    }

    /// What the sync aims at, once verified: kept in the work directory so a restart
    /// resumes at the same height, and checked again from the genesis when read.
    struct Target {
        var offer: SyncOffer
        var certificate: CheckpointCertificate
        var changes: [AuditBundle.PowerChange]
        /// The peer whose power changes these are (not kept: unknown after a restart).
        var from: String?
        /// The power the walk over `changes` ended at (set by `verifyTarget`).
        var power: [PublicKey: UInt64] = [:]

        func encoded() -> [UInt8] {
            var w = ByteWriter(capacity: 1024)
            w.u64(offer.height.value); w.u8(UInt8(offer.depth)); w.u64(UInt64(offer.leaves)); w.u64(offer.nextSequence.value)
            w.blob32(offer.certificate)
            AuditBundle.PowerChange.encode(changes, &w)
            w.b32(Blake2b.hash(w.bytes))
            return w.bytes
        }
    }

    /// Syncs into `log`, which must be empty, and returns what was done.
    public func run(into log: LedgerLog) async throws(StateSyncError) -> StateSyncReport {
        let t0 = DispatchTime.now().uptimeNanoseconds
        do { try FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true) } catch {
            throw .workDir("\(workDir): \(error.localizedDescription)")
        }
        func secs(_ a: UInt64, _ b: UInt64) -> String { String(format: "%.2f s", Double(b - a) / 1e9) }
        let target = try await resumeOrChoose()
        let tChunks = DispatchTime.now().uptimeNanoseconds
        let n = 1 << target.offer.depth
        var have = Set<UInt32>()
        for i in 0 ..< UInt32(n) where (try? readChunk(i, target)) != nil { have.insert(i) }
        let resumed = have.count
        if resumed > 0 { logger.notice("state sync resumed", metadata: ["height": "\(target.offer.height.value)", "chunks": "\(resumed) of \(n)"]) }
        let missing = (0 ..< UInt32(n)).filter { !have.contains($0) }
        var fetched = 0
        for batch in stride(from: 0, to: missing.count, by: parallel).map({ Array(missing[$0 ..< min($0 + parallel, missing.count)]) }) {
            if let stopAfter, fetched >= stopAfter { throw .stopped(chunks: fetched) }
            try await fetch(batch, target)
            fetched += batch.count
            if fetched % 64 < parallel { logger.info("state sync", metadata: ["chunks": "\(resumed + fetched) of \(n)"]) }
        }
        let tAssemble = DispatchTime.now().uptimeNanoseconds
        let state = try assemble(target)
        let anchored = try await anchor(state, target)
        let tInstall = DispatchTime.now().uptimeNanoseconds
        try install(state, anchored, into: log)
        try? FileManager.default.removeItem(atPath: workDir)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let report = StateSyncReport(height: target.offer.height, stateRoot: target.certificate.stateRoot, leaves: target.offer.leaves,
                                     chunks: n, fetched: fetched, resumed: resumed, refused: refusedCount.withLock { $0 },
                                     seconds: seconds, scores: scores.withLock { $0 }, state: state)
        logger.notice("state synced", metadata: ["height": "\(report.height.value)", "root": "\(report.stateRoot.short)",
                                                 "chunks": "\(n)", "refused": "\(report.refused)", "seconds": "\(seconds)",
                                                 "phases": "offer \(secs(t0, tChunks)), chunks \(secs(tChunks, tAssemble)), assembly \(secs(tAssemble, tInstall)), install \(secs(tInstall, DispatchTime.now().uptimeNanoseconds))"])
        return report
    }

    // MARK: - Choosing what to sync to

    var targetPath: String { workDir + "/target" }

    /// The target a previous run kept (checked again from the genesis), or the highest
    /// offer that verifies.
    func resumeOrChoose() async throws(StateSyncError) -> Target {
        if let bytes = FileManager.default.contents(atPath: targetPath).map(Array.init) {
            do { return try verifyTarget(try decodeTarget(bytes)) } catch {
                logger.warning("state sync: the kept target does not verify, starting over", metadata: ["error": "\(error)"])
                try? FileManager.default.removeItem(atPath: workDir)
                try? FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true)
            }
        }
        var offers: [(peer: any SnapshotPeer, offer: SyncOffer)] = []
        var why: [String] = []
        for p in peers {
            do { offers.append((p, try await p.offer())) } catch {
                score(p.name, -1)
                why.append("\(p.name): \(error)")
            }
        }
        // The highest first; among equals, in the order the peers were given.
        let ranked = offers.enumerated().sorted { ($0.element.offer.height, $1.offset) > ($1.element.offer.height, $0.offset) }.map(\.element)
        for (p, o) in ranked {
            do {
                let changes = try await p.powerChanges(upTo: o.height)
                let t = try verifyTarget(Target(offer: o, certificate: try CheckpointCertificate.decode(bytes: o.certificate), changes: changes, from: p.name))
                do { try Data(t.encoded()).write(to: URL(fileURLWithPath: targetPath), options: .atomic) } catch {
                    throw StateSyncError.workDir("cannot write \(targetPath): \(error.localizedDescription)")
                }
                logger.notice("state sync target", metadata: ["peer": "\(p.name)", "height": "\(o.height.value)", "leaves": "\(o.leaves)",
                                                             "chunks": "\(1 << o.depth)", "root": "\(t.certificate.stateRoot.short)"])
                return t
            } catch let e as StateSyncError {
                throw e
            } catch {
                score(p.name, -10)
                refusedCount.withLock { $0 += 1 }
                logger.warning("state sync: offer refused", metadata: ["peer": "\(p.name)", "height": "\(o.height.value)", "error": "\(error)"])
                why.append("\(p.name): \(error)")
            }
        }
        throw .noSnapshot(why)
    }

    /// The light client's walk from the genesis over the power changes, then the
    /// certificate against the power it ends at.
    func verifyTarget(_ t: Target) throws -> Target {
        guard t.offer.depth <= TreeChunk.depthMax else { throw DecodeError.invalidValue(field: "offer.depth", reason: "over \(TreeChunk.depthMax)") }
        let lc = try AuditBundle.PowerChange.walk(genesis: genesisBytes, t.changes, upTo: t.offer.height)
        let c = try lc.verifyCheckpoint(t.offer.certificate)
        guard c.height == t.offer.height else {
            throw DecodeError.invalidValue(field: "offer.certificate", reason: "signs height \(c.height), not \(t.offer.height)")
        }
        var verified = t
        verified.power = lc.power
        return verified
    }

    func decodeTarget(_ bytes: [UInt8]) throws -> Target {
        guard bytes.count > 32, Blake2b.hash(Array(bytes.dropLast(32))) == Hash32(bytes.suffix(32)) else {
            throw DecodeError.invalidValue(field: "target", reason: "checksum")
        }
        var r = ByteReader(Array(bytes.dropLast(32)))
        let h = Height(try r.u64("target.height"))
        let depth = Int(try r.u8("target.depth"))
        let leaves = Int(try r.u64("target.leaves"))
        let next = SequenceNumber(try r.u64("target.nextSequence"))
        let cert = try r.blob32("target.certificate", max: 1 << 20)
        let changes = try AuditBundle.PowerChange.decode(&r, upTo: h)
        try r.end()
        return Target(offer: SyncOffer(height: h, certificate: cert, leaves: leaves, depth: depth, nextSequence: next),
                      certificate: try CheckpointCertificate.decode(bytes: cert), changes: changes)
    }

    // MARK: - Chunks

    func chunkPath(_ i: UInt32) -> String { workDir + "/chunk-\(i)" }

    /// A kept chunk, proven again (a file damaged on disk is fetched again).
    func readChunk(_ i: UInt32, _ t: Target) throws -> StateChunk {
        guard let bytes = FileManager.default.contents(atPath: chunkPath(i)) else { throw StateSyncError.workDir("chunk \(i) missing") }
        let c = try StateChunk.decode(Array(bytes))
        if let why = c.refusal(height: t.offer.height, depth: t.offer.depth, index: i, root: t.certificate.stateRoot, TreeRules(Sodium())) {
            throw DecodeError.invalidValue(field: "chunk \(i)", reason: why)
        }
        return c
    }

    func fetch(_ batch: [UInt32], _ t: Target) async throws(StateSyncError) {
        let failures = await withTaskGroup(of: StateSyncError?.self) { g in
            for i in batch { g.addTask { do throws(StateSyncError) { try await self.fetchOne(i, t); return nil } catch { return error } } }
            var out: [StateSyncError] = []
            for await e in g { if let e { out.append(e) } }
            return out
        }
        if let first = failures.first { throw first }
    }

    /// Chunk `i` from the best-scored peer that gives one that verifies.
    func fetchOne(_ i: UInt32, _ t: Target) async throws(StateSyncError) {
        let rules = TreeRules(Sodium())
        var why: [String] = []
        var tried = Set<String>()
        while let p = bestPeer(excluding: tried) {
            tried.insert(p.name)
            let bytes: [UInt8]
            do { bytes = try await p.chunk(height: t.offer.height, depth: t.offer.depth, index: i) } catch {
                score(p.name, -1)
                why.append("\(p.name): \(error)")
                continue
            }
            let refusal: String?
            do {
                let c = try StateChunk.decode(bytes)
                refusal = c.refusal(height: t.offer.height, depth: t.offer.depth, index: i, root: t.certificate.stateRoot, rules)
            } catch { refusal = "\(error)" }
            if let refusal {
                score(p.name, -10)
                refusedCount.withLock { $0 += 1 }
                logger.warning("state sync: chunk refused", metadata: ["peer": "\(p.name)", "chunk": "\(i)", "why": "\(refusal)"])
                why.append("\(p.name): \(refusal)")
                continue
            }
            do { try Data(bytes).write(to: URL(fileURLWithPath: chunkPath(i)), options: .atomic) } catch {
                throw .workDir("cannot write chunk \(i): \(error.localizedDescription)")
            }
            score(p.name, 1)
            return
        }
        throw .chunkUnavailable(index: i, why)
    }

    func score(_ peer: String, _ delta: Int) { scores.withLock { $0[peer, default: 0] += delta } }

    /// The peer with the best score not yet tried for this chunk (ties: in the order given).
    func bestPeer(excluding tried: Set<String>) -> (any SnapshotPeer)? {
        let s = scores.withLock { $0 }
        return peers.filter { !tried.contains($0.name) && s[$0.name, default: 0] > Self.banScore }
            .enumerated().max { a, b in (s[a.element.name, default: 0], -a.offset) < (s[b.element.name, default: 0], -b.offset) }?.element
    }

    // MARK: - Assembly and installation

    /// The state the verified chunks make, checked once more against the certified root.
    /// The kept chunks are only decoded here: each was proven when it was fetched or
    /// resumed, and the assembled state's root covers every entry again (a file damaged
    /// since fails that check, and the sync with it).
    func assemble(_ t: Target) throws(StateSyncError) -> LedgerState {
        var entries: [(leaf: StateLeaf, value: [UInt8])] = []
        entries.reserveCapacity(t.offer.leaves)
        for i in 0 ..< UInt32(1 << t.offer.depth) {
            do {
                guard let bytes = FileManager.default.contents(atPath: chunkPath(i)) else { throw StateSyncError.workDir("chunk \(i) missing") }
                entries += try StateChunk.decode(Array(bytes)).entries
            } catch { throw .assembly("chunk \(i): \(error)") }
        }
        var s: LedgerState
        do { s = try LedgerState.assemble(entries, crypto: Sodium()) } catch { throw .assembly("\(error)") }
        let root = s.sealRoot()
        guard root == t.certificate.stateRoot, s.height == t.offer.height else {
            throw .assembly("the state at \(s.height) has root \(root.short), the certificate signs \(t.certificate.stateRoot.short) at \(t.offer.height)")
        }
        return s
    }

    /// The power changes must lead from the genesis to the state's own power for the next
    /// block. A peer that left some out (its walk ends at an older quorum that happens to
    /// hold the signers) is found out here: scored down, and the changes taken from a
    /// peer whose walk does end there and verifies the certificate.
    func anchor(_ s: LedgerState, _ t: Target) async throws(StateSyncError) -> Target {
        let want = s.powerForNextBlock()
        // The target's own walk was verified already (`verifyTarget`): only its end is compared.
        if t.power == want { return t }
        func leads(_ changes: [AuditBundle.PowerChange]) -> Bool {
            guard let lc = try? AuditBundle.PowerChange.walk(genesis: genesisBytes, changes, upTo: t.offer.height) else { return false }
            return lc.power == want && (try? lc.verifyCheckpoint(t.offer.certificate)) != nil
        }
        if let from = t.from {
            score(from, -10)
            refusedCount.withLock { $0 += 1 }
        }
        logger.warning("state sync: the power changes do not lead to the state's validator set; asking the other peers",
                       metadata: ["peer": "\(t.from ?? "an earlier run's")"])
        for p in peers where p.name != t.from {
            guard let changes = try? await p.powerChanges(upTo: t.offer.height), leads(changes) else { score(p.name, -1); continue }
            var fixed = t
            fixed.changes = changes
            fixed.from = p.name
            fixed.power = want
            return fixed
        }
        // A snapshot no one can tie to the genesis is not kept: the next run starts over.
        try? FileManager.default.removeItem(atPath: workDir)
        throw .assembly("no peer's power changes lead from the genesis to the state's validator set")
    }

    func install(_ s: LedgerState, _ t: Target, into log: LedgerLog) throws(StateSyncError) {
        let genesisHash = Blake2b.hash(genesisBytes)
        guard s.genesisHash == genesisHash else { throw .assembly("the state is of another genesis") }
        let base = LogBase(height: t.offer.height, blockHash: t.certificate.blockHash, nextSequence: t.offer.nextSequence,
                           snapshot: s.canonicalBytes(), certificate: t.offer.certificate,
                           anchor: AuditBundle.PowerChange.encoded(t.changes))
        do { try log.initialize(chainID: s.chainID, genesisBytes: genesisBytes, genesisHash: genesisHash, base: base) } catch { throw .store(error) }
    }

    /// Whether a sync was started in `workDir` and not finished (a restart resumes it).
    public static func unfinished(workDir: String) -> Bool { FileManager.default.fileExists(atPath: workDir + "/target") }
}
