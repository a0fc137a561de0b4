import Foundation
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore

/// Folding the log into projection state without re-verifying signatures and
/// certificates: for a node opening its own log, and for `rebuild`. Every record is
/// still hash-checked as it is read, and each checkpoint it writes is checked against
/// the state root the next block recorded.
public enum StateLoader {
    public struct Stats: Sendable {
        public var fromHeight: UInt64
        public var blocks: UInt64
        public var events: UInt64
        public var checkpointsWritten: UInt64
        public var seconds: Double
    }

    public enum LoadError: Error, CustomStringConvertible {
        case store(StoreError)
        case bad(AuditFailure)
        public var description: String {
            switch self {
            case let .store(e): e.description
            case let .bad(f): f.description
            }
        }
    }

    /// The state at `height` (default: head), starting from the newest checkpoint at or
    /// below it unless `useCheckpoints` is false.
    public static func load(_ log: any EventLog, upTo height: Height? = nil, useCheckpoints: Bool = true,
                            writeCheckpoints: StateRetention? = nil) throws(LoadError) -> (LedgerState, Stats) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        do {
            guard let meta = try log.metadata() else { throw LoadError.store(.notInitialized) }
            let target = min(height ?? meta.head, meta.head)
            var state = try start(log, meta, at: target, useCheckpoints: useCheckpoints)
            var stats = Stats(fromHeight: state.height.value, blocks: 0, events: 0, checkpointsWritten: 0, seconds: 0)
            var batch: [(id: EventID, envelope: Envelope)] = []
            var pendingCheckpoint: (Height, [UInt8], Hash32)?
            while state.height < target {
                let h = state.height.next
                guard let b = try log.block(at: h) else {
                    throw LoadError.bad(AuditFailure(height: h.value, record: "blocks[\(h)]", reason: "missing"))
                }
                if let (ch, bytes, root) = pendingCheckpoint {
                    // Pair assertion: the snapshot we are about to store must have the
                    // state root that the next block recorded.
                    guard root == b.header.parentStateRoot else {
                        throw LoadError.bad(AuditFailure(height: h.value, record: "blocks[\(h)]", reason: "recorded parent state root differs from the fold"))
                    }
                    try log.putCheckpoint(height: ch, snapshot: bytes)
                    stats.checkpointsWritten += 1
                    pendingCheckpoint = nil
                }
                let events = try log.events(from: b.firstSequence, count: Int(b.header.eventCount))
                guard events.count == Int(b.header.eventCount) else {
                    throw LoadError.bad(AuditFailure(height: h.value, record: "blocks[\(h)]", reason: "events missing"))
                }
                batch.removeAll(keepingCapacity: true)
                for e in events { batch.append((e.id, e.envelope)) }
                // The root is checked where a checkpoint is written (every K blocks for a
                // plain load) and at the target; between them the tree folds many blocks'
                // writes at once.
                let k = state.parameters.checkpointInterval
                let kept = h.value % k == 0 && (writeCheckpoints?.keeps(h, head: target, interval: k) ?? true)
                let due = kept || h == target
                do { try state.applyBlock(b.header, batch, checkRoot: due) } catch {
                    throw LoadError.bad(AuditFailure(height: h.value, record: "blocks[\(h)]", reason: error.description))
                }
                stats.blocks += 1
                stats.events += UInt64(events.count)
                if writeCheckpoints != nil, kept {
                    pendingCheckpoint = (h, state.canonicalBytes(), state.sealRoot())
                }
                // A log written before power records existed (or with one damaged) gets them back.
                if writeCheckpoints != nil, let p = state.storedNextPower() {
                    let stored = (try? log.nextPower(at: h)) ?? nil
                    if !(stored?.elementsEqual(p, by: { $0.key == $1.key && $0.power == $1.power }) ?? false) {
                        try log.putNextPower(height: h, power: p)
                    }
                }
            }
            if let (ch, bytes, _) = pendingCheckpoint {
                try log.putCheckpoint(height: ch, snapshot: bytes)
                stats.checkpointsWritten += 1
            }
            stats.seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            return (state, stats)
        } catch let e as LoadError {
            throw e
        } catch let e as StoreError {
            throw .store(e)
        } catch {
            fatalError("unexpected error \(error)")
        }
    }

    /// The state a load starts from: the newest checkpoint at or below `target`, checked
    /// against the root the next block recorded, or genesis.
    static func start(_ log: any EventLog, _ meta: LogMetadata, at target: Height, useCheckpoints: Bool) throws -> LedgerState {
        var state: LedgerState
        // A state-synced log has no blocks at or below its base: it starts there.
        let base = try log.base()
        if let base {
            guard target >= base.height else {
                throw LoadError.bad(AuditFailure(height: target.value, record: "meta[base]",
                                                 reason: "this log was state-synced at \(base.height) and holds nothing before it"))
            }
        }
        let cp = try log.checkpoint(atOrBelow: target)
        if let base, cp == nil || cp!.height < base.height || !useCheckpoints {
            do { state = try LedgerState.decodeSnapshot(base.snapshot, crypto: Sodium()) } catch {
                throw LoadError.bad(AuditFailure(height: base.height.value, record: "meta[base]", reason: error.description))
            }
            guard state.height == base.height, state.genesisHash == meta.genesisHash else {
                throw LoadError.bad(AuditFailure(height: base.height.value, record: "meta[base]", reason: "does not belong to this log"))
            }
        } else if useCheckpoints, let cp {
            do { state = try LedgerState.decodeSnapshot(cp.snapshot, crypto: Sodium()) } catch {
                throw LoadError.bad(AuditFailure(height: cp.height.value, record: "checkpoints[\(cp.height)]", reason: error.description))
            }
            guard state.height == cp.height, state.genesisHash == meta.genesisHash else {
                throw LoadError.bad(AuditFailure(height: cp.height.value, record: "checkpoints[\(cp.height)]", reason: "does not belong to this log"))
            }
            // The next block, when there is one, recorded the root this state must have.
            if let next = try log.block(at: cp.height.next), next.header.parentStateRoot != state.stateRoot() {
                throw LoadError.bad(AuditFailure(height: cp.height.value, record: "checkpoints[\(cp.height)]",
                                                 reason: "differs from the state root block \(cp.height.next) recorded"))
            }
        } else {
            let g: Genesis
            do { g = try Genesis.decode(meta.genesisBytes) } catch {
                throw LoadError.bad(AuditFailure(height: 0, record: "meta[genesis]", reason: error.description))
            }
            state = LedgerState(genesis: g, genesisHash: meta.genesisHash, crypto: Sodium())
        }
        return state
    }

    /// Drops every checkpoint and refolds the whole log, writing fresh checkpoints
    /// where `retention` keeps them.
    public static func rebuild(_ log: any EventLog, retention: StateRetention = StateRetention()) throws(LoadError) -> (LedgerState, Stats) {
        do { try log.dropCheckpoints() } catch { throw .store(error) }
        return try load(log, useCheckpoints: false, writeCheckpoints: retention)
    }
}
