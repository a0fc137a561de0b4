/// Chain parameters fixed at genesis (governance changes them in a later issue).
public struct ChainParameters: Sendable, Hashable, Codable {
    /// Smallest fee an event may offer.
    public var minFee: UInt64
    /// Self-bonded stake a validator needs to hold voting power.
    public var minValidatorStake: UInt64
    /// Blocks an unbonding or undelegation waits before the funds return.
    public var unbondingBlocks: UInt64
    /// How long an alliance proposal waits for acceptance, in block-time milliseconds.
    public var allianceAcceptWindowMs: UInt64
    /// Largest alliance duration, in milliseconds.
    public var allianceDurationMaxMs: UInt64
    /// A projection checkpoint is stored every this many blocks. It is also the epoch
    /// length: the voting power that certifies blocks is fixed at the start of each
    /// epoch (heights 1, K+1, 2K+1, … for K = this interval) from the state before that
    /// block, so changes to the validator set take effect at the next epoch.
    public var checkpointInterval: UInt64
    public var blockEventsMax: UInt32
    public var blockBytesMax: UInt32
    /// Share of a validator's self-stake burned for one proven equivocation, in basis
    /// points (at most 10,000 = all of it).
    public var slashFractionBps: UInt32
    /// Blocks a slashed validator stays jailed before it may unjail.
    public var jailBlocks: UInt64

    public init(minFee: UInt64 = 1, minValidatorStake: UInt64 = 1_000, unbondingBlocks: UInt64 = 10,
                allianceAcceptWindowMs: UInt64 = 30_000, allianceDurationMaxMs: UInt64 = 86_400_000,
                checkpointInterval: UInt64 = 100, blockEventsMax: UInt32 = 1_000, blockBytesMax: UInt32 = 1 << 20,
                slashFractionBps: UInt32 = 1_000, jailBlocks: UInt64 = 100) {
        self.minFee = minFee; self.minValidatorStake = minValidatorStake; self.unbondingBlocks = unbondingBlocks
        self.allianceAcceptWindowMs = allianceAcceptWindowMs; self.allianceDurationMaxMs = allianceDurationMaxMs
        self.checkpointInterval = checkpointInterval; self.blockEventsMax = blockEventsMax; self.blockBytesMax = blockBytesMax
        self.slashFractionBps = slashFractionBps; self.jailBlocks = jailBlocks
    }

    enum CodingKeys: String, CodingKey {
        case minFee, minValidatorStake, unbondingBlocks, allianceAcceptWindowMs, allianceDurationMaxMs
        case checkpointInterval, blockEventsMax, blockBytesMax, slashFractionBps, jailBlocks
    }

    /// JSON genesis files written before slashing existed have no `slashFractionBps` or
    /// `jailBlocks`: those two take their defaults; the other eight stay required.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ChainParameters()
        self.init(minFee: try c.decode(UInt64.self, forKey: .minFee),
                  minValidatorStake: try c.decode(UInt64.self, forKey: .minValidatorStake),
                  unbondingBlocks: try c.decode(UInt64.self, forKey: .unbondingBlocks),
                  allianceAcceptWindowMs: try c.decode(UInt64.self, forKey: .allianceAcceptWindowMs),
                  allianceDurationMaxMs: try c.decode(UInt64.self, forKey: .allianceDurationMaxMs),
                  checkpointInterval: try c.decode(UInt64.self, forKey: .checkpointInterval),
                  blockEventsMax: try c.decode(UInt32.self, forKey: .blockEventsMax),
                  blockBytesMax: try c.decode(UInt32.self, forKey: .blockBytesMax),
                  slashFractionBps: try c.decodeIfPresent(UInt32.self, forKey: .slashFractionBps) ?? d.slashFractionBps,
                  jailBlocks: try c.decodeIfPresent(UInt64.self, forKey: .jailBlocks) ?? d.jailBlocks)
    }

    /// The current layout (genesis version 2, snapshot version 2).
    public func encode(_ w: inout ByteWriter) {
        w.u64(minFee); w.u64(minValidatorStake); w.u64(unbondingBlocks); w.u64(allianceAcceptWindowMs)
        w.u64(allianceDurationMaxMs); w.u64(checkpointInterval); w.u32(blockEventsMax); w.u32(blockBytesMax)
        w.u32(slashFractionBps); w.u64(jailBlocks)
    }

    /// Decodes the layout of `genesisVersion`: version 1 ends after `blockBytesMax`, and
    /// its slashing parameters take their defaults (upcasting); version 2 carries them.
    public static func decode(_ r: inout ByteReader, genesisVersion: UInt16 = Genesis.formatVersion) throws(DecodeError) -> ChainParameters {
        var p = ChainParameters(
            minFee: try r.u64("params.minFee"), minValidatorStake: try r.u64("params.minValidatorStake"),
            unbondingBlocks: try r.u64("params.unbondingBlocks"), allianceAcceptWindowMs: try r.u64("params.allianceAcceptWindowMs"),
            allianceDurationMaxMs: try r.u64("params.allianceDurationMaxMs"), checkpointInterval: try r.u64("params.checkpointInterval"),
            blockEventsMax: try r.u32("params.blockEventsMax"), blockBytesMax: try r.u32("params.blockBytesMax"))
        if genesisVersion >= 2 {
            p.slashFractionBps = try r.u32("params.slashFractionBps")
            p.jailBlocks = try r.u64("params.jailBlocks")
        }
        try p.validate()
        return p
    }

    /// Upper bounds that keep every height and time computed from these parameters far
    /// from overflow (a year of blocks at 1/ms, a thousand years of block time).
    public static let unbondingBlocksMax: UInt64 = 1 << 40
    public static let durationMsMax: UInt64 = 1 << 45
    /// 100% in basis points.
    public static let basisPoints: UInt32 = 10_000

    public func validate() throws(DecodeError) {
        guard unbondingBlocks <= Self.unbondingBlocksMax else {
            throw .invalidValue(field: "unbondingBlocks", reason: "at most \(Self.unbondingBlocksMax)")
        }
        guard allianceAcceptWindowMs <= Self.durationMsMax, allianceDurationMaxMs <= Self.durationMsMax else {
            throw .invalidValue(field: "allianceAcceptWindowMs/allianceDurationMaxMs", reason: "at most \(Self.durationMsMax)")
        }
        guard slashFractionBps <= Self.basisPoints else {
            throw .invalidValue(field: "slashFractionBps", reason: "at most \(Self.basisPoints) (all of the self-stake)")
        }
        guard jailBlocks <= Self.unbondingBlocksMax else {
            throw .invalidValue(field: "jailBlocks", reason: "at most \(Self.unbondingBlocksMax)")
        }
        guard checkpointInterval >= 1 else { throw .invalidValue(field: "checkpointInterval", reason: "must be at least 1") }
        guard blockEventsMax >= 1, Int(blockEventsMax) <= Limits.blockEventsMax else {
            throw .invalidValue(field: "blockEventsMax", reason: "must be 1...\(Limits.blockEventsMax)")
        }
        guard blockBytesMax >= UInt32(Limits.eventBytesMax), Int(blockBytesMax) <= Limits.blockBytesMax else {
            throw .invalidValue(field: "blockBytesMax", reason: "must be \(Limits.eventBytesMax)...\(Limits.blockBytesMax)")
        }
    }
}

/// The genesis document (schemas/FORMAT.md §6). Its canonical bytes are stored in the
/// log's metadata; their BLAKE2b-256 is the genesis hash, which block 1 names as parent.
/// The state commitment a genesis chooses (FORMAT.md §7.2).
public enum StateCommitmentRule {
    /// BLAKE2b-256 of the whole canonical state (§7), every block.
    public static let flat: UInt8 = 1
    /// A sparse Merkle tree with one leaf per entity (§7.2).
    public static let tree: UInt8 = 2
}

public struct Genesis: Sendable, Hashable {
    public struct Validator: Sendable, Hashable {
        public var key: PublicKey
        public var name: String
        public var personality: String
        public var stake: UInt64
        public init(key: PublicKey, name: String, personality: String, stake: UInt64) {
            self.key = key; self.name = name; self.personality = personality; self.stake = stake
        }
    }
    public struct Allocation: Sendable, Hashable {
        public var account: PublicKey
        public var amount: UInt64
        public init(account: PublicKey, amount: UInt64) { self.account = account; self.amount = amount }
    }

    /// Version 2 added `slashFractionBps` and `jailBlocks` to the parameters. Version 1
    /// documents still decode, with those two at their defaults. Version 3 added the rule
    /// version and the economy parameters after the allocations; older documents get
    /// rule version 1 and the default economy. Version 4 added the state commitment
    /// after the economy parameters; older documents commit flat. A version 4 document of
    /// rule version 3 (the trust layer) carries the trust parameters after the commitment.
    public static let formatVersion: UInt16 = 4
    public static let oldestReadableVersion: UInt16 = 1

    public var chainID: ChainID
    public var timestampMs: UInt64
    public var parameters: ChainParameters
    public var validators: [Validator]
    public var allocations: [Allocation]
    /// The rule version the chain starts under (`RuleVersion`).
    public var ruleVersion: UInt16
    public var economy: EconomyParameters
    /// How the chain commits to its state: `StateCommitmentRule.flat` (1) or `.tree` (2).
    public var stateCommitment: UInt8
    /// The format version of the bytes this document was decoded from (`formatVersion`
    /// for one built in code). Before version 3 the state has no economy section.
    public internal(set) var encodedVersion: UInt16 = Genesis.formatVersion

    /// Sorts validators and allocations by key, so the same document always has the same bytes.
    public init(chainID: ChainID, timestampMs: UInt64, parameters: ChainParameters,
                validators: [Validator], allocations: [Allocation], ruleVersion: UInt16 = RuleVersion.current,
                economy: EconomyParameters = EconomyParameters(),
                stateCommitment: UInt8 = StateCommitmentRule.tree) throws(DecodeError) {
        self.chainID = chainID; self.timestampMs = timestampMs; self.parameters = parameters
        self.ruleVersion = ruleVersion; self.economy = economy; self.stateCommitment = stateCommitment
        self.validators = validators.sorted { $0.key < $1.key }
        self.allocations = allocations.sorted { $0.account < $1.account }
        try validate()
    }

    func validate() throws(DecodeError) {
        try parameters.validate()
        try economy.validate()
        guard RuleVersion.supported.contains(ruleVersion) else {
            throw .invalidValue(field: "genesis.ruleVersion", reason: "must be in \(RuleVersion.supported)")
        }
        // Before rule version 3 the state holds no trust parameters: a chain that upgrades
        // starts them at their defaults, so a genesis may not set them.
        try economy.trust.validate()
        guard ruleVersion >= RuleVersion.trust || economy.trust == TrustParameters() else {
            throw .invalidValue(field: "genesis.economy.trust", reason: "trust parameters need rule version \(RuleVersion.trust)")
        }
        guard stateCommitment == StateCommitmentRule.flat || stateCommitment == StateCommitmentRule.tree else {
            throw .invalidValue(field: "genesis.stateCommitment", reason: "must be 1 (flat) or 2 (tree)")
        }
        guard !validators.isEmpty, validators.count <= Limits.genesisValidatorsMax else {
            throw .invalidValue(field: "genesis.validators", reason: "need 1...\(Limits.genesisValidatorsMax) validators")
        }
        guard allocations.count <= Limits.genesisAllocationsMax else {
            throw .tooLong(field: "genesis.allocations", length: allocations.count, max: Limits.genesisAllocationsMax)
        }
        for (a, b) in zip(validators, validators.dropFirst()) where !(a.key < b.key) {
            throw .invalidValue(field: "genesis.validators", reason: "duplicate validator \(b.key.hex)")
        }
        for (a, b) in zip(allocations, allocations.dropFirst()) where !(a.account < b.account) {
            throw .invalidValue(field: "genesis.allocations", reason: "duplicate account \(b.account.hex)")
        }
        for v in validators {
            guard v.stake >= parameters.minValidatorStake else {
                throw .invalidValue(field: "genesis.validators", reason: "\(v.name) stakes less than minValidatorStake")
            }
            guard v.name.utf8.count <= Limits.nameBytesMax, v.personality.utf8.count <= Limits.personalityBytesMax else {
                throw .invalidValue(field: "genesis.validators", reason: "\(v.name): name or personality too long")
            }
        }
        var total: UInt64 = 0
        for x in validators.map(\.stake) + allocations.map(\.amount) {
            let (s, o) = total.addingReportingOverflow(x)
            guard !o else { throw .invalidValue(field: "genesis", reason: "total supply overflows UInt64") }
            total = s
        }
    }

    /// The document's bytes in the version it was decoded from (version 2 for a version
    /// 1 document; version 4 for one built in code).
    public func encoded() -> [UInt8] { encoded(version: max(2, encodedVersion)) }

    /// The bytes in format `version` (2 to 4). Version 2 has no rule version or economy
    /// parameters, so it can only hold a rule version 1 chain with the default economy;
    /// versions 2 and 3 only a flat-committed chain.
    public func encoded(version: UInt16) -> [UInt8] {
        precondition((2 ... 4).contains(version), "genesis encodes as version 2, 3 or 4")
        precondition(version >= 3 || (ruleVersion == RuleVersion.legacy && economy == EconomyParameters()),
                     "a version 2 genesis has rule version 1 and the default economy")
        precondition(version >= 4 || stateCommitment == StateCommitmentRule.flat, "before version 4 a genesis commits flat")
        precondition(version >= 4 || ruleVersion < RuleVersion.trust, "rule version 3 needs a version 4 genesis")
        var w = ByteWriter(capacity: 256 + validators.count * 128 + allocations.count * 40)
        w.u16(version)
        w.b32(chainID.raw)
        w.u64(timestampMs)
        parameters.encode(&w)
        w.u32(UInt32(validators.count))
        for v in validators { w.b32(v.key); w.string(v.name); w.string(v.personality); w.u64(v.stake) }
        w.u32(UInt32(allocations.count))
        for a in allocations { w.b32(a.account); w.u64(a.amount) }
        if version >= 3 {
            w.u16(ruleVersion)
            economy.encode(&w)
        }
        if version >= 4 { w.u8(stateCommitment) }
        if version >= 4, ruleVersion >= RuleVersion.trust { economy.trust.encode(&w) }
        return w.bytes
    }

    /// Decodes versions 1 to 4. A decoded document re-encodes in its own version, so
    /// the genesis hash is always the hash of the stored bytes, never of a re-encoding.
    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Genesis {
        guard bytes.count <= Limits.genesisBytesMax else {
            throw .tooLong(field: "genesis", length: bytes.count, max: Limits.genesisBytesMax)
        }
        var r = ByteReader(bytes)
        let v = try r.u16("genesis.version")
        guard v >= oldestReadableVersion, v <= formatVersion else { throw .unsupportedVersion(field: "genesis", version: v) }
        let chain = try ChainID(raw: try r.b32("genesis.chainID"))
        let ts = try r.u64("genesis.timestamp")
        let params = try ChainParameters.decode(&r, genesisVersion: v)
        let nv = Int(try r.u32("genesis.validators"))
        guard nv <= Limits.genesisValidatorsMax else { throw .tooLong(field: "genesis.validators", length: nv, max: Limits.genesisValidatorsMax) }
        var vals: [Validator] = []
        for _ in 0 ..< nv {
            vals.append(Validator(key: try r.b32("genesis.validator.key"),
                                  name: try r.string("genesis.validator.name", max: Limits.nameBytesMax),
                                  personality: try r.string("genesis.validator.personality", max: Limits.personalityBytesMax),
                                  stake: try r.u64("genesis.validator.stake")))
        }
        let na = Int(try r.u32("genesis.allocations"))
        guard na <= Limits.genesisAllocationsMax else { throw .tooLong(field: "genesis.allocations", length: na, max: Limits.genesisAllocationsMax) }
        var allocs: [Allocation] = []
        for _ in 0 ..< na { allocs.append(Allocation(account: try r.b32("genesis.allocation.account"), amount: try r.u64("genesis.allocation.amount"))) }
        var rules = RuleVersion.legacy, economy = EconomyParameters()
        if v >= 3 {
            rules = try r.u16("genesis.ruleVersion")
            economy = try EconomyParameters.decode(&r)
        }
        let commitment = v >= 4 ? try r.u8("genesis.stateCommitment") : StateCommitmentRule.flat
        if rules >= RuleVersion.trust {
            guard v >= 4 else { throw .invalidValue(field: "genesis.ruleVersion", reason: "rule version 3 needs a version 4 genesis") }
            economy.trust = try TrustParameters.decode(&r)
        }
        try r.end()
        var g = try Genesis(chainID: chain, timestampMs: ts, parameters: params, validators: vals, allocations: allocs,
                            ruleVersion: rules, economy: economy, stateCommitment: commitment)
        g.encodedVersion = v
        // Canonical: the stored order must already be sorted.
        guard g.validators == vals, g.allocations == allocs else {
            throw .invalidValue(field: "genesis", reason: "validators or allocations not sorted by key")
        }
        return g
    }
}
