import LedgerCore

/// What a state-tree leaf holds (schemas/FORMAT.md §7.2). The tree key of a leaf is
/// `H("CHAOSLEDGER/STATE-KEY\0" | u8 kind | id)`; its value is the entity's §7 entry.
public enum LeafKind: UInt8, Sendable, CaseIterable, Comparable {
    /// The chain's scalars (zero-length id).
    case chain = 0x01
    /// The current epoch's voting power (zero-length id).
    case power = 0x02
    case account = 0x03
    case validator = 0x04
    /// id: delegator | validator.
    case delegation = 0x05
    /// One account's pending unbondings, in the order they were made (id: the account).
    case unbondings = 0x06
    case agent = 0x07
    case alliance = 0x08
    /// id: the evidence event.
    case slash = 0x09
    /// id: the offence entry itself (validator | u64 height | u64 view | u8 kind).
    case offence = 0x0A
    case opinions = 0x0B
    /// The economy's scalars (zero-length id; only when the economy section is present).
    case economy = 0x0C
    case reward = 0x0D
    case commission = 0x0E
    /// id: evidence | delegator.
    case delegatorSlash = 0x0F
    case job = 0x10
    case reputation = 0x11
    case meme = 0x12
    case influence = 0x13
    case proposal = 0x14
    /// A stream's count and hash chain (id: u8 stream tag | b32 id; tree chains only).
    case stream = 0x15
    /// Rule version 3: an account's funding origin.
    case origin = 0x16
    /// Rule version 3: id from | to.
    case pair = 0x17

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    /// The length of this kind's id.
    public var idLength: Int {
        switch self {
        case .chain, .power, .economy: 0
        case .delegation, .delegatorSlash, .pair: 64
        case .offence: 49
        case .stream: 33
        default: 32
        }
    }

    /// The name the API and the light clients use.
    public var name: String {
        switch self {
        case .chain: "chain"
        case .power: "power"
        case .account: "account"
        case .validator: "validator"
        case .delegation: "delegation"
        case .unbondings: "unbondings"
        case .agent: "agent"
        case .alliance: "alliance"
        case .slash: "slash"
        case .offence: "offence"
        case .opinions: "opinions"
        case .economy: "economy"
        case .reward: "reward"
        case .commission: "commission"
        case .delegatorSlash: "delegator-slash"
        case .job: "job"
        case .reputation: "reputation"
        case .meme: "meme"
        case .influence: "influence"
        case .proposal: "proposal"
        case .stream: "stream"
        case .origin: "origin"
        case .pair: "pair"
        }
    }
}

/// A leaf's address: its kind and id.
public struct StateLeaf: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let kind: LeafKind
    public let id: [UInt8]

    public init(_ kind: LeafKind, _ id: [UInt8]) throws(DecodeError) {
        guard id.count == kind.idLength else {
            throw .invalidValue(field: "leaf.id", reason: "a \(kind.name) id has \(kind.idLength) bytes, not \(id.count)")
        }
        self.kind = kind; self.id = id
    }

    init(unchecked kind: LeafKind, _ id: [UInt8]) { self.kind = kind; self.id = id }
    static func of(_ kind: LeafKind, _ k: Bytes32) -> StateLeaf { StateLeaf(unchecked: kind, k.bytes) }
    static func of(_ kind: LeafKind, _ a: Bytes32, _ b: Bytes32) -> StateLeaf { StateLeaf(unchecked: kind, a.bytes + b.bytes) }
    static func of<K>(_ kind: LeafKind, _ k: Identifier<K>) -> StateLeaf { of(kind, k.raw) }
    static func of<K>(_ kind: LeafKind, _ a: Identifier<K>, _ b: Bytes32) -> StateLeaf { of(kind, a.raw, b) }
    static func of(_ o: OffenceKey) -> StateLeaf { StateLeaf(unchecked: .offence, encode { Entry.offence(&$0, o) }) }
    static func of(_ k: StreamKey) -> StateLeaf { StateLeaf(unchecked: .stream, k.bytes) }

    public static func < (a: Self, b: Self) -> Bool { a.kind != b.kind ? a.kind < b.kind : a.id.lexicographicallyPrecedes(b.id) }
    public var description: String { "\(kind.name)/\(Hex.encode(id))" }

    var first: Bytes32 { Bytes32(id[0 ..< 32]) }
    var second: Bytes32 { Bytes32(id[32 ..< 64]) }
}

func encode(_ body: (inout ByteWriter) -> Void) -> [UInt8] {
    var w = ByteWriter(capacity: 128)
    body(&w)
    return w.bytes
}

extension LedgerState {
    /// The value of one leaf (the entity's §7 entry), nil when the state has no such entity.
    public func leafValue(_ leaf: StateLeaf) -> [UInt8]? {
        let e = economy
        switch leaf.kind {
        case .chain: return encode(encodeChainLeaf)
        case .power: return encode { Entry.power(&$0, epochPower) }
        case .economy: return e.present ? encode { Entry.economyGlobals(&$0, e) } : nil
        case .account: return accounts[leaf.first].map { a in encode { Entry.account(&$0, leaf.first, a) } }
        case .validator: return validators[ValidatorID(leaf.first)].map { v in encode { Entry.validator(&$0, v) } }
        case .delegation:
            let k = DelegationKey(delegator: leaf.first, validator: ValidatorID(leaf.second))
            return delegations[k].map { d in encode { Entry.delegation(&$0, k, d) } }
        case .unbondings: return Self.unbondingsValue(unbonding.filter { $0.account == leaf.first })
        case .agent: return agents[leaf.first].map { a in encode { Entry.agent(&$0, leaf.first, a) } }
        case .alliance: return alliances[AllianceID(leaf.first)].map { a in encode { Entry.alliance(&$0, a) } }
        case .slash: return slashes.first { $0.evidence.raw == leaf.first }.map { x in encode { Entry.slash(&$0, x) } }
        case .offence: return offences.first { StateLeaf.of($0) == leaf }.map { o in encode { Entry.offence(&$0, o) } }
        case .opinions: return opinionCounts[ValidatorID(leaf.first)].map { c in encode { Entry.opinions(&$0, ValidatorID(leaf.first), c) } }
        case .reward: return e.rewards[leaf.first].map { r in encode { Entry.reward(&$0, leaf.first, r) } }
        case .commission: return e.commissions[ValidatorID(leaf.first)].map { c in encode { Entry.commission(&$0, ValidatorID(leaf.first), c) } }
        case .delegatorSlash:
            return e.delegatorSlashes.first { $0.evidence.raw == leaf.first && $0.delegator == leaf.second }
                .map { d in encode { Entry.delegatorSlash(&$0, d) } }
        case .job: return e.jobs[JobID(leaf.first)].map { j in encode { Entry.job(&$0, j) } }
        case .reputation: return e.reputation[leaf.first].map { r in encode { Entry.reputation(&$0, leaf.first, r) } }
        case .meme: return e.memes[MemeID(leaf.first)].map { m in encode { Entry.meme(&$0, m) } }
        case .influence: return e.influence[leaf.first].map { c in encode { Entry.influence(&$0, leaf.first, c) } }
        case .proposal: return e.proposals[ProposalID(leaf.first)].map { p in encode { Entry.proposal(&$0, p) } }
        case .stream:
            guard let k = StreamKey(bytes: leaf.id) else { return nil }
            return streams[k].map { h in encode { Entry.stream(&$0, k, h) } }
        case .origin: return e.origins[leaf.first].map { o in encode { Entry.origin(&$0, leaf.first, o) } }
        case .pair:
            let k = PairKey(from: leaf.first, to: leaf.second)
            return e.pairs[k].map { p in encode { Entry.pair(&$0, k, p) } }
        }
    }

    /// Every leaf of the state with its value, in no particular order: the tree built
    /// from scratch, and the oracle the incremental tree is tested against.
    public func allLeaves() -> [(leaf: StateLeaf, value: [UInt8])] {
        var out: [(leaf: StateLeaf, value: [UInt8])] = []
        out.reserveCapacity(accounts.count + validators.count + delegations.count + agents.count + 8)
        func add(_ l: StateLeaf, _ body: (inout ByteWriter) -> Void) { out.append((l, encode(body))) }
        add(StateLeaf(unchecked: .chain, []), encodeChainLeaf)
        add(StateLeaf(unchecked: .power, [])) { Entry.power(&$0, epochPower) }
        for (k, a) in accounts { add(.of(.account, k)) { Entry.account(&$0, k, a) } }
        for (k, v) in validators { add(.of(.validator, k)) { Entry.validator(&$0, v) } }
        for (k, d) in delegations { add(.of(.delegation, k.delegator, k.validator.raw)) { Entry.delegation(&$0, k, d) } }
        for (account, list) in Dictionary(grouping: unbonding, by: \.account) {
            out.append((.of(.unbondings, account), Self.unbondingsValue(list)!))
        }
        for (k, a) in agents { add(.of(.agent, k)) { Entry.agent(&$0, k, a) } }
        for (k, a) in alliances { add(.of(.alliance, k)) { Entry.alliance(&$0, a) } }
        for x in slashes { add(.of(.slash, x.evidence)) { Entry.slash(&$0, x) } }
        for o in offences { add(.of(o)) { Entry.offence(&$0, o) } }
        for (k, c) in opinionCounts { add(.of(.opinions, k)) { Entry.opinions(&$0, k, c) } }
        for (k, h) in streams { add(.of(k)) { Entry.stream(&$0, k, h) } }
        let e = economy
        guard e.present else { return out }
        add(StateLeaf(unchecked: .economy, [])) { Entry.economyGlobals(&$0, e) }
        for (k, r) in e.rewards { add(.of(.reward, k)) { Entry.reward(&$0, k, r) } }
        for (k, c) in e.commissions { add(.of(.commission, k)) { Entry.commission(&$0, k, c) } }
        for d in e.delegatorSlashes { add(.of(.delegatorSlash, d.evidence, d.delegator)) { Entry.delegatorSlash(&$0, d) } }
        for (_, j) in e.jobs { add(.of(.job, j.id)) { Entry.job(&$0, j) } }
        for (k, r) in e.reputation { add(.of(.reputation, k)) { Entry.reputation(&$0, k, r) } }
        for (_, m) in e.memes { add(.of(.meme, m.id)) { Entry.meme(&$0, m) } }
        for (k, c) in e.influence { add(.of(.influence, k)) { Entry.influence(&$0, k, c) } }
        for (_, p) in e.proposals { add(.of(.proposal, p.id)) { Entry.proposal(&$0, p) } }
        for (k, o) in e.origins { add(.of(.origin, k)) { Entry.origin(&$0, k, o) } }
        for (k, p) in e.pairs { add(.of(.pair, k.from, k.to)) { Entry.pair(&$0, k, p) } }
        return out
    }

    /// The leaves written since the last call, with their new values (nil: deleted), and
    /// forgets them. The three scalar leaves are always included.
    mutating func takeLeafChanges() -> [(leaf: StateLeaf, value: [UInt8]?)] {
        var touched = Set<StateLeaf>()
        var known: [(leaf: StateLeaf, value: [UInt8]?)] = []
        for k in accounts.takeWritten() { touched.insert(.of(.account, k)) }
        for k in validators.takeWritten() { touched.insert(.of(.validator, k)) }
        for k in delegations.takeWritten() { touched.insert(.of(.delegation, k.delegator, k.validator.raw)) }
        let unbonded = Set(unbonding.takeWritten().map(\.account))
        for k in agents.takeWritten() { touched.insert(.of(.agent, k)) }
        for k in alliances.takeWritten() { touched.insert(.of(.alliance, k)) }
        // Slashes and offences are only ever added: the new entries are their values.
        for x in slashes.takeWritten() { known.append((.of(.slash, x.evidence), encode { Entry.slash(&$0, x) })) }
        for o in offences.takeWritten() { known.append((.of(o), encode { Entry.offence(&$0, o) })) }
        for k in opinionCounts.takeWritten() { touched.insert(.of(.opinions, k)) }
        // A stream only grows: its new head is its value.
        for k in streams.takeWritten() { known.append((.of(k), encode { Entry.stream(&$0, k, streams[k]!) })) }
        for k in economy.rewards.takeWritten() { touched.insert(.of(.reward, k)) }
        for k in economy.commissions.takeWritten() { touched.insert(.of(.commission, k)) }
        for d in economy.delegatorSlashes.takeWritten() {
            known.append((.of(.delegatorSlash, d.evidence, d.delegator), encode { Entry.delegatorSlash(&$0, d) }))
        }
        for k in economy.jobs.takeWritten() { touched.insert(.of(.job, k)) }
        for k in economy.reputation.takeWritten() { touched.insert(.of(.reputation, k)) }
        for k in economy.memes.takeWritten() { touched.insert(.of(.meme, k)) }
        for k in economy.influence.takeWritten() { touched.insert(.of(.influence, k)) }
        for k in economy.proposals.takeWritten() { touched.insert(.of(.proposal, k)) }
        for k in economy.origins.takeWritten() { touched.insert(.of(.origin, k)) }
        for k in economy.pairs.takeWritten() { touched.insert(.of(.pair, k.from, k.to)) }
        touched.insert(StateLeaf(unchecked: .chain, []))
        touched.insert(StateLeaf(unchecked: .power, []))
        touched.insert(StateLeaf(unchecked: .economy, []))
        var out = known
        out.reserveCapacity(known.count + touched.count + unbonded.count)
        for l in touched { out.append((l, leafValue(l))) }
        if !unbonded.isEmpty {
            // One pass over the queue for every account whose unbondings changed.
            var lists: [PublicKey: [Unbonding]] = [:]
            for u in unbonding where unbonded.contains(u.account) { lists[u.account, default: []].append(u) }
            for a in unbonded { out.append((.of(.unbondings, a), Self.unbondingsValue(lists[a] ?? []))) }
        }
        return out
    }

    /// Forgets what was written (a flat-rule chain keeps no tree).
    mutating func discardWritten() {
        _ = accounts.takeWritten(); _ = validators.takeWritten(); _ = delegations.takeWritten(); _ = unbonding.takeWritten()
        _ = agents.takeWritten(); _ = alliances.takeWritten(); _ = slashes.takeWritten(); _ = offences.takeWritten()
        _ = opinionCounts.takeWritten(); _ = economy.rewards.takeWritten(); _ = economy.commissions.takeWritten()
        _ = economy.delegatorSlashes.takeWritten(); _ = economy.jobs.takeWritten(); _ = economy.reputation.takeWritten()
        _ = economy.memes.takeWritten(); _ = economy.influence.takeWritten(); _ = economy.proposals.takeWritten()
        _ = economy.origins.takeWritten(); _ = economy.pairs.takeWritten(); _ = streams.takeWritten()
    }

    /// The chain leaf: chain id, genesis hash, parameters, then height, time, supply,
    /// burned, fees and events applied (the flat layout's header fields).
    func encodeChainLeaf(_ w: inout ByteWriter) {
        w.raw(genesisInfo())
        w.u64(height.value); w.u64(timestampMs); w.u64(totalSupply); w.u64(burned); w.u64(feesPaid); w.u64(eventsApplied)
    }

    /// `u32 n | n × unbonding entry`, nil for none (the leaf is deleted).
    static func unbondingsValue(_ list: [Unbonding]) -> [UInt8]? {
        guard !list.isEmpty else { return nil }
        return encode { w in
            w.u32(UInt32(list.count))
            for u in list { Entry.unbonding(&w, u) }
        }
    }
}
