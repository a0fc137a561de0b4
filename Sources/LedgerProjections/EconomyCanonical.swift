import LedgerCore

/// The economy section of the canonical state (schemas/FORMAT.md §7.1): written after the
/// version 2 layout, marker byte first, only when `economy.present`. Maps are sorted by key.
extension LedgerState {
    static let economyMarker: UInt8 = 0xEC

    func encodeEconomy(_ w: inout ByteWriter) {
        let e = economy
        guard e.present else { return }
        w.u8(Self.economyMarker)
        Entry.economyGlobals(&w, e)
        w.u32(UInt32(e.rewards.count))
        for k in e.rewards.keys.sorted() { Entry.reward(&w, k, e.rewards[k]!) }
        w.u32(UInt32(e.commissions.count))
        for k in e.commissions.keys.sorted() { Entry.commission(&w, k, e.commissions[k]!) }
        w.u32(UInt32(e.delegatorSlashes.count))
        for d in e.delegatorSlashes { Entry.delegatorSlash(&w, d) }
        w.u32(UInt32(e.jobs.count))
        for k in e.jobs.keys.sorted() { Entry.job(&w, e.jobs[k]!) }
        w.u32(UInt32(e.reputation.count))
        for k in e.reputation.keys.sorted() { Entry.reputation(&w, k, e.reputation[k]!) }
        w.u32(UInt32(e.memes.count))
        for k in e.memes.keys.sorted() { Entry.meme(&w, e.memes[k]!) }
        w.u32(UInt32(e.influence.count))
        for k in e.influence.keys.sorted() { Entry.influence(&w, k, e.influence[k]!) }
        w.u32(UInt32(e.proposals.count))
        for k in e.proposals.keys.sorted() { Entry.proposal(&w, e.proposals[k]!) }
        guard e.hasTrust else { return }
        w.u32(UInt32(e.origins.count))
        for k in e.origins.keys.sorted() { Entry.origin(&w, k, e.origins[k]!) }
        w.u32(UInt32(e.pairs.count))
        for k in e.pairs.keys.sorted() { Entry.pair(&w, k, e.pairs[k]!) }
    }

    /// Reads the economy section when the snapshot has one (the canonical-form check
    /// of `decodeSnapshot` then refuses anything not written by `encodeEconomy`).
    /// long: one field after another in the order of FORMAT.md §7.1; the state tree
    /// (issue 17) replaces this encoding.
    static func decodeEconomy(_ r: inout ByteReader, into s: inout LedgerState) throws(DecodeError) {
        guard r.remaining > 0 else { return }
        guard try r.u8("economy.marker") == economyMarker else { throw .invalidValue(field: "economy.marker", reason: "unknown section") }
        func payload(_ kind: EventKind, _ f: String) throws(DecodeError) -> Payload {
            try Payload.decode(kind: kind, try r.blob16(f, max: Limits.payloadBytesMax)[...])
        }
        func flag(_ f: String) throws(DecodeError) -> Bool {
            let v = try r.u8(f)
            guard v <= 1 else { throw .invalidValue(field: f, reason: "not 0 or 1") }
            return v == 1
        }
        let version = try r.u16("economy.ruleVersion")
        var e = EconomyState(present: true, ruleVersion: version, parameters: EconomyParameters())
        e.ruleHistory = []
        for _ in 0 ..< (try r.snapshotCount("economy.ruleHistory")) {
            e.ruleHistory.append(RuleEpoch(from: Height(try r.u64("rule.from")), version: try r.u16("rule.version")))
        }
        e.parameters = try EconomyParameters.decode(&r)
        e.baseFee = try r.u64("economy.baseFee"); e.blockGasUsed = try r.u64("economy.blockGasUsed"); e.feePool = try r.u64("economy.feePool")
        e.lastProposer = try r.id("economy.lastProposer"); e.minted = try r.u64("economy.minted"); e.feesBurned = try r.u64("economy.feesBurned")
        if e.hasTrust { e.parameters.trust = try TrustParameters.decode(&r) }
        for _ in 0 ..< (try r.snapshotCount("economy.rewards")) { e.rewards[try r.b32("reward.key")] = try r.u64("reward.amount") }
        for _ in 0 ..< (try r.snapshotCount("economy.commissions")) { e.commissions[try r.id("commission.key")] = try r.u32("commission.bps") }
        for _ in 0 ..< (try r.snapshotCount("economy.delegatorSlashes")) {
            e.delegatorSlashes.append(DelegatorSlash(validator: try r.id("dslash.validator"), delegator: try r.b32("dslash.delegator"),
                                                     amount: try r.u64("dslash.amount"), evidence: try r.id("dslash.evidence")))
        }
        for _ in 0 ..< (try r.snapshotCount("economy.jobs")) {
            let id: JobID = try r.id("job.id"), client = try r.b32("job.client")
            guard case let .jobPost(spec) = try payload(.jobPost, "job.spec") else { throw .invalidValue(field: "job.spec", reason: "not a job") }
            var j = Job(id: id, client: client, spec: spec, postedAt: Height(try r.u64("job.postedAt")), milestones: [])
            j.worker = try r.b32("job.worker")
            guard let st = JobStatus(rawValue: try r.u8("job.status")) else { throw .invalidValue(field: "job.status", reason: "unknown status") }
            j.status = st; j.funded = try flag("job.funded"); j.escrowed = try r.u64("job.escrowed")
            for _ in 0 ..< (try r.count("job.milestones", max: Limits.milestonesMax)) {
                var m = Milestone(amount: try r.u64("milestone.amount"))
                m.result = try r.b32("milestone.result"); m.submittedAt = Height(try r.u64("milestone.submittedAt"))
                m.paid = try r.u64("milestone.paid"); m.refunded = try r.u64("milestone.refunded"); m.settled = try flag("milestone.settled")
                j.milestones.append(m)
            }
            if try flag("job.dispute") {
                var d = Dispute(openedBy: try r.b32("dispute.openedBy"), openedAt: Height(try r.u64("dispute.openedAt")),
                                reason: try r.string("dispute.reason", max: Limits.reasonBytesMax), arbiters: [], votes: [:], workerShareBps: 0)
                for _ in 0 ..< (try r.count("dispute.arbiters", max: 15)) { d.arbiters.append(try r.b32("dispute.arbiter")) }
                for _ in 0 ..< (try r.count("dispute.votes", max: 15)) { d.votes[try r.b32("vote.arbiter")] = try r.u32("vote.bps") }
                d.workerShareBps = try r.u32("dispute.workerShareBps")
                j.dispute = d
            }
            j.clientRated = try flag("job.clientRated"); j.workerRated = try flag("job.workerRated")
            if spec.evaluation != .none { j.evaluator = try r.b32("job.evaluator") }
            e.jobs[id] = j
        }
        for _ in 0 ..< (try r.snapshotCount("economy.reputation")) {
            e.reputation[try r.b32("reputation.key")] = Reputation(value: Int64(bitPattern: try r.u64("reputation.value")),
                                                                   asOf: Height(try r.u64("reputation.asOf")))
        }
        for _ in 0 ..< (try r.snapshotCount("economy.memes")) {
            let id: MemeID = try r.id("meme.id"), author = try r.b32("meme.author")
            guard case let .memePost(meme) = try payload(.memePost, "meme.body") else { throw .invalidValue(field: "meme.body", reason: "not a meme") }
            var m = MemeState(id: id, author: author, meme: meme, postedAt: Height(try r.u64("meme.postedAt")), reactions: [:], reactors: [])
            for _ in 0 ..< Int(try r.u8("meme.reactions")) { m.reactions[try r.u8("reaction.code")] = try r.u64("reaction.count") }
            for _ in 0 ..< (try r.snapshotCount("meme.reactors")) { m.reactors.append(try r.b32("meme.reactor")) }
            e.memes[id] = m
        }
        for _ in 0 ..< (try r.snapshotCount("economy.influence")) {
            let k = try r.b32("influence.key")
            var c = InfluenceCounters(memesPosted: try r.u64("influence.memes"), reactionsReceived: [:],
                                      interactionsReceived: try r.u64("influence.received"), interactionsMade: try r.u64("influence.made"))
            for _ in 0 ..< Int(try r.u8("influence.reactions")) { c.reactionsReceived[try r.u8("reaction.code")] = try r.u64("reaction.count") }
            e.influence[k] = c
        }
        for _ in 0 ..< (try r.snapshotCount("economy.proposals")) {
            let id: ProposalID = try r.id("proposal.id"), proposer: ValidatorID = try r.id("proposal.proposer")
            guard case let .govPropose(gp) = try payload(.govPropose, "proposal.body") else { throw .invalidValue(field: "proposal.body", reason: "not a proposal") }
            var p = ProposalState(id: id, proposer: proposer, proposal: gp, proposedAt: Height(try r.u64("proposal.proposedAt")), votes: [:], status: .pending)
            for _ in 0 ..< (try r.snapshotCount("proposal.votes")) { p.votes[try r.id("vote.validator")] = try flag("vote.approve") }
            guard let st = ProposalStatus(rawValue: try r.u8("proposal.status")) else { throw .invalidValue(field: "proposal.status", reason: "unknown status") }
            p.status = st
            e.proposals[id] = p
        }
        if e.hasTrust {
            for _ in 0 ..< (try r.snapshotCount("economy.origins")) { e.origins[try r.b32("origin.key")] = try r.b32("origin.origin") }
            for _ in 0 ..< (try r.snapshotCount("economy.pairs")) {
                let k = PairKey(from: try r.b32("pair.from"), to: try r.b32("pair.to"))
                e.pairs[k] = PairRecord(jobs: try r.u64("pair.jobs"), endorsedAt: Height(try r.u64("pair.endorsedAt")))
            }
        }
        s.economy = e
    }
}
