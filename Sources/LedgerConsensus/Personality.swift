import LedgerCore
import LedgerProjections

/// A valid fresh proposal, as a validator's personality sees it before preparing it.
public struct Proposal: Sendable {
    public let block: ProposedBlock
    public let view: View
    public let events: [Envelope]
    /// The state the block applies to: alliances, validators, reputations.
    public let parent: LedgerState
    /// The judging validator (its account key).
    public let judge: ValidatorID
    /// Whether this judge already refused a fresh proposal at this height (in an earlier
    /// view). A personality that refuses by chance lets such a height through, so it
    /// costs at most one view per height however many validators are down.
    public let refusedBefore: Bool

    public init(block: ProposedBlock, view: View, events: [Envelope], parent: LedgerState, judge: ValidatorID, refusedBefore: Bool = false) {
        self.block = block; self.view = view; self.events = events; self.parent = parent; self.judge = judge
        self.refusedBefore = refusedBefore
    }
    /// The proposer's validator id (its consensus key mapped through the state).
    public var proposer: ValidatorID { parent.consensusKeys[block.header.proposer] ?? ValidatorID(block.header.proposer) }
}

public struct Judgement: Sendable, Hashable {
    public var accept: Bool
    public var reason: String
    public init(accept: Bool, reason: String) { self.accept = accept; self.reason = reason }
    public static func accept(_ why: String) -> Judgement { .init(accept: true, reason: why) }
    public static func refuse(_ why: String) -> Judgement { .init(accept: false, reason: why) }
}

/// The ChaosChain side of a validator: a pure judgement applied to a proposal that is
/// already known to be valid. It can only withhold a prepare — it never makes an
/// invalid block acceptable — and its verdict becomes a signed opinion event, so replay
/// never runs it again. Implementations live in LedgerAgents.
public protocol Personality: Sendable {
    var name: String { get }
    func judge(_ p: Proposal) -> Judgement
}

/// What a producer attaches to its blocks (the meme in the header).
public protocol ProducerStrategy: Sendable {
    func meme(height: Height, view: View) -> [UInt8]
}

/// Accepts every valid block; attaches no meme.
public struct Lawful: Personality, ProducerStrategy {
    public init() {}
    public var name: String { "lawful" }
    public func judge(_ p: Proposal) -> Judgement { .accept("valid") }
    public func meme(height: Height, view: View) -> [UInt8] { [] }
}
