import Foundation
import Hummingbird
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerViews

/// Finding agents: `/v1/agents` with filters (capability, minimum reputation, status),
/// sorted by standing; and an agent's registration file in the style of ERC-8004's
/// registration (name, endpoints, capabilities, keys, reputation), with the state proof
/// of its agent leaf.
extension Handlers {
    /// Whether `/v1/agents` was asked to discover (any filter, or `sort=standing`)
    /// rather than list by key.
    static func discovering(_ request: Request) -> Bool {
        ["capability", "minReputation", "status"].contains { Input.query(request, $0) != nil } || Input.query(request, "sort") == "standing"
    }

    /// Agents matching the filters, by reputation (highest first), then key. The cursor
    /// `next` is `reputation.key` of the page's last agent; pass it back as `after`.
    func discoverAgents(_ request: Request) async throws(APIError) -> Response {
        let capability = Input.query(request, "capability")
        let minRep = try Input.query(request, "minReputation").map { raw throws(APIError) -> Int64 in
            guard let v = Int64(raw) else { throw .badParameter("minReputation", raw, expected: "an integer (milli-points)") }
            return v
        }
        let status = try Input.query(request, "status").map { raw throws(APIError) -> AgentStatus in
            guard let s = AgentStatus(rawValue: raw) else { throw .badParameter("status", raw, expected: "active, idle, offline or retired") }
            return s
        }
        if let sort = Input.query(request, "sort"), sort != "standing" { throw .badParameter("sort", sort, expected: "standing") }
        let cursor = try Input.query(request, "after").map { raw throws(APIError) -> (Int64, Bytes32) in
            let p = raw.split(separator: ".", maxSplits: 1).map(String.init)
            guard p.count == 2, let r = Int64(p[0]), let k = Bytes32(hex: p[1]) else {
                throw .badParameter("after", raw, expected: "the `next` of the previous page (reputation.key)")
            }
            return (r, k)
        }
        let limit = try Input.limit(request)
        let s = try await state(request)
        var found: [(rep: Int64, key: PublicKey, agent: AgentState)] = []
        for (k, a) in s.agents {
            if let capability, !a.profile.capabilities.contains(capability) { continue }
            if let status, s.agentStatus(k) != status { continue }
            let rep = s.reputation(of: k)
            if let minRep, rep < minRep { continue }
            if let (r, ck) = cursor, !(rep < r || (rep == r && k > ck)) { continue }
            found.append((rep, k, a))
        }
        found.sort { $0.rep != $1.rep ? $0.rep > $1.rep : $0.key < $1.key }
        let page = found.prefix(limit)
        let next: Any = found.count > limit ? "\(page.last!.rep).\(page.last!.key.hex)" : NSNull()
        return JSONResponse.make(["height": s.height.value, "agents": page.map { Render.agent($0.key, $0.agent, s) }, "next": next])
    }

    /// `GET /v1/agents/{key}/registration`: the agent as a registration file, with the
    /// proof of its leaf at the height (the header and the certificate that sign it).
    func agentRegistration(_ request: Request, _ context: APIContext) async throws(APIError) -> Response {
        let k = try Input.pathBytes32(context, "key")
        let leaf: StateLeaf
        do { leaf = try StateLeaf(.agent, k.bytes) } catch { throw .badRequest("bad_id", error.description) }
        var file: [String: Any]?
        let (proof, _) = try await leafProof(request, leaf) { s in
            file = Self.registration(k, s)
            return nil
        }
        guard var doc = file else { throw .notFound("agent_not_found", "no agent \(k.hex)") }
        var p = proof
        p["entity"] = nil
        doc["proof"] = p
        return JSONResponse.make(doc)
    }

    static func registration(_ k: PublicKey, _ s: LedgerState) -> [String: Any]? {
        guard let a = s.agents[k] else { return nil }
        var keys: [String: Any] = ["ed25519": k.hex]
        if let x = try? SealedBox.x25519(k) { keys["x25519"] = Hex.encode(x) }
        var endpoints: [[String: Any]] = [["name": "chaosledger", "endpoint": "chaosledger://\(s.chainID.name)/agents/\(k.hex)"]]
        if !a.profile.endpoint.isEmpty { endpoints.append(["name": "agent", "endpoint": a.profile.endpoint]) }
        var reputation: [String: Any] = ["score": s.reputation(of: k), "standingBps": s.standingWeight(of: k, at: s.height),
                                         "status": s.agentStatus(k)?.rawValue ?? "retired"]
        if let t = a.trust {
            reputation["bond"] = t.bond
            reputation["outcomes"] = Render.outcomes(t.outcomes)
        }
        return ["type": "https://eips.ethereum.org/EIPS/eip-8004#registration-v1", "name": a.profile.name,
                "description": "a ChaosLedger agent (personality \(a.profile.personality))", "endpoints": endpoints,
                "capabilities": a.profile.capabilities, "keys": keys,
                "registrations": [["chainId": s.chainID.name, "agentId": k.hex, "registeredAt": a.registeredAt.value]],
                "supportedTrust": ["reputation", "crypto-economic"], "reputation": reputation, "height": s.height.value]
    }
}
