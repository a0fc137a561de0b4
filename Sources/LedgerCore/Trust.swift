/// Parameters of the agent trust layer (rule version 3; schemas/ECONOMY.md §Rule version
/// 3). They start at these defaults when a chain enters rule version 3 (a genesis carries
/// none) and governance may change them only under that version: before it, the state
/// does not hold them, so nothing may change them there.
public struct TrustParameters: Sendable, Hashable, Codable {
    /// Locked from the balance by `agent.register`; returned `agentBondReturnBlocks` after
    /// `agent.deregister`; part of it burned when the agent loses a dispute.
    public var agentBond: UInt64 = 1_000
    public var agentBondReturnBlocks: UInt64 = 100
    /// The share of the bond a losing party of a dispute forfeits (burned).
    public var disputeBondSlashBps: UInt32 = 2_000
    /// One endorsement per endorser and subject within this many blocks.
    public var endorsementPeriodBlocks: UInt64 = 1_000
    /// The weight (basis points) of a bonded agent with no reputation: what its payment,
    /// rating or endorsement counts for, before its own standing adds to it.
    public var standingBaseBps: UInt32 = 1_000
    /// The reputation (milli-points) at which a bonded agent's weight reaches 100%.
    public var standingFullAt: Int64 = 50_000
    /// The escrowed value at which a job's reputation reaches its full size; smaller jobs
    /// earn in proportion.
    public var jobValueCap: UInt64 = 10_000
    /// An agent whose last signed event is more than this many blocks old is idle; more
    /// than `agentOfflineBlocks`, offline (`agent.heartbeat` keeps it active).
    public var agentIdleBlocks: UInt64 = 100
    public var agentOfflineBlocks: UInt64 = 1_000

    public init() {}

    enum CodingKeys: String, CodingKey {
        case agentBond, agentBondReturnBlocks, disputeBondSlashBps, endorsementPeriodBlocks, standingBaseBps, standingFullAt, jobValueCap
        case agentIdleBlocks, agentOfflineBlocks
    }

    /// The JSON genesis form (`economy.trust`): every field optional, defaults for the ones left out.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrustParameters()
        agentBond = try c.decodeIfPresent(UInt64.self, forKey: .agentBond) ?? d.agentBond
        agentBondReturnBlocks = try c.decodeIfPresent(UInt64.self, forKey: .agentBondReturnBlocks) ?? d.agentBondReturnBlocks
        disputeBondSlashBps = try c.decodeIfPresent(UInt32.self, forKey: .disputeBondSlashBps) ?? d.disputeBondSlashBps
        endorsementPeriodBlocks = try c.decodeIfPresent(UInt64.self, forKey: .endorsementPeriodBlocks) ?? d.endorsementPeriodBlocks
        standingBaseBps = try c.decodeIfPresent(UInt32.self, forKey: .standingBaseBps) ?? d.standingBaseBps
        standingFullAt = try c.decodeIfPresent(Int64.self, forKey: .standingFullAt) ?? d.standingFullAt
        jobValueCap = try c.decodeIfPresent(UInt64.self, forKey: .jobValueCap) ?? d.jobValueCap
        agentIdleBlocks = try c.decodeIfPresent(UInt64.self, forKey: .agentIdleBlocks) ?? d.agentIdleBlocks
        agentOfflineBlocks = try c.decodeIfPresent(UInt64.self, forKey: .agentOfflineBlocks) ?? d.agentOfflineBlocks
    }

    public static let names: [String] = [
        "agentBond", "agentBondReturnBlocks", "disputeBondSlashBps", "endorsementPeriodBlocks",
        "standingBaseBps", "standingFullAt", "jobValueCap", "agentIdleBlocks", "agentOfflineBlocks",
    ]

    public func encode(_ w: inout ByteWriter) {
        w.u64(agentBond); w.u64(agentBondReturnBlocks); w.u32(disputeBondSlashBps); w.u64(endorsementPeriodBlocks)
        w.u32(standingBaseBps); w.u64(UInt64(bitPattern: standingFullAt)); w.u64(jobValueCap)
        w.u64(agentIdleBlocks); w.u64(agentOfflineBlocks)
    }

    public static func decode(_ r: inout ByteReader) throws(DecodeError) -> TrustParameters {
        var p = TrustParameters()
        p.agentBond = try r.u64("trust.agentBond"); p.agentBondReturnBlocks = try r.u64("trust.agentBondReturnBlocks")
        p.disputeBondSlashBps = try r.u32("trust.disputeBondSlashBps"); p.endorsementPeriodBlocks = try r.u64("trust.endorsementPeriodBlocks")
        p.standingBaseBps = try r.u32("trust.standingBaseBps"); p.standingFullAt = Int64(bitPattern: try r.u64("trust.standingFullAt"))
        p.jobValueCap = try r.u64("trust.jobValueCap")
        p.agentIdleBlocks = try r.u64("trust.agentIdleBlocks"); p.agentOfflineBlocks = try r.u64("trust.agentOfflineBlocks")
        try p.validate()
        return p
    }

    /// Bounds that keep every product in the reputation formula inside 64 bits.
    public func validate() throws(DecodeError) {
        let bps = ChainParameters.basisPoints
        guard agentBond <= 1 << 40 else { throw .invalidValue(field: "agentBond", reason: "at most 2^40") }
        for (name, v) in [("agentBondReturnBlocks", agentBondReturnBlocks), ("endorsementPeriodBlocks", endorsementPeriodBlocks),
                          ("agentIdleBlocks", agentIdleBlocks), ("agentOfflineBlocks", agentOfflineBlocks)]
            where v < 1 || v > ChainParameters.unbondingBlocksMax {
            throw .invalidValue(field: name, reason: "must be 1...\(ChainParameters.unbondingBlocksMax)")
        }
        for (name, v) in [("disputeBondSlashBps", disputeBondSlashBps), ("standingBaseBps", standingBaseBps)] where v > bps {
            throw .invalidValue(field: name, reason: "at most \(bps) basis points")
        }
        guard (1 ... (1 << 40)).contains(standingFullAt) else { throw .invalidValue(field: "standingFullAt", reason: "must be 1...2^40") }
        guard (1 ... (1 << 50)).contains(jobValueCap) else { throw .invalidValue(field: "jobValueCap", reason: "must be 1...2^50") }
        guard agentIdleBlocks < agentOfflineBlocks else { throw .invalidValue(field: "agentOfflineBlocks", reason: "must be above agentIdleBlocks") }
    }

    /// Sets a trust parameter by name (`GovernableParameter.apply`); nil for another name.
    mutating func set(_ name: String, _ value: UInt64) throws(DecodeError) -> Bool {
        func u32(_ v: UInt64) throws(DecodeError) -> UInt32 {
            guard let x = UInt32(exactly: v) else { throw .invalidValue(field: name, reason: "must fit in 32 bits") }
            return x
        }
        switch name {
        case "agentBond": agentBond = value
        case "agentBondReturnBlocks": agentBondReturnBlocks = value
        case "disputeBondSlashBps": disputeBondSlashBps = try u32(value)
        case "endorsementPeriodBlocks": endorsementPeriodBlocks = value
        case "standingBaseBps": standingBaseBps = try u32(value)
        case "standingFullAt":
            guard let v = Int64(exactly: value) else { throw .invalidValue(field: name, reason: "out of range") }
            standingFullAt = v
        case "jobValueCap": jobValueCap = value
        case "agentIdleBlocks": agentIdleBlocks = value
        case "agentOfflineBlocks": agentOfflineBlocks = value
        default: return false
        }
        return true
    }
}
