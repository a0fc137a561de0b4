import LedgerCore
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
    public var keys: [any Signer]
    /// The validator's account key: authors its opinion and evidence events.
    public var operatorKey: any Signer
    /// Hashing and signature verification (LedgerCrypto's `Sodium`), handed in by the
    /// driver or the simulator: the replica imports no crypto library.
    public var crypto: any Primitives
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
    /// How far ahead of its author's nonce an event may be to enter the mempool (the
    /// node's admission bound, `nonceAheadMax`): a peer could otherwise fill the mempool
    /// with one funded key's future nonces, which never commit and never pay.
    public var authorAheadMax: UInt64 = Limits.authorPendingMax
    public var personality: any Personality = Lawful()
    public var producer: any ProducerStrategy = Lawful()
    /// Record each verdict as a signed opinion event.
    public var recordOpinions = true
    public var bugs: Set<PlantedBug> = []

    public init(genesisHash: Hash32, genesisStateRoot: Hash32, keys: [any Signer], operatorKey: any Signer,
                crypto: any Primitives) {
        self.genesisHash = genesisHash; self.genesisStateRoot = genesisStateRoot
        self.keys = keys; self.operatorKey = operatorKey; self.crypto = crypto
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
    case enteredView(View)
    case startedViewChange(View)
    case rejectedProposal(Height, BlockRejection)
    case refusedProposal(Height, view: View, reason: String)
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

/// Whether a replica runs the normal case in its view or is changing to it.
public enum ViewStatus: Sendable, Hashable {
    case normal, changing
}

struct Slot {
    var view: View
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
    var refused = false
    /// How far the slot's block has come. It only moves forward: a block executed by
    /// state transfer or a new view's base is also committed and prepared.
    var phase = Phase.open

    enum Phase: UInt8, Comparable {
        case open, prepared, committed, executed
        static func < (a: Phase, b: Phase) -> Bool { a.rawValue < b.rawValue }
    }

    var prepared: Bool { phase >= .prepared }
    var committed: Bool { phase >= .committed }
    var executed: Bool { phase >= .executed }

    /// Moves the slot to `next`, never back.
    mutating func advance(to next: Phase) {
        assert(next >= phase, "a slot's phase never goes back (\(phase) → \(next))")
        phase = max(phase, next)
    }
}

struct SeenKey: Hashable {
    var signer: PublicKey
    var kind: UInt8
    var height: UInt64
    var view: View
}

/// A clock on the replica's simulated time (`now`, from ticks): when something last
/// happened, or until when something is held off. Values, so a replica stays a value
/// and its timers are replayed exactly by the simulator.
struct Timer: Sendable {
    /// When it last fired (periodic use), or until when it holds off (deadline use).
    private(set) var at: UInt64 = 0

    /// Periodic: due once `every` ms passed since it last fired.
    func due(_ now: UInt64, every: UInt64) -> Bool { now >= at &+ every }
    mutating func fire(_ now: UInt64) { at = now }

    /// Deadline: held off until `now + delay`; `passed` once that time is reached.
    mutating func holdOff(_ now: UInt64, for delay: UInt64) { at = now &+ delay }
    func passed(_ now: UInt64) -> Bool { now >= at }
    mutating func clear() { at = 0 }
}

/// The replica's periodic work and hold-offs, each its own `Timer` (the view timer,
/// which runs from progress and from a quorum of view changes, is `timeout()`).
struct ReplicaTimers: Sendable {
    /// Votes, checkpoint votes and view changes sent again (`retransmitMs`).
    var retransmit = Timer()
    /// Waiting events last passed to the primary (`pushWaitingEvents`).
    var pushToPrimary = Timer()
    /// Events whose nonce gap outlived `mempoolWaitMaxMs` last dropped (every 1 s).
    var waitSweep = Timer()
    /// Old mempool events last forwarded again (every 2 s).
    var reforward = Timer()
    /// Blocks last fetched from a peer that claims more (`fetchIntervalMs`).
    var fetch = Timer()
    /// No block is built before this (after a build found nothing in a large mempool).
    var buildIdle = Timer()
    /// The full-block rule is off until this (after it asked for a block that came out short).
    var fullRuleOff = Timer()
}
