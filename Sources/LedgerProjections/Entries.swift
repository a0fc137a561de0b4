import LedgerCore

/// One entity's canonical entry (schemas/FORMAT.md §7 and §7.1): the flat state encoding
/// is these entries in sorted order, and a state-tree leaf's value is one of them, byte
/// for byte, so one decoder reads both.
enum Entry {
    static func account(_ w: inout ByteWriter, _ k: PublicKey, _ a: Account) {
        w.b32(k); w.u64(a.balance); w.u64(a.nonce)
    }

    static func validator(_ w: inout ByteWriter, _ v: ValidatorState) {
        w.b32(v.id); w.string(v.name); w.string(v.personality); w.b32(v.consensusKey)
        w.u64(v.selfStake); w.u64(v.delegated); w.u8(v.status.rawValue); w.u64(v.registeredAt.value); w.u64(v.jailedUntil.value)
        w.u32(UInt32(v.keyHistory.count))
        for e in v.keyHistory { w.u64(e.from.value); w.b32(e.key) }
    }

    static func delegation(_ w: inout ByteWriter, _ k: DelegationKey, _ amount: UInt64) {
        w.b32(k.delegator); w.b32(k.validator); w.u64(amount)
    }

    static func unbonding(_ w: inout ByteWriter, _ u: Unbonding) {
        w.b32(u.account); w.b32(u.validator); w.u64(u.amount); w.u64(u.releaseAt.value)
    }

    /// The flags byte: bit 0 active, bit 1 a rule version 3 trust record follows (so an
    /// agent registered before version 3 keeps the bytes it always had).
    static func agent(_ w: inout ByteWriter, _ k: PublicKey, _ a: AgentState) {
        w.b32(k); w.raw(Payload.agentRegister(a.profile).encoded()); w.u64(a.registeredAt.value)
        w.u8((a.active ? 1 : 0) | (a.trust != nil ? 2 : 0))
        guard let t = a.trust else { return }
        w.u64(t.bond); w.u64(t.lastSeen.value); w.u64(t.bondSlashed)
        let o = t.outcomes
        for v in [o.completedAsWorker, o.completedAsClient, o.refunded, o.disputes, o.disputesLost, o.ratings, o.ratingSum] { w.u64(v) }
    }

    static func origin(_ w: inout ByteWriter, _ k: PublicKey, _ origin: PublicKey) { w.b32(k); w.b32(origin) }

    static func pair(_ w: inout ByteWriter, _ k: PairKey, _ p: PairRecord) {
        w.b32(k.from); w.b32(k.to); w.u64(p.jobs); w.u64(p.endorsedAt.value)
    }

    static func alliance(_ w: inout ByteWriter, _ a: AllianceState) {
        w.b32(a.id); w.b32(a.proposer)
        w.u16(UInt16(a.proposal.targets.count)); for t in a.proposal.targets { w.b32(t) }
        w.string(a.proposal.purpose); w.string(a.proposal.terms); w.u64(a.proposal.durationMs)
        w.u64(a.proposedAtMs); w.u64(a.acceptByMs)
        w.u16(UInt16(a.accepted.count)); for t in a.accepted { w.b32(t) }
        w.u8(a.status.rawValue); w.u64(a.activeUntilMs)
    }

    static func power(_ w: inout ByteWriter, _ power: [PublicKey: UInt64]) {
        w.u32(UInt32(power.count))
        for k in power.keys.sorted() { w.b32(k); w.u64(power[k]!) }
    }

    static func slash(_ w: inout ByteWriter, _ x: SlashRecord) {
        w.b32(x.validator); w.u64(x.offenceHeight.value); w.u64(x.offenceView.value); w.u64(x.stakeBefore); w.u64(x.amount)
        w.b32(x.evidence); w.u64(x.slashedAt.value)
    }

    static func offence(_ w: inout ByteWriter, _ o: OffenceKey) {
        w.b32(o.validator); w.u64(o.height.value); w.u64(o.view.value); w.u8(o.kind)
    }

    static func opinions(_ w: inout ByteWriter, _ k: ValidatorID, _ c: OpinionCount) {
        w.b32(k); w.u64(c.accepted); w.u64(c.refused)
    }

    /// The economy's scalars: rule version and history, parameters, fee and mint counters.
    static func economyGlobals(_ w: inout ByteWriter, _ e: EconomyState) {
        w.u16(e.ruleVersion)
        w.u32(UInt32(e.ruleHistory.count))
        for r in e.ruleHistory { w.u64(r.from.value); w.u16(r.version) }
        e.parameters.encode(&w)
        w.u64(e.baseFee); w.u64(e.blockGasUsed); w.u64(e.feePool); w.b32(e.lastProposer); w.u64(e.minted); w.u64(e.feesBurned)
        if e.hasTrust { e.parameters.trust.encode(&w) }
    }

    static func reward(_ w: inout ByteWriter, _ k: PublicKey, _ amount: UInt64) { w.b32(k); w.u64(amount) }

    static func commission(_ w: inout ByteWriter, _ k: ValidatorID, _ bps: UInt32) { w.b32(k); w.u32(bps) }

    static func delegatorSlash(_ w: inout ByteWriter, _ d: DelegatorSlash) {
        w.b32(d.validator); w.b32(d.delegator); w.u64(d.amount); w.b32(d.evidence)
    }

    static func job(_ w: inout ByteWriter, _ j: Job) {
        w.b32(j.id); w.b32(j.client); w.blob16(Payload.jobPost(j.spec).encoded()); w.u64(j.postedAt.value); w.b32(j.worker)
        w.u8(j.status.rawValue); w.u8(j.funded ? 1 : 0); w.u64(j.escrowed)
        w.u16(UInt16(j.milestones.count))
        for m in j.milestones {
            w.u64(m.amount); w.b32(m.result); w.u64(m.submittedAt.value); w.u64(m.paid); w.u64(m.refunded); w.u8(m.settled ? 1 : 0)
        }
        if let d = j.dispute {
            w.u8(1); w.b32(d.openedBy); w.u64(d.openedAt.value); w.string(d.reason)
            w.u16(UInt16(d.arbiters.count)); for a in d.arbiters { w.b32(a) }
            w.u16(UInt16(d.votes.count)); for a in d.votes.keys.sorted() { w.b32(a); w.u32(d.votes[a]!) }
            w.u32(d.workerShareBps)
        } else {
            w.u8(0)
        }
        w.u8(j.clientRated ? 1 : 0); w.u8(j.workerRated ? 1 : 0)
        if j.spec.evaluation != .none { w.b32(j.evaluator) }
    }

    static func reputation(_ w: inout ByteWriter, _ k: PublicKey, _ r: Reputation) {
        w.b32(k); w.u64(UInt64(bitPattern: r.value)); w.u64(r.asOf.value)
    }

    static func meme(_ w: inout ByteWriter, _ m: MemeState) {
        w.b32(m.id); w.b32(m.author); w.blob16(Payload.memePost(m.meme).encoded()); w.u64(m.postedAt.value)
        w.u8(UInt8(m.reactions.count)); for r in m.reactions.keys.sorted() { w.u8(r); w.u64(m.reactions[r]!) }
        w.u32(UInt32(m.reactors.count)); for r in m.reactors { w.b32(r) }
    }

    static func influence(_ w: inout ByteWriter, _ k: PublicKey, _ c: InfluenceCounters) {
        w.b32(k); w.u64(c.memesPosted); w.u64(c.interactionsReceived); w.u64(c.interactionsMade)
        w.u8(UInt8(c.reactionsReceived.count)); for r in c.reactionsReceived.keys.sorted() { w.u8(r); w.u64(c.reactionsReceived[r]!) }
    }

    static func proposal(_ w: inout ByteWriter, _ p: ProposalState) {
        w.b32(p.id); w.b32(p.proposer); w.blob16(Payload.govPropose(p.proposal).encoded()); w.u64(p.proposedAt.value)
        w.u32(UInt32(p.votes.count)); for v in p.votes.keys.sorted() { w.b32(v); w.u8(p.votes[v]! ? 1 : 0) }
        w.u8(p.status.rawValue)
    }
}
