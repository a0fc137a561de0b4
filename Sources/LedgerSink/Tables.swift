import Foundation
import LedgerCore
import LedgerProjections
import LedgerViews

/// A projection row's key: one id, or two (a delegation's delegator and validator).
struct RowKey: Hashable, Sendable, Comparable {
    var first: Bytes32
    var second: Bytes32?
    init(_ first: Bytes32, _ second: Bytes32? = nil) { self.first = first; self.second = second }
    static func < (a: Self, b: Self) -> Bool { (a.first, a.second ?? .zero) < (b.first, b.second ?? .zero) }
}

/// One projection table of schemas/postgres: which state leaves change which of its rows,
/// every row of a state, and how one row is written. A batch rewrites exactly the rows
/// whose leaves its blocks sealed: it deletes them by key, then copies in those the state
/// still holds, so a removed entity disappears and a changed one is replaced.
struct ProjectionTable: Sendable {
    let name: String
    /// The key columns (one or two), then the rest, in COPY order.
    let keyColumns: [String]
    let columns: [String]
    /// The row a written leaf changes; nil when it changes none of this table's rows.
    let affected: @Sendable (StateLeaf) -> RowKey?
    /// Every row key of a state (the first write of a chain).
    let all: @Sendable (LedgerState) -> [RowKey]
    /// Writes the row's fields after its key, `updated_height` (the height of the block
    /// that last changed it) among them; false when the state does not hold it.
    let write: @Sendable (RowKey, LedgerState, Height, inout CopyRows) -> Bool

    static func id(_ leaf: StateLeaf, _ kinds: [LeafKind]) -> RowKey? {
        guard kinds.contains(leaf.kind), leaf.id.count >= 32 else { return nil }
        return RowKey(Bytes32(leaf.id[0 ..< 32]))
    }

    /// A row of `key | view jsonb | updated_height`.
    static func viewed(_ name: String, key: String, leaves: [LeafKind], all: @escaping @Sendable (LedgerState) -> [Bytes32],
                       view: @escaping @Sendable (Bytes32, LedgerState) -> [String: Any]?) -> ProjectionTable {
        ProjectionTable(name: name, keyColumns: [key], columns: ["view", "updated_height"],
                        affected: { id($0, leaves) },
                        all: { s in all(s).map { RowKey($0) } },
                        write: { k, s, updated, rows in
                            guard let v = view(k.first, s) else { return false }
                            rows.text(storableJSON(v))
                            rows.int(updated.value)
                            return true
                        })
    }

    /// Every table the sink writes, in the order a batch writes them.
    static let all: [ProjectionTable] = [
        viewed("accounts", key: "key", leaves: [.account, .delegation, .unbondings], all: { Array($0.accounts.keys) }) { k, s in
            Render.account(k, s)
        },
        viewed("validators", key: "id", leaves: [.validator], all: { $0.validators.keys.map(\.raw) }) { k, s in
            s.validators[ValidatorID(k)].map(Render.validator)
        },
        ProjectionTable(name: "delegations", keyColumns: ["delegator", "validator"], columns: ["amount", "updated_height"],
                        affected: { leaf in
                            leaf.kind == .delegation ? RowKey(Bytes32(leaf.id[0 ..< 32]), Bytes32(leaf.id[32 ..< 64])) : nil
                        },
                        all: { s in s.delegations.keys.map { RowKey($0.delegator, $0.validator.raw) } },
                        write: { k, s, updated, rows in
                            guard let second = k.second, let amount = s.delegations[DelegationKey(delegator: k.first, validator: ValidatorID(second))] else {
                                return false
                            }
                            rows.int(amount); rows.int(updated.value)
                            return true
                        }),
        ProjectionTable(name: "slashes", keyColumns: ["evidence"],
                        columns: ["validator", "offence_height", "offence_view", "stake_before", "amount", "slashed_at"],
                        affected: { id($0, [.slash]) }, all: { s in s.slashes.map { RowKey($0.evidence.raw) } },
                        write: { k, s, _, rows in
                            guard let x = s.slashes.first(where: { $0.evidence.raw == k.first }) else { return false }
                            rows.bytes(x.validator.raw); rows.int(x.offenceHeight.value); rows.int(x.offenceView.value)
                            rows.int(x.stakeBefore); rows.int(x.amount); rows.int(x.slashedAt.value)
                            return true
                        }),
        viewed("agents", key: "key", leaves: [.agent, .origin], all: { Array($0.agents.keys) }) { k, s in
            s.agents[k].map { agentView(k, $0, s) }
        },
        viewed("alliances", key: "id", leaves: [.alliance], all: { $0.alliances.keys.map(\.raw) }) { k, s in
            s.alliances[AllianceID(k)].map(Render.alliance)
        },
        viewed("jobs", key: "id", leaves: [.job], all: { $0.economy.jobs.keys.map(\.raw) }) { k, s in
            s.economy.jobs[JobID(k)].map { jobView($0, s) }
        },
        ProjectionTable(name: "reputation", keyColumns: ["agent"], columns: ["value", "as_of", "updated_height"],
                        affected: { id($0, [.reputation]) }, all: { s in s.economy.reputation.keys.map { RowKey($0) } },
                        write: { k, s, updated, rows in
                            guard let r = s.economy.reputation[k.first] else { return false }
                            rows.int(r.value); rows.int(r.asOf.value); rows.int(updated.value)
                            return true
                        }),
        viewed("memes", key: "id", leaves: [.meme], all: { $0.economy.memes.keys.map(\.raw) }) { k, s in
            s.economy.memes[MemeID(k)].map(Render.memeState)
        },
        viewed("proposals", key: "id", leaves: [.proposal], all: { $0.economy.proposals.keys.map(\.raw) }) { k, s in
            s.economy.proposals[ProposalID(k)].map(Render.proposalState)
        },
    ]

    /// An agent as GET /v1/agents/{key} shows it, without what changes with the height
    /// alone (`status`, the decayed `reputation`): `agent_status_at` and `reputation_at`
    /// compute those in SQL.
    static func agentView(_ k: PublicKey, _ a: AgentState, _ s: LedgerState) -> [String: Any] {
        var v = Render.agent(k, a, s)
        v["status"] = nil; v["reputation"] = nil
        return v
    }

    /// A job as GET /v1/jobs/{id} shows it, without `matches` (a posted job's candidate
    /// workers, which change with every other agent).
    static func jobView(_ j: Job, _ s: LedgerState) -> [String: Any] {
        Render.job(j, s, matches: false)
    }
}
