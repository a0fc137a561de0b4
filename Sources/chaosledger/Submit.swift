import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode

struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build, sign and submit one event of any kind to a node's HTTP API.",
        discussion: """
        The nonce is read from the node unless --nonce is given. Kinds and their options:
          transfer --to KEY --amount N [--memo TEXT]
          validator.register --name NAME [--personality P]     validator.retire     validator.unjail
          validator.rotate_key --new-key FILE (--key is the current consensus key, and the validator's account)
          staking.bond --amount N        staking.unbond --amount N
          staking.delegate --validator KEY --amount N        staking.undelegate --validator KEY --amount N
          agent.register --name NAME [--capabilities a,b] [--personality P] [--endpoint URI]
          agent.update (same options)    agent.deregister
          alliance.propose --targets KEY,KEY --purpose TEXT [--terms TEXT] [--duration-ms N]
          alliance.accept --alliance ID  alliance.reject --alliance ID  alliance.dissolve --alliance ID
        Prints the receipt as JSON; exits 1 when the event is rejected.
        """)
    @Option(help: "Node HTTP address.") var node = "http://127.0.0.1:8100"
    @Option(help: "The author's key file.") var key: String
    @Option(help: "Chain id (default: read from the node).") var chain: String?
    @Argument(help: "Event kind, e.g. transfer or staking.delegate.") var kind: String
    @Option var to: String?
    @Option var amount: UInt64?
    @Option var memo = ""
    @Option var name: String?
    @Option var personality = "lawful"
    @Option var validator: String?
    @Option var capabilities = ""
    @Option var endpoint = ""
    @Option var targets = ""
    @Option var purpose = ""
    @Option var terms = ""
    @Option var durationMs: UInt64 = 3_600_000
    @Option var alliance: String?
    @Option(help: "Key file of the new consensus key (validator.rotate_key).") var newKey: String?
    @Option var nonce: UInt64?
    @Option var fee: UInt64 = 1
    @Flag(help: "Wait until the event is committed.") var wait = false

    func hexKey(_ s: String?, _ what: String) throws -> Bytes32 {
        guard let s, let k = Bytes32(hex: s) else { throw CLIError("--\(what) needs 64 hex digits") }
        return k
    }

    func need(_ v: UInt64?, _ what: String) throws -> UInt64 {
        guard let v else { throw CLIError("--\(what) is required for \(kind)") }
        return v
    }

    func payload(nonce: UInt64, chainID: ChainID, author: SigningKey) throws -> Payload {
        let profile = AgentProfile(name: name ?? "agent", capabilities: capabilities.split(separator: ",").map(String.init),
                                   personality: personality, endpoint: endpoint)
        switch kind {
        case "transfer": return .transfer(to: try hexKey(to, "to"), amount: try need(amount, "amount"), memo: memo)
        case "validator.register":
            guard let name else { throw CLIError("--name is required") }
            return .validatorRegister(name: name, personality: personality)
        case "validator.retire": return .validatorRetire
        case "validator.unjail": return .validatorUnjail
        case "validator.rotate_key":
            guard let newKey else { throw CLIError("--new-key FILE is required") }
            let next = try KeyFile.read(from: newKey)
            return .validatorRotateKey(EventCrypto.rotation(chain: chainID, validator: author.publicKey, nonce: nonce, old: author, new: next))
        case "staking.bond": return .bond(amount: try need(amount, "amount"))
        case "staking.unbond": return .unbond(amount: try need(amount, "amount"))
        case "staking.delegate": return .delegate(validator: try hexKey(validator, "validator"), amount: try need(amount, "amount"))
        case "staking.undelegate": return .undelegate(validator: try hexKey(validator, "validator"), amount: try need(amount, "amount"))
        case "agent.register": return .agentRegister(profile)
        case "agent.update": return .agentUpdate(profile)
        case "agent.deregister": return .agentDeregister
        case "alliance.propose":
            let ts = try targets.split(separator: ",").map { try hexKey(String($0), "targets") }
            return .alliancePropose(AllianceProposal(targets: ts, purpose: purpose, terms: terms, durationMs: durationMs))
        case "alliance.accept": return .allianceAccept(try hexKey(alliance, "alliance"))
        case "alliance.reject": return .allianceReject(try hexKey(alliance, "alliance"))
        case "alliance.dissolve": return .allianceDissolve(try hexKey(alliance, "alliance"))
        default:
            throw CLIError("unknown kind '\(kind)' (consensus.evidence and social.opinion are authored by validators themselves)")
        }
    }

    func run() async throws {
        let author = try KeyFile.read(from: key)
        let client = NodeClient(node)
        let chainID: ChainID
        if let chain { chainID = try ChainID(chain) } else {
            guard let c = try await client.getJSON("/v1/status")["chainId"] as? String else { throw CLIError("the node did not say its chain id") }
            chainID = try ChainID(c)
        }
        var n = nonce ?? 0
        if nonce == nil { n = try await client.nonce(of: author.publicKey) + 1 }
        let p = try payload(nonce: n, chainID: chainID, author: author)
        let e = EventCrypto.makeEvent(chain: chainID, key: author, nonce: n, fee: fee, payload: p)
        let r = try await client.submit([e.bytes], wait: wait)[0]
        var d: [String: Any] = ["id": r.id ?? NSNull(), "status": r.status, "nonce": n, "kind": kind]
        if let c = r.code { d["code"] = c }
        if let m = r.error { d["error"] = m }
        if let h = r.height { d["height"] = h }
        printJSON(d)
        if r.status == "rejected" { throw ExitCode(1) }
    }
}
