import LedgerCore

/// What an event's checks computed for its writes.
struct CheckedEvent {
    var offence: OffenceKey?
    var opinionCount: OpinionCount?
    var writes: EconomyWrites?
}

/// The folds of the chain's own kinds, one domain per function: transfers and staking,
/// validators (registration, retirement, key rotation, jail, evidence, opinions),
/// agents and alliances. Each domain has a check (no writes; it may refuse) and a
/// write (runs only after every check, the fee and the balance passed). The economy's
/// kinds are in EconomyFolds.swift and EconomyChecks.swift.
extension LedgerState {
    /// The checks of `payload`'s kind; no writes.
    func check(_ payload: Payload, _ e: Envelope, id: EventID, _ ctx: BlockContext, spend: inout UInt64) throws(ApplyError) -> CheckedEvent {
        switch payload.kind {
        case .transfer, .bond, .delegate, .unbond, .undelegate:
            try checkStaking(payload, author: e.author, spend: &spend)
            return CheckedEvent()
        case .validatorRegister, .validatorRetire, .validatorRotateKey, .validatorUnjail, .evidence, .opinion:
            return try checkValidatorEvent(payload, author: e.author, nonce: e.nonce, ctx)
        case .agentRegister, .agentUpdate, .agentDeregister, .alliancePropose, .allianceAccept, .allianceReject, .allianceDissolve:
            try checkAgentEvent(payload, author: e.author, id: id, ctx)
            return CheckedEvent()
        default:
            return CheckedEvent(writes: try checkEconomy(payload, author: e.author, id: id, ctx, spend: &spend))
        }
    }

    /// The writes of `payload`'s kind, after every check passed.
    mutating func write(_ payload: Payload, _ checked: CheckedEvent, author: PublicKey, id: EventID, _ ctx: BlockContext) {
        switch payload.kind {
        case .transfer, .bond, .delegate, .unbond, .undelegate:
            writeStaking(payload, author: author, at: ctx.height)
        case .validatorRegister, .validatorRetire, .validatorRotateKey, .validatorUnjail, .evidence, .opinion:
            writeValidatorEvent(payload, checked, author: author, id: id, at: ctx.height)
        case .agentRegister, .agentUpdate, .agentDeregister, .alliancePropose, .allianceAccept, .allianceReject, .allianceDissolve:
            writeAgentEvent(payload, author: author, id: id, ctx)
        default:
            applyEconomy(checked.writes!, author: author, at: ctx.height, governance: payload.kind == .govPropose || payload.kind == .govVote)
        }
    }

    // MARK: Transfers and staking

    /// Amounts are positive; stake and delegations exist to be taken back; what is moved adds to `spend`.
    func checkStaking(_ payload: Payload, author: PublicKey, spend: inout UInt64) throws(ApplyError) {
        switch payload {
        case let .transfer(_, amount, _):
            guard amount > 0 else { throw .zeroAmount }
            spend = try add(spend, amount)
        case let .bond(amount):
            guard amount > 0 else { throw .zeroAmount }
            // A jailed validator may bond: slashing can leave it below the minimum stake,
            // which it must hold again to regain power once unjailed.
            try requireValidator(ValidatorID(author), allowJailed: true)
            spend = try add(spend, amount)
        case let .delegate(v, amount):
            guard amount > 0 else { throw .zeroAmount }
            try requireValidator(v)
            spend = try add(spend, amount)
        case let .unbond(amount):
            guard amount > 0 else { throw .zeroAmount }
            guard let v = validators[ValidatorID(author)] else { throw .unknownValidator(author) }
            guard v.selfStake >= amount else { throw .insufficientStake(bonded: v.selfStake, requested: amount) }
        case let .undelegate(v, amount):
            guard amount > 0 else { throw .zeroAmount }
            guard validators[v] != nil else { throw .unknownValidator(v.raw) }
            let have = delegations[DelegationKey(delegator: author, validator: v)] ?? 0
            guard have >= amount else { throw .insufficientStake(bonded: have, requested: amount) }
        default: break
        }
    }

    mutating func writeStaking(_ payload: Payload, author: PublicKey, at h: Height) {
        switch payload {
        case let .transfer(to, amount, _):
            accounts[to, default: Account(balance: 0, nonce: 0)].balance += amount
        case let .bond(amount):
            validators[ValidatorID(author)]!.selfStake += amount
        case let .delegate(v, amount):
            delegations[DelegationKey(delegator: author, validator: v), default: 0] += amount
            validators[v]!.delegated += amount
        case let .unbond(amount):
            validators[ValidatorID(author)]!.selfStake -= amount
            unbonding.append(Unbonding(account: author, validator: ValidatorID(author), amount: amount, releaseAt: Height(h.value.saturatingAdd(parameters.unbondingBlocks))))
        case let .undelegate(v, amount):
            let k = DelegationKey(delegator: author, validator: v)
            let left = delegations[k]! - amount
            delegations[k] = left == 0 ? nil : left
            validators[v]!.delegated -= amount
            unbonding.append(Unbonding(account: author, validator: v, amount: amount, releaseAt: Height(h.value.saturatingAdd(parameters.unbondingBlocks))))
        default: break
        }
    }

    // MARK: Validators, evidence and opinions

    func checkValidatorEvent(_ payload: Payload, author: PublicKey, nonce: UInt64, _ ctx: BlockContext) throws(ApplyError) -> CheckedEvent {
        var checked = CheckedEvent()
        switch payload {
        case let .validatorRegister(name, _):
            guard validators[ValidatorID(author)] == nil else { throw .alreadyRegistered("validator \(author.short)") }
            guard consensusKeys[author] == nil else { throw .keyInUse(author) }
            guard !name.isEmpty else { throw .invalidProfile("empty validator name") }
        case .validatorRetire:
            // A jailed validator serves its term and unjails first: retiring would replace
            // the jailed status, and retirement is final.
            try requireValidator(ValidatorID(author))
        case let .validatorRotateKey(r):
            // Jailed validators may rotate: the equivocation may have come from a leaked key.
            try requireValidator(ValidatorID(author), allowJailed: true)
            guard r.oldKey == validators[ValidatorID(author)]!.consensusKey else { throw .wrongOldKey }
            guard consensusKeys[r.newKey] == nil else { throw .keyInUse(r.newKey) }
            guard r.verifies(chain: chainID.raw, validator: ValidatorID(author), nonce: nonce, crypto) else {
                throw .badRotationSignature
            }
        case .validatorUnjail:
            guard let v = validators[ValidatorID(author)], v.status == .jailed else { throw .notJailed }
            guard ctx.height >= v.jailedUntil else { throw .stillJailed(until: v.jailedUntil) }
        case let .evidence(first, second):
            checked.offence = try provenOffence(first, second)
        case let .opinion(o):
            guard validators[ValidatorID(author)] != nil else { throw .unknownValidator(author) }
            guard o.height.value >= 1 else { throw .invalidOpinion("there is no block at height 0") }
            guard o.height <= ctx.height else { throw .invalidOpinion("height \(o.height) is after the current block \(ctx.height)") }
            var c = opinionCounts[ValidatorID(author)] ?? OpinionCount()
            switch o.verdict {
            case .accept: c.accepted = try add(c.accepted, 1)
            case .refuse: c.refused = try add(c.refused, 1)
            }
            checked.opinionCount = c
        default: break
        }
        return checked
    }

    mutating func writeValidatorEvent(_ payload: Payload, _ checked: CheckedEvent, author: PublicKey, id: EventID, at h: Height) {
        switch payload {
        case let .validatorRegister(name, personality):
            validators[ValidatorID(author)] = ValidatorState(id: ValidatorID(author), name: name, personality: personality, consensusKey: author,
                                                keyHistory: [.init(from: nextEpochStart(after: h), key: author)], selfStake: 0, delegated: 0,
                                                status: .active, registeredAt: h)
            consensusKeys[author] = ValidatorID(author)
        case .validatorRetire:
            validators[ValidatorID(author)]!.status = .retired
        case let .validatorRotateKey(r):
            // Certificates are checked against the epoch's power (`powerForNextBlock`),
            // fixed at the epoch's start and keyed by the old key: the old key signs until
            // the epoch ends, the new one from the next epoch's first block on.
            validators[ValidatorID(author)]!.consensusKey = r.newKey
            validators[ValidatorID(author)]!.keyHistory.append(.init(from: nextEpochStart(after: h), key: r.newKey))
            consensusKeys[r.newKey] = ValidatorID(author)
        case .validatorUnjail:
            // Power returns at the next epoch, and only with the minimum self-stake.
            validators[ValidatorID(author)]!.status = .active
        case .evidence:
            slash(checked.offence!, evidence: id, at: h)
        case .opinion:
            opinionCounts[ValidatorID(author)] = checked.opinionCount!
        default: break
        }
    }

    // MARK: Agents and alliances

    func checkAgentEvent(_ payload: Payload, author: PublicKey, id: EventID, _ ctx: BlockContext) throws(ApplyError) {
        switch payload {
        case let .agentRegister(p):
            guard agents[author]?.active != true else { throw .alreadyRegistered("agent \(author.short)") }
            try Self.validate(p)
        case let .agentUpdate(p):
            guard agents[author]?.active == true else { throw .notRegistered("agent \(author.short)") }
            try Self.validate(p)
        case .agentDeregister:
            guard agents[author]?.active == true else { throw .notRegistered("agent \(author.short)") }
        case let .alliancePropose(p):
            guard isParticipant(author) else { throw .notRegistered("agent or validator \(author.short)") }
            guard !p.targets.isEmpty else { throw .invalidAlliance("no targets") }
            guard Set(p.targets).count == p.targets.count else { throw .invalidAlliance("a target appears twice") }
            guard !p.targets.contains(author) else { throw .invalidAlliance("the proposer cannot be a target") }
            for t in p.targets where !isParticipant(t) { throw .invalidAlliance("target \(t.short) is not a registered agent or validator") }
            guard p.durationMs > 0, p.durationMs <= parameters.allianceDurationMaxMs else {
                throw .invalidAlliance("duration must be 1...\(parameters.allianceDurationMaxMs) ms")
            }
            guard alliances[AllianceID(createdBy: id)] == nil else { throw .duplicateEvent(id) }
        case let .allianceAccept(a), let .allianceReject(a):
            guard let al = alliances[a] else { throw .unknownAlliance(a) }
            guard al.proposal.targets.contains(author) else { throw .notOffered(a) }
            if al.status == .expired || (al.status == .pending && ctx.timestampMs >= al.acceptByMs) {
                throw .allianceExpired(a)
            }
            guard al.status == .pending else { throw .allianceNotPending(a, al.status) }
            guard !al.accepted.contains(author) else { throw .alreadyAccepted(a) }
        case let .allianceDissolve(a):
            guard let al = alliances[a] else { throw .unknownAlliance(a) }
            guard al.members.contains(author) else { throw .notMember(a) }
            guard al.status == .active else { throw .allianceNotActive(a, al.status) }
        default: break
        }
    }

    mutating func writeAgentEvent(_ payload: Payload, author: PublicKey, id: EventID, _ ctx: BlockContext) {
        switch payload {
        case let .agentRegister(p):
            agents[author] = AgentState(profile: p, registeredAt: ctx.height, active: true)
        case let .agentUpdate(p):
            agents[author]!.profile = p
        case .agentDeregister:
            agents[author]!.active = false
        case let .alliancePropose(p):
            let aid = AllianceID(createdBy: id)
            alliances[aid] = AllianceState(id: aid, proposer: author, proposal: p, proposedAtMs: ctx.timestampMs,
                                          acceptByMs: ctx.timestampMs.saturatingAdd(parameters.allianceAcceptWindowMs),
                                          accepted: [], status: .pending, activeUntilMs: 0)
            noteAlliance(aid)
        case let .allianceAccept(a):
            var al = alliances[a]!
            al.accepted.append(author)
            al.accepted.sort()
            if al.accepted.count == al.proposal.targets.count {
                al.status = .active
                al.activeUntilMs = ctx.timestampMs.saturatingAdd(al.proposal.durationMs)
            }
            alliances[a] = al  // pending before, pending or active now: live either way
        case let .allianceReject(a):
            alliances[a]!.status = .rejected
            noteAlliance(a)
        case let .allianceDissolve(a):
            alliances[a]!.status = .dissolved
            noteAlliance(a)
        default: break
        }
    }

    /// Whether the derived indexes agree with the state they derive from (the oracle
    /// the fold scripts and the simulator check after every step).
    public var derivedIndexesHold: Bool {
        let h = height
        return liveAlliances == Set(alliances.contents.keys { $0.status == .pending || $0.status == .active })
            && undrawnDisputes == Set(economy.jobs.contents.keys { Self.awaitsArbiters($0, at: h) })
            && pendingProposals == Set(economy.proposals.contents.keys { $0.status == .pending })
    }

    /// A dispute opened at `h` whose arbiters are not drawn yet.
    static func awaitsArbiters(_ j: borrowing Job, at h: Height) -> Bool {
        j.status == .disputed && j.dispute?.arbiters.isEmpty == true && j.dispute?.openedAt == h
    }

    /// Keeps `undrawnDisputes` after a write to job `j`.
    mutating func noteJob(_ j: Job) {
        if Self.awaitsArbiters(j, at: height) { undrawnDisputes.insert(j.id) } else { undrawnDisputes.remove(j.id) }
    }

    /// Keeps `pendingProposals` after a write to proposal `p`.
    mutating func noteProposal(_ p: ProposalState) {
        if p.status == .pending { pendingProposals.insert(p.id) } else { pendingProposals.remove(p.id) }
    }

    /// Recomputes the economy's derived indexes (after decoding a snapshot).
    mutating func deriveEconomyIndexes() {
        let h = height
        undrawnDisputes = Set(economy.jobs.contents.keys { Self.awaitsArbiters($0, at: h) })
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
