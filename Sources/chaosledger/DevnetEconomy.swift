import Foundation
import LedgerCore
import LedgerCrypto
import LedgerProjections

/// The devnet's scripted pass through the agent economy, over the HTTP API, beside the
/// agent swarm: three fresh agents (funded by validator 0) run a job paid by release and
/// by a worker + arbiter multisig, a disputed job the drawn arbiters decide, and a job
/// cancelled and refunded, with ratings, memes and interactions, and (rule version 3) a
/// heartbeat, an agent's endorsement, a sealed message and a job its evaluator releases;
/// the validators claim
/// rewards, set a commission, endorse the worker, bond and unbond, and pass a governance
/// change. (Evidence, unjailing, key rotation and retirement stay in `demo`: slashing or
/// retiring a devnet validator would cost the 4-node cluster its quorum.)
final class EconomyTour: @unchecked Sendable {
    let chain: ChainID
    let client: NodeClient
    let validators: [SigningKey]
    let lock = NSLock()
    var kinds: [String: Int] = [:]
    var failures: [String] = []

    init(chain: ChainID, node: String, validators: [SigningKey]) {
        self.chain = chain; client = NodeClient(node); self.validators = validators
    }

    /// Signs `p` with the author's next nonce and waits for it. A validator's key also signs
    /// its node's own opinions, so a nonce can be taken meanwhile: a stale nonce is retried.
    @discardableResult
    func send(_ key: SigningKey, _ p: Payload) async -> EventID? {
        for _ in 0 ..< 8 {
            guard let n = try? await client.nonce(of: key.publicKey),
                  let fees = try? await client.getJSON("/v1/fees") else { try? await Task.sleep(for: .milliseconds(300)); continue }
            let unit = UInt64((fees["suggested"] as? Int) ?? 1)
            let fee = Gas.of(p.kind, bytes: Envelope.overheadBytes + p.encoded().count) * max(1, unit) * 2
            let e = EventCrypto.makeEvent(chain: chain, key: key, nonce: n + 1, fee: fee, payload: p)
            let id = EventCrypto.id(e.bytes)
            guard let r = try? await client.submit([e.bytes], wait: true, timeoutMs: 15_000).first else { continue }
            var ok = r.status == "committed"
            if !ok, r.status == "pending" { ok = await committed(id) }
            if ok {
                lock.withLock { kinds[p.kind.description, default: 0] += 1 }
                return id
            }
            if r.code == "stale_nonce" || r.status == "pending" { try? await Task.sleep(for: .milliseconds(200)); continue }
            lock.withLock { failures.append("\(p.kind): \(r.code ?? r.status) \(r.error ?? "")") }
            return nil
        }
        lock.withLock { failures.append("\(p.kind): no commit after 8 tries") }
        return nil
    }

    func committed(_ id: EventID) async -> Bool {
        for _ in 0 ..< 30 {
            if let d = try? await client.getJSON("/v1/events/\(id.hex)"), d["status"] as? String == "committed" { return true }
            try? await Task.sleep(for: .milliseconds(500))
        }
        return false
    }

    func height() async -> UInt64 { UInt64((try? await client.getJSON("/v1/status"))?["height"] as? Int ?? 0) }

    func run(stop: @escaping @Sendable () -> Bool) async {
        let a = SigningKey.generate(), b = SigningKey.generate(), c = SigningKey.generate()
        let v = validators
        for k in [a, b, c] where !stop() { await send(v[0], .transfer(to: k.publicKey, amount: 1_000_000, memo: "economy tour")) }
        for (k, name, caps) in [(a, "tour-client", ["review"]), (b, "tour-worker", ["compute", "audit"]), (c, "tour-arbiter", ["audit"])] where !stop() {
            await send(k, .agentRegister(AgentProfile(name: name, capabilities: caps, personality: "lawful", endpoint: "agent://devnet/tour")))
        }
        guard !stop() else { return }
        let deadline = Height(await height() + 10_000)
        // A job paid milestone by milestone: a release, then a worker + arbiter multisig.
        if let job = await send(a, .jobPost(JobSpec(title: "tour: index the corpus", capabilities: ["compute"], milestones: [300, 700],
                                                    deadline: deadline, arbiter: c.publicKey))).map(JobID.init(createdBy:)) {
            await send(b, .jobAccept(job))
            await send(a, .escrowFund(job))
            await send(b, .jobSubmit(job: job, milestone: 0, result: Blake2b.hash(Array("index part 1".utf8))))
            await send(a, .escrowRelease(job: job, milestone: 0))
            await send(b, .jobSubmit(job: job, milestone: 1, result: Blake2b.hash(Array("index part 2".utf8))))
            let st = MultisigRelease.statement(chain: chain.raw, job: job, milestone: 1, workerAmount: 650)
            await send(b, .escrowMultisig(MultisigRelease(job: job, milestone: 1, workerAmount: 650,
                                                          cosignatures: [Cosignature(key: c.publicKey, signature: c.sign(st))])))
            await send(a, .rate(job: job, score: 4, comment: "good, a little late"))
            await send(b, .rate(job: job, score: 5, comment: "fair client"))
        }
        guard !stop() else { return }
        // A disputed job: the drawn arbiters (validators here) vote; the median decides.
        if let job = await send(a, .jobPost(JobSpec(title: "tour: summarise", capabilities: ["audit"], milestones: [1_000], deadline: deadline))).map(JobID.init(createdBy:)) {
            await send(b, .jobAccept(job))
            await send(a, .escrowFund(job))
            await send(b, .jobSubmit(job: job, milestone: 0, result: Blake2b.hash(Array("summary".utf8))))
            await send(a, .disputeOpen(job: job, reason: "chapter 3 is missing"))
            // The arbiters are drawn when the next block begins: wait for them.
            var arbiters: [Bytes32] = []
            for _ in 0 ..< 40 where arbiters.isEmpty && !stop() {
                let d = (try? await client.getJSON("/v1/jobs/\(job.hex)"))?["dispute"] as? [String: Any]
                arbiters = (d?["arbiters"] as? [String] ?? []).compactMap { Bytes32(hex: $0) }
                if arbiters.isEmpty {
                    await send(c, .memePost(Meme(contentHash: .zero, content: "waiting for the arbiters", tags: ["tour"])))
                }
            }
            var votes = 0
            for (n, key) in arbiters.enumerated() where votes < arbiters.count / 2 + 1 {
                guard let signer = (v + [a, b, c]).first(where: { $0.publicKey == key }) else { continue }
                if await send(signer, .disputeVote(job: job, workerShareBps: UInt32(5_000 + 1_000 * n))) != nil { votes += 1 }
            }
            await send(a, .disputeResolve(job))
        }
        // A job nobody takes: funded, then cancelled.
        if let job = await send(a, .jobPost(JobSpec(title: "tour: translate", capabilities: ["klingon"], milestones: [250], deadline: deadline))).map(JobID.init(createdBy:)) {
            await send(a, .escrowFund(job))
            await send(a, .escrowRefund(job))
        }
        guard !stop() else { return }
        await socialTour(a, b, c, deadline: deadline)
        await validatorTour(endorsing: b)
    }

    /// Memes, the social graph and (rule version 3) heartbeats, an agent's endorsement, a
    /// sealed message and an evaluated job.
    func socialTour(_ a: SigningKey, _ b: SigningKey, _ c: SigningKey, deadline: Height) async {
        // Memes and the social graph.
        let text = "the economy tour made it to the meme stage!"
        if let meme = await send(b, .memePost(Meme(contentHash: Blake2b.hash(Array(text.utf8)), content: text, tags: ["tour", "gm"]))).map(MemeID.init(createdBy:)) {
            await send(a, .memeReact(meme: meme, reaction: .fire))
            await send(c, .interact(target: b.publicKey, kind: .collaborate, meme: meme))
        }
        // Rule version 3: a heartbeat, an agent's endorsement, and a sealed message.
        if ((try? await client.getJSON("/v1/fees"))?["ruleVersion"] as? Int ?? 0) >= Int(RuleVersion.trust) {
            await send(b, .agentHeartbeat)
            await send(c, .endorse(subject: b.publicKey, delta: 1, reason: "arbitrated fairly"))
            if let box = try? SealedBox.seal(Array("the index is ready for review".utf8), to: a.publicKey) {
                await send(b, .messageSend(to: a.publicKey, sealed: box))
            }
            // A job the arbiter agent evaluates: it releases the milestone by attesting.
            let spec = Blake2b.hash(Array("tour: check the index".utf8)), result = Blake2b.hash(Array("index checked".utf8))
            if let job = await send(a, .jobPost(JobSpec(title: "tour: check the index", capabilities: ["compute"], milestones: [200],
                                                        deadline: deadline, evaluation: .named(c.publicKey, spec: spec)))).map(JobID.init(createdBy:)) {
                await send(b, .jobAccept(job))
                await send(a, .escrowFund(job))
                await send(b, .jobSubmit(job: job, milestone: 0, result: result))
                await send(c, .jobAttest(job: job, milestone: 0, result: result, spec: spec))
            }
        }
    }

    /// Validators: rewards, commission, an endorsement, stake, and a governance change.
    func validatorTour(endorsing b: SigningKey) async {
        let v = validators
        await send(v[1 % v.count], .claimRewards)
        await send(v[2 % v.count], .setCommission(bps: 750))
        await send(v[3 % v.count], .endorse(subject: b.publicKey, delta: 2, reason: "delivered on the tour"))
        await send(v[0], .bond(amount: 10))
        await send(v[0], .unbond(amount: 5))
        let change = GovernanceProposal(change: .parameter(name: "blockReward", value: 120), activateAt: Height(await height() + 30),
                                        description: "the tour votes a little more reward")
        if let p = await send(v[0], .govPropose(change)).map(ProposalID.init(createdBy:)) {
            for k in v.dropFirst() { await send(k, .govVote(proposal: p, approve: true)) }
        }
    }
}
