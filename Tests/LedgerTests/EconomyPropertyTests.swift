import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerProjections
import LedgerStore
import LedgerWorkload
import PropertyBased
import Testing

/// Conservation over random economy workloads, and history across a rule upgrade.
@Suite struct EconomyPropertyTests {
    /// A random economy action by a random party: valid or not, the folds decide.
    static func randomEvent(_ c: EconomyChain, _ rng: inout SplitMix64, jobs: [JobID], memes: [MemeID], proposals: [ProposalID])
        -> (SigningKey, Payload, fee: UInt64?) {
        let f = c.f
        let agents = [f.alice, f.bob, f.carol, f.dave]
        let validators = [f.producer] + validatorKeys
        let everyone = agents + validators
        func pick<T>(_ a: [T]) -> T { a[Int(rng.next() % UInt64(a.count))] }
        let anyone = pick(everyone)
        let job = jobs.isEmpty ? JobID(Blake2b.hash([1])) : pick(jobs)
        let amount = rng.next() % 3_000
        let p: Payload
        switch rng.next() % 22 {
        case 0: p = .transfer(to: pick(everyone).publicKey, amount: amount, memo: "")
        case 1: p = .delegate(validator: ValidatorID(pick(validators).publicKey), amount: amount)
        case 2: p = .undelegate(validator: ValidatorID(pick(validators).publicKey), amount: amount)
        case 3: p = .claimRewards
        case 4, 5:
            let n = 1 + Int(rng.next() % 3)
            p = .jobPost(JobSpec(title: "job", capabilities: rng.next() % 2 == 0 ? ["code"] : [],
                                 milestones: (0 ..< n).map { _ in 1 + rng.next() % 500 },
                                 deadline: Height(c.s.height.value + 1 + rng.next() % 12),
                                 arbiter: rng.next() % 2 == 0 ? .zero : pick(agents).publicKey))
        case 6: p = .jobAccept(job)
        case 7, 8: p = .escrowFund(job)
        case 9: p = .jobSubmit(job: job, milestone: UInt16(rng.next() % 3), result: Blake2b.hash([UInt8(rng.next() % 256)]))
        case 10: p = .escrowRelease(job: job, milestone: UInt16(rng.next() % 3))
        case 11:
            let m = UInt16(rng.next() % 3), share = rng.next() % 600
            let cosigner = pick(agents)
            let st = MultisigRelease.statement(chain: Fixture.chain.raw, job: job, milestone: m, workerAmount: share)
            p = .escrowMultisig(MultisigRelease(job: job, milestone: m, workerAmount: share,
                                                cosignatures: [Cosignature(key: cosigner.publicKey, signature: cosigner.sign(st))]))
        case 12: p = .escrowRefund(job)
        case 13: p = .disputeOpen(job: job, reason: "r")
        case 14: p = .disputeVote(job: job, workerShareBps: UInt32(rng.next() % 10_001))
        case 15: p = .disputeResolve(job)
        case 16: p = .rate(job: job, score: UInt8(rng.next() % 7), comment: "")
        case 17: p = .memePost(Meme(contentHash: Blake2b.hash([UInt8(rng.next() % 256)]), content: "meme", tags: ["t"]))
        case 18: p = memes.isEmpty ? .claimRewards : .memeReact(meme: pick(memes), reaction: pick(Reaction.allCases))
        case 19: p = .interact(target: pick(everyone).publicKey, kind: pick(InteractionKind.allCases), meme: .zero)
        case 20:
            if !proposals.isEmpty, rng.next() % 2 == 0 {
                p = .govVote(proposal: pick(proposals), approve: rng.next() % 4 != 0)
            } else {
                let name = pick(["blockReward", "feeBurnBps", "proposerBonusBps", "gasTargetPerBlock", "slashFractionBps"])
                p = .govPropose(GovernanceProposal(change: .parameter(name: name, value: rng.next() % 5_000),
                                                   activateAt: Height(c.s.height.value + 2 + rng.next() % 5), description: ""))
            }
        default:
            let v = pick(validatorKeys)
            let h = 1 + rng.next() % 3
            p = .evidence(first: prepare(v, height: h, blockA), second: prepare(v, height: h, blockB))
        }
        // Most events pay what they must; some offer too little.
        return (p == .claimRewards ? anyone : pick(everyone), p, rng.next() % 10 == 0 ? 1 : nil)
    }

    static func checkConservation(_ s: LedgerState, genesisSupply: UInt64, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(s.totalSupply == s.computedSupply(), "supply drifted at height \(s.height)", sourceLocation: sourceLocation)
        #expect(s.totalSupply == genesisSupply + s.economy.minted - s.economy.feesBurned - s.burned,
                "total supply ≠ genesis + rewards − burned fees − slashed at height \(s.height)", sourceLocation: sourceLocation)
        for j in s.economy.jobs.values {
            let unsettled = j.milestones.filter { !$0.settled }.reduce(0) { $0 + $1.amount }
            #expect(j.escrowed == (j.funded ? unsettled : 0), "job escrow does not match its unsettled milestones", sourceLocation: sourceLocation)
            for m in j.milestones {
                #expect(m.settled ? m.paid + m.refunded == m.amount : m.paid == 0 && m.refunded == 0,
                        "a milestone paid out more or less than it held", sourceLocation: sourceLocation)
                if !j.funded { #expect(!m.settled || j.status == .refunded) }
            }
        }
    }

    @Test func totalSupplyIsConservedAndEscrowIsNeverSpentTwice() async {
        await propertyCheck(count: 25, input: Gen.uint64()) { seed in
            var rng = SplitMix64(seed: seed)
            var c = economyChain { $0.disputeWindowBlocks = 4; $0.arbitersPerDispute = 3; $0.gasTargetPerBlock = 6 }
            let genesisSupply = c.f.genesis.allocations.reduce(0) { $0 + $1.amount } + c.f.genesis.validators.reduce(0) { $0 + $1.stake }
            // Give workers the capability jobs ask for.
            var jobs: [JobID] = [], memes: [MemeID] = [], proposals: [ProposalID] = []
            var applied = 0
            for _ in 0 ..< 80 {
                c.begin()
                for _ in 0 ..< 1 + Int(rng.next() % 4) {
                    let (k, p, fee) = Self.randomEvent(c, &rng, jobs: jobs, memes: memes, proposals: proposals)
                    let e = c.envelope(k, p, fee: fee)
                    let id = EventCrypto.id(e.bytes)
                    let before = c.s
                    do {
                        try c.s.apply(e, id: id, c.context)
                        c.nonces[k.publicKey] = e.nonce
                        applied += 1
                        switch p.kind {
                        case .jobPost: jobs.append(JobID(createdBy: id))
                        case .memePost: memes.append(MemeID(createdBy: id))
                        case .govPropose: proposals.append(ProposalID(createdBy: id))
                        default: break
                        }
                    } catch {
                        #expect(c.s == before, "a refused \(p.kind) (\(error)) changed the state")
                    }
                }
                Self.checkConservation(c.s, genesisSupply: genesisSupply)
            }
            #expect(applied > 20, "too few events applied (\(applied)) for the workload to test anything")
        }
    }

    /// A chain starts under rule version 1, commits history, upgrades to version 2 by a
    /// validator vote, and goes on with economy events. The log replays (every state
    /// root compared), and the roots before the upgrade are those of the same history
    /// folded by a chain that never upgraded.
    @Test func historyBeforeARuleUpgradeReplaysToTheSameRoots() throws {
        let f = Fixture()  // rule version 1, one validator: the producer
        let log = LedgerLog.memory()
        let p = try f.producer(on: log)
        var nonces: [PublicKey: UInt64] = [:]
        func submit(_ k: SigningKey, _ payload: Payload) throws {
            let n = (nonces[k.publicKey] ?? 0) + 1
            nonces[k.publicKey] = n
            let fee = max(p.pendingState.requiredFee(for: payload), 2) * 2
            try p.submit(EventCrypto.makeEvent(chain: Fixture.chain, key: k, nonce: n, fee: fee, payload: payload).bytes)
        }
        try submit(f.alice, .agentRegister(AgentProfile(name: "alice", capabilities: ["review"], personality: "lawful", endpoint: "")))
        try submit(f.bob, .agentRegister(AgentProfile(name: "bob", capabilities: ["code"], personality: "memetic", endpoint: "")))
        try submit(f.alice, .transfer(to: f.producer.publicKey, amount: 50_000, memo: "fees for the validator"))
        _ = try p.commit()
        try submit(f.carol, .transfer(to: f.dave.publicKey, amount: 5, memo: ""))
        #expect(throws: AdmissionError.rejected(.kindNotActive(.jobPost, ruleVersion: 1))) {
            try p.submit(EventCrypto.makeEvent(chain: Fixture.chain, key: f.alice, nonce: 3, fee: 10, payload: .jobPost(codeJob)).bytes)
        }
        _ = try p.commit()
        let upgradeAt = Height(p.state.height.value + 3)
        try submit(f.producer, .govPropose(GovernanceProposal(change: .ruleVersion(2), activateAt: upgradeAt, description: "the agent economy")))
        _ = try p.commit()
        while p.state.height.next < upgradeAt {
            try submit(f.dave, .transfer(to: f.carol.publicKey, amount: 1, memo: ""))
            _ = try p.commit()
        }
        let preUpgradeHeight = p.state.height
        #expect(p.state.economy.ruleVersion == 1)
        try submit(f.dave, .transfer(to: f.carol.publicKey, amount: 1, memo: ""))
        _ = try p.commit()
        #expect(p.state.economy.ruleVersion == 2)
        #expect(p.state.economy.ruleHistory.map(\.version) == [1, 2])
        // Economy events work from the upgrade on.
        var spec = codeJob
        spec.deadline = Height(p.state.height.value + 20)
        try submit(f.alice, .jobPost(spec))
        try submit(f.bob, .memePost(Meme(contentHash: .zero, content: "upgraded", tags: ["v2"])))
        _ = try p.commit()
        try submit(f.dave, .transfer(to: f.carol.publicKey, amount: 1, memo: ""))
        _ = try p.commit()
        #expect(p.state.economy.jobs.count == 1 && p.state.economy.memes.count == 1)
        #expect(p.state.economy.minted > 0, "rewards are minted under version 2")

        let (report, replayed) = Replayer(log: log).run()
        #expect(report.ok, "\(report.failure.map(\.description) ?? "")")
        #expect(report.stateRootsCompared >= report.blocks - 1)
        #expect(replayed?.stateRoot() == p.state.stateRoot())

        // The same pre-upgrade history without the proposal, folded block by block, has
        // the same roots up to the proposal's block (the proposal itself is an event).
        var plain = f.state()
        for h in 1 ... preUpgradeHeight.value {
            let b = try #require(try log.block(at: Height(h)))
            let events = try log.events(from: b.firstSequence, count: Int(b.header.eventCount)).map { ($0.id, $0.envelope) }
            #expect(b.header.parentStateRoot == plain.stateRoot(), "height \(h): the logged root differs from a fresh fold")
            try plain.applyBlock(b.header, events.map { (id: $0.0, envelope: $0.1) })
        }
        #expect(plain.economy.ruleVersion == 1)
    }

    /// A version 2 genesis (written before the economy existed) has no economy section:
    /// its state root is the one computed before, which schemas/vectors.json pins.
    @Test func aPreEconomyGenesisKeepsItsStateRoot() throws {
        let doc = try VectorTests().committed()
        let g = try Genesis.decode(Hex.decode(doc.genesis)!)
        #expect(g.encodedVersion == 2 && g.ruleVersion == RuleVersion.legacy)
        let s = LedgerState(genesis: g, genesisHash: Blake2b.hash(Hex.decode(doc.genesis)!), crypto: Sodium())
        #expect(s.economy.present == false)
        #expect(s.stateRoot().hex == doc.genesisStateRoot)
        #expect(g.encoded() == Hex.decode(doc.genesis)!, "a version 2 document re-encodes to its own bytes")
    }
}

@Suite struct DemoEconomyTests {
    @Test(arguments: [1, 3] as [UInt64])
    func theDemoExercisesEveryEventKindAndReplays(seed: UInt64) throws {
        let log = LedgerLog.memory()
        let s = try DemoWorkload(seed: seed, agents: 12, events: 1_500).run(into: log)
        let missing = Set(EventKind.allCases.map(\.description)).subtracting(s.kinds.keys)
        #expect(missing.isEmpty, "the demo never committed: \(missing.sorted())")
        #expect(s.validRefused == 0, "\(s.refusals)")
        #expect(s.invalidAdmitted == 0)
        let (report, state) = Replayer(log: log).run()
        #expect(report.ok, "\(report.failure.map(\.description) ?? "")")
        let st = try #require(state)
        #expect(st.totalSupply == st.computedSupply())
        let indexesHold = st.derivedIndexesHold
        #expect(indexesHold, "the live alliances are the pending and active ones")
        #expect(Set(st.alliances.values.map(\.status.description)).isSuperset(of: ["active", "expired", "dissolved", "rejected"]))
        let restored = try LedgerState.decodeSnapshot(st.canonicalBytes(), crypto: Sodium()) == st
        #expect(restored, "a snapshot restores the state, derived indexes too")
        #expect(st.economy.minted > 0 && st.economy.feesBurned > 0)
        #expect(st.economy.jobs.values.contains { $0.status == .resolved })
        #expect(st.economy.proposals.values.map(\.status.description).sorted() == ["activated", "rejected"])

        // Every stream's count and head (§7.3) is the hash chain of the log's own stream
        // index, and the heads count every membership of every event, none twice.
        #expect(st.commitment == .tree)
        var memberships: UInt64 = 0
        for e in try log.events(from: SequenceNumber(0), count: Int(st.eventsApplied) + 1) {
            memberships += UInt64(e.envelope.streams(id: e.id).count)
        }
        #expect(memberships > st.eventsApplied && st.streams.count > 50)
        #expect(st.streams.values.reduce(0) { $0 + $1.count } == memberships)
        var kinds = Set<UInt8>()
        for (k, head) in st.streams {
            let ids = try log.stream(k, after: nil, limit: Int(head.count) + 1).map(\.id)
            #expect(StreamHead.of(ids, Sodium()) == head, "\(k)")
            kinds.insert(k.tag)
        }
        #expect(kinds == [1, 2, 3, 4], "account, agent, alliance and job streams")
    }
}
