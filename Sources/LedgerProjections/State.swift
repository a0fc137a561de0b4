import LedgerCore

public struct Account: Sendable, Hashable {
    public var balance: UInt64
    /// The nonce of the author's last applied event; the next must be `nonce + 1`.
    public var nonce: UInt64
}

/// A validator's standing. Only active validators hold voting power. Jailed means
/// slashed for an equivocation: it may unjail once its term (`jailedUntil`) is served.
public enum ValidatorStatus: UInt8, Sendable { case active = 1, retired = 2, jailed = 3 }

public struct ValidatorState: Sendable, Hashable {
    public var id: ValidatorID
    public var name: String
    public var personality: String
    public var consensusKey: PublicKey
    /// Every consensus key this validator has had, with the height it took effect at.
    public var keyHistory: [KeyEpoch]
    public var selfStake: UInt64
    public var delegated: UInt64
    public var status: ValidatorStatus
    public var registeredAt: Height
    /// The first height at which a jailed validator may unjail (0 when never jailed).
    public var jailedUntil: Height = 0

    public struct KeyEpoch: Sendable, Hashable {
        public var from: Height
        public var key: PublicKey
    }
}

public struct DelegationKey: Hashable, Comparable, Sendable {
    public var delegator: PublicKey
    public var validator: ValidatorID
    public init(delegator: PublicKey, validator: ValidatorID) { self.delegator = delegator; self.validator = validator }
    public static func < (a: Self, b: Self) -> Bool { (a.delegator, a.validator) < (b.delegator, b.validator) }
}

public struct Unbonding: Sendable, Hashable {
    public var account: PublicKey
    public var validator: ValidatorID
    public var amount: UInt64
    public var releaseAt: Height
}

/// One slashing: what was taken from whom, for which offence, on which evidence.
public struct SlashRecord: Sendable, Hashable {
    public var validator: ValidatorID
    public var offenceHeight: Height
    /// The view of the equivocating messages (0 for checkpoints, which have none).
    public var offenceView: View
    public var stakeBefore: UInt64
    public var amount: UInt64
    /// The evidence event that proved the offence.
    public var evidence: EventID
    public var slashedAt: Height
    public init(validator: ValidatorID, offenceHeight: Height, offenceView: View, stakeBefore: UInt64, amount: UInt64,
                evidence: EventID, slashedAt: Height) {
        self.validator = validator; self.offenceHeight = offenceHeight; self.offenceView = offenceView
        self.stakeBefore = stakeBefore; self.amount = amount; self.evidence = evidence; self.slashedAt = slashedAt
    }
}

/// One punishable offence: a validator signing two different messages of one kind at
/// one height and view. Every further proof of the same offence is a duplicate, so a
/// validator is slashed once per offence however many conflicting messages it signed.
public struct OffenceKey: Sendable, Hashable, Comparable {
    public var validator: ValidatorID
    public var height: Height
    /// 0 for a checkpoint.
    public var view: View
    /// The message kind (`ConsensusMessage.tag`).
    public var kind: UInt8
    public init(validator: ValidatorID, height: Height, view: View, kind: UInt8) {
        self.validator = validator; self.height = height; self.view = view; self.kind = kind
    }
    public static func < (a: Self, b: Self) -> Bool {
        (a.validator, a.height, a.view, a.kind) < (b.validator, b.height, b.view, b.kind)
    }
}

/// How many opinions a validator has published, by verdict.
public struct OpinionCount: Sendable, Hashable {
    public var accepted: UInt64
    public var refused: UInt64
    public init(accepted: UInt64 = 0, refused: UInt64 = 0) { self.accepted = accepted; self.refused = refused }
}

public struct AgentState: Sendable, Hashable {
    public var profile: AgentProfile
    public var registeredAt: Height
    public var active: Bool
    /// The bond, origin, activity and outcomes of an agent registered under rule
    /// version 3 (nil for one registered before, until it bonds with `agent.update`).
    public var trust: AgentTrust? = nil
}

/// Rule version 3's record of a bonded agent (schemas/ECONOMY.md §Rule version 3).
public struct AgentTrust: Sendable, Hashable {
    /// Locked while registered; moves to the unbonding queue on deregistration.
    public var bond: UInt64
    /// The height of the last event the agent signed (its lifecycle status follows from it).
    public var lastSeen: Height
    /// Burned from the bond by lost disputes.
    public var bondSlashed: UInt64 = 0
    public var outcomes = AgentOutcomes()
}

/// What an agent's jobs came to, counted under rule version 3.
public struct AgentOutcomes: Sendable, Hashable {
    /// Jobs completed (every milestone paid) as the worker, and as the client.
    public var completedAsWorker: UInt64 = 0
    public var completedAsClient: UInt64 = 0
    /// Jobs refunded to their client while this agent was the worker.
    public var refunded: UInt64 = 0
    /// Disputes resolved on a job of this agent's, and those it lost.
    public var disputes: UInt64 = 0
    public var disputesLost: UInt64 = 0
    /// Ratings received and the sum of their scores (1–5).
    public var ratings: UInt64 = 0
    public var ratingSum: UInt64 = 0
    public init() {}
}

/// An agent's lifecycle status, derived from its record and the current height.
public enum AgentStatus: String, Sendable, CaseIterable {
    case active, idle, offline, retired
}

public enum AllianceStatus: UInt8, Sendable, CustomStringConvertible {
    case pending = 1, active = 2, rejected = 3, dissolved = 4, expired = 5
    public var description: String {
        switch self {
        case .pending: "pending"
        case .active: "active"
        case .rejected: "rejected"
        case .dissolved: "dissolved"
        case .expired: "expired"
        }
    }
}

public struct AllianceState: Sendable, Hashable {
    public var id: AllianceID
    public var proposer: PublicKey
    public var proposal: AllianceProposal
    public var proposedAtMs: UInt64
    /// Block time at which a pending proposal expires.
    public var acceptByMs: UInt64
    /// Targets that accepted, sorted.
    public var accepted: [PublicKey]
    public var status: AllianceStatus
    /// Block time at which an active alliance ends (0 until active).
    public var activeUntilMs: UInt64
    public var members: [PublicKey] { ([proposer] + proposal.targets).sorted() }
}

/// Everything the projections hold. Mutated only by `apply` and `beginBlock`
/// (Folds.swift); encoded canonically for the state root and checkpoints (Canonical.swift).
public struct LedgerState: Sendable, Equatable {
    public internal(set) var chainID: ChainID
    public internal(set) var parameters: ChainParameters
    public internal(set) var genesisHash: Hash32
    /// Height of the last block applied (0 after genesis).
    public internal(set) var height: Height
    public internal(set) var timestampMs: UInt64
    /// Sum of all balances, stakes, delegations, unbonding funds and the economy's held
    /// funds: the genesis supply plus rewards minted, less fees burned and stake slashed.
    public internal(set) var totalSupply: UInt64
    /// Stake destroyed by slashing (taken out of `totalSupply`).
    public internal(set) var burned: UInt64
    public internal(set) var feesPaid: UInt64
    public internal(set) var eventsApplied: UInt64
    public internal(set) var accounts: TrackedMap<PublicKey, Account>
    public internal(set) var validators: TrackedMap<ValidatorID, ValidatorState>
    /// Every consensus key ever used → its validator (keys are never reused).
    public internal(set) var consensusKeys: [PublicKey: ValidatorID]
    public internal(set) var delegations: TrackedMap<DelegationKey, UInt64>
    /// Pending unbondings in the order they were made (release order is by height, then this order).
    public internal(set) var unbonding: TrackedList<Unbonding>
    public internal(set) var agents: TrackedMap<PublicKey, AgentState>
    public internal(set) var alliances: TrackedMap<AllianceID, AllianceState>
    /// The alliances that can still lapse (pending or active): derived from `alliances`
    /// (never encoded), so a block's expiry check visits these, not every alliance ever
    /// made. `noteAlliance` keeps it after every alliance write.
    var liveAlliances: Set<AllianceID> = []
    /// The disputes opened in the current block, whose arbiters the next block's begin
    /// draws; and the governance proposals still pending. Derived like `liveAlliances`
    /// (kept by `noteJob` and `noteProposal`, recomputed on decode), so a block begin
    /// visits these instead of every job and proposal ever made.
    var undrawnDisputes: Set<JobID> = []
    /// Accepted jobs waiting for a drawn evaluator (rule version 3).
    var undrawnEvaluators: Set<JobID> = []
    var pendingProposals: Set<ProposalID> = []
    /// Consensus key → voting power, fixed for the current epoch: `votingPower()` of the
    /// state before the epoch's first block (at genesis, of the genesis state).
    public internal(set) var epochPower: [PublicKey: UInt64]
    /// Every slashing, in the order applied.
    public internal(set) var slashes: TrackedList<SlashRecord>
    /// Every offence already punished.
    public internal(set) var offences: TrackedSet<OffenceKey>
    public internal(set) var opinionCounts: TrackedMap<ValidatorID, OpinionCount>
    /// The agent economy and governance (EconomyState.swift).
    public internal(set) var economy: EconomyState
    /// Each stream's event count and hash chain (Streams.swift); tree chains only.
    public internal(set) var streams: TrackedMap<StreamKey, StreamHead> = [:]
    /// Messages each sender sent in the current block (rule version 3's limit): not part
    /// of the state, emptied as every block begins.
    var blockMessages = BlockMessages()
    /// Flat hash or state tree (Commitment.swift), fixed by the genesis.
    public internal(set) var commitment: StateCommitment = .flat
    /// The state tree under the tree rule, as of the last `sealRoot()`.
    var treeCache = TreeCache()
    /// The leaves sealed since they were last taken, when asked for (Commitment.swift).
    var sealRecord = SealRecord()
    /// The hashing and verification this state uses (Commitment.swift).
    let cryptoRef: CryptoRef

    /// The state after genesis, hashing and verifying with `crypto`.
    public init(genesis g: Genesis, genesisHash: Hash32, crypto: any Primitives) {
        cryptoRef = CryptoRef(crypto)
        chainID = g.chainID; parameters = g.parameters; self.genesisHash = genesisHash
        height = 0; timestampMs = g.timestampMs; feesPaid = 0; eventsApplied = 0; burned = 0
        accounts = [:]; validators = [:]; consensusKeys = [:]; delegations = [:]; unbonding = []
        agents = [:]; alliances = [:]; epochPower = [:]; slashes = []; offences = []; opinionCounts = [:]
        economy = EconomyState(present: g.encodedVersion >= 3, ruleVersion: g.ruleVersion, parameters: g.economy)
        var supply: UInt64 = 0
        for a in g.allocations {
            accounts[a.account, default: Account(balance: 0, nonce: 0)].balance += a.amount
            supply += a.amount
        }
        for v in g.validators {
            validators[ValidatorID(v.key)] = ValidatorState(id: ValidatorID(v.key), name: v.name, personality: v.personality, consensusKey: v.key,
                                               keyHistory: [.init(from: 0, key: v.key)], selfStake: v.stake, delegated: 0,
                                               status: .active, registeredAt: 0)
            consensusKeys[v.key] = ValidatorID(v.key)
            if accounts[v.key] == nil { accounts[v.key] = Account(balance: 0, nonce: 0) }
            supply += v.stake
        }
        totalSupply = supply
        epochPower = votingPower()
        commitment = g.stateCommitment == StateCommitmentRule.tree ? .tree : .flat
        seal()
    }

    /// The power that certifies block 1: the genesis validators holding at least the
    /// minimum stake, by key (what `LedgerState(genesis:crypto:)`'s `votingPower()` gives,
    /// without building a state of every allocation).
    public static func genesisPower(_ g: Genesis) -> [PublicKey: UInt64] {
        var out: [PublicKey: UInt64] = [:]
        for v in g.validators where v.stake >= g.parameters.minValidatorStake { out[v.key] = v.stake }
        return out
    }

    /// Voting power by consensus key: active validators holding at least the minimum self-stake.
    public func votingPower() -> [PublicKey: UInt64] {
        var out: [PublicKey: UInt64] = [:]
        for v in validators.values where v.status == .active && v.selfStake >= parameters.minValidatorStake {
            // Saturating: powers are bounded by the supply, and no sum may wrap.
            let (sum, over) = v.selfStake.addingReportingOverflow(v.delegated)
            out[v.consensusKey] = over ? .max : sum
        }
        return out
    }

    /// Whether block `h` is the first of an epoch: heights 1, K+1, 2K+1, … for an
    /// epoch length (`checkpointInterval`) of K.
    public static func isEpochStart(_ h: Height, interval: UInt64) -> Bool {
        precondition(interval >= 1, "the epoch length is at least one block")
        return h.value >= 1 && (h.value - 1) % interval == 0
    }

    /// The voting power that certifies block `height + 1`, the block after this state:
    /// the power of this state itself when that block starts an epoch (`beginBlock` will
    /// fix exactly that as the epoch's power), else the current epoch's power. The
    /// certificate check, the proposer check and the producers all use this.
    public func powerForNextBlock() -> [PublicKey: UInt64] {
        Self.isEpochStart(height.next, interval: parameters.checkpointInterval) ? votingPower() : epochPower
    }

    /// Sum of every balance, stake, delegation and unbonding entry, escrow, unclaimed
    /// reward and the current block's fee pool (the conservation check).
    /// Nil when the sum overflows: no state whose parts add up past `UInt64.max` conserves
    /// a supply that is itself a `UInt64`, and a wrapping sum could come back round to it.
    public func computedSupply() -> UInt64? {
        var s = CheckedSum()
        s.add(economy.feePool)
        for r in economy.rewards.values { s.add(r) }
        for j in economy.jobs.values { s.add(j.escrowed) }
        for (_, a) in accounts { s.add(a.balance) }
        for (_, v) in validators { s.add(v.selfStake) }
        for (_, d) in delegations { s.add(d) }
        for u in unbonding { s.add(u.amount) }
        for (_, a) in agents { if let t = a.trust { s.add(t.bond) } }
        return s.value
    }
}

/// Per-block message counts. Blocks start with none and a snapshot is taken between
/// blocks, so two states at the same block boundary always agree on them: they are not
/// state, and equality ignores them.
struct BlockMessages: Sendable, Equatable {
    var count: [PublicKey: Int] = [:]
    static func == (_: Self, _: Self) -> Bool { true }
}

/// A sum of amounts that stays nil once it has overflowed.
struct CheckedSum {
    private(set) var value: UInt64? = 0
    mutating func add(_ x: UInt64) {
        guard let v = value else { return }
        let (r, overflow) = v.addingReportingOverflow(x)
        value = overflow ? nil : r
    }
}
