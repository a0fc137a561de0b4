import LedgerCore
import LedgerProjections
import LedgerStore

/// One field of an entity's canonical view: a name and its value as text.
public struct EntityField: Sendable, Hashable, Codable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) { self.name = name; self.value = value }
}

/// One field that differs between two views (nil: absent on that side).
public struct FieldChange: Sendable, Hashable, Codable {
    public var name: String
    public var before: String?
    public var after: String?
    public init(name: String, before: String?, after: String?) { self.name = name; self.before = before; self.after = after }
}

/// An entity the audit queries name, written `kind:id` (`account:<hex>`, `validator:<hex>`).
public struct EntityRef: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var kind: String
    public var id: String
    public init(kind: String, id: String) { self.kind = kind; self.id = id }
    public var description: String { "\(kind):\(id)" }
    public static func < (a: Self, b: Self) -> Bool { (a.kind, a.id) < (b.kind, b.id) }
}

/// One kind of entity: how to find its events in the stream index, which ids a state
/// holds, and its fields. `EntityView.kinds` lists them all.
public struct EntityKind: Sendable {
    public var name: String
    /// Whether `replay --trace` takes it (ids are one 32-byte key, with a stream or not).
    public var traceable: Bool
    /// The stream index entry that lists the events naming it; nil when there is none
    /// (the trace then finds its events by the fold alone).
    public var stream: @Sendable (Bytes32) -> StreamKey?
    /// Every id of this kind in a state.
    public var ids: @Sendable (LedgerState) -> [String]
    /// The entity's fields; nil when the state does not hold it.
    public var fields: @Sendable (String, LedgerState) -> [EntityField]?
}

/// The canonical, sorted (field, value) view of every entity in a `LedgerState`, shared
/// by `replay --trace` and `diff`. Values are decimal integers, full hex keys, and words;
/// nothing depends on dictionary order.
public enum EntityView {
    /// Every kind of entity, in the order `diff` lists them. A new part of the state
    /// (jobs and escrows, reputation, rewards, governance, memes) is one more entry here.
    public static let kinds: [EntityKind] = [
        EntityKind(name: "chain", traceable: false, stream: { _ in nil }, ids: { _ in ["ledger"] }, fields: { id, s in
            id == "ledger" ? chain(s) : nil
        }),
        key("account", stream: { .account($0) }, { s in s.accounts.keys }, account),
        key("validator", stream: { .account($0.raw) }, { s in s.validators.keys }, validator),
        EntityKind(name: "delegation", traceable: false, stream: { _ in nil },
                   ids: { s in s.delegations.keys.map { "\($0.delegator.hex)-\($0.validator.hex)" } },
                   fields: { id, s in
                       let p = id.split(separator: "-").map(String.init)
                       guard p.count == 2, let d = Bytes32(hex: p[0]), let v = Bytes32(hex: p[1]),
                             let amount = s.delegations.first(where: { $0.key.delegator == d && $0.key.validator.raw == v })?.value else { return nil }
                       return [EntityField("amount", "\(amount)")]
                   }),
        EntityKind(name: "unbonding", traceable: false, stream: { _ in nil },
                   ids: { s in Array(Set(s.unbonding.map(unbondingID))) },
                   fields: { id, s in
                       let same = s.unbonding.filter { unbondingID($0) == id }
                       guard !same.isEmpty else { return nil }
                       return [EntityField("amount", "\(same.reduce(0) { $0 &+ $1.amount })"), EntityField("entries", "\(same.count)")]
                   }),
        key("agent", stream: { .agent($0) }, { s in s.agents.keys }, agent),
        key("alliance", stream: { .alliance($0) }, { s in s.alliances.keys }, alliance),
        key("job", stream: { .job($0) }, { s in s.economy.jobs.keys }, job),
        key("meme", stream: { _ in nil }, { s in s.economy.memes.keys }, meme),
        key("proposal", stream: { _ in nil }, { s in s.economy.proposals.keys }, proposal),
        EntityKind(name: "slash", traceable: false, stream: { _ in nil }, ids: { s in s.slashes.map(\.evidence.hex) }, fields: { id, s in
            guard let x = s.slashes.first(where: { $0.evidence.hex == id }) else { return nil }
            return sorted([("validator", x.validator.hex), ("offenceHeight", "\(x.offenceHeight.value)"), ("offenceView", "\(x.offenceView)"),
                           ("stakeBefore", "\(x.stakeBefore)"), ("amount", "\(x.amount)"), ("slashedAt", "\(x.slashedAt.value)")])
        }),
    ]

    public static func kind(named name: String) -> EntityKind? { kinds.first { $0.name == name } }

    /// The view of one entity, sorted by field name; nil when the state does not hold it.
    public static func of(_ e: EntityRef, in s: LedgerState) -> [EntityField]? {
        kind(named: e.kind)?.fields(e.id, s)
    }

    /// Parses `kind:<64 hex>` for a traceable kind.
    public static func parse(_ text: String) throws(AuditQueryError) -> EntityRef {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        let names = kinds.filter(\.traceable).map(\.name).joined(separator: ", ")
        guard parts.count == 2, let k = kind(named: parts[0]), k.traceable else {
            throw .badEntity(text, "expected kind:<64 hex digits>, kind one of \(names)")
        }
        guard let id = Bytes32(hex: parts[1]) else { throw .badEntity(text, "the id must be 64 hex digits") }
        return EntityRef(kind: k.name, id: id.hex)
    }

    /// The fields that differ between two views, by name.
    public static func changes(_ a: [EntityField]?, _ b: [EntityField]?) -> [FieldChange] {
        var before: [String: String] = [:], after: [String: String] = [:]
        for f in a ?? [] { before[f.name] = f.value }
        for f in b ?? [] { after[f.name] = f.value }
        return Set(before.keys).union(after.keys).sorted().compactMap { n in
            before[n] == after[n] ? nil : FieldChange(name: n, before: before[n], after: after[n])
        }
    }

    // MARK: the views

    static func key<ID: Bytes32Named>(_ name: String, stream: @escaping @Sendable (ID) -> StreamKey?,
                                       _ keys: @escaping @Sendable (LedgerState) -> some Sequence<ID>,
                                       _ view: @escaping @Sendable (ID, LedgerState) -> [EntityField]?) -> EntityKind {
        EntityKind(name: name, traceable: true, stream: { stream(ID($0)) }, ids: { s in keys(s).map(\.raw.hex) }, fields: { id, s in
            Bytes32(hex: id).flatMap { view(ID($0), s) }
        })
    }

    static func sorted(_ pairs: [(String, String)]) -> [EntityField] {
        pairs.map { EntityField($0.0, $0.1) }.sorted { $0.name < $1.name }
    }

    static func unbondingID(_ u: Unbonding) -> String { "\(u.account.hex)-\(u.validator.hex)-\(u.releaseAt.value)" }

    static func chain(_ s: LedgerState) -> [EntityField] {
        let p = s.parameters
        var f: [(String, String)] = [
            ("chainId", s.chainID.name), ("genesisHash", s.genesisHash.hex), ("height", "\(s.height.value)"),
            ("timestampMs", "\(s.timestampMs)"), ("totalSupply", "\(s.totalSupply)"), ("burned", "\(s.burned)"),
            ("feesPaid", "\(s.feesPaid)"), ("eventsApplied", "\(s.eventsApplied)"),
            ("parameters.minFee", "\(p.minFee)"), ("parameters.minValidatorStake", "\(p.minValidatorStake)"),
            ("parameters.unbondingBlocks", "\(p.unbondingBlocks)"), ("parameters.allianceAcceptWindowMs", "\(p.allianceAcceptWindowMs)"),
            ("parameters.allianceDurationMaxMs", "\(p.allianceDurationMaxMs)"), ("parameters.checkpointInterval", "\(p.checkpointInterval)"),
            ("parameters.blockEventsMax", "\(p.blockEventsMax)"), ("parameters.blockBytesMax", "\(p.blockBytesMax)"),
            ("parameters.slashFractionBps", "\(p.slashFractionBps)"), ("parameters.jailBlocks", "\(p.jailBlocks)"),
        ]
        for k in s.epochPower.keys { f.append(("epochPower[\(k.hex)]", "\(s.epochPower[k]!)")) }
        let e = s.economy, ep = e.parameters
        if e.present {
            f += [("ruleVersion", "\(e.ruleVersion)"), ("baseFee", "\(e.baseFee)"), ("blockGasUsed", "\(e.blockGasUsed)"),
                  ("feePool", "\(e.feePool)"), ("minted", "\(e.minted)"), ("feesBurned", "\(e.feesBurned)"),
                  ("lastProposer", e.lastProposer.hex), ("delegatorSlashes", "\(e.delegatorSlashes.count)"),
                  ("ruleHistory", e.ruleHistory.map { "\($0.from.value):\($0.version)" }.joined(separator: ",")),
                  ("economy.blockReward", "\(ep.blockReward)"), ("economy.proposerBonusBps", "\(ep.proposerBonusBps)"),
                  ("economy.feeBurnBps", "\(ep.feeBurnBps)"), ("economy.baseFeeMin", "\(ep.baseFeeMin)"),
                  ("economy.gasTargetPerBlock", "\(ep.gasTargetPerBlock)"), ("economy.commissionMaxBps", "\(ep.commissionMaxBps)"),
                  ("economy.defaultCommissionBps", "\(ep.defaultCommissionBps)"), ("economy.disputeWindowBlocks", "\(ep.disputeWindowBlocks)"),
                  ("economy.arbitersPerDispute", "\(ep.arbitersPerDispute)"), ("economy.arbiterMinReputation", "\(ep.arbiterMinReputation)"),
                  ("economy.reputationHalfLifeBlocks", "\(ep.reputationHalfLifeBlocks)")]
        }
        if e.hasTrust {
            let t = ep.trust
            f += [("trust.agentBond", "\(t.agentBond)"), ("trust.agentBondReturnBlocks", "\(t.agentBondReturnBlocks)"),
                  ("trust.disputeBondSlashBps", "\(t.disputeBondSlashBps)"), ("trust.endorsementPeriodBlocks", "\(t.endorsementPeriodBlocks)"),
                  ("trust.standingBaseBps", "\(t.standingBaseBps)"), ("trust.standingFullAt", "\(t.standingFullAt)"),
                  ("trust.jobValueCap", "\(t.jobValueCap)"), ("trust.agentIdleBlocks", "\(t.agentIdleBlocks)"),
                  ("trust.agentOfflineBlocks", "\(t.agentOfflineBlocks)")]
        }
        return sorted(f)
    }

    static func job(_ k: JobID, _ s: LedgerState) -> [EntityField]? {
        guard let j = s.economy.jobs[k] else { return nil }
        var f: [(String, String)] = [("client", j.client.hex), ("worker", j.worker.hex), ("status", j.status.description),
                                     ("funded", "\(j.funded)"), ("escrowed", "\(j.escrowed)"), ("title", j.spec.title),
                                     ("deadline", "\(j.spec.deadline.value)"), ("clientRated", "\(j.clientRated)"), ("workerRated", "\(j.workerRated)")]
        for (i, m) in j.milestones.enumerated() {
            f += [("milestone[\(i)].amount", "\(m.amount)"), ("milestone[\(i)].result", m.result.hex),
                  ("milestone[\(i)].paid", "\(m.paid)"), ("milestone[\(i)].refunded", "\(m.refunded)"), ("milestone[\(i)].settled", "\(m.settled)")]
        }
        if let spec = j.spec.evaluation.spec { f += [("evaluator", j.evaluator.hex), ("specHash", spec.hex)] }
        if let d = j.dispute {
            f += [("dispute.openedBy", d.openedBy.hex), ("dispute.arbiters", d.arbiters.map(\.hex).joined(separator: ",")),
                  ("dispute.workerShareBps", "\(d.workerShareBps)")]
            for a in d.votes.keys { f.append(("dispute.vote[\(a.hex)]", "\(d.votes[a]!)")) }
        }
        return sorted(f)
    }

    static func meme(_ k: MemeID, _ s: LedgerState) -> [EntityField]? {
        guard let m = s.economy.memes[k] else { return nil }
        var f: [(String, String)] = [("author", m.author.hex), ("content", m.meme.content), ("tags", m.meme.tags.joined(separator: ","))]
        for r in m.reactions.keys { f.append(("reactions[\(Reaction(rawValue: r)?.name ?? "\(r)")]", "\(m.reactions[r]!)")) }
        return sorted(f)
    }

    static func proposal(_ k: ProposalID, _ s: LedgerState) -> [EntityField]? {
        guard let p = s.economy.proposals[k] else { return nil }
        var f: [(String, String)] = [("proposer", p.proposer.hex), ("status", p.status.description), ("activateAt", "\(p.proposal.activateAt.value)")]
        switch p.proposal.change {
        case let .parameter(name, value): f.append(("change", "\(name)=\(value)"))
        case let .ruleVersion(v): f.append(("change", "ruleVersion=\(v)"))
        }
        for v in p.votes.keys { f.append(("vote[\(v.hex)]", "\(p.votes[v]!)")) }
        return sorted(f)
    }

    static func account(_ k: PublicKey, _ s: LedgerState) -> [EntityField]? {
        guard let a = s.accounts[k] else { return nil }
        var f: [(String, String)] = [("balance", "\(a.balance)"), ("nonce", "\(a.nonce)")]
        for (d, amount) in s.delegations where d.delegator == k { f.append(("delegation[\(d.validator.hex)]", "\(amount)")) }
        var pending: [String: UInt64] = [:]
        for u in s.unbonding where u.account == k { pending["unbonding[\(u.releaseAt.value)/\(u.validator.hex)]", default: 0] &+= u.amount }
        for (n, amount) in pending { f.append((n, "\(amount)")) }
        if let r = s.economy.rewards[k] { f.append(("unclaimedRewards", "\(r)")) }
        if let r = s.economy.reputation[k] { f.append(("reputation", "\(r.value)@\(r.asOf.value)")) }
        if let o = s.economy.origins[k] { f.append(("origin", o.hex)) }
        for (p, r) in s.economy.pairs where p.from == k {
            f.append(("pair[\(p.to.hex)]", "jobs \(r.jobs), endorsed at \(r.endorsedAt.value)"))
        }
        if let c = s.economy.influence[k] {
            f.append(("influence.memes", "\(c.memesPosted)")); f.append(("influence.interactionsReceived", "\(c.interactionsReceived)"))
            for r in c.reactionsReceived.keys { f.append(("influence.reactions[\(r)]", "\(c.reactionsReceived[r]!)")) }
        }
        return sorted(f)
    }

    static func validator(_ k: ValidatorID, _ s: LedgerState) -> [EntityField]? {
        guard let v = s.validators[k] else { return nil }
        let status: String = switch v.status { case .active: "active"; case .retired: "retired"; case .jailed: "jailed" }
        var f: [(String, String)] = [
            ("name", v.name), ("personality", v.personality), ("consensusKey", v.consensusKey.hex),
            ("keyHistory", v.keyHistory.map { "\($0.from.value):\($0.key.hex)" }.joined(separator: ",")),
            ("selfStake", "\(v.selfStake)"), ("delegated", "\(v.delegated)"), ("status", status),
            ("registeredAt", "\(v.registeredAt.value)"), ("jailedUntil", "\(v.jailedUntil.value)"),
        ]
        // Epoch power is by consensus key: a rotated key keeps its power to the epoch's end.
        var power: UInt64 = 0
        for e in v.keyHistory { power &+= s.epochPower[e.key] ?? 0 }
        f.append(("epochPower", "\(power)"))
        if let c = s.opinionCounts[k] { f.append(("opinions.accepted", "\(c.accepted)")); f.append(("opinions.refused", "\(c.refused)")) }
        for o in s.offences where o.validator == k { f.append(("offence[\(o.height.value)/\(o.view)/\(o.kind)]", "punished")) }
        return sorted(f)
    }

    static func agent(_ k: PublicKey, _ s: LedgerState) -> [EntityField]? {
        guard let a = s.agents[k] else { return nil }
        var f = [("name", a.profile.name), ("capabilities", a.profile.capabilities.joined(separator: ",")),
                 ("personality", a.profile.personality), ("endpoint", a.profile.endpoint),
                 ("registeredAt", "\(a.registeredAt.value)"), ("active", a.active ? "true" : "false")]
        if let t = a.trust {
            let o = t.outcomes
            f += [("bond", "\(t.bond)"), ("bondSlashed", "\(t.bondSlashed)"), ("origin", s.origin(of: k).hex), ("lastSeen", "\(t.lastSeen.value)"),
                  ("status", s.agentStatus(k)?.rawValue ?? "none"),
                  ("outcomes", "completed \(o.completedAsWorker)/\(o.completedAsClient), refunded \(o.refunded), disputes \(o.disputes) lost \(o.disputesLost), ratings \(o.ratings) sum \(o.ratingSum)")]
        }
        return sorted(f)
    }

    static func alliance(_ k: AllianceID, _ s: LedgerState) -> [EntityField]? {
        guard let a = s.alliances[k] else { return nil }
        return sorted([("proposer", a.proposer.hex), ("targets", a.proposal.targets.map(\.hex).joined(separator: ",")),
                       ("purpose", a.proposal.purpose), ("terms", a.proposal.terms), ("durationMs", "\(a.proposal.durationMs)"),
                       ("proposedAtMs", "\(a.proposedAtMs)"), ("acceptByMs", "\(a.acceptByMs)"),
                       ("accepted", a.accepted.map(\.hex).joined(separator: ",")), ("status", a.status.description),
                       ("activeUntilMs", "\(a.activeUntilMs)")])
    }
}

/// Refusals of the audit queries (trace, diff, export): bad input, or a log that does not verify.
public enum AuditQueryError: Error, Equatable, Sendable, CustomStringConvertible {
    case badEntity(String, String)
    case badRange(String)
    case store(StoreError)
    /// The log failed verification: nothing it says is reported.
    case unverified(AuditFailure)

    public var description: String {
        switch self {
        case let .badEntity(e, why): "entity '\(e)': \(why)"
        case let .badRange(why): "bad range: \(why)"
        case let .store(e): e.description
        case let .unverified(f): "the log does not verify: \(f)"
        }
    }
}
