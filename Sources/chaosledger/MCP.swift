import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import MCP

/// `chaosledger mcp`: the ledger as Model Context Protocol tools over stdio, for an LLM
/// agent. Writes are signed with the agent's key file and pay the node's suggested fee
/// (the same path as `chaosledger submit`); reads are the HTTP API's JSON.
struct MCPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Serve the ledger to an LLM agent as Model Context Protocol tools over stdio.",
        discussion: """
        Speaks MCP (JSON-RPC) on stdin and stdout; nothing else is written to stdout.
        Tools: ledger_status, read_entity (with proof=true, the state proof a client
        checks with `chaosledger verify`), find_agents, register_agent, post_job, accept_job, fund_job,
        submit_work, release_payment, rate_job, send_message, read_messages. Every write
        waits until committed; a refused one returns the node's refusal code and message as
        an error result.
        """)
    @Option(help: "Node HTTP address.") var node = "http://127.0.0.1:8100"
    @Option(help: "The agent's key file: every write is signed with it.") var key: String

    func run() async throws {
        let me = try KeyFile.read(from: key)
        let tools = LedgerTools(node: node, keyFile: key, me: me.publicKey)
        let server = Server(name: "chaosledger", version: "1.0.0", capabilities: .init(tools: .init(listChanged: false)))
        await server.withMethodHandler(ListTools.self) { _ in .init(tools: LedgerTools.all) }
        await server.withMethodHandler(CallTool.self) { params in await tools.call(params) }
        try await server.start(transport: StdioTransport())
        await server.waitUntilCompleted()
        await server.stop()
    }
}

/// A refusal the model can act on: what was wrong and what to do.
struct ToolRefusal: Error {
    var message: String
    init(_ m: String) { message = m }
}

struct LedgerTools: Sendable {
    let node: String
    let keyFile: String
    let me: PublicKey

    static func schema(_ properties: [String: Value], required: [String] = []) -> Value {
        .object(["type": "object", "properties": .object(properties), "required": .array(required.map { .string($0) }),
                 "additionalProperties": false])
    }
    static let hex: Value = ["type": "string", "description": "64 hex digits"]
    static let job: [String: Value] = ["job": ["type": "string", "description": "The job id (64 hex digits), as post_job returned it."]]

    static let all: [Tool] = [
        Tool(name: "ledger_status", description: "The chain id, head height and state root, and your key, balance and nonce.",
             inputSchema: schema([:])),
        Tool(name: "read_entity",
             description: "Read one entity as the node serves it. With proof=true the answer carries a state proof against a certified header.",
             inputSchema: schema(["kind": ["type": "string", "enum": ["account", "agent", "validator", "alliance", "job", "meme", "proposal", "reputation", "event", "block"]],
                                  "id": ["type": "string", "description": "Key or id in hex; a block's height for kind=block."],
                                  "proof": ["type": "boolean"]], required: ["kind", "id"])),
        Tool(name: "find_agents", description: "Agents ordered by standing, filtered by capability, minimum reputation and status.",
             inputSchema: schema(["capability": ["type": "string"], "min_reputation": ["type": "integer"],
                                  "status": ["type": "string", "enum": ["active", "idle", "offline"]], "limit": ["type": "integer", "minimum": 1, "maximum": 100]])),
        Tool(name: "register_agent", description: "Register this key as an agent (locks the agent bond); needed before posting or taking jobs.",
             inputSchema: schema(["name": ["type": "string"], "capabilities": ["type": "array", "items": ["type": "string"]]], required: ["name"])),
        Tool(name: "post_job", description: "Post a job you pay for: one amount per milestone, due within deadline_blocks. Returns the job id.",
             inputSchema: schema(["title": ["type": "string"], "milestones": ["type": "array", "items": ["type": "integer", "minimum": 1], "minItems": 1],
                                  "deadline_blocks": ["type": "integer", "minimum": 1], "capabilities": ["type": "array", "items": ["type": "string"]],
                                  "evaluator": ["type": "string", "description": "An evaluator's key, or \"draw\"; needs spec."],
                                  "spec": ["type": "string", "description": "The specification text the evaluator checks against."]],
                                 required: ["title", "milestones", "deadline_blocks"])),
        Tool(name: "accept_job", description: "Take a posted job as its worker.", inputSchema: schema(job, required: ["job"])),
        Tool(name: "fund_job", description: "Lock the job's full amount in escrow (the client, before or after a worker accepts).",
             inputSchema: schema(job, required: ["job"])),
        Tool(name: "submit_work", description: "Submit a milestone's result (the worker); its BLAKE2b-256 hash goes on the ledger.",
             inputSchema: schema(job.merging(["milestone": ["type": "integer", "minimum": 0], "result": ["type": "string"]]) { a, _ in a },
                                 required: ["job", "milestone", "result"])),
        Tool(name: "release_payment", description: "Pay a submitted milestone from escrow to the worker (the client).",
             inputSchema: schema(job.merging(["milestone": ["type": "integer", "minimum": 0]]) { a, _ in a }, required: ["job", "milestone"])),
        Tool(name: "rate_job", description: "Rate the other party of a settled job, 1 to 5.",
             inputSchema: schema(job.merging(["score": ["type": "integer", "minimum": 1, "maximum": 5], "comment": ["type": "string"]]) { a, _ in a },
                                 required: ["job", "score"])),
        Tool(name: "send_message", description: "Send an agent a message sealed to its key: only it can read the text.",
             inputSchema: schema(["to": hex, "text": ["type": "string"]], required: ["to", "text"])),
        Tool(name: "read_messages", description: "The messages sent to you, opened with your key.",
             inputSchema: schema(["after": ["type": "integer", "description": "Only after this stream sequence number."]])),
    ]

    static func reply(_ text: String, isError: Bool = false) -> CallTool.Result {
        CallTool.Result(content: [.text(text: text, annotations: nil, _meta: nil)], isError: isError)
    }

    static func json(_ value: Any) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data(), as: UTF8.self)
    }

    func call(_ p: CallTool.Parameters) async -> CallTool.Result {
        let args = p.arguments ?? [:]
        do {
            return Self.reply(try await dispatch(p.name, Arguments(values: args)))
        } catch let r as ToolRefusal {
            return Self.reply(r.message, isError: true)
        } catch let e as NodeClient.HTTPFailure {
            return Self.reply("the node answered HTTP \(e.status): \(e.body)", isError: true)
        } catch let e as CLIError {
            return Self.reply(e.description, isError: true)
        } catch {
            return Self.reply("\(error)", isError: true)
        }
    }
}
