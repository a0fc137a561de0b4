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
    /// Which past states (checkpoints) the node keeps and serves (`StateRetention`).
    public var retention = StateRetention()

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
    let cond = NSCondition()
    var inbox: [Input] = []
    var transport: (any PeerTransport)?
    var running = false
    var stopRequested = false
    var stopping = false
    var loopDone = false
    var head: LedgerState
    var headHash: Hash32
    var headRoot: Hash32
    /// The states of the last committed blocks below the head, oldest first: a proof or
    /// read at a just-certified height is served from memory, not refolded from a
    /// checkpoint. Persistent maps make each cost its block's writes.
    var recentStates: [LedgerState] = []
    static let recentStatesMax = 16
    /// The state at the newest stable checkpoint, kept while it is the newest: the one
    /// state sync serves (`/v1/sync/*`), which would otherwise be decoded from its
    /// checkpoint once the 16 recent states moved past it.
    var stableState: LedgerState?
    /// State reads that went to the log (a test checks recent heights do not).
    var pastStateLoads = 0
    /// The head with the next block begun, which admission applies each author's next
    /// event to (`probeBase`); rebuilt when the head moves or a second has passed.
    var probeCache: ProbeBase?
    /// How many times it was built (a test checks it is not once per event).
    var probeBuilds = 0
    var view: View = 0
    var changing = false
    var primary: PublicKey?
    /// Admitted, not yet committed or dropped, with the per-author bounds (AdmissionPool).
    var pending: AdmissionPool
    var waiters: [EventID: [Waiter]] = [:]
    var viewChanges: UInt64 = 0
    var committedEvents: UInt64 = 0
    var latencies: [Double] = []
    /// Event signatures verified at admission (the replica counts its own).
    var admissionVerified = 0
    var latencyNext = 0
    var lastPendingSweepMs: UInt64 = 0
    /// Set while a write failed for want of space: the replica waits, reads go on, `/ready`
    /// says 503, submissions are refused (`disk_full`) and peer messages are dropped
    /// (peers retransmit). Cleared when the write goes through.
    var diskFull = false
    var lastTrimMs: UInt64 = 0
    var lastDiskCheckMs: UInt64 = 0
    var diskLow = false

    // Owned by the loop thread.
    var replica: Replica?
    var durable: DurableState
    var nextSequence: SequenceNumber
    var thread: Thread?

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
    var persistTurns = 0
    var persistNanos: UInt64 = 0
    var persistBlocks = 0

    /// Opens the node over an initialised log and its consensus store, rebuilding the
    /// replica from the committed state and the durable records (a restart resumes where
    /// the node stopped, and never signs against what it signed before).
    /// `synced`: the state a state sync just installed as the log's base (its height is the
    /// head), so the log's snapshot is not decoded and its tree not built a second time.
    public init(log: LedgerLog, store: RecordStore, options: NodeOptions, logger: Logger, synced: LedgerState? = nil) throws(NodeError) {
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
        let genesisRoot = LedgerState(genesis: genesis, genesisHash: meta.genesisHash, crypto: Sodium()).stateRoot()
        let state: LedgerState
        if let synced, synced.height == meta.head, synced.genesisHash == meta.genesisHash, synced.commitment == .tree {
            state = synced
        } else {
            do { (state, _) = try StateLoader.load(log) } catch { throw .load(error) }
        }
        if options.role == .validator, state.validators[ValidatorID(options.nodeKey)] == nil { throw .notAValidator(options.nodeKey) }

        var d = DurableState()
        do {
            for bytes in try store.all() {
                do { d.apply(try DurableRecord.decode(bytes, Sodium())) } catch {
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
        var c = ReplicaConfig(genesisHash: meta.genesisHash, genesisStateRoot: genesisRoot, keys: options.keys, operatorKey: options.operatorKey, crypto: Sodium())
        c.primaryRule = options.primaryRule
        c.viewTimeoutMs = options.viewTimeoutMs
        c.batchDelayMs = options.blockIntervalMs
        c.authorAheadMax = options.nonceAheadMax
        c.personality = Personalities.named(options.personality)
        // A witty producer plays to the chain's validators (their personalities at
        // start); a lazy one posts "gm", which memetic validators refuse.
        if options.wittyMemes {
            c.producer = AudienceProducer(audience: state.validators.values.map(\.personality), seed: UInt64(options.personality.utf8.count),
                                          hashing: Sodium())
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

    func enqueue(_ i: Input) {
        cond.withLock {
            guard !stopRequested else { return }
            if diskFull, case .message = i { return }
            inbox.append(i)
            cond.signal()
        }
    }

    // MARK: - The loop

    func now() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    func loop() {
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
    func step(_ i: Input) -> Output { replica!.step(i) }

    /// Reads the replica in place: `replica!.field`, or binding it to a local, copies
    /// the whole struct first (perf showed that copy in `publish`).
    func inPlace<T>(_ body: (inout Replica) -> T) -> T { body(&replica!) }

    /// Persist everything (blocks, then consensus records: one transaction each), then
    /// send, then serve, then acknowledge; the acknowledgement releases held votes, whose
    /// output goes round again.
    func carryOut(_ first: [Output]) {
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
            storeCheckpointCertificates(records, commits)
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

    /// The answer to a state-transfer request, from the log (nil: nothing to send).
    func serve(_ s: ServeRequest) -> (message: PeerMessage, to: Destination)? {
        var blocks: [CertifiedBlock] = []
        var h = s.from.value
        while blocks.count < s.count, let b = try? ledger.block(at: Height(h)) {
            guard let evs = try? ledger.events(from: b.firstSequence, count: Int(b.header.eventCount)),
                  evs.count == Int(b.header.eventCount) else { break }
            blocks.append(CertifiedBlock(block: ProposedBlock(header: b.header, events: evs.map(\.envelope.bytes), Sodium()), certificate: b.certificate))
            h += 1
        }
        return blocks.isEmpty ? nil : (.blocks(blocks), .peer(s.to))
    }

    func note(_ n: Note) {
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
    func publish(_ commits: [CommittedBlock]) {
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
                recentStates.append(head)
                recentStates.append(contentsOf: commits.dropLast().map(\.state))
                recentStates.removeFirst(max(0, recentStates.count - Self.recentStatesMax))
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
        mView.record(Int(rView.value))
        mMempool.record(cond.withLock { pending.count })
        mPeers.record(peers)
        if !commits.isEmpty { mCommitted.increment(by: commits.reduce(0) { $0 + $1.ids.count }) }
    }

    /// Every 5 s: free space where the log lives, as a gauge, and one warning line when
    /// it falls below `diskWarnBytes` (again only after it has been above).
    func checkDiskSpace(_ nowMs: UInt64) {
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
    func returnFreedMemory(_ nowMs: UInt64) {
        guard nowMs >= lastTrimMs &+ 10_000 else { return }
        lastTrimMs = nowMs
        _ = Self.mallocTrim?(0)
    }

    /// glibc's `malloc_trim`, which Swift's Glibc module does not export (malloc.h).
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        guard let f = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(f, to: (@convention(c) (Int) -> Int32).self)
    }()

    func recordLatency(_ s: Double) {
        if latencies.count < 512 { latencies.append(s) } else { latencies[latencyNext] = s; latencyNext = (latencyNext + 1) % 512 }
    }

    /// Storage the node cannot go on without failed for a reason other than space: one
    /// clear line and a clean exit (EX_IOERR), never a trap; the log on disk is intact
    /// (every write is a transaction) and replays.
    func fatal(_ why: String) -> Never {
        logger.critical("stopping: \(why)")
        exit(74)
    }
}
