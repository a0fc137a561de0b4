import LedgerCore

/// Gas per event (rule version 2): a fixed cost per kind plus one per started 512 bytes
/// beyond the first 512 (schemas/ECONOMY.md §Fees). A plain transfer costs 1.
public enum Gas {
    public static func of(_ kind: EventKind, bytes: Int) -> UInt64 {
        let base: UInt64
        switch kind {
        case .transfer, .evidence, .opinion, .agentDeregister, .agentHeartbeat, .rate, .endorse, .memeReact, .interact, .govVote: base = 1
        case .bond, .unbond, .delegate, .undelegate, .claimRewards, .setCommission, .allianceAccept, .allianceReject,
             .allianceDissolve, .jobAccept, .jobSubmit, .jobAttest, .disputeVote, .memePost, .messageSend:
            base = 2
        case .agentRegister, .agentUpdate, .escrowFund, .escrowRelease, .escrowRefund: base = 3
        case .alliancePropose, .escrowMultisig, .disputeResolve: base = 4
        case .validatorRegister, .validatorRetire, .validatorRotateKey, .validatorUnjail, .jobPost, .disputeOpen, .govPropose: base = 5
        }
        return base + UInt64(max(0, bytes - 1) / 512)
    }
}

/// Reputation changes, in milli-points (schemas/ECONOMY.md §Reputation).
public enum ReputationRule {
    public static let milestonePaid: Int64 = 2_000
    public static let jobCompletedWorker: Int64 = 5_000
    public static let jobCompletedClient: Int64 = 1_000
    public static let refundedWorker: Int64 = -5_000
    public static let disputeWinner: Int64 = 3_000
    public static let disputeLoser: Int64 = -3_000
    public static let arbiterVoted: Int64 = 1_000
    public static let arbiterSilent: Int64 = -1_000
    /// Per point of a rating above or below 3 (ratings are 1 to 5).
    public static let ratingStep: Int64 = 1_000
    /// Per point of a validator's endorsement (-5 to 5).
    public static let endorsementStep: Int64 = 1_000
    public static let slashed: Int64 = -20_000
    public static let bound: Int64 = 1 << 50
}

/// The writes an economy event makes, computed while checking it: `apply` performs
/// them only after every rule (and the fee and balance) passed.
struct EconomyWrites {
    var job: Job?
    /// Balance credits out of escrow or rewards.
    var credits: [(PublicKey, UInt64)] = []
    var reputation: [(PublicKey, Int64)] = []
    var meme: MemeState?
    var influence: [(PublicKey, InfluenceCounters)] = []
    var proposal: ProposalState?
    var commission: (ValidatorID, UInt32)?
    /// Rewards claimed (moved from `rewards[author]` to the balance).
    var claimed: UInt64 = 0
    /// Rule version 3: agents' new trust records, pair records (the last for a key
    /// wins), and bond burned by a lost dispute.
    var trust: [PublicKey: AgentTrust] = [:]
    var pairs: [(PairKey, PairRecord)] = []
    var bondBurned: UInt64 = 0
    /// A message sent: counted against its sender's limit for the block.
    var messageFrom: PublicKey?
}

extension LedgerState {
    /// The fee an event of `kind` and `bytes` must offer at the current base fee: the
    /// chain's floor, and under rule version 2 its gas at the base fee (`gasCharge`).
    /// The fold applies the same two checks, in that order (`apply`).
    public func requiredFee(_ kind: EventKind, bytes: Int) -> UInt64 {
        guard let g = gasCharge(kind, bytes: bytes) else { return parameters.minFee }
        return max(g.charge ?? .max, parameters.minFee)
    }

    /// Rule version 2's charge for an event: its gas, and gas × base fee (nil when that
    /// overflows, which no fee can pay). Nil under rule version 1, which has no gas.
    func gasCharge(_ kind: EventKind, bytes: Int) -> (gas: UInt64, charge: UInt64?)? {
        guard economy.ruleVersion >= RuleVersion.economy else { return nil }
        let gas = Gas.of(kind, bytes: bytes)
        let (c, o) = gas.multipliedReportingOverflow(by: economy.baseFee)
        return (gas, o ? nil : c)
    }

    /// The fee for a payload signed into an envelope (the envelope's size follows from the payload).
    public func requiredFee(for p: Payload) -> UInt64 {
        requiredFee(p.kind, bytes: Envelope.overheadBytes + p.encoded().count)
    }

    // MARK: Checks (no writes)

    func checkEconomy(_ p: Payload, author: PublicKey, id: EventID, _ ctx: BlockContext,
                      spend: inout UInt64) throws(ApplyError) -> EconomyWrites {
        let rules = economy.ruleVersion
        switch p.kind {
        case .govPropose, .govVote: break
        default:
            guard rules >= RuleVersion.economy else { throw .kindNotActive(p.kind, ruleVersion: rules) }
        }
        var w = EconomyWrites()
        let h = ctx.height
        switch p {
        case .claimRewards: try checkClaimRewards(author: author, &w)
        case let .setCommission(bps): try checkSetCommission(bps, author: author, &w)
        case let .jobPost(spec): try checkJobPost(spec, author: author, id: id, at: h, &w)
        case let .jobAccept(j): try checkJobAccept(j, author: author, at: h, &w)
        case let .escrowFund(j): try checkEscrowFund(j, author: author, spend: &spend, &w)
        case let .jobSubmit(j, m, result): try checkJobSubmit(j, m, result, author: author, at: h, &w)
        case let .escrowRelease(j, m): try checkEscrowRelease(j, m, author: author, &w)
        case let .escrowMultisig(r): try checkEscrowMultisig(r, author: author, &w)
        case let .escrowRefund(j): try checkEscrowRefund(j, author: author, at: h, &w)
        case let .disputeOpen(j, reason): try checkDisputeOpen(j, reason, author: author, at: h, &w)
        case let .disputeVote(j, bps): try checkDisputeVote(j, bps, author: author, &w)
        case let .disputeResolve(j): try checkDisputeResolve(j, author: author, at: h, &w)
        case let .rate(j, score, _): try checkRate(j, score, author: author, &w)
        case let .endorse(subject, delta, _): try checkEndorse(subject, delta, author: author, &w)
        case let .memePost(m): try checkMemePost(m, author: author, id: id, at: h, &w)
        case let .memeReact(mid, reaction): try checkMemeReact(mid, reaction, author: author, &w)
        case let .interact(target, _, mid): try checkInteract(target, mid, author: author, &w)
        case let .govPropose(gp): try checkGovPropose(gp, author: author, id: id, at: h, &w)
        case let .govVote(pid, approve): try checkGovVote(pid, approve, author: author, &w)
        case let .messageSend(to, sealed): try checkMessage(to, sealed, author: author, &w)
        case let .jobAttest(j, m, result, spec): try checkJobAttest(j, m, result, spec, author: author, &w)
        default:
            preconditionFailure("checkEconomy called for \(p.kind)")
        }
        return w
    }

    /// Whether `v` is an active validator holding voting power in the current epoch.
    func hasPower(_ v: ValidatorID) -> Bool {
        guard let s = validators[v], s.status == .active else { return false }
        return epochPower[s.consensusKey] != nil
    }

    func existingJob(_ j: JobID) throws(ApplyError) -> Job {
        guard let job = economy.jobs[j] else { throw .unknownJob(j) }
        return job
    }

    func milestoneIndex(_ job: Job, _ m: UInt16) throws(ApplyError) -> Int {
        guard Int(m) < job.milestones.count else { throw .unknownMilestone(m) }
        return Int(m)
    }

    func checkSpec(_ s: JobSpec, client: PublicKey, at h: Height) throws(ApplyError) {
        guard !s.title.isEmpty else { throw .invalidJob("empty title") }
        guard !s.milestones.isEmpty else { throw .invalidJob("no milestones") }
        guard s.milestones.allSatisfy({ $0 > 0 }) else { throw .invalidJob("a milestone pays nothing") }
        var total: UInt64 = 0
        for m in s.milestones { total = try add(total, m) }
        guard Set(s.capabilities).count == s.capabilities.count, s.capabilities.allSatisfy({ !$0.isEmpty }) else {
            throw .invalidJob("empty or repeated capability")
        }
        guard s.deadline > h, s.deadline.value - h.value <= ChainParameters.unbondingBlocksMax else {
            throw .invalidJob("deadline \(s.deadline) must be after the current block \(h)")
        }
        guard (-ReputationRule.bound ... ReputationRule.bound).contains(s.minReputation) else { throw .invalidJob("minimum reputation out of range") }
        if s.arbiter != .zero {
            guard s.arbiter != client else { throw .invalidJob("the client cannot be the arbiter") }
            guard isParticipant(s.arbiter) else { throw .invalidJob("arbiter \(s.arbiter.short) is not a registered agent or validator") }
        }
    }

    /// Who must sign a multisig release: the client and the worker, or any two of the
    /// client, the worker and the job's arbiter. Anyone else signing is refused.
    func checkSigners(_ job: Job, _ r: MultisigRelease, author: PublicKey) throws(ApplyError) {
        let parties: Set<PublicKey> = job.spec.arbiter == .zero ? [job.client, job.worker] : [job.client, job.worker, job.spec.arbiter]
        var signers: Set<PublicKey> = [author]
        let statement = MultisigRelease.statement(chain: chainID.raw, job: r.job, milestone: r.milestone, workerAmount: r.workerAmount)
        for c in r.cosignatures {
            guard signers.insert(c.key).inserted else { throw .wrongSigners("\(c.key.short) signs twice") }
            guard crypto.verify(c.signature, statement, c.key) else { throw .badCosignature(c.key) }
        }
        for s in signers where !parties.contains(s) { throw .wrongSigners("\(s.short) is not a party to the job") }
        guard signers.count >= 2 else { throw .wrongSigners("a multisig release needs two of the parties") }
    }

    /// Pays milestone `i`: `toWorker` to the worker, the rest back to the client.
    func settle(_ job: inout Job, _ i: Int, toWorker: UInt64, _ w: inout EconomyWrites) {
        let amount = job.milestones[i].amount
        job.milestones[i].paid = toWorker; job.milestones[i].refunded = amount - toWorker; job.milestones[i].settled = true
        job.escrowed -= amount
        if toWorker > 0 {
            w.credits.append((job.worker, toWorker))
            if !trustRules { w.reputation.append((job.worker, ReputationRule.milestonePaid)) }
        }
        if amount > toWorker { w.credits.append((job.client, amount - toWorker)) }
        if job.milestones.allSatisfy(\.settled) {
            job.status = .completed
            if trustRules {
                completeTrust(job, &w)
            } else {
                w.reputation.append((job.worker, ReputationRule.jobCompletedWorker))
                w.reputation.append((job.client, ReputationRule.jobCompletedClient))
            }
        }
    }

    /// Who may be drawn to arbitrate `job`: active agents with at least
    /// `arbiterMinReputation` and validators holding voting power (registering a validator
    /// costs only a fee; holding power takes bonded stake and an epoch), without the job's
    /// client, worker and named arbiter.
    public func arbiterCandidates(_ job: Job) -> Set<PublicKey> {
        var candidates = Set<PublicKey>()
        let h = height
        for (k, a) in agents where a.active && reputation(of: k, at: h) >= economy.parameters.arbiterMinReputation { candidates.insert(k) }
        for k in validators.keys where hasPower(k) { candidates.insert(k.raw) }
        candidates.subtract([job.client, job.worker, job.spec.arbiter])
        return candidates
    }

    /// The arbiters of a dispute: the candidates ordered by BLAKE2b-256(job id | seed | key),
    /// the first `arbitersPerDispute`. The seed is the root of the state after the block
    /// that opened the dispute (`drawPendingArbiters`).
    public func drawArbiters(_ job: Job, seed: Hash32) -> [PublicKey] {
        var scored: [(Hash32, PublicKey)] = []
        for k in arbiterCandidates(job) {
            var b: [UInt8] = []
            job.id.append(to: &b); seed.append(to: &b); k.append(to: &b)
            scored.append((crypto.hash(b), k))
        }
        scored.sort { $0.0 < $1.0 }
        return scored.prefix(Int(economy.parameters.arbitersPerDispute)).map(\.1)
    }

    // MARK: Reputation and influence (queries; deterministic)

    /// An agent's reputation at `h` (default: the current height), in milli-points: the
    /// stored value halved every `reputationHalfLifeBlocks`, linearly between halvings.
    public func reputation(of k: PublicKey, at h: Height? = nil) -> Int64 {
        guard let r = economy.reputation[k] else { return 0 }
        return Self.decayed(r.value, from: r.asOf, to: h ?? height, halfLife: economy.parameters.reputationHalfLifeBlocks)
    }

    public static func decayed(_ v: Int64, from: Height, to: Height, halfLife: UInt64) -> Int64 {
        guard to > from, v != 0 else { return v }
        let d = to.value - from.value
        let halvings = d / halfLife, rem = d % halfLife
        guard halvings < 63 else { return 0 }
        let v1 = v / (Int64(1) << halvings)
        let cut = Int128(v1) * Int128(rem) / Int128(2 * halfLife)
        return v1 - Int64(cut)
    }

    /// An agent's influence (schemas/ECONOMY.md §Influence): 10 per meme posted, reactions
    /// received weighted (like 3, laugh 2, fire 5, dislike −2), 4 per interaction received,
    /// and per active alliance 25 plus 5 per other member.
    public func influence(of k: PublicKey) -> Int64 {
        var score: Int64 = 0
        if let c = economy.influence[k] {
            score += 10 * Int64(clamping: c.memesPosted)
            for (r, n) in c.reactionsReceived {
                let weight: Int64
                switch Reaction(rawValue: r) { case .like: weight = 3; case .laugh: weight = 2; case .fire: weight = 5; case .dislike: weight = -2; case nil: weight = 0 }
                score += weight * Int64(clamping: n)
            }
            score += 4 * Int64(clamping: c.interactionsReceived)
        }
        for a in alliances.values where a.status == .active && a.members.contains(k) {
            score += 25 + 5 * Int64(a.members.count - 1)
        }
        return score
    }

    /// Agents that could take `job`: active, not its client or arbiter, holding every
    /// capability and the minimum reputation; best reputation first, then by key.
    public func matches(_ job: Job) -> [(agent: PublicKey, reputation: Int64)] {
        var out: [(PublicKey, Int64)] = []
        for (k, a) in agents where a.active && k != job.client && k != job.spec.arbiter {
            let caps = Set(a.profile.capabilities)
            guard job.spec.capabilities.allSatisfy(caps.contains) else { continue }
            let r = reputation(of: k)
            if r >= job.spec.minReputation { out.append((k, r)) }
        }
        return out.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
    }

    // MARK: Writes

    /// Performs the writes of a checked economy event. Credits were checked for overflow.
    mutating func applyEconomy(_ w: EconomyWrites, author: PublicKey, at h: Height, governance: Bool) {
        if governance { economy.present = true }
        if let j = w.job {
            economy.jobs[j.id] = j
            noteJob(j)
        }
        // The author's own credits were added to its balance with the fee (`apply`).
        for (k, amount) in w.credits where k != author { accounts[k, default: Account(balance: 0, nonce: 0)].balance += amount }
        if w.claimed > 0 { economy.rewards[author] = nil }
        for (k, d) in w.reputation { adjustReputation(k, d, at: h) }
        if let m = w.meme { economy.memes[m.id] = m }
        for (k, c) in w.influence { economy.influence[k] = c }
        if let p = w.proposal {
            economy.proposals[p.id] = p
            noteProposal(p)
        }
        if let (v, bps) = w.commission { economy.commissions[v] = bps }
        for (k, t) in w.trust { agents[k]!.trust = t }
        for (k, p) in w.pairs { economy.pairs[k] = p }
        if w.bondBurned > 0 { burned += w.bondBurned; totalSupply -= w.bondBurned }
        if let k = w.messageFrom { blockMessages.count[k, default: 0] += 1 }
    }

    mutating func adjustReputation(_ k: PublicKey, _ delta: Int64, at h: Height) {
        let now = reputation(of: k, at: h)
        let v = max(-ReputationRule.bound, min(ReputationRule.bound, now + delta))
        economy.reputation[k] = Reputation(value: v, asOf: h)
    }

    /// Checks that the credits of `w` (with `extra` more to `extraKey`) cannot overflow a balance.
    func checkCredits(_ w: EconomyWrites) throws(ApplyError) {
        var sums: [PublicKey: UInt64] = [:]
        for (k, a) in w.credits { sums[k] = try add(sums[k] ?? 0, a) }
        for (k, a) in sums { _ = try add(accounts[k]?.balance ?? 0, a) }
    }

    // MARK: Block boundaries (rule version 2)

    /// Draws the arbiters of the disputes opened in the block just folded, seeded by the
    /// root of the state it left (the next header's parent state root). Called first in
    /// `beginBlock`, before anything of the new block changes the state. `seed` is that
    /// root when the caller already has it (every header names it).
    mutating func drawPendingArbiters(seed known: Hash32?) {
        guard economy.ruleVersion >= RuleVersion.economy else { return }
        guard !undrawnDisputes.isEmpty else { return }
        let pending = undrawnDisputes.sorted()
        undrawnDisputes = []
        let seed = known ?? stateRoot()
        for id in pending {
            let arbiters = drawArbiters(economy.jobs[id]!, seed: seed)
            economy.jobs[id]!.dispute!.arbiters = arbiters
        }
    }

    /// Draws the evaluators of accepted jobs that asked for one (rule version 3), seeded
    /// like the arbiters: the first of the arbiter order. A job with no candidate keeps
    /// waiting, and is drawn for at the next block begin.
    mutating func drawPendingEvaluators(seed known: Hash32?) {
        guard !undrawnEvaluators.isEmpty else { return }
        let seed = known ?? stateRoot()
        for id in undrawnEvaluators.sorted() {
            guard let first = drawArbiters(economy.jobs[id]!, seed: seed).first else { continue }
            economy.jobs[id]!.evaluator = first
            undrawnEvaluators.remove(id)
        }
    }

    /// At the start of a block: pays the previous block's rewards (minted reward plus
    /// the fees not burned) and moves the base fee toward the gas target (by at least 1
    /// per block while it is away from it, so small base fees move too), then activates
    /// the governance proposals due at this height. Called by `beginBlock` before the
    /// epoch's power is fixed, so the previous block's rewards follow its own epoch.
    mutating func settleBlock(_ ctx: BlockContext) {
        if economy.ruleVersion >= RuleVersion.economy, economy.lastProposer != .zero {
            distributeRewards()
            let p = economy.parameters, used = economy.blockGasUsed, target = p.gasTargetPerBlock, base = economy.baseFee
            if used > target {
                let up = UInt64(UInt128(base) * UInt128(used - target) / UInt128(target) / 8)
                economy.baseFee = min(base.saturatingAdd(max(1, up)), 1 << 40)
            } else if used < target {
                let down = max(1, UInt64(UInt128(base) * UInt128(target - used) / UInt128(target) / 8))
                economy.baseFee = max(p.baseFeeMin, base - min(base, down))
            }
            economy.blockGasUsed = 0
            economy.feePool = 0
        }
    }

    /// Activates (or rejects) the proposals due at `ctx.height`, in id order. A proposal
    /// passes with more than two thirds of the epoch's voting power approving.
    mutating func activateProposals(_ ctx: BlockContext) {
        guard !pendingProposals.isEmpty else { return }
        let due = pendingProposals.filter { economy.proposals[$0]!.proposal.activateAt <= ctx.height }.sorted()
        for id in due {
            var p = economy.proposals[id]!
            var yes: UInt128 = 0, total: UInt128 = 0
            for (key, power) in epochPower {
                total += UInt128(power)
                if let v = consensusKeys[key], p.votes[v] == true { yes += UInt128(power) }
            }
            p.status = .rejected
            if total > 0, yes * 3 > total * 2 {
                switch p.proposal.change {
                case let .parameter(name, value):
                    if let (c, e) = try? GovernableParameter.apply(name, value, chain: parameters, economy: economy.parameters) {
                        parameters = c; economy.parameters = e; p.status = .activated
                        economy.baseFee = max(economy.baseFee, e.baseFeeMin)
                    }
                case let .ruleVersion(v):
                    if v > economy.ruleVersion, RuleVersion.supported.contains(v) {
                        economy.ruleVersion = v
                        economy.ruleHistory.append(RuleEpoch(from: ctx.height, version: v))
                        economy.baseFee = max(economy.baseFee, economy.parameters.baseFeeMin)
                        p.status = .activated
                    }
                }
            }
            economy.proposals[id] = p
            noteProposal(p)
        }
    }

    /// Shares the previous block's rewards: `proposerBonusBps` to its proposer; the rest
    /// to the validators by epoch power, each keeping its commission and sharing what is
    /// left with its delegators by stake. Every division rounds down; the remainders go
    /// to the proposer (within a validator, to the validator), so nothing is lost.
    mutating func distributeRewards() {
        // Minting stops short of overflowing the supply (every balance, stake and reward
        // is a part of it, so none of them can overflow either).
        let mint = min(economy.parameters.blockReward, UInt64.max - totalSupply)
        let pool = economy.feePool + mint
        economy.minted += mint
        totalSupply += mint
        guard pool > 0 else { return }
        let proposer = economy.lastProposer
        let bonus = UInt64(UInt128(pool) * UInt128(economy.parameters.proposerBonusBps) / UInt128(ChainParameters.basisPoints))
        let rest = pool - bonus
        var totalPower: UInt128 = 0
        for p in epochPower.values { totalPower += UInt128(p) }
        var given: UInt64 = 0
        if totalPower > 0 {
            var byValidator: [ValidatorID: [(PublicKey, UInt64)]] = [:]
            for (k, amount) in delegations { byValidator[k.validator, default: []].append((k.delegator, amount)) }
            for (key, power) in epochPower {
                guard let vid = consensusKeys[key], let v = validators[vid] else { continue }
                let share = UInt64(UInt128(rest) * UInt128(power) / totalPower)
                guard share > 0 else { continue }
                given += share
                // A commission set before governance lowered the cap is held to the cap.
                let rate = min(economy.commissions[vid] ?? economy.parameters.defaultCommissionBps, economy.parameters.commissionMaxBps)
                let commission = UInt64(UInt128(share) * UInt128(rate) / UInt128(ChainParameters.basisPoints))
                let toStake = share - commission
                let stake = UInt128(v.selfStake) + UInt128(v.delegated)
                var toDelegators: UInt64 = 0
                if stake > 0 {
                    for (d, amount) in byValidator[vid] ?? [] {
                        let part = UInt64(UInt128(toStake) * UInt128(amount) / stake)
                        if part > 0 { economy.rewards[d, default: 0] += part; toDelegators += part }
                    }
                }
                economy.rewards[vid.raw, default: 0] += share - toDelegators
            }
        }
        economy.rewards[proposer.raw, default: 0] += bonus + (rest - given)
    }

    /// Rule version 2's part of a slashing: the validator's delegations lose the same
    /// fraction (recorded per delegator) and the validator loses reputation.
    mutating func slashDelegations(_ v: ValidatorID, evidence: EventID, at h: Height) {
        adjustReputation(v.raw, ReputationRule.slashed, at: h)
        let bps = UInt128(parameters.slashFractionBps)
        for k in delegations.keys.filter({ $0.validator == v }).sorted() {
            let have = delegations[k]!
            let amount = UInt64(UInt128(have) * bps / UInt128(ChainParameters.basisPoints))
            guard amount > 0 else { continue }
            delegations[k] = have - amount == 0 ? nil : have - amount
            validators[v]!.delegated -= amount
            totalSupply -= amount
            burned += amount
            economy.delegatorSlashes.append(DelegatorSlash(validator: v, delegator: k.delegator, amount: amount, evidence: evidence))
        }
    }
}
