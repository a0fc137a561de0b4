import LedgerAgents
import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerProjections
import Testing

/// Each personality's judgement, and the rule that a personality only ever sees valid
/// blocks: it can withhold a prepare, never make an invalid block acceptable.
@Suite struct PersonalityTests {
    let f = Fixture()

    func block(proposer: PublicKey, meme: String, height: UInt64 = 1, salt: UInt64 = 0) -> ProposedBlock {
        ProposedBlock(header: BlockHeader(chainID: Fixture.chain.raw, height: Height(height), parentHash: .zero, view: 0,
                                          timestampMs: 1_000_000 + salt, proposer: proposer, eventCount: 0,
                                          eventsRoot: .zero, parentStateRoot: .zero, meme: Array(meme.utf8)), events: [], Sodium())
    }

    func proposal(_ b: ProposedBlock, judge: PublicKey, state: LedgerState? = nil) -> Proposal {
        Proposal(block: b, view: 0, events: [], parent: state ?? f.state(), judge: ValidatorID(judge))
    }

    @Test func lawfulAcceptsEveryValidBlock() {
        #expect(Lawful().judge(proposal(block(proposer: f.producer.publicKey, meme: ""), judge: f.alice.publicKey)).accept)
    }

    @Test func memeQualityAndTheMemeticThreshold() {
        #expect(MemeQuality.score([]) == 0)
        #expect(MemeQuality.score(Array("gm".utf8)) == 0)
        #expect(MemeQuality.score(Array("much byzantine, very tolerant, such finality?".utf8)) == 70)
        #expect(MemeQuality.score(Array("when the quorum hits two thirds plus one stake unit!".utf8)) == 90)
        let m = Memetic(threshold: 40)
        let lazy = m.judge(proposal(block(proposer: f.producer.publicKey, meme: "gm"), judge: f.alice.publicKey))
        #expect(!lazy.accept && lazy.reason == "meme quality 0 < 40")
        let witty = m.judge(proposal(block(proposer: f.producer.publicKey, meme: "validators hate this one weird checkpoint trick!"), judge: f.alice.publicKey))
        #expect(witty.accept)
    }

    /// The producer and alice are allied; bob is outside: alice favours the producer,
    /// bob refuses it as a rival, and a producer in no alliance is neutral to both.
    @Test func loyalFavoursAlliesAndRefusesRivals() throws {
        var s = f.state()
        var c = ctx(s, proposer: f.producer.publicKey)
        try s.beginBlock(c)
        let profile = { (n: String) in AgentProfile(name: n, capabilities: ["chat"], personality: "loyal", endpoint: "") }
        for (k, n) in [(f.alice, "alice"), (f.bob, "bob"), (f.carol, "carol")] {
            let e = f.event(k, 1, .agentRegister(profile(n)))
            try s.apply(e, id: EventCrypto.id(e.bytes), c)
        }
        let propose = f.event(f.alice, 2, .alliancePropose(AllianceProposal(targets: [f.carol.publicKey], purpose: "memes", terms: "share", durationMs: 20_000)))
        let proposeID = EventCrypto.id(propose.bytes), allianceID = AllianceID(createdBy: proposeID)
        try s.apply(propose, id: proposeID, c)
        c = ctx(s, proposer: f.producer.publicKey)
        try s.beginBlock(c)
        let accept = f.event(f.carol, 2, .allianceAccept(allianceID))
        try s.apply(accept, id: EventCrypto.id(accept.bytes), c)
        #expect(s.alliances[allianceID]?.status == .active)

        let loyal = Loyal()
        let byCarol = block(proposer: f.carol.publicKey, meme: "")
        #expect(loyal.judge(proposal(byCarol, judge: f.alice.publicKey, state: s)).accept, "alice is carol's ally")
        let rival = loyal.judge(proposal(byCarol, judge: f.bob.publicKey, state: s))
        #expect(!rival.accept && rival.reason.contains("rival"))
        let neutral = loyal.judge(proposal(block(proposer: f.producer.publicKey, meme: ""), judge: f.bob.publicKey, state: s))
        #expect(neutral.accept && neutral.reason.contains("neutral"))
    }

    @Test func chaoticRefusesItsShareReproducibly() {
        let chaotic = Chaotic(refuseBps: 2_500)
        var refusedByAlice = 0, disagreements = 0
        for salt in UInt64(0) ..< 2_000 {
            let b = block(proposer: f.producer.publicKey, meme: "", salt: salt)
            let a = chaotic.judge(proposal(b, judge: f.alice.publicKey))
            #expect(a == chaotic.judge(proposal(b, judge: f.alice.publicKey)), "same block, same judge, same verdict")
            if !a.accept { refusedByAlice += 1 }
            if a.accept != chaotic.judge(proposal(b, judge: f.bob.publicKey)).accept { disagreements += 1 }
        }
        #expect((400 ... 600).contains(refusedByAlice), "about a quarter refused: \(refusedByAlice) of 2000")
        #expect(disagreements > 400, "judges draw independently")
        #expect(Personalities.named("chaotic").name == "chaotic" && Personalities.named("nonsense").name == "lawful")
    }

    /// Chaotic dice refuse a height at most once. With one of four validators down the
    /// other three are exactly a quorum, so a refusal costs a view timeout; dice that say
    /// no every time (10,000 bps) would refuse the next primary's fresh proposal too and
    /// cost another view per refusal. Here r3 refuses h1 in view 0 and lets it through in
    /// view 1, where the cluster commits it.
    @Test func chaoticRefusesAHeightOnlyOnce() {
        #expect(Chaotic(refuseBps: 10_000).judge(Proposal(block: block(proposer: f.producer.publicKey, meme: ""), view: 1, events: [],
                                                            parent: f.state(), judge: ValidatorID(f.alice.publicKey), refusedBefore: true)).accept)
        var h = ScriptHarness()
        _ = h.run("cluster n=4")
        h.configs[3].personality = Chaotic(refuseBps: 10_000)
        h.replicas[3] = Replica(config: h.configs[3], state: h.genesisState, lastHash: h.genesisHash)
        _ = h.run("crash r2")
        var log = h.run("submit r0 1") + "\n" + h.run("stabilize")
        for _ in 0 ..< 4 where h.logs[0].isEmpty { log += "\n" + h.run("tick all 1000") + "\n" + h.run("stabilize") }
        #expect(log.contains("r3: note refused proposal h1 v0"), "\(log)")
        #expect(!log.contains("refused proposal h1 v1"), "\(log)")
        #expect(h.logs[0].first?.certified.block.height == 1 && h.logs[0].first?.certified.block.header.view == 1, "\(log)")
    }

    /// A personality is consulted only after a block proved valid: an invalid block is
    /// rejected with a typed reason and never judged, prepared or committed.
    @Test func personalitiesNeverSeeInvalidBlocks() {
        var h = ScriptHarness()
        _ = h.run("cluster n=4")
        let spy = SpyPersonality()
        h.configs[1].personality = spy
        h.replicas[1] = Replica(config: h.configs[1], state: h.genesisState, lastHash: h.genesisHash)
        // r0, the primary, proposes a block whose event carries a forged signature.
        var raw = EventCrypto.makeEvent(chain: h.chain, key: h.clients[0], nonce: 1, fee: 1,
                                        payload: .transfer(to: h.clients[1].publicKey, amount: 5, memo: "x")).bytes
        raw[raw.count - 1] ^= 0x01
        let id = EventCrypto.id(raw)
        let header = BlockHeader(chainID: h.chain.raw, height: 1, parentHash: h.genesisHash, view: 0, timestampMs: 1_000_000,
                                 proposer: h.key(0).publicKey, eventCount: 1, eventsRoot: EventCrypto.eventsRoot([id]),
                                 parentStateRoot: h.genesisState.stateRoot(), meme: [])
        let bad = ProposedBlock(header: header, events: [raw], Sodium())
        let pp = SignedConsensusMessage.sign(.prePrepare(view: 0, height: 1, blockHash: bad.hash), chain: h.chain.raw, signer: h.key(0))
        var r1 = h.replicas[1]!
        let out = r1.step(.message(from: h.key(0).publicKey, .prePrepare(pp, bad)))
        #expect(out.notes.contains(.rejectedProposal(1, .badSignature(index: 0))))
        #expect(!out.persist.contains { if case .vote = $0 { true } else { false } }, "no vote for an invalid block")
        #expect(spy.calls == 0)
        #expect(out.commits.isEmpty)
    }
}

final class SpyPersonality: Personality, @unchecked Sendable {
    var calls = 0
    var name: String { "spy" }
    func judge(_ p: Proposal) -> Judgement { calls += 1; return .accept("spy") }
}
