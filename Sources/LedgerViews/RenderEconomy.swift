import Foundation
import LedgerCore
import LedgerProjections

/// JSON views of the agent economy: its payloads and its projections (jobs and escrow,
/// reputation, influence, memes, rewards, governance, fees).
extension Render {
    static func economyPayload(_ p: Payload) -> [String: Any] {
        switch p {
        case .claimRewards: [:]
        case let .setCommission(bps): ["commissionBps": bps]
        case let .jobPost(s): jobSpec(s)
        case let .jobAccept(j), let .escrowFund(j), let .escrowRefund(j), let .disputeResolve(j): ["job": j.hex]
        case let .jobSubmit(j, m, r): ["job": j.hex, "milestone": m, "result": r.hex]
        case let .jobAttest(j, m, r, spec): ["job": j.hex, "milestone": m, "result": r.hex, "specHash": spec.hex]
        case let .escrowRelease(j, m): ["job": j.hex, "milestone": m]
        case let .escrowMultisig(r):
            ["job": r.job.hex, "milestone": r.milestone, "workerAmount": r.workerAmount,
             "cosigners": r.cosignatures.map { $0.key.hex }]
        case let .disputeOpen(j, reason): ["job": j.hex, "reason": reason]
        case let .disputeVote(j, bps): ["job": j.hex, "workerShareBps": bps]
        case let .rate(j, score, comment): ["job": j.hex, "score": score, "comment": comment]
        case let .endorse(subject, delta, reason): ["subject": subject.hex, "delta": delta, "reason": reason]
        case let .messageSend(to, sealed): ["to": to.hex, "sealed": Hex.encode(sealed)]
        case let .memePost(m): meme(m)
        case let .memeReact(m, r): ["meme": m.hex, "reaction": r.name]
        case let .interact(t, k, m): ["target": t.hex, "interaction": k.name, "meme": m == .zero ? NSNull() : m.hex as Any]
        case let .govPropose(gp): proposal(gp)
        case let .govVote(pid, approve): ["proposal": pid.hex, "approve": approve]
        default: [:]
        }
    }

    public static func jobSpec(_ s: JobSpec) -> [String: Any] {
        var d: [String: Any] = ["title": s.title, "capabilities": s.capabilities, "milestones": s.milestones, "deadline": s.deadline.value,
                                "minReputation": s.minReputation, "arbiter": s.arbiter == .zero ? NSNull() : s.arbiter.hex as Any]
        switch s.evaluation {
        case .none: break
        case let .named(k, spec): d["evaluation"] = ["mode": "named", "evaluator": k.hex, "specHash": spec.hex]
        case let .drawn(spec): d["evaluation"] = ["mode": "drawn", "specHash": spec.hex]
        }
        return d
    }

    public static func meme(_ m: Meme) -> [String: Any] {
        ["contentHash": m.contentHash.hex, "content": m.content, "tags": m.tags]
    }

    public static func proposal(_ gp: GovernanceProposal) -> [String: Any] {
        var d: [String: Any] = ["activateAt": gp.activateAt.value, "description": gp.description]
        switch gp.change {
        case let .parameter(name, value): d["change"] = ["parameter": name, "value": value]
        case let .ruleVersion(v): d["change"] = ["ruleVersion": v]
        }
        return d
    }

    /// A job; a posted one with its best-matching agents unless `matches` is false (they
    /// change with every other agent, so the sink leaves them out).
    public static func job(_ j: Job, _ s: LedgerState, matches: Bool = true) -> [String: Any] {
        var d: [String: Any] = [
            "id": j.id.hex, "client": j.client.hex, "spec": jobSpec(j.spec), "postedAt": j.postedAt.value,
            "worker": j.worker == .zero ? NSNull() : j.worker.hex as Any, "status": j.status.description, "funded": j.funded,
            "escrowed": j.escrowed, "clientRated": j.clientRated, "workerRated": j.workerRated,
            "milestones": j.milestones.map { m -> [String: Any] in
                ["amount": m.amount, "result": m.result == .zero ? NSNull() : m.result.hex as Any, "submittedAt": m.submittedAt.value,
                 "paid": m.paid, "refunded": m.refunded, "settled": m.settled]
            },
        ]
        if j.spec.evaluation != .none { d["evaluator"] = j.evaluator == .zero ? NSNull() : j.evaluator.hex as Any }
        if let x = j.dispute {
            d["dispute"] = ["openedBy": x.openedBy.hex, "openedAt": x.openedAt.value, "reason": x.reason,
                            "arbiters": x.arbiters.map(\.hex), "workerShareBps": x.workerShareBps,
                            "votes": x.votes.keys.sorted().map { ["arbiter": $0.hex, "workerShareBps": x.votes[$0]!] }]
        }
        if matches, j.status == .posted { d["matches"] = s.matches(j).prefix(20).map { ["agent": $0.agent.hex, "reputation": $0.reputation] } }
        return d
    }

    public static func reputation(_ k: PublicKey, _ s: LedgerState) -> [String: Any] {
        ["agent": k.hex, "reputation": s.reputation(of: k), "influence": s.influence(of: k),
         "asOf": s.economy.reputation[k]?.asOf.value ?? 0]
    }

    public static func memeState(_ m: MemeState) -> [String: Any] {
        var d = meme(m.meme)
        d["id"] = m.id.hex; d["author"] = m.author.hex; d["postedAt"] = m.postedAt.value
        d["reactions"] = Dictionary(uniqueKeysWithValues: m.reactions.map { (Reaction(rawValue: $0.key)?.name ?? "\($0.key)", $0.value) })
        return d
    }

    public static func proposalState(_ p: ProposalState) -> [String: Any] {
        var d = proposal(p.proposal)
        d["id"] = p.id.hex; d["proposer"] = p.proposer.hex; d["proposedAt"] = p.proposedAt.value; d["status"] = p.status.description
        d["votes"] = p.votes.keys.sorted().map { ["validator": $0.hex, "approve": p.votes[$0]!] }
        return d
    }

    public static func economy(_ s: LedgerState) -> [String: Any] {
        let e = s.economy
        let p = e.parameters
        var out: [String: Any] = [
            "ruleVersion": e.ruleVersion, "ruleHistory": e.ruleHistory.map { ["from": $0.from.value, "version": $0.version] },
            "baseFee": e.baseFee, "blockGasUsed": e.blockGasUsed, "feePool": e.feePool, "minted": e.minted,
            "feesBurned": e.feesBurned, "slashed": s.burned, "totalSupply": s.totalSupply,
            "unclaimedRewards": e.rewards.values.reduce(0, &+), "escrowed": e.jobs.values.reduce(0) { $0 &+ $1.escrowed },
            "parameters": [
                "blockReward": p.blockReward, "proposerBonusBps": p.proposerBonusBps, "feeBurnBps": p.feeBurnBps,
                "baseFeeMin": p.baseFeeMin, "gasTargetPerBlock": p.gasTargetPerBlock, "commissionMaxBps": p.commissionMaxBps,
                "defaultCommissionBps": p.defaultCommissionBps, "disputeWindowBlocks": p.disputeWindowBlocks,
                "arbitersPerDispute": p.arbitersPerDispute, "arbiterMinReputation": p.arbiterMinReputation,
                "reputationHalfLifeBlocks": p.reputationHalfLifeBlocks,
            ] as [String: Any],
        ]
        if e.hasTrust {
            let t = p.trust
            out["trust"] = ["agentBond": t.agentBond, "agentBondReturnBlocks": t.agentBondReturnBlocks, "disputeBondSlashBps": t.disputeBondSlashBps,
                            "endorsementPeriodBlocks": t.endorsementPeriodBlocks, "standingBaseBps": t.standingBaseBps,
                            "standingFullAt": t.standingFullAt, "jobValueCap": t.jobValueCap, "agentIdleBlocks": t.agentIdleBlocks,
                            "agentOfflineBlocks": t.agentOfflineBlocks] as [String: Any]
        }
        return out
    }
}
