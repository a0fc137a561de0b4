import LedgerCore

public enum JobStatus: UInt8, Sendable, CustomStringConvertible {
    /// Posted, no worker yet.
    case posted = 1
    /// A worker accepted; results and releases may follow.
    case accepted = 2
    /// Every milestone paid to the worker.
    case completed = 3
    /// The client took back every milestone not paid (after the deadline, or with no worker).
    case refunded = 4
    /// A dispute is open: only arbiter votes and the resolution may follow.
    case disputed = 5
    /// Arbiters decided the split of the remaining escrow.
    case resolved = 6
    public var description: String {
        switch self {
        case .posted: "posted"
        case .accepted: "accepted"
        case .completed: "completed"
        case .refunded: "refunded"
        case .disputed: "disputed"
        case .resolved: "resolved"
        }
    }
    /// Closed jobs hold no escrow and may be rated.
    public var isClosed: Bool { self == .completed || self == .refunded || self == .resolved }
}

public struct Milestone: Sendable, Hashable {
    public var amount: UInt64
    /// The hash of the submitted result (`Bytes32.zero` until one is submitted).
    public var result: Hash32 = .zero
    public var submittedAt: Height = 0
    /// Paid to the worker and back to the client; both 0 while the milestone is unsettled.
    public var paid: UInt64 = 0
    public var refunded: UInt64 = 0
    public var settled: Bool = false
    public init(amount: UInt64) { self.amount = amount }
}

public struct Dispute: Sendable, Hashable {
    public var openedBy: PublicKey
    public var openedAt: Height
    public var reason: String
    /// Drawn when the dispute opened (`LedgerState.drawArbiters`), in draw order.
    public var arbiters: [PublicKey]
    /// Arbiter → the worker's share of the remaining escrow, in basis points.
    public var votes: [PublicKey: UInt32]
    /// The decided share (0 until resolved).
    public var workerShareBps: UInt32
}

public struct Job: Sendable, Hashable {
    public var id: JobID
    public var client: PublicKey
    public var spec: JobSpec
    public var postedAt: Height
    public var worker: PublicKey = .zero
    public var status: JobStatus = .posted
    public var funded = false
    /// Funds locked for this job and not yet paid out: counted in the total supply.
    public var escrowed: UInt64 = 0
    public var milestones: [Milestone]
    public var dispute: Dispute? = nil
    public var clientRated = false
    public var workerRated = false
    /// Rule version 3: the evaluator, named at posting or drawn after acceptance (zero
    /// until drawn; always zero for a job without an evaluation).
    public var evaluator: PublicKey = .zero
    public var total: UInt64 { milestones.reduce(0) { $0 &+ $1.amount } }
    public var unsettled: UInt64 { milestones.filter { !$0.settled }.reduce(0) { $0 &+ $1.amount } }
}

/// A reputation score in milli-points as of a height; `LedgerState.reputation(of:at:)`
/// applies the decay (schemas/ECONOMY.md §Reputation).
public struct Reputation: Sendable, Hashable {
    public var value: Int64
    public var asOf: Height
}

public struct MemeState: Sendable, Hashable {
    public var id: MemeID
    public var author: PublicKey
    public var meme: Meme
    public var postedAt: Height
    /// Reaction code → count.
    public var reactions: [UInt8: UInt64]
    /// Who reacted (each once), sorted.
    public var reactors: [PublicKey]
}

/// What the influence score is computed from (`LedgerState.influence(of:)`).
public struct InfluenceCounters: Sendable, Hashable {
    public var memesPosted: UInt64 = 0
    /// Reactions others gave to this author's memes, by reaction code.
    public var reactionsReceived: [UInt8: UInt64] = [:]
    public var interactionsReceived: UInt64 = 0
    public var interactionsMade: UInt64 = 0
}

public enum ProposalStatus: UInt8, Sendable, CustomStringConvertible {
    case pending = 1, activated = 2, rejected = 3
    public var description: String {
        switch self { case .pending: "pending"; case .activated: "activated"; case .rejected: "rejected" }
    }
}

public struct ProposalState: Sendable, Hashable {
    public var id: ProposalID
    public var proposer: ValidatorID
    public var proposal: GovernanceProposal
    public var proposedAt: Height
    /// Validator → approve.
    public var votes: [ValidatorID: Bool]
    public var status: ProposalStatus
}

/// One delegator's loss in a slashing (rule version 2 slashes delegations too).
public struct DelegatorSlash: Sendable, Hashable {
    public var validator: ValidatorID
    public var delegator: PublicKey
    public var amount: UInt64
    public var evidence: EventID
}

/// An ordered pair of keys: a client and its worker, an endorser and its subject.
public struct PairKey: Sendable, Hashable, Comparable {
    public var from: PublicKey
    public var to: PublicKey
    public init(from: PublicKey, to: PublicKey) { self.from = from; self.to = to }
    public static func < (a: Self, b: Self) -> Bool { a.from != b.from ? a.from < b.from : a.to < b.to }
}

/// What rule version 3 counts per ordered pair (schemas/ECONOMY.md §Rule version 3).
public struct PairRecord: Sendable, Hashable {
    /// Jobs settled with `from` the client and `to` the worker: the n-th earns 1/n.
    public var jobs: UInt64 = 0
    /// The height of `from`'s last endorsement of `to` (0: never).
    public var endorsedAt: Height = 0
    public init(jobs: UInt64 = 0, endorsedAt: Height = 0) { self.jobs = jobs; self.endorsedAt = endorsedAt }
}

public struct RuleEpoch: Sendable, Hashable {
    public var from: Height
    public var version: UInt16
}

/// Everything the agent economy adds to the projections (rule version 2, and
/// governance). Encoded after the version 2 state layout only when `present`, so logs
/// written before the economy existed keep their state roots (schemas/FORMAT.md §7).
public struct EconomyState: Sendable, Equatable {
    /// Whether the economy section is part of the state (genesis version 3, or the
    /// first governance event of an older chain).
    public internal(set) var present: Bool
    /// The rule version in force at the current height.
    public internal(set) var ruleVersion: UInt16
    /// Every rule version the chain has run under, from which height.
    public internal(set) var ruleHistory: [RuleEpoch]
    public internal(set) var parameters: EconomyParameters
    /// Per unit of gas, for the current block.
    public internal(set) var baseFee: UInt64
    /// Gas of the events applied in the current block.
    public internal(set) var blockGasUsed: UInt64
    /// Fees of the current block not burned: shared out when the next block begins.
    public internal(set) var feePool: UInt64
    /// The validator that proposed the current block (zero before the first).
    public internal(set) var lastProposer: ValidatorID
    public internal(set) var minted: UInt64
    public internal(set) var feesBurned: UInt64
    /// Rewards earned and not yet claimed.
    public internal(set) var rewards: TrackedMap<PublicKey, UInt64>
    public internal(set) var commissions: TrackedMap<ValidatorID, UInt32>
    public internal(set) var delegatorSlashes: TrackedList<DelegatorSlash>
    public internal(set) var jobs: TrackedMap<JobID, Job>
    public internal(set) var reputation: TrackedMap<PublicKey, Reputation>
    public internal(set) var memes: TrackedMap<MemeID, MemeState>
    public internal(set) var influence: TrackedMap<PublicKey, InfluenceCounters>
    public internal(set) var proposals: TrackedMap<ProposalID, ProposalState>
    /// Rule version 3: the funding origin of each account created by a transfer under it
    /// (an account without an entry is its own origin).
    public internal(set) var origins: TrackedMap<PublicKey, PublicKey>
    /// Rule version 3: job and endorsement counts per ordered pair of keys.
    public internal(set) var pairs: TrackedMap<PairKey, PairRecord>
    /// Whether the trust layer's state (its parameters, origins and pairs) is part of
    /// the state: from the height rule version 3 rules.
    public var hasTrust: Bool { ruleVersion >= RuleVersion.trust }

    init(present: Bool, ruleVersion: UInt16, parameters: EconomyParameters) {
        self.present = present; self.ruleVersion = ruleVersion; self.parameters = parameters
        ruleHistory = [RuleEpoch(from: 0, version: ruleVersion)]
        baseFee = parameters.baseFeeMin; blockGasUsed = 0; feePool = 0; lastProposer = .zero; minted = 0; feesBurned = 0
        rewards = [:]; commissions = [:]; delegatorSlashes = []; jobs = [:]; reputation = [:]; memes = [:]; influence = [:]; proposals = [:]
        origins = [:]; pairs = [:]
    }

}
