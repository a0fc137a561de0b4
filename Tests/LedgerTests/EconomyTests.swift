import LedgerCore
import LedgerCrypto
import LedgerProjections
import PropertyBased
import Testing

/// A chain folded block by block in memory, for the economy's fold tests.
struct EconomyChain {
    var f: Fixture
    var s: LedgerState
    var nonces: [PublicKey: UInt64] = [:]
    var proposer: SigningKey

    init(_ f: Fixture) { self.f = f; s = f.state(); proposer = f.producer }

    func envelope(_ k: SigningKey, _ p: Payload, fee: UInt64? = nil, nonce: UInt64? = nil) -> Envelope {
        let n = nonce ?? ((nonces[k.publicKey] ?? s.accounts[k.publicKey]?.nonce ?? 0) + 1)
        return EventCrypto.makeEvent(chain: Fixture.chain, key: k, nonce: n, fee: fee ?? s.requiredFee(for: p), payload: p)
    }

    mutating func begin(plusMs: UInt64 = 1_000) {
        try! s.beginBlock(BlockContext(height: s.height.next, timestampMs: s.timestampMs + plusMs, proposer: proposer.publicKey))
    }

    var context: BlockContext { BlockContext(height: s.height, timestampMs: s.timestampMs, proposer: proposer.publicKey) }

    /// Applies `events` in one new block; each must succeed.
    @discardableResult
    mutating func block(_ events: [(SigningKey, Payload)], sourceLocation: SourceLocation = #_sourceLocation) -> [EventID] {
        begin()
        var ids: [EventID] = []
        for (k, p) in events {
            let e = envelope(k, p)
            let id = EventCrypto.id(e.bytes)
            do { try s.apply(e, id: id, context); nonces[k.publicKey] = e.nonce } catch {
                Issue.record("\(p.kind) by \(k.publicKey.short) failed: \(error)", sourceLocation: sourceLocation)
            }
            ids.append(id)
        }
        return ids
    }

    @discardableResult
    mutating func ok(_ k: SigningKey, _ p: Payload, sourceLocation: SourceLocation = #_sourceLocation) -> EventID {
        block([(k, p)], sourceLocation: sourceLocation)[0]
    }

    /// Applies one event in the block already open (no block boundary, so no rewards paid in between).
    mutating func apply(_ k: SigningKey, _ p: Payload) throws(ApplyError) {
        let e = envelope(k, p)
        try s.apply(e, id: EventCrypto.id(e.bytes), context)
        nonces[k.publicKey] = e.nonce
    }

    mutating func empty(_ n: Int = 1) { for _ in 0 ..< n { begin() } }

    /// In a new block, one event that must be refused: its error, after checking that the
    /// refusal changed nothing (the state and its canonical bytes are as before).
    mutating func refuse(_ k: SigningKey, _ p: Payload, fee: UInt64? = nil, sourceLocation: SourceLocation = #_sourceLocation) -> ApplyError? {
        begin()
        let before = s
        let e = envelope(k, p, fee: fee)
        do {
            try s.apply(e, id: EventCrypto.id(e.bytes), context)
            Issue.record("\(p.kind) was accepted", sourceLocation: sourceLocation)
            return nil
        } catch {
            #expect(s == before, "a refused \(p.kind) changed the state", sourceLocation: sourceLocation)
            #expect(s.canonicalBytes() == before.canonicalBytes(), sourceLocation: sourceLocation)
            return error
        }
    }

    func balance(_ k: SigningKey) -> UInt64 { s.accounts[k.publicKey]?.balance ?? 0 }
    func job(_ id: JobID) -> Job { s.economy.jobs[id]! }

    /// Alice posts `spec`, bob accepts it, alice funds it and bob submits milestone 0:
    /// a job ready for a release, a dispute or a refund. One block per event.
    mutating func submittedJob(_ spec: JobSpec = codeJob, result: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> JobID {
        let job = JobID(createdBy: ok(f.alice, .jobPost(spec), sourceLocation: sourceLocation))
        ok(f.bob, .jobAccept(job), sourceLocation: sourceLocation)
        ok(f.alice, .escrowFund(job), sourceLocation: sourceLocation)
        ok(f.bob, .jobSubmit(job: job, milestone: 0, result: Blake2b.hash(result)), sourceLocation: sourceLocation)
        return job
    }
}

let validatorKeys = (1 ... 3).map { SigningKey.derived("economy-validator-\($0)") }

func economyFixture(_ configure: (inout EconomyParameters) -> Void = { _ in }) -> Fixture {
    var f = Fixture()
    f.ruleVersion = RuleVersion.economy
    configure(&f.economy)
    f.extraValidators = validatorKeys.map { .init(key: $0.publicKey, name: "v\($0.publicKey.short)", personality: "lawful", stake: 1_000_000_000) }
    return f
}

/// Registers the four fixture agents (alice: client; bob and carol: workers with
/// "code"; dave: neither) and funds the extra validators' fees.
func economyChain(_ configure: (inout EconomyParameters) -> Void = { _ in }) -> EconomyChain {
    var c = EconomyChain(economyFixture(configure))
    let f = c.f
    c.block([
        (f.alice, .agentRegister(AgentProfile(name: "alice", capabilities: ["review"], personality: "lawful", endpoint: ""))),
        (f.bob, .agentRegister(AgentProfile(name: "bob", capabilities: ["code", "test"], personality: "memetic", endpoint: ""))),
        (f.carol, .agentRegister(AgentProfile(name: "carol", capabilities: ["code"], personality: "loyal", endpoint: ""))),
        (f.dave, .agentRegister(AgentProfile(name: "dave", capabilities: ["art"], personality: "chaotic", endpoint: ""))),
    ])
    c.block(([f.producer] + validatorKeys).map { (f.dave, .transfer(to: $0.publicKey, amount: 10_000, memo: "fees")) })
    return c
}

let codeJob = JobSpec(title: "port the parser", capabilities: ["code"], milestones: [300, 700], deadline: 30)

@Suite struct EconomyTests {
    /// Post → accept → fund → submit → release → multisig release (worker + arbiter) → rate.
    @Test func jobWithMilestonesPaysTheWorkerAndRatesBothSides() {
        var c = economyChain()
        let f = c.f
        var spec = codeJob
        spec.arbiter = f.carol.publicKey
        let job = JobID(createdBy: c.ok(f.alice, .jobPost(spec)))
        // Carol is the arbiter, Dave lacks the capability: Bob is the only match.
        #expect(c.s.matches(c.job(job)).map(\.agent) == [f.bob.publicKey])
        c.ok(f.bob, .jobAccept(job))
        let aliceBefore = c.balance(f.alice)
        let fundFee = c.s.requiredFee(for: .escrowFund(job))
        c.ok(f.alice, .escrowFund(job))
        #expect(c.balance(f.alice) == aliceBefore - 1_000 - fundFee)
        #expect(c.job(job).escrowed == 1_000)
        c.ok(f.bob, .jobSubmit(job: job, milestone: 0, result: Blake2b.hash(Array("v1".utf8))))
        let bobBefore = c.balance(f.bob)
        c.ok(f.alice, .escrowRelease(job: job, milestone: 0))
        #expect(c.balance(f.bob) == bobBefore + 300)
        #expect(c.job(job).escrowed == 700 && c.job(job).status == .accepted)
        // Milestone 1: the worker and the arbiter agree on 600 of 700 for the worker.
        let statement = MultisigRelease.statement(chain: Fixture.chain.raw, job: job, milestone: 1, workerAmount: 600)
        let release = MultisigRelease(job: job, milestone: 1, workerAmount: 600,
                                      cosignatures: [Cosignature(key: f.carol.publicKey, signature: f.carol.sign(statement))])
        let bob1 = c.balance(f.bob), alice1 = c.balance(f.alice)
        let fee = c.s.requiredFee(for: .escrowMultisig(release))
        c.ok(f.bob, .escrowMultisig(release))
        #expect(c.balance(f.bob) == bob1 + 600 - fee)
        #expect(c.balance(f.alice) == alice1 + 100)
        #expect(c.job(job).status == .completed && c.job(job).escrowed == 0)
        // 2 milestones paid + completion for the worker; completion for the client.
        #expect(c.s.reputation(of: f.bob.publicKey) == 2 * ReputationRule.milestonePaid + ReputationRule.jobCompletedWorker)
        #expect(c.s.reputation(of: f.alice.publicKey) == ReputationRule.jobCompletedClient)
        c.ok(f.alice, .rate(job: job, score: 5, comment: "great"))
        c.ok(f.bob, .rate(job: job, score: 2, comment: "slow to pay"))
        #expect(c.s.reputation(of: f.bob.publicKey) == 2 * ReputationRule.milestonePaid + ReputationRule.jobCompletedWorker + 2 * ReputationRule.ratingStep)
        #expect(c.s.reputation(of: f.alice.publicKey) == ReputationRule.jobCompletedClient - ReputationRule.ratingStep)
        #expect(c.s.totalSupply == c.s.computedSupply())
    }

    /// A dispute: arbiters drawn deterministically, the median vote decides the split.
    @Test func disputeDrawsArbitersAndSplitsTheEscrowByTheMedianVote() {
        var c = economyChain()
        let f = c.f
        let job = c.submittedJob(result: Array("r".utf8))
        c.ok(f.alice, .disputeOpen(job: job, reason: "wrong output"))
        let afterOpen = c.s
        #expect(c.job(job).status == .disputed)
        #expect(c.job(job).dispute!.arbiters.isEmpty, "drawn only when the next block begins")
        #expect(c.refuse(f.dave, .disputeVote(job: job, workerShareBps: 1)) == .notArbiter(job))
        // That refusal's block began with the draw, seeded by the root of the state the
        // opening block left.
        let d = c.job(job).dispute!
        #expect(d.arbiters.count == 3)
        #expect(afterOpen.drawArbiters(afterOpen.economy.jobs[job]!, seed: afterOpen.stateRoot()) == d.arbiters)
        // No agent has the arbiter reputation yet, so the four validators are the candidates.
        let all = ([f.producer] + validatorKeys).map(\.publicKey)
        #expect(Set(d.arbiters).isSubset(of: Set(all)))

        let key = { (k: PublicKey) in ([f.producer] + validatorKeys).first { $0.publicKey == k }! }
        let notDrawn = all.first { !d.arbiters.contains($0) }!
        #expect(c.refuse(key(notDrawn), .disputeVote(job: job, workerShareBps: 10_000)) == .notArbiter(job))
        #expect(c.refuse(f.alice, .disputeResolve(job)) == .notEnoughVotes(have: 0, need: 2))
        c.ok(key(d.arbiters[0]), .disputeVote(job: job, workerShareBps: 7_000))
        #expect(c.refuse(key(d.arbiters[0]), .disputeVote(job: job, workerShareBps: 1)) == .alreadyVoted)
        c.ok(key(d.arbiters[1]), .disputeVote(job: job, workerShareBps: 6_000))
        let bob0 = c.balance(f.bob), alice0 = c.balance(f.alice)
        let fee = c.s.requiredFee(for: .disputeResolve(job))
        c.ok(f.alice, .disputeResolve(job))
        // Median of {6000, 7000} (the lower middle) = 60% of the 1,000 still escrowed.
        #expect(c.job(job).dispute!.workerShareBps == 6_000)
        #expect(c.balance(f.bob) == bob0 + 600)
        #expect(c.balance(f.alice) == alice0 + 400 - fee)
        #expect(c.job(job).status == .resolved && c.job(job).escrowed == 0)
        #expect(c.s.reputation(of: f.bob.publicKey) == ReputationRule.disputeWinner)
        #expect(c.s.reputation(of: d.arbiters[2]) == ReputationRule.arbiterSilent)
        #expect(c.s.totalSupply == c.s.computedSupply())
    }

    @Test func refundAfterTheDeadlineReturnsWhatIsUnpaid() {
        var c = economyChain { $0.disputeWindowBlocks = 6 }
        let f = c.f
        var spec = codeJob
        spec.deadline = Height(c.s.height.value + 6)
        let job = c.submittedJob(spec, result: Array("r".utf8))
        #expect(c.refuse(f.alice, .escrowRefund(job)) == .deadlineNotReached(spec.deadline))
        c.empty(2)
        // Past the deadline, but milestone 0's result may still be disputed.
        if case .disputeWindowOpen? = c.refuse(f.alice, .escrowRefund(job)) {} else { Issue.record("refund inside the dispute window") }
        c.empty(2)
        let before = c.balance(f.alice)
        let fee = c.s.requiredFee(for: .escrowRefund(job))
        #expect(c.refuse(f.bob, .disputeOpen(job: job, reason: "late")) != nil)
        c.ok(f.alice, .escrowRefund(job))
        #expect(c.balance(f.alice) == before + 1_000 - fee)
        #expect(c.job(job).status == .refunded)
        #expect(c.s.reputation(of: f.bob.publicKey) == ReputationRule.refundedWorker)
        #expect(c.refuse(f.alice, .escrowRefund(job)) == .wrongJobStatus(job, .refunded))
    }

    /// Found in review: silent arbiters cannot hold an escrow forever, and a worker cannot
    /// keep a client from its refund by resubmitting after the deadline.
    @Test func disputesTimeOutAndSubmissionsStopAtTheDeadline() {
        var c = economyChain { $0.disputeWindowBlocks = 3 }
        let f = c.f
        var spec = codeJob
        spec.deadline = Height(c.s.height.value + 8)
        let job = c.submittedJob(spec, result: [1])
        c.ok(f.alice, .disputeOpen(job: job, reason: "silence"))
        #expect(c.refuse(f.alice, .disputeResolve(job)) == .notEnoughVotes(have: 0, need: 2))
        c.empty(3)
        let bob0 = c.balance(f.bob)
        c.ok(f.alice, .disputeResolve(job))
        #expect(c.job(job).status == .resolved && c.job(job).dispute!.workerShareBps == 5_000)
        #expect(c.balance(f.bob) == bob0 + 500, "no votes after the window: an even split of the 1,000")
        for a in c.job(job).dispute!.arbiters { #expect(c.s.reputation(of: a) == ReputationRule.arbiterSilent) }
        // A second job: past its deadline the worker can no longer submit.
        var late = codeJob
        late.deadline = Height(c.s.height.value + 4)
        let j2 = JobID(createdBy: c.ok(f.alice, .jobPost(late)))
        c.ok(f.bob, .jobAccept(j2)); c.ok(f.alice, .escrowFund(j2))
        c.empty(3)
        #expect(c.refuse(f.bob, .jobSubmit(job: j2, milestone: 0, result: Blake2b.hash([2]))) == .deadlinePassed(late.deadline))
        #expect(c.s.totalSupply == c.s.computedSupply())
    }

    /// Every economy rejection rule: a typed error and no state change (checked in `refuse`).
    @Test func everyEconomyRejectionIsTypedAndChangesNothing() {
        var c = economyChain { $0.disputeWindowBlocks = 2 }
        let f = c.f
        let stranger = SigningKey.derived("stranger")
        let r = Blake2b.hash(Array("result".utf8))
        // Jobs.
        #expect(c.refuse(f.producer, .jobPost(codeJob)) == .notRegistered("agent \(f.producer.publicKey.short)"))
        var empty = codeJob; empty.milestones = []
        #expect(c.refuse(f.alice, .jobPost(empty)) == .invalidJob("no milestones"))
        var past = codeJob; past.deadline = 1
        if case .invalidJob? = c.refuse(f.alice, .jobPost(past)) {} else { Issue.record("a past deadline was accepted") }
        var rich = codeJob; rich.milestones = [2_000_000]
        let big = JobID(createdBy: c.ok(f.alice, .jobPost(rich)))
        #expect(c.refuse(f.alice, .escrowFund(big)) == .insufficientBalance(needed: 2_000_000 + c.s.requiredFee(for: .escrowFund(big)), available: c.balance(f.alice)))
        var picky = codeJob; picky.minReputation = 1
        let pickyJob = JobID(createdBy: c.ok(f.alice, .jobPost(picky)))
        #expect(c.refuse(f.bob, .jobAccept(pickyJob)) == .reputationTooLow(required: 1, has: 0))
        var far = codeJob
        far.deadline = 500
        let job = JobID(createdBy: c.ok(f.alice, .jobPost(far)))
        #expect(c.refuse(f.dave, .jobAccept(job)) == .missingCapability("code"))
        #expect(c.refuse(f.alice, .jobAccept(job)) == .invalidJob("the client or arbiter cannot work on the job"))
        #expect(c.refuse(f.alice, .jobAccept(JobID(Blake2b.hash([1])))) == .unknownJob(JobID(Blake2b.hash([1]))))
        c.ok(f.bob, .jobAccept(job))
        #expect(c.refuse(f.carol, .jobAccept(job)) == .wrongJobStatus(job, .accepted))
        #expect(c.refuse(f.bob, .escrowFund(job)) == .notJobParty(job))
        #expect(c.refuse(f.bob, .jobSubmit(job: job, milestone: 0, result: r)) == .notFunded(job))
        c.ok(f.alice, .escrowFund(job))
        #expect(c.refuse(f.alice, .escrowFund(job)) == .alreadyFunded(job))
        #expect(c.refuse(f.alice, .escrowRelease(job: job, milestone: 0)) == .noResult(0))
        #expect(c.refuse(f.bob, .jobSubmit(job: job, milestone: 9, result: r)) == .unknownMilestone(9))
        #expect(c.refuse(f.bob, .disputeOpen(job: job, reason: "x")) == .invalidDispute("no result has been submitted"))
        c.ok(f.bob, .jobSubmit(job: job, milestone: 0, result: r))
        // A release signed by the wrong parties.
        #expect(c.refuse(f.bob, .escrowRelease(job: job, milestone: 0)) == .notJobParty(job))
        let st = MultisigRelease.statement(chain: Fixture.chain.raw, job: job, milestone: 0, workerAmount: 300)
        let alone = MultisigRelease(job: job, milestone: 0, workerAmount: 300, cosignatures: [])
        #expect(c.refuse(f.bob, .escrowMultisig(alone)) == .wrongSigners("a multisig release needs two of the parties"))
        let withStranger = MultisigRelease(job: job, milestone: 0, workerAmount: 300,
                                           cosignatures: [Cosignature(key: stranger.publicKey, signature: stranger.sign(st))])
        #expect(c.refuse(f.bob, .escrowMultisig(withStranger)) == .wrongSigners("\(stranger.publicKey.short) is not a party to the job"))
        let forged = MultisigRelease(job: job, milestone: 0, workerAmount: 300,
                                     cosignatures: [Cosignature(key: f.alice.publicKey, signature: f.bob.sign(st))])
        #expect(c.refuse(f.bob, .escrowMultisig(forged)) == .badCosignature(f.alice.publicKey))
        let otherAmount = MultisigRelease(job: job, milestone: 0, workerAmount: 299,
                                          cosignatures: [Cosignature(key: f.alice.publicKey, signature: f.alice.sign(st))])
        #expect(c.refuse(f.bob, .escrowMultisig(otherAmount)) == .badCosignature(f.alice.publicKey), "a signature over another split")
        c.ok(f.alice, .escrowRelease(job: job, milestone: 0))
        #expect(c.refuse(f.alice, .escrowRelease(job: job, milestone: 0)) == .milestoneSettled(0))
        #expect(c.refuse(f.alice, .rate(job: job, score: 5, comment: "")) == .wrongJobStatus(job, .accepted))
        // A dispute after its window.
        c.ok(f.bob, .jobSubmit(job: job, milestone: 1, result: r))
        c.empty(3)
        let closes = Height(c.job(job).milestones[1].submittedAt.value + 2)
        #expect(c.refuse(f.alice, .disputeOpen(job: job, reason: "late")) == .disputeWindowClosed(closedAt: closes))
        #expect(c.refuse(f.dave, .disputeOpen(job: job, reason: "x")) == .notJobParty(job))
        c.ok(f.alice, .escrowRelease(job: job, milestone: 1))
        #expect(c.refuse(f.alice, .rate(job: job, score: 6, comment: "")) == .invalidRating("score 6 is not 1 to 5"))
        c.ok(f.alice, .rate(job: job, score: 4, comment: ""))
        #expect(c.refuse(f.alice, .rate(job: job, score: 4, comment: "")) == .alreadyRated(job))
        #expect(c.refuse(f.dave, .rate(job: job, score: 4, comment: "")) == .notJobParty(job))
        // Rewards: a double claim.
        c.empty(1)
        let v1 = validatorKeys[0]
        #expect((c.s.economy.rewards[v1.publicKey] ?? 0) > 0)
        c.begin()
        #expect(throws: Never.self) { try c.apply(v1, .claimRewards) }
        #expect(throws: ApplyError.nothingToClaim) { try c.apply(v1, .claimRewards) }
        #expect(c.refuse(f.dave, .claimRewards) == .nothingToClaim)
        #expect(c.refuse(v1, .setCommission(bps: 9_000)) == .invalidCommission("9000 bps is above the maximum 5000"))
        #expect(c.refuse(f.alice, .setCommission(bps: 100)) == .unknownValidator(f.alice.publicKey))
        // Reputation endorsements.
        #expect(c.refuse(f.alice, .endorse(subject: f.bob.publicKey, delta: 2, reason: "")) == .unknownValidator(f.alice.publicKey))
        #expect(c.refuse(v1, .endorse(subject: f.bob.publicKey, delta: 9, reason: "")) == .invalidEndorsement("delta 9 is not in -5...5 or is 0"))
        #expect(c.refuse(v1, .endorse(subject: stranger.publicKey, delta: 1, reason: "")) == .notRegistered("agent or validator \(stranger.publicKey.short)"))
        // Memes.
        let meme = MemeID(createdBy: c.ok(f.bob, .memePost(Meme(contentHash: r, content: "when the block finalizes", tags: ["pbft"]))))
        #expect(c.refuse(f.bob, .memeReact(meme: meme, reaction: .fire)) == .selfInteraction)
        c.ok(f.alice, .memeReact(meme: meme, reaction: .fire))
        #expect(c.refuse(f.alice, .memeReact(meme: meme, reaction: .like)) == .alreadyReacted(meme))
        #expect(c.refuse(f.alice, .memeReact(meme: MemeID(r), reaction: .like)) == .unknownMeme(MemeID(r)))
        #expect(c.refuse(f.alice, .memePost(Meme(contentHash: r, content: "", tags: []))) == .invalidMeme("empty content"))
        #expect(c.refuse(f.alice, .interact(target: f.alice.publicKey, kind: .follow, meme: .zero)) == .selfInteraction)
        #expect(c.refuse(f.alice, .interact(target: stranger.publicKey, kind: .follow, meme: .zero)) == .notRegistered("agent or validator \(stranger.publicKey.short)"))
        // Governance: an unauthorised parameter change, and bad proposals.
        let change = GovernanceProposal(change: .parameter(name: "blockReward", value: 1), activateAt: Height(c.s.height.value + 50), description: "")
        #expect(c.refuse(f.alice, .govPropose(change)) == .notAuthorized("only a validator with voting power may propose"))
        let unknown = GovernanceProposal(change: .parameter(name: "checkpointInterval", value: 1), activateAt: Height(c.s.height.value + 5), description: "")
        if case let .invalidProposal(why)? = c.refuse(v1, .govPropose(unknown)) {
            #expect(why.contains("not a governable parameter"))
        } else { Issue.record("a consensus parameter was proposed") }
        let downgrade = GovernanceProposal(change: .ruleVersion(1), activateAt: Height(c.s.height.value + 5), description: "")
        if case .invalidProposal? = c.refuse(v1, .govPropose(downgrade)) {} else { Issue.record("a downgrade was proposed") }
        let pid = ProposalID(createdBy: c.ok(v1, .govPropose(change)))
        #expect(c.refuse(f.alice, .govVote(proposal: pid, approve: true)) == .notAuthorized("only a validator with voting power may vote"))
        #expect(c.refuse(v1, .govVote(proposal: pid, approve: true)) == .alreadyVoted)
        #expect(c.refuse(v1, .govVote(proposal: ProposalID(r), approve: true)) == .unknownProposal(ProposalID(r)))
        // Found in review: a minimum reputation of Int64.min must be refused, not trap in abs().
        var hostile = codeJob; hostile.minReputation = .min; hostile.deadline = 900
        #expect(c.refuse(f.alice, .jobPost(hostile)) == .invalidJob("minimum reputation out of range"))
        // A fee no one could pay is not a governable value (it would refuse the vote to undo it).
        let brick = GovernanceProposal(change: .parameter(name: "minFee", value: .max), activateAt: Height(c.s.height.value + 50), description: "")
        if case .invalidProposal? = c.refuse(v1, .govPropose(brick)) {} else { Issue.record("an unpayable minFee was proposed") }
        // A registered validator without voting power (no bonded stake) may not propose.
        c.ok(f.carol, .validatorRegister(name: "sybil", personality: "chaotic"))
        #expect(c.refuse(f.carol, .govPropose(change)) == .notAuthorized("only a validator with voting power may propose"))
        // A fee below gas × base fee.
        let meme2 = Payload.memePost(Meme(contentHash: r, content: "x", tags: []))
        #expect(c.refuse(f.alice, meme2, fee: 1) == .feeTooLow(minimum: 2, offered: 1))
    }

    @Test func economyKindsAreRefusedUnderRuleVersionOne() {
        var c = EconomyChain(Fixture())
        #expect(c.refuse(c.f.alice, .jobPost(codeJob)) == .kindNotActive(.jobPost, ruleVersion: 1))
        #expect(c.refuse(c.f.alice, .claimRewards) == .kindNotActive(.claimRewards, ruleVersion: 1))
        #expect(c.s.economy.present == true)
    }
}

@Suite struct EconomyRulesTests {
    /// Block rewards: the proposer's bonus, shares by power, commission, delegators by stake.
    @Test func rewardsFollowPowerAndTheProposerBonus() {
        var c = economyChain { $0.blockReward = 1_000; $0.proposerBonusBps = 1_000 }
        let f = c.f
        c.empty(1)  // settles the last block with events: the next pool is the reward alone
        let before = c.s.economy.rewards, minted0 = c.s.economy.minted, supply0 = c.s.totalSupply
        c.empty(1)
        #expect(c.s.economy.minted == minted0 + 1_000)
        #expect(c.s.totalSupply == supply0 + 1_000)
        func gained(_ k: SigningKey) -> UInt64 { (c.s.economy.rewards[k.publicKey] ?? 0) - (before[k.publicKey] ?? 0) }
        // 100 to the proposer; 900 by power over 4 equal validators = 225 each.
        #expect(gained(f.producer) == 225 + 100)
        for v in validatorKeys { #expect(gained(v) == 225) }
        #expect(c.s.totalSupply == c.s.computedSupply())
    }

    @Test func delegatorsShareRewardsAndSlashing() {
        var c = economyChain { $0.blockReward = 10_000; $0.proposerBonusBps = 0 }
        let f = c.f
        let v1 = validatorKeys[0]
        c.ok(f.dave, .delegate(validator: ValidatorID(v1.publicKey), amount: 500_000))
        c.ok(v1, .setCommission(bps: 1_000))
        let before = c.s.economy.rewards
        c.empty(1)
        let share: UInt64 = 10_000 / 4  // equal epoch power (delegation counts from the next epoch)
        let toStake = share - share / 10
        let stake = UInt128(1_000_000_000 + 500_000)
        let daveGot = UInt64(UInt128(toStake) * 500_000 / stake)
        #expect((c.s.economy.rewards[f.dave.publicKey] ?? 0) - (before[f.dave.publicKey] ?? 0) == daveGot)
        #expect((c.s.economy.rewards[v1.publicKey] ?? 0) - (before[v1.publicKey] ?? 0) == share - daveGot)
        c.begin()
        let daveBalance = c.balance(f.dave)
        let owed = c.s.economy.rewards[f.dave.publicKey]!
        let fee = c.s.requiredFee(for: .claimRewards)
        try? c.apply(f.dave, .claimRewards)
        #expect(c.balance(f.dave) == daveBalance + owed - fee)
        // v1 equivocates: 10% of its self-stake and of Dave's delegation are burned and recorded.
        let burned0 = c.s.burned
        c.ok(f.bob, .evidence(first: prepare(v1, blockA), second: prepare(v1, blockB)))
        #expect(c.s.delegations.first { $0.key.delegator == f.dave.publicKey && $0.key.validator.raw == v1.publicKey }?.value == 450_000)
        #expect(c.s.economy.delegatorSlashes.map(\.amount) == [50_000])
        #expect(c.s.burned == burned0 + 100_000_000 + 50_000)
        #expect(c.s.reputation(of: v1.publicKey) == ReputationRule.slashed)
        #expect(c.s.totalSupply == c.s.computedSupply())
    }

    @Test func baseFeeFollowsBlockFullness() {
        var c = economyChain { $0.gasTargetPerBlock = 2; $0.baseFeeMin = 1 }
        let f = c.f
        // The setup's blocks were over the target; empty blocks bring the base fee down.
        var steps = 0
        while c.s.economy.baseFee > 1, steps < 50 { c.empty(1); steps += 1 }
        #expect(c.s.economy.baseFee == 1)
        // 8 transfers = 8 gas against a target of 2: +1/8 × 3 × base, at least 1.
        c.block((0 ..< 8).map { _ in (f.alice, .transfer(to: f.bob.publicKey, amount: 1, memo: "")) })
        c.empty(1)
        #expect(c.s.economy.baseFee == 2)
        #expect(c.refuse(f.alice, .transfer(to: f.bob.publicKey, amount: 1, memo: ""), fee: 1) == .feeTooLow(minimum: 2, offered: 1))
        c.empty(3)
        #expect(c.s.economy.baseFee == 1, "empty blocks bring it back to the minimum")
        // Half of the base charge is burned, the rest pooled for the next block's rewards.
        let burned0 = c.s.economy.feesBurned
        c.block([(f.alice, .memePost(Meme(contentHash: .zero, content: "gm", tags: [])))])
        #expect(c.s.economy.feesBurned == burned0 + 1)  // gas 2 × base 1 × 50%
    }

    @Test func governanceChangesAParameterOnlyWithAQuorum() {
        var c = economyChain()
        let all = [c.f.producer] + validatorKeys
        c.block(validatorKeys.map { ($0, .transfer(to: c.f.producer.publicKey, amount: 0 + 1, memo: "")) })
        c.ok(c.f.alice, .transfer(to: c.f.producer.publicKey, amount: 10_000, memo: ""))
        let at = Height(c.s.height.value + 4)
        let pass = ProposalID(createdBy: c.ok(all[0], .govPropose(GovernanceProposal(change: .parameter(name: "blockReward", value: 7), activateAt: at, description: ""))))
        let fail = ProposalID(createdBy: c.ok(all[1], .govPropose(GovernanceProposal(change: .parameter(name: "feeBurnBps", value: 0), activateAt: at, description: ""))))
        // 3 of 4 equal validators approve the first (75% > 2/3); only 2 the second (50%).
        c.block([(all[1], .govVote(proposal: pass, approve: true)), (all[2], .govVote(proposal: pass, approve: true)),
                 (all[2], .govVote(proposal: fail, approve: true)), (all[3], .govVote(proposal: fail, approve: false))])
        #expect(c.s.economy.parameters.blockReward == 100)
        while c.s.height < at { c.empty(1) }
        #expect(c.s.economy.proposals[pass]!.status == .activated)
        #expect(c.s.economy.proposals[fail]!.status == .rejected)
        #expect(c.s.economy.parameters.blockReward == 7)
        #expect(c.s.economy.parameters.feeBurnBps == 5_000)
        #expect(c.refuse(all[3], .govVote(proposal: pass, approve: true)) == .proposalClosed(pass, .activated))
    }

    @Test func mintingStopsShortOfOverflowingTheSupply() {
        var f = Fixture()
        f.ruleVersion = RuleVersion.economy
        f.economy.blockReward = 100
        let whale = SigningKey.derived("whale")
        f.extraValidators = [.init(key: whale.publicKey, name: "whale", personality: "lawful", stake: UInt64.max - 4_000_000 - 1_000_000_000 - 250)]
        var c = EconomyChain(f)
        // The supply starts 250 below UInt64.max. Block 1 has no predecessor to reward;
        // blocks 2 and 3 mint 100 each; block 4 mints only the 50 left.
        c.empty(4)
        #expect(c.s.totalSupply == .max)
        #expect(c.s.economy.minted == 250)
        c.empty(1)
        #expect(c.s.economy.minted == 250 && c.s.totalSupply == .max)
        #expect(c.s.computedSupply() == c.s.totalSupply)
    }

    @Test func reputationDecaysByHalfLives() {
        #expect(LedgerState.decayed(8_000, from: 0, to: 0, halfLife: 100) == 8_000)
        #expect(LedgerState.decayed(8_000, from: 0, to: 100, halfLife: 100) == 4_000)
        #expect(LedgerState.decayed(8_000, from: 0, to: 50, halfLife: 100) == 6_000)
        #expect(LedgerState.decayed(8_000, from: 10, to: 260, halfLife: 100) == 1_500)
        #expect(LedgerState.decayed(-8_000, from: 0, to: 100, halfLife: 100) == -4_000)
        #expect(LedgerState.decayed(8_000, from: 0, to: Height(100 * 70), halfLife: 100) == 0)
    }

    @Test func economySnapshotRoundTrips() throws {
        var c = economyChain()
        let f = c.f
        let job = c.submittedJob(result: [9])
        c.ok(f.alice, .disputeOpen(job: job, reason: "r"))
        let m = MemeID(createdBy: c.ok(f.bob, .memePost(Meme(contentHash: .zero, content: "x", tags: ["a", "b"]))))
        c.ok(f.carol, .memeReact(meme: m, reaction: .laugh))
        c.ok(f.carol, .interact(target: f.bob.publicKey, kind: .collaborate, meme: m))
        c.ok(validatorKeys[0], .govPropose(GovernanceProposal(change: .parameter(name: "jailBlocks", value: 5), activateAt: Height(1_000), description: "d")))
        let bytes = c.s.canonicalBytes()
        let back = try LedgerState.decodeSnapshot(bytes, crypto: Sodium())
        #expect(back == c.s)
        #expect(back.stateRoot() == c.s.stateRoot())
    }
}
