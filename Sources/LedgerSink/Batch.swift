import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore
import LedgerViews

/// What one transaction writes: the rows of a run of verified blocks, their events, the
/// balances they changed, and which projection rows they touched.
struct SinkBatch: Sendable {
    var blocks = CopyRows()
    var events = CopyRows()
    var balances = CopyRows()
    /// Per `ProjectionTable.all` entry, the rows to rewrite, each with the height of the
    /// last block that changed it.
    var changed = [[RowKey: Height]](repeating: [:], count: ProjectionTable.all.count)
    var lastHash = Hash32.zero

    static let blockColumns = ["height", "hash", "parent_hash", "view", "timestamp_ms", "proposer", "event_count", "first_sequence",
                               "events_root", "parent_state_root", "state_root", "meme", "certificate_view", "certificate_signers"]
    static let eventColumns = ["sequence", "id", "height", "kind", "author", "nonce", "fee", "payload", "bytes"]
    static let balanceColumns = ["account", "height", "balance"]

    /// Every row of `state` (the first write of a chain).
    static func everything(_ state: LedgerState) -> SinkBatch {
        var b = SinkBatch()
        for (i, t) in ProjectionTable.all.enumerated() {
            b.changed[i] = Dictionary(t.all(state).map { ($0, state.height) }, uniquingKeysWith: max)
        }
        return b
    }
}

/// JSON text PostgreSQL's jsonb takes (`JSONText.value`: jsonb orders keys itself). It
/// refuses the escape `\u0000`, so a NUL in a string (which the ledger allows) is stored
/// as U+FFFD; the event's bytes keep it.
func storableJSON(_ value: Any) -> String {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(256)
    JSONText.value(value, into: &bytes)
    let escape = Array("\\u0000".utf8)
    let text = String(decoding: bytes, as: UTF8.self)
    guard bytes.count >= escape.count, (0 ... bytes.count - escape.count).contains(where: { i in
        bytes[i] == escape[0] && bytes[i ..< i + escape.count].elementsEqual(escape)
    }) else { return text }
    return text.replacingOccurrences(of: "\\u0000", with: "\\ufffd")
}

/// Text PostgreSQL takes: no NUL.
func storableText(_ s: String) -> String { s.utf8.contains(0) ? s.replacingOccurrences(of: "\0", with: "\u{FFFD}") : s }

/// Collects a batch as `Replayer` folds verified blocks (each call comes after the
/// block's or event's checks passed).
final class BatchCollector: ReplayObserver {
    var batch = SinkBatch()
    /// How many of the state's sealed leaves earlier blocks of this round took.
    private var leavesSeen = 0

    func applied(_ e: LoggedEvent, block: StoredBlock, state: LedgerState) throws(AuditFailure) {
        Self.eventRow(&batch.events, e, height: block.header.height)
    }

    func blockApplied(_ b: StoredBlock, state: LedgerState) throws(AuditFailure) {
        batch.lastHash = Self.blockRow(&batch.blocks, b, stateRoot: state.stateRoot())
        let h = b.header
        let leaves = state.sealedLeaves
        var accounts = Set<PublicKey>()
        for leaf in leaves[leavesSeen...] {
            for (i, t) in ProjectionTable.all.enumerated() {
                if let k = t.affected(leaf) { batch.changed[i][k] = h.height }
            }
            if leaf.kind == .account { accounts.insert(Bytes32(leaf.id)) }
        }
        leavesSeen = leaves.count
        for a in accounts.sorted() {
            guard let acct = state.accounts[a] else { continue }
            batch.balances.bytes(a); batch.balances.int(h.height.value); batch.balances.int(acct.balance); batch.balances.endRow()
        }
    }
}

extension BatchCollector {
    static func eventRow(_ r: inout CopyRows, _ e: LoggedEvent, height: Height) {
        let env = e.envelope
        r.int(e.sequence.value); r.bytes(e.id.raw); r.int(height.value); r.text(env.kind.description)
        r.bytes(env.author); r.int(env.nonce); r.int(env.fee)
        r.text((try? env.decodePayload()).map { storableJSON(Render.payload($0)) } ?? "null")
        r.bytes(env.bytes)
        r.endRow()
    }

    /// Writes block `b`'s row; returns its hash.
    static func blockRow(_ r: inout CopyRows, _ b: StoredBlock, stateRoot: Hash32) -> Hash32 {
        let h = b.header, hash = Blake2b.hash(b.headerBytes)
        r.int(h.height.value); r.bytes(hash); r.bytes(h.parentHash); r.int(h.view.value); r.int(h.timestampMs); r.bytes(h.proposer)
        r.int(h.eventCount); r.int(b.firstSequence.value); r.bytes(h.eventsRoot); r.bytes(h.parentStateRoot); r.bytes(stateRoot)
        r.text(storableText(String(decoding: h.meme, as: UTF8.self))); r.int(b.certificate.view.value); r.int(b.certificate.votes.count)
        r.endRow()
        return hash
    }
}

/// A log read from a state the sink already holds: the blocks after it, each checked
/// by `Replayer` (signatures, hash links, certificates against the power of its height,
/// events root, parent state root against the sink's own fold). The node's disposable
/// checkpoints are not compared: the sink does not need them, and a live node writes
/// them while the sink reads.
struct SinkSource: ReplaySource {
    let log: any EventLog
    let start: (state: LedgerState, blockHash: Hash32)

    func opening() throws(AuditFailure) -> ReplayOpening {
        let meta: LogMetadata?
        do { meta = try log.metadata() } catch { throw AuditFailure(height: 0, record: "meta", reason: error.description) }
        guard let meta else { throw AuditFailure(height: 0, record: "meta", reason: "the log has no genesis") }
        var o = ReplayOpening(chainID: meta.chainID, formatVersion: meta.formatVersion, genesisHash: meta.genesisHash,
                              genesisBytes: meta.genesisBytes, head: meta.head, storedStates: [], certifiedCheckpoints: [])
        o.snapshot = start
        o.anchor = "the sink's own state at \(start.state.height)"
        return o
    }

    func block(at h: Height) throws(AuditFailure) -> SourcedBlock { try LogReplaySource(log).block(at: h) }
    func checkParent(of h: Height, state: LedgerState) throws(AuditFailure) {}
    func checkStored(at h: Height, state: LedgerState) throws(AuditFailure) -> StoredStateKind {
        throw AuditFailure(height: h.value, record: "checkpoints[\(h)]", reason: "not read by the sink")
    }
    /// The state reached is checked against the next block's parent state root when that
    /// block is folded.
    func finish(_ end: ReplayEnd) throws(AuditFailure) -> UInt64 { 0 }
    func checkpointCertificate(at h: Height) throws(AuditFailure) -> CheckpointCertificate {
        throw AuditFailure(height: h.value, record: "meta[stable \(h)]", reason: "not read by the sink")
    }
}
