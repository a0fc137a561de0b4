import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerProjections

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
          agent.update (same options)    agent.deregister    agent.heartbeat
          alliance.propose --targets KEY,KEY --purpose TEXT [--terms TEXT] [--duration-ms N]
          alliance.accept --alliance ID  alliance.reject --alliance ID  alliance.dissolve --alliance ID
          staking.claim                  validator.set_commission --bps N
          job.post --title T --milestones 300,700 --deadline HEIGHT [--capabilities a,b] [--min-reputation N] [--arbiter KEY]
                   [--evaluator KEY|draw (--spec-hash HEX | --spec-text TEXT)]
          job.attest --job ID --milestone N (--result HEX | --result-text TEXT) (--spec-hash HEX | --spec-text TEXT)
          job.accept --job ID   escrow.fund --job ID   escrow.refund --job ID   dispute.resolve --job ID
          job.submit --job ID --milestone N (--result HEX | --result-text TEXT)
          escrow.release --job ID --milestone N
          escrow.release_multisig --job ID --milestone N --worker-amount N --cosigners FILE[,FILE]
          dispute.open --job ID --reason TEXT      dispute.vote --job ID --share-bps N
          reputation.rate --job ID --score 1..5 [--comment TEXT]
          reputation.endorse --subject KEY --delta -5..5 [--reason TEXT]
          meme.post --content TEXT [--tags a,b] [--content-hash HEX]
          meme.react --meme ID --reaction like|laugh|fire|dislike
          social.interact --target KEY --interaction follow|mention|collaborate [--meme ID]
          governance.propose (--parameter NAME --value N | --rule-version N) --activate-at HEIGHT [--description TEXT]
          governance.vote --proposal ID [--approve true|false]
          message.send --to KEY (--text TEXT | --sealed HEX)   sealed to the recipient's key; read with `chaosledger inbox`
        The fee defaults to the node's suggested fee times the kind's gas (GET /v1/fees).
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
    @Option var bps: UInt32?
    @Option var title = ""
    @Option var milestones = ""
    @Option var deadline: UInt64?
    @Option var minReputation: Int64 = 0
    @Option var arbiter: String?
    @Option(help: "job.post: an evaluator's key, or `draw`.") var evaluator: String?
    @Option var specHash: String?
    @Option(help: "job.post, job.attest: the specification, hashed (BLAKE2b-256).") var specText: String?
    @Option var job: String?
    @Option var milestone: UInt16 = 0
    @Option var result: String?
    @Option var resultText: String?
    @Option var workerAmount: UInt64?
    @Option(help: "Key files of the co-signers of a multisig release, comma-separated.") var cosigners = ""
    @Option var reason = ""
    @Option var shareBps: UInt32?
    @Option var score: UInt8?
    @Option var comment = ""
    @Option var subject: String?
    @Option(parsing: .unconditional) var delta: Int8?
    @Option var content = ""
    @Option var tags = ""
    @Option var contentHash: String?
    @Option var meme: String?
    @Option var reaction = "like"
    @Option var interaction = "follow"
    @Option var target: String?
    @Option var parameter: String?
    @Option var value: UInt64?
    @Option var ruleVersion: UInt16?
    @Option var activateAt: UInt64?
    @Option var description = ""
    @Option var proposal: String?
    @Option var approve = true
    @Option(help: "message.send: the text, sealed to the recipient's key.") var text: String?
    @Option(help: "message.send: an already sealed box, in hex.") var sealed: String?
    @Option var nonce: UInt64?
    @Option(help: "Fee (default: the node's suggested fee × the kind's gas).") var fee: UInt64?
    @Flag(help: "Wait until the event is committed.") var wait = false

    func hexKey<ID: Bytes32Named>(_ s: String?, _ what: String) throws -> ID {
        guard let s, let k = Bytes32(hex: s) else { throw CLIError("--\(what) needs 64 hex digits") }
        return ID(k)
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
            return .validatorRotateKey(EventCrypto.rotation(chain: chainID, validator: ValidatorID(author.publicKey), nonce: nonce, old: author, new: next))
        case "staking.bond": return .bond(amount: try need(amount, "amount"))
        case "staking.unbond": return .unbond(amount: try need(amount, "amount"))
        case "staking.delegate": return .delegate(validator: try hexKey(validator, "validator"), amount: try need(amount, "amount"))
        case "staking.undelegate": return .undelegate(validator: try hexKey(validator, "validator"), amount: try need(amount, "amount"))
        case "agent.register": return .agentRegister(profile)
        case "agent.update": return .agentUpdate(profile)
        case "agent.deregister": return .agentDeregister
        case "agent.heartbeat": return .agentHeartbeat
        case "alliance.propose":
            let ts: [PublicKey] = try targets.split(separator: ",").map { try hexKey(String($0), "targets") }
            return .alliancePropose(AllianceProposal(targets: ts, purpose: purpose, terms: terms, durationMs: durationMs))
        case "alliance.accept": return .allianceAccept(try hexKey(alliance, "alliance"))
        case "alliance.reject": return .allianceReject(try hexKey(alliance, "alliance"))
        case "alliance.dissolve": return .allianceDissolve(try hexKey(alliance, "alliance"))
        default:
            return try economyPayload(chainID: chainID)
        }
    }

    func list(_ s: String) -> [String] { s.split(separator: ",").map(String.init) }

    func jobSpec() throws -> JobSpec {
        let ms = try list(milestones).map { (m: String) throws -> UInt64 in
            guard let v = UInt64(m) else { throw CLIError("--milestones takes amounts like 300,700") }
            return v
        }
        guard let deadline else { throw CLIError("--deadline HEIGHT is required") }
        var evaluation = Evaluation.none
        if let evaluator {
            evaluation = evaluator == "draw" ? .drawn(spec: try spec()) : .named(try hexKey(evaluator, "evaluator"), spec: try spec())
        }
        return JobSpec(title: title, capabilities: list(capabilities), milestones: ms, deadline: Height(deadline),
                       minReputation: minReputation, arbiter: arbiter == nil ? .zero : try hexKey(arbiter, "arbiter"), evaluation: evaluation)
    }

    func resultHash() throws -> Hash32 {
        if let result { return try hexKey(result, "result") }
        if let resultText { return Blake2b.hash(Array(resultText.utf8)) }
        throw CLIError("--result HEX or --result-text TEXT is required")
    }

    func spec() throws -> Hash32 {
        if let specHash { return try hexKey(specHash, "spec-hash") }
        if let specText { return Blake2b.hash(Array(specText.utf8)) }
        throw CLIError("--spec-hash HEX or --spec-text TEXT is required")
    }

    func economyPayload(chainID: ChainID) throws -> Payload {
        func jobID() throws -> JobID { try hexKey(job, "job") }
        switch kind {
        case "staking.claim": return .claimRewards
        case "validator.set_commission":
            guard let bps else { throw CLIError("--bps is required") }
            return .setCommission(bps: bps)
        case "job.post": return .jobPost(try jobSpec())
        case "job.attest":
            return .jobAttest(job: try jobID(), milestone: milestone, result: try resultHash(), spec: try spec())
        case "job.accept": return .jobAccept(try jobID())
        case "escrow.fund": return .escrowFund(try jobID())
        case "escrow.refund": return .escrowRefund(try jobID())
        case "dispute.resolve": return .disputeResolve(try jobID())
        case "job.submit": return .jobSubmit(job: try jobID(), milestone: milestone, result: try resultHash())
        case "escrow.release": return .escrowRelease(job: try jobID(), milestone: milestone)
        case "escrow.release_multisig":
            let amount = try need(workerAmount, "worker-amount")
            let j = try jobID()
            let statement = MultisigRelease.statement(chain: chainID.raw, job: j, milestone: milestone, workerAmount: amount)
            let cs = try list(cosigners).map { f -> Cosignature in
                let k = try KeyFile.read(from: f)
                return Cosignature(key: k.publicKey, signature: k.sign(statement))
            }
            return .escrowMultisig(MultisigRelease(job: j, milestone: milestone, workerAmount: amount, cosignatures: cs))
        case "dispute.open": return .disputeOpen(job: try jobID(), reason: reason)
        case "dispute.vote":
            guard let shareBps else { throw CLIError("--share-bps is required") }
            return .disputeVote(job: try jobID(), workerShareBps: shareBps)
        case "reputation.rate":
            guard let score else { throw CLIError("--score 1..5 is required") }
            return .rate(job: try jobID(), score: score, comment: comment)
        case "reputation.endorse":
            guard let delta else { throw CLIError("--delta -5..5 is required") }
            return .endorse(subject: try hexKey(subject, "subject"), delta: delta, reason: reason)
        case "meme.post":
            let h = contentHash == nil ? Blake2b.hash(Array(content.utf8)) : try hexKey(contentHash, "content-hash")
            return .memePost(Meme(contentHash: h, content: content, tags: list(tags)))
        case "meme.react":
            guard let r = Reaction.allCases.first(where: { $0.name == reaction }) else { throw CLIError("--reaction is like, laugh, fire or dislike") }
            return .memeReact(meme: try hexKey(meme, "meme"), reaction: r)
        case "social.interact":
            guard let k = InteractionKind.allCases.first(where: { $0.name == interaction }) else {
                throw CLIError("--interaction is follow, mention or collaborate")
            }
            return .interact(target: try hexKey(target, "target"), kind: k, meme: meme == nil ? .zero : try hexKey(meme, "meme"))
        case "governance.propose":
            guard let activateAt else { throw CLIError("--activate-at HEIGHT is required") }
            let change: GovernanceChange
            if let ruleVersion { change = .ruleVersion(ruleVersion) } else {
                guard let parameter, let value else { throw CLIError("--parameter NAME --value N, or --rule-version N, is required") }
                change = .parameter(name: parameter, value: value)
            }
            return .govPropose(GovernanceProposal(change: change, activateAt: Height(activateAt), description: description))
        case "governance.vote": return .govVote(proposal: try hexKey(proposal, "proposal"), approve: approve)
        case "message.send":
            let recipient: PublicKey = try hexKey(to, "to")
            if let sealed {
                guard let b = Hex.decode(sealed) else { throw CLIError("--sealed takes hex digit pairs") }
                return .messageSend(to: recipient, sealed: b)
            }
            guard let text else { throw CLIError("--text TEXT or --sealed HEX is required") }
            return .messageSend(to: recipient, sealed: try SealedBox.seal(Array(text.utf8), to: recipient))
        default:
            throw CLIError("unknown kind '\(kind)' (consensus.evidence and social.opinion are authored by validators themselves)")
        }
    }

    func run() async throws {
        let d = try await submitted()
        printJSON(d)
        if d["status"] as? String == "rejected" { throw ExitCode(1) }
    }

    /// Builds, signs and submits the event; its receipt (id, status, nonce, kind, and
    /// code, error and height when the node gave them).
    func submitted() async throws -> [String: Any] {
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
        var f = fee ?? 0
        if fee == nil {
            let suggested = (try await client.getJSON("/v1/fees")["suggested"] as? Int).map(UInt64.init) ?? 1
            f = Gas.of(p.kind, bytes: Envelope.overheadBytes + p.encoded().count) * max(1, suggested)
        }
        let e = EventCrypto.makeEvent(chain: chainID, key: author, nonce: n, fee: f, payload: p)
        let r = try await client.submit([e.bytes], wait: wait)[0]
        var d: [String: Any] = ["id": r.id ?? NSNull(), "status": r.status, "nonce": n, "kind": kind, "fee": f]
        if let c = r.code { d["code"] = c }
        if let m = r.error { d["error"] = m }
        if let h = r.height { d["height"] = h }
        return d
    }
}
