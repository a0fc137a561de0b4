import LedgerCore

/// What an event's checks computed for its writes.
struct CheckedEvent {
    var offence: OffenceKey?
    var opinionCount: OpinionCount?
    var writes: EconomyWrites?
}

/// The folds of the chain's own kinds, one check and one write per kind, grouped by
/// domain: transfers and staking; validators (registration, retirement, key rotation,
/// jail, evidence, opinions); agents and alliances. A check makes no writes and may
/// refuse; a write runs only after every check, the fee and the balance passed. The
/// economy's kinds are in EconomyFolds.swift and EconomyChecks.swift.
extension LedgerState {
    /// The checks of `payload`'s kind; no writes.
    func check(_ payload: Payload, _ e: Envelope, id: EventID, _ ctx: BlockContext, spend: inout UInt64) throws(ApplyError) -> CheckedEvent {
        let author = e.author
        switch payload {
        case let .transfer(_, amount, _): spend = try add(spend, try checkTransfer(amount))
        case let .bond(amount): spend = try add(spend, try checkBond(amount, author: author))
        case let .delegate(v, amount): spend = try add(spend, try checkDelegate(v, amount))
        case let .unbond(amount): try checkUnbond(amount, author: author)
        case let .undelegate(v, amount): try checkUndelegate(v, amount, author: author)
        case let .validatorRegister(name, _): try checkValidatorRegister(name, author: author)
        case .validatorRetire: try checkValidatorRetire(author: author)
        case let .validatorRotateKey(r): try checkValidatorRotateKey(r, author: author, nonce: e.nonce)
        case .validatorUnjail: try checkValidatorUnjail(author: author, ctx)
        case let .evidence(first, second): return CheckedEvent(offence: try provenOffence(first, second))
        case let .opinion(o): return CheckedEvent(opinionCount: try checkOpinion(o, author: author, ctx))
        case let .agentRegister(p):
            try checkAgentRegister(p, author: author)
            spend = try add(spend, bondToLock(.agentRegister, author: author))
        case let .agentUpdate(p):
            try checkAgentUpdate(p, author: author)
            spend = try add(spend, bondToLock(.agentUpdate, author: author))
        case .agentDeregister: try checkAgentDeregister(author: author)
        case .agentHeartbeat: try checkHeartbeat(author: author)
        case let .alliancePropose(p): try checkAlliancePropose(p, author: author, id: id)
        case let .allianceAccept(a), let .allianceReject(a): try checkAllianceAnswer(a, author: author, ctx)
        case let .allianceDissolve(a): try checkAllianceDissolve(a, author: author)
        default: return CheckedEvent(writes: try checkEconomy(payload, author: author, id: id, ctx, spend: &spend))
        }
        return CheckedEvent()
    }

    /// The writes of `payload`'s kind, after every check passed.
    mutating func write(_ payload: Payload, _ checked: CheckedEvent, author: PublicKey, id: EventID, _ ctx: BlockContext) {
        let h = ctx.height
        switch payload {
        case let .transfer(to, amount, _):
            noteOrigin(of: to, from: author)
            writeTransfer(to: to, amount)
        case let .bond(amount): writeBond(amount, author: author)
        case let .delegate(v, amount): writeDelegate(v, amount, author: author)
        case let .unbond(amount): writeUnbond(amount, author: author, at: h)
        case let .undelegate(v, amount): writeUndelegate(v, amount, author: author, at: h)
        case let .validatorRegister(name, personality): writeValidatorRegister(name, personality, author: author, at: h)
        case .validatorRetire: validators[ValidatorID(author)]!.status = .retired
        case let .validatorRotateKey(r): writeValidatorRotateKey(r, author: author, at: h)
        case .validatorUnjail: writeValidatorUnjail(author: author)
        case .evidence: slash(checked.offence!, evidence: id, at: h)
        case .opinion: opinionCounts[ValidatorID(author)] = checked.opinionCount!
        case let .agentRegister(p): writeAgentRegister(p, author: author, at: h)
        case let .agentUpdate(p): writeAgentUpdate(p, author: author, at: h)
        case .agentDeregister: writeAgentDeregister(author: author, at: h)
        case .agentHeartbeat: break
        case let .alliancePropose(p): writeAlliancePropose(p, author: author, id: id, ctx)
        case let .allianceAccept(a): writeAllianceAccept(a, author: author, ctx)
        case let .allianceReject(a): writeAllianceEnd(a, .rejected)
        case let .allianceDissolve(a): writeAllianceEnd(a, .dissolved)
        default:
            applyEconomy(checked.writes!, author: author, at: h, governance: payload.kind == .govPropose || payload.kind == .govVote)
        }
        noteSeen(author, at: h)
    }

    // MARK: Transfers and staking (amounts are positive; what is moved is spent)

    /// A transfer's amount, spent by the author.
    func checkTransfer(_ amount: UInt64) throws(ApplyError) -> UInt64 {
        guard amount > 0 else { throw .zeroAmount }
        return amount
    }

    mutating func writeTransfer(to: PublicKey, _ amount: UInt64) {
        accounts[to, default: Account(balance: 0, nonce: 0)].balance += amount
    }

    /// A bond's amount, spent by the author. A jailed validator may bond: slashing can
    /// leave it below the minimum stake, which it must hold again to regain power.
    func checkBond(_ amount: UInt64, author: PublicKey) throws(ApplyError) -> UInt64 {
        guard amount > 0 else { throw .zeroAmount }
        try requireValidator(ValidatorID(author), allowJailed: true)
        return amount
    }

    mutating func writeBond(_ amount: UInt64, author: PublicKey) {
        validators[ValidatorID(author)]!.selfStake += amount
    }

    /// A delegation's amount, spent by the author, to a validator that takes it.
    func checkDelegate(_ v: ValidatorID, _ amount: UInt64) throws(ApplyError) -> UInt64 {
        guard amount > 0 else { throw .zeroAmount }
        try requireValidator(v)
        return amount
    }

    mutating func writeDelegate(_ v: ValidatorID, _ amount: UInt64, author: PublicKey) {
        delegations[DelegationKey(delegator: author, validator: v), default: 0] += amount
        validators[v]!.delegated += amount
    }

    /// Self-stake to take back exists.
    func checkUnbond(_ amount: UInt64, author: PublicKey) throws(ApplyError) {
        guard amount > 0 else { throw .zeroAmount }
        guard let v = validators[ValidatorID(author)] else { throw .unknownValidator(author) }
        guard v.selfStake >= amount else { throw .insufficientStake(bonded: v.selfStake, requested: amount) }
    }

    mutating func writeUnbond(_ amount: UInt64, author: PublicKey, at h: Height) {
        validators[ValidatorID(author)]!.selfStake -= amount
        unbonding.append(Unbonding(account: author, validator: ValidatorID(author), amount: amount,
                                   releaseAt: Height(h.value.saturatingAdd(parameters.unbondingBlocks))))
    }

    /// A delegation to take back exists.
    func checkUndelegate(_ v: ValidatorID, _ amount: UInt64, author: PublicKey) throws(ApplyError) {
        guard amount > 0 else { throw .zeroAmount }
        guard validators[v] != nil else { throw .unknownValidator(v.raw) }
        let have = delegations[DelegationKey(delegator: author, validator: v)] ?? 0
        guard have >= amount else { throw .insufficientStake(bonded: have, requested: amount) }
    }

    mutating func writeUndelegate(_ v: ValidatorID, _ amount: UInt64, author: PublicKey, at h: Height) {
        let k = DelegationKey(delegator: author, validator: v)
        let left = delegations[k]! - amount
        delegations[k] = left == 0 ? nil : left
        validators[v]!.delegated -= amount
        unbonding.append(Unbonding(account: author, validator: v, amount: amount, releaseAt: Height(h.value.saturatingAdd(parameters.unbondingBlocks))))
    }

    // MARK: Validators, evidence and opinions

    func checkValidatorRegister(_ name: String, author: PublicKey) throws(ApplyError) {
        guard validators[ValidatorID(author)] == nil else { throw .alreadyRegistered("validator \(author.short)") }
        guard consensusKeys[author] == nil else { throw .keyInUse(author) }
        guard !name.isEmpty else { throw .invalidProfile("empty validator name") }
    }

    mutating func writeValidatorRegister(_ name: String, _ personality: String, author: PublicKey, at h: Height) {
        validators[ValidatorID(author)] = ValidatorState(id: ValidatorID(author), name: name, personality: personality, consensusKey: author,
                                                         keyHistory: [.init(from: nextEpochStart(after: h), key: author)], selfStake: 0,
                                                         delegated: 0, status: .active, registeredAt: h)
        consensusKeys[author] = ValidatorID(author)
    }

    /// A jailed validator serves its term and unjails first: retiring would replace the
    /// jailed status, and retirement is final.
    func checkValidatorRetire(author: PublicKey) throws(ApplyError) {
        try requireValidator(ValidatorID(author))
    }

    /// Jailed validators may rotate: the equivocation may have come from a leaked key.
    func checkValidatorRotateKey(_ r: KeyRotation, author: PublicKey, nonce: UInt64) throws(ApplyError) {
        try requireValidator(ValidatorID(author), allowJailed: true)
        guard r.oldKey == validators[ValidatorID(author)]!.consensusKey else { throw .wrongOldKey }
        guard consensusKeys[r.newKey] == nil else { throw .keyInUse(r.newKey) }
        guard r.verifies(chain: chainID.raw, validator: ValidatorID(author), nonce: nonce, crypto) else {
            throw .badRotationSignature
        }
    }

    /// Certificates are checked against the epoch's power (`powerForNextBlock`), fixed at
    /// the epoch's start and keyed by the old key: the old key signs until the epoch
    /// ends, the new one from the next epoch's first block on.
    mutating func writeValidatorRotateKey(_ r: KeyRotation, author: PublicKey, at h: Height) {
        validators[ValidatorID(author)]!.consensusKey = r.newKey
        validators[ValidatorID(author)]!.keyHistory.append(.init(from: nextEpochStart(after: h), key: r.newKey))
        consensusKeys[r.newKey] = ValidatorID(author)
    }

    func checkValidatorUnjail(author: PublicKey, _ ctx: BlockContext) throws(ApplyError) {
        guard let v = validators[ValidatorID(author)], v.status == .jailed else { throw .notJailed }
        guard ctx.height >= v.jailedUntil else { throw .stillJailed(until: v.jailedUntil) }
    }

    /// Power returns at the next epoch, and only with the minimum self-stake.
    mutating func writeValidatorUnjail(author: PublicKey) {
        validators[ValidatorID(author)]!.status = .active
    }

    /// The author's opinion counts after this opinion.
    func checkOpinion(_ o: Opinion, author: PublicKey, _ ctx: BlockContext) throws(ApplyError) -> OpinionCount {
        guard validators[ValidatorID(author)] != nil else { throw .unknownValidator(author) }
        guard o.height.value >= 1 else { throw .invalidOpinion("there is no block at height 0") }
        guard o.height <= ctx.height else { throw .invalidOpinion("height \(o.height) is after the current block \(ctx.height)") }
        var c = opinionCounts[ValidatorID(author)] ?? OpinionCount()
        switch o.verdict {
        case .accept: c.accepted = try add(c.accepted, 1)
        case .refuse: c.refused = try add(c.refused, 1)
        }
        return c
    }

    // MARK: Agents and alliances

    func checkAgentRegister(_ p: AgentProfile, author: PublicKey) throws(ApplyError) {
        guard agents[author]?.active != true else { throw .alreadyRegistered("agent \(author.short)") }
        try Self.validate(p)
    }

    func checkAgentUpdate(_ p: AgentProfile, author: PublicKey) throws(ApplyError) {
        guard agents[author]?.active == true else { throw .notRegistered("agent \(author.short)") }
        try Self.validate(p)
    }

    func checkAgentDeregister(author: PublicKey) throws(ApplyError) {
        guard agents[author]?.active == true else { throw .notRegistered("agent \(author.short)") }
    }

    func checkAlliancePropose(_ p: AllianceProposal, author: PublicKey, id: EventID) throws(ApplyError) {
        guard isParticipant(author) else { throw .notRegistered("agent or validator \(author.short)") }
        guard !p.targets.isEmpty else { throw .invalidAlliance("no targets") }
        guard Set(p.targets).count == p.targets.count else { throw .invalidAlliance("a target appears twice") }
        guard !p.targets.contains(author) else { throw .invalidAlliance("the proposer cannot be a target") }
        for t in p.targets where !isParticipant(t) { throw .invalidAlliance("target \(t.short) is not a registered agent or validator") }
        guard p.durationMs > 0, p.durationMs <= parameters.allianceDurationMaxMs else {
            throw .invalidAlliance("duration must be 1...\(parameters.allianceDurationMaxMs) ms")
        }
        guard alliances[AllianceID(createdBy: id)] == nil else { throw .duplicateEvent(id) }
    }

    mutating func writeAlliancePropose(_ p: AllianceProposal, author: PublicKey, id: EventID, _ ctx: BlockContext) {
        let aid = AllianceID(createdBy: id)
        alliances[aid] = AllianceState(id: aid, proposer: author, proposal: p, proposedAtMs: ctx.timestampMs,
                                       acceptByMs: ctx.timestampMs.saturatingAdd(parameters.allianceAcceptWindowMs),
                                       accepted: [], status: .pending, activeUntilMs: 0)
        noteAlliance(aid)
    }

    /// An accept or a reject: the author is a target that has not answered, and the
    /// proposal is still pending.
    func checkAllianceAnswer(_ a: AllianceID, author: PublicKey, _ ctx: BlockContext) throws(ApplyError) {
        guard let al = alliances[a] else { throw .unknownAlliance(a) }
        guard al.proposal.targets.contains(author) else { throw .notOffered(a) }
        if al.status == .expired || (al.status == .pending && ctx.timestampMs >= al.acceptByMs) {
            throw .allianceExpired(a)
        }
        guard al.status == .pending else { throw .allianceNotPending(a, al.status) }
        guard !al.accepted.contains(author) else { throw .alreadyAccepted(a) }
    }

    mutating func writeAllianceAccept(_ a: AllianceID, author: PublicKey, _ ctx: BlockContext) {
        var al = alliances[a]!
        al.accepted.append(author)
        al.accepted.sort()
        if al.accepted.count == al.proposal.targets.count {
            al.status = .active
            al.activeUntilMs = ctx.timestampMs.saturatingAdd(al.proposal.durationMs)
        }
        alliances[a] = al  // pending before, pending or active now: live either way
    }

    func checkAllianceDissolve(_ a: AllianceID, author: PublicKey) throws(ApplyError) {
        guard let al = alliances[a] else { throw .unknownAlliance(a) }
        guard al.members.contains(author) else { throw .notMember(a) }
        guard al.status == .active else { throw .allianceNotActive(a, al.status) }
    }

    /// A reject or a dissolution: the alliance ends in `status`.
    mutating func writeAllianceEnd(_ a: AllianceID, _ status: AllianceStatus) {
        alliances[a]!.status = status
        noteAlliance(a)
    }

    /// Whether the derived indexes agree with the state they derive from (the oracle
    /// the fold scripts and the simulator check after every step).
    public var derivedIndexesHold: Bool {
        let h = height
        return liveAlliances == Set(alliances.contents.keys { $0.status == .pending || $0.status == .active })
            && undrawnDisputes == Set(economy.jobs.contents.keys { Self.awaitsArbiters($0, at: h) })
            && undrawnEvaluators == Set(economy.jobs.contents.keys { Self.awaitsEvaluator($0) })
            && pendingProposals == Set(economy.proposals.contents.keys { $0.status == .pending })
    }

    /// A dispute opened at `h` whose arbiters are not drawn yet.
    static func awaitsArbiters(_ j: borrowing Job, at h: Height) -> Bool {
        j.status == .disputed && j.dispute?.arbiters.isEmpty == true && j.dispute?.openedAt == h
    }

    /// An accepted job whose evaluator is to be drawn and is not yet.
    static func awaitsEvaluator(_ j: borrowing Job) -> Bool {
        guard case .drawn = j.spec.evaluation else { return false }
        return j.status == .accepted && j.evaluator == .zero
    }

    /// Keeps `undrawnDisputes` and `undrawnEvaluators` after a write to job `j`.
    mutating func noteJob(_ j: Job) {
        if Self.awaitsArbiters(j, at: height) { undrawnDisputes.insert(j.id) } else { undrawnDisputes.remove(j.id) }
        if Self.awaitsEvaluator(j) { undrawnEvaluators.insert(j.id) } else { undrawnEvaluators.remove(j.id) }
    }

    /// Keeps `pendingProposals` after a write to proposal `p`.
    mutating func noteProposal(_ p: ProposalState) {
        if p.status == .pending { pendingProposals.insert(p.id) } else { pendingProposals.remove(p.id) }
    }

    /// Recomputes the economy's derived indexes (after decoding a snapshot).
    mutating func deriveEconomyIndexes() {
        let h = height
        undrawnDisputes = Set(economy.jobs.contents.keys { Self.awaitsArbiters($0, at: h) })
        undrawnEvaluators = Set(economy.jobs.contents.keys { Self.awaitsEvaluator($0) })
        pendingProposals = Set(economy.proposals.contents.keys { $0.status == .pending })
    }

    /// Keeps `liveAlliances` after a write to alliance `id`.
    mutating func noteAlliance(_ id: AllianceID) {
        switch alliances[id]?.status {
        case .pending?, .active?: liveAlliances.insert(id)
        default: liveAlliances.remove(id)
        }
    }
}
