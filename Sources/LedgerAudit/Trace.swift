import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore

/// One link in the chain of causes of an entity's state: the genesis (or snapshot), a
/// block boundary (`beginBlock`: unbonding releases, expiries, the epoch's power), or an
/// event; with the fields it changed and the entity's view after it.
public struct TraceStep: Sendable, Codable, Equatable {
    public enum Cause: String, Sendable, Codable { case genesis, block, event }
    public var cause: Cause
    public var height: UInt64
    public var sequence: UInt64?
    public var eventID: String?
    public var kind: String?
    public var author: String?
    /// Whether the stream index lists the event under this entity. Events outside it can
    /// still change it (fees paid to a proposer, a slashing by evidence).
    public var inStream: Bool?
    /// Why: the block boundary's causes, or what an event outside the stream did.
    public var notes: [String]
    public var changes: [FieldChange]
    /// The view after this step; nil when the entity does not exist (yet, or any more).
    public var after: [EntityField]?
}

public struct EntityTrace: Sendable, Codable {
    public var entity: String
    public var steps: [TraceStep]
    /// The view at the head (equals the last step's `after`).
    public var final: [EntityField]?
    /// Events the stream index lists for the entity.
    public var streamEvents: UInt64
    /// The verification the trace was folded under.
    public var replay: ReplayReport
}

/// `replay --trace`: folds the whole log under `Replayer`'s checks and compares the
/// entity's view before and after every block boundary and every event. Every event the
/// stream index lists for it is a step, as is anything else that changed its view, so
/// the steps explain its state at head exactly.
public enum Trace {
    public static func run(log: any EventLog, entity: EntityRef, workers: Int = ParallelVerifier.cores) throws(AuditQueryError) -> EntityTrace {
        guard let kind = EntityView.kind(named: entity.kind), kind.traceable, let id = Bytes32(hex: entity.id) else {
            throw .badEntity(entity.description, "not a traceable entity")
        }
        // The events the stream index names for the entity; the fold checks the index
        // against every event's own streams, both ways.
        let stream = kind.stream(id)
        var listed = Set<UInt64>()
        // Fixed first, so that blocks a live node appends meanwhile are in neither.
        let head: LogHead
        do {
            guard let h = try log.head() else { throw AuditQueryError.store(.notInitialized) }
            head = h
        } catch let e as AuditQueryError { throw e } catch let e as StoreError { throw .store(e) } catch { fatalError("\(error)") }
        if let stream {
            var after: SequenceNumber?
            while true {
                let page: [LoggedEvent]
                do { page = try log.stream(stream, after: after, limit: Limits.readRangeEventsMax) } catch { throw .store(error) }
                for e in page where e.sequence < head.nextSequence { listed.insert(e.sequence.value) }
                guard let last = page.last, page.count == Limits.readRangeEventsMax else { break }
                after = last.sequence
            }
        }
        let observer = TraceObserver(entity: entity, kind: kind, id: id, stream: stream, listed: listed)
        var r = Replayer(log: log, toHeight: head.height)
        r.workers = workers
        r.observer = observer
        let (report, state) = r.run()
        guard report.ok, let state else { throw .unverified(report.failure!) }
        if let stream, let missing = listed.subtracting(observer.seen).min() {
            throw .unverified(AuditFailure(height: report.verifiedToHeight, record: "streams[\(stream)]",
                                           reason: "lists events[\(missing)], which does not name the entity"))
        }
        let final = kind.fields(entity.id, state)
        precondition((observer.steps.last?.after ?? nil) == final, "the trace's last step must give the state at head")
        return EntityTrace(entity: entity.description, steps: observer.steps, final: final, streamEvents: UInt64(listed.count), replay: report)
    }
}

final class TraceObserver: ReplayObserver {
    let entity: EntityRef
    let kind: EntityKind
    let id: Bytes32
    let stream: StreamKey?
    let listed: Set<UInt64>
    var seen = Set<UInt64>()
    var steps: [TraceStep] = []
    var view: [EntityField]?
    var blockNotes: [String] = []

    init(entity: EntityRef, kind: EntityKind, id: Bytes32, stream: StreamKey?, listed: Set<UInt64>) {
        self.entity = entity; self.kind = kind; self.id = id; self.stream = stream; self.listed = listed
    }

    func started(_ state: LedgerState) throws(AuditFailure) {
        view = kind.fields(entity.id, state)
        if view != nil {
            steps.append(TraceStep(cause: .genesis, height: state.height.value, notes: [state.height.value == 0 ? "genesis" : "snapshot"],
                                   changes: EntityView.changes(nil, view), after: view))
        }
    }

    func blockWillBegin(_ block: StoredBlock, state: LedgerState) throws(AuditFailure) {
        blockNotes = BlockBoundary.causes(before: state, block.header)
    }

    func blockBegan(_ block: StoredBlock, state: LedgerState) throws(AuditFailure) {
        let now = kind.fields(entity.id, state)
        guard now != view else { return }
        // The causes that name this entity; else those that name none (an epoch's power).
        var notes = blockNotes.filter { $0.contains(id.hex) }
        if notes.isEmpty { notes = blockNotes.filter { n in !EntityView.kinds.contains { n.contains("\($0.name):") } } }
        if notes.isEmpty { notes = ["block boundary"] }
        steps.append(TraceStep(cause: .block, height: block.header.height.value, notes: notes,
                               changes: EntityView.changes(view, now), after: now))
        view = now
    }

    func applied(_ e: LoggedEvent, block: StoredBlock, state: LedgerState) throws(AuditFailure) {
        let inStream = listed.contains(e.sequence.value)
        if let stream, e.envelope.streams(id: e.id).contains(stream) != inStream {
            throw AuditFailure(height: block.header.height.value, record: "streams[\(stream)]",
                               reason: inStream ? "lists events[\(e.sequence)], which does not name the entity" : "misses events[\(e.sequence)]")
        }
        if inStream { seen.insert(e.sequence.value) }
        let now = kind.fields(entity.id, state)
        guard inStream || now != view else { return }
        var notes: [String] = []
        if !inStream {
            let feeRecipient = state.consensusKeys[block.header.proposer]?.raw ?? block.header.proposer
            if feeRecipient == id, e.envelope.fee > 0 { notes.append("fee \(e.envelope.fee) paid to the proposer of block \(block.header.height)") }
            if e.envelope.kind == .evidence { notes.append("evidence of an equivocation") }
            if notes.isEmpty { notes.append("changed by an event outside the entity's stream") }
        }
        steps.append(TraceStep(cause: .event, height: block.header.height.value, sequence: e.sequence.value, eventID: e.id.hex,
                               kind: e.envelope.kind.description, author: e.envelope.author.hex, inStream: inStream, notes: notes,
                               changes: EntityView.changes(view, now), after: now))
        view = now
    }
}

/// What `beginBlock` is about to do, read from the parent state: the causes a trace shows
/// for changes at a block boundary. A new boundary effect (per-block rewards) adds its line here.
public enum BlockBoundary {
    public static func causes(before s: LedgerState, _ h: BlockHeader) -> [String] {
        var out: [String] = []
        if LedgerState.isEpochStart(h.height, interval: s.parameters.checkpointInterval) {
            out.append("epoch starting at block \(h.height): voting power fixed")
        }
        for u in s.unbonding where u.releaseAt <= h.height {
            out.append("unbonding of \(u.amount) released to account:\(u.account.hex) (from validator:\(u.validator.hex), due at \(u.releaseAt))")
        }
        for k in s.alliances.keys.sorted() {
            let a = s.alliances[k]!
            if a.status == .pending, h.timestampMs >= a.acceptByMs { out.append("alliance:\(k.hex) expired unaccepted") }
            if a.status == .active, h.timestampMs >= a.activeUntilMs { out.append("alliance:\(k.hex) reached its end") }
        }
        let e = s.economy
        if e.ruleVersion >= RuleVersion.economy, e.lastProposer != .zero {
            out.append("rewards of block \(s.height): \(e.parameters.blockReward) minted + \(e.feePool) in fees, shared from proposer validator:\(e.lastProposer.hex) by power; base fee set from \(e.blockGasUsed) gas")
        }
        for p in e.proposals.values.sorted(by: { $0.id < $1.id }) where p.status == .pending && p.proposal.activateAt <= h.height {
            out.append("proposal:\(p.id.hex) due: activated with > 2/3 of the power approving, else rejected")
        }
        return out
    }
}
