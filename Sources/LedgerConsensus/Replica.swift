import LedgerCore
import LedgerCrypto
import LedgerProjections

/// Bugs that tests switch on one at a time to prove the simulator catches them
/// (FoundationDB's "buggify" idea). Never set outside tests and the simulator.
public enum PlantedBug: String, Sendable, CaseIterable, Hashable {
    /// Quorums count messages, so a duplicated or repeated vote counts twice.
    case quorumByMessages
    /// A quorum is 2f distinct signers instead of more than two thirds.
    case quorumOfTwoF
    /// The new primary leaves the highest prepared certificate out of its new view.
    case newViewDropsPrepared
    /// Votes go out before the records that remember them are durable.
    case voteBeforePersist
    /// A certificate with one signature that does not verify is still accepted.
    case acceptForgedSignature
}

public struct ReplicaConfig: Sendable {
    public var genesisHash: Hash32
    public var genesisStateRoot: Hash32
    /// Consensus keys this validator may hold: it signs with whichever the current epoch's set lists.
    public var keys: [SigningKey]
    /// The validator's account key: authors its opinion and evidence events.
    public var operatorKey: SigningKey
    public var primaryRule: ValidatorSet.PrimaryRule = .roundRobin
    /// Heights in flight beyond the stable checkpoint (0: twice the checkpoint interval).
    public var windowBlocks: UInt64 = 0
    public var viewTimeoutMs: UInt64 = 1_000
    public var viewTimeoutMaxMs: UInt64 = 60_000
    public var retransmitMs: UInt64 = 300
    public var fetchIntervalMs: UInt64 = 400
    /// A proposal may wait this long for a fuller block while others are in flight.
    public var batchDelayMs: UInt64 = 50
    /// Validators' opinions on blocks do not start a block of their own while they are
    /// all there is: they ride in the next block with other events, or go alone after
    /// this long. Otherwise every client block would be followed by one or more blocks
    /// of opinions about it.
    public var opinionDelayMs: UInt64 = 200
    public var clockDriftMaxMs: UInt64 = 30_000
    /// How long an event whose nonce is ahead of its author's may wait in the mempool.
    public var mempoolWaitMaxMs: UInt64 = 60_000
    public var personality: any Personality = Lawful()
    public var producer: any ProducerStrategy = Lawful()
    /// Record each verdict as a signed opinion event.
    public var recordOpinions = true
    public var bugs: Set<PlantedBug> = []

    public init(genesisHash: Hash32, genesisStateRoot: Hash32, keys: [SigningKey], operatorKey: SigningKey) {
        self.genesisHash = genesisHash; self.genesisStateRoot = genesisStateRoot
        self.keys = keys; self.operatorKey = operatorKey
    }
}

public enum Destination: Sendable, Hashable {
    case all
    case peer(PublicKey)
}

public struct Outgoing: Sendable {
    public var to: Destination
    public var message: PeerMessage
}

/// A state-transfer request the driver answers from its log.
public struct ServeRequest: Sendable, Hashable {
    public var to: PublicKey
    public var from: Height
    public var count: Int
}

public struct CommittedBlock: Sendable {
    public var certified: CertifiedBlock
    /// The state after the block (shares storage with the replica's; a driver may keep it).
    public var state: LedgerState
    public var stateRoot: Hash32
    public var ids: [EventID]
    /// The events, decoded (the replica decoded them to execute the block).
    public var envelopes: [Envelope]
    public var viaStateTransfer: Bool
}

/// Things a driver logs or counts; none changes what the replica does.
public enum Note: Sendable, Equatable {
    case enteredView(UInt64)
    case startedViewChange(UInt64)
    case rejectedProposal(Height, BlockRejection)
    case refusedProposal(Height, view: UInt64, reason: String)
    case rejectedMessage(String)
    case equivocation(PublicKey)
    case fetching(from: Height, peer: PublicKey)
    /// The replica found its own state disagreeing with a quorum: an operator must look.
    case divergence(String)
    /// A client event left the mempool without committing: it breaks a rule against the
    /// executed state, or waited too long for its author's previous nonce.
    case droppedEvent(EventID, ApplyError)
    /// A peer sent what no honest replica sends: the driver scores it down.
    case peerFault(PublicKey, PeerFault)
}

/// Proof, from one message, that the peer which sent it is faulty (or lies). A replica
/// passes on only client events it decoded, found to be for this chain and verified
/// (`admit` checks all three before forwarding, and re-forwards only its mempool), so
/// a relayed event that fails one of them convicts its relayer; rules that depend on
/// state (nonces, balances) do not, since replicas see events in different orders.
/// Likewise it sends only consensus messages it signed or verified, so a signature that
/// does not verify under the member key it names convicts the sender; a signer this
/// replica does not know as a member (it may lag an epoch behind) convicts nobody.
public enum PeerFault: String, Sendable, Hashable, CustomStringConvertible {
    /// Relayed event bytes that do not decode as an envelope.
    case malformedEvent = "malformed_event"
    /// A relayed event for another chain.
    case wrongChainEvent = "wrong_chain_event"
    /// A relayed event whose signature does not verify.
    case forgedEvent = "forged_event"
    /// A vote, proposal, view change or new view whose signature does not verify under
    /// the key of the member it names.
    case forgedConsensusMessage = "forged_consensus_message"

    public var description: String {
        switch self {
        case .malformedEvent: "relayed an event that does not decode"
        case .wrongChainEvent: "relayed an event for another chain"
        case .forgedEvent: "relayed an event whose signature does not verify"
        case .forgedConsensusMessage: "sent a consensus message whose signature does not verify"
        }
    }
}

public enum Input: Sendable {
    case message(from: PublicKey, PeerMessage)
    /// A client's event: admitted to the mempool and passed on to the other replicas.
    /// `verified`: the driver already checked its signature (on another core).
    case request([UInt8], verified: Bool = false)
    case tick(nowMs: UInt64)
    /// Everything up to this persistence token is durable.
    case persisted(token: UInt64)
    /// The operator's own event (register, bond, retire, unjail…), authored with the
    /// operator key and the next nonce, and submitted like a client's.
    case author(Payload)
    /// Rotates the consensus key to `new` (one of `config.keys`): the rotation statement
    /// binds the envelope's nonce, so the replica builds it when it picks the nonce.
    case rotateKey(new: PublicKey)
    /// Client events the driver's admission pool let go (replaced by a higher fee, or
    /// evicted from a full pool): they leave the mempool unless a proposed block holds them.
    case forget([EventID])
}

/// What the driver must do, in this order: make `persist` and `commits` durable (then
/// answer `.persisted(token)`), send `send`, answer `serve` from the log.
public struct Output: Sendable {
    public var persist: [DurableRecord] = []
    public var commits: [CommittedBlock] = []
    public var persistToken: UInt64?
    public var send: [Outgoing] = []
    public var serve: [ServeRequest] = []
    public var notes: [Note] = []
    public init() {}
}

/// A validated proposal's result, boxed: slots are copied often and a state has many
/// collections, so the box keeps a copy to one reference.
final class Speculation: Sendable {
    let value: ExecutedBlock
    init(_ v: ExecutedBlock) { value = v }
}

struct Slot {
    var view: UInt64
    var block: ProposedBlock?
    var prePrepare: SignedConsensusMessage?
    var speculation: Speculation?
    var exec: ExecutedBlock? {
        get { speculation?.value }
        set { speculation = newValue.map(Speculation.init) }
    }
    var pending: (SignedConsensusMessage, ProposedBlock, fromNewView: Bool)?
    var prepares: [SignedConsensusMessage] = []
    var commits: [SignedConsensusMessage] = []
    var sentPrepare = false
    var prepared = false
    var committed = false
    var executed = false
    var refused = false
}

struct SeenKey: Hashable {
    var signer: PublicKey
    var kind: UInt8
    var height: UInt64
    var view: UInt64
}

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

    public private(set) var state: LedgerState
    public private(set) var stateRoot: Hash32
    public private(set) var lastHash: Hash32
    var executedHashes: [UInt64: Hash32] = [:]
    var checkpointRoots: [UInt64: Hash32] = [:]
    var epoch: UInt64 = .max
    var currentSet: ValidatorSet
    /// Sets of the current and recent epochs (DurableState.epochSetsKept of them).
    var epochSets: [UInt64: ValidatorSet] = [:]
    var pendingDurable: [DurableRecord] = []
    /// An epoch began during a view change: sign it again with this epoch's key.
    var viewChangeStale = false

    public private(set) var view: UInt64 = 0
    public private(set) var changing = false
    var failedViews: UInt32 = 0
    public private(set) var stable: CheckpointCertificate
    public private(set) var durable: DurableState

    var slots: [UInt64: Slot] = [:]
    var checkpointVotes: [UInt64: [PublicKey: SignedConsensusMessage]] = [:]
    var viewChanges: [PublicKey: (ViewChange, [ProposedBlock])] = [:]
    var myNewView: (NewView, [ProposedBlock])?
    /// When this replica last sent its new view again to a member that asked for the
    /// view it had installed (at most once per `retransmitMs` each).
    var newViewResentAt: [PublicKey: UInt64] = [:]

    var mempool: [EventID: Envelope] = [:]
    var mempoolSince: [EventID: UInt64] = [:]
    var mempoolOrder: [EventID] = []
    /// The mempool by author and nonce: the view timer asks whether any author's next
    /// nonce is waiting, which the arrival order cannot answer cheaply (see `hasApplicableEvent`).
    var byAuthor: [PublicKey: [UInt64: [EventID]]] = [:]
    var verified = Set<EventID>()
    var seen: [SeenKey: SignedConsensusMessage] = [:]
    var reported = Set<SeenKey>()
    var refusals: [UInt64: (view: UInt64, hash: Hash32, by: Set<ValidatorID>)] = [:]
    /// Heights at which this replica's personality refused a fresh proposal (Proposal.refusedBefore).
    var refusedHeights: Set<UInt64> = []
    var peerClaims: [PublicKey: UInt64] = [:]

    public private(set) var now: UInt64 = 0
    var lastProgressAt: UInt64 = 0
    var workSince: UInt64?
    /// When a quorum of view changes for the target view was first seen: the view-change
    /// timer runs only from then (PBFT §4.5.2), so a replica that raced ahead alone
    /// waits for the others instead of running further away.
    var viewChangeQuorumAt: UInt64?
    /// The highest view each member has been seen voting in (for catching up on views).
    var viewSeen: [PublicKey: UInt64] = [:]
    var lastRetransmitAt: UInt64 = 0
    /// When this replica last passed its waiting events to the primary (`pushWaitingEvents`).
    var lastPushToPrimaryAt: UInt64 = 0
    /// When `hasApplicableEvent` last dropped events that waited too long.
    var lastWaitSweepAt: UInt64 = 0
    var lastReforwardAt: UInt64 = 0
    var lastFetchAt: UInt64 = 0
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
    /// No block is built before this (after a build found nothing in a large mempool).
    var buildIdleUntil: UInt64 = 0
    /// Events that can go into a block (their author's nonces follow on from the
    /// committed one here) admitted since the last build, and those the last build left
    /// out: the full-block rule counts these, not the whole mempool, which may hold
    /// thousands of future nonces that no block can take (a flood).
    var chainableSinceBuild = 0
    var chainableLeft = 0
    /// The full-block rule is off until this (after it asked for a block that came out short).
    var fullRuleOffUntil: UInt64 = 0
    /// Mempool events that are not opinions (see `opinionDelayMs`).
    var clientPending = 0
    var nextOwnNonce: UInt64 = 0

    var nextToken: UInt64 = 0
    var held: [(token: UInt64, out: Outgoing)] = []
    var stepSends: [Outgoing] = []
    /// Events dropped from the mempool during this step, reported in its notes.
    var dropped: [Note] = []
    var scratch: [UInt8] = []
    let sigs = SignatureCache()
    /// Work done, for benchmarks and metrics.
    public private(set) var counters = Counters()

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
        changing = durable.changing
        currentSet = try! ValidatorSet([.init(key: config.keys[0].publicKey, power: 1)])
        for (e, members) in durable.epochSets { epochSets[e] = try? ValidatorSet(members) }
        refreshSet()
        // A replica that restarts in the middle of a view change still counts its own vote.
        if changing, let (vc, blocks) = durable.viewChange, vc.view == view { viewChanges[vc.replica] = (vc, blocks) }
        nextOwnNonce = (state.accounts[config.operatorKey.publicKey]?.nonce ?? 0) + 1
    }

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
    public func primary(of v: UInt64) -> PublicKey {
        currentSet.primary(view: v, epoch: epoch, rule: config.primaryRule)
    }

    /// The consensus key this replica signs with in the current epoch (nil: not a member).
    var myKey: SigningKey? { config.keys.first { currentSet.contains($0.publicKey) } }
    func myKey(in set: ValidatorSet) -> SigningKey? { config.keys.first { set.contains($0.publicKey) } }

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
        guard p.prePrepare.key == set.primary(view: p.view, epoch: Self.epochOf(p.height.value, interval), rule: config.primaryRule),
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
                let r = EventCrypto.rotation(chain: state.chainID, validator: config.operatorKey.publicKey, nonce: nonce, old: old, new: next)
                authorEvent(.validatorRotateKey(r), &out)
            }
        case let .forget(ids):
            let inFlight = inFlightIDs()
            dropFromMempool(ids.filter { !inFlight.contains($0) })
        case let .persisted(token):
            var keep: [(token: UInt64, out: Outgoing)] = []
            for h in held { if h.token <= token { out.send.append(h.out) } else { keep.append(h) } }
            held = keep
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
        if !out.persist.isEmpty || !out.commits.isEmpty {
            nextToken += 1
            out.persistToken = nextToken
            for s in sends { held.append((nextToken, s)) }
        } else if let last = held.last {
            for s in sends { held.append((last.token, s)) }
        } else {
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
    mutating func signVote(_ m: ConsensusMessage, key: SigningKey, _ out: inout Output) -> SignedConsensusMessage? {
        if let old = durable.signed(m) { return old.message == m ? old : nil }
        let s = SignedConsensusMessage.sign(m, chain: chain, key: key)
        counters.votesSigned += 1
        persist(.vote(s), &out)
        return s
    }

    // MARK: - Client events and the mempool

    /// `relayed`: the event came from a peer (not from a client through the driver);
    /// then an event no honest replica forwards is returned as the peer's fault, not noted.
    @discardableResult
    mutating func admit(_ bytes: [UInt8], forward: Bool, signatureChecked: Bool = false, relayed: Bool = false, _ out: inout Output) -> PeerFault? {
        func refuse(_ fault: PeerFault, _ why: String) -> PeerFault? {
            if relayed { return fault }
            out.notes.append(.rejectedMessage(why))
            return nil
        }
        let e: Envelope
        do { e = try Envelope(bytes: bytes) } catch {
            switch error {
            // A kind or an envelope version this binary does not know can be a newer
            // binary's, passed on in a rolling upgrade: refused, held against nobody.
            case .unknownKind, .unsupportedVersion:
                out.notes.append(.rejectedMessage("client event of a kind or version this binary does not know: \(error)"))
                return nil
            default: return refuse(.malformedEvent, "malformed client event: \(error)")
            }
        }
        guard e.chainID == chain else { return refuse(.wrongChainEvent, "client event for another chain") }
        let id = EventCrypto.id(bytes)
        guard mempool[id] == nil else { return nil }
        guard let acct = state.accounts[e.author], e.nonce > acct.nonce else {
            // The driver admitted it against a head this replica has already passed (or
            // a client resubmitted it): it can never commit, and its submitter must hear
            // so now rather than when the driver's sweep forgets it.
            if !relayed {
                let why: ApplyError = state.accounts[e.author].map { .staleNonce(expected: $0.nonce + 1, got: e.nonce) } ?? .unknownAuthor(e.author)
                dropped.append(.droppedEvent(id, why))
            }
            return nil
        }
        guard mempool.count < Limits.mempoolEventsMax else { out.notes.append(.rejectedMessage("mempool full")); return nil }
        if signatureChecked { rememberVerified(id) }
        if !verified.contains(id) {
            counters.eventSignaturesVerified += 1
            guard EventCrypto.verify(e, scratch: &scratch) else { return refuse(.forgedEvent, "client event with a bad signature") }
            rememberVerified(id)
        }
        mempool[id] = e
        mempoolSince[id] = now
        mempoolOrder.append(id)
        byAuthor[e.author, default: [:]][e.nonce, default: []].append(id)
        if !Self.isOpinion(e) { clientPending += 1 }
        if oldestPendingAt == nil { oldestPendingAt = now }
        // One that can go into a block ends a pause after a build that found nothing:
        // otherwise a mempool full of future nonces would hold it back a batch delay.
        if e.nonce <= chainEnd(e.author, after: acct.nonce) {
            chainableSinceBuild += 1
            buildIdleUntil = 0
        }
        if forward { send(.request(bytes)) }
        noteOpinion(e, &out)
        return nil
    }

    /// Events a peer relayed. A message that convicts its relayer is read no further:
    /// one charge per message, and a liar cannot make this replica verify thousands of
    /// forgeries with one message (the events before the lie are kept).
    mutating func admitRelayed(_ events: some Sequence<[UInt8]>, from: PublicKey, _ out: inout Output) {
        for bytes in events {
            guard let fault = admit(bytes, forward: false, relayed: true, &out) else { continue }
            out.notes.append(.peerFault(from, fault))
            return
        }
    }

    mutating func rememberVerified(_ id: EventID) {
        if verified.count >= 4 * Limits.mempoolEventsMax { verified.removeAll(keepingCapacity: true) }
        verified.insert(id)
    }

    mutating func dropFromMempool(_ ids: some Sequence<EventID>) {
        var any = false
        for id in ids {
            guard let e = mempool.removeValue(forKey: id) else { continue }
            mempoolSince[id] = nil
            if var list = byAuthor[e.author]?[e.nonce] {
                list.removeAll { $0 == id }
                byAuthor[e.author]![e.nonce] = list.isEmpty ? nil : list
                if byAuthor[e.author]!.isEmpty { byAuthor[e.author] = nil }
            }
            any = true
            if !Self.isOpinion(e) { clientPending -= 1 }
        }
        if any, mempoolOrder.count > 2 * mempool.count + 64 { mempoolOrder.removeAll { mempool[$0] == nil } }
        if mempool.isEmpty { mempoolOrder.removeAll(keepingCapacity: true); byAuthor.removeAll(); oldestPendingAt = nil }
    }

    /// A validator's opinion on a block: opinions wait for company (`opinionDelayMs`).
    static func isOpinion(_ e: Envelope) -> Bool { e.kind == .opinion }

    /// Authors an event with the operator key (opinions, evidence) and treats it like a client's.
    mutating func authorEvent(_ p: Payload, _ out: inout Output) {
        let nonce = max(nextOwnNonce, (state.accounts[config.operatorKey.publicKey]?.nonce ?? 0) + 1)
        nextOwnNonce = nonce + 1
        // Rule version 1 has a flat minimum fee. Under version 2 the event offers twice the
        // current minimum: the base fee may rise before the event is in a block.
        let fee = state.requiredFee(for: p)
        let offer = state.economy.ruleVersion >= RuleVersion.economy && fee <= UInt64.max / 2 ? fee * 2 : fee
        let e = EventCrypto.makeEvent(chain: state.chainID, key: config.operatorKey, nonce: nonce, fee: offer, payload: p)
        admit(e.bytes, forward: true, &out)
    }

    /// A refusal opinion from more than a third of the power against the current
    /// proposal at a height ends the view: the next primary tries.
    mutating func noteOpinion(_ e: Envelope, _ out: inout Output) {
        guard e.kind == .opinion, case let .opinion(o)? = try? e.decodePayload(), o.verdict == .refuse,
              o.view == view, !changing, let slot = slots[o.height.value], slot.block?.hash == o.blockHash,
              let v = state.validators[e.author], currentSet.contains(v.consensusKey) else { return }
        var r = refusals[o.height.value] ?? (view, o.blockHash, [])
        if r.view != view || r.hash != o.blockHash { r = (view, o.blockHash, []) }
        r.by.insert(e.author)
        refusals[o.height.value] = r
        let keys = r.by.compactMap { state.validators[$0]?.consensusKey }
        if currentSet.isWeakQuorum(keys) { startViewChange(view + 1, &out) }
    }

    // MARK: - Messages

    mutating func onMessage(_ from: PublicKey, _ m: PeerMessage, _ out: inout Output) {
        switch m {
        case let .request(bytes): admitRelayed(CollectionOfOne(bytes), from: from, &out)
        case let .requests(list): admitRelayed(list, from: from, &out)
        case let .prePrepare(pp, block): onPrePrepare(from, pp, block, &out)
        case let .vote(v): onVote(from, v, &out)
        case let .viewChange(vc, blocks): onViewChange(from, vc, blocks, &out)
        case let .newView(nv, blocks): onNewView(from, nv, blocks, &out)
        case let .fetch(h, count):
            guard h.value >= 1, h <= state.height else { return }
            if let last = fetchServedAt[from], now < last &+ Limits.fetchAnswerGapMs {
                out.notes.append(.rejectedMessage("state-transfer request from \(from.short) sooner than \(Limits.fetchAnswerGapMs) ms after the last"))
                return
            }
            if fetchServedAt.count >= Limits.fetchPeersRememberedMax { fetchServedAt.removeAll(keepingCapacity: true) }
            fetchServedAt[from] = now
            out.serve.append(ServeRequest(to: from, from: h, count: min(Int(count), Limits.stateTransferBlocksMax)))
        case let .blocks(bs): onBlocks(from, bs, &out)
        }
    }

    /// Remembers a member's vote and reports a conflicting pair as evidence, once.
    mutating func remember(_ s: SignedConsensusMessage, _ out: inout Output) {
        let (kind, h, v) = DurableState.slot(s.message)
        let key = SeenKey(signer: s.signer, kind: kind, height: h, view: v)
        if let old = seen[key] {
            guard old.message != s.message, !reported.contains(key) else { return }
            guard Equivocation.detect(old, s, chain: chain) != nil else { return }
            reported.insert(key)
            out.notes.append(.equivocation(s.signer))
            authorEvent(.evidence(first: old.encoded(), second: s.encoded()), &out)
            return
        }
        if seen.count >= Limits.voteMemoryMax { seen.removeAll(keepingCapacity: true) }
        seen[key] = s
    }

    mutating func claim(_ signer: PublicKey, _ h: UInt64) {
        if h > (peerClaims[signer] ?? 0) { peerClaims[signer] = h }
    }

    func inWindow(_ h: UInt64) -> Bool { h > stable.height.value && h <= stable.height.value + window }

    mutating func onPrePrepare(_ from: PublicKey, _ pp: SignedConsensusMessage, _ block: ProposedBlock, _ out: inout Output) {
        guard case let .prePrepare(v, height, hash) = pp.message else { return }
        let h = height.value
        guard let set = set(for: h), set.contains(pp.signer) else {
            if set(for: h) == nil, inWindow(h) || h > state.height.value { claim(pp.signer, h &- 1) }
            else { out.notes.append(.rejectedMessage("pre-prepare for h\(h) from \(pp.signer.short): not a member")) }
            return
        }
        guard sigs.verify(pp, chain) else { out.notes.append(.peerFault(from, .forgedConsensusMessage)); return }
        remember(pp, &out)
        guard v == view, !changing, pp.signer == primary(of: v), inWindow(h), h > state.height.value else { return }
        guard block.hash == hash else { out.notes.append(.rejectedMessage("pre-prepare names another block")); return }
        var slot = slots[h] ?? Slot(view: v)
        guard slot.block == nil, slot.pending == nil else { return }
        slot.pending = (pp, block, false)
        slots[h] = slot
    }

    /// Validates pending proposals whose parent is now known (called from `advance`).
    mutating func validatePending(_ h: UInt64, _ out: inout Output) -> Bool {
        guard var slot = slots[h], let (pp, block, fromNewView) = slot.pending else { return false }
        guard let parent = parentView(h) else { return false }
        slot.pending = nil
        do throws(BlockRejection) {
            guard block.header.proposer == pp.signer || fromNewView else {
                throw .wrongProposer(expected: pp.signer, got: block.header.proposer)
            }
            guard block.header.timestampMs <= now &+ config.clockDriftMaxMs || fromNewView else {
                throw .timeTooFarAhead(blockMs: block.header.timestampMs, nowMs: now)
            }
            guard fromNewView || block.header.view == view else { throw .wrongProposer(expected: pp.signer, got: block.header.proposer) }
            let exec = try Execution.execute(block, parent: parent, verified: verified, scratch: &scratch)
            counters.eventSignaturesVerified += exec.signaturesVerified
            for id in exec.ids { rememberVerified(id) }
            slot.block = block
            slot.prePrepare = pp
            slot.exec = exec
            slot.view = view
            slots[h] = slot
        } catch {
            slots[h] = slot
            out.notes.append(.rejectedProposal(Height(h), error))
            return true
        }
        // Personalities judge fresh proposals only: a block re-proposed in a new view
        // may already be committed somewhere and is always prepared.
        var accept = true
        if !fromNewView, let exec = slot.exec, myKey?.publicKey != pp.signer {
            let system = exec.envelopes.allSatisfy { $0.kind == .opinion || $0.kind == .evidence }
            if !system {
                let j = config.personality.judge(Proposal(block: block, view: view, events: exec.envelopes, parent: parent.state,
                                                          judge: config.operatorKey.publicKey, refusedBefore: refusedHeights.contains(h)))
                accept = j.accept
                if !j.accept {
                    refusedHeights.insert(h)
                    out.notes.append(.refusedProposal(Height(h), view: view, reason: j.reason))
                }
                if config.recordOpinions, currentSet.contains(myKey?.publicKey ?? .zero) {
                    authorEvent(.opinion(Opinion(height: Height(h), view: view, blockHash: block.hash, verdict: j.accept ? .accept : .refuse,
                                                 reason: String(j.reason.utf8.prefix(Limits.reasonBytesMax)) ?? "")), &out)
                }
            }
        }
        // Recording a refusal may have ended the view (more than a third refused).
        guard slots[h] != nil, !changing else { return true }
        slots[h]!.refused = !accept
        if accept, let key = myKey, key.publicKey != pp.signer,
           let s = signVote(.prepare(view: view, height: Height(h), blockHash: block.hash), key: key, &out) {
            slots[h]!.sentPrepare = true
            addVote(s, to: h)
            send(.vote(s))
        }
        return true
    }

    func parentView(_ h: UInt64) -> ParentView? {
        guard set(for: h) != nil, Self.epochOf(h, interval) == epoch else { return nil }
        if h == state.height.value + 1 { return ParentView(state: state, stateRoot: stateRoot, hash: lastHash) }
        guard let p = slots[h - 1], p.view == view, let b = p.block, let e = p.exec, !p.executed else { return nil }
        return ParentView(state: e.state, stateRoot: e.stateRoot, hash: b.hash)
    }

    mutating func addVote(_ s: SignedConsensusMessage, to h: UInt64) {
        guard var slot = slots[h] else { return }
        let cap = 4 * currentSet.count + 4
        switch s.message {
        case .prepare:
            if config.bugs.contains(.quorumByMessages) { if slot.prepares.count < cap { slot.prepares.append(s) } }
            else if !slot.prepares.contains(where: { $0.signer == s.signer }) { slot.prepares.append(s) }
        case .commit:
            if config.bugs.contains(.quorumByMessages) { if slot.commits.count < cap { slot.commits.append(s) } }
            else if !slot.commits.contains(where: { $0.signer == s.signer }) { slot.commits.append(s) }
        default: break
        }
        slots[h] = slot
    }

    mutating func onVote(_ from: PublicKey, _ s: SignedConsensusMessage, _ out: inout Output) {
        let h = s.message.height.value
        if case let .checkpoint(height, hash, root) = s.message {
            guard let set = checkpointSet(h), set.contains(s.signer) else {
                if checkpointSet(h) == nil, h > state.height.value { claim(s.signer, h) }
                return
            }
            guard sigs.verify(s, chain) else { out.notes.append(.peerFault(from, .forgedConsensusMessage)); return }
            remember(s, &out)
            claim(s.signer, h)
            guard h > stable.height.value else { return }
            checkpointVotes[h, default: [:]][s.signer] = s
            tryStable(height, hash, root, &out)
            return
        }
        guard let set = set(for: h), set.contains(s.signer) else {
            if set(for: h) == nil, h > state.height.value { claim(s.signer, h &- 1) }
            else { out.notes.append(.rejectedMessage("vote for h\(h) from \(s.signer.short): not a member")) }
            return
        }
        guard sigs.verify(s, chain) else { out.notes.append(.peerFault(from, .forgedConsensusMessage)); return }
        remember(s, &out)
        if case .commit = s.message { claim(s.signer, h) }
        let v: UInt64
        switch s.message {
        case let .prepare(vv, _, _), let .commit(vv, _, _): v = vv
        default: return
        }
        if v > view, v > (viewSeen[s.signer] ?? 0) {
            viewSeen[s.signer] = v
            catchUpOnViews(&out)
        }
        guard v == view, !changing, inWindow(h) else { return }
        if slots[h] == nil { slots[h] = Slot(view: view) }
        addVote(s, to: h)
    }

    /// Moves every slot as far as it can go, in height order: validate, prepare,
    /// commit, execute.
    mutating func advance(_ out: inout Output) {
        var progressed = true
        while progressed {
            progressed = false
            var h = state.height.value + 1
            while h <= stable.height.value + window, slots[h] != nil {
                if slots[h]?.pending != nil, validatePending(h, &out) { progressed = true }
                if stepPrepared(h, &out) { progressed = true }
                if let s = slots[h], s.prepared, !s.committed, hasCommitQuorum(h) { slots[h]!.committed = true; progressed = true }
                h += 1
            }
            while let s = slots[state.height.value + 1], s.committed, s.exec != nil, !s.executed {
                execute(state.height.value + 1, &out)
                progressed = true
            }
        }
    }

    func matching(_ votes: [SignedConsensusMessage], _ slot: Slot) -> [SignedConsensusMessage] {
        guard let b = slot.block else { return [] }
        return votes.filter {
            switch $0.message {
            case let .prepare(v, _, hash), let .commit(v, _, hash): v == slot.view && hash == b.hash
            default: false
            }
        }
    }

    mutating func stepPrepared(_ h: UInt64, _ out: inout Output) -> Bool {
        guard let slot = slots[h], !slot.prepared, let pp = slot.prePrepare, let b = slot.block, slot.view == view else { return false }
        let below = h == state.height.value + 1 || (slots[h - 1]?.prepared == true && slots[h - 1]?.view == view)
        guard below else { return false }
        let prepares = matching(slot.prepares, slot)
        guard quorum([pp.signer] + prepares.map(\.signer), currentSet) else { return false }
        slots[h]!.prepared = true
        let cert = PreparedCertificate(view: view, height: Height(h), blockHash: b.hash,
                                       prePrepare: Vote(key: pp.signer, signature: pp.signature),
                                       prepares: prepares.map { Vote(key: $0.signer, signature: $0.signature) })
        persist(.prepared(cert, b), &out)
        if let key = myKey, let c = signVote(.commit(view: view, height: Height(h), blockHash: b.hash), key: key, &out) {
            addVote(c, to: h)
            send(.vote(c))
        }
        return true
    }

    func hasCommitQuorum(_ h: UInt64) -> Bool {
        guard let slot = slots[h] else { return false }
        return quorum(matching(slot.commits, slot).map(\.signer), currentSet)
    }

    mutating func execute(_ h: UInt64, _ out: inout Output) {
        let slot = slots[h]!
        let b = slot.block!, exec = slot.exec!
        var votes: [Vote] = []
        var signers = Set<PublicKey>()
        for c in matching(slot.commits, slot) where config.bugs.contains(.quorumByMessages) || signers.insert(c.signer).inserted {
            votes.append(Vote(key: c.signer, signature: c.signature))
        }
        let cert = CommitCertificate(height: Height(h), view: slot.view, blockHash: b.hash, votes: votes)
        slots[h]!.executed = true
        applyExecuted(b, exec, cert, viaTransfer: false, &out)
    }

    mutating func applyExecuted(_ b: ProposedBlock, _ exec: ExecutedBlock, _ cert: CommitCertificate, viaTransfer: Bool, _ out: inout Output) {
        let h = b.height.value
        state = exec.state
        stateRoot = exec.stateRoot
        lastHash = b.hash
        executedHashes[h] = b.hash
        out.commits.append(CommittedBlock(certified: CertifiedBlock(block: b, certificate: cert), state: exec.state, stateRoot: exec.stateRoot,
                                          ids: exec.ids, envelopes: exec.envelopes, viaStateTransfer: viaTransfer))
        dropFromMempool(exec.ids)
        dropStale(authors: exec.envelopes.lazy.map(\.author))
        lastProgressAt = now
        workSince = nil
        failedViews = 0
        refusals[h] = nil
        refusedHeights = refusedHeights.filter { $0 > h }
        refreshSet()
        if h % interval == 0 {
            checkpointRoots[h] = exec.stateRoot
            if let key = myKey,
               let s = signVote(.checkpoint(height: b.height, blockHash: b.hash, stateRoot: exec.stateRoot), key: key, &out) {
                checkpointVotes[h, default: [:]][s.signer] = s
                send(.vote(s))
                tryStable(b.height, b.hash, exec.stateRoot, &out)
            }
        }
    }

    // MARK: - Checkpoints

    mutating func tryStable(_ height: Height, _ hash: Hash32, _ root: Hash32, _ out: inout Output) {
        let h = height.value
        guard h > stable.height.value, h <= state.height.value, let set = checkpointSet(h), let votes = checkpointVotes[h] else { return }
        let agreeing = votes.values.filter { $0.message == .checkpoint(height: height, blockHash: hash, stateRoot: root) }
        guard quorum(agreeing.map(\.signer), set) else { return }
        // After a restart the root of an older checkpoint height may be unknown here; the
        // same block on the same parent can only give the same root (execution is pure).
        guard executedHashes[h] == hash, checkpointRoots[h] == root || (checkpointRoots[h] == nil && h < state.height.value) else {
            out.notes.append(.divergence("a quorum checkpointed height \(h) with a block or state root this replica does not have"))
            return
        }
        let cert = CheckpointCertificate(height: height, blockHash: hash, stateRoot: root,
                                         votes: agreeing.sorted { $0.signer < $1.signer }.map { Vote(key: $0.signer, signature: $0.signature) })
        stable = cert
        persist(.stable(cert), &out)
        collectGarbage()
    }

    /// Everything at or below the stable checkpoint is settled: drop it.
    mutating func collectGarbage() {
        let h = stable.height.value
        slots = slots.filter { $0.key > h }
        checkpointVotes = checkpointVotes.filter { $0.key > h }
        checkpointRoots = checkpointRoots.filter { $0.key >= h }
        executedHashes = executedHashes.filter { $0.key >= h }
        seen = seen.filter { $0.key.height > h }
        reported = reported.filter { $0.height > h }
        refusals = refusals.filter { $0.key > h }
    }

    // MARK: - Proposing

    mutating func tryPropose(_ out: inout Output) {
        guard isPrimary, let key = myKey else { return }
        while true {
            // The next height: above everything executed or proposed in this view.
            var h = state.height.value + 1
            while let s = slots[h], s.block != nil || s.pending != nil || s.executed { h += 1 }
            guard inWindow(h), Self.epochOf(h, interval) == epoch, let parent = parentView(h) else { return }
            if durable.signed(.prePrepare(view: view, height: Height(h), blockHash: .zero)) != nil { return }
            let inFlight = h - state.height.value - 1
            // Only opinions waiting (events in flight do not count): they wait for other
            // events, or `opinionDelayMs`.
            let opinionsOnly: Bool
            if clientPending == 0 {
                opinionsOnly = true
            } else if inFlight > 0, let o = oldestPendingAt, now >= o &+ config.batchDelayMs {
                opinionsOnly = clientPending <= clientEventsInFlight()
            } else {
                opinionsOnly = false
            }
            // Held opinions keep the other replicas' view timers running: they wait at most
            // a quarter of the view timeout.
            let delay = opinionsOnly ? max(min(config.opinionDelayMs, config.viewTimeoutMs / 4), config.batchDelayMs) : config.batchDelayMs
            let waited = oldestPendingAt.map { now >= $0 &+ delay } ?? false
            let maxEvents = Int(state.parameters.blockEventsMax)
            // A full block is ready when the events not yet in a proposed block fill one
            // (the mempool also holds the events of the blocks in flight: counting those
            // proposed a block per arriving event once a full one was in flight).
            // Events not yet in a proposed block, and of those the ones that can go in.
            let pending = mempool.count - eventsInFlight()
            let ready = min(pending, chainableSinceBuild + chainableLeft)
            let fullReady = now >= fullRuleOffUntil && ready >= maxEvents
            let due = (inFlight == 0 && !opinionsOnly) || waited
            guard due || fullReady else { return }
            // Each build reads the whole mempool. After one found nothing to propose (every
            // event not in flight waits for a nonce this replica has not seen), a large
            // mempool is read again only after a batch delay, not on every message.
            guard now >= buildIdleUntil || pending <= Self.buildFreeEvents else { return }
            counters.blockBuilds += 1
            chainableSinceBuild = 0
            let built = buildBlock(h, parent: parent, key: key)
            if !due, built?.full != true {
                // Events waiting for a nonce were counted as ready (the block stopped short
                // of the count and byte limits): the full-block rule waits a batch delay
                // before it believes the count again.
                fullRuleOffUntil = now &+ config.batchDelayMs
            }
            guard let (block, exec, _) = built else {
                if pending > Self.buildFreeEvents { buildIdleUntil = now &+ config.batchDelayMs }
                return
            }
            guard let pp = signVote(.prePrepare(view: view, height: Height(h), blockHash: block.hash), key: key, &out) else { return }
            var slot = Slot(view: view)
            slot.block = block; slot.prePrepare = pp; slot.exec = exec; slot.sentPrepare = true
            if let old = slots[h] { slot.prepares = old.prepares; slot.commits = old.commits }
            slots[h] = slot
            send(.prePrepare(pp, block))
            oldestPendingAt = mempool.isEmpty ? nil : now
        }
    }

    /// Mempools up to this size are cheap to read: a build that found nothing may be
    /// retried on the next message.
    static let buildFreeEvents = 256

    /// Calls `body` with each block proposed above the executed height, as this replica
    /// executed it. (`tryPropose` asks on every step: the box is passed, not a copy of
    /// the block and its state.)
    func forEachInFlight(_ body: (Speculation) -> Void) {
        for (k, slot) in slots where k > state.height.value && !slot.executed { if let e = slot.speculation { body(e) } }
    }

    /// The ids of their events, which the mempool still holds: no new block takes them.
    func inFlightIDs() -> Set<EventID> {
        var ids = Set<EventID>()
        forEachInFlight { ids.formUnion($0.value.ids) }
        return ids
    }

    /// How many events those blocks hold (the mempool still holds them, except the rare
    /// one dropped or never admitted here: an overcount only delays the full-block rule
    /// to the batch delay; checking each id would cost a lookup per in-flight event on
    /// every step).
    func eventsInFlight() -> Int {
        var n = 0
        forEachInFlight { n += $0.value.ids.count }
        return n
    }

    /// Mempool events other than opinions that are in blocks proposed above the
    /// executed height (`clientPending` counts them too).
    func clientEventsInFlight() -> Int {
        var n = 0
        forEachInFlight { spec in
            for (id, e) in zip(spec.value.ids, spec.value.envelopes) where !Self.isOpinion(e) && mempool[id] != nil { n += 1 }
        }
        return n
    }

    /// `full`: the block stopped at the count or byte limit (more events would have gone in).
    mutating func buildBlock(_ h: UInt64, parent: ParentView, key: SigningKey) -> (ProposedBlock, ExecutedBlock, full: Bool)? {
        var s = parent.state
        let ts = max(now, s.timestampMs)
        let ctx = BlockContext(height: Height(h), timestampMs: ts, proposer: key.publicKey, parentStateRoot: parent.stateRoot)
        do { try s.beginBlock(ctx) } catch { preconditionFailure("a proposal follows its parent by construction: \(error)") }
        let inFlight = inFlightIDs()
        var ids: [EventID] = [], envs: [Envelope] = [], raws: [[UInt8]] = []
        var bytes = 0
        var drop: [EventID] = []
        let maxEvents = Int(s.parameters.blockEventsMax), maxBytes = Int(s.parameters.blockBytesMax)
        // Selection by fee: the highest fees first, arrival order among equal fees. An
        // author's events still go in nonce order: one that must wait for its
        // predecessor waits aside and goes in as soon as that one does.
        var candidates: [(id: EventID, e: Envelope)] = []
        candidates.reserveCapacity(mempool.count)
        var fees = Set<UInt64>()
        // `mempoolOrder` is compacted lazily, so an id removed and admitted again can be
        // listed twice: each event is a candidate once (the ranking below needs unique ids).
        var listed = Set<EventID>()
        // Only events that can go in: an author's nonces from its next one up, while
        // they follow each other here (and stale ones, to drop them). An event behind a
        // missing nonce could only wait aside, yet each used to be tried against the
        // state on every build: 2,800 future nonces from a flood cut honest throughput
        // to 29% (tools/faultnet.py --flood).
        var runEnd: [PublicKey: UInt64] = [:]
        for id in mempoolOrder {
            guard let e = mempool[id], !inFlight.contains(id) else { continue }
            let end = runEnd[e.author] ?? chainEnd(e.author, after: s.accounts[e.author]?.nonce ?? 0)
            runEnd[e.author] = end
            guard e.nonce <= end, listed.insert(id).inserted else { continue }
            candidates.append((id, e))
            fees.insert(e.fee)
        }
        if fees.count > 1 {
            let rank = Dictionary(uniqueKeysWithValues: candidates.enumerated().map { ($1.id, $0) })
            candidates.sort { $0.e.fee != $1.e.fee ? $0.e.fee > $1.e.fee : rank[$0.id]! < rank[$1.id]! }
        }
        var full = false
        // Events waiting for their author's previous nonce, by author, in arrival order.
        var waiting: [PublicKey: [(id: EventID, e: Envelope)]] = [:]
        /// Applies one event: true if it went in; a future nonce waits for its author.
        func include(_ id: EventID, _ e: Envelope) -> Bool {
            if ids.count >= maxEvents || bytes + e.bytes.count > maxBytes { full = true; return false }
            do {
                try s.apply(e, id: id, ctx)
                ids.append(id); envs.append(e); raws.append(e.bytes); bytes += e.bytes.count
                return true
            } catch {
                switch error {
                case .futureNonce: waiting[e.author, default: []].append((id, e))
                case .staleNonce: drop.append(id); dropped.append(.droppedEvent(id, error))
                default: if h == state.height.value + 1 { drop.append(id); dropped.append(.droppedEvent(id, error)) }
                }
                return false
            }
        }
        for (id, e) in candidates where !full {
            guard include(id, e) else { continue }
            // The author's nonce moved: its waiting events may go in now, in nonce order
            // (one sort per drain, so an author's reversed backlog costs n log n).
            guard let list = waiting.removeValue(forKey: e.author) else { continue }
            let sorted = list.sorted { $0.e.nonce < $1.e.nonce }
            for (k, w) in sorted.enumerated() where !include(w.id, w.e) {
                // `include` put `w` back if it still waits; the rest wait behind it.
                if k + 1 < sorted.count { waiting[e.author, default: []].append(contentsOf: sorted[(k + 1)...]) }
                break
            }
        }
        dropFromMempool(drop)
        chainableLeft = max(0, candidates.count - ids.count - drop.count)
        guard !ids.isEmpty else { return nil }
        let header = BlockHeader(chainID: chain, height: Height(h), parentHash: parent.hash, view: view, timestampMs: ts,
                                 proposer: key.publicKey, eventCount: UInt32(ids.count), eventsRoot: EventCrypto.eventsRoot(ids),
                                 parentStateRoot: parent.stateRoot,
                                 meme: Array(config.producer.meme(height: Height(h), view: view).prefix(Limits.memeBytesMax)))
        return (ProposedBlock(header: header, events: raws), ExecutedBlock(state: s, stateRoot: s.stateRoot(), ids: ids, envelopes: envs, signaturesVerified: 0), full)
    }

    // MARK: - Timers, retransmission, state transfer

    /// The view timer. It doubles with each failed view only after the first f: with f
    /// faulty validators, up to f views in a row can have a faulty primary, and doubling
    /// from the first made two faulty validators next to each other in the rotation cost
    /// 1 + 2 timeouts instead of 2 (measured: about 3 s a fault with 7 validators). Past
    /// f failures in a row it is the network that is slow, and the timer grows until it
    /// is long enough, as PBFT needs for liveness.
    func timeout() -> UInt64 {
        let doublings = failedViews > UInt32(currentSet.faultsTolerated) ? failedViews - UInt32(currentSet.faultsTolerated) : 0
        return min(config.viewTimeoutMs << UInt64(min(doublings, 16)), config.viewTimeoutMaxMs)
    }

    mutating func onTick(_ out: inout Output) {
        let inFlight = slots.contains { $0.key > state.height.value && ($0.value.block != nil || $0.value.pending != nil) }
        let work = inFlight || hasApplicableEvent()
        if !work { workSince = nil } else if workSince == nil { workSince = now }
        if changing {
            if let q = viewChangeQuorumAt, now >= q &+ timeout() { startViewChange(view + 1, &out) }
        } else if let since = workSince, now >= max(since, lastProgressAt) &+ timeout(), myKey != nil {
            startViewChange(view + 1, &out)
        } else if let since = workSince, now >= max(since, lastProgressAt) &+ timeout() / 2, now >= lastPushToPrimaryAt &+ timeout() / 2 {
            // Half the view timeout with work and no progress: the primary may lack the
            // events (it was cut off when they were passed on), so it gets them now rather
            // than by the 2 s re-forward or a view change.
            pushWaitingEvents()
        }
        if now >= lastRetransmitAt &+ config.retransmitMs {
            lastRetransmitAt = now
            retransmit(&out)
        }
        fetchIfBehind(&out)
    }

    /// How many of the newest executed heights `retransmit` resends its commits for.
    static let retransmitExecutedMax: UInt64 = 4

    mutating func retransmit(_ out: inout Output) {
        reforwardOldEvents()
        // In every mode: the newest checkpoint votes, and commits for blocks executed above
        // the stable checkpoint. They let others stabilise and commit, and tell a replica
        // that is behind — even one that has to catch up before it can join a view change —
        // how far the others are.
        if let h = checkpointVotes.keys.max(), let set = checkpointSet(h), let k = myKey(in: set)?.publicKey, let v = checkpointVotes[h]?[k] {
            send(.vote(v))
        }
        for v in stable.votes where stable.height.value > 0 && config.keys.contains(where: { $0.publicKey == v.key }) {
            send(.vote(SignedConsensusMessage(message: stable.message, signer: v.key, signature: v.signature)))
        }
        let mine = Set(config.keys.map(\.publicKey))
        // Commits of the slots still in flight in this view, and of the newest executed
        // ones only: those show how far this replica is (a peer further behind fetches
        // the blocks by state transfer). Resending every executed slot above the stable
        // checkpoint, up to a whole interval of them every round, was most of the mesh's
        // messages under load.
        let recentFrom = state.height.value > Self.retransmitExecutedMax ? state.height.value - Self.retransmitExecutedMax : 0
        for h in slots.keys.sorted() where h > stable.height.value {
            let s = slots[h]!
            guard !s.executed || h > recentFrom else { continue }
            if s.executed || s.view == view, let c = s.commits.first(where: { mine.contains($0.signer) }) { send(.vote(c)) }
        }
        if changing {
            if let (vc, blocks) = durable.viewChange, vc.view == view { send(.viewChange(vc, blocks: blocks)) }
            return
        }
        if let (nv, blocks) = myNewView, nv.view == view { send(.newView(nv, blocks: blocks)) }
        for h in slots.keys.sorted() where h > stable.height.value {
            let s = slots[h]!
            guard s.view == view, !s.executed else { continue }
            if let pp = s.prePrepare, let b = s.block, mine.contains(pp.signer) { send(.prePrepare(pp, b)) }
            if let p = s.prepares.first(where: { mine.contains($0.signer) }) { send(.vote(p)) }
        }
    }

    /// Client events this replica has held for a while without seeing them in a block
    /// are passed on again (at most 1,000, every 2 s): a forward lost to a reconnecting
    /// link would otherwise leave an event only here, where no primary takes it.
    mutating func reforwardOldEvents() {
        let every: UInt64 = 2_000
        guard now >= lastReforwardAt &+ every, !mempool.isEmpty else { return }
        lastReforwardAt = now
        let inFlight = inFlightIDs()
        var n = 0
        for id in mempoolOrder where n < 1_000 {
            guard let e = mempool[id], !inFlight.contains(id), let since = mempoolSince[id], now >= since &+ every else { continue }
            send(.request(e.bytes))
            n += 1
        }
    }

    /// Asks a peer that claims a greater height for the next blocks: after
    /// `fetchIntervalMs` without progress, or at once when the last answer moved this
    /// replica on and it is still behind (`fetchStreaming`). Asking only every 400 ms
    /// fetched 40 blocks a second, less than a loaded chain grows: a validator back from
    /// a pause never caught up, and the next fault left the others without a quorum.
    /// Each peer is asked at most as often as peers answer (`Limits.fetchAnswerGapMs`), so
    /// a replica catching up rotates over all that claim more.
    mutating func fetchIfBehind(_ out: inout Output) {
        let behind = peerClaims.filter { $0.value > state.height.value }.keys.sorted()
        guard !behind.isEmpty else { fetchStreaming = false; return }
        let waited = now >= lastProgressAt &+ config.fetchIntervalMs && now >= lastFetchAt &+ config.fetchIntervalMs
        guard waited || fetchStreaming else { return }
        // A quarter more than the peers' gap: the request must not arrive early there.
        let gap = Limits.fetchAnswerGapMs + Limits.fetchAnswerGapMs / 4
        let ready = behind.filter { p in fetchAskedAt[p].map { now >= $0 &+ gap } ?? true }
        guard !ready.isEmpty else { return }
        fetchStreaming = false
        lastFetchAt = now
        let peer = ready[Int(fetchRound % UInt64(ready.count))]
        fetchRound &+= 1
        if fetchAskedAt.count >= Limits.fetchPeersRememberedMax { fetchAskedAt.removeAll(keepingCapacity: true) }
        fetchAskedAt[peer] = now
        out.notes.append(.fetching(from: state.height.next, peer: peer))
        send(.fetch(from: state.height.next, count: UInt32(Limits.stateTransferBlocksMax)), to: .peer(peer))
        // A peer that claimed a height and does not deliver loses its claim after a round
        // of asking on the timer (answers that arrive keep the stream going instead).
        if waited, fetchRound % UInt64(max(behind.count, 1) * 4) == 0 { peerClaims = peerClaims.filter { $0.value <= state.height.value } }
    }

    /// State transfer: certified blocks are checked (certificate against the epoch's
    /// validator set, then every link, root and event) and applied, never re-agreed.
    mutating func onBlocks(_ from: PublicKey, _ blocks: [CertifiedBlock], _ out: inout Output) {
        for cb in blocks.sorted(by: { $0.block.height < $1.block.height }) {
            let h = cb.block.height.value
            guard h == state.height.value + 1 else { continue }
            let c = cb.certificate
            guard c.height == cb.block.height, c.blockHash == cb.block.hash, c.view >= cb.block.header.view,
                  verifyVotes(c.votes, statement: CommitCertificate.message(chain: chain, height: c.height, view: c.view, blockHash: c.blockHash), set: currentSet)
            else {
                out.notes.append(.rejectedMessage("state transfer from \(from.short): certificate for height \(h) does not verify"))
                peerClaims[from] = nil
                return
            }
            let exec: ExecutedBlock
            do { exec = try Execution.execute(cb.block, parent: ParentView(state: state, stateRoot: stateRoot, hash: lastHash), verified: verified, scratch: &scratch) } catch {
                out.notes.append(.rejectedProposal(Height(h), error))
                peerClaims[from] = nil
                return
            }
            counters.eventSignaturesVerified += exec.signaturesVerified
            // Whatever this replica had in flight at this height was not committed.
            if let s = slots[h], s.block?.hash != cb.block.hash { slots = slots.filter { $0.key < h } }
            slots[h]?.executed = true
            if slots[h]?.exec == nil { slots[h] = nil }
            applyExecuted(cb.block, exec, c, viaTransfer: true, &out)
            // A block certified in the view this replica is changing to (or a later one)
            // proves that view was installed by a quorum: join it instead of completing a
            // view change of its own — with an epoch begun meanwhile, this replica could
            // even compute a different primary for that view and build a second new view.
            if c.view >= view, changing || c.view > view { adoptView(c.view, &out) }
            if let next = slots[h + 1], let nb = next.block, nb.header.parentHash != lastHash {
                slots = slots.filter { $0.key <= h }
            }
            fetchStreaming = true
        }
        if fetchStreaming { fetchIfBehind(&out) }
    }

    // MARK: - View change

    mutating func startViewChange(_ target: UInt64, _ out: inout Output) {
        guard target > view || (target == view && !changing) else { return }
        view = target
        changing = true
        viewChangeQuorumAt = nil
        failedViews &+= 1
        out.notes.append(.startedViewChange(target))
        persist(.view(target, changing: true), &out)
        slots = slots.filter { $0.value.executed }
        myNewView = nil
        newViewResentAt.removeAll()
        viewChangeStale = false
        signViewChange(&out)
    }

    /// Signs and sends this replica's view change for the current target view.
    mutating func signViewChange(_ out: inout Output) {
        let target = view
        guard changing, let key = myKey else { return }
        var prepared: [PreparedCertificate] = []
        var blocks: [ProposedBlock] = []
        for h in durable.prepared.keys.sorted() where inWindow(h) {
            let (c, b) = durable.prepared[h]!
            prepared.append(c); blocks.append(b)
        }
        let vc = ViewChange.sign(view: target, stable: stable, prepared: prepared, chain: chain, key: key)
        persist(.viewChange(vc, blocks: blocks), &out)
        viewChanges[key.publicKey] = (vc, blocks)
        send(.viewChange(vc, blocks: blocks))
        noteViewChangeQuorum()
        tryNewView(&out)
    }

    mutating func noteViewChangeQuorum() {
        guard changing, viewChangeQuorumAt == nil else { return }
        // Replicas already asking for later views are not in this view either.
        if quorum(viewChanges.values.filter { $0.0.view >= view }.map(\.0.replica), currentSet) { viewChangeQuorumAt = now }
    }

    /// More than a third of the power seen in later views (view changes or votes): this
    /// replica missed a view change; join the highest view that many are in.
    mutating func catchUpOnViews(_ out: inout Output) {
        let later = viewSeen.filter { $0.value > view && currentSet.contains($0.key) }
        guard currentSet.isWeakQuorum(later.keys) else { return }
        var best = view
        for v in Set(later.values).sorted(by: >) {
            if currentSet.isWeakQuorum(later.filter { $0.value >= v }.keys) { best = v; break }
        }
        if best > view { startViewChange(best, &out) }
    }

    /// Why a view change does not verify here. `forged` (a member's view change whose
    /// signature does not verify) convicts whoever sent it.
    enum ViewChangeFlaw {
        case forged
        case invalid(String)
        var why: String {
            switch self {
            case .forged: "bad signature"
            case let .invalid(why): why
            }
        }
    }

    /// Nil when a validator of this epoch signed the view change, else why not.
    func checkSigner(_ vc: ViewChange) -> ViewChangeFlaw? {
        guard currentSet.contains(vc.replica) else { return .invalid("sender is not a validator of this epoch") }
        return sigs.verify(vc.signature, vc.statement(chain: chain), vc.replica) ? nil : .forged
    }

    /// Nil when the view change verifies here, else why not.
    func checkViewChange(_ vc: ViewChange, _ blocks: [ProposedBlock], requireBlocks: Bool = true) -> ViewChangeFlaw? {
        if let flaw = checkSigner(vc) { return flaw }
        guard validCheckpoint(vc.stable) else { return .invalid("stable checkpoint \(vc.stable.height) does not verify here") }
        let base = vc.stable.height.value
        var byHash: [Hash32: ProposedBlock] = [:]
        for b in blocks { byHash[b.hash] = b }
        for p in vc.prepared {
            guard p.height.value > base, p.height.value <= base + window else { return .invalid("prepared height \(p.height) outside the window") }
            guard let set = set(for: p.height.value) else { return .invalid("prepared height \(p.height) is in an epoch unknown here") }
            guard validPrepared(p, set: set) else { return .invalid("prepared certificate at \(p.height) view \(p.view) does not verify") }
            guard !requireBlocks || byHash[p.blockHash]?.height == p.height else { return .invalid("block prepared at \(p.height) not attached") }
        }
        return nil
    }

    mutating func onViewChange(_ from: PublicKey, _ vc: ViewChange, _ blocks: [ProposedBlock], _ out: inout Output) {
        guard vc.view > view || (vc.view == view && changing) else {
            // A member asking for the view this replica already installed missed the new
            // view: it gets it again (it asks each `retransmitMs` until it has it), once
            // its own signature shows the request is its own. Otherwise anyone could make
            // this replica send its new view, blocks and all, on every message.
            guard vc.view == view, !changing, let (nv, bs) = myNewView, nv.view == view else { return }
            if let flaw = checkSigner(vc) {
                if case .forged = flaw { out.notes.append(.peerFault(from, .forgedConsensusMessage)) }
                return
            }
            if let last = newViewResentAt[vc.replica], now < last &+ config.retransmitMs { return }
            newViewResentAt[vc.replica] = now
            send(.newView(nv, blocks: bs), to: .peer(vc.replica))
            return
        }
        if let old = viewChanges[vc.replica], old.0.view >= vc.view { return }
        if let flaw = checkViewChange(vc, blocks) {
            if case .forged = flaw { out.notes.append(.peerFault(from, .forgedConsensusMessage)); return }
            if vc.stable.height.value > state.height.value, currentSet.contains(vc.replica) { claim(vc.replica, vc.stable.height.value) }
            out.notes.append(.rejectedMessage("view change \(vc.view) from \(vc.replica.short): \(flaw.why)"))
            return
        }
        viewChanges[vc.replica] = (vc, blocks)
        if vc.stable.height.value > state.height.value { claim(vc.replica, vc.stable.height.value) }
        if vc.view > (viewSeen[vc.replica] ?? 0) { viewSeen[vc.replica] = vc.view }
        catchUpOnViews(&out)
        noteViewChangeQuorum()
        tryNewView(&out)
    }

    /// The re-proposals a new view must carry: from the highest stable checkpoint up, the
    /// highest-view prepared block of each height, until a height with none (or one that
    /// does not extend the block chosen below it).
    func choose(_ vcs: [ViewChange], blocks: [Hash32: ProposedBlock]) -> (CheckpointCertificate, [PreparedCertificate]) {
        var base = vcs[0].stable
        for vc in vcs where vc.stable.height > base.height { base = vc.stable }
        var chosen: [PreparedCertificate] = []
        var parent = base.blockHash
        var h = base.height.value + 1
        while h <= base.height.value + window {
            var best: PreparedCertificate?
            for vc in vcs {
                for p in vc.prepared where p.height.value == h {
                    if let b = best, b.view > p.view || (b.view == p.view && !(p.blockHash < b.blockHash)) { continue }
                    best = p
                }
            }
            guard let c = best, let b = blocks[c.blockHash], b.header.parentHash == parent else { break }
            chosen.append(c)
            parent = c.blockHash
            h += 1
        }
        if config.bugs.contains(.newViewDropsPrepared), !chosen.isEmpty { chosen.removeLast() }
        return (base, chosen)
    }

    mutating func tryNewView(_ out: inout Output) {
        guard changing, let key = myKey, primary(of: view) == key.publicKey else { return }
        let vcs = viewChanges.values.filter { $0.0.view == view }.sorted { $0.0.replica < $1.0.replica }
        guard quorum(vcs.map(\.0.replica), currentSet) else { return }
        var byHash: [Hash32: ProposedBlock] = [:]
        for (_, bs) in vcs { for b in bs { byHash[b.hash] = b } }
        let (base, chosen) = choose(vcs.map(\.0), blocks: byHash)
        var pps: [SignedConsensusMessage] = []
        var blocks: [ProposedBlock] = []
        for c in chosen {
            guard let pp = signVote(.prePrepare(view: view, height: c.height, blockHash: c.blockHash), key: key, &out) else { return }
            pps.append(pp); blocks.append(byHash[c.blockHash]!)
        }
        let nv = NewView.sign(view: view, viewChanges: vcs.map(\.0), prePrepares: pps, chain: chain, key: key)
        myNewView = (nv, blocks)
        send(.newView(nv, blocks: blocks))
        install(nv, base: base, blocks, &out)
    }

    mutating func onNewView(_ from: PublicKey, _ nv: NewView, _ blocks: [ProposedBlock], _ out: inout Output) {
        guard nv.view > view || (nv.view == view && changing) else { return }
        guard nv.primary == primary(of: nv.view) else {
            out.notes.append(.rejectedMessage("new view \(nv.view) not from its primary")); return
        }
        guard sigs.verify(nv.signature, nv.statement(chain: chain), nv.primary) else { out.notes.append(.peerFault(from, .forgedConsensusMessage)); return }
        var signers = Set<PublicKey>()
        var byHash: [Hash32: ProposedBlock] = [:]
        for b in blocks { byHash[b.hash] = b }
        for vc in nv.viewChanges {
            let flaw: ViewChangeFlaw? = vc.view != nv.view ? .invalid("for another view")
                : !signers.insert(vc.replica).inserted ? .invalid("twice") : checkViewChange(vc, blocks, requireBlocks: false)
            if let flaw {
                if case .forged = flaw { out.notes.append(.peerFault(from, .forgedConsensusMessage)); return }
                if vc.stable.height.value > state.height.value, currentSet.contains(vc.replica) { claim(nv.primary, vc.stable.height.value) }
                out.notes.append(.rejectedMessage("new view \(nv.view) carries an invalid view change from \(vc.replica.short): \(flaw.why)")); return
            }
        }
        guard quorum(Array(signers), currentSet) else { out.notes.append(.rejectedMessage("new view \(nv.view) without a quorum")); return }
        let (base, chosen) = choose(nv.viewChanges, blocks: byHash)
        guard chosen.count == nv.prePrepares.count else { out.notes.append(.rejectedMessage("new view \(nv.view) re-proposes the wrong blocks")); return }
        for (c, pp) in zip(chosen, nv.prePrepares) {
            guard pp.message == .prePrepare(view: nv.view, height: c.height, blockHash: c.blockHash), pp.signer == nv.primary,
                  sigs.verify(pp, chain) else { out.notes.append(.rejectedMessage("new view \(nv.view) re-proposes the wrong blocks")); return }
        }
        install(nv, base: base, blocks, &out)
    }

    /// Joins a view that others installed, known from a certificate of that view. The
    /// new view's re-proposals are below the certified height, so nothing is lost by
    /// joining without it.
    mutating func adoptView(_ v: UInt64, _ out: inout Output) {
        enterView(v, &out)
        slots = slots.filter { $0.value.executed || $0.key <= state.height.value }
    }

    /// Leaves view-change mode for view `v` (from a NEW-VIEW or a certificate of `v`).
    mutating func enterView(_ v: UInt64, _ out: inout Output) {
        view = v
        changing = false
        viewChangeStale = false
        persist(.view(view, changing: false), &out)
        out.notes.append(.enteredView(view))
        lastProgressAt = now
        workSince = nil
        pushWaitingEvents()
        viewChanges = viewChanges.filter { $0.value.0.view > view }
    }

    mutating func install(_ nv: NewView, base: CheckpointCertificate, _ blocks: [ProposedBlock], _ out: inout Output) {
        enterView(nv.view, &out)
        slots = [:]
        var byHash: [Hash32: ProposedBlock] = [:]
        for b in blocks { byHash[b.hash] = b }
        if base.height > state.height { claim(nv.primary, base.height.value) }
        for pp in nv.prePrepares {
            guard case let .prePrepare(_, height, hash) = pp.message, let b = byHash[hash] else { continue }
            let h = height.value
            remember(pp, &out)
            if h <= state.height.value {
                // Already executed here: it must be the same block; help the others commit it.
                guard executedHashes[h] == nil || executedHashes[h] == hash else {
                    out.notes.append(.divergence("new view \(view) re-proposes another block at executed height \(h)")); continue
                }
                var s = Slot(view: view)
                s.block = b; s.prePrepare = pp; s.executed = true; s.prepared = true; s.committed = true
                slots[h] = s
                if let key = myKey, key.publicKey != nv.primary {
                    if let p = signVote(.prepare(view: view, height: height, blockHash: hash), key: key, &out) { send(.vote(p)) }
                }
                if let key = myKey, let c = signVote(.commit(view: view, height: height, blockHash: hash), key: key, &out) { send(.vote(c)) }
                continue
            }
            guard inWindow(h) else { continue }
            var s = Slot(view: view)
            s.pending = (pp, b, true)
            slots[h] = s
        }
    }
}

/// Signatures this replica already verified: retransmissions and certificates repeat
/// the same votes many times, and Ed25519 dominates a replica's cost. Only successes are
/// kept, keyed by signer, signature and a hash of the statement, so the cache changes how
/// fast an answer comes, never the answer. It is a class so `verify` can be called from
/// non-mutating checks; copies of a replica share it, which is harmless for the same reason.
final class SignatureCache: @unchecked Sendable {
    struct Entry: Hashable { var key: PublicKey; var signature: Signature; var digest: Hash32 }
    private var known = Set<Entry>()
    private(set) var verified = 0

    func verify(_ sig: Signature, _ statement: [UInt8], _ key: PublicKey) -> Bool {
        let e = Entry(key: key, signature: sig, digest: Blake2b.hash(statement))
        if known.contains(e) { return true }
        verified += 1
        guard Ed25519.verify(sig, statement, key) else { return false }
        if known.count >= 200_000 { known.removeAll(keepingCapacity: true) }
        known.insert(e)
        return true
    }

    func verify(_ m: SignedConsensusMessage, _ chain: Bytes32) -> Bool { verify(m.signature, m.message.statement(chain: chain), m.signer) }
}
