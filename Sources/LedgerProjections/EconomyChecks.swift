import LedgerCore

/// The economy's checks, one function per kind, grouped by domain. None writes: each
/// fills the `EconomyWrites` that EconomyFolds.swift applies once every check, the fee
/// and the balance passed (`checkEconomy` dispatches to them).
extension LedgerState {
    // MARK: Rewards and commission

    func checkClaimRewards(author: PublicKey, _ w: inout EconomyWrites) throws(ApplyError) {
        let r = economy.rewards[author] ?? 0
        guard r > 0 else { throw .nothingToClaim }
        w.claimed = r
        w.credits = [(author, r)]
    }

    func checkSetCommission(_ bps: UInt32, author: PublicKey, _ w: inout EconomyWrites) throws(ApplyError) {
        try requireValidator(ValidatorID(author), allowJailed: true)
        guard bps <= economy.parameters.commissionMaxBps else {
            throw .invalidCommission("\(bps) bps is above the maximum \(economy.parameters.commissionMaxBps)")
        }
        w.commission = (ValidatorID(author), bps)
    }

    // MARK: Jobs: posting, accepting, funding, submitting

    func checkJobPost(_ spec: JobSpec, author: PublicKey, id: EventID, at h: Height, _ w: inout EconomyWrites) throws(ApplyError) {
        guard agents[author]?.active == true else { throw .notRegistered("agent \(author.short)") }
        try requireBonded(author)
        try checkSpec(spec, client: author, at: h)
        try checkEvaluation(spec, client: author)
        guard economy.jobs[JobID(createdBy: id)] == nil else { throw .duplicateEvent(id) }
        var job = Job(id: JobID(createdBy: id), client: author, spec: spec, postedAt: h, milestones: spec.milestones.map { Milestone(amount: $0) })
        if case let .named(k, _) = spec.evaluation { job.evaluator = k }
        w.job = job
    }

    func checkJobAccept(_ j: JobID, author: PublicKey, at h: Height, _ w: inout EconomyWrites) throws(ApplyError) {
        var job = try existingJob(j)
        guard agents[author]?.active == true else { throw .notRegistered("agent \(author.short)") }
        try requireBonded(author)
        guard author != job.client, author != job.spec.arbiter else { throw .invalidJob("the client or arbiter cannot work on the job") }
        if case let .named(k, _) = job.spec.evaluation, k == author { throw .invalidJob("the evaluator cannot work on the job") }
        guard job.status == .posted else { throw .wrongJobStatus(j, job.status) }
        guard h <= job.spec.deadline else { throw .deadlinePassed(job.spec.deadline) }
        let caps = Set(agents[author]!.profile.capabilities)
        for c in job.spec.capabilities where !caps.contains(c) { throw .missingCapability(c) }
        let rep = reputation(of: author, at: h)
        guard rep >= job.spec.minReputation else { throw .reputationTooLow(required: job.spec.minReputation, has: rep) }
        job.worker = author; job.status = .accepted
        // A drawn evaluator is drawn as the next block begins: someone must be there to draw.
        if case .drawn = job.spec.evaluation, arbiterCandidates(job).isEmpty { throw .noEvaluators }
        w.job = job
    }

    func checkEscrowFund(_ j: JobID, author: PublicKey, spend: inout UInt64, _ w: inout EconomyWrites) throws(ApplyError) {
        var job = try existingJob(j)
        guard author == job.client else { throw .notJobParty(j) }
        guard !job.funded else { throw .alreadyFunded(j) }
        guard job.status == .posted || job.status == .accepted else { throw .wrongJobStatus(j, job.status) }
        spend = try add(spend, job.total)
        job.funded = true; job.escrowed = job.total
        w.job = job
    }

    func checkJobSubmit(_ j: JobID, _ m: UInt16, _ result: Hash32, author: PublicKey, at h: Height, _ w: inout EconomyWrites) throws(ApplyError) {
        var job = try existingJob(j)
        guard author == job.worker else { throw .notJobParty(j) }
        guard job.status == .accepted else { throw .wrongJobStatus(j, job.status) }
        guard job.funded else { throw .notFunded(j) }
        // After the deadline a (re)submission would only keep the client from its refund.
        guard h <= job.spec.deadline else { throw .deadlinePassed(job.spec.deadline) }
        let i = try milestoneIndex(job, m)
        guard !job.milestones[i].settled else { throw .milestoneSettled(m) }
        guard result != .zero else { throw .invalidJob("the result hash is zero") }
        job.milestones[i].result = result; job.milestones[i].submittedAt = h
        w.job = job
    }

    // MARK: Escrow: releases and refunds

    func checkEscrowRelease(_ j: JobID, _ m: UInt16, author: PublicKey, _ w: inout EconomyWrites) throws(ApplyError) {
        var job = try existingJob(j)
        guard author == job.client else { throw .notJobParty(j) }
        guard job.status == .accepted else { throw .wrongJobStatus(j, job.status) }
        guard job.funded else { throw .notFunded(j) }
        let i = try milestoneIndex(job, m)
        guard !job.milestones[i].settled else { throw .milestoneSettled(m) }
        guard job.milestones[i].result != .zero else { throw .noResult(m) }
        settle(&job, i, toWorker: job.milestones[i].amount, &w)
        w.job = job
    }

    func checkEscrowMultisig(_ r: MultisigRelease, author: PublicKey, _ w: inout EconomyWrites) throws(ApplyError) {
        var job = try existingJob(r.job)
        guard job.status == .accepted else { throw .wrongJobStatus(r.job, job.status) }
        guard job.funded else { throw .notFunded(r.job) }
        let i = try milestoneIndex(job, r.milestone)
        guard !job.milestones[i].settled else { throw .milestoneSettled(r.milestone) }
        guard r.workerAmount <= job.milestones[i].amount else {
            throw .invalidJob("worker amount \(r.workerAmount) is above the milestone's \(job.milestones[i].amount)")
        }
        try checkSigners(job, r, author: author)
        settle(&job, i, toWorker: r.workerAmount, &w)
        w.job = job
    }

    func checkEscrowRefund(_ j: JobID, author: PublicKey, at h: Height, _ w: inout EconomyWrites) throws(ApplyError) {
        var job = try existingJob(j)
        guard author == job.client else { throw .notJobParty(j) }
        guard job.funded else { throw .notFunded(j) }
        guard job.status == .posted || job.status == .accepted else { throw .wrongJobStatus(j, job.status) }
        // Without a worker the client may cancel at any time; with one, only after
        // the deadline and once every submitted result's dispute window has closed.
        if job.status == .accepted {
            guard h > job.spec.deadline else { throw .deadlineNotReached(job.spec.deadline) }
            for ms in job.milestones where !ms.settled && ms.result != .zero {
                let until = Height(ms.submittedAt.value.saturatingAdd(economy.parameters.disputeWindowBlocks))
                guard h > until else { throw .disputeWindowOpen(until: until) }
            }
        }
        var back: UInt64 = 0
        for i in job.milestones.indices where !job.milestones[i].settled {
            job.milestones[i].refunded = job.milestones[i].amount; job.milestones[i].settled = true
            back += job.milestones[i].amount
        }
        guard back > 0 else { throw .nothingToRefund(j) }
        job.escrowed -= back
        job.status = .refunded
        w.credits.append((job.client, back))
        if trustRules {
            refundTrust(job, &w)
        } else if job.worker != .zero {
            w.reputation.append((job.worker, ReputationRule.refundedWorker))
        }
        w.job = job
    }

    // MARK: Disputes and their arbiters

    func checkDisputeOpen(_ j: JobID, _ reason: String, author: PublicKey, at h: Height, _ w: inout EconomyWrites) throws(ApplyError) {
        var job = try existingJob(j)
        guard author == job.client || author == job.worker else { throw .notJobParty(j) }
        guard job.status == .accepted else { throw .wrongJobStatus(j, job.status) }
        guard job.funded, job.unsettled > 0 else { throw .notFunded(j) }
        guard let last = job.milestones.filter({ !$0.settled && $0.result != .zero }).map(\.submittedAt).max() else {
            throw .invalidDispute("no result has been submitted")
        }
        let closes = Height(last.value.saturatingAdd(economy.parameters.disputeWindowBlocks))
        guard h <= closes else { throw .disputeWindowClosed(closedAt: closes) }
        guard !arbiterCandidates(job).isEmpty else { throw .noArbiters }
        // The arbiters are drawn when the next block begins, seeded by the root of the
        // state after this one: nothing the opener signs (its reason, its timing within
        // a block) can steer the draw.
        job.dispute = Dispute(openedBy: author, openedAt: h, reason: reason, arbiters: [], votes: [:], workerShareBps: 0)
        job.status = .disputed
        w.job = job
    }

    func checkDisputeVote(_ j: JobID, _ bps: UInt32, author: PublicKey, _ w: inout EconomyWrites) throws(ApplyError) {
        var job = try existingJob(j)
        guard job.status == .disputed, var d = job.dispute else { throw .wrongJobStatus(j, job.status) }
        guard !d.arbiters.isEmpty else { throw .invalidDispute("the arbiters are drawn when the next block begins") }
        guard d.arbiters.contains(author) else { throw .notArbiter(j) }
        guard d.votes[author] == nil else { throw .alreadyVoted }
        guard bps <= ChainParameters.basisPoints else { throw .invalidDispute("share \(bps) bps is above 10000") }
        d.votes[author] = bps
        job.dispute = d
        w.job = job
    }

    func checkDisputeResolve(_ j: JobID, author: PublicKey, at h: Height, _ w: inout EconomyWrites) throws(ApplyError) {
        var job = try existingJob(j)
        guard job.status == .disputed, var d = job.dispute else { throw .wrongJobStatus(j, job.status) }
        guard author == job.client || author == job.worker || d.arbiters.contains(author) else { throw .notJobParty(j) }
        // A majority of the drawn arbiters decides; once the dispute window has passed
        // since the opening, whatever votes there are decide (none: an even split), so
        // silent arbiters cannot hold the escrow forever.
        let need = d.arbiters.count / 2 + 1
        let expired = h.value > d.openedAt.value.saturatingAdd(economy.parameters.disputeWindowBlocks)
        guard d.votes.count >= need || expired else { throw .notEnoughVotes(have: d.votes.count, need: need) }
        // The median vote (the lower one of an even count) decides.
        let sorted = d.votes.values.sorted()
        d.workerShareBps = sorted.isEmpty ? ChainParameters.basisPoints / 2 : sorted[(sorted.count - 1) / 2]
        let remaining = job.unsettled
        let toWorker = UInt64(UInt128(remaining) * UInt128(d.workerShareBps) / UInt128(ChainParameters.basisPoints))
        var left = toWorker
        for i in job.milestones.indices where !job.milestones[i].settled {
            let pay = min(left, job.milestones[i].amount)
            left -= pay
            job.milestones[i].paid = pay; job.milestones[i].refunded = job.milestones[i].amount - pay; job.milestones[i].settled = true
        }
        job.escrowed -= remaining
        job.status = .resolved
        job.dispute = d
        if toWorker > 0 { w.credits.append((job.worker, toWorker)) }
        if remaining - toWorker > 0 { w.credits.append((job.client, remaining - toWorker)) }
        let workerWon = d.workerShareBps * 2 >= ChainParameters.basisPoints
        if trustRules {
            resolveTrust(job, workerWon: workerWon, &w)
        } else {
            w.reputation.append((job.worker, workerWon ? ReputationRule.disputeWinner : ReputationRule.disputeLoser))
            w.reputation.append((job.client, workerWon ? ReputationRule.disputeLoser : ReputationRule.disputeWinner))
        }
        for a in d.arbiters { w.reputation.append((a, d.votes[a] != nil ? ReputationRule.arbiterVoted : ReputationRule.arbiterSilent)) }
        w.job = job
    }

    // MARK: Ratings, endorsements, memes and interactions

    func checkRate(_ j: JobID, _ score: UInt8, author: PublicKey, _ w: inout EconomyWrites) throws(ApplyError) {
        var job = try existingJob(j)
        guard author == job.client || author == job.worker else { throw .notJobParty(j) }
        guard job.status.isClosed, job.worker != .zero else { throw .wrongJobStatus(j, job.status) }
        guard (1 ... 5).contains(score) else { throw .invalidRating("score \(score) is not 1 to 5") }
        let subject: PublicKey
        if author == job.client {
            guard !job.clientRated else { throw .alreadyRated(j) }
            job.clientRated = true; subject = job.worker
        } else {
            guard !job.workerRated else { throw .alreadyRated(j) }
            job.workerRated = true; subject = job.client
        }
        if trustRules {
            rateTrust(job, subject: subject, rater: author, score: score, &w)
        } else {
            w.reputation.append((subject, (Int64(score) - 3) * ReputationRule.ratingStep))
        }
        w.job = job
    }

    func checkEndorse(_ subject: PublicKey, _ delta: Int8, author: PublicKey, _ w: inout EconomyWrites) throws(ApplyError) {
        if !trustRules { try requireValidator(ValidatorID(author)) }
        guard isParticipant(subject) else { throw .notRegistered("agent or validator \(subject.short)") }
        guard subject != author else { throw .invalidEndorsement("no one may endorse itself") }
        guard delta != 0, (-5 ... 5).contains(delta) else { throw .invalidEndorsement("delta \(delta) is not in -5...5 or is 0") }
        if trustRules { return try endorseTrust(subject, delta, author: author, &w) }
        w.reputation.append((subject, Int64(delta) * ReputationRule.endorsementStep))
    }

    func checkMemePost(_ m: Meme, author: PublicKey, id: EventID, at h: Height, _ w: inout EconomyWrites) throws(ApplyError) {
        guard isParticipant(author) else { throw .notRegistered("agent or validator \(author.short)") }
        guard !m.content.isEmpty else { throw .invalidMeme("empty content") }
        guard Set(m.tags).count == m.tags.count, m.tags.allSatisfy({ !$0.isEmpty }) else { throw .invalidMeme("empty or repeated tag") }
        guard economy.memes[MemeID(createdBy: id)] == nil else { throw .duplicateEvent(id) }
        w.meme = MemeState(id: MemeID(createdBy: id), author: author, meme: m, postedAt: h, reactions: [:], reactors: [])
        var c = economy.influence[author] ?? InfluenceCounters()
        c.memesPosted += 1
        w.influence = [(author, c)]
    }

    func checkMemeReact(_ mid: MemeID, _ reaction: Reaction, author: PublicKey, _ w: inout EconomyWrites) throws(ApplyError) {
        guard isParticipant(author) else { throw .notRegistered("agent or validator \(author.short)") }
        guard var m = economy.memes[mid] else { throw .unknownMeme(mid) }
        guard m.author != author else { throw .selfInteraction }
        guard !m.reactors.contains(author) else { throw .alreadyReacted(mid) }
        m.reactions[reaction.rawValue, default: 0] += 1
        m.reactors.append(author); m.reactors.sort()
        w.meme = m
        var c = economy.influence[m.author] ?? InfluenceCounters()
        c.reactionsReceived[reaction.rawValue, default: 0] += 1
        w.influence = [(m.author, c)]
    }

    func checkInteract(_ target: PublicKey, _ mid: MemeID, author: PublicKey, _ w: inout EconomyWrites) throws(ApplyError) {
        guard isParticipant(author) else { throw .notRegistered("agent or validator \(author.short)") }
        guard isParticipant(target) else { throw .notRegistered("agent or validator \(target.short)") }
        guard target != author else { throw .selfInteraction }
        if mid != .zero, economy.memes[mid] == nil { throw .unknownMeme(mid) }
        var t = economy.influence[target] ?? InfluenceCounters(), a = economy.influence[author] ?? InfluenceCounters()
        t.interactionsReceived += 1; a.interactionsMade += 1
        w.influence = [(target, t), (author, a)]
    }

    // MARK: Governance

    func checkGovPropose(_ gp: GovernanceProposal, author: PublicKey, id: EventID, at h: Height, _ w: inout EconomyWrites) throws(ApplyError) {
        let rules = economy.ruleVersion
        guard hasPower(ValidatorID(author)) else { throw .notAuthorized("only a validator with voting power may propose") }
        guard gp.activateAt > h, gp.activateAt.value - h.value <= ChainParameters.unbondingBlocksMax else {
            throw .invalidProposal("activation height \(gp.activateAt) must be after the current block \(h)")
        }
        switch gp.change {
        case let .parameter(name, value):
            // The trust parameters are part of the state only from rule version 3 on.
            if TrustParameters.names.contains(name), rules < RuleVersion.trust {
                throw .invalidProposal("'\(name)' is a rule version \(RuleVersion.trust) parameter; the chain runs version \(rules)")
            }
            do { _ = try GovernableParameter.apply(name, value, chain: parameters, economy: economy.parameters) } catch {
                throw .invalidProposal(error.description)
            }
        case let .ruleVersion(v):
            guard RuleVersion.supported.contains(v), v > rules else {
                throw .invalidProposal("rule version \(v) is not a supported version above the current \(rules)")
            }
        }
        guard economy.proposals[ProposalID(createdBy: id)] == nil else { throw .duplicateEvent(id) }
        w.proposal = ProposalState(id: ProposalID(createdBy: id), proposer: ValidatorID(author), proposal: gp, proposedAt: h, votes: [ValidatorID(author): true], status: .pending)
    }

    func checkGovVote(_ pid: ProposalID, _ approve: Bool, author: PublicKey, _ w: inout EconomyWrites) throws(ApplyError) {
        guard hasPower(ValidatorID(author)) else { throw .notAuthorized("only a validator with voting power may vote") }
        guard var prop = economy.proposals[pid] else { throw .unknownProposal(pid) }
        guard prop.status == .pending else { throw .proposalClosed(pid, prop.status) }
        guard prop.votes[ValidatorID(author)] == nil else { throw .alreadyVoted }
        prop.votes[ValidatorID(author)] = approve
        w.proposal = prop
    }
}
