import LedgerAgents
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore

/// The `demo` workload: many agents transferring, staking, delegating, registering,
/// proposing, accepting and rejecting alliances (some left to expire), a validator
/// key rotation, and a share of invalid submissions that the producer must refuse.
/// The same seed, agent count and event count always give byte-identical logs.
public struct DemoWorkload {
    public struct Summary: Sendable, Codable {
        public var seed: UInt64
        public var agents: Int
        public var submitted: Int
        public var committed: Int
        public var refusedAsIntended: Int
        /// Invalid submissions that were admitted (must be 0) and valid ones refused.
        public var invalidAdmitted: Int
        public var validRefused: Int
        public var refusals: [String: Int]
        public var kinds: [String: Int]
        public var blocks: UInt64
        /// Alliances by final status (pending, active, rejected, dissolved, expired).
        public var alliances: [String: Int]
        public var stateRoot: String
        public var genesisHash: String
    }

    public static let chain = try! ChainID("chaosledger-demo")
    public static let genesisTimeMs: UInt64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z
    public static let blockIntervalMs: UInt64 = 2_000
    /// The purpose of proposals the workload never answers, so that they expire.
    static let lapse = "an offer left to lapse"

    public var seed: UInt64
    public var agents: Int
    public var events: Int

    public init(seed: UInt64, agents: Int, events: Int) {
        self.seed = seed; self.agents = max(4, agents); self.events = events
    }

    public func producerKey() -> SigningKey { SigningKey.derived("demo-\(seed)-producer") }
    func agentKey(_ i: Int) -> SigningKey { SigningKey.derived("demo-\(seed)-agent-\(i)") }

    public func genesis() -> Genesis {
        var params = ChainParameters()
        params.blockEventsMax = 100
        params.checkpointInterval = 10
        params.minValidatorStake = 1_000
        params.unbondingBlocks = 5
        params.allianceAcceptWindowMs = 30_000
        params.allianceDurationMaxMs = 120_000
        params.jailBlocks = 4
        var economy = EconomyParameters()
        economy.disputeWindowBlocks = 30
        economy.reputationHalfLifeBlocks = 500
        let allocations = (0 ..< agents).map { Genesis.Allocation(account: agentKey($0).publicKey, amount: 10_000_000) }
        // The producer's stake outweighs everything the workload can bond, so its lone
        // signature stays a quorum (> 2/3) as demo validators join.
        let producer = Genesis.Validator(key: producerKey().publicKey, name: "solo-producer", personality: "lawful", stake: 1_000_000_000_000)
        return try! Genesis(chainID: Self.chain, timestampMs: Self.genesisTimeMs, parameters: params,
                            validators: [producer], allocations: allocations, economy: economy)
    }

    public static func clock(genesisMs: UInt64) -> (Height) -> UInt64 { { h in genesisMs + h.value * blockIntervalMs } }

    /// Writes genesis into `log` (which must be empty) and runs the workload through a producer.
    public func run(into log: any EventLog) throws -> Summary {
        let r = try DemoRun(self, log: log)
        r.begin()
        while r.summary.submitted < events { r.randomStep() }
        // Every economy kind at least once, in order.
        r.economyScript()
        // Closing phase: a validator retires and an agent deregisters.
        if r.validatorCount >= 3 { r.submit(2, .validatorRetire) }
        r.submit(agents - 2, .agentDeregister)
        try r.producer.commit()
        return r.finish()
    }
}

/// Deterministic meme and personality templates (producer strategies come with the
/// agent-economy issue).
public enum DemoMemes {
    public static let personalities = ["lawful", "memetic", "loyal", "chaotic"]
    public static let purposes = ["meme syndicate", "validator pact", "compute co-op", "chaos caucus", "data guild"]
    static let templates = [
        "much block, very consensus, wow", "one does not simply fork ChaosLedger", "this is fine (the log is append-only)",
        "distracted validator looks at a shinier meme", "always has been hash-chained", "stonks: stake goes up",
    ]
    static let capabilityPool = ["inference", "training", "storage", "translation", "audit", "memes", "routing", "search"]

    public static func pick(height: Height) -> String { "#\(height) \(templates[Int(height.value % UInt64(templates.count))])" }

    static func capabilities(_ i: Int) -> [String] {
        let n = 1 + i % 3
        return (0 ..< n).map { capabilityPool[(i + $0 * 3) % capabilityPool.count] }
    }
}
