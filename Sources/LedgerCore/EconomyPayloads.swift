/// Payloads of the agent economy (issue 5): jobs and escrow, disputes, reputation,
/// staking rewards, memes and interactions, governance (schemas/FORMAT.md §3.2).

/// A job (and its escrow) is named by the id of the event that posted it.
public typealias JobID = Identifier<JobKindName>
/// A meme is named by the id of the event that posted it.
public typealias MemeID = Identifier<MemeKindName>
/// A governance proposal is named by the id of the event that made it.
public typealias ProposalID = Identifier<ProposalKindName>

/// What a client asks for: the capabilities a worker must have registered, the minimum
/// reputation a worker needs to accept, the payment split into milestones (paid one by
/// one), the height after which an unpaid client may take its money back, and an
/// optional arbiter (the third key of a 2-of-3 release; `Bytes32.zero` for none).
public struct JobSpec: Sendable, Hashable {
    public var title: String
    public var capabilities: [String]
    public var milestones: [UInt64]
    public var deadline: Height
    /// In reputation milli-points (schemas/REPUTATION.md).
    public var minReputation: Int64
    public var arbiter: PublicKey
    /// Rule version 3: who may release a milestone by attesting the worker's result
    /// against the specification's hash (`job.attest`), besides the client.
    public var evaluation: Evaluation
    public init(title: String, capabilities: [String], milestones: [UInt64], deadline: Height, minReputation: Int64 = 0,
                arbiter: PublicKey = .zero, evaluation: Evaluation = .none) {
        self.title = title; self.capabilities = capabilities; self.milestones = milestones; self.deadline = deadline
        self.minReputation = minReputation; self.arbiter = arbiter; self.evaluation = evaluation
    }
}

/// A job's evaluator (rule version 3): none, one the client names, or one drawn like an
/// arbiter once a worker accepted; with the hash of the specification it attests against.
public enum Evaluation: Sendable, Hashable {
    case none
    case named(PublicKey, spec: Hash32)
    case drawn(spec: Hash32)

    public var spec: Hash32? {
        switch self {
        case .none: nil
        case let .named(_, s), let .drawn(s): s
        }
    }
}

/// One co-signature on an escrow release statement.
public struct Cosignature: Sendable, Hashable {
    public var key: PublicKey
    public var signature: Signature
    public init(key: PublicKey, signature: Signature) { self.key = key; self.signature = signature }
}

/// A milestone released by several parties together: `workerAmount` goes to the worker,
/// the rest of the milestone back to the client. The envelope's author is one signer;
/// each cosignature signs `MultisigRelease.statement` (client and worker together, or any
/// two of client, worker and the job's arbiter).
public struct MultisigRelease: Sendable, Hashable {
    public var job: JobID
    public var milestone: UInt16
    public var workerAmount: UInt64
    public var cosignatures: [Cosignature]
    public init(job: JobID, milestone: UInt16, workerAmount: UInt64, cosignatures: [Cosignature]) {
        self.job = job; self.milestone = milestone; self.workerAmount = workerAmount; self.cosignatures = cosignatures
    }

    /// `Domain "CHAOSLEDGER/ESCROW" v1 | chain | job | u16 milestone | u64 workerAmount`.
    /// A milestone is released once, so the statement needs no nonce.
    public static func statement(chain: Bytes32, job: JobID, milestone: UInt16, workerAmount: UInt64) -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        w.raw(Domain.escrow(chain)); w.b32(job); w.u16(milestone); w.u64(workerAmount)
        return w.bytes
    }
}

public struct Meme: Sendable, Hashable {
    /// BLAKE2b-256 of the content the meme names (an image, a text, a file).
    public var contentHash: Hash32
    /// The text itself or a URI.
    public var content: String
    public var tags: [String]
    public init(contentHash: Hash32, content: String, tags: [String]) {
        self.contentHash = contentHash; self.content = content; self.tags = tags
    }
}

public enum Reaction: UInt8, Sendable, Hashable, CaseIterable {
    case like = 1, laugh = 2, fire = 3, dislike = 4
    public var name: String {
        switch self { case .like: "like"; case .laugh: "laugh"; case .fire: "fire"; case .dislike: "dislike" }
    }
}

public enum InteractionKind: UInt8, Sendable, Hashable, CaseIterable {
    case follow = 1, mention = 2, collaborate = 3
    public var name: String {
        switch self { case .follow: "follow"; case .mention: "mention"; case .collaborate: "collaborate" }
    }
}

/// What a governance proposal changes once a validator quorum approved it.
public enum GovernanceChange: Sendable, Hashable {
    /// Sets one governable parameter (by its name in schemas/genesis) to a value.
    case parameter(name: String, value: UInt64)
    /// Switches the folds to another rule version from the activation height on.
    case ruleVersion(UInt16)
}

public struct GovernanceProposal: Sendable, Hashable {
    public var change: GovernanceChange
    /// The block at whose start the change takes effect, if approved by then.
    public var activateAt: Height
    public var description: String
    public init(change: GovernanceChange, activateAt: Height, description: String) {
        self.change = change; self.activateAt = activateAt; self.description = description
    }
}

extension Domain {
    public static func escrow(_ chain: Bytes32) -> [UInt8] { prefix("CHAOSLEDGER/ESCROW", 1, chain) }
}

extension Payload {
    func encodeEconomy(_ w: inout ByteWriter) {
        switch self {
        case .claimRewards, .transfer, .validatorRegister, .validatorRetire, .validatorRotateKey, .validatorUnjail, .bond,
             .unbond, .delegate, .undelegate, .agentRegister, .agentUpdate, .agentDeregister, .agentHeartbeat, .alliancePropose,
             .allianceAccept, .allianceReject, .allianceDissolve, .evidence, .opinion:
            break
        case let .setCommission(bps): w.u32(bps)
        case let .jobPost(j):
            w.string(j.title)
            w.u16(UInt16(j.capabilities.count)); for c in j.capabilities { w.string(c) }
            w.u16(UInt16(j.milestones.count)); for m in j.milestones { w.u64(m) }
            w.u64(j.deadline.value); w.u64(UInt64(bitPattern: j.minReputation)); w.b32(j.arbiter)
            // The evaluation, only when there is one: jobs without keep their old bytes.
            switch j.evaluation {
            case .none: break
            case let .named(k, spec): w.u8(1); w.b32(k); w.b32(spec)
            case let .drawn(spec): w.u8(2); w.b32(spec)
            }
        case let .jobAttest(j, m, result, spec): w.b32(j); w.u16(m); w.b32(result); w.b32(spec)
        case let .jobAccept(j), let .escrowFund(j), let .escrowRefund(j), let .disputeResolve(j): w.b32(j)
        case let .jobSubmit(j, m, result): w.b32(j); w.u16(m); w.b32(result)
        case let .escrowRelease(j, m): w.b32(j); w.u16(m)
        case let .escrowMultisig(m):
            w.b32(m.job); w.u16(m.milestone); w.u64(m.workerAmount)
            w.u16(UInt16(m.cosignatures.count)); for c in m.cosignatures { w.b32(c.key); w.b64(c.signature) }
        case let .disputeOpen(j, reason): w.b32(j); w.string(reason)
        case let .disputeVote(j, bps): w.b32(j); w.u32(bps)
        case let .rate(j, score, comment): w.b32(j); w.u8(score); w.string(comment)
        case let .endorse(subject, delta, reason): w.b32(subject); w.u8(UInt8(bitPattern: delta)); w.string(reason)
        case let .memePost(m):
            w.b32(m.contentHash); w.string(m.content)
            w.u16(UInt16(m.tags.count)); for t in m.tags { w.string(t) }
        case let .memeReact(m, r): w.b32(m); w.u8(r.rawValue)
        case let .interact(t, k, m): w.b32(t); w.u8(k.rawValue); w.b32(m)
        case let .govPropose(p):
            switch p.change {
            case let .parameter(name, value): w.u8(1); w.string(name); w.u64(value)
            case let .ruleVersion(v): w.u8(2); w.u16(v)
            }
            w.u64(p.activateAt.value); w.string(p.description)
        case let .govVote(p, approve): w.b32(p); w.u8(approve ? 1 : 0)
        case let .messageSend(to, sealed): w.b32(to); w.blob16(sealed)
        }
    }

    /// A job.post payload; the evaluation trailer (rule version 3) only when bytes remain.
    static func decodeJobSpec(_ r: inout ByteReader) throws(DecodeError) -> JobSpec {
        let title = try r.string("job.title", max: Limits.jobTitleBytesMax)
        let nc = try r.count("job.capabilities", max: Limits.capabilitiesMax)
        var caps: [String] = []
        for _ in 0 ..< nc { caps.append(try r.string("job.capability", max: Limits.capabilityBytesMax)) }
        let nm = try r.count("job.milestones", max: Limits.milestonesMax)
        var ms: [UInt64] = []
        for _ in 0 ..< nm { ms.append(try r.u64("job.milestone")) }
        var spec = JobSpec(title: title, capabilities: caps, milestones: ms, deadline: Height(try r.u64("job.deadline")),
                           minReputation: Int64(bitPattern: try r.u64("job.minReputation")), arbiter: try r.b32("job.arbiter"))
        if r.remaining > 0 {
            switch try r.u8("job.evaluation") {
            case 1: spec.evaluation = .named(try r.b32("job.evaluator"), spec: try r.b32("job.specHash"))
            case 2: spec.evaluation = .drawn(spec: try r.b32("job.specHash"))
            case let m: throw .invalidValue(field: "job.evaluation", reason: "unknown evaluation \(m) (1 named, 2 drawn)")
            }
        }
        return spec
    }

    static func decodeEconomy(kind: EventKind, _ r: inout ByteReader) throws(DecodeError) -> Payload {
        switch kind {
        case .claimRewards: return .claimRewards
        case .setCommission: return .setCommission(bps: try r.u32("commission.bps"))
        case .jobPost: return .jobPost(try decodeJobSpec(&r))
        case .jobAttest:
            return .jobAttest(job: try r.id("attest.job"), milestone: try r.u16("attest.milestone"), result: try r.b32("attest.result"),
                              spec: try r.b32("attest.spec"))
        case .jobAccept: return .jobAccept(try r.id("job.id"))
        case .escrowFund: return .escrowFund(try r.id("job.id"))
        case .escrowRefund: return .escrowRefund(try r.id("job.id"))
        case .disputeResolve: return .disputeResolve(try r.id("job.id"))
        case .jobSubmit:
            return .jobSubmit(job: try r.id("job.id"), milestone: try r.u16("job.milestone"), result: try r.b32("job.result"))
        case .escrowRelease: return .escrowRelease(job: try r.id("job.id"), milestone: try r.u16("job.milestone"))
        case .escrowMultisig:
            let job: JobID = try r.id("job.id"), m = try r.u16("job.milestone"), amount = try r.u64("release.workerAmount")
            let n = try r.count("release.cosignatures", max: Limits.cosignaturesMax)
            var cs: [Cosignature] = []
            for _ in 0 ..< n { cs.append(Cosignature(key: try r.b32("cosignature.key"), signature: try r.b64("cosignature.signature"))) }
            return .escrowMultisig(MultisigRelease(job: job, milestone: m, workerAmount: amount, cosignatures: cs))
        case .disputeOpen: return .disputeOpen(job: try r.id("job.id"), reason: try r.string("dispute.reason", max: Limits.reasonBytesMax))
        case .disputeVote: return .disputeVote(job: try r.id("job.id"), workerShareBps: try r.u32("dispute.workerShareBps"))
        case .rate:
            return .rate(job: try r.id("job.id"), score: try r.u8("rate.score"), comment: try r.string("rate.comment", max: Limits.reasonBytesMax))
        case .endorse:
            return .endorse(subject: try r.b32("endorse.subject"), delta: Int8(bitPattern: try r.u8("endorse.delta")),
                            reason: try r.string("endorse.reason", max: Limits.reasonBytesMax))
        case .memePost:
            let hash = try r.b32("meme.contentHash"), content = try r.string("meme.content", max: Limits.memeContentBytesMax)
            let n = try r.count("meme.tags", max: Limits.memeTagsMax)
            var tags: [String] = []
            for _ in 0 ..< n { tags.append(try r.string("meme.tag", max: Limits.memeTagBytesMax)) }
            return .memePost(Meme(contentHash: hash, content: content, tags: tags))
        case .memeReact:
            let m: MemeID = try r.id("react.meme"), v = try r.u8("react.reaction")
            guard let reaction = Reaction(rawValue: v) else { throw .invalidValue(field: "react.reaction", reason: "unknown reaction \(v)") }
            return .memeReact(meme: m, reaction: reaction)
        case .interact:
            let t = try r.b32("interact.target"), v = try r.u8("interact.kind")
            guard let k = InteractionKind(rawValue: v) else { throw .invalidValue(field: "interact.kind", reason: "unknown interaction \(v)") }
            return .interact(target: t, kind: k, meme: try r.id("interact.meme"))
        case .govPropose:
            let tag = try r.u8("proposal.change")
            let change: GovernanceChange
            switch tag {
            case 1: change = .parameter(name: try r.string("proposal.parameter", max: Limits.nameBytesMax), value: try r.u64("proposal.value"))
            case 2: change = .ruleVersion(try r.u16("proposal.ruleVersion"))
            default: throw .invalidValue(field: "proposal.change", reason: "unknown change \(tag)")
            }
            return .govPropose(GovernanceProposal(change: change, activateAt: Height(try r.u64("proposal.activateAt")),
                                                  description: try r.string("proposal.description", max: Limits.allianceTextBytesMax)))
        case .govVote:
            let p: ProposalID = try r.id("vote.proposal"), v = try r.u8("vote.approve")
            guard v <= 1 else { throw .invalidValue(field: "vote.approve", reason: "must be 0 or 1") }
            return .govVote(proposal: p, approve: v == 1)
        case .messageSend:
            return .messageSend(to: try r.b32("message.to"), sealed: Array(try r.blob16("message.sealed", max: Limits.payloadBytesMax)))
        default:
            preconditionFailure("decodeEconomy called for \(kind)")
        }
    }
}
