import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import MCP

/// A tool call's arguments, with refusals that name the argument and what it takes.
struct Arguments {
    let values: [String: Value]

    func string(_ k: String) throws -> String {
        guard let v = values[k]?.stringValue, !v.isEmpty else { throw ToolRefusal("'\(k)' is required: a non-empty string") }
        return v
    }
    func optionalString(_ k: String) -> String? { values[k]?.stringValue }
    func int(_ k: String) throws -> Int {
        guard let v = values[k].flatMap({ Int($0, strict: false) }) else { throw ToolRefusal("'\(k)' is required: an integer") }
        return v
    }
    func optionalInt(_ k: String) -> Int? { values[k].flatMap { Int($0, strict: false) } }
    func bool(_ k: String) -> Bool { values[k]?.boolValue ?? false }
    func hex(_ k: String) throws -> String {
        let v = try string(k).lowercased()
        guard Bytes32(hex: v) != nil else { throw ToolRefusal("'\(k)' must be 64 hex digits, not \(v)") }
        return v
    }
}

extension LedgerTools {
    /// What the model can do about the commonest refusals.
    static let hints: [String: String] = [
        "insufficient_balance": "this key's balance does not cover the amount and fee: ledger_status shows it",
        "not_registered": "register this key as an agent first: register_agent",
        "not_bonded": "this agent registered before bonds existed: register_agent again locks its bond",
        "wrong_job_status": "the job is not at the step this call needs: read_entity kind=job shows its status",
        "not_job_party": "only the job's client or worker may do this",
        "unknown_job": "no such job: check the id post_job returned",
        "already_funded": "the escrow is already funded",
        "not_funded": "the client must fund_job first",
        "no_result": "the worker must submit_work for this milestone first",
        "missing_capability": "the job asks for a capability this agent's profile does not list",
        "reputation_too_low": "the job asks for more reputation than this agent has",
        "deadline_passed": "the job's deadline height has passed",
    ]

    func dispatch(_ name: String, _ a: Arguments) async throws -> String {
        let client = NodeClient(node)
        switch name {
        case "ledger_status":
            let s = try await client.getJSON("/v1/status")
            let (code, data) = try await client.request("GET", "/v1/accounts/\(me.hex)")
            let account = code == 200 ? (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] : nil
            return Self.json(["chainId": s["chainId"] ?? NSNull(), "height": s["height"] ?? NSNull(), "stateRoot": s["stateRoot"] ?? NSNull(),
                              "you": me.hex, "balance": account?["balance"] ?? 0, "nonce": account?["nonce"] ?? 0])
        case "read_entity":
            return Self.json(try await read(a, client))
        case "find_agents":
            var q = ["sort=standing", "limit=\(min(100, max(1, a.optionalInt("limit") ?? 20)))"]
            if let c = a.optionalString("capability") { q.append("capability=" + (c.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? c)) }
            if let r = a.optionalInt("min_reputation") { q.append("minReputation=\(r)") }
            if let s = a.optionalString("status") { q.append("status=" + (s.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? s)) }
            return Self.json(try await client.getJSON("/v1/agents?" + q.joined(separator: "&")))
        case "register_agent":
            let caps = (a.values["capabilities"]?.arrayValue ?? []).compactMap(\.stringValue)
            return Self.json(try await submit("agent.register", ["--name", try a.string("name"), "--capabilities", caps.joined(separator: ",")]))
        case "post_job":
            return Self.json(try await postJob(a, client))
        case "accept_job": return Self.json(try await submit("job.accept", ["--job", try a.hex("job")]))
        case "fund_job": return Self.json(try await submit("escrow.fund", ["--job", try a.hex("job")]))
        case "submit_work":
            return Self.json(try await submit("job.submit", ["--job", try a.hex("job"), "--milestone", "\(try a.int("milestone"))",
                                                             "--result-text", try a.string("result")]))
        case "release_payment":
            return Self.json(try await submit("escrow.release", ["--job", try a.hex("job"), "--milestone", "\(try a.int("milestone"))"]))
        case "rate_job":
            return Self.json(try await submit("reputation.rate", ["--job", try a.hex("job"), "--score", "\(try a.int("score"))",
                                                                  "--comment", a.optionalString("comment") ?? ""]))
        case "send_message": return Self.json(try await submit("message.send", ["--to", try a.hex("to"), "--text", try a.string("text")]))
        case "read_messages":
            let messages = try await InboxCommand.messages(for: try KeyFile.read(from: keyFile), node: node, after: a.optionalInt("after").map(UInt64.init))
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys]
            return String(decoding: try e.encode(messages), as: UTF8.self)
        default:
            throw ToolRefusal("there is no tool '\(name)'; tools/list names them")
        }
    }

    func read(_ a: Arguments, _ client: NodeClient) async throws -> [String: Any] {
        let paths = ["account": "accounts", "agent": "agents", "validator": "validators", "alliance": "alliances", "job": "jobs",
                     "meme": "memes", "proposal": "proposals", "reputation": "reputation", "event": "events", "block": "blocks"]
        let kind = try a.string("kind")
        guard let path = paths[kind] else { throw ToolRefusal("'kind' must be one of \(paths.keys.sorted().joined(separator: ", "))") }
        let id: String
        if kind == "block" {
            guard let h = UInt64(try a.string("id")) else { throw ToolRefusal("for kind=block, 'id' is a height") }
            id = "\(h)"
        } else {
            id = try a.hex("id")
        }
        let proof = a.bool("proof") && !["reputation", "block"].contains(kind)
        return try await client.getJSON("/v1/\(path)/\(id)" + (proof ? "?proof=true" : ""))
    }

    func postJob(_ a: Arguments, _ client: NodeClient) async throws -> [String: Any] {
        let ms = (a.values["milestones"]?.arrayValue ?? []).compactMap { Int($0, strict: false) }
        guard !ms.isEmpty, ms.allSatisfy({ $0 > 0 }) else { throw ToolRefusal("'milestones' is required: a list of positive amounts, one per milestone") }
        let blocks = try a.int("deadline_blocks")
        guard blocks > 0 else { throw ToolRefusal("'deadline_blocks' must be at least 1") }
        let height = (try await client.getJSON("/v1/status")["height"] as? NSNumber)?.intValue ?? 0
        var argv = ["--title", try a.string("title"), "--milestones", ms.map(String.init).joined(separator: ","), "--deadline", "\(height + blocks)"]
        let caps = (a.values["capabilities"]?.arrayValue ?? []).compactMap(\.stringValue)
        if !caps.isEmpty { argv += ["--capabilities", caps.joined(separator: ",")] }
        if let e = a.optionalString("evaluator") {
            argv += ["--evaluator", e == "draw" ? e : try a.hex("evaluator"), "--spec-text", try a.string("spec")]
        }
        var r = try await submit("job.post", argv)
        r["job"] = r["id"]
        return r
    }

    /// Signs and submits through `chaosledger submit`'s own code, waiting for the commit.
    func submit(_ kind: String, _ argv: [String]) async throws -> [String: Any] {
        let command: Submit
        do { command = try Submit.parse([kind, "--node", node, "--key", keyFile, "--wait"] + argv) } catch {
            throw ToolRefusal(Submit.message(for: error))
        }
        let r = try await command.submitted()
        if r["status"] as? String == "rejected" {
            let code = r["code"] as? String ?? "rejected"
            throw ToolRefusal("refused (\(code)): \(r["error"] as? String ?? ""). Nothing was written."
                + (Self.hints[code].map { " Hint: \($0)." } ?? ""))
        }
        return r
    }
}
