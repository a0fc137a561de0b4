import Foundation
import LedgerCore
import LedgerProjections
import LedgerStore

/// JSON views of log records and projection state, shared by the CLI (`inspect`, `state`)
/// and the HTTP API so both print the same shapes.
public enum Render {
    public static func payload(_ p: Payload) -> [String: Any] {
        switch p {
        case let .transfer(to, amount, memo): ["to": to.hex, "amount": amount, "memo": memo]
        case let .validatorRegister(name, personality): ["name": name, "personality": personality]
        case .validatorRetire, .validatorUnjail, .agentDeregister, .agentHeartbeat: [:]
        case let .validatorRotateKey(r): ["oldKey": r.oldKey.hex, "newKey": r.newKey.hex]
        case let .bond(a), let .unbond(a): ["amount": a]
        case let .delegate(v, a), let .undelegate(v, a): ["validator": v.hex, "amount": a]
        case let .agentRegister(p), let .agentUpdate(p): profile(p)
        case let .alliancePropose(p):
            ["targets": p.targets.map(\.hex), "purpose": p.purpose, "terms": p.terms, "durationMs": p.durationMs]
        case let .allianceAccept(a), let .allianceReject(a), let .allianceDissolve(a): ["alliance": a.hex]
        case let .evidence(first, second): ["first": Hex.encode(first), "second": Hex.encode(second)]
        case let .opinion(o):
            ["height": o.height.value, "view": o.view.value, "blockHash": o.blockHash.hex,
             "verdict": o.verdict == .accept ? "accept" : "refuse", "reason": o.reason]
        default: economyPayload(p)
        }
    }

    public static func profile(_ p: AgentProfile) -> [String: Any] {
        ["name": p.name, "capabilities": p.capabilities, "personality": p.personality, "endpoint": p.endpoint]
    }

    public static func event(_ e: LoggedEvent) -> [String: Any] {
        let env = e.envelope
        var d: [String: Any] = [
            "sequence": e.sequence.value, "id": e.id.hex, "kind": env.kind.description, "author": env.author.hex,
            "nonce": env.nonce, "fee": env.fee, "signature": env.signature.description, "bytes": env.bytes.count,
        ]
        if let p = try? env.decodePayload() { d["payload"] = payload(p) }
        return d
    }

    public static func block(_ b: StoredBlock, hash: Hash32) -> [String: Any] {
        let h = b.header
        return [
            "height": h.height.value, "hash": hash.hex, "parentHash": h.parentHash.hex, "view": h.view.value,
            "timestampMs": h.timestampMs, "proposer": h.proposer.hex, "eventCount": h.eventCount,
            "eventsRoot": h.eventsRoot.hex, "parentStateRoot": h.parentStateRoot.hex,
            "meme": String(decoding: h.meme, as: UTF8.self), "firstSequence": b.firstSequence.value,
            "certificate": ["height": b.certificate.height.value, "view": b.certificate.view.value, "blockHash": b.certificate.blockHash.hex,
                            "votes": b.certificate.votes.map { ["key": $0.key.hex, "signature": $0.signature.description] }],
        ]
    }

    public static func account(_ k: PublicKey, _ s: LedgerState) -> [String: Any]? {
        guard let a = s.accounts[k] else { return nil }
        let delegated = s.delegations.filter { $0.key.delegator == k }.sorted { $0.key < $1.key }
        return ["account": k.hex, "balance": a.balance, "nonce": a.nonce,
                "delegations": delegated.map { ["validator": $0.key.validator.hex, "amount": $0.value] },
                "unbonding": s.unbonding.filter { $0.account == k }.map { ["amount": $0.amount, "releaseAt": $0.releaseAt.value] }]
    }

    public static func validator(_ v: ValidatorState) -> [String: Any] {
        ["id": v.id.hex, "name": v.name, "personality": v.personality, "consensusKey": v.consensusKey.hex,
         "keyHistory": v.keyHistory.map { ["from": $0.from.value, "key": $0.key.hex] }, "selfStake": v.selfStake,
         "delegated": v.delegated, "status": status(v.status), "registeredAt": v.registeredAt.value,
         "jailedUntil": v.jailedUntil.value]
    }

    public static func status(_ s: ValidatorStatus) -> String {
        switch s {
        case .active: "active"
        case .retired: "retired"
        case .jailed: "jailed"
        }
    }

    /// An agent with its lifecycle status and, under rule version 3, its bond, origin,
    /// last activity and outcomes (average rating in milli-points of a score).
    public static func agent(_ k: PublicKey, _ a: AgentState, _ s: LedgerState) -> [String: Any] {
        var out: [String: Any] = ["agent": k.hex, "profile": profile(a.profile), "registeredAt": a.registeredAt.value, "active": a.active,
                                  "status": s.agentStatus(k)?.rawValue ?? "retired", "reputation": s.reputation(of: k)]
        guard let t = a.trust else { return out }
        out["bond"] = t.bond; out["bondSlashed"] = t.bondSlashed; out["origin"] = s.origin(of: k).hex; out["lastSeen"] = t.lastSeen.value
        out["outcomes"] = outcomes(t.outcomes)
        return out
    }

    /// An agent's outcomes, with its average rating in milli-points of a score.
    public static func outcomes(_ o: AgentOutcomes) -> [String: Any] {
        ["completedAsWorker": o.completedAsWorker, "completedAsClient": o.completedAsClient, "refunded": o.refunded,
         "disputes": o.disputes, "disputesLost": o.disputesLost, "ratings": o.ratings,
         "averageRatingMilli": o.ratings == 0 ? 0 : o.ratingSum * 1000 / o.ratings]
    }

    public static func alliance(_ a: AllianceState) -> [String: Any] {
        ["id": a.id.hex, "proposer": a.proposer.hex, "targets": a.proposal.targets.map(\.hex), "purpose": a.proposal.purpose,
         "terms": a.proposal.terms, "durationMs": a.proposal.durationMs, "proposedAtMs": a.proposedAtMs, "acceptByMs": a.acceptByMs,
         "accepted": a.accepted.map(\.hex), "status": a.status.description, "activeUntilMs": a.activeUntilMs]
    }

    public static func summary(_ s: LedgerState) -> [String: Any] {
        ["chainId": s.chainID.name, "height": s.height.value, "timestampMs": s.timestampMs, "stateRoot": s.stateRoot().hex,
         "totalSupply": s.totalSupply, "burned": s.burned, "slashes": s.slashes.count, "feesPaid": s.feesPaid, "eventsApplied": s.eventsApplied, "accounts": s.accounts.count,
         "validators": s.validators.count, "agents": s.agents.count, "alliances": s.alliances.count,
         "votingPower": s.votingPower().sorted { $0.key < $1.key }.map { ["key": $0.key.hex, "power": $0.value] },
         "nextBlockPower": s.powerForNextBlock().sorted { $0.key < $1.key }.map { ["key": $0.key.hex, "power": $0.value] }]
    }
}

extension Render {
    /// Canonical JSON text: sorted keys, so the same value always prints the same bytes.
    public static func json(_ value: Any, pretty: Bool = false) -> [UInt8] {
        var opts: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
        if pretty { opts.insert(.prettyPrinted) }
        return Array((try? JSONSerialization.data(withJSONObject: value, options: opts)) ?? Data("null".utf8))
    }
}

