import LedgerCore
import LedgerProjections

/// A pure PBFT replica (ARCHITECTURE invariant 5): `step` takes one input and returns
/// what to persist, send and commit. No clock, socket, thread, disk or randomness.
///
/// Protocol, per view: the primary pre-prepares blocks for heights up to the stable
/// checkpoint plus the window; a replica prepares a valid proposal its personality
/// accepts; a block is *prepared* at a replica when the primary and prepare signers
/// hold a quorum **and** the height below is prepared in the same view or executed
/// (so the prepared blocks a replica reports always form a chain); prepared replicas
/// send commits; a quorum of commits commits it, and blocks execute in height order.
/// View changes carry prepared certificates; the new primary re-proposes, from the
/// highest stable checkpoint up, the highest-view prepared block of each height until
/// the first height with none, and every replica recomputes that choice.
public struct Replica: Sendable {
    public let config: ReplicaConfig
    let chain: Bytes32
    let genesisCheckpoint: CheckpointCertificate
    let interval: UInt64
    let window: UInt64

    public internal(set) var state: LedgerState
    public internal(set) var stateRoot: Hash32
    public internal(set) var lastHash: Hash32
    var executedHashes: [UInt64: Hash32] = [:]
    var checkpointRoots: [UInt64: Hash32] = [:]
    var epoch: UInt64 = .max
    var currentSet: ValidatorSet
    /// Sets of the current and recent epochs (DurableState.epochSetsKept of them).
    var epochSets: [UInt64: ValidatorSet] = [:]
    var pendingDurable: [DurableRecord] = []
    /// An epoch began during a view change: sign it again with this epoch's key.
    var viewChangeStale = false

    public internal(set) var view: View = 0
    /// Normal operation in `view`, or asking for `view` (TigerBeetle's `Status`).
    public internal(set) var viewStatus = ViewStatus.normal
    public var changing: Bool { viewStatus == .changing }
    var failedViews: UInt32 = 0
    public internal(set) var stable: CheckpointCertificate
    public internal(set) var durable: DurableState

    var slots: [UInt64: Slot] = [:]
    var checkpointVotes: [UInt64: [PublicKey: SignedConsensusMessage]] = [:]
    var viewChanges: [PublicKey: (ViewChange, [ProposedBlock])] = [:]
    var myNewView: (NewView, [ProposedBlock])?
    /// When this replica last sent its new view again to a member that asked for the
    /// view it had installed (at most once per `retransmitMs` each).
    var newViewResentAt: [PublicKey: UInt64] = [:]

    var mempool = Mempool()
    var verified = Set<EventID>()
    var seen: [SeenKey: SignedConsensusMessage] = [:]
    var reported = Set<SeenKey>()
    var refusals: [UInt64: (view: View, hash: Hash32, by: Set<ValidatorID>)] = [:]
    /// Heights at which this replica's personality refused a fresh proposal (Proposal.refusedBefore).
    var refusedHeights: Set<UInt64> = []
    var peerClaims: [PublicKey: UInt64] = [:]

    public internal(set) var now: UInt64 = 0
    var lastProgressAt: UInt64 = 0
    var workSince: UInt64?
    /// When a quorum of view changes for the target view was first seen: the view-change
    /// timer runs only from then (PBFT §4.5.2), so a replica that raced ahead alone
    /// waits for the others instead of running further away.
    var viewChangeQuorumAt: UInt64?
    /// The highest view each member has been seen voting in (for catching up on views).
    var viewSeen: [PublicKey: View] = [:]
    var timers = ReplicaTimers()
    var fetchRound: UInt64 = 0
    /// When this replica last asked each peer for blocks, and whether the last answer
    /// moved it on (then it asks again without waiting; `fetchIfBehind`).
    var fetchAskedAt: [PublicKey: UInt64] = [:]
    var fetchStreaming = false
    /// When each peer's last state-transfer request was answered. An honest replica
    /// asks at most once per `fetchIntervalMs` (400 ms by default; `fetchIfBehind`), and
    /// each answer reads and sends up to 16 blocks on this thread: requests closer than
    /// `Limits.fetchAnswerGapMs` go unanswered (the asker's own timer retries).
    var fetchServedAt: [PublicKey: UInt64] = [:]
    var oldestPendingAt: UInt64?
    /// Events that can go into a block (their author's nonces follow on from the
    /// committed one here) admitted since the last build, and those the last build left
    /// out: the full-block rule counts these, not the whole mempool, which may hold
    /// thousands of future nonces that no block can take (a flood).
    var chainableSinceBuild = 0
    var chainableLeft = 0
    var nextOwnNonce: UInt64 = 0

    var nextToken: UInt64 = 0
    var held: [(token: UInt64, out: Outgoing)] = []
    var stepSends: [Outgoing] = []
    /// Events dropped from the mempool during this step, reported in its notes.
    var dropped: [Note] = []
    var scratch: [UInt8] = []
    let sigs: SignatureCache
    /// Work done, for benchmarks and metrics.
    public internal(set) var counters = Counters()

    public struct Counters: Sendable {
        public var votesSigned = 0
        public var eventSignaturesVerified = 0
        /// Blocks built for a proposal, including builds that found nothing to propose.
        public var blockBuilds = 0
    }
    /// Consensus signatures (votes, view changes, certificates) actually verified.
    public var voteSignaturesVerified: Int { sigs.verified }

    /// Starts (or restarts) a replica from its executed state, the hashes of the blocks
    /// it executed above its stable checkpoint, and its durable records.
    public init(config: ReplicaConfig, state: LedgerState, lastHash: Hash32, recentHashes: [UInt64: Hash32] = [:], durable: DurableState = DurableState()) {
        self.config = config
        sigs = SignatureCache(config.crypto)
        chain = state.chainID.raw
        genesisCheckpoint = CheckpointCertificate(height: 0, blockHash: config.genesisHash, stateRoot: config.genesisStateRoot, votes: [])
        interval = state.parameters.checkpointInterval
        let w = config.windowBlocks == 0 ? 2 * interval : config.windowBlocks
        window = min(max(w, interval), UInt64(Limits.pipelineDepthMax))
        precondition(window >= interval, "the window must hold a whole checkpoint interval or consensus stalls")
        self.state = state
        stateRoot = state.stateRoot()
        self.lastHash = lastHash
        executedHashes = recentHashes
        executedHashes[state.height.value] = lastHash
        if state.height.value % interval == 0 { checkpointRoots[state.height.value] = stateRoot }
        self.durable = durable
        // Time never reads below the last block's: a fresh replica is not "behind" it.
        now = state.timestampMs
        stable = durable.stable ?? genesisCheckpoint
        if stable.height > state.height { stable = genesisCheckpoint }
        view = durable.view
        viewStatus = durable.changing ? .changing : .normal
        currentSet = try! ValidatorSet([.init(key: config.keys[0].publicKey, power: 1)])
        for (e, members) in durable.epochSets { epochSets[e] = try? ValidatorSet(members) }
        refreshSet()
        // A replica that restarts in the middle of a view change still counts its own vote.
        if changing, let (vc, blocks) = durable.viewChange, vc.view == view { viewChanges[vc.replica] = (vc, blocks) }
        nextOwnNonce = (state.accounts[config.operatorKey.publicKey]?.nonce ?? 0) + 1
    }

    /// Events in the mempool (tests, status).
    public var mempoolCount: Int { mempool.count }

    /// One line of what this replica is doing, for traces.
    public var status: String {
        "view \(view)\(changing ? " (changing)" : "") executed \(state.height) stable \(stable.height) epoch \(epoch) "
            + "vc-quorum-at \(viewChangeQuorumAt.map(String.init) ?? "-") failed-views \(failedViews) mempool \(mempool.count) "
            + "view-changes \(viewChanges.values.map { "\($0.0.replica.short):\($0.0.view)" }.sorted()) held \(held.count) members \(currentSet.count)"
    }

    // MARK: - Validator sets and roles

    static func epochOf(_ h: UInt64, _ interval: UInt64) -> UInt64 { h == 0 ? 0 : (h - 1) / interval }

    mutating func refreshSet() {
        let e = Self.epochOf(state.height.value + 1, interval)
        guard e != epoch else { return }
        guard let set = Self.set(from: state.powerForNextBlock()) else {
            preconditionFailure("the chain has no validator with voting power at height \(state.height.value + 1)")
        }
        currentSet = set
        epoch = e
        // View changes by validators that left the set no longer count; this replica's own
        // view change, if it is in one, is re-signed for the new set (see `step`).
        viewChanges = viewChanges.filter { set.contains($0.key) }
        if changing { viewChangeStale = true }
        if epochSets[e] != set {
            epochSets[e] = set
            pendingDurable.append(.epochSet(epoch: e, members: set.members))
        }
        if e >= DurableState.epochSetsKept { epochSets = epochSets.filter { $0.key > e - DurableState.epochSetsKept } }
    }

    static func set(from power: [PublicKey: UInt64]) -> ValidatorSet? {
        try? ValidatorSet(power.keys.sorted().map { ValidatorSet.Member(key: $0, power: power[$0]!) })
    }

    func set(for h: UInt64) -> ValidatorSet? {
        let e = Self.epochOf(h, interval)
        if e == epoch { return currentSet }
        return e < epoch ? epochSets[e] : nil
    }

    /// The primary of a view in the current epoch (the rule takes the epoch number: the
    /// set may change at each epoch, and round-robin turns last `epochsPerTurn` epochs).
    public func primary(of v: View) -> PublicKey {
        currentSet.primary(view: v, epoch: epoch, rule: config.primaryRule, config.crypto)
    }

    /// The consensus key this replica signs with in the current epoch (nil: not a member).
    var myKey: (any Signer)? { config.keys.first { currentSet.contains($0.publicKey) } }
    func myKey(in set: ValidatorSet) -> (any Signer)? { config.keys.first { set.contains($0.publicKey) } }

    public var lastExecuted: Height { state.height }
    public var isPrimary: Bool { !changing && myKey?.publicKey == primary(of: view) }

    // MARK: - Quorums (the planted bugs live here and nowhere else)

    func quorum(_ signers: [PublicKey], _ set: ValidatorSet) -> Bool {
        if config.bugs.contains(.quorumByMessages) {
            return signers.filter(set.contains).count >= 2 * set.faultsTolerated + 1
        }
        if config.bugs.contains(.quorumOfTwoF) {
            return Set(signers).filter(set.contains).count >= 2 * set.faultsTolerated
        }
        return set.isQuorum(signers)
    }

    /// Every vote by a member, every signature valid, and the signers (with `extra`) a quorum.
    func verifyVotes(_ votes: [Vote], statement: [UInt8], set: ValidatorSet, extra: [PublicKey] = []) -> Bool {
        var signers = extra
        var forged = 0
        for v in votes {
            guard set.contains(v.key) else { return false }
            if !sigs.verify(v.signature, statement, v.key) {
                forged += 1
                guard config.bugs.contains(.acceptForgedSignature), forged == 1 else { return false }
            }
            signers.append(v.key)
        }
        return quorum(signers, set)
    }

    /// A checkpoint at height h is signed by the validators of the block after it: the
    /// ones that continue from that state (and the set any replica holds once it has
    /// executed h, even after a restart).
    func checkpointSet(_ h: UInt64) -> ValidatorSet? { set(for: h + 1) }

    func validCheckpoint(_ c: CheckpointCertificate) -> Bool {
        if c.height.value == 0 { return c == genesisCheckpoint }
        guard let set = checkpointSet(c.height.value) else { return false }
        return verifyVotes(c.votes, statement: c.message.statement(chain: chain), set: set)
    }

    func validPrepared(_ p: PreparedCertificate, set: ValidatorSet) -> Bool {
        guard p.prePrepare.key == set.primary(view: p.view, epoch: Self.epochOf(p.height.value, interval), rule: config.primaryRule, config.crypto),
              sigs.verify(p.prePrepare.signature, ConsensusMessage.prePrepare(view: p.view, height: p.height, blockHash: p.blockHash).statement(chain: chain), p.prePrepare.key)
        else { return false }
        return verifyVotes(p.prepares, statement: ConsensusMessage.prepare(view: p.view, height: p.height, blockHash: p.blockHash).statement(chain: chain),
                           set: set, extra: [p.prePrepare.key])
    }

    // MARK: - Step

    public mutating func step(_ input: Input) -> Output {
        var out = Output()
        switch input {
        case let .tick(t):
            now = max(now, t)
            onTick(&out)
        case let .request(bytes, verified):
            admit(bytes, forward: true, signatureChecked: verified, &out)
        case let .message(from, m):
            onMessage(from, m, &out)
        case let .author(p):
            authorEvent(p, &out)
        case let .rotateKey(new):
            if let old = myKey, let next = config.keys.first(where: { $0.publicKey == new }), old.publicKey != new {
                let nonce = max(nextOwnNonce, (state.accounts[config.operatorKey.publicKey]?.nonce ?? 0) + 1)
                let r = KeyRotation.signed(chain: state.chainID, validator: ValidatorID(config.operatorKey.publicKey), nonce: nonce, old: old,
                                           new: next)
                authorEvent(.validatorRotateKey(r), &out)
            }
        case let .forget(ids):
            let inFlight = inFlightIDs()
            dropFromMempool(ids.filter { !inFlight.contains($0) })
        case let .persisted(token):
            assert(token <= nextToken, "persistence acknowledged for token \(token), never issued (last \(nextToken))")
            var keep: [(token: UInt64, out: Outgoing)] = []
            for h in held { if h.token <= token { out.send.append(h.out) } else { keep.append(h) } }
            held = keep
            assert(held.allSatisfy { $0.token > token }, "every send whose records are durable is released")
        }
        // A client event (the most frequent input by far) moves no slot: it can only fill
        // the next proposal, so it skips the walk over the window.
        var eventOnly = false
        switch input {
        case .request, .forget, .message(_, .request), .message(_, .requests): eventOnly = true
        default: break
        }
        if !eventOnly { advance(&out) }
        if viewChangeStale, changing {
            viewChangeStale = false
            signViewChange(&out)
        }
        tryPropose(&out)
        if !eventOnly || !out.persist.isEmpty { advance(&out) }
        finish(&out)
        return out
    }

    /// Sends wait for the durable records written with or before them (invariant 6).
    mutating func finish(_ out: inout Output) {
        if !dropped.isEmpty {
            out.notes += dropped
            dropped.removeAll()
        }
        if !pendingDurable.isEmpty {
            for r in pendingDurable { durable.apply(r) }
            out.persist.insert(contentsOf: pendingDurable, at: 0)
            pendingDurable.removeAll()
        }
        let sends = stepSends
        stepSends.removeAll()
        if config.bugs.contains(.voteBeforePersist) {
            if !out.persist.isEmpty || !out.commits.isEmpty { nextToken += 1; out.persistToken = nextToken }
            out.send.append(contentsOf: sends)
            return
        }
        let heldBefore = held.count
        if !out.persist.isEmpty || !out.commits.isEmpty {
            nextToken += 1
            out.persistToken = nextToken
            for s in sends { held.append((nextToken, s)) }
            // Persisted before sent (invariant 6): nothing of this step leaves before its records.
            assert(held.count == heldBefore + sends.count && held.suffix(sends.count).allSatisfy { $0.token == nextToken },
                   "this step's sends wait for this step's records")
        } else if let last = held.last {
            for s in sends { held.append((last.token, s)) }
        } else {
            assert(out.persist.isEmpty && out.commits.isEmpty && held.isEmpty, "a send goes out at once only when nothing waits to be durable")
            out.send.append(contentsOf: sends)
        }
    }

    mutating func send(_ m: PeerMessage, to: Destination = .all) { stepSends.append(Outgoing(to: to, message: m)) }

    mutating func persist(_ r: DurableRecord, _ out: inout Output) {
        durable.apply(r)
        out.persist.append(r)
    }

    /// Signs a vote unless this replica already signed a different one in that role,
    /// height and view (a restart never makes it equivocate), persisting it first.
    mutating func signVote(_ m: ConsensusMessage, key: any Signer, _ out: inout Output) -> SignedConsensusMessage? {
        if let old = durable.signed(m) { return old.message == m ? old : nil }
        let s = SignedConsensusMessage.sign(m, chain: chain, signer: key)
        counters.votesSigned += 1
        persist(.vote(s), &out)
        return s
    }
}
