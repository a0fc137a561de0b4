import LedgerCore

/// Rule version 3, the agent trust layer (schemas/ECONOMY.md §Rule version 3): bonded
/// identities, funding origins, and reputation that counts only what cost something —
/// a settled job's value, the standing of whoever pays, rates or endorses, never a pair
/// of keys funded from the same source, less for each repeat of the same pair.
extension LedgerState {
    public var trustRules: Bool { economy.ruleVersion >= RuleVersion.trust }

    /// The funding origin of `k`: the origin of the account whose transfer created it
    /// under rule version 3, else `k` itself (a genesis account, or one made before).
    public func origin(of k: PublicKey) -> PublicKey { economy.origins[k] ?? k }

    /// Whether two keys' accounts were funded from the same origin: nothing they do for
    /// each other earns reputation.
    public func sameFunds(_ a: PublicKey, _ b: PublicKey) -> Bool { origin(of: a) == origin(of: b) }

    /// What `k`'s payment, rating or endorsement counts for, in basis points: 100% for a
    /// validator holding voting power; for an active bonded agent `standingBaseBps` plus
    /// the rest in proportion to its reputation up to `standingFullAt`; else nothing.
    public func standingWeight(of k: PublicKey, at h: Height) -> Int64 {
        let full = Int64(ChainParameters.basisPoints)
        if hasPower(ValidatorID(k)) { return full }
        guard let a = agents[k], a.active, a.trust != nil else { return 0 }
        let p = economy.parameters.trust
        let base = Int64(p.standingBaseBps), rep = max(0, reputation(of: k, at: h))
        let extra = Int128(rep) * Int128(full - base) / Int128(p.standingFullAt)
        return base + Int64(min(Int128(full - base), extra))
    }

    /// A job's value as a weight in basis points: `min(value, jobValueCap) / jobValueCap`.
    public func valueWeight(_ value: UInt64) -> Int64 {
        let cap = economy.parameters.trust.jobValueCap
        return Int64(UInt128(min(value, cap)) * UInt128(ChainParameters.basisPoints) / UInt128(cap))
    }

    /// `base × value weight × standing weight`, both weights in basis points.
    static func weighted(_ base: Int64, value: Int64, standing: Int64) -> Int64 {
        Int64(Int128(base) * Int128(value) * Int128(standing) / 100_000_000)
    }

    /// The lifecycle status of agent `k` at height `h` (nil: not an agent). An agent
    /// without a trust record (registered before rule version 3) has no activity record.
    public func agentStatus(_ k: PublicKey, at h: Height? = nil) -> AgentStatus? {
        guard let a = agents[k] else { return nil }
        guard a.active else { return .retired }
        guard let t = a.trust else { return .active }
        let p = economy.parameters.trust, now = (h ?? height).value, quiet = now - min(now, t.lastSeen.value)
        return quiet <= p.agentIdleBlocks ? .active : quiet <= p.agentOfflineBlocks ? .idle : .offline
    }

    // MARK: Registration, bond and activity

    /// The bond `agent.register` (or a pre-version-3 agent's `agent.update`) locks.
    func bondToLock(_ kind: EventKind, author: PublicKey) -> UInt64 {
        guard trustRules else { return 0 }
        switch kind {
        case .agentRegister: return economy.parameters.trust.agentBond
        case .agentUpdate: return agents[author]?.trust == nil ? economy.parameters.trust.agentBond : 0
        default: return 0
        }
    }

    func checkHeartbeat(author: PublicKey) throws(ApplyError) {
        guard trustRules else { throw .kindNotActive(.agentHeartbeat, ruleVersion: economy.ruleVersion) }
        guard agents[author]?.active == true else { throw .notRegistered("agent \(author.short)") }
        guard agents[author]?.trust != nil else { throw .notBonded("agent \(author.short)") }
    }

    /// Registers (or re-registers) `author` with a bond under rule version 3; its
    /// outcomes survive a re-registration.
    mutating func writeAgentRegister(_ p: AgentProfile, author: PublicKey, at h: Height) {
        var a = AgentState(profile: p, registeredAt: h, active: true)
        if trustRules {
            var t = agents[author]?.trust ?? AgentTrust(bond: 0, lastSeen: h)
            t.bond = economy.parameters.trust.agentBond; t.lastSeen = h
            a.trust = t
        }
        agents[author] = a
    }

    mutating func writeAgentUpdate(_ p: AgentProfile, author: PublicKey, at h: Height) {
        agents[author]!.profile = p
        if trustRules, agents[author]!.trust == nil {
            agents[author]!.trust = AgentTrust(bond: economy.parameters.trust.agentBond, lastSeen: h)
        }
    }

    /// Retires the agent; under rule version 3 its bond returns after `agentBondReturnBlocks`
    /// through the unbonding queue (an entry whose validator is zero).
    mutating func writeAgentDeregister(author: PublicKey, at h: Height) {
        agents[author]!.active = false
        guard trustRules, let bond = agents[author]!.trust?.bond, bond > 0 else { return }
        agents[author]!.trust!.bond = 0
        let release = Height(h.value.saturatingAdd(economy.parameters.trust.agentBondReturnBlocks))
        unbonding.append(Unbonding(account: author, validator: ValidatorID(.zero), amount: bond, releaseAt: release))
    }

    /// Proven misbehaviour (an equivocation by the same key as a validator) also costs an
    /// agent's bond its `slashFractionBps`, burned.
    mutating func slashAgentBond(_ k: PublicKey) {
        guard trustRules, agents[k]?.trust?.bond ?? 0 > 0 else { return }
        let cut = agents[k]!.trust!.cut(parameters.slashFractionBps)
        totalSupply -= cut
        burned += cut
    }

    /// Every event a bonded agent signs is a sign of life.
    mutating func noteSeen(_ author: PublicKey, at h: Height) {
        guard trustRules, let t = agents[author]?.trust, t.lastSeen != h else { return }
        agents[author]!.trust!.lastSeen = h
    }

    /// A transfer that creates an account under rule version 3 passes on the sender's origin.
    mutating func noteOrigin(of to: PublicKey, from: PublicKey) {
        guard trustRules, accounts[to] == nil else { return }
        economy.origins[to] = origin(of: from)
    }

    /// Under rule version 3 only bonded agents post and take jobs.
    func requireBonded(_ k: PublicKey) throws(ApplyError) {
        guard trustRules else { return }
        guard agents[k]?.trust != nil else { throw .notBonded("agent \(k.short)") }
    }

    // MARK: Evaluators

    /// A job's evaluation: only under rule version 3; a named evaluator is a participant
    /// other than the client and the arbiter; the specification hash is not zero.
    func checkEvaluation(_ spec: JobSpec, client: PublicKey) throws(ApplyError) {
        guard let specHash = spec.evaluation.spec else { return }
        guard trustRules else { throw .invalidJob("an evaluator needs rule version \(RuleVersion.trust)") }
        guard specHash != .zero else { throw .invalidJob("the specification hash is zero") }
        if case let .named(k, _) = spec.evaluation {
            guard k != client, k != spec.arbiter else { throw .invalidJob("the evaluator is the client or the arbiter") }
            guard isParticipant(k) else { throw .invalidJob("evaluator \(k.short) is not a registered agent or validator") }
        }
    }

    /// The evaluator's attestation of a submitted result against the job's specification
    /// hash: it pays the milestone to the worker, as the client's release does.
    func checkJobAttest(_ j: JobID, _ m: UInt16, _ result: Hash32, _ spec: Hash32, author: PublicKey,
                        _ w: inout EconomyWrites) throws(ApplyError) {
        guard trustRules else { throw .kindNotActive(.jobAttest, ruleVersion: economy.ruleVersion) }
        var job = try existingJob(j)
        guard job.evaluator != .zero, author == job.evaluator else { throw .notEvaluator(j) }
        guard job.status == .accepted else { throw .wrongJobStatus(j, job.status) }
        guard job.funded else { throw .notFunded(j) }
        let i = try milestoneIndex(job, m)
        guard !job.milestones[i].settled else { throw .milestoneSettled(m) }
        guard job.milestones[i].result != .zero else { throw .noResult(m) }
        guard result == job.milestones[i].result else { throw .invalidAttestation("result \(result.short) is not the submitted \(job.milestones[i].result.short)") }
        guard spec == job.spec.evaluation.spec else { throw .invalidAttestation("specification \(spec.short) is not the job's") }
        settle(&job, i, toWorker: job.milestones[i].amount, &w)
        w.job = job
    }

    // MARK: Messages

    /// A sealed message from a participant to a registered agent, at most
    /// `Limits.messagesPerSenderPerBlockMax` a block from one sender.
    func checkMessage(_ to: PublicKey, _ sealed: [UInt8], author: PublicKey, _ w: inout EconomyWrites) throws(ApplyError) {
        guard trustRules else { throw .kindNotActive(.messageSend, ruleVersion: economy.ruleVersion) }
        guard isParticipant(author) else { throw .notRegistered("agent or validator \(author.short)") }
        guard agents[to]?.active == true else { throw .notRegistered("recipient agent \(to.short)") }
        guard to != author else { throw .invalidMessage("a message to oneself") }
        guard sealed.count > Limits.sealedBoxOverheadBytes else {
            throw .invalidMessage("a sealed box has more than \(Limits.sealedBoxOverheadBytes) bytes, this one \(sealed.count)")
        }
        guard sealed.count <= Limits.messageBytesMax else {
            throw .invalidMessage("\(sealed.count) bytes is above the \(Limits.messageBytesMax)-byte limit")
        }
        guard blockMessages.count[author, default: 0] < Limits.messagesPerSenderPerBlockMax else {
            throw .tooManyMessages(max: Limits.messagesPerSenderPerBlockMax)
        }
        w.messageFrom = author
    }

    // MARK: Reputation under version 3 (computed in checks, written by applyEconomy)

    func trustRecord(_ k: PublicKey, _ w: EconomyWrites) -> AgentTrust? { w.trust[k] ?? agents[k]?.trust }

    func updateTrust(_ k: PublicKey, _ w: inout EconomyWrites, _ change: (inout AgentTrust) -> Void) {
        guard var t = trustRecord(k, w) else { return }
        change(&t)
        w.trust[k] = t
    }

    func pairRecord(_ k: PairKey, _ w: EconomyWrites) -> PairRecord {
        w.pairs.last { $0.0 == k }?.1 ?? economy.pairs[k] ?? PairRecord()
    }

    static func addReputation(_ k: PublicKey, _ delta: Int64, _ w: inout EconomyWrites) {
        if delta != 0 { w.reputation.append((k, delta)) }
    }

    /// A completed job: the n-th between the same client and worker earns 1/n, in
    /// proportion to what the worker was paid and to the other party's standing.
    func completeTrust(_ job: Job, _ w: inout EconomyWrites) {
        let h = height, key = PairKey(from: job.client, to: job.worker)
        var pair = pairRecord(key, w)
        pair.jobs += 1
        w.pairs.append((key, pair))
        let paid = job.milestones.reduce(UInt64(0)) { $0 + $1.paid }
        if !sameFunds(job.client, job.worker) {
            let v = valueWeight(paid), n = Int64(clamping: pair.jobs)
            Self.addReputation(job.worker, Self.weighted(ReputationRule.jobCompletedWorker, value: v, standing: standingWeight(of: job.client, at: h)) / n, &w)
            Self.addReputation(job.client, Self.weighted(ReputationRule.jobCompletedClient, value: v, standing: standingWeight(of: job.worker, at: h)) / n, &w)
        }
        updateTrust(job.worker, &w) { $0.outcomes.completedAsWorker += 1 }
        updateTrust(job.client, &w) { $0.outcomes.completedAsClient += 1 }
    }

    /// A refund with a worker assigned costs the worker, by the job's value and the client's standing.
    func refundTrust(_ job: Job, _ w: inout EconomyWrites) {
        guard job.worker != .zero else { return }
        if !sameFunds(job.client, job.worker) {
            let d = Self.weighted(ReputationRule.refundedWorker, value: valueWeight(job.total), standing: standingWeight(of: job.client, at: height))
            Self.addReputation(job.worker, d, &w)
        }
        updateTrust(job.worker, &w) { $0.outcomes.refunded += 1 }
    }

    /// A resolved dispute: the winner and loser by the job's value (the arbiters decided,
    /// so no party's standing weighs), and the loser forfeits `disputeBondSlashBps` of its bond.
    func resolveTrust(_ job: Job, workerWon: Bool, _ w: inout EconomyWrites) {
        let winner = workerWon ? job.worker : job.client, loser = workerWon ? job.client : job.worker
        if !sameFunds(job.client, job.worker) {
            let v = Int64(valueWeight(job.total))
            Self.addReputation(winner, Self.weighted(ReputationRule.disputeWinner, value: v, standing: 10_000), &w)
            Self.addReputation(loser, Self.weighted(ReputationRule.disputeLoser, value: v, standing: 10_000), &w)
        }
        updateTrust(winner, &w) { $0.outcomes.disputes += 1 }
        let bps = economy.parameters.trust.disputeBondSlashBps
        var cut: UInt64 = 0
        updateTrust(loser, &w) { t in
            t.outcomes.disputes += 1; t.outcomes.disputesLost += 1
            cut = t.cut(bps)
        }
        w.bondBurned += cut
    }

    /// A rating of a settled job: (score − 3) points by the job's value and the rater's
    /// standing; counted in the subject's outcomes only when it weighs something.
    func rateTrust(_ job: Job, subject: PublicKey, rater: PublicKey, score: UInt8, _ w: inout EconomyWrites) {
        guard !sameFunds(rater, subject) else { return }
        let standing = standingWeight(of: rater, at: height)
        guard standing > 0 else { return }
        let base = (Int64(score) - 3) * ReputationRule.ratingStep
        Self.addReputation(subject, Self.weighted(base, value: valueWeight(job.total), standing: standing), &w)
        updateTrust(subject, &w) { $0.outcomes.ratings += 1; $0.outcomes.ratingSum += UInt64(score) }
    }

    /// An endorsement: by a validator with power or a bonded agent, once per subject and
    /// period, weighted by the endorser's standing; nothing between keys of one origin.
    func endorseTrust(_ subject: PublicKey, _ delta: Int8, author: PublicKey, _ w: inout EconomyWrites) throws(ApplyError) {
        let h = height
        guard hasPower(ValidatorID(author)) || (agents[author]?.active == true && agents[author]?.trust != nil) else {
            throw .notBonded("endorser \(author.short)")
        }
        let key = PairKey(from: author, to: subject), period = economy.parameters.trust.endorsementPeriodBlocks
        var pair = pairRecord(key, w)
        if pair.endorsedAt != 0 {
            let next = Height(pair.endorsedAt.value.saturatingAdd(period))
            guard h >= next else { throw .endorsementTooSoon(nextAt: next) }
        }
        pair.endorsedAt = h
        w.pairs.append((key, pair))
        guard !sameFunds(author, subject) else { return }
        Self.addReputation(subject, Self.weighted(Int64(delta) * ReputationRule.endorsementStep, value: 10_000, standing: standingWeight(of: author, at: h)), &w)
    }
}

extension AgentTrust {
    /// Takes `bps` of the bond out of it (to be burned) and counts it as slashed; the amount.
    mutating func cut(_ bps: UInt32) -> UInt64 {
        let c = UInt64(UInt128(bond) * UInt128(bps) / UInt128(ChainParameters.basisPoints))
        bond -= c
        bondSlashed = bondSlashed.saturatingAdd(c)
        return c
    }
}
