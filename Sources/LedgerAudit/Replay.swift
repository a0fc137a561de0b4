import Foundation
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore

/// The first thing wrong with a log: which record, at which height, and why.
public struct AuditFailure: Error, Sendable, Equatable, Codable, CustomStringConvertible {
    public var height: UInt64
    public var record: String
    public var reason: String
    public init(height: UInt64, record: String, reason: String) { self.height = height; self.record = record; self.reason = reason }
    public var description: String { "height \(height): \(record): \(reason)" }
}

public struct ReplayReport: Sendable, Codable {
    public var chainID: String
    public var genesisHash: String
    /// The height the replay started from: 0 (genesis) for a log, a bundle's snapshot height otherwise.
    public var fromHeight: UInt64 = 0
    public var headHeight: UInt64
    public var verifiedToHeight: UInt64
    public var blocks: UInt64
    public var events: UInt64
    public var signaturesVerified: UInt64
    public var certificateVotesVerified: UInt64
    /// State root after the last verified block.
    public var stateRoot: String
    public var stateRootsCompared: UInt64
    public var checkpointsVerified: UInt64
    /// Stored checkpoint certificates checked: the block, the refold's state root, and a
    /// quorum of the power that signs each.
    public var checkpointCertificatesVerified: UInt64 = 0
    /// What the replay trusted: the genesis, or a bundle's snapshot (tied to the genesis
    /// by certified power changes, or taken on trust in an old bundle or a flat chain).
    public var anchor = "the genesis"
    public var seconds: Double
    public var ok: Bool
    public var failure: AuditFailure?
}

/// What a replay source holds before its first block.
public struct ReplayOpening: Sendable {
    public var chainID: ChainID
    public var formatVersion: UInt16
    public var genesisHash: Hash32
    public var genesisBytes: [UInt8]
    /// The source's last block.
    public var head: Height
    /// Where to start when not at genesis: a state (decoded from a snapshot) and the hash
    /// of the block it follows. Its root must be the parent state root of the next block,
    /// which that block's certificate covers.
    public var snapshot: (state: LedgerState, blockHash: Hash32)?
    /// Heights after which the source stored something about the state (`checkStored`).
    public var storedStates: Set<Height>
    /// Heights with a stored checkpoint certificate (`checkpointCertificate(at:)`).
    public var certifiedCheckpoints: Set<Height>
    /// What the replay trusts besides the genesis hash, said in the report.
    public var anchor = "the genesis"
    public init(chainID: ChainID, formatVersion: UInt16, genesisHash: Hash32, genesisBytes: [UInt8], head: Height,
                snapshot: (state: LedgerState, blockHash: Hash32)? = nil, storedStates: Set<Height> = [], certifiedCheckpoints: Set<Height> = []) {
        self.chainID = chainID; self.formatVersion = formatVersion; self.genesisHash = genesisHash
        self.genesisBytes = genesisBytes; self.head = head; self.snapshot = snapshot; self.storedStates = storedStates
        self.certifiedCheckpoints = certifiedCheckpoints
    }
}

/// One block as a source gives it: the stored block and its events, each hash-checked as read.
public struct SourcedBlock: Sendable {
    public var block: StoredBlock
    public var events: [LoggedEvent]
    public init(block: StoredBlock, events: [LoggedEvent]) { self.block = block; self.events = events }
}

/// What a source stored about a state, and replay compared with its refold.
public enum StoredStateKind: Sendable { case checkpoint, stateRoot }

/// Where the replay ended, for the source's last checks.
public struct ReplayEnd {
    /// The last verified block (the start height when none was).
    public var height: Height
    public var head: Height
    public var blockHash: Hash32
    public var nextSequence: SequenceNumber
    public var state: LedgerState
}

/// Where `Replayer` reads: an event log (`LogReplaySource`) or an audit bundle
/// (`BundleReplaySource`). The checks themselves are all in `Replayer`; a source only
/// reads, and compares what it stored beside the blocks (checkpoints, recorded roots).
public protocol ReplaySource: Sendable {
    func opening() throws(AuditFailure) -> ReplayOpening
    /// Block `h` and its events. Called on other threads, ahead of the fold.
    func block(at h: Height) throws(AuditFailure) -> SourcedBlock
    /// Checks what the source recorded about the state block `h` is certified against.
    func checkParent(of h: Height, state: LedgerState) throws(AuditFailure)
    /// Compares what the source stored about the state after block `h` (one of
    /// `storedStates`) with the refold.
    func checkStored(at h: Height, state: LedgerState) throws(AuditFailure) -> StoredStateKind
    /// Last checks once the fold reached `end.height`; returns further state roots compared.
    func finish(_ end: ReplayEnd) throws(AuditFailure) -> UInt64
    /// The checkpoint certificate stored for height `h` (one of `certifiedCheckpoints`).
    func checkpointCertificate(at h: Height) throws(AuditFailure) -> CheckpointCertificate
}

/// Sees the verified fold as it happens (trace, diff, export). Each call comes after the
/// checks of what it reports passed; a throw stops the replay with that failure.
public protocol ReplayObserver: AnyObject {
    /// The state the replay starts from (genesis or a bundle's snapshot).
    func started(_ state: LedgerState) throws(AuditFailure)
    /// Block `block` passed every check of its header, certificate and events; `state` is its parent state.
    func blockWillBegin(_ block: StoredBlock, state: LedgerState) throws(AuditFailure)
    /// After `beginBlock` (unbonding releases, expiries, the epoch's power), before its events.
    func blockBegan(_ block: StoredBlock, state: LedgerState) throws(AuditFailure)
    func applied(_ event: LoggedEvent, block: StoredBlock, state: LedgerState) throws(AuditFailure)
    func blockApplied(_ block: StoredBlock, state: LedgerState) throws(AuditFailure)
}

extension ReplayObserver {
    public func started(_ state: LedgerState) throws(AuditFailure) {}
    public func blockWillBegin(_ block: StoredBlock, state: LedgerState) throws(AuditFailure) {}
    public func blockBegan(_ block: StoredBlock, state: LedgerState) throws(AuditFailure) {}
    public func applied(_ event: LoggedEvent, block: StoredBlock, state: LedgerState) throws(AuditFailure) {}
    public func blockApplied(_ block: StoredBlock, state: LedgerState) throws(AuditFailure) {}
}

/// Replays a log from genesis (or a bundle from its snapshot), trusting nothing in it:
/// every record's hash, every signature, every hash link, every certificate against the
/// validator set of its height, every events root, and every recorded state root
/// against a refold.
public struct Replayer {
    public var source: any ReplaySource
    public var toHeight: Height?
    public var verifySignatures = true
    public var workers = ParallelVerifier.cores
    /// Whether the end checks that the supply adds up (a scan of every balance; a
    /// follower replaying a few blocks at a time asks for it now and then).
    public var checkSupply = true
    /// Called after each block with (height, head).
    public var progress: ((Height, Height) -> Void)?
    /// When set, events are applied one at a time and reported to it.
    public var observer: (any ReplayObserver)?

    public init(source: any ReplaySource, toHeight: Height? = nil) { self.source = source; self.toHeight = toHeight }
    public init(log: any EventLog, toHeight: Height? = nil) { self.init(source: LogReplaySource(log), toHeight: toHeight) }

    public func run() -> (report: ReplayReport, state: LedgerState?) {
        let start = DispatchTime.now().uptimeNanoseconds
        var report = ReplayReport(chainID: "?", genesisHash: "?", headHeight: 0, verifiedToHeight: 0, blocks: 0, events: 0,
                                  signaturesVerified: 0, certificateVotesVerified: 0, stateRoot: "", stateRootsCompared: 0, checkpointsVerified: 0,
                                  seconds: 0, ok: false, failure: nil)
        var state: LedgerState?
        do {
            state = try replay(&report)
            report.ok = true
        } catch {
            report.failure = error
        }
        report.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return (report, state)
    }

    func fail(_ h: Height, _ record: String, _ reason: String) -> AuditFailure {
        AuditFailure(height: h.value, record: record, reason: reason)
    }

    func replay(_ report: inout ReplayReport) throws(AuditFailure) -> LedgerState {
        let meta = try source.opening()
        report.anchor = meta.anchor
        var (state, prevHash) = try start(meta, &report)
        let first = state.height
        report.fromHeight = first.value
        report.verifiedToHeight = first.value
        func compareStored(_ h: Height) throws(AuditFailure) {
            guard meta.storedStates.contains(h) else { return }
            switch try self.source.checkStored(at: h, state: state) {
            case .checkpoint: report.checkpointsVerified += 1
            case .stateRoot: report.stateRootsCompared += 1
            }
        }
        try compareStored(first)
        try observer?.started(state)
        let last = max(first, min(toHeight ?? meta.head, meta.head))
        // Every committed event is applied, so the events before this state number exactly its count.
        var seq = SequenceNumber(state.eventsApplied)
        var scratch: [(id: EventID, envelope: Envelope)] = []
        // Stage 1, one block ahead on other threads: read the block and its events
        // (every record hash-checked on read) and verify the event signatures.
        let source = self.source, verify = verifySignatures, workers = self.workers
        let prepare: @Sendable (Int) -> Fetched = { i in
            let h = Height(first.value + UInt64(i) + 1)
            do throws(AuditFailure) {
                let b = try source.block(at: h)
                let ok = verify ? ParallelVerifier.verify(b.events.map(\.envelope), workers: 1) : []
                return Fetched(block: b, firstBad: ok.firstIndex(of: false))
            } catch {
                return Fetched(block: nil, failure: error)
            }
        }
        // Stage 2, in order on this thread: links, roots, certificate, refold.
        try Pipeline.run(count: Int(last.value - first.value), depth: 2 * workers + 1, prepare: prepare) { (i: Int, f: Fetched) throws(AuditFailure) in
            let h = Height(first.value + UInt64(i) + 1)
            if let failure = f.failure { throw failure }
            let b = f.block!.block, events = f.block!.events
            state.seal()
            let blockHash = try check(b, events, at: h, meta: meta, state: state, prevHash: prevHash, seq: seq, firstBad: f.firstBad, &report)
            try fold(b, events, at: h, into: &state, scratch: &scratch)
            prevHash = blockHash
            seq = SequenceNumber(seq.value + UInt64(events.count))
            report.blocks += 1
            report.events += UInt64(events.count)
            report.verifiedToHeight = h.value
            try compareStored(h)
            if meta.certifiedCheckpoints.contains(h) {
                let cert = try self.source.checkpointCertificate(at: h)
                do throws(CertificateError) { try state.verifyCheckpointCertificate(cert, blockHash: blockHash) } catch {
                    throw fail(h, "checkpoint certificate[\(h)]", error.description)
                }
                report.checkpointCertificatesVerified += 1
            }
            try observer?.blockApplied(b, state: state)
            progress?(h, last)
        }
        report.stateRootsCompared += try source.finish(ReplayEnd(height: last, head: meta.head, blockHash: prevHash, nextSequence: seq, state: state))
        if checkSupply { try Self.checkSupply(state, at: last) }
        report.stateRoot = state.stateRoot().hex
        return state
    }

    /// Supply changes only by minting and burning: the balances, stakes and held funds add up to it.
    static func checkSupply(_ state: LedgerState, at h: Height) throws(AuditFailure) {
        guard let supply = state.computedSupply() else {
            throw AuditFailure(height: h.value, record: "state", reason: "the balances, stakes and held funds add up past 2^64 − 1")
        }
        guard supply == state.totalSupply else {
            throw AuditFailure(height: h.value, record: "state", reason: "supply \(supply) differs from the total supply \(state.totalSupply) (genesis less burned)")
        }
    }

    /// A block read and its signatures verified, ahead of the refold.
    struct Fetched: Sendable {
        var block: SourcedBlock?
        var firstBad: Int?
        var failure: AuditFailure?
    }

    /// The source's genesis checked, and the state replay starts from: genesis, or the
    /// bundle's snapshot with the hash of its block.
    func start(_ meta: ReplayOpening, _ report: inout ReplayReport) throws(AuditFailure) -> (LedgerState, Hash32) {
        report.chainID = meta.chainID.name
        report.genesisHash = meta.genesisHash.hex
        report.headHeight = meta.head.value
        guard meta.formatVersion == Envelope.formatVersion else {
            throw fail(0, "meta[chain]", "format version \(meta.formatVersion); this replay reads \(Envelope.formatVersion)")
        }
        guard Blake2b.hash(meta.genesisBytes) == meta.genesisHash else { throw fail(0, "meta[genesis]", "bytes do not hash to the genesis hash") }
        let genesis: Genesis
        do { genesis = try Genesis.decode(meta.genesisBytes) } catch { throw fail(0, "meta[genesis]", error.description) }
        guard genesis.chainID == meta.chainID else { throw fail(0, "meta[genesis]", "genesis names chain \(genesis.chainID)") }
        guard let (s, blockHash) = meta.snapshot else {
            return (LedgerState(genesis: genesis, genesisHash: meta.genesisHash, crypto: Sodium()), meta.genesisHash)
        }
        // Its root is compared with the next block's parent state root, and that block's
        // certificate is checked against the power this state gives. Parameters are not
        // compared: governance changes them, and the state root carries them.
        guard s.chainID == meta.chainID, s.genesisHash == meta.genesisHash else {
            throw fail(s.height, "snapshot", "belongs to another chain or genesis")
        }
        guard s.height <= meta.head else { throw fail(s.height, "snapshot", "is after the last block \(meta.head)") }
        return (s, blockHash)
    }

    /// Every check of block `h` before its refold: height, chain, parent hash, parent
    /// state root, certificate, proposer, limits, sequence, signatures and events root.
    /// Returns the block's hash.
    func check(_ b: StoredBlock, _ events: [LoggedEvent], at h: Height, meta: ReplayOpening, state: LedgerState, prevHash: Hash32,
               seq: SequenceNumber, firstBad: Int?, _ report: inout ReplayReport) throws(AuditFailure) -> Hash32 {
        let name = "blocks[\(h)]"
        let hd = b.header
        guard hd.height == h else { throw fail(h, name, "header names height \(hd.height)") }
        guard hd.chainID == meta.chainID.raw else { throw fail(h, name, "header names another chain") }
        guard hd.parentHash == prevHash else { throw fail(h, name, "parent hash does not match block \(h.value - 1)") }
        let root = state.stateRoot()
        guard hd.parentStateRoot == root else {
            throw fail(h, name, "parent state root \(hd.parentStateRoot.short) but refold gives \(root.short)")
        }
        report.stateRootsCompared += 1
        try source.checkParent(of: h, state: state)
        let blockHash = Blake2b.hash(b.headerBytes)
        do throws(CertificateError) { try state.verifyCertificate(b.certificate, height: h, blockHash: blockHash) } catch {
            throw fail(h, "\(name).certificate", error.description)
        }
        report.certificateVotesVerified += UInt64(b.certificate.votes.count)
        // A block re-proposed after a view change keeps the header of the view that
        // proposed it and is committed in a later view: never an earlier one.
        guard b.certificate.view >= hd.view else {
            throw fail(h, "\(name).certificate", "view \(b.certificate.view) is before the header's view \(hd.view)")
        }
        guard state.powerForNextBlock()[hd.proposer] != nil else {
            throw fail(h, name, "proposer \(hd.proposer.short) holds no voting power at this height")
        }
        guard hd.eventCount <= state.parameters.blockEventsMax else {
            throw fail(h, name, "\(hd.eventCount) events, the chain allows \(state.parameters.blockEventsMax)")
        }
        guard b.firstSequence == seq else { throw fail(h, name, "first sequence \(b.firstSequence), expected \(seq)") }
        guard events.count == Int(hd.eventCount) else {
            throw fail(h, "events[\(seq.value + UInt64(events.count))]", "missing: block \(h) has \(hd.eventCount) events")
        }
        // Signatures before the root: a forged event is named as such, not as a root mismatch.
        if let bad = firstBad {
            throw fail(h, "events[\(events[bad].sequence)]", "signature of \(events[bad].id.short) does not verify")
        }
        guard EventCrypto.eventsRoot(events.map(\.id)) == hd.eventsRoot else { throw fail(h, name, "events root does not match its events") }
        if verifySignatures { report.signaturesVerified += UInt64(events.count) }
        let bytes = events.reduce(0) { $0 + $1.envelope.bytes.count }
        guard bytes <= Int(state.parameters.blockBytesMax) else {
            throw fail(h, name, "\(bytes) bytes of events, the chain allows \(state.parameters.blockBytesMax)")
        }
        return blockHash
    }

    /// Refolds block `h` into `state`: the whole block at once, or one event at a time
    /// with the observer seeing each (the same folds as `applyBlock`).
    func fold(_ b: StoredBlock, _ events: [LoggedEvent], at h: Height, into state: inout LedgerState,
              scratch: inout [(id: EventID, envelope: Envelope)]) throws(AuditFailure) {
        let name = "blocks[\(h)]", hd = b.header
        guard let observer else {
            scratch.removeAll(keepingCapacity: true)
            for e in events { scratch.append((e.id, e.envelope)) }
            do throws(BlockError) { try state.applyBlock(hd, scratch) } catch {
                if case let .event(i, _, _) = error { throw fail(h, "events[\(events[i].sequence)]", error.description) }
                throw fail(h, name, error.description)
            }
            return
        }
        try observer.blockWillBegin(b, state: state)
        let ctx = BlockContext(height: hd.height, timestampMs: hd.timestampMs, proposer: hd.proposer, parentStateRoot: hd.parentStateRoot)
        do throws(BlockError) { try state.beginBlock(ctx) } catch { throw fail(h, name, error.description) }
        try observer.blockBegan(b, state: state)
        for (i, e) in events.enumerated() {
            do throws(ApplyError) { try state.apply(e.envelope, id: e.id, ctx) } catch {
                throw fail(h, "events[\(e.sequence)]", BlockError.event(index: i, id: e.id, error).description)
            }
            try observer.applied(e, block: b, state: state)
        }
        do throws(BlockError) { try state.checkPostState(hd) } catch { throw fail(h, name, error.description) }
    }
}

/// Replays an event log: LMDB or memory, every record hash-checked as it is read.
public struct LogReplaySource: ReplaySource {
    public let log: any EventLog
    public init(_ log: any EventLog) { self.log = log }

    static func store<T>(_ h: Height, _ body: () throws(StoreError) -> T) throws(AuditFailure) -> T {
        do { return try body() } catch {
            if case let .corrupt(record, reason) = error { throw AuditFailure(height: h.value, record: record, reason: reason) }
            throw AuditFailure(height: h.value, record: "log", reason: error.description)
        }
    }

    public func opening() throws(AuditFailure) -> ReplayOpening {
        guard let meta = try Self.store(0, { () throws(StoreError) in try log.metadata() }) else {
            throw AuditFailure(height: 0, record: "meta", reason: "the log has no genesis")
        }
        // Checkpoints are stored state: replay checks each against its own refold.
        let checkpoints = Set(try Self.store(0, { () throws(StoreError) in try log.checkpointHeights() }))
        // So are the certificates a quorum signed over checkpoints: each is checked
        // against the refold of its block. One above the head names a block the log lacks.
        let certified = try Self.store(0, { () throws(StoreError) in try log.checkpointCertificateHeights() })
        if let beyond = certified.last, beyond > meta.head {
            throw AuditFailure(height: beyond.value, record: "meta[stable \(beyond)]", reason: "a checkpoint certificate for a height after the last block \(meta.head)")
        }
        var o = ReplayOpening(chainID: meta.chainID, formatVersion: meta.formatVersion, genesisHash: meta.genesisHash,
                              genesisBytes: meta.genesisBytes, head: meta.head, storedStates: checkpoints,
                              certifiedCheckpoints: Set(certified))
        if let base = try Self.store(0, { () throws(StoreError) in try log.base() }) {
            let s = try Self.anchorBase(base, meta)
            o.snapshot = (s, base.blockHash)
            o.storedStates = checkpoints.filter { $0 > base.height }
            o.certifiedCheckpoints = Set(certified.filter { $0 > base.height })
            o.anchor = "the genesis, through the base's certified power changes and the certificate of its snapshot at \(base.height)"
        }
        return o
    }

    /// A state-synced log starts at its base: the snapshot's root must be the one its
    /// checkpoint certificate signs, and that quorum the one the power changes lead to
    /// from the genesis (FORMAT.md §15.4), so the replay trusts the genesis alone.
    static func anchorBase(_ base: LogBase, _ meta: LogMetadata) throws(AuditFailure) -> LedgerState {
        let h = base.height.value
        let s: LedgerState
        do { s = try LedgerState.decodeSnapshot(base.snapshot, crypto: Sodium()) } catch {
            throw AuditFailure(height: h, record: "meta[base].snapshot", reason: error.description)
        }
        guard s.height == base.height, s.genesisHash == meta.genesisHash else {
            throw AuditFailure(height: h, record: "meta[base].snapshot", reason: "is not the state of this chain at \(base.height)")
        }
        let changes: [AuditBundle.PowerChange]
        do { changes = try AuditBundle.PowerChange.decode(base.anchor, upTo: base.height) } catch {
            throw AuditFailure(height: h, record: "meta[base].anchor", reason: error.description)
        }
        let lc = try AuditBundle.PowerChange.walk(genesis: meta.genesisBytes, changes, upTo: base.height)
        guard lc.power == s.powerForNextBlock() else {
            throw AuditFailure(height: h, record: "meta[base].anchor",
                               reason: "the certificates from the genesis lead to another validator set than the snapshot's")
        }
        do {
            let cert = try CheckpointCertificate.decode(bytes: base.certificate)
            try s.verifyCheckpointCertificate(cert, blockHash: base.blockHash)
        } catch {
            throw AuditFailure(height: h, record: "meta[base].certificate", reason: "\(error)")
        }
        return s
    }

    public func checkpointCertificate(at h: Height) throws(AuditFailure) -> CheckpointCertificate {
        let bytes = try Self.store(h, { () throws(StoreError) in try log.checkpointCertificate(at: h) })
        guard let bytes else { throw AuditFailure(height: h.value, record: "meta[stable \(h)]", reason: "missing") }
        do { return try CheckpointCertificate.decode(bytes: bytes) } catch {
            throw AuditFailure(height: h.value, record: "meta[stable \(h)]", reason: error.description)
        }
    }

    public func block(at h: Height) throws(AuditFailure) -> SourcedBlock {
        try Self.store(h) { () throws(StoreError) in
            guard let b = try log.block(at: h) else { throw StoreError.corrupt(record: "blocks[\(h)]", reason: "missing") }
            return SourcedBlock(block: b, events: try log.events(from: b.firstSequence, count: Int(b.header.eventCount)))
        }
    }

    public func checkParent(of h: Height, state: LedgerState) throws(AuditFailure) {}

    public func checkStored(at h: Height, state: LedgerState) throws(AuditFailure) -> StoredStateKind {
        let stored = try Self.store(h, { () throws(StoreError) in try log.checkpoint(atOrBelow: h) })
        guard let stored, stored.height == h, stored.snapshot == state.canonicalBytes() else {
            throw AuditFailure(height: h.value, record: "checkpoints[\(h)]", reason: "does not match the refold of blocks 1...\(h)")
        }
        return .checkpoint
    }

    public func finish(_ end: ReplayEnd) throws(AuditFailure) -> UInt64 {
        let last = end.height
        if last < end.head {
            // Stopping early: the next block still vouches for the state reached.
            let next = try Self.store(last.next, { () throws(StoreError) in try log.block(at: last.next) })
            guard let next, next.header.parentStateRoot == end.state.stateRoot() else {
                throw AuditFailure(height: last.next.value, record: "blocks[\(last.next)]", reason: "parent state root does not match the refold to \(last)")
            }
            return 1
        }
        guard let meta = try Self.store(last, { () throws(StoreError) in try log.metadata() }) else {
            throw AuditFailure(height: last.value, record: "meta", reason: "the log has no genesis")
        }
        guard meta.head == last, meta.headHash == end.blockHash else {
            throw AuditFailure(height: last.value, record: "meta[head]", reason: "head hash does not match block \(last)")
        }
        guard meta.nextSequence == end.nextSequence else {
            throw AuditFailure(height: last.value, record: "meta[head]", reason: "next sequence \(meta.nextSequence), log has \(end.nextSequence)")
        }
        let extra = try Self.store(last, { () throws(StoreError) in try log.events(from: end.nextSequence, count: 1) })
        guard extra.isEmpty else { throw AuditFailure(height: last.value, record: "events[\(end.nextSequence)]", reason: "event beyond the last block") }
        return 0
    }
}
