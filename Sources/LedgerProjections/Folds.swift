import LedgerCore

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
        // A flat chain keeps no tree: forget what the previous block wrote. A tree chain
        // keeps it until a caller seals the root (once per block, or once per checkpoint
        // interval for a rebuild: the written sets hold at most one key per entity).
        if commitment == .flat { discardWritten() }
        blockMessages = BlockMessages()
        // Arbiters for the disputes the previous block opened, seeded by the state it left.
        drawPendingArbiters(seed: ctx.parentStateRoot)
        drawPendingEvaluators(seed: ctx.parentStateRoot)
        // The previous block's rewards and base fee, under the power it was certified by.
        settleBlock(ctx)
        // The power of the state before the epoch's first block: exactly what
        // `powerForNextBlock()` of the parent state gave the certificate check.
        if Self.isEpochStart(ctx.height, interval: parameters.checkpointInterval) { epochPower = votingPower() }
        height = ctx.height
        timestampMs = ctx.timestampMs
        activateProposals(ctx)
        if economy.ruleVersion >= RuleVersion.economy { economy.lastProposer = consensusKeys[ctx.proposer] ?? ValidatorID(ctx.proposer) }
        if unbonding.contains(where: { $0.releaseAt <= ctx.height }) {
            for u in unbonding.removeAll(where: { $0.releaseAt <= ctx.height }) {
                // Supply is conserved, so a balance can never overflow here.
                accounts[u.account, default: Account(balance: 0, nonce: 0)].balance += u.amount
            }
        }
        let now = ctx.timestampMs
        let lapsed = liveAlliances.filter { id in
            let a = alliances[id]!
            return (a.status == .pending && now >= a.acceptByMs) || (a.status == .active && now >= a.activeUntilMs)
        }
        for id in lapsed {
            alliances[id]!.status = .expired
            noteAlliance(id)
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
        let charged = gasCharge(payload.kind, bytes: e.bytes.count)
        let economic = charged != nil
        var gas: UInt64 = 0, baseCharge: UInt64 = 0
        if let charged {
            gas = charged.gas
            guard let c = charged.charge, e.fee >= c else { throw .feeTooLow(minimum: charged.charge ?? .max, offered: e.fee) }
            baseCharge = c
        }

        // What the author must hold after the fee, and the validations of each kind.
        var spend: UInt64 = e.fee
        let author = e.author
        let checked = try check(payload, e, id: id, ctx, spend: &spend)
        let writes = checked.writes
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
        let feeRecipient = consensusKeys[ctx.proposer]?.raw ?? ctx.proposer
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
        accounts[author] = Account(balance: available - spend, nonce: e.nonce)
        if economic {
            economy.feePool += e.fee - burn
            economy.feesBurned += burn
            economy.blockGasUsed += gas
            totalSupply -= burn
        } else {
            accounts[feeRecipient, default: Account(balance: 0, nonce: 0)].balance += e.fee
        }
        // A statistic, not money: it saturates rather than wraps (FORMAT.md §7).
        feesPaid = feesPaid.saturatingAdd(e.fee)
        eventsApplied += 1
        write(payload, checked, author: author, id: id, ctx)
        recordStreams(payload, author: author, id: id)
    }

    func requireValidator(_ v: ValidatorID, allowJailed: Bool = false) throws(ApplyError) {
        guard let s = validators[v] else { throw .unknownValidator(v.raw) }
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
        guard Equivocation.detect(a, b, chain: chainID.raw, crypto) != nil else {
            throw .invalidEvidence(Self.whyNoEquivocation(a, b, chain: chainID.raw, crypto))
        }
        guard let v = consensusKeys[a.signer] else { throw .unknownValidator(a.signer) }
        let key = OffenceKey(validator: v, height: a.message.height, view: a.message.view ?? 0, kind: a.message.tag)
        guard !offences.contains(key) else { throw .duplicateEvidence }
        return key
    }

    /// The reason a pair is no evidence, for the refusal (the decision is `Equivocation.detect`'s).
    static func whyNoEquivocation(_ a: SignedConsensusMessage, _ b: SignedConsensusMessage, chain: Bytes32,
                                  _ p: any Primitives) -> String {
        if a.signer != b.signer { return "the messages have different signers" }
        if a == b { return "the two messages are identical" }
        if a.message.tag != b.message.tag { return "the messages are of different kinds" }
        if a.message.height != b.message.height { return "the messages are for different heights" }
        if a.message.view != b.message.view { return "the messages are for different views" }
        if a.message == b.message { return "both messages sign the same block" }
        if !a.verify(chain: chain, p) || !b.verify(chain: chain, p) { return "a signature does not verify" }
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
        slashAgentBond(o.validator.raw)
    }

    func isParticipant(_ k: PublicKey) -> Bool {
        agents[k]?.active == true || validators[ValidatorID(k)]?.status == .active
    }

    static func validate(_ p: AgentProfile) throws(ApplyError) {
        guard !p.name.isEmpty else { throw .invalidProfile("empty name") }
        guard Set(p.capabilities).count == p.capabilities.count else { throw .invalidProfile("a capability appears twice") }
        guard p.capabilities.allSatisfy({ !$0.isEmpty }) else { throw .invalidProfile("empty capability") }
    }

    /// Applies a whole block of verified events (replay and rebuild). On error the
    /// state is left partly applied: callers discard it, since a committed block that
    /// does not apply means the log is bad.
    /// `checkRoot: false` skips the version 2 header's root check (a rebuild checks it at
    /// checkpoints only: the tree then folds many blocks' writes at once).
    public mutating func applyBlock(_ header: BlockHeader, _ events: [(id: EventID, envelope: Envelope)],
                                    checkRoot: Bool = true) throws(BlockError) {
        let ctx = BlockContext(height: header.height, timestampMs: header.timestampMs, proposer: header.proposer,
                               parentStateRoot: header.parentStateRoot)
        try beginBlock(ctx)
        for (i, e) in events.enumerated() {
            do { try apply(e.envelope, id: e.id, ctx) } catch { throw .event(index: i, id: e.id, error) }
        }
        try checkPostState(header, roots: checkRoot)
    }
}
