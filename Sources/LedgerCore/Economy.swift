/// The rule versions the folds know. A chain starts at its genesis' version; a
/// governance proposal approved by a validator quorum switches it at a height, and the
/// folds pick the rules by the version in force at each height, so history written
/// under old rules replays under them (schemas/ECONOMY.md §Rule versions).
public enum RuleVersion {
    /// Version 1: the rules before the agent economy (a flat minimum fee paid to the
    /// proposer; no rewards, jobs, reputation or memes). Governance works under it, so
    /// a version 1 chain can upgrade.
    public static let legacy: UInt16 = 1
    /// Version 2: gas and a base fee, block rewards, jobs and escrow, disputes,
    /// reputation, memes and influence, delegator slashing.
    public static let economy: UInt16 = 2
    /// Version 3: the agent trust layer — bonded agent identities, reputation weighted by
    /// value and standing, bounded endorsements, funding origins (`TrustParameters`).
    public static let trust: UInt16 = 3
    public static let current: UInt16 = trust
    public static let supported: ClosedRange<UInt16> = 1 ... 3
}

/// Parameters of the agent economy (rule version 2), fixed at genesis (version 3) and
/// changeable by governance. A genesis of version 1 or 2 carries none: it gets these
/// defaults and rule version 1.
public struct EconomyParameters: Sendable, Hashable, Codable {
    /// Minted for every block and shared by its proposer and the validators by power.
    public var blockReward: UInt64 = 100
    /// The proposer's share of a block's rewards (minted plus fees not burned).
    public var proposerBonusBps: UInt32 = 1_000
    /// The share of the base-fee part of each fee that is burned.
    public var feeBurnBps: UInt32 = 5_000
    /// The base fee never falls below this (per unit of gas).
    public var baseFeeMin: UInt64 = 1
    /// Gas per block the base fee steers toward: above it the base fee rises by up to 1/8
    /// per block, below it falls by up to 1/8.
    public var gasTargetPerBlock: UInt64 = 1_000
    /// The largest commission a validator may charge its delegators.
    public var commissionMaxBps: UInt32 = 5_000
    /// The commission of a validator that never set one.
    public var defaultCommissionBps: UInt32 = 1_000
    /// Blocks after a result is submitted during which either party may open a dispute.
    public var disputeWindowBlocks: UInt64 = 100
    /// Arbiters drawn for a dispute.
    public var arbitersPerDispute: UInt32 = 3
    /// Reputation (milli-points) an agent needs to be drawn as an arbiter.
    public var arbiterMinReputation: Int64 = 5_000
    /// Reputation halves every this many blocks.
    public var reputationHalfLifeBlocks: UInt64 = 10_000
    /// Rule version 3's parameters: not part of this struct's encoding (a genesis carries
    /// none), encoded in the state's economy entry only under rule version 3.
    public var trust = TrustParameters()

    public init() {}

    enum CodingKeys: String, CodingKey {
        case blockReward, proposerBonusBps, feeBurnBps, baseFeeMin, gasTargetPerBlock, commissionMaxBps, defaultCommissionBps
        case disputeWindowBlocks, arbitersPerDispute, arbiterMinReputation, reputationHalfLifeBlocks, trust
    }

    /// The JSON genesis form: every field optional, defaults for the ones left out.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = EconomyParameters()
        blockReward = try c.decodeIfPresent(UInt64.self, forKey: .blockReward) ?? d.blockReward
        proposerBonusBps = try c.decodeIfPresent(UInt32.self, forKey: .proposerBonusBps) ?? d.proposerBonusBps
        feeBurnBps = try c.decodeIfPresent(UInt32.self, forKey: .feeBurnBps) ?? d.feeBurnBps
        baseFeeMin = try c.decodeIfPresent(UInt64.self, forKey: .baseFeeMin) ?? d.baseFeeMin
        gasTargetPerBlock = try c.decodeIfPresent(UInt64.self, forKey: .gasTargetPerBlock) ?? d.gasTargetPerBlock
        commissionMaxBps = try c.decodeIfPresent(UInt32.self, forKey: .commissionMaxBps) ?? d.commissionMaxBps
        defaultCommissionBps = try c.decodeIfPresent(UInt32.self, forKey: .defaultCommissionBps) ?? d.defaultCommissionBps
        disputeWindowBlocks = try c.decodeIfPresent(UInt64.self, forKey: .disputeWindowBlocks) ?? d.disputeWindowBlocks
        arbitersPerDispute = try c.decodeIfPresent(UInt32.self, forKey: .arbitersPerDispute) ?? d.arbitersPerDispute
        arbiterMinReputation = try c.decodeIfPresent(Int64.self, forKey: .arbiterMinReputation) ?? d.arbiterMinReputation
        reputationHalfLifeBlocks = try c.decodeIfPresent(UInt64.self, forKey: .reputationHalfLifeBlocks) ?? d.reputationHalfLifeBlocks
        trust = try c.decodeIfPresent(TrustParameters.self, forKey: .trust) ?? d.trust
    }

    public func encode(_ w: inout ByteWriter) {
        w.u64(blockReward); w.u32(proposerBonusBps); w.u32(feeBurnBps); w.u64(baseFeeMin); w.u64(gasTargetPerBlock)
        w.u32(commissionMaxBps); w.u32(defaultCommissionBps); w.u64(disputeWindowBlocks); w.u32(arbitersPerDispute)
        w.u64(UInt64(bitPattern: arbiterMinReputation)); w.u64(reputationHalfLifeBlocks)
    }

    public static func decode(_ r: inout ByteReader) throws(DecodeError) -> EconomyParameters {
        var p = EconomyParameters()
        p.blockReward = try r.u64("economy.blockReward"); p.proposerBonusBps = try r.u32("economy.proposerBonusBps")
        p.feeBurnBps = try r.u32("economy.feeBurnBps"); p.baseFeeMin = try r.u64("economy.baseFeeMin")
        p.gasTargetPerBlock = try r.u64("economy.gasTargetPerBlock"); p.commissionMaxBps = try r.u32("economy.commissionMaxBps")
        p.defaultCommissionBps = try r.u32("economy.defaultCommissionBps"); p.disputeWindowBlocks = try r.u64("economy.disputeWindowBlocks")
        p.arbitersPerDispute = try r.u32("economy.arbitersPerDispute")
        p.arbiterMinReputation = Int64(bitPattern: try r.u64("economy.arbiterMinReputation"))
        p.reputationHalfLifeBlocks = try r.u64("economy.reputationHalfLifeBlocks")
        try p.validate()
        return p
    }

    /// Bounds that keep every sum computed from these parameters far from overflow.
    public func validate() throws(DecodeError) {
        let bps = ChainParameters.basisPoints
        for (name, v) in [("proposerBonusBps", proposerBonusBps), ("feeBurnBps", feeBurnBps), ("commissionMaxBps", commissionMaxBps),
                          ("defaultCommissionBps", defaultCommissionBps)] where v > bps {
            throw .invalidValue(field: name, reason: "at most \(bps) basis points")
        }
        guard defaultCommissionBps <= commissionMaxBps else {
            throw .invalidValue(field: "defaultCommissionBps", reason: "above commissionMaxBps")
        }
        guard blockReward <= 1 << 40 else { throw .invalidValue(field: "blockReward", reason: "at most 2^40") }
        guard baseFeeMin >= 1, baseFeeMin <= 1 << 32 else { throw .invalidValue(field: "baseFeeMin", reason: "must be 1...2^32") }
        guard gasTargetPerBlock >= 1, gasTargetPerBlock <= 1 << 32 else {
            throw .invalidValue(field: "gasTargetPerBlock", reason: "must be 1...2^32")
        }
        guard disputeWindowBlocks >= 1, disputeWindowBlocks <= ChainParameters.unbondingBlocksMax else {
            throw .invalidValue(field: "disputeWindowBlocks", reason: "must be 1...\(ChainParameters.unbondingBlocksMax)")
        }
        guard arbitersPerDispute >= 1, arbitersPerDispute <= 15, arbitersPerDispute % 2 == 1 else {
            throw .invalidValue(field: "arbitersPerDispute", reason: "must be odd, 1...15")
        }
        guard (-(1 << 50) ... (1 << 50)).contains(arbiterMinReputation) else { throw .invalidValue(field: "arbiterMinReputation", reason: "out of range") }
        guard reputationHalfLifeBlocks >= 1, reputationHalfLifeBlocks <= ChainParameters.unbondingBlocksMax else {
            throw .invalidValue(field: "reputationHalfLifeBlocks", reason: "must be 1...\(ChainParameters.unbondingBlocksMax)")
        }
    }
}

/// The parameters governance may change, by name. Consensus-shaping parameters
/// (checkpointInterval, block limits) are not here: changing them needs a restart
/// of every validator, not a vote. Nor is minValidatorStake: raised above every
/// validator's stake it would leave no voting power, and the chain could never vote again.
public enum GovernableParameter {
    public static let minFeeMax: UInt64 = 1 << 20
    public static let names: [String] = [
        "minFee", "unbondingBlocks", "allianceAcceptWindowMs", "allianceDurationMaxMs",
        "slashFractionBps", "jailBlocks",
        "blockReward", "proposerBonusBps", "feeBurnBps", "baseFeeMin", "gasTargetPerBlock", "commissionMaxBps",
        "defaultCommissionBps", "disputeWindowBlocks", "arbitersPerDispute", "arbiterMinReputation", "reputationHalfLifeBlocks",
    ] + TrustParameters.names

    /// Sets `name` to `value` in copies of the two parameter sets and validates them.
    public static func apply(_ name: String, _ value: UInt64, chain: ChainParameters, economy: EconomyParameters)
        throws(DecodeError) -> (ChainParameters, EconomyParameters) {
        var c = chain, e = economy
        func u32(_ v: UInt64) throws(DecodeError) -> UInt32 {
            guard let x = UInt32(exactly: v) else { throw .invalidValue(field: name, reason: "must fit in 32 bits") }
            return x
        }
        switch name {
        case "minFee":
            // A fee no one can pay would refuse every later event, the vote to undo it too.
            guard value <= GovernableParameter.minFeeMax else { throw .invalidValue(field: name, reason: "at most \(GovernableParameter.minFeeMax)") }
            c.minFee = value
        case "unbondingBlocks": c.unbondingBlocks = value
        case "allianceAcceptWindowMs": c.allianceAcceptWindowMs = value
        case "allianceDurationMaxMs": c.allianceDurationMaxMs = value
        case "slashFractionBps": c.slashFractionBps = try u32(value)
        case "jailBlocks": c.jailBlocks = value
        case "blockReward": e.blockReward = value
        case "proposerBonusBps": e.proposerBonusBps = try u32(value)
        case "feeBurnBps": e.feeBurnBps = try u32(value)
        case "baseFeeMin": e.baseFeeMin = value
        case "gasTargetPerBlock": e.gasTargetPerBlock = value
        case "commissionMaxBps": e.commissionMaxBps = try u32(value)
        case "defaultCommissionBps": e.defaultCommissionBps = try u32(value)
        case "disputeWindowBlocks": e.disputeWindowBlocks = value
        case "arbitersPerDispute": e.arbitersPerDispute = try u32(value)
        case "arbiterMinReputation":
            guard let v = Int64(exactly: value) else { throw .invalidValue(field: name, reason: "out of range") }
            e.arbiterMinReputation = v
        case "reputationHalfLifeBlocks": e.reputationHalfLifeBlocks = value
        default:
            guard try e.trust.set(name, value) else {
                throw .invalidValue(field: "parameter", reason: "'\(name)' is not a governable parameter")
            }
        }
        try c.validate(); try e.validate(); try e.trust.validate()
        return (c, e)
    }
}
