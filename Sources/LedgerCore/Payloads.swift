/// Event kinds, grouped by the projection that applies them. Codes are stable forever.
public enum EventKind: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case transfer = 1
    case validatorRegister = 10
    case validatorRetire = 11
    case validatorRotateKey = 12
    case validatorUnjail = 13
    case bond = 20
    case unbond = 21
    case delegate = 22
    case undelegate = 23
    case agentRegister = 30
    case agentUpdate = 31
    case agentDeregister = 32
    /// Rule version 3: an agent's sign of life (its lifecycle status).
    case agentHeartbeat = 33
    case alliancePropose = 40
    case allianceAccept = 41
    case allianceReject = 42
    case allianceDissolve = 43
    case evidence = 50
    case opinion = 60
    // The agent economy (rule version 2; governance also under version 1).
    case claimRewards = 24
    case setCommission = 14
    case jobPost = 70
    case jobAccept = 71
    case escrowFund = 72
    case jobSubmit = 73
    case escrowRelease = 74
    case escrowMultisig = 75
    case escrowRefund = 76
    /// Rule version 3: a job's evaluator attests a milestone's result against the spec.
    case jobAttest = 77
    case disputeOpen = 80
    case disputeVote = 81
    case disputeResolve = 82
    case rate = 90
    case endorse = 91
    case memePost = 100
    case memeReact = 101
    case interact = 102
    case govPropose = 110
    case govVote = 111
    // Rule version 3: messages between agents.
    case messageSend = 120

    public var description: String {
        switch self {
        case .transfer: "transfer"
        case .validatorRegister: "validator.register"
        case .validatorRetire: "validator.retire"
        case .validatorRotateKey: "validator.rotate_key"
        case .validatorUnjail: "validator.unjail"
        case .bond: "staking.bond"
        case .unbond: "staking.unbond"
        case .delegate: "staking.delegate"
        case .undelegate: "staking.undelegate"
        case .agentRegister: "agent.register"
        case .agentUpdate: "agent.update"
        case .agentDeregister: "agent.deregister"
        case .agentHeartbeat: "agent.heartbeat"
        case .alliancePropose: "alliance.propose"
        case .allianceAccept: "alliance.accept"
        case .allianceReject: "alliance.reject"
        case .allianceDissolve: "alliance.dissolve"
        case .evidence: "consensus.evidence"
        case .opinion: "social.opinion"
        case .claimRewards: "staking.claim"
        case .setCommission: "validator.set_commission"
        case .jobPost: "job.post"
        case .jobAttest: "job.attest"
        case .jobAccept: "job.accept"
        case .escrowFund: "escrow.fund"
        case .jobSubmit: "job.submit"
        case .escrowRelease: "escrow.release"
        case .escrowMultisig: "escrow.release_multisig"
        case .escrowRefund: "escrow.refund"
        case .disputeOpen: "dispute.open"
        case .disputeVote: "dispute.vote"
        case .disputeResolve: "dispute.resolve"
        case .rate: "reputation.rate"
        case .endorse: "reputation.endorse"
        case .memePost: "meme.post"
        case .memeReact: "meme.react"
        case .interact: "social.interact"
        case .govPropose: "governance.propose"
        case .govVote: "governance.vote"
        case .messageSend: "message.send"
        }
    }

    /// Parses a kind's name (`description`), as the CLI and the HTTP API write it.
    public init?(name: String) {
        guard let k = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = k
    }
}

public struct AgentProfile: Sendable, Hashable {
    public var name: String
    public var capabilities: [String]
    public var personality: String
    public var endpoint: String
    public init(name: String, capabilities: [String], personality: String, endpoint: String) {
        self.name = name; self.capabilities = capabilities; self.personality = personality; self.endpoint = endpoint
    }
}

public struct AllianceProposal: Sendable, Hashable {
    public var targets: [PublicKey]
    public var purpose: String
    public var terms: String
    public var durationMs: UInt64
    public init(targets: [PublicKey], purpose: String, terms: String, durationMs: UInt64) {
        self.targets = targets; self.purpose = purpose; self.terms = terms; self.durationMs = durationMs
    }
}

/// A rotation names the new consensus key and carries two signatures over
/// `Domain.rotate(chain) | validator | old key | new key | u64 nonce`: one by the
/// current consensus key, one by the new key. The envelope is signed by the operator.
public struct KeyRotation: Sendable, Hashable {
    public var oldKey: PublicKey
    public var newKey: PublicKey
    public var oldKeySignature: Signature
    public var newKeySignature: Signature
    public init(oldKey: PublicKey, newKey: PublicKey, oldKeySignature: Signature, newKeySignature: Signature) {
        self.oldKey = oldKey; self.newKey = newKey
        self.oldKeySignature = oldKeySignature; self.newKeySignature = newKeySignature
    }

    public static func statement(chain: Bytes32, validator: ValidatorID, oldKey: PublicKey, newKey: PublicKey, nonce: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 160)
        w.raw(Domain.rotate(chain)); w.b32(validator); w.b32(oldKey); w.b32(newKey); w.u64(nonce)
        return w.bytes
    }
}

/// A validator's judgement of a block: accepted or refused, and why.
public enum Verdict: UInt8, Sendable, Hashable { case accept = 1, refuse = 2 }

/// A validator's published opinion of the block at `height` proposed in `view`
/// (schemas/FORMAT.md §3): `u64 height | u64 view | b32 block hash | u8 verdict | str16 reason`.
public struct Opinion: Sendable, Hashable {
    public var height: Height
    public var view: View
    public var blockHash: Hash32
    public var verdict: Verdict
    public var reason: String
    public init(height: Height, view: View, blockHash: Hash32, verdict: Verdict, reason: String) {
        self.height = height; self.view = view; self.blockHash = blockHash; self.verdict = verdict; self.reason = reason
    }
}

/// The typed payload of every event kind (schemas/FORMAT.md §3).
public enum Payload: Sendable, Hashable {
    case transfer(to: PublicKey, amount: UInt64, memo: String)
    case validatorRegister(name: String, personality: String)
    case validatorRetire
    case validatorRotateKey(KeyRotation)
    case validatorUnjail
    case bond(amount: UInt64)
    case unbond(amount: UInt64)
    case delegate(validator: ValidatorID, amount: UInt64)
    case undelegate(validator: ValidatorID, amount: UInt64)
    case agentRegister(AgentProfile)
    case agentUpdate(AgentProfile)
    case agentDeregister
    case agentHeartbeat
    case alliancePropose(AllianceProposal)
    case allianceAccept(AllianceID)
    case allianceReject(AllianceID)
    case allianceDissolve(AllianceID)
    /// Two encoded `SignedConsensusMessage`s that together prove an equivocation. The
    /// payload decoder checks only their lengths; the fold decodes and verifies them.
    case evidence(first: [UInt8], second: [UInt8])
    case opinion(Opinion)
    case claimRewards
    case setCommission(bps: UInt32)
    case jobPost(JobSpec)
    /// The evaluator's attestation that milestone `milestone`'s submitted `result` meets the
    /// job's specification (its hash `spec`): it releases the milestone to the worker.
    case jobAttest(job: JobID, milestone: UInt16, result: Hash32, spec: Hash32)
    case jobAccept(JobID)
    case escrowFund(JobID)
    case jobSubmit(job: JobID, milestone: UInt16, result: Hash32)
    case escrowRelease(job: JobID, milestone: UInt16)
    case escrowMultisig(MultisigRelease)
    case escrowRefund(JobID)
    case disputeOpen(job: JobID, reason: String)
    case disputeVote(job: JobID, workerShareBps: UInt32)
    case disputeResolve(JobID)
    case rate(job: JobID, score: UInt8, comment: String)
    case endorse(subject: PublicKey, delta: Int8, reason: String)
    case memePost(Meme)
    case memeReact(meme: MemeID, reaction: Reaction)
    case interact(target: PublicKey, kind: InteractionKind, meme: MemeID)
    case govPropose(GovernanceProposal)
    case govVote(proposal: ProposalID, approve: Bool)
    /// A sealed box (libsodium `crypto_box_seal`) to the X25519 form of the recipient's
    /// Ed25519 key: the log proves who sent what to whom and when, never the content.
    case messageSend(to: PublicKey, sealed: [UInt8])

    public var kind: EventKind {
        switch self {
        case .transfer: .transfer
        case .validatorRegister: .validatorRegister
        case .validatorRetire: .validatorRetire
        case .validatorRotateKey: .validatorRotateKey
        case .validatorUnjail: .validatorUnjail
        case .bond: .bond
        case .unbond: .unbond
        case .delegate: .delegate
        case .undelegate: .undelegate
        case .agentRegister: .agentRegister
        case .agentUpdate: .agentUpdate
        case .agentDeregister: .agentDeregister
        case .agentHeartbeat: .agentHeartbeat
        case .alliancePropose: .alliancePropose
        case .allianceAccept: .allianceAccept
        case .allianceReject: .allianceReject
        case .allianceDissolve: .allianceDissolve
        case .evidence: .evidence
        case .opinion: .opinion
        case .claimRewards: .claimRewards
        case .setCommission: .setCommission
        case .jobPost: .jobPost
        case .jobAttest: .jobAttest
        case .jobAccept: .jobAccept
        case .escrowFund: .escrowFund
        case .jobSubmit: .jobSubmit
        case .escrowRelease: .escrowRelease
        case .escrowMultisig: .escrowMultisig
        case .escrowRefund: .escrowRefund
        case .disputeOpen: .disputeOpen
        case .disputeVote: .disputeVote
        case .disputeResolve: .disputeResolve
        case .rate: .rate
        case .endorse: .endorse
        case .memePost: .memePost
        case .memeReact: .memeReact
        case .interact: .interact
        case .govPropose: .govPropose
        case .govVote: .govVote
        case .messageSend: .messageSend
        }
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        switch self {
        case let .transfer(to, amount, memo):
            w.b32(to); w.u64(amount); w.string(memo)
        case let .validatorRegister(name, personality):
            w.string(name); w.string(personality)
        case .validatorRetire, .validatorUnjail, .agentDeregister, .agentHeartbeat:
            break
        case let .validatorRotateKey(r):
            w.b32(r.oldKey); w.b32(r.newKey); w.b64(r.oldKeySignature); w.b64(r.newKeySignature)
        case let .bond(amount), let .unbond(amount):
            w.u64(amount)
        case let .delegate(v, amount), let .undelegate(v, amount):
            w.b32(v); w.u64(amount)
        case let .agentRegister(p), let .agentUpdate(p):
            w.string(p.name)
            w.u16(UInt16(p.capabilities.count))
            for c in p.capabilities { w.string(c) }
            w.string(p.personality)
            w.string(p.endpoint)
        case let .alliancePropose(p):
            w.u16(UInt16(p.targets.count))
            for t in p.targets { w.b32(t) }
            w.string(p.purpose); w.string(p.terms); w.u64(p.durationMs)
        case let .allianceAccept(id), let .allianceReject(id), let .allianceDissolve(id):
            w.b32(id)
        case let .evidence(first, second):
            w.blob16(first); w.blob16(second)
        case let .opinion(o):
            w.u64(o.height.value); w.u64(o.view.value); w.b32(o.blockHash); w.u8(o.verdict.rawValue); w.string(o.reason)
        default:
            encodeEconomy(&w)
        }
        return w.bytes
    }

    public static func decode(kind: EventKind, _ bytes: ArraySlice<UInt8>) throws(DecodeError) -> Payload {
        var r = ByteReader(bytes)
        let p: Payload
        switch kind {
        case .transfer:
            p = .transfer(to: try r.b32("transfer.to"), amount: try r.u64("transfer.amount"),
                          memo: try r.string("transfer.memo", max: Limits.memoBytesMax))
        case .validatorRegister:
            p = .validatorRegister(name: try r.string("validator.name", max: Limits.nameBytesMax),
                                   personality: try r.string("validator.personality", max: Limits.personalityBytesMax))
        case .validatorRetire: p = .validatorRetire
        case .validatorUnjail: p = .validatorUnjail
        case .agentDeregister: p = .agentDeregister
        case .agentHeartbeat: p = .agentHeartbeat
        case .validatorRotateKey:
            p = .validatorRotateKey(KeyRotation(
                oldKey: try r.b32("rotate.oldKey"), newKey: try r.b32("rotate.newKey"),
                oldKeySignature: try r.b64("rotate.oldKeySignature"), newKeySignature: try r.b64("rotate.newKeySignature")))
        case .bond: p = .bond(amount: try r.u64("bond.amount"))
        case .unbond: p = .unbond(amount: try r.u64("unbond.amount"))
        case .delegate: p = .delegate(validator: try r.id("delegate.validator"), amount: try r.u64("delegate.amount"))
        case .undelegate: p = .undelegate(validator: try r.id("undelegate.validator"), amount: try r.u64("undelegate.amount"))
        case .agentRegister: p = .agentRegister(try decodeProfile(&r))
        case .agentUpdate: p = .agentUpdate(try decodeProfile(&r))
        case .alliancePropose:
            let n = try r.count("alliance.targets", max: Limits.allianceTargetsMax)
            var targets: [PublicKey] = []
            for _ in 0 ..< n { targets.append(try r.b32("alliance.target")) }
            p = .alliancePropose(AllianceProposal(
                targets: targets,
                purpose: try r.string("alliance.purpose", max: Limits.allianceTextBytesMax),
                terms: try r.string("alliance.terms", max: Limits.allianceTextBytesMax),
                durationMs: try r.u64("alliance.durationMs")))
        case .allianceAccept: p = .allianceAccept(try r.id("alliance.id"))
        case .allianceReject: p = .allianceReject(try r.id("alliance.id"))
        case .allianceDissolve: p = .allianceDissolve(try r.id("alliance.id"))
        case .evidence:
            p = .evidence(first: try r.blob16("evidence.first", max: Limits.consensusMessageBytesMax),
                          second: try r.blob16("evidence.second", max: Limits.consensusMessageBytesMax))
        case .opinion:
            let height = Height(try r.u64("opinion.height")), view = View(try r.u64("opinion.view"))
            let hash = try r.b32("opinion.blockHash")
            let v = try r.u8("opinion.verdict")
            guard let verdict = Verdict(rawValue: v) else {
                throw .invalidValue(field: "opinion.verdict", reason: "unknown verdict \(v)")
            }
            p = .opinion(Opinion(height: height, view: view, blockHash: hash, verdict: verdict,
                                 reason: try r.string("opinion.reason", max: Limits.reasonBytesMax)))
        default:
            p = try decodeEconomy(kind: kind, &r)
        }
        try r.end()
        return p
    }

    static func decodeProfile(_ r: inout ByteReader) throws(DecodeError) -> AgentProfile {
        let name = try r.string("agent.name", max: Limits.nameBytesMax)
        let n = try r.count("agent.capabilities", max: Limits.capabilitiesMax)
        var caps: [String] = []
        for _ in 0 ..< n { caps.append(try r.string("agent.capability", max: Limits.capabilityBytesMax)) }
        return AgentProfile(name: name, capabilities: caps,
                            personality: try r.string("agent.personality", max: Limits.personalityBytesMax),
                            endpoint: try r.string("agent.endpoint", max: Limits.endpointBytesMax))
    }

    /// The streams an event belongs to, besides its author's account stream: these are
    /// the stream index entries written with it (schemas/FORMAT.md §5). Evidence and
    /// opinions belong to their author's account only: the offender of an evidence event
    /// is known only after decoding its messages and mapping the signer through the
    /// state's consensus keys, and stream membership must follow from the payload alone.
    public func streams(author: PublicKey, id: EventID) -> [StreamKey] {
        if let s = otherStream(author: author, id: id) { [.account(author), s] } else { [.account(author)] }
    }

    /// The stream an event belongs to besides its author's account stream, if any (and
    /// not that one again): every event belongs to at most two.
    public func otherStream(author: PublicKey, id: EventID) -> StreamKey? {
        let s: StreamKey
        switch self {
        case let .transfer(to, _, _): s = .account(to)
        case let .delegate(v, _), let .undelegate(v, _): s = .account(v.raw)
        case .agentRegister, .agentUpdate, .agentDeregister, .agentHeartbeat: s = .agent(author)
        case .alliancePropose: s = .alliance(AllianceID(createdBy: id))
        case let .allianceAccept(a), let .allianceReject(a), let .allianceDissolve(a): s = .alliance(a)
        case .jobPost: s = .job(JobID(createdBy: id))
        case let .jobAccept(j), let .escrowFund(j), let .escrowRefund(j), let .disputeResolve(j): s = .job(j)
        case let .jobSubmit(j, _, _), let .escrowRelease(j, _), let .disputeOpen(j, _), let .disputeVote(j, _), let .rate(j, _, _),
             let .jobAttest(j, _, _, _):
            s = .job(j)
        case let .escrowMultisig(m): s = .job(m.job)
        case let .endorse(subject, _, _): s = .account(subject)
        case let .interact(target, _, _): s = .account(target)
        case let .messageSend(to, _): s = .agent(to)
        default: return nil
        }
        return s == .account(author) ? nil : s
    }
}

/// A stream is the ordered list of events that touch one entity.
public enum StreamKey: Hashable, Sendable, CustomStringConvertible {
    case account(PublicKey)
    case agent(PublicKey)
    case alliance(AllianceID)
    /// A job and its escrow: every event that posts, funds, works on, releases, refunds
    /// or disputes it.
    case job(JobID)

    public var tag: UInt8 {
        switch self { case .account: 1; case .agent: 2; case .alliance: 3; case .job: 4 }
    }
    public var id: Bytes32 {
        switch self {
        case let .account(k), let .agent(k): k
        case let .alliance(a): a.raw
        case let .job(j): j.raw
        }
    }
    /// 33 bytes: tag then id.
    public var bytes: [UInt8] { var b: [UInt8] = [tag]; id.append(to: &b); return b }

    public init?(tag: UInt8, id: Bytes32) {
        switch tag {
        case 1: self = .account(id)
        case 2: self = .agent(id)
        case 3: self = .alliance(AllianceID(id))
        case 4: self = .job(JobID(id))
        default: return nil
        }
    }

    /// From `bytes`' 33: tag then id.
    public init?(bytes b: [UInt8]) {
        guard b.count == 33 else { return nil }
        self.init(tag: b[0], id: Bytes32(b[1...]))
    }

    /// Parses `account:<hex>`, `agent:<hex>`, `alliance:<hex>`, `job:<hex>`.
    public init?(parsing s: String) {
        let parts = s.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let id = Bytes32(hex: parts[1]) else { return nil }
        switch parts[0] {
        case "account": self = .account(id)
        case "agent": self = .agent(id)
        case "alliance": self = .alliance(AllianceID(id))
        case "job": self = .job(JobID(id))
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case let .account(k): "account:\(k.hex)"
        case let .agent(k): "agent:\(k.hex)"
        case let .alliance(k): "alliance:\(k.hex)"
        case let .job(k): "job:\(k.hex)"
        }
    }
}
