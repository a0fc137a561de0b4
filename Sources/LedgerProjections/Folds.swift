import LedgerCore
import LedgerCrypto

/// The block context a fold gets: consensus agreed on it, so folds never read a clock.
public struct BlockContext: Sendable {
    public var height: Height
    public var timestampMs: UInt64
    public var proposer: PublicKey
    /// The root of the state the block starts from (its header's parent state root),
    /// when the caller has it; `beginBlock` hashes the state itself when it needs the
    /// root (an arbiter draw) and this is nil.
    public var parentStateRoot: Hash32?
    public init(height: Height, timestampMs: UInt64, proposer: PublicKey, parentStateRoot: Hash32? = nil) {
        self.height = height; self.timestampMs = timestampMs; self.proposer = proposer; self.parentStateRoot = parentStateRoot
    }
}

extension UInt64 {
    /// Heights and block times far in the future stay far in the future, never wrap.
    @inline(__always)
    func saturatingAdd(_ b: UInt64) -> UInt64 {
        let (s, o) = addingReportingOverflow(b)
        return o ? .max : s
    }
}

@inline(__always)
func add(_ a: UInt64, _ b: UInt64) throws(ApplyError) -> UInt64 {
    let (s, o) = a.addingReportingOverflow(b)
    if o { throw .overflow }
    return s
}

extension LedgerState {
    /// Starts a block: fixes the epoch's voting power when the block starts an epoch,
    /// releases matured unbondings and expires alliances whose time has passed at the
    /// block's timestamp. Checks the height and time order.
    public mutating func beginBlock(_ ctx: BlockContext) throws(BlockError) {
        guard ctx.height == height.next else { throw .outOfOrder(expected: height.next, got: ctx.height) }
        guard ctx.timestampMs >= timestampMs else { throw .timeWentBackwards(parent: timestampMs, block: ctx.timestampMs) }
        // Arbiters for the disputes the previous block opened, seeded by the state it left.
        drawPendingArbiters(seed: ctx.parentStateRoot)
        // The previous block's rewards and base fee, under the power it was certified by.
        settleBlock(ctx)
        // The power of the state before the epoch's first block: exactly what
        // `powerForNextBlock()` of the parent state gave the certificate check.
        if Self.isEpochStart(ctx.height, interval: parameters.checkpointInterval) { epochPower = votingPower() }
        height = ctx.height
        timestampMs = ctx.timestampMs
        activateProposals(ctx)
        if economy.ruleVersion >= RuleVersion.economy { economy.lastProposer = consensusKeys[ctx.proposer] ?? ctx.proposer }
        if unbonding.contains(where: { $0.releaseAt <= ctx.height }) {
            var keep: [Unbonding] = []
            for u in unbonding {
                if u.releaseAt <= ctx.height {
                    // Supply is conserved, so a balance can never overflow here.
                    accounts[u.account, default: Account(balance: 0, nonce: 0)].balance += u.amount
                } else {
                    keep.append(u)
                }
            }
            unbonding = keep
        }
        for (id, a) in alliances {
            if a.status == .pending, ctx.timestampMs >= a.acceptByMs { alliances[id]!.status = .expired }
            if a.status == .active, ctx.timestampMs >= a.activeUntilMs { alliances[id]!.status = .expired }
        }
    }

    /// Applies one event whose signature was already verified. On error nothing changed:
    /// every case validates all of its conditions before its first write.
    public mutating func apply(_ e: Envelope, id: EventID, _ ctx: BlockContext) throws(ApplyError) {
        guard e.chainID == chainID.raw else { throw .wrongChain }
        guard let acct = accounts[e.author] else { throw .unknownAuthor(e.author) }
        let expected = acct.nonce + 1
        guard e.nonce >= expected else { throw .staleNonce(expected: expected, got: e.nonce) }
        guard e.nonce == expected else { throw .futureNonce(expected: expected, got: e.nonce) }
        guard e.fee >= parameters.minFee else { throw .feeTooLow(minimum: parameters.minFee, offered: e.fee) }
        let payload: Payload
        do { payload = try e.decodePayload() } catch { throw .malformedPayload(error) }
        // Rule version 2: the fee pays for the event's gas at the block's base fee.
        let economic = economy.ruleVersion >= RuleVersion.economy
        var gas: UInt64 = 0, baseCharge: UInt64 = 0
        if economic {
            gas = Gas.of(payload.kind, bytes: e.bytes.count)
            let (c, o) = gas.multipliedReportingOverflow(by: economy.baseFee)
            guard !o, e.fee >= c else { throw .feeTooLow(minimum: o ? .max : c, offered: e.fee) }
            baseCharge = c
        }

        // What the author must hold after the fee, and the validations of each kind.
        var spend: UInt64 = e.fee
        let author = e.author
        // Computed while validating, written after every check passed.
        var offence: OffenceKey? = nil
        var opinionCount: OpinionCount? = nil
        var writes: EconomyWrites? = nil
        switch payload {
        case let .transfer(_, amount, _):
            guard amount > 0 else { throw .zeroAmount }
            spend = try add(spend, amount)
        case let .bond(amount):
            guard amount > 0 else { throw .zeroAmount }
            // A jailed validator may bond: slashing can leave it below the minimum stake,
            // which it must hold again to regain power once unjailed.
            try requireValidator(author, allowJailed: true)
            spend = try add(spend, amount)
        case let .delegate(v, amount):
            guard amount > 0 else { throw .zeroAmount }
            try requireValidator(v)
            spend = try add(spend, amount)
        case let .unbond(amount):
            guard amount > 0 else { throw .zeroAmount }
            guard let v = validators[author] else { throw .unknownValidator(author) }
            guard v.selfStake >= amount else { throw .insufficientStake(bonded: v.selfStake, requested: amount) }
        case let .undelegate(v, amount):
            guard amount > 0 else { throw .zeroAmount }
            guard validators[v] != nil else { throw .unknownValidator(v) }
            let have = delegations[DelegationKey(delegator: author, validator: v)] ?? 0
            guard have >= amount else { throw .insufficientStake(bonded: have, requested: amount) }
        case let .validatorRegister(name, _):
            guard validators[author] == nil else { throw .alreadyRegistered("validator \(author.short)") }
            guard consensusKeys[author] == nil else { throw .keyInUse(author) }
            guard !name.isEmpty else { throw .invalidProfile("empty validator name") }
        case .validatorRetire:
            // A jailed validator serves its term and unjails first: retiring would replace
            // the jailed status, and retirement is final.
            try requireValidator(author)
        case let .validatorRotateKey(r):
            // Jailed validators may rotate: the equivocation may have come from a leaked key.
            try requireValidator(author, allowJailed: true)
            guard r.oldKey == validators[author]!.consensusKey else { throw .wrongOldKey }
            guard consensusKeys[r.newKey] == nil else { throw .keyInUse(r.newKey) }
            guard EventCrypto.verifyRotation(r, chain: chainID.raw, validator: author, nonce: e.nonce) else {
                throw .badRotationSignature
            }
        case .validatorUnjail:
            guard let v = validators[author], v.status == .jailed else { throw .notJailed }
            guard ctx.height >= v.jailedUntil else { throw .stillJailed(until: v.jailedUntil) }
        case let .evidence(first, second):
            offence = try provenOffence(first, second)
        case let .opinion(o):
            guard validators[author] != nil else { throw .unknownValidator(author) }
            guard o.height.value >= 1 else { throw .invalidOpinion("there is no block at height 0") }
            guard o.height <= ctx.height else { throw .invalidOpinion("height \(o.height) is after the current block \(ctx.height)") }
            var c = opinionCounts[author] ?? OpinionCount()
            switch o.verdict {
            case .accept: c.accepted = try add(c.accepted, 1)
            case .refuse: c.refused = try add(c.refused, 1)
            }
            opinionCount = c
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
            guard alliances[id] == nil else { throw .duplicateEvent(id) }
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
        default:
            writes = try checkEconomy(payload, author: author, id: id, nonce: e.nonce, ctx, spend: &spend)
        }
        // What an economy event pays the author (a claim, a release to the worker) may
        // pay its own fee: it is credited before the fee and the spend are taken.
        var incoming: UInt64 = 0
        if let w = writes {
            try checkCredits(w)
            for (k, a) in w.credits where k == author { incoming = try add(incoming, a) }
        }
        let available = try add(acct.balance, incoming)
        guard available >= spend else { throw .insufficientBalance(needed: spend, available: available) }
        // Credits that could overflow are checked before the first write.
        let feeRecipient = consensusKeys[ctx.proposer] ?? ctx.proposer
        if case let .transfer(to, amount, _) = payload, to != author {
            _ = try add(accounts[to]?.balance ?? 0, amount)
        }
        // Version 1 pays the whole fee to the proposer at once; version 2 burns
        // `feeBurnBps` of the base charge and pools the rest for the next block to share.
        var burn: UInt64 = 0
        if economic {
            burn = UInt64(UInt128(baseCharge) * UInt128(economy.parameters.feeBurnBps) / UInt128(ChainParameters.basisPoints))
            _ = try add(economy.feePool, e.fee - burn)
            _ = try add(economy.blockGasUsed, gas)
        } else if feeRecipient != author {
            _ = try add(accounts[feeRecipient]?.balance ?? 0, e.fee)
        }

        // --- Every check passed: from here on, only writes. ---
        accounts[author]!.nonce = e.nonce
        accounts[author]!.balance = available - spend
        if economic {
            economy.feePool += e.fee - burn
            economy.feesBurned += burn
            economy.blockGasUsed += gas
            totalSupply -= burn
        } else {
            accounts[feeRecipient, default: Account(balance: 0, nonce: 0)].balance += e.fee
        }
        feesPaid &+= e.fee
        eventsApplied += 1
        let h = ctx.height
        switch payload {
        case let .transfer(to, amount, _):
            accounts[to, default: Account(balance: 0, nonce: 0)].balance += amount
        case let .bond(amount):
            validators[author]!.selfStake += amount
        case let .delegate(v, amount):
            delegations[DelegationKey(delegator: author, validator: v), default: 0] += amount
            validators[v]!.delegated += amount
        case let .unbond(amount):
            validators[author]!.selfStake -= amount
            unbonding.append(Unbonding(account: author, validator: author, amount: amount, releaseAt: Height(h.value.saturatingAdd(parameters.unbondingBlocks))))
        case let .undelegate(v, amount):
            let k = DelegationKey(delegator: author, validator: v)
            let left = delegations[k]! - amount
            delegations[k] = left == 0 ? nil : left
            validators[v]!.delegated -= amount
            unbonding.append(Unbonding(account: author, validator: v, amount: amount, releaseAt: Height(h.value.saturatingAdd(parameters.unbondingBlocks))))
        case let .validatorRegister(name, personality):
            validators[author] = ValidatorState(id: author, name: name, personality: personality, consensusKey: author,
                                                keyHistory: [.init(from: nextEpochStart(after: h), key: author)], selfStake: 0, delegated: 0,
                                                status: .active, registeredAt: h)
            consensusKeys[author] = author
        case .validatorRetire:
            validators[author]!.status = .retired
        case let .validatorRotateKey(r):
            // Certificates are checked against the epoch's power (`powerForNextBlock`),
            // fixed at the epoch's start and keyed by the old key: the old key signs until
            // the epoch ends, the new one from the next epoch's first block on.
            validators[author]!.consensusKey = r.newKey
            validators[author]!.keyHistory.append(.init(from: nextEpochStart(after: h), key: r.newKey))
            consensusKeys[r.newKey] = author
        case .validatorUnjail:
            // Power returns at the next epoch, and only with the minimum self-stake.
            validators[author]!.status = .active
        case .evidence:
            slash(offence!, evidence: id, at: h)
        case .opinion:
            opinionCounts[author] = opinionCount!
        case let .agentRegister(p):
            agents[author] = AgentState(profile: p, registeredAt: h, active: true)
        case let .agentUpdate(p):
            agents[author]!.profile = p
        case .agentDeregister:
            agents[author]!.active = false
        case let .alliancePropose(p):
            alliances[id] = AllianceState(id: id, proposer: author, proposal: p, proposedAtMs: ctx.timestampMs,
                                          acceptByMs: ctx.timestampMs.saturatingAdd(parameters.allianceAcceptWindowMs),
                                          accepted: [], status: .pending, activeUntilMs: 0)
        case let .allianceAccept(a):
            var al = alliances[a]!
            al.accepted.append(author)
            al.accepted.sort()
            if al.accepted.count == al.proposal.targets.count {
                al.status = .active
                al.activeUntilMs = ctx.timestampMs.saturatingAdd(al.proposal.durationMs)
            }
            alliances[a] = al
        case let .allianceReject(a):
            alliances[a]!.status = .rejected
        case let .allianceDissolve(a):
            alliances[a]!.status = .dissolved
        default:
            applyEconomy(writes!, author: author, at: h, governance: payload.kind == .govPropose || payload.kind == .govVote)
        }
    }

    func requireValidator(_ v: ValidatorID, allowJailed: Bool = false) throws(ApplyError) {
        guard let s = validators[v] else { throw .unknownValidator(v) }
        switch s.status {
        case .active: return
        case .retired: throw .validatorRetired(v)
        case .jailed: if !allowJailed { throw .validatorJailed(v) }
        }
    }

    /// The first block at or after `h + 1` that starts an epoch: where a key or power
    /// change made in block `h` starts to count for certificates.
    func nextEpochStart(after h: Height) -> Height {
        let k = parameters.checkpointInterval
        let epochs = h.value / k + (h.value % k == 0 ? 0 : 1)
        let (m, o1) = epochs.multipliedReportingOverflow(by: k)
        return o1 ? Height(.max) : Height(m.saturatingAdd(1))
    }

    /// Checks an evidence pair and returns the offence it proves. Refuses a malformed
    /// message, a pair that is no equivocation (`Equivocation.detect` decides: forged
    /// signatures, identical messages, different signers, kinds, heights or views, the
    /// same block), a signer that is no validator's consensus key, and an offence
    /// already punished (whichever pair proved it, in whichever order).
    func provenOffence(_ first: [UInt8], _ second: [UInt8]) throws(ApplyError) -> OffenceKey {
        let a: SignedConsensusMessage, b: SignedConsensusMessage
        do { a = try SignedConsensusMessage.decode(first) } catch { throw .invalidEvidence("first message: \(error)") }
        do { b = try SignedConsensusMessage.decode(second) } catch { throw .invalidEvidence("second message: \(error)") }
        guard Equivocation.detect(a, b, chain: chainID.raw) != nil else {
            throw .invalidEvidence(Self.whyNoEquivocation(a, b, chain: chainID.raw))
        }
        guard let v = consensusKeys[a.signer] else { throw .unknownValidator(a.signer) }
        let key = OffenceKey(validator: v, height: a.message.height, view: a.message.view ?? 0, kind: a.message.tag)
        guard !offences.contains(key) else { throw .duplicateEvidence }
        return key
    }

    /// The reason a pair is no evidence, for the refusal (the decision is `Equivocation.detect`'s).
    static func whyNoEquivocation(_ a: SignedConsensusMessage, _ b: SignedConsensusMessage, chain: Bytes32) -> String {
        if a.signer != b.signer { return "the messages have different signers" }
        if a == b { return "the two messages are identical" }
        if a.message.tag != b.message.tag { return "the messages are of different kinds" }
        if a.message.height != b.message.height { return "the messages are for different heights" }
        if a.message.view != b.message.view { return "the messages are for different views" }
        if a.message == b.message { return "both messages sign the same block" }
        if !a.verify(chain: chain) || !b.verify(chain: chain) { return "a signature does not verify" }
        return "not an equivocation"
    }

    /// Punishes a proven offence: burns `slashFractionBps` of the self-stake (supply
    /// shrinks by as much) and jails the validator for `jailBlocks`. A retired validator
    /// is slashed but stays retired (retirement is final; unjailing would revive it);
    /// a jailed one serves until the later of its two terms.
    mutating func slash(_ o: OffenceKey, evidence: EventID, at h: Height) {
        let v = validators[o.validator]!
        // slashFractionBps ≤ 10,000, so the amount never exceeds the stake.
        let amount = UInt64(UInt128(v.selfStake) * UInt128(parameters.slashFractionBps) / UInt128(ChainParameters.basisPoints))
        validators[o.validator]!.selfStake = v.selfStake - amount
        totalSupply -= amount
        burned += amount
        slashes.append(SlashRecord(validator: o.validator, offenceHeight: o.height, offenceView: o.view, stakeBefore: v.selfStake,
                                   amount: amount, evidence: evidence, slashedAt: h))
        if v.status != .retired { validators[o.validator]!.status = .jailed }
        validators[o.validator]!.jailedUntil = max(v.jailedUntil, Height(h.value.saturatingAdd(parameters.jailBlocks)))
        offences.insert(o)
        if economy.ruleVersion >= RuleVersion.economy { slashDelegations(o.validator, evidence: evidence, at: h) }
    }

    func isParticipant(_ k: PublicKey) -> Bool {
        agents[k]?.active == true || validators[k]?.status == .active
    }

    static func validate(_ p: AgentProfile) throws(ApplyError) {
        guard !p.name.isEmpty else { throw .invalidProfile("empty name") }
        guard Set(p.capabilities).count == p.capabilities.count else { throw .invalidProfile("a capability appears twice") }
        guard p.capabilities.allSatisfy({ !$0.isEmpty }) else { throw .invalidProfile("empty capability") }
    }

    /// Applies a whole block of verified events (replay and rebuild). On error the
    /// state is left partly applied: callers discard it, since a committed block that
    /// does not apply means the log is bad.
    public mutating func applyBlock(_ header: BlockHeader, _ events: [(id: EventID, envelope: Envelope)]) throws(BlockError) {
        let ctx = BlockContext(height: header.height, timestampMs: header.timestampMs, proposer: header.proposer,
                               parentStateRoot: header.parentStateRoot)
        try beginBlock(ctx)
        for (i, e) in events.enumerated() {
            do { try apply(e.envelope, id: e.id, ctx) } catch { throw .event(index: i, id: e.id, error) }
        }
    }
}
