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

public struct NodeOptions: Sendable {
    public var role: PeerRole
    /// Validators: the consensus keys it may sign with (the first is its genesis key and
    /// its mesh identity). Followers: their own key.
    public var keys: [SigningKey]
    /// The validator's account key (authors its opinions and evidence); a follower's own key.
    public var operatorKey: SigningKey
    public var personality = "lawful"
    /// How witty this producer's memes are (MemeProducer); memetic validators refuse dull ones.
    public var wittyMemes = true
    public var primaryRule: ValidatorSet.PrimaryRule = .roundRobin
    public var viewTimeoutMs: UInt64 = 1_000
    /// A proposal may wait this long for a fuller block while others are in flight.
    public var blockIntervalMs: UInt64 = 50
    public var tickMs: UInt64 = 10
    /// Events this node holds admitted but uncommitted; more are refused (`mempool_full`).
    public var pendingMax = Limits.mempoolEventsMax
    /// The directory whose filesystem holds the log: its free space is watched (nil: not watched).
    public var dataDir: String?
    /// Below this many free bytes the node warns (log and `chaosledger_disk_free_bytes`).
    public var diskWarnBytes: UInt64 = 1 << 30
    /// How far ahead of its author's committed nonce an event may be; also the most
    /// events one author may have pending here (one per nonce).
    public var nonceAheadMax: UInt64 = Limits.authorPendingMax

    public init(role: PeerRole, keys: [SigningKey], operatorKey: SigningKey) {
        self.role = role; self.keys = keys; self.operatorKey = operatorKey
    }

    public var nodeKey: PublicKey { keys[0].publicKey }
}

public enum NodeError: Error, CustomStringConvertible {
    case store(StoreError)
    case load(StateLoader.LoadError)
    case notInitialized
    case badGenesis(String)
    case notAValidator(PublicKey)
    public var description: String {
        switch self {
        case let .store(e): e.description
        case let .load(e): e.description
        case .notInitialized: "the log has no genesis"
        case let .badGenesis(why): "genesis: \(why)"
        case let .notAValidator(k): "key \(k.short) is not a validator of this chain"
        }
    }
}

/// Runs one replica for real: a dedicated thread steps it, makes its records durable
/// (committed blocks into the event log, votes and views into the consensus store),
/// only then sends what it asked to send and acknowledges the persistence token
/// (ARCHITECTURE invariant: persist → send → apply), and answers state-transfer
/// requests from the log. Validators and followers run the same driver: a follower's
/// replica holds no key of the set, so it never votes and catches up by state transfer
/// from the certificates it sees.
///
/// Client events are checked on the caller's thread (size, decode, chain, signature,
/// nonce, fee, balance) before they reach the replica, so signature checks spread over
/// the cores the HTTP server runs on.
public final class NodeDriver: NodeService, PeerMessageSink, @unchecked Sendable {
    public let log: any EventLog
    let ledger: LedgerLog
    let store: RecordStore
    public let options: NodeOptions
    let logger: Logger
    let genesisHash: Hash32

    // Shared between the loop thread and callers; guarded by `cond`.
    private let cond = NSCondition()
    private var inbox: [Input] = []
    private var transport: (any PeerTransport)?
    private var running = false
    private var stopRequested = false
    private var stopping = false
    private var loopDone = false
    private var head: LedgerState
    private var headHash: Hash32
    private var headRoot: Hash32
    private var view: UInt64 = 0
    private var changing = false
    private var primary: PublicKey?
    /// Admitted, not yet committed or dropped, with the per-author bounds (AdmissionPool).
    private var pending: AdmissionPool
    private var waiters: [EventID: [Waiter]] = [:]
    private var viewChanges: UInt64 = 0
    private var committedEvents: UInt64 = 0
    private var latencies: [Double] = []
    /// Event signatures verified at admission (the replica counts its own).
    private var admissionVerified = 0
    private var latencyNext = 0
    private var lastPendingSweepMs: UInt64 = 0
    /// Set while a write failed for want of space: the replica waits, reads go on, `/ready`
    /// says 503, submissions are refused (`disk_full`) and peer messages are dropped
    /// (peers retransmit). Cleared when the write goes through.
    private var diskFull = false
    private var lastTrimMs: UInt64 = 0
    private var lastDiskCheckMs: UInt64 = 0
    private var diskLow = false

    // Owned by the loop thread.
    private var replica: Replica?
    private var durable: DurableState
    private var nextSequence: SequenceNumber
    private var thread: Thread?

    let mHeight = Gauge(label: "chaosledger_height")
    let mView = Gauge(label: "chaosledger_view")
    let mMempool = Gauge(label: "chaosledger_mempool_events")
    let mPeers = Gauge(label: "chaosledger_peers")
    let mViewChanges = Counter(label: "chaosledger_view_changes_total")
    let mCommitted = Counter(label: "chaosledger_events_committed_total")
    let mLatency = Metrics.Timer(label: "chaosledger_commit_latency_seconds")
    let mRejected = Counter(label: "chaosledger_events_rejected_total")
    /// Time a turn spends making its outputs durable (blocks and consensus records).
    let mPersist = Metrics.Timer(label: "chaosledger_persist_seconds")
    /// 1 while a write waits for disk space.
    let mDiskFull = Gauge(label: "chaosledger_disk_full")
    let mDiskFree = Gauge(label: "chaosledger_disk_free_bytes")
    private var persistTurns = 0
    private var persistNanos: UInt64 = 0
    private var persistBlocks = 0

    /// Opens the node over an initialised log and its consensus store, rebuilding the
    /// replica from the committed state and the durable records (a restart resumes where
    /// the node stopped, and never signs against what it signed before).
    public init(log: LedgerLog, store: RecordStore, options: NodeOptions, logger: Logger) throws(NodeError) {
        self.log = log
        ledger = log
        self.store = store
        self.options = options
        self.logger = logger
        let meta: LogMetadata
        do {
            guard let m = try log.metadata() else { throw NodeError.notInitialized }
            meta = m
        } catch let e as NodeError { throw e } catch { throw .store(error as! StoreError) }
        genesisHash = meta.genesisHash
        let genesis: Genesis
        do { genesis = try Genesis.decode(meta.genesisBytes) } catch { throw .badGenesis(error.description) }
        // Consensus keeps a whole checkpoint interval in flight, and its messages carry at
        // most `pipelineDepthMax` blocks: a longer interval could never reach a checkpoint.
        guard genesis.parameters.checkpointInterval <= UInt64(Limits.pipelineDepthMax) else {
            throw .badGenesis("checkpointInterval \(genesis.parameters.checkpointInterval) is over \(Limits.pipelineDepthMax), the most a replicated chain can keep in flight")
        }
        let genesisRoot = LedgerState(genesis: genesis, genesisHash: meta.genesisHash).stateRoot()
        let state: LedgerState
        do { (state, _) = try StateLoader.load(log) } catch { throw .load(error) }
        if options.role == .validator, state.validators[options.nodeKey] == nil { throw .notAValidator(options.nodeKey) }

        var d = DurableState()
        do {
            for bytes in try store.all() {
                do { d.apply(try DurableRecord.decode(bytes)) } catch {
                    throw NodeError.store(.corrupt(record: "consensus record", reason: error.description))
                }
            }
        } catch let e as NodeError { throw e } catch { throw .store(error as! StoreError) }
        durable = d

        var recent: [UInt64: Hash32] = [:]
        let low = state.height.value > 4 * state.parameters.checkpointInterval ? state.height.value - 4 * state.parameters.checkpointInterval : 1
        if state.height.value >= 1 {
            for h in low ... state.height.value {
                if let b = try? log.block(at: Height(h)) { recent[h] = Blake2b.hash(b.headerBytes) }
            }
        }
        var c = ReplicaConfig(genesisHash: meta.genesisHash, genesisStateRoot: genesisRoot, keys: options.keys, operatorKey: options.operatorKey)
        c.primaryRule = options.primaryRule
        c.viewTimeoutMs = options.viewTimeoutMs
        c.batchDelayMs = options.blockIntervalMs
        c.personality = Personalities.named(options.personality)
        // A witty producer plays to the chain's validators (their personalities at
        // start); a lazy one posts "gm", which memetic validators refuse.
        if options.wittyMemes {
            c.producer = AudienceProducer(audience: state.validators.values.map(\.personality), seed: UInt64(options.personality.utf8.count))
        } else {
            c.producer = MemeProducer(witty: false)
        }
        c.recordOpinions = options.role == .validator
        replica = Replica(config: c, state: state, lastHash: meta.headHash, recentHashes: recent, durable: d)
        head = state
        headHash = meta.headHash
        headRoot = state.stateRoot()
        nextSequence = meta.nextSequence
        view = d.view
        pending = AdmissionPool(capacity: options.pendingMax, perAuthorMax: Int(min(options.nonceAheadMax, UInt64(Int.max))))
    }

    /// Connects the network (the mesh is built with this driver as its sink, so it comes second).
    public func attach(_ t: any PeerTransport) { cond.withLock { transport = t } }

    public func start() {
        // Read before the replica thread runs: it moves `head` and `view` (under `cond`).
        let (height, startView) = cond.withLock { running = true; return (head.height.value, view) }
        let t = Thread { [self] in loop() }
        t.name = "replica"
        t.stackSize = 8 << 20
        thread = t
        t.start()
        logger.info("node started", metadata: ["role": "\(options.role.rawValue)", "key": "\(options.nodeKey.hex)",
                                               "height": "\(height)", "view": "\(startView)"])
    }

    /// Graceful stop: refuse new events, let the events already admitted commit (up to
    /// `drainMs`), then stop the replica thread after its last batch is durable.
    public func stop(drainMs: UInt64 = 3_000) async {
        cond.withLock { stopping = true }
        let deadline = DispatchTime.now().uptimeNanoseconds + drainMs * 1_000_000
        while DispatchTime.now().uptimeNanoseconds < deadline, cond.withLock({ !pending.isEmpty }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
        cond.withLock { stopRequested = true; cond.broadcast() }
        while !cond.withLock({ loopDone || !running }) { try? await Task.sleep(for: .milliseconds(5)) }
        let left = cond.withLock { () -> [Waiter] in
            let w = waiters.values.flatMap { $0 }
            waiters.removeAll()
            return w
        }
        for w in left { w.resume(nil) }
        let (h, admitted, committed) = cond.withLock { (head.height.value, admissionVerified, committedEvents) }
        logger.notice("node stopped", metadata: [
            "height": "\(h)", "committedEvents": "\(committed)",
            "signaturesVerified": "admission \(admitted), replica \(replica?.counters.eventSignaturesVerified ?? 0)",
            "voteSignatures": "signed \(replica?.counters.votesSigned ?? 0), verified \(replica?.voteSignaturesVerified ?? 0)",
            "persist": "\(persistTurns) turns, \(persistBlocks) blocks, mean \(persistTurns == 0 ? 0 : persistNanos / UInt64(persistTurns) / 1_000) µs",
        ])
    }

    // MARK: - Inputs

    public func receive(from peer: PublicKey, _ message: PeerMessage) { enqueue(.message(from: peer, message)) }

    /// The operator's own event (bond, unjail, …), authored with the operator key.
    public func author(_ p: Payload) { enqueue(.author(p)) }
    public func rotateKey(to key: PublicKey) { enqueue(.rotateKey(new: key)) }

    private func enqueue(_ i: Input) {
        cond.withLock {
            guard !stopRequested else { return }
            if diskFull, case .message = i { return }
            inbox.append(i)
            cond.signal()
        }
    }

    // MARK: - The loop

    private func now() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    private func loop() {
        // Foundation's `Thread.name` does not reach the kernel here: the thread kept the
        // name of the Dispatch worker that started it, so `top -H` and `perf` could not
        // tell the replica from the HTTP handlers. (proc(5): a thread may write its own
        // `comm`; `pthread_setname_np` is not visible to Swift without _GNU_SOURCE.)
        if let f = fopen("/proc/thread-self/comm", "w") { fputs("replica", f); fclose(f) }
        var nextTick = DispatchTime.now().uptimeNanoseconds
        while true {
            let batch: [Input]
            let quit: Bool
            cond.lock()
            while inbox.isEmpty, !stopRequested, DispatchTime.now().uptimeNanoseconds < nextTick {
                _ = cond.wait(until: Date(timeIntervalSinceNow: Double(nextTick - min(nextTick, DispatchTime.now().uptimeNanoseconds)) / 1e9))
            }
            batch = inbox
            inbox.removeAll(keepingCapacity: true)
            quit = stopRequested
            cond.unlock()

            var outs: [Output] = []
            outs.reserveCapacity(batch.count + 1)
            for i in batch { outs.append(step(i)) }
            if DispatchTime.now().uptimeNanoseconds >= nextTick {
                outs.append(step(.tick(nowMs: now())))
                nextTick = DispatchTime.now().uptimeNanoseconds + options.tickMs * 1_000_000
            }
            carryOut(outs)
            if quit { break }
        }
        cond.withLock { loopDone = true; running = false }
    }

    /// Steps the replica in place. (Copying it out and back, as this did, retained and
    /// released every one of its collections on every input: ~0.7% of a node's CPU.)
    private func step(_ i: Input) -> Output { replica!.step(i) }

    /// Reads the replica in place: `replica!.field`, or binding it to a local, copies
    /// the whole struct first (perf showed that copy in `publish`).
    private func inPlace<T>(_ body: (inout Replica) -> T) -> T { body(&replica!) }

    /// Persist everything (blocks, then consensus records: one transaction each), then
    /// send, then serve, then acknowledge; the acknowledgement releases held votes, whose
    /// output goes round again.
    private func carryOut(_ first: [Output]) {
        var outs = first
        while !outs.isEmpty {
            var token: UInt64?
            var records: [DurableRecord] = []
            var commits: [CommittedBlock] = []
            for o in outs {
                records += o.persist
                commits += o.commits
                if let t = o.persistToken { token = max(token ?? 0, t) }
            }
            // The log (LMDB) and the consensus record file are separate files with
            // separate syncs: when a turn has both, they are written at once, and both
            // are durable before anything is sent.
            let persistStart = DispatchTime.now().uptimeNanoseconds
            let recordWrite = prepareRecords(records)
            persistRetryingOnFullDisk(commits, recordWrite)
            if recordWrite != nil || !commits.isEmpty {
                let ns = DispatchTime.now().uptimeNanoseconds - persistStart
                mPersist.recordNanoseconds(Int64(ns))
                persistTurns += 1
                persistNanos += ns
                persistBlocks += commits.count
            }
            // The head readers see moves as soon as the blocks are durable: a receipt that
            // says committed is never ahead of the state the API serves.
            publish(commits)
            let t = cond.withLock { transport }
            // Everything the turn sends goes to the transport at once (one hand-over per
            // peer). Client events passed on to every peer travel together, one message
            // per batch (bounded by size), instead of one frame each.
            var sends: [(message: PeerMessage, to: Destination)] = []
            var forwarded: [[UInt8]] = []
            var forwardedBytes = 0
            func flushForwarded() {
                if forwarded.count == 1 { sends.append((.request(forwarded[0]), .all)) } else if !forwarded.isEmpty { sends.append((.requests(forwarded), .all)) }
                forwarded.removeAll(keepingCapacity: true)
                forwardedBytes = 0
            }
            for o in outs {
                for s in o.send {
                    if case let .request(e) = s.message, s.to == .all {
                        if forwarded.count == Limits.requestsPerMessageMax || forwardedBytes + e.count > Limits.forwardBatchBytesMax { flushForwarded() }
                        forwarded.append(e)
                        forwardedBytes += e.count + 2
                    } else {
                        sends.append((s.message, s.to))
                    }
                }
                for s in o.serve { if let m = serve(s) { sends.append(m) } }
                for n in o.notes { note(n) }
            }
            flushForwarded()
            t?.send(batch: sends)
            outs = token.map { [step(.persisted(token: $0))] } ?? []
        }
    }

    /// Makes the turn durable. A full disk (or a log at its map limit) is an operating
    /// condition, not a crash: the node logs one line, stops taking writes (the replica
    /// waits here, so nothing it would send leaves before it is durable), keeps serving
    /// reads with `/ready` at 503, retries every second, and resumes by itself when space
    /// returns. Any other storage error stops the node cleanly (exit 74), never by a trap.
    private func persistRetryingOnFullDisk(_ commits: [CommittedBlock], _ recordWrite: (@Sendable () throws(StoreError) -> Void)?) {
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
    private func persistBlocks(_ cs: [CommittedBlock]) throws(StoreError) {
        guard !cs.isEmpty else { return }
        var batch: [BlockCommit] = []
        var seq = nextSequence
        for c in cs {
            let cb = c.certified
            let events = Array(zip(c.ids, c.envelopes)).map { (id: $0.0, envelope: $0.1) }
            batch.append(BlockCommit(block: StoredBlock(header: cb.block.header, certificate: cb.certificate, firstSequence: seq),
                                     blockHash: cb.block.hash, events: events))
            seq = SequenceNumber(seq.value + UInt64(events.count))
        }
        try ledger.append(contentsOf: batch)
        nextSequence = seq
        for c in cs {
            let h = c.certified.block.height
            guard h.value % c.state.parameters.checkpointInterval == 0 else { continue }
            do { try ledger.putCheckpoint(height: h, snapshot: c.state.canonicalBytes()) } catch {
                logger.warning("checkpoint not written", metadata: ["height": "\(h.value)", "error": "\(error)"])
            }
        }
    }

    /// Folds the records into `durable` now and returns the write that makes them
    /// durable (nil: nothing to write). At a new stable checkpoint the store is rewritten
    /// from the folded state, so it holds one window of votes, not the whole history.
    private func prepareRecords(_ records: [DurableRecord]) -> (@Sendable () throws(StoreError) -> Void)? {
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

    /// The answer to a state-transfer request, from the log (nil: nothing to send).
    private func serve(_ s: ServeRequest) -> (message: PeerMessage, to: Destination)? {
        var blocks: [CertifiedBlock] = []
        var h = s.from.value
        while blocks.count < s.count, let b = try? ledger.block(at: Height(h)) {
            guard let evs = try? ledger.events(from: b.firstSequence, count: Int(b.header.eventCount)),
                  evs.count == Int(b.header.eventCount) else { break }
            blocks.append(CertifiedBlock(block: ProposedBlock(header: b.header, events: evs.map(\.envelope.bytes)), certificate: b.certificate))
            h += 1
        }
        return blocks.isEmpty ? nil : (.blocks(blocks), .peer(s.to))
    }

    private func note(_ n: Note) {
        switch n {
        case let .startedViewChange(v):
            cond.withLock { viewChanges += 1 }
            mViewChanges.increment()
            logger.notice("view change", metadata: ["to": "\(v)"])
        case let .enteredView(v): logger.info("entered view", metadata: ["view": "\(v)"])
        case let .equivocation(k): logger.warning("equivocation", metadata: ["validator": "\(k.hex)"])
        case let .peerFault(k, fault):
            Counter(label: "chaosledger_peer_faults_total", dimensions: [("fault", fault.rawValue)]).increment()
            logger.notice("peer fault", metadata: ["peer": "\(k.hex)", "fault": "\(fault.rawValue)"])
            cond.withLock { transport }?.penalize(k, for: fault)
        case let .divergence(s): logger.critical("divergence", metadata: ["detail": "\(s)"])
        case let .droppedEvent(id, why):
            // An event this node admitted can no longer commit: its submitter learns why.
            let waiting = cond.withLock { () -> [Waiter]? in
                guard pending.remove(id) != nil else { return nil }
                return waiters.removeValue(forKey: id) ?? []
            }
            guard let waiting else { return }
            mRejected.increment()
            logger.info("dropped event", metadata: ["id": "\(id.hex)", "why": "\(why)"])
            for w in waiting { w.resume(Receipt(id: id, status: .rejected, code: why.code, error: why.description)) }
        case let .rejectedProposal(h, why): logger.notice("rejected proposal", metadata: ["height": "\(h.value)", "why": "\(why)"])
        case let .refusedProposal(h, v, why): logger.info("refused proposal", metadata: ["height": "\(h.value)", "view": "\(v)", "why": "\(why)"])
        case let .rejectedMessage(s): logger.debug("rejected message", metadata: ["why": "\(s)"])
        case let .fetching(h, p): logger.info("state transfer", metadata: ["from": "\(h.value)", "peer": "\(p.hex.prefix(12))"])
        }
    }

    /// After a batch: head, status and waiters.
    private func publish(_ commits: [CommittedBlock]) {
        guard replica != nil else { return }
        let (rView, rChanging, rExecuted, rPrimary) = inPlace { r in (r.view, r.changing, r.lastExecuted, r.changing ? nil : r.primary(of: r.view)) }
        let nowMs = now()
        var done: [(Waiter, Receipt)] = []
        var lat: [Double] = []
        var expired: [Waiter] = []
        let peers = cond.withLock { transport }?.peers().count ?? 0
        cond.withLock {
            view = rView
            changing = rChanging
            primary = rPrimary
            if let last = commits.last {
                head = last.state
                headHash = last.certified.block.hash
                headRoot = last.stateRoot
            }
            var seq = nextSequence.value - UInt64(commits.reduce(0) { $0 + $1.ids.count })
            for c in commits {
                for id in c.ids {
                    if let e = pending.remove(id) { lat.append(Double(nowMs &- e.at) / 1000) }
                    if let ws = waiters.removeValue(forKey: id) {
                        for w in ws { done.append((w, Receipt(id: id, status: .committed, height: c.certified.block.height, sequence: SequenceNumber(seq)))) }
                    }
                    seq += 1
                }
                committedEvents += UInt64(c.ids.count)
            }
            for l in lat { recordLatency(l) }
            // Entries the replica will never report on (it lost the event to a restart,
            // say) are forgotten after two mempool lifetimes, so they cannot fill the bound.
            if nowMs >= lastPendingSweepMs &+ 10_000 {
                lastPendingSweepMs = nowMs
                for id in pending.admitted(before: nowMs &- min(nowMs, 120_000)) {
                    pending.remove(id)
                    for w in waiters.removeValue(forKey: id) ?? [] { expired.append(w) }
                }
            }
        }
        for w in expired { w.resume(nil) }
        for (w, rc) in done { w.resume(rc) }
        checkDiskSpace(nowMs)
        returnFreedMemory(nowMs)
        for l in lat { mLatency.recordNanoseconds(Int64(l * 1e9)) }
        mHeight.record(Int(rExecuted.value))
        mView.record(Int(rView))
        mMempool.record(cond.withLock { pending.count })
        mPeers.record(peers)
        if !commits.isEmpty { mCommitted.increment(by: commits.reduce(0) { $0 + $1.ids.count }) }
    }

    /// Every 5 s: free space where the log lives, as a gauge, and one warning line when
    /// it falls below `diskWarnBytes` (again only after it has been above).
    private func checkDiskSpace(_ nowMs: UInt64) {
        guard let dir = options.dataDir, nowMs >= lastDiskCheckMs &+ 5_000 else { return }
        lastDiskCheckMs = nowMs
        var fs = statvfs()
        guard statvfs(dir, &fs) == 0 else { return }
        let free = UInt64(fs.f_bavail) &* UInt64(fs.f_frsize)
        mDiskFree.record(Int(min(free, UInt64(Int.max))))
        if free < options.diskWarnBytes, !diskLow {
            diskLow = true
            logger.warning("disk nearly full", metadata: ["freeBytes": "\(free)", "dir": "\(dir)", "warnBelow": "\(options.diskWarnBytes)"])
        } else if free >= options.diskWarnBytes {
            diskLow = false
        }
    }

    /// Every 10 s: the heap's free pages go back to the system. glibc's allocator keeps
    /// them otherwise, and a burst (hundreds of subscribers, a flood of submissions) would
    /// leave the node's resident memory at its peak long after the burst is gone.
    private func returnFreedMemory(_ nowMs: UInt64) {
        guard nowMs >= lastTrimMs &+ 10_000 else { return }
        lastTrimMs = nowMs
        _ = Self.mallocTrim?(0)
    }

    /// glibc's `malloc_trim`, which Swift's Glibc module does not export (malloc.h).
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        guard let f = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(f, to: (@convention(c) (Int) -> Int32).self)
    }()

    private func recordLatency(_ s: Double) {
        if latencies.count < 512 { latencies.append(s) } else { latencies[latencyNext] = s; latencyNext = (latencyNext + 1) % 512 }
    }

    /// Storage the node cannot go on without failed for a reason other than space: one
    /// clear line and a clean exit (EX_IOERR), never a trap; the log on disk is intact
    /// (every write is a transaction) and replays.
    private func fatal(_ why: String) -> Never {
        logger.critical("stopping: \(why)")
        exit(74)
    }

    // MARK: - NodeService

    public func submit(_ events: [[UInt8]], waitCommitted: Bool, timeoutMs: UInt64) async -> [Receipt] {
        var receipts: [Receipt] = []
        var accepted: [(Int, EventID, [UInt8])] = []
        var scratch: [UInt8] = []
        let (state, root, isStopping) = cond.withLock { (head, headRoot, stopping) }
        var verifiedHere = 0
        var checked: [Checked] = []
        for bytes in events {
            let r = check(bytes, state, root: root, stopping: isStopping, &scratch)
            if r.verified { verifiedHere += 1 }
            receipts.append(r.receipt)
            if let id = r.admit { accepted.append((receipts.count - 1, id, bytes)) }
            checked.append(r)
        }
        // Waiters are registered before the events go in, so a fast commit is never missed.
        var ws: [(Int, Waiter)] = []
        var displaced: [(EventID, Receipt, [Waiter])] = []
        let nowMs = now()
        cond.withLock {
            admissionVerified += verifiedHere
            for (i, id, bytes) in accepted {
                guard let a = checked[i].account else { continue }
                switch pending.admit(id, author: a.author, nonce: a.nonce, fee: a.fee, cost: a.cost,
                                     committedNonce: a.committedNonce, available: a.available, now: nowMs) {
                case let .refused(code, why):
                    receipts[i] = Receipt(id: id, status: .rejected, code: code, error: why)
                    continue
                case .alreadyPending:
                    // A resubmission: the client did not hear back. The event goes to the
                    // replica again (it keeps one copy per id), so an event the replica lost
                    // (a restart, a peer that never passed it on) is not held here for the
                    // sweep's two minutes while its client retries in vain.
                    inbox.append(.request(bytes, verified: true))
                case let .added(replaced, evicted):
                    var gone: [EventID] = []
                    for (old, code, why) in [(replaced, "replaced", "a later event with the same nonce and a higher fee replaced it"),
                                             (evicted, "evicted", "evicted from a full mempool for an author's next event")] {
                        guard let old else { continue }
                        gone.append(old)
                        displaced.append((old, Receipt(id: old, status: .rejected, code: code, error: why), waiters.removeValue(forKey: old) ?? []))
                    }
                    // The replica lets them go too, unless a proposed block already holds
                    // one (then it may still commit, and its id answers GET /v1/events).
                    if !gone.isEmpty { inbox.append(.forget(gone)) }
                    inbox.append(.request(bytes, verified: true))
                }
                if waitCommitted { let w = Waiter(); waiters[id, default: []].append(w); ws.append((i, w)) }
            }
            cond.signal()
        }
        for (_, receipt, list) in displaced {
            mRejected.increment()
            for w in list { w.resume(receipt) }
        }
        for r in receipts where r.status == .rejected { _ = r; mRejected.increment() }
        guard waitCommitted, !ws.isEmpty else { return receipts }
        let timeout = timeoutMs
        // One timer per request (not per event), cancelled once every event is settled.
        let all = ws.map(\.1)
        let timer = Task {
            try? await Task.sleep(for: .milliseconds(timeout))
            for w in all { w.resume(nil) }
        }
        for (i, w) in ws {
            if let r = await w.value() { receipts[i] = r } else { receipts[i].status = .pending }
        }
        timer.cancel()
        return receipts
    }

    struct Checked {
        var receipt: Receipt
        var admit: EventID?
        var verified = false
        /// What the pool's per-author bounds need (set when `admit` is).
        var account: AuthorCheck?
    }
    struct AuthorCheck { var author: PublicKey; var nonce: UInt64; var fee: UInt64; var cost: UInt64; var committedNonce: UInt64; var available: UInt64 }

    /// The admission checks that need no lock: everything but the mempool bound.
    private func check(_ bytes: [UInt8], _ s: LedgerState, root: Hash32, stopping: Bool, _ scratch: inout [UInt8]) -> Checked {
        func reject(_ id: EventID?, _ code: String, _ why: String) -> Checked {
            Checked(receipt: Receipt(id: id, status: .rejected, code: code, error: why), admit: nil)
        }
        guard !stopping else { return reject(nil, "stopping", "the node is shutting down") }
        guard !cond.withLock({ diskFull }) else { return reject(nil, "disk_full", "the node's disk is full: it takes no events until space returns") }
        guard bytes.count <= Limits.eventBytesMax else {
            return reject(nil, "oversized", "event of \(bytes.count) bytes; the limit is \(Limits.eventBytesMax)")
        }
        let e: Envelope
        do { e = try Envelope(bytes: bytes) } catch { return reject(nil, "malformed", error.description) }
        let id = EventCrypto.id(bytes)
        guard e.chainID == s.chainID.raw else { return reject(id, "wrong_chain", "event is for another chain than \(s.chainID.name)") }
        guard let acct = s.accounts[e.author] else { return reject(id, "unknown_account", "author \(e.author.hex) has no account") }
        guard e.nonce > acct.nonce else {
            // Only an event with a used nonce can be in the log: look it up only then, to
            // tell a resubmission (`duplicate`) from a conflicting event.
            if let logged = try? log.event(id: id) {
                var r = Receipt(id: id, status: .rejected, code: "duplicate", error: "already committed at sequence \(logged.sequence.value)")
                r.sequence = logged.sequence
                return Checked(receipt: r, admit: nil)
            }
            return reject(id, "stale_nonce", "nonce \(e.nonce) is used; the next is \(acct.nonce + 1)")
        }
        guard e.nonce <= acct.nonce + options.nonceAheadMax else {
            return reject(id, "nonce_gap", "nonce \(e.nonce) is more than \(options.nonceAheadMax) ahead of \(acct.nonce)")
        }
        let minimum = s.requiredFee(e.kind, bytes: e.bytes.count)
        guard e.fee >= minimum else { return reject(id, "fee_too_low", "fee \(e.fee) is below the minimum \(minimum) for this event") }
        // Money is added with overflow checks: a fee and an amount that wrap past 2^64
        // must not look affordable.
        var cost = e.fee
        if e.kind == .transfer, case let .transfer(_, amount, _)? = try? e.decodePayload() {
            let (sum, over) = e.fee.addingReportingOverflow(amount)
            guard !over else { return reject(id, "insufficient_balance", "fee \(e.fee) plus amount \(amount) exceeds any balance") }
            cost = sum
        }
        // A reward claim may pay its fee out of the rewards it claims.
        let (available, over) = acct.balance.addingReportingOverflow(e.kind == .claimRewards ? s.economy.rewards[e.author] ?? 0 : 0)
        let spendable = over ? UInt64.max : available
        guard spendable >= cost else { return reject(id, "insufficient_balance", "balance \(acct.balance) < \(cost)") }
        // The signature last: everything above is cheap and refuses most of a flood
        // (future nonces, unfunded keys) without an Ed25519 verification.
        guard EventCrypto.verify(e, scratch: &scratch) else {
            var c = reject(id, "bad_signature", "the signature does not verify for author \(e.author.hex)")
            c.verified = true
            return c
        }
        // The author's next event is checked against every rule of its kind (targets
        // registered, validator known, stake held, …) on a copy of the head state, so a
        // client learns now, not by a timeout, that it can never commit. Later nonces
        // (a pipelined batch) may depend on the ones before them: the block checks those.
        if e.nonce == acct.nonce + 1 {
            var probe = s
            let ctx = BlockContext(height: s.height.next, timestampMs: max(now(), s.timestampMs), proposer: options.nodeKey, parentStateRoot: root)
            do {
                try probe.beginBlock(ctx)
                try probe.apply(e, id: id, ctx)
            } catch let err as ApplyError {
                var c = reject(id, err.code, err.description)
                c.verified = true
                return c
            } catch {
                // beginBlock cannot fail: the context follows the head by construction.
            }
        }
        return Checked(receipt: Receipt(id: id, status: .accepted), admit: id, verified: true,
                       account: AuthorCheck(author: e.author, nonce: e.nonce, fee: e.fee, cost: cost, committedNonce: acct.nonce, available: spendable))
    }

    public func eventStatus(_ id: EventID) async -> EventStatus {
        if cond.withLock({ pending[id] != nil }) { return .pending }
        guard let e = try? log.event(id: id) else { return .unknown }
        return .committed(height: height(ofSequence: e.sequence) ?? Height(0), sequence: e.sequence)
    }

    /// The block holding an event: a binary search over the blocks' first sequences.
    public func height(ofSequence s: SequenceNumber) -> Height? {
        guard let top = try? log.head()?.height.value, top >= 1 else { return nil }
        var lo: UInt64 = 1, hi = top
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            guard let b = try? log.block(at: Height(mid)) else { return nil }
            if b.firstSequence.value <= s.value { lo = mid } else { hi = mid - 1 }
        }
        return Height(lo)
    }

    public func status() async -> NodeStatus {
        let peers = cond.withLock { transport }?.peers() ?? []
        return cond.withLock {
            let validators = head.powerForNextBlock().count
            let ready = running && !stopping && !diskFull && (options.role == .follower ? !peers.isEmpty : validators == 1 || peers.count * 3 >= 2 * (validators - 1))
            return NodeStatus(role: options.role, nodeKey: options.nodeKey, chainID: head.chainID.name, height: head.height, headHash: headHash,
                              stateRoot: headRoot, view: view, changing: changing, primary: primary, mempool: pending.count,
                              peers: peers.count, viewChanges: viewChanges, committedEvents: committedEvents,
                              commitLatencyMs: latencies.isEmpty ? nil : 1000 * latencies.reduce(0, +) / Double(latencies.count),
                              ready: ready, stopping: stopping)
        }
    }

    /// The validator set a mesh peer may belong to: any validator of the chain (current
    /// or retired keys included, so a rotated or retiring validator still connects).
    public func isValidator(_ key: PublicKey) -> Bool {
        cond.withLock {
            head.validators[key] != nil || head.validators.values.contains { $0.consensusKey == key || $0.keyHistory.contains { $0.key == key } }
        }
    }

    public func state(at height: Height?) async throws(ServiceError) -> LedgerState {
        let h = cond.withLock { head }
        guard let height, height != h.height else { return h }
        guard height < h.height else { throw .noSuchHeight(height) }
        do { return try StateLoader.load(log, upTo: height).0 } catch { throw .unavailable(error.description) }
    }

    public func feeEstimate() async -> FeeEstimate {
        cond.withLock { FeeEstimate.make(head, mempool: pending.count) }
    }

    public func peers() -> [PeerInfo] { cond.withLock { transport }?.peers() ?? [] }

    /// Committed events from `from`, read from the log when the consumer asks (pull, not
    /// push): a consumer that stops asking stops the reads, and nothing is buffered for it.
    public func committedEvents(from: SequenceNumber, max: Int) throws(ServiceError) -> [LoggedEvent]? {
        if cond.withLock({ stopping }) { return nil }
        do { return try log.events(from: from, count: max) } catch { throw .store(error) }
    }
}

/// A one-shot result a submitter waits for: the first `resume` wins.
final class Waiter: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Receipt??
    private var cont: CheckedContinuation<Receipt?, Never>?

    func resume(_ r: Receipt?) {
        let c: CheckedContinuation<Receipt?, Never>? = lock.withLock {
            guard result == nil else { return nil }
            result = .some(r)
            defer { cont = nil }
            return cont
        }
        c?.resume(returning: r)
    }

    func value() async -> Receipt? {
        await withCheckedContinuation { (c: CheckedContinuation<Receipt?, Never>) in
            let done: Receipt?? = lock.withLock {
                if let r = result { return .some(r) }
                cont = c
                return nil
            }
            if let done { c.resume(returning: done) }
        }
    }
}
