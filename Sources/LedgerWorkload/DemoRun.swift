import LedgerAgents
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore

/// One run of the `demo` workload: its producer, keys, nonces, random source and
/// summary. Every step draws from `rng` in a fixed order, so a seed gives the same log.
final class DemoRun {
    let workload: DemoWorkload
    let producer: SoloProducer
    let strategy: AudienceProducer
    var rng: SplitMix64
    /// The agents, then the producer (it claims rewards, votes on governance and may be
    /// drawn as an arbiter, so it signs events too).
    let keys: [SigningKey]
    var nonces: [UInt64]
    var summary: DemoWorkload.Summary
    let validatorCount: Int
    var rotated = false
    var agents: Int { workload.agents }
    var seed: UInt64 { workload.seed }

    init(_ w: DemoWorkload, log: any EventLog) throws {
        workload = w
        let g = w.genesis()
        let gh = try log.initialize(genesis: g)
        producer = try SoloProducer(log: log, key: w.producerKey(), clock: DemoWorkload.clock(genesisMs: g.timestampMs))
        let strategy = AudienceProducer(audience: DemoMemes.personalities, seed: w.seed, hashing: Sodium())
        self.strategy = strategy
        producer.meme = { h in strategy.meme(height: h, view: 0) }
        rng = SplitMix64(seed: w.seed)
        keys = (0 ..< w.agents).map(w.agentKey) + [w.producerKey()]
        nonces = [UInt64](repeating: 0, count: w.agents + 1)
        summary = DemoWorkload.Summary(seed: w.seed, agents: w.agents, submitted: 0, committed: 0, refusedAsIntended: 0, invalidAdmitted: 0,
                                       validRefused: 0, refusals: [:], kinds: [:], blocks: 0, alliances: [:], stateRoot: "", genesisHash: gh.hex)
        validatorCount = min(3, w.agents / 4)
    }

    /// Signs and submits a valid event; its id (a job's, a meme's, a proposal's), or nil if refused.
    @discardableResult
    func submit(_ i: Int, _ payload: Payload, fee: UInt64? = nil) -> EventID? {
        // Twice the minimum: the base fee may rise by the time the block commits.
        let fee = fee ?? producer.pendingState.requiredFee(for: payload) * 2
        let e = EventCrypto.makeEvent(chain: DemoWorkload.chain, key: keys[i], nonce: nonces[i] + 1, fee: fee, payload: payload)
        summary.submitted += 1
        do {
            let id = try producer.submit(e.bytes)
            nonces[i] += 1
            summary.committed += 1
            summary.kinds[payload.kind.description, default: 0] += 1
            return id
        } catch {
            summary.validRefused += 1
            summary.refusals["unexpected: \(payload.kind): \(error)", default: 0] += 1
            return nil
        }
    }
    func refuse(_ label: String, _ bytes: [UInt8]) {
        summary.submitted += 1
        do {
            try producer.submit(bytes)
            summary.invalidAdmitted += 1
        } catch {
            summary.refusedAsIntended += 1
            summary.refusals[label, default: 0] += 1
        }
    }
    func other(_ i: Int) -> Int { (i + 1 + Int(rng.next() % UInt64(agents - 1))) % agents }

    /// Every agent registers; the first few also become validators.
    func begin() {
        for i in 0 ..< agents {
            submit(i, .agentRegister(AgentProfile(
                name: "agent-\(i)", capabilities: DemoMemes.capabilities(i),
                personality: DemoMemes.personalities[i % DemoMemes.personalities.count], endpoint: "agent://\(i)")))
        }
        for i in 0 ..< validatorCount {
            submit(i, .validatorRegister(name: "validator-\(i)", personality: DemoMemes.personalities[i]))
            submit(i, .bond(amount: 5_000))
        }
        // One proposal nobody answers: it must expire.
        submit(agents - 1, .alliancePropose(AllianceProposal(targets: [keys[0].publicKey], purpose: DemoWorkload.lapse,
                                                              terms: "none", durationMs: 60_000)))
    }

    /// One random submission of the main phase.
    func randomStep() {
        let i = Int(rng.next() % UInt64(agents))
        let roll = rng.next() % 100
        let st = producer.pendingState
        switch roll {
        case 0 ..< 38:
            submit(i, .transfer(to: keys[other(i)].publicKey, amount: 1 + rng.next() % 5_000, memo: "payment \(summary.submitted)"))
        case 38 ..< 44:
            let v = Int(rng.next() % UInt64(validatorCount))
            submit(i, .delegate(validator: ValidatorID(keys[v].publicKey), amount: 1 + rng.next() % 2_000))
        case 44 ..< 48:
            let mine = st.delegations.filter { $0.key.delegator == keys[i].publicKey }.sorted { $0.key < $1.key }
            if let d = mine.first { submit(i, .undelegate(validator: d.key.validator, amount: min(d.value, 1 + rng.next() % 500))) }
        case 48 ..< 51:
            if i < validatorCount {
                if rng.next() % 2 == 0 { submit(i, .bond(amount: 1 + rng.next() % 300)) } else { submit(i, .unbond(amount: 1 + rng.next() % 100)) }
            }
        case 51 ..< 53:
            // The producer strategy's proposal: to the validators it most needs.
            // (The agents that became validators: the producer itself holds no balance to answer.)
            let vals = st.validators.values.filter { $0.status == .active && $0.id.raw != keys[agents].publicKey }
                .sorted { $0.id < $1.id }.map { (key: $0.id.raw, personality: $0.personality) }
            if let p = strategy.alliance(me: keys[i].publicKey, validators: vals, durationMs: 40_000),
               p.targets.allSatisfy({ st.agents[$0]?.active == true || st.validators[ValidatorID($0)]?.status == .active }) {
                submit(i, .alliancePropose(p))
            }
        case 53 ..< 60:
            let n = 1 + Int(rng.next() % 2)
            var t = Set<Int>()
            while t.count < n { t.insert(other(i)) }
            submit(i, .alliancePropose(AllianceProposal(
                targets: t.sorted().map { keys[$0].publicKey }, purpose: DemoMemes.purposes[Int(rng.next() % UInt64(DemoMemes.purposes.count))],
                terms: "share memes for \(n) epochs", durationMs: 10_000 + rng.next() % 50_000)))
        case 60 ..< 74:
            // A target answers a pending proposal: mostly accept, sometimes reject.
            let open = st.alliances.values.filter { $0.status == .pending && st.timestampMs < $0.acceptByMs && $0.proposal.purpose != DemoWorkload.lapse }.sorted { $0.id < $1.id }
            if !open.isEmpty {
                let a = open[Int(rng.next() % UInt64(open.count))]
                if let t = a.proposal.targets.first(where: { !a.accepted.contains($0) }), let j = keys.firstIndex(where: { $0.publicKey == t }) {
                    submit(j, rng.next() % 4 == 0 ? .allianceReject(a.id) : .allianceAccept(a.id))
                }
            }
        case 74 ..< 77:
            let active = st.alliances.values.filter { $0.status == .active }.sorted { $0.id < $1.id }
            if let a = active.first, let j = keys.firstIndex(where: { $0.publicKey == a.proposer }) { submit(j, .allianceDissolve(a.id)) }
        case 79:
            if st.trustRules, st.agents[keys[i].publicKey]?.active == true { submit(i, .agentHeartbeat) }
        case 77 ..< 79:
            submit(i, .agentUpdate(AgentProfile(name: "agent-\(i)", capabilities: DemoMemes.capabilities(i + Int(rng.next() % 3)),
                                                personality: DemoMemes.personalities[Int(rng.next() % 4)], endpoint: "agent://\(i)/v2")))
        case 80 ..< 82:
            if !rotated, validatorCount > 0 {
                let v = st.validators[ValidatorID(keys[0].publicKey)]!
                let newKey = SigningKey.derived("demo-\(seed)-validator-0-rotated")
                if v.consensusKey == keys[0].publicKey {
                    let r = EventCrypto.rotation(chain: DemoWorkload.chain, validator: ValidatorID(keys[0].publicKey), nonce: nonces[0] + 1, old: keys[0], new: newKey)
                    submit(0, .validatorRotateKey(r))
                    rotated = true
                }
            }
        case 82 ..< 92:
            economyStep(i)
        default:
            refuseOne(rng.next() % 9, i)
        }
    }

    /// A random step of the job market and the social graph.
    func economyStep(_ i: Int) {
        let st = producer.pendingState
        let jobs = st.economy.jobs.values.sorted { $0.id < $1.id }
        func index(_ k: PublicKey) -> Int? { keys.firstIndex { $0.publicKey == k } }
        switch rng.next() % 8 {
        case 0:
            let cap = DemoMemes.capabilities(Int(rng.next() % UInt64(agents)))[0]
            let ms = (0 ..< 1 + Int(rng.next() % 3)).map { _ in 100 + rng.next() % 2_000 }
            submit(i, .jobPost(JobSpec(title: "task \(summary.submitted)", capabilities: [cap], milestones: ms,
                                       deadline: Height(st.height.value + 20 + rng.next() % 20))))
        case 1:
            if let j = jobs.first(where: { $0.status == .posted && $0.spec.deadline > st.height.next }),
               let m = st.matches(j).first, let w = index(m.agent) { submit(w, .jobAccept(j.id)) }
        case 2:
            if let j = jobs.first(where: { !$0.funded && ($0.status == .posted || $0.status == .accepted) }),
               let c = index(j.client), st.accounts[j.client]!.balance > j.total + 1_000 { submit(c, .escrowFund(j.id)) }
        case 3:
            if let j = jobs.first(where: { $0.status == .accepted && $0.funded && $0.milestones.contains { !$0.settled && $0.result == .zero } }),
               let w = index(j.worker), let m = j.milestones.firstIndex(where: { !$0.settled && $0.result == .zero }) {
                submit(w, .jobSubmit(job: j.id, milestone: UInt16(m), result: Blake2b.hash(Array("result \(j.id.short) \(m)".utf8))))
            }
        case 4:
            if let j = jobs.first(where: { $0.status == .accepted && $0.milestones.contains { !$0.settled && $0.result != .zero } }),
               let c = index(j.client), let m = j.milestones.firstIndex(where: { !$0.settled && $0.result != .zero }) {
                submit(c, .escrowRelease(job: j.id, milestone: UInt16(m)))
            }
        case 5:
            submit(i, .memePost(strategy.post(rng.next())))
        case 6:
            let memes = st.economy.memes.values.filter { $0.author != keys[i].publicKey && !$0.reactors.contains(keys[i].publicKey) }.sorted { $0.id < $1.id }
            if let m = memes.first { submit(i, .memeReact(meme: m.id, reaction: Reaction.allCases[Int(rng.next() % 4)])) }
        default:
            let t = other(i)
            if st.agents[keys[t].publicKey]?.active == true, st.agents[keys[i].publicKey]?.active == true {
                submit(i, .interact(target: keys[t].publicKey, kind: InteractionKind.allCases[Int(rng.next() % 3)], meme: .zero))
            }
        }
    }

    /// A scripted pass through every economy kind: a job paid by release and by
    /// multisig, a disputed job resolved by drawn arbiters, a cancelled job refunded,
    /// ratings, memes, endorsement, commission, rewards, governance, an opinion, and an
    /// equivocation proven, slashed, served and unjailed. A step that cannot go on
    /// (no worker matches) ends the pass there.
    func economyScript() {
        let v = (0 ..< validatorCount).filter { st().validators[ValidatorID(keys[$0].publicKey)]?.status == .active }
        validatorScript(v)
        evaluatedJobScript()
        guard let job = paidJobScript() else { return }
        guard disputeScript(job) else { return }
        refundAndMemesScript(job)
        equivocationScript(v)
        nextBlock()
    }

    func st() -> LedgerState { producer.pendingState }
    func index(_ k: PublicKey) -> Int { keys.firstIndex { $0.publicKey == k }! }
    func nextBlock() { _ = try? producer.commit() }

    /// The parties of the scripted jobs.
    struct ScriptJob { var client: Int; var worker: Int; var cap: String; var deadline: Height }

    /// Rewards, commission, an opinion, an endorsement and governance.
    func validatorScript(_ v: [Int]) {
        let me = agents  // the producer's index in `keys`
        // The producer claims its rewards: it pays fees from them below.
        submit(me, .claimRewards)
        if let v0 = v.first {
            submit(v0, .setCommission(bps: 500))
            // (Its own rewards round to nothing next to the producer's stake: no claim.)
            let b = try? producer.log.block(at: Height(max(1, st().height.value - 1)))
            submit(v0, .opinion(Opinion(height: b?.header.height ?? 1, view: 0, blockHash: b.map { Blake2b.hash($0.headerBytes) } ?? .zero,
                                       verdict: .accept, reason: "meme quality is fine")))
            submit(v0, .endorse(subject: keys[3].publicKey, delta: 3, reason: "reliable worker"))
            // Under rule version 3 bonded agents endorse too, and sign heartbeats.
            if st().trustRules {
                submit(5 % agents, .endorse(subject: keys[4 % agents].publicKey, delta: 2, reason: "pays on time"))
                submit(3 % agents, .agentHeartbeat)
                // A sealed message (a seeded ephemeral key, so the log is the same every run).
                let to = keys[4 % agents].publicKey, seed = Blake2b.hash(Array("demo-\(self.seed)-message".utf8)).bytes
                if let box = try? SealedBox.seal(Array("the dataset is ready".utf8), to: to, ephemeralSeed: seed) {
                    submit(5 % agents, .messageSend(to: to, sealed: box))
                }
            }
            // Governance: one change the producer's power carries, one it votes down. Only
            // validators holding power propose: validator 0 once its stake counts (from
            // the epoch after it bonded), else the producer alone (its proposal passes).
            let at = Height(st().height.value + 3)
            let yes = GovernanceProposal(change: .parameter(name: "blockReward", value: 150), activateAt: at, description: "more rewards")
            let no = GovernanceProposal(change: .parameter(name: "feeBurnBps", value: 0), activateAt: at, description: "burn nothing")
            let v0Key = st().validators[ValidatorID(keys[v0].publicKey)]?.consensusKey
            if let k = v0Key, st().epochPower[k] != nil {
                if let yesID = submit(v0, .govPropose(yes)).map(ProposalID.init(createdBy:)) { submit(me, .govVote(proposal: yesID, approve: true)) }
                if let noID = submit(v0, .govPropose(no)).map(ProposalID.init(createdBy:)) { submit(me, .govVote(proposal: noID, approve: false)) }
            } else {
                submit(me, .govPropose(yes))
            }
        }
    }

    /// A job paid milestone by milestone: one release, one multisig (worker + client).
    func paidJobScript() -> ScriptJob? {
        let client = 4 % agents, cap = st().agents[keys[5 % agents].publicKey]!.profile.capabilities[0]
        let deadline = Height(st().height.value + 12)
        guard let paid = submit(client, .jobPost(JobSpec(title: "label the dataset", capabilities: [cap], milestones: [400, 600], deadline: deadline)))
            .map(JobID.init(createdBy:)) else { return nil }
        nextBlock()
        guard let worker = st().matches(st().economy.jobs[paid]!).first.map({ index($0.agent) }) else { return nil }
        submit(worker, .jobAccept(paid))
        submit(client, .escrowFund(paid))
        submit(worker, .jobSubmit(job: paid, milestone: 0, result: Blake2b.hash(Array("labels-1".utf8))))
        submit(client, .escrowRelease(job: paid, milestone: 0))
        submit(worker, .jobSubmit(job: paid, milestone: 1, result: Blake2b.hash(Array("labels-2".utf8))))
        let st1 = MultisigRelease.statement(chain: DemoWorkload.chain.raw, job: paid, milestone: 1, workerAmount: 550)
        submit(worker, .escrowMultisig(MultisigRelease(job: paid, milestone: 1, workerAmount: 550,
                                                       cosignatures: [Cosignature(key: keys[client].publicKey, signature: keys[client].sign(st1))])))
        submit(client, .rate(job: paid, score: 4, comment: "good labels, one late"))
        submit(worker, .rate(job: paid, score: 5, comment: "paid promptly"))
        return ScriptJob(client: client, worker: worker, cap: cap, deadline: deadline)
    }

    /// A disputed job: the drawn arbiters vote, the median decides.
    /// Rule version 3: a job with a named evaluator, who releases its milestone by
    /// attesting the submitted result against the specification's hash.
    func evaluatedJobScript() {
        guard st().trustRules else { return }
        let client = 6 % agents, evaluator = keys[3 % agents].publicKey
        let cap = st().agents[keys[5 % agents].publicKey]!.profile.capabilities[0], spec = Blake2b.hash(Array("label 500 images".utf8))
        let deadline = Height(st().height.value + 12)
        guard let id = submit(client, .jobPost(JobSpec(title: "evaluated labels", capabilities: [cap], milestones: [500], deadline: deadline,
                                                       evaluation: .named(evaluator, spec: spec)))).map(JobID.init(createdBy:)) else { return }
        nextBlock()
        guard let worker = st().matches(st().economy.jobs[id]!).first(where: { $0.agent != evaluator }).map({ index($0.agent) }) else { return }
        let result = Blake2b.hash(Array("500 labels".utf8))
        submit(worker, .jobAccept(id))
        submit(client, .escrowFund(id))
        submit(worker, .jobSubmit(job: id, milestone: 0, result: result))
        submit(index(evaluator), .jobAttest(job: id, milestone: 0, result: result, spec: spec))
    }

    func disputeScript(_ job: ScriptJob) -> Bool {
        let (client, worker, cap, deadline) = (job.client, job.worker, job.cap, job.deadline)
        guard let disputed = submit(client, .jobPost(JobSpec(title: "summarise the corpus", capabilities: [cap], milestones: [1_000],
                                                             deadline: deadline))).map(JobID.init(createdBy:)) else { return false }
        nextBlock()
        submit(worker, .jobAccept(disputed))
        submit(client, .escrowFund(disputed))
        submit(worker, .jobSubmit(job: disputed, milestone: 0, result: Blake2b.hash(Array("summary".utf8))))
        submit(client, .disputeOpen(job: disputed, reason: "the summary misses chapter 3"))
        nextBlock()
        // The arbiters are drawn as the next block begins (with its first event).
        submit(worker, .transfer(to: keys[client].publicKey, amount: 1, memo: "no hard feelings"))
        if let d = st().economy.jobs[disputed]?.dispute {
            for (n, a) in d.arbiters.prefix(d.arbiters.count / 2 + 1).enumerated() {
                submit(index(a), .disputeVote(job: disputed, workerShareBps: UInt32(5_000 + 1_000 * n)))
            }
            submit(client, .disputeResolve(disputed))
        }
        return true
    }

    /// A job nobody took, cancelled and refunded; memes and the social graph.
    func refundAndMemesScript(_ job: ScriptJob) {
        let (client, worker, deadline) = (job.client, job.worker, job.deadline)
        // A job nobody took: the client cancels and is refunded.
        if let lapsed = submit(client, .jobPost(JobSpec(title: "translate the manual", capabilities: ["no such skill"], milestones: [250],
                                                        deadline: deadline))).map(JobID.init(createdBy:)) {
            submit(client, .escrowFund(lapsed))
            submit(client, .escrowRefund(lapsed))
        }
        // Memes and the social graph.
        if let meme = submit(worker, .memePost(strategy.post(1))).map(MemeID.init(createdBy:)) {
            submit(client, .memeReact(meme: meme, reaction: .fire))
            submit(client, .interact(target: keys[worker].publicKey, kind: .collaborate, meme: meme))
        }
    }

    /// An equivocation: validator 1 signs two prepares for one height and view; agent
    /// 2 proves it; validator 1 is slashed and jailed, serves its term and unjails.
    func equivocationScript(_ v: [Int]) {
        if v.count >= 2 {
            let offender = v[1], witness = (offender + 1) % agents
            let h = Height(st().height.value)
            func prep(_ tag: String) -> [UInt8] {
                SignedConsensusMessage.sign(.prepare(view: 0, height: h, blockHash: Blake2b.hash(Array(tag.utf8))), chain: DemoWorkload.chain.raw,
                                            key: keys[offender]).encoded()
            }
            submit(witness, .evidence(first: prep("a"), second: prep("b")))
            let until = st().validators[ValidatorID(keys[offender].publicKey)]?.jailedUntil ?? 0
            while st().height < until {
                submit(witness, .transfer(to: keys[offender].publicKey, amount: 1, memo: "time passes"))
                nextBlock()
            }
            submit(offender, .validatorUnjail)
        }
    }

    func refuseOne(_ which: UInt64, _ i: Int) {
        let k = keys[i]
        switch which {
        case 0:  // a flipped byte: the signature no longer verifies
            var b = EventCrypto.makeEvent(chain: DemoWorkload.chain, key: k, nonce: nonces[i] + 1, fee: 1, payload: .transfer(to: keys[other(i)].publicKey, amount: 1, memo: "")).bytes
            b[b.count - 80] ^= 0x01
            refuse("bad signature", b)
        case 1:
            refuse("stale nonce", EventCrypto.makeEvent(chain: DemoWorkload.chain, key: k, nonce: nonces[i], fee: 1, payload: .transfer(to: keys[other(i)].publicKey, amount: 1, memo: "")).bytes)
        case 2:
            refuse("future nonce", EventCrypto.makeEvent(chain: DemoWorkload.chain, key: k, nonce: nonces[i] + 5, fee: 1, payload: .transfer(to: keys[other(i)].publicKey, amount: 1, memo: "")).bytes)
        case 3:
            refuse("insufficient balance", EventCrypto.makeEvent(chain: DemoWorkload.chain, key: k, nonce: nonces[i] + 1, fee: 1, payload: .transfer(to: keys[other(i)].publicKey, amount: 1 << 60, memo: "")).bytes)
        case 4:
            let stranger = SigningKey.derived("demo-\(seed)-stranger-\(summary.submitted)")
            refuse("unknown author", EventCrypto.makeEvent(chain: DemoWorkload.chain, key: stranger, nonce: 1, fee: 1, payload: .transfer(to: k.publicKey, amount: 1, memo: "")).bytes)
        case 5:
            // Accepting an alliance that was offered to someone else.
            let st = producer.pendingState
            if let a = st.alliances.values.sorted(by: { $0.id < $1.id }).first(where: { $0.status == .pending && !$0.proposal.targets.contains(k.publicKey) }) {
                refuse("accepted by a non-target", EventCrypto.makeEvent(chain: DemoWorkload.chain, key: k, nonce: nonces[i] + 1, fee: 1, payload: .allianceAccept(a.id)).bytes)
            }
        case 6:
            // Accepting a proposal whose window has passed.
            let st = producer.pendingState
            if let a = st.alliances.values.sorted(by: { $0.id < $1.id }).first(where: { $0.status == .expired && $0.activeUntilMs == 0 }),
               let t = a.proposal.targets.first, let j = keys.firstIndex(where: { $0.publicKey == t }) {
                refuse("accepted after expiry", EventCrypto.makeEvent(chain: DemoWorkload.chain, key: keys[j], nonce: nonces[j] + 1, fee: 1, payload: .allianceAccept(a.id)).bytes)
            }
        case 7:
            refuse("malformed bytes", Array(EventCrypto.makeEvent(chain: DemoWorkload.chain, key: k, nonce: nonces[i] + 1, fee: 1, payload: .bond(amount: 1)).bytes.dropLast(3)))
        default:
            refuse("fee too low", EventCrypto.makeEvent(chain: DemoWorkload.chain, key: k, nonce: nonces[i] + 1, fee: 0, payload: .transfer(to: keys[other(i)].publicKey, amount: 1, memo: "")).bytes)
        }
    }

    func finish() -> DemoWorkload.Summary {
        summary.blocks = producer.state.height.value
        var statuses: [String: Int] = [:]
        for a in producer.state.alliances.values { statuses[a.status.description, default: 0] += 1 }
        summary.alliances = statuses
        summary.stateRoot = producer.state.stateRoot().hex
        return summary
    }
}
