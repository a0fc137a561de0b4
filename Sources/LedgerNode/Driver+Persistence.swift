import Foundation
import LedgerAgents
import LedgerAudit
import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore
import Logging
import Metrics

/// Making a turn durable: blocks into the log, records into the record file, and the
/// full disk as an operating condition.
extension NodeDriver {
    /// Makes the turn durable. A full disk (or a log at its map limit) is an operating
    /// condition, not a crash: the node logs one line, stops taking writes (the replica
    /// waits here, so nothing it would send leaves before it is durable), keeps serving
    /// reads with `/ready` at 503, retries every second, and resumes by itself when space
    /// returns. Any other storage error stops the node cleanly (exit 74), never by a trap.
    func persistRetryingOnFullDisk(_ commits: [CommittedBlock], _ recordWrite: (@Sendable () throws(StoreError) -> Void)?) {
        var since: DispatchTime?
        var blocksDone = commits.isEmpty, recordsDone = recordWrite == nil
        while true {
            var failure: StoreError?
            if !recordsDone, let recordWrite, !blocksDone {
                let g = DispatchGroup()
                let result = WriteResult()
                DispatchQueue.global().async(group: g) {
                    do throws(StoreError) { try recordWrite() } catch { result.set(error) }
                }
                do throws(StoreError) { try persistBlocks(commits); blocksDone = true } catch { failure = error }
                g.wait()
                if let e = result.get() { failure = failure ?? e } else { recordsDone = true }
            } else {
                do throws(StoreError) {
                    if !blocksDone { try persistBlocks(commits); blocksDone = true }
                    if !recordsDone, let recordWrite { try recordWrite(); recordsDone = true }
                } catch { failure = error }
            }
            guard let failure else { break }
            switch failure {
            case .diskFull, .mapFull:
                if since == nil {
                    since = .now()
                    cond.withLock { diskFull = true }
                    mDiskFull.record(1)
                    logger.critical("disk full: this node stopped writing and voting; it keeps serving reads and resumes when space returns",
                                    metadata: ["error": "\(failure)", "height": "\(cond.withLock { head.height.value })"])
                }
                if cond.withLock({ stopRequested }) {
                    // Stopping with nothing written: nothing of this turn was sent either.
                    logger.notice("stopping while the disk is full: the last turn was not made durable, and nothing of it was sent")
                    return
                }
                Thread.sleep(forTimeInterval: 1)
            default:
                fatal("cannot persist: \(failure)")
            }
        }
        if let since {
            cond.withLock { diskFull = false }
            mDiskFull.record(0)
            logger.notice("disk has room again: writing and voting resumed",
                          metadata: ["pausedSeconds": "\(Double(DispatchTime.now().uptimeNanoseconds - since.uptimeNanoseconds) / 1e9)"])
        }
    }

    /// Appends the turn's committed blocks to the log in one transaction, then writes
    /// the checkpoints that fall due.
    func persistBlocks(_ cs: [CommittedBlock]) throws(StoreError) {
        guard !cs.isEmpty else { return }
        var batch: [BlockCommit] = []
        var seq = nextSequence
        for c in cs {
            let cb = c.certified
            let events = Array(zip(c.ids, c.envelopes)).map { (id: $0.0, envelope: $0.1) }
            batch.append(BlockCommit(block: StoredBlock(header: cb.block.header, certificate: cb.certificate, firstSequence: seq),
                                     blockHash: cb.block.hash, events: events, nextPower: c.state.storedNextPower()))
            seq = SequenceNumber(seq.value + UInt64(events.count))
        }
        try ledger.append(contentsOf: batch)
        nextSequence = seq
        for c in cs {
            let h = c.certified.block.height
            guard h.value % c.state.parameters.checkpointInterval == 0 else { continue }
            do {
                try ledger.putCheckpoint(height: h, snapshot: c.state.canonicalBytes())
                let k = c.state.parameters.checkpointInterval
                try ledger.pruneCheckpoints { options.retention.keeps($0, head: h, interval: k) }
            } catch {
                logger.warning("checkpoint not written", metadata: ["height": "\(h.value)", "error": "\(error)"])
            }
        }
    }

    /// Copies each checkpoint certificate that became stable this turn into the log, where
    /// audits and clients find the state roots a quorum signed (FORMAT.md §5). Its block is
    /// already there (a replica checkpoints only what it committed), and the record file
    /// keeps the certificate whatever happens here: a failure is logged, not fatal.
    func storeCheckpointCertificates(_ records: [DurableRecord], _ commits: [CommittedBlock]) {
        for case let .stable(cert) in records where cert.height.value > 0 {
            do { try ledger.putCheckpointCertificate(height: cert.height, bytes: cert.encoded()) } catch {
                logger.warning("checkpoint certificate not stored", metadata: ["height": "\(cert.height.value)", "error": "\(error)"])
            }
            // A replica that catches up can commit the block and learn its checkpoint is
            // stable in one turn: the state is then among this turn's commits.
            let fresh = commits.last { $0.state.height == cert.height }?.state
            cond.withLock {
                if let s = fresh ?? (head.height == cert.height ? head : recentStates.last(where: { $0.height == cert.height })) { stableState = s }
            }
        }
    }

    /// Folds the records into `durable` now and returns the write that makes them
    /// durable (nil: nothing to write). At a new stable checkpoint the store is rewritten
    /// from the folded state, so it holds one window of votes, not the whole history.
    func prepareRecords(_ records: [DurableRecord]) -> (@Sendable () throws(StoreError) -> Void)? {
        guard !records.isEmpty else { return nil }
        var compact = false
        for r in records {
            durable.apply(r)
            if case .stable = r { compact = true }
        }
        let bytes = (compact ? durable.records : records).map { $0.encoded() }
        let store = self.store
        let rewrite = compact
        return { () throws(StoreError) in
            if rewrite { try store.replaceAll(bytes) } else { try store.append(bytes) }
        }
    }
}
