import LedgerCore

/// The canonical encoding of all projection state (schemas/FORMAT.md §7): every map
/// is written sorted by key, so the bytes — and the state root, their BLAKE2b-256 —
/// are the same on every machine whatever the dictionary order. Checkpoints store
/// these bytes; decoding them gives back an equal state.
///
/// Version 2 added epochs, jailing, slashing and opinions. Snapshots of version 1 are not
/// read: checkpoints are disposable, and a node rebuilds them from the log. The economy
/// section (EconomyCanonical.swift) follows the version 2 layout when present, so the
/// roots of chains without it are what they always were.
extension LedgerState {
    public static let snapshotVersion: UInt16 = 2
    /// The same layout for a tree-committed chain: the version says which rule the state
    /// is under, and the flat bytes of version 2 chains stay what they always were.
    public static let treeSnapshotVersion: UInt16 = 3

    public func canonicalBytes() -> [UInt8] {
        var w = ByteWriter(capacity: 256 + accounts.count * 48 + agents.count * 160)
        w.u16(commitment == .tree ? Self.treeSnapshotVersion : Self.snapshotVersion)
        let g = genesisInfo()
        w.raw(g)
        w.u64(height.value); w.u64(timestampMs); w.u64(totalSupply); w.u64(burned); w.u64(feesPaid); w.u64(eventsApplied)

        w.u32(UInt32(accounts.count))
        for k in accounts.keys.sorted() { Entry.account(&w, k, accounts[k]!) }
        w.u32(UInt32(validators.count))
        for k in validators.keys.sorted() { Entry.validator(&w, validators[k]!) }
        w.u32(UInt32(delegations.count))
        for k in delegations.keys.sorted() { Entry.delegation(&w, k, delegations[k]!) }
        w.u32(UInt32(unbonding.count))
        for u in unbonding { Entry.unbonding(&w, u) }
        w.u32(UInt32(agents.count))
        for k in agents.keys.sorted() { Entry.agent(&w, k, agents[k]!) }
        w.u32(UInt32(alliances.count))
        for k in alliances.keys.sorted() { Entry.alliance(&w, alliances[k]!) }
        Entry.power(&w, epochPower)
        w.u32(UInt32(slashes.count))
        for x in slashes { Entry.slash(&w, x) }
        w.u32(UInt32(offences.count))
        for o in offences.sorted() { Entry.offence(&w, o) }
        w.u32(UInt32(opinionCounts.count))
        for k in opinionCounts.keys.sorted() { Entry.opinions(&w, k, opinionCounts[k]!) }
        encodeEconomy(&w)
        if commitment == .tree { encodeStreams(&w) }
        return w.bytes
    }

    func genesisInfo() -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        w.b32(chainID.raw); w.b32(genesisHash)
        parameters.encode(&w)
        return w.bytes
    }

    /// Decodes a checkpoint snapshot into a state that hashes and verifies with `crypto`.
    /// The caller checks it against the log's chain.
    public static func decodeSnapshot(_ bytes: [UInt8], crypto: any Primitives) throws(DecodeError) -> LedgerState {
        guard bytes.count <= Limits.snapshotBytesMax else {
            throw .tooLong(field: "snapshot", length: bytes.count, max: Limits.snapshotBytesMax)
        }
        var r = ByteReader(bytes)
        let v = try r.u16("snapshot.version")
        guard v == snapshotVersion || v == treeSnapshotVersion else { throw .unsupportedVersion(field: "snapshot", version: v) }
        let chain = try ChainID(raw: try r.b32("snapshot.chainID"))
        let gh = try r.b32("snapshot.genesisHash")
        let params = try ChainParameters.decode(&r)
        var s = LedgerState(empty: chain, params, gh, crypto)
        s.commitment = v == treeSnapshotVersion ? .tree : .flat
        s.height = Height(try r.u64("snapshot.height")); s.timestampMs = try r.u64("snapshot.timestamp")
        s.totalSupply = try r.u64("snapshot.supply"); s.burned = try r.u64("snapshot.burned"); s.feesPaid = try r.u64("snapshot.fees"); s.eventsApplied = try r.u64("snapshot.events")
        var last: Bytes32? = nil
        func sorted(_ k: Bytes32, _ f: String) throws(DecodeError) {
            if let l = last, !(l < k) { throw .invalidValue(field: f, reason: "keys not strictly increasing") }
            last = k
        }
        for _ in 0 ..< (try r.snapshotCount("snapshot.accounts")) {
            let k = try r.b32("account.key"); try sorted(k, "snapshot.accounts")
            s.accounts[k] = Account(balance: try r.u64("account.balance"), nonce: try r.u64("account.nonce"))
        }
        try decodeValidators(&r, into: &s)
        for _ in 0 ..< (try r.snapshotCount("snapshot.delegations")) {
            let k = DelegationKey(delegator: try r.b32("d.delegator"), validator: try r.id("d.validator"))
            s.delegations[k] = try r.u64("d.amount")
        }
        for _ in 0 ..< (try r.snapshotCount("snapshot.unbonding")) {
            s.unbonding.append(Unbonding(account: try r.b32("u.account"), validator: try r.id("u.validator"),
                                         amount: try r.u64("u.amount"), releaseAt: Height(try r.u64("u.release"))))
        }
        last = nil
        for _ in 0 ..< (try r.snapshotCount("snapshot.agents")) {
            let k = try r.b32("agent.key"); try sorted(k, "snapshot.agents")
            let p = try Payload.decode(kind: .agentRegister, try profileSlice(&r))
            guard case let .agentRegister(profile) = p else { throw .invalidValue(field: "agent", reason: "profile") }
            s.agents[k] = try decodeAgent(profile, &r)
        }
        try decodeAlliances(&r, into: &s)
        last = nil
        for _ in 0 ..< (try r.snapshotCount("snapshot.epochPower")) {
            let k = try r.b32("epochPower.key"); try sorted(k, "snapshot.epochPower")
            s.epochPower[k] = try r.u64("epochPower.power")
        }
        try decodeDiscipline(&r, into: &s)
        try decodeEconomy(&r, into: &s)
        s.deriveEconomyIndexes()
        if s.commitment == .tree { try decodeStreams(&r, into: &s) }
        try r.end()
        // Pair assertion: the decoded state must encode to exactly the bytes it came from.
        guard s.canonicalBytes() == bytes else { throw .invalidValue(field: "snapshot", reason: "not in canonical form") }
        s.seal()
        return s
    }

    /// An agent entry after its profile: registration height, flags, and the trust record
    /// when flag bit 1 says one follows (FORMAT.md §7).
    static func decodeAgent(_ profile: AgentProfile, _ r: inout ByteReader) throws(DecodeError) -> AgentState {
        let at = Height(try r.u64("agent.registeredAt"))
        let flags = try r.u8("agent.flags")
        guard flags <= 3 else { throw .invalidValue(field: "agent.flags", reason: "unknown flag bits") }
        var a = AgentState(profile: profile, registeredAt: at, active: flags & 1 == 1)
        guard flags & 2 == 2 else { return a }
        var t = AgentTrust(bond: try r.u64("agent.bond"), lastSeen: Height(try r.u64("agent.lastSeen")))
        t.bondSlashed = try r.u64("agent.bondSlashed")
        var o = AgentOutcomes()
        o.completedAsWorker = try r.u64("agent.completedAsWorker"); o.completedAsClient = try r.u64("agent.completedAsClient")
        o.refunded = try r.u64("agent.refunded"); o.disputes = try r.u64("agent.disputes"); o.disputesLost = try r.u64("agent.disputesLost")
        o.ratings = try r.u64("agent.ratings"); o.ratingSum = try r.u64("agent.ratingSum")
        t.outcomes = o
        a.trust = t
        return a
    }

    /// The validators section (FORMAT.md §7), key histories filling `consensusKeys`.
    static func decodeValidators(_ r: inout ByteReader, into s: inout LedgerState) throws(DecodeError) {
        var last: Bytes32? = nil
        func sorted(_ k: Bytes32, _ f: String) throws(DecodeError) {
            if let l = last, !(l < k) { throw .invalidValue(field: f, reason: "keys not strictly increasing") }
            last = k
        }
        for _ in 0 ..< (try r.snapshotCount("snapshot.validators")) {
            let id: ValidatorID = try r.id("validator.id"); try sorted(id.raw, "snapshot.validators")
            let name = try r.string("validator.name", max: Limits.nameBytesMax)
            let pers = try r.string("validator.personality", max: Limits.personalityBytesMax)
            let ck = try r.b32("validator.key")
            let ss = try r.u64("validator.selfStake"), dl = try r.u64("validator.delegated")
            guard let st = ValidatorStatus(rawValue: try r.u8("validator.status")) else {
                throw .invalidValue(field: "validator.status", reason: "unknown status")
            }
            let reg = Height(try r.u64("validator.registeredAt"))
            let jailedUntil = Height(try r.u64("validator.jailedUntil"))
            var hist: [ValidatorState.KeyEpoch] = []
            for _ in 0 ..< (try r.snapshotCount("validator.keyHistory")) {
                let e = ValidatorState.KeyEpoch(from: Height(try r.u64("key.from")), key: try r.b32("key.key"))
                hist.append(e); s.consensusKeys[e.key] = id
            }
            s.validators[id] = ValidatorState(id: id, name: name, personality: pers, consensusKey: ck, keyHistory: hist,
                                              selfStake: ss, delegated: dl, status: st, registeredAt: reg, jailedUntil: jailedUntil)
        }
    }

    /// The alliances section.
    static func decodeAlliances(_ r: inout ByteReader, into s: inout LedgerState) throws(DecodeError) {
        var last: Bytes32? = nil
        func sorted(_ k: Bytes32, _ f: String) throws(DecodeError) {
            if let l = last, !(l < k) { throw .invalidValue(field: f, reason: "keys not strictly increasing") }
            last = k
        }
        for _ in 0 ..< (try r.snapshotCount("snapshot.alliances")) {
            let id: AllianceID = try r.id("alliance.id"); try sorted(id.raw, "snapshot.alliances")
            let proposer = try r.b32("alliance.proposer")
            let nt = try r.count("alliance.targets", max: Limits.allianceTargetsMax)
            var targets: [PublicKey] = []; for _ in 0 ..< nt { targets.append(try r.b32("alliance.target")) }
            let prop = AllianceProposal(targets: targets, purpose: try r.string("alliance.purpose", max: Limits.allianceTextBytesMax),
                                        terms: try r.string("alliance.terms", max: Limits.allianceTextBytesMax),
                                        durationMs: try r.u64("alliance.duration"))
            let at = try r.u64("alliance.proposedAt"), by = try r.u64("alliance.acceptBy")
            let na = try r.count("alliance.accepted", max: Limits.allianceTargetsMax)
            var acc: [PublicKey] = []; for _ in 0 ..< na { acc.append(try r.b32("alliance.accepted")) }
            guard let st = AllianceStatus(rawValue: try r.u8("alliance.status")) else {
                throw .invalidValue(field: "alliance.status", reason: "unknown status")
            }
            s.alliances[id] = AllianceState(id: id, proposer: proposer, proposal: prop, proposedAtMs: at, acceptByMs: by,
                                            accepted: acc, status: st, activeUntilMs: try r.u64("alliance.activeUntil"))
            s.noteAlliance(id)
        }
    }

    /// Slashes, offences and opinion counts.
    static func decodeDiscipline(_ r: inout ByteReader, into s: inout LedgerState) throws(DecodeError) {
        var last: Bytes32? = nil
        func sorted(_ k: Bytes32, _ f: String) throws(DecodeError) {
            if let l = last, !(l < k) { throw .invalidValue(field: f, reason: "keys not strictly increasing") }
            last = k
        }
        for _ in 0 ..< (try r.snapshotCount("snapshot.slashes")) {
            s.slashes.append(SlashRecord(validator: try r.id("slash.validator"), offenceHeight: Height(try r.u64("slash.offenceHeight")),
                                         offenceView: View(try r.u64("slash.offenceView")), stakeBefore: try r.u64("slash.stakeBefore"),
                                         amount: try r.u64("slash.amount"), evidence: try r.id("slash.evidence"),
                                         slashedAt: Height(try r.u64("slash.slashedAt"))))
        }
        var lastOffence: OffenceKey? = nil
        for _ in 0 ..< (try r.snapshotCount("snapshot.offences")) {
            let o = OffenceKey(validator: try r.id("offence.validator"), height: Height(try r.u64("offence.height")),
                               view: View(try r.u64("offence.view")), kind: try r.u8("offence.kind"))
            if let l = lastOffence, !(l < o) { throw .invalidValue(field: "snapshot.offences", reason: "keys not strictly increasing") }
            lastOffence = o
            s.offences.insert(o)
        }
        last = nil
        for _ in 0 ..< (try r.snapshotCount("snapshot.opinionCounts")) {
            let k: ValidatorID = try r.id("opinion.validator"); try sorted(k.raw, "snapshot.opinionCounts")
            s.opinionCounts[k] = OpinionCount(accepted: try r.u64("opinion.accepted"), refused: try r.u64("opinion.refused"))
        }
    }

    /// Reads one encoded profile and returns its bytes, so the payload decoder parses it.
    static func profileSlice(_ r: inout ByteReader) throws(DecodeError) -> ArraySlice<UInt8> {
        var probe = r
        _ = try probe.string("agent.name", max: Limits.nameBytesMax)
        let n = try probe.count("agent.capabilities", max: Limits.capabilitiesMax)
        for _ in 0 ..< n { _ = try probe.string("agent.capability", max: Limits.capabilityBytesMax) }
        _ = try probe.string("agent.personality", max: Limits.personalityBytesMax)
        _ = try probe.string("agent.endpoint", max: Limits.endpointBytesMax)
        let len = probe.offset - r.offset
        return try r.raw(len, "agent.profile")
    }

    init(empty chain: ChainID, _ params: ChainParameters, _ genesisHash: Hash32, _ crypto: any Primitives) {
        cryptoRef = CryptoRef(crypto)
        chainID = chain; parameters = params; self.genesisHash = genesisHash
        height = 0; timestampMs = 0; totalSupply = 0; burned = 0; feesPaid = 0; eventsApplied = 0
        accounts = [:]; validators = [:]; consensusKeys = [:]; delegations = [:]; unbonding = []; agents = [:]; alliances = [:]
        epochPower = [:]; slashes = []; offences = []; opinionCounts = [:]
        economy = EconomyState(present: false, ruleVersion: RuleVersion.legacy, parameters: EconomyParameters())
    }
}

extension ByteReader {
    /// A u32 entry count in a snapshot, bounded so no count can ask for more entries
    /// than a snapshot's largest size could hold.
    mutating func snapshotCount(_ f: String) throws(DecodeError) -> Int {
        let cap = Limits.snapshotBytesMax / 32
        let n = Int(try u32(f))
        guard n <= cap else { throw .tooLong(field: f, length: n, max: cap) }
        return n
    }
}
