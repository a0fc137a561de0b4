import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore

/// An entity that differs between two states: added (every `before` nil), removed (every
/// `after` nil) or changed.
public struct EntityDiff: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable { case added, removed, changed }
    public var entity: String
    public var status: Status
    public var changes: [FieldChange]
}

/// `diff`: what changed between the states after two heights, and what was committed in between.
public struct StateDiff: Sendable, Codable {
    public var fromHeight: UInt64
    public var toHeight: UInt64
    public var fromStateRoot: String
    public var toStateRoot: String
    /// Sorted by entity (kind, then id).
    public var entities: [EntityDiff]
    public var blocks: UInt64
    public var events: UInt64
    /// Events committed in blocks `fromHeight + 1 ... toHeight`, by kind.
    public var eventsByKind: [String: UInt64]

    /// Every entity of every kind in `EntityView.kinds`, compared field by field.
    public static func between(_ a: LedgerState, _ b: LedgerState) -> [EntityDiff] {
        var out: [EntityDiff] = []
        for kind in EntityView.kinds {
            for id in Set(kind.ids(a)).union(kind.ids(b)).sorted() {
                let x = kind.fields(id, a), y = kind.fields(id, b)
                let changes = EntityView.changes(x, y)
                guard !changes.isEmpty else { continue }
                let status: EntityDiff.Status = x == nil ? .added : y == nil ? .removed : .changed
                out.append(EntityDiff(entity: EntityRef(kind: kind.name, id: id).description, status: status, changes: changes))
            }
        }
        return out
    }

    /// Folds the log from genesis to `to` under `Replayer`'s checks, keeping the state at `from`.
    public static func run(log: any EventLog, from: Height, to: Height?, workers: Int = ParallelVerifier.cores) throws(AuditQueryError) -> StateDiff {
        let head: LogHead
        do {
            guard let h = try log.head() else { throw AuditQueryError.store(.notInitialized) }
            head = h
        } catch let e as AuditQueryError { throw e } catch let e as StoreError { throw .store(e) } catch { fatalError("\(error)") }
        let to = to ?? head.height
        guard from <= to else { throw .badRange("from \(from) is after to \(to)") }
        guard to <= head.height else { throw .badRange("to \(to) is after the head \(head.height)") }
        let observer = DiffObserver(from: from)
        var r = Replayer(log: log, toHeight: to)
        r.workers = workers
        r.observer = observer
        let (report, state) = r.run()
        guard report.ok, let state else { throw .unverified(report.failure!) }
        let start = observer.start!
        return StateDiff(fromHeight: from.value, toHeight: to.value, fromStateRoot: start.stateRoot().hex, toStateRoot: state.stateRoot().hex,
                         entities: between(start, state), blocks: observer.blocks, events: observer.events, eventsByKind: observer.kinds)
    }
}

final class DiffObserver: ReplayObserver {
    let from: Height
    var start: LedgerState?
    var blocks: UInt64 = 0, events: UInt64 = 0
    var kinds: [String: UInt64] = [:]
    init(from: Height) { self.from = from }

    func started(_ state: LedgerState) throws(AuditFailure) { if state.height == from { start = state } }
    func applied(_ e: LoggedEvent, block: StoredBlock, state: LedgerState) throws(AuditFailure) {
        guard block.header.height > from else { return }
        events += 1
        kinds[e.envelope.kind.description, default: 0] += 1
    }
    func blockApplied(_ block: StoredBlock, state: LedgerState) throws(AuditFailure) {
        if block.header.height == from { start = state }
        if block.header.height > from { blocks += 1 }
    }
}
