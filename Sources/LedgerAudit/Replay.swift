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
    public var description: String { "height \(height): \(record): \(reason)" }
}

public struct ReplayReport: Sendable, Codable {
    public var chainID: String
    public var genesisHash: String
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
    public var seconds: Double
    public var ok: Bool
    public var failure: AuditFailure?
}

/// Replays a log from genesis, trusting nothing in it: every record's hash, every
/// signature, every hash link, every certificate against the validator set of its
/// height, every events root, and every recorded state root against a refold.
public struct Replayer {
    public var log: any EventLog
    public var toHeight: Height?
    public var verifySignatures = true
    public var workers = ParallelVerifier.cores
    /// Called after each block with (height, head).
    public var progress: ((Height, Height) -> Void)?

    public init(log: any EventLog, toHeight: Height? = nil) { self.log = log; self.toHeight = toHeight }

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

    func replay(_ report: inout ReplayReport) throws(AuditFailure) -> LedgerState {
        func fail(_ h: Height, _ record: String, _ reason: String) -> AuditFailure {
            AuditFailure(height: h.value, record: record, reason: reason)
        }
        func store<T>(_ h: Height, _ body: () throws(StoreError) -> T) throws(AuditFailure) -> T {
            do { return try body() } catch {
                if case let .corrupt(record, reason) = error { throw fail(h, record, reason) }
                throw fail(h, "log", error.description)
            }
        }
        guard let meta = try store(0, { () throws(StoreError) in try log.metadata() }) else {
            throw fail(0, "meta", "the log has no genesis")
        }
        report.chainID = meta.chainID.name
        report.genesisHash = meta.genesisHash.hex
        guard meta.formatVersion == Envelope.formatVersion else {
            throw fail(0, "meta[chain]", "format version \(meta.formatVersion); this replay reads \(Envelope.formatVersion)")
        }
        // Checkpoints are stored state: replay checks each against its own refold.
        let checkpoints = Set(try store(0, { () throws(StoreError) in try log.checkpointHeights() }))
        report.headHeight = meta.head.value
        let genesis: Genesis
        do { genesis = try Genesis.decode(meta.genesisBytes) } catch { throw fail(0, "meta[genesis]", error.description) }
        guard genesis.chainID == meta.chainID else { throw fail(0, "meta[genesis]", "genesis names chain \(genesis.chainID)") }
        var state = LedgerState(genesis: genesis, genesisHash: meta.genesisHash)
        let last = min(toHeight ?? meta.head, meta.head)
        var prevHash = meta.genesisHash
        var seq = SequenceNumber(0)
        var scratch: [(id: EventID, envelope: Envelope)] = []
        // Stage 1, one block ahead on other threads: read the block and its events
        // (every record hash-checked on read) and verify the event signatures.
        struct Fetched: Sendable {
            var block: StoredBlock?
            var events: [LoggedEvent]
            var firstBad: Int?
            var failure: AuditFailure?
        }
        let source = self.log, verify = verifySignatures, workers = self.workers
        let prepare: @Sendable (Int) -> Fetched = { i in
            let h = Height(UInt64(i) + 1)
            do throws(StoreError) {
                guard let b = try source.block(at: h) else {
                    return Fetched(block: nil, events: [], failure: AuditFailure(height: h.value, record: "blocks[\(h)]", reason: "missing"))
                }
                let events = try source.events(from: b.firstSequence, count: Int(b.header.eventCount))
                let ok = verify ? ParallelVerifier.verify(events.map(\.envelope), workers: workers) : []
                return Fetched(block: b, events: events, firstBad: ok.firstIndex(of: false))
            } catch {
                if case let .corrupt(record, reason) = error {
                    return Fetched(block: nil, events: [], failure: AuditFailure(height: h.value, record: record, reason: reason))
                }
                return Fetched(block: nil, events: [], failure: AuditFailure(height: h.value, record: "log", reason: error.description))
            }
        }
        // Stage 2, in order on this thread: links, roots, certificate, refold.
        try Pipeline.run(count: Int(last.value), prepare: prepare) { (i: Int, f: Fetched) throws(AuditFailure) in
            let h = Height(UInt64(i) + 1)
            let name = "blocks[\(h)]"
            if let failure = f.failure { throw failure }
            let b = f.block!
            let hd = b.header
            guard hd.chainID == meta.chainID.raw else { throw fail(h, name, "header names another chain") }
            guard hd.parentHash == prevHash else { throw fail(h, name, "parent hash does not match block \(h.value - 1)") }
            let root = state.stateRoot()
            guard hd.parentStateRoot == root else {
                throw fail(h, name, "parent state root \(hd.parentStateRoot.short) but refold gives \(root.short)")
            }
            report.stateRootsCompared += 1
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
            let events = f.events
            guard events.count == Int(hd.eventCount) else {
                throw fail(h, "events[\(seq.value + UInt64(events.count))]", "missing: block \(h) has \(hd.eventCount) events")
            }
            guard EventCrypto.eventsRoot(events.map(\.id)) == hd.eventsRoot else { throw fail(h, name, "events root does not match its events") }
            if let bad = f.firstBad {
                throw fail(h, "events[\(events[bad].sequence)]", "signature of \(events[bad].id.short) does not verify")
            }
            if verifySignatures { report.signaturesVerified += UInt64(events.count) }
            let bytes = events.reduce(0) { $0 + $1.envelope.bytes.count }
            guard bytes <= Int(state.parameters.blockBytesMax) else {
                throw fail(h, name, "\(bytes) bytes of events, the chain allows \(state.parameters.blockBytesMax)")
            }
            scratch.removeAll(keepingCapacity: true)
            for e in events { scratch.append((e.id, e.envelope)) }
            do throws(BlockError) { try state.applyBlock(hd, scratch) } catch {
                if case let .event(i, _, _) = error { throw fail(h, "events[\(events[i].sequence)]", error.description) }
                throw fail(h, name, error.description)
            }
            prevHash = blockHash
            seq = SequenceNumber(seq.value + UInt64(events.count))
            report.blocks += 1
            report.events += UInt64(events.count)
            report.verifiedToHeight = h.value
            if checkpoints.contains(h) {
                let stored = try store(h, { () throws(StoreError) in try log.checkpoint(atOrBelow: h) })
                guard let stored, stored.height == h, stored.snapshot == state.canonicalBytes() else {
                    throw fail(h, "checkpoints[\(h)]", "does not match the refold of blocks 1...\(h)")
                }
                report.checkpointsVerified += 1
            }
            progress?(h, last)
        }
        if last < meta.head {
            // Stopping early: the next block still vouches for the state reached.
            let next = try store(last.next, { () throws(StoreError) in try log.block(at: last.next) })
            guard let next, next.header.parentStateRoot == state.stateRoot() else {
                throw fail(last.next, "blocks[\(last.next)]", "parent state root does not match the refold to \(last)")
            }
            report.stateRootsCompared += 1
        }
        if last == meta.head {
            guard meta.headHash == prevHash else { throw fail(last, "meta[head]", "head hash does not match block \(last)") }
            guard meta.nextSequence == seq else { throw fail(last, "meta[head]", "next sequence \(meta.nextSequence), log has \(seq)") }
            let extra = try store(last, { () throws(StoreError) in try log.events(from: seq, count: 1) })
            guard extra.isEmpty else { throw fail(last, "events[\(seq)]", "event beyond the last block") }
            guard state.computedSupply() == state.totalSupply else {
                throw fail(last, "state", "supply \(state.computedSupply()) differs from the total supply \(state.totalSupply) (genesis less burned)")
            }
        }
        report.stateRoot = state.stateRoot().hex
        return state
    }
}
