import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerProjections
import LedgerStore
import LedgerWorkload
import Testing

/// Table-driven fold tests: a setup of valid events, then one event, then the expected
/// error — and proof that the refused event changed nothing.
@Suite struct FoldTests {
    let f = Fixture()

    struct Step {
        var key: SigningKey
        var payload: Payload
        var fee: UInt64 = 2
        var nonce: UInt64? = nil
        var advanceMs: UInt64 = 1_000
    }

    /// Runs `setup` (each step in its own block), then returns the state and the error of `last`.
    func attempt(_ setup: [Step], _ last: Step) -> (before: LedgerState, after: LedgerState, error: ApplyError?) {
        var s = f.state()
        var nonces: [PublicKey: UInt64] = [:]
        func make(_ st: Step) -> Envelope {
            let n = st.nonce ?? ((nonces[st.key.publicKey] ?? 0) + 1)
            if case let .validatorRotateKey(r) = st.payload, r.oldKeySignature == .zero {
                // Placeholder rotation: sign it now that the nonce is known.
                let rot = EventCrypto.rotation(chain: Fixture.chain, validator: ValidatorID(st.key.publicKey), nonce: n, old: st.key, new: .derived("rotated"))
                return f.event(st.key, n, .validatorRotateKey(rot), fee: st.fee)
            }
            return f.event(st.key, n, st.payload, fee: st.fee)
        }
        for st in setup {
            let e = make(st)
            let c = ctx(s, proposer: f.producer.publicKey, plusMs: st.advanceMs)
            try! s.beginBlock(c)
            do { try s.apply(e, id: EventCrypto.id(e.bytes), c) } catch { Issue.record("setup step \(st.payload.kind) failed: \(error)") }
            nonces[st.key.publicKey] = e.nonce
        }
        let e = make(last)
        let c = ctx(s, proposer: f.producer.publicKey, plusMs: last.advanceMs)
        try! s.beginBlock(c)
        let before = s
        do { try s.apply(e, id: EventCrypto.id(e.bytes), c); return (before, s, nil) } catch { return (before, s, error) }
    }

    /// The id of `proposal()` made with nonce 2 (after Alice's agent registration).
    func allianceID(_ targets: [PublicKey]) -> AllianceID {
        AllianceID(createdBy: EventCrypto.id(f.event(f.alice, 2, .alliancePropose(AllianceProposal(targets: targets, purpose: "p", terms: "t",
                                                                                                   durationMs: 20_000))).bytes))
    }

    func registered() -> [Step] {
        [f.alice, f.bob, f.carol].map { Step(key: $0, payload: .agentRegister(AgentProfile(name: "n", capabilities: ["c"], personality: "lawful", endpoint: ""))) }
    }

    func proposal() -> Step {
        Step(key: f.alice, payload: .alliancePropose(AllianceProposal(targets: [f.bob.publicKey], purpose: "p", terms: "t", durationMs: 20_000)))
    }

    func aliceValidator() -> Step { Step(key: f.alice, payload: .validatorRegister(name: "a", personality: "x")) }

    /// Bob proves that Alice prepared two blocks at height 5, view 2.
    func aliceEquivocates() -> Step {
        Step(key: f.bob, payload: .evidence(first: prepare(f.alice, blockA), second: prepare(f.alice, blockB)))
    }

    @Test func everyRejectionRuleIsTypedAndChangesNothing() {
        let stranger = SigningKey.derived("stranger")
        let aid = allianceID([f.bob.publicKey])
        let aid2 = allianceID([f.bob.publicKey, f.carol.publicKey])
        let table: [(String, [Step], Step, ApplyError)] = [
            ("unknown author", [], Step(key: stranger, payload: .bond(amount: 1)), .unknownAuthor(stranger.publicKey)),
            ("stale nonce", [Step(key: f.alice, payload: .transfer(to: f.bob.publicKey, amount: 1, memo: ""))],
             Step(key: f.alice, payload: .transfer(to: f.bob.publicKey, amount: 1, memo: ""), nonce: 1), .staleNonce(expected: 2, got: 1)),
            ("future nonce", [], Step(key: f.alice, payload: .transfer(to: f.bob.publicKey, amount: 1, memo: ""), nonce: 3),
             .futureNonce(expected: 1, got: 3)),
            ("fee too low", [], Step(key: f.alice, payload: .transfer(to: f.bob.publicKey, amount: 1, memo: ""), fee: 1), .feeTooLow(minimum: 2, offered: 1)),
            ("insufficient balance", [], Step(key: f.alice, payload: .transfer(to: f.bob.publicKey, amount: 999_999, memo: "")),
             .insufficientBalance(needed: 1_000_001, available: 1_000_000)),
            ("fee alone exceeds balance", [], Step(key: f.alice, payload: .agentRegister(AgentProfile(name: "a", capabilities: [], personality: "", endpoint: "")), fee: 2_000_000),
             .insufficientBalance(needed: 2_000_000, available: 1_000_000)),
            ("fee exceeds balance", [], Step(key: f.alice, payload: .transfer(to: f.bob.publicKey, amount: 1, memo: ""), fee: 2_000_000),
             .insufficientBalance(needed: 2_000_001, available: 1_000_000)),
            ("zero transfer", [], Step(key: f.alice, payload: .transfer(to: f.bob.publicKey, amount: 0, memo: "")), .zeroAmount),
            ("bond by non-validator", [], Step(key: f.alice, payload: .bond(amount: 5)), .unknownValidator(f.alice.publicKey)),
            ("unbond more than bonded", [Step(key: f.alice, payload: .validatorRegister(name: "a", personality: "lawful")),
                                         Step(key: f.alice, payload: .bond(amount: 10))],
             Step(key: f.alice, payload: .unbond(amount: 11)), .insufficientStake(bonded: 10, requested: 11)),
            ("delegate to unknown validator", [], Step(key: f.alice, payload: .delegate(validator: ValidatorID(f.bob.publicKey), amount: 1)),
             .unknownValidator(f.bob.publicKey)),
            ("undelegate more than delegated", [Step(key: f.bob, payload: .delegate(validator: ValidatorID(f.producer.publicKey), amount: 5))],
             Step(key: f.bob, payload: .undelegate(validator: ValidatorID(f.producer.publicKey), amount: 6)), .insufficientStake(bonded: 5, requested: 6)),
            ("validator registers twice", [Step(key: f.alice, payload: .validatorRegister(name: "a", personality: "x"))],
             Step(key: f.alice, payload: .validatorRegister(name: "a", personality: "x")), .alreadyRegistered("validator \(f.alice.publicKey.short)")),
            ("retired validator cannot bond", [Step(key: f.alice, payload: .validatorRegister(name: "a", personality: "x")),
                                               Step(key: f.alice, payload: .validatorRetire)],
             Step(key: f.alice, payload: .bond(amount: 1)), .validatorRetired(ValidatorID(f.alice.publicKey))),
            ("rotation naming the wrong old key", [Step(key: f.alice, payload: .validatorRegister(name: "a", personality: "x"))],
             Step(key: f.alice, payload: .validatorRotateKey(EventCrypto.rotation(chain: Fixture.chain, validator: ValidatorID(f.alice.publicKey), nonce: 2, old: f.bob, new: .derived("n")))),
             .wrongOldKey),
            ("rotation not signed by the new key", [Step(key: f.alice, payload: .validatorRegister(name: "a", personality: "x"))],
             Step(key: f.alice, payload: .validatorRotateKey({
                 var r = EventCrypto.rotation(chain: Fixture.chain, validator: ValidatorID(f.alice.publicKey), nonce: 2, old: f.alice, new: .derived("n"))
                 r.newKeySignature = r.oldKeySignature
                 return r
             }())), .badRotationSignature),
            ("rotation to a key in use", [Step(key: f.alice, payload: .validatorRegister(name: "a", personality: "x"))],
             Step(key: f.alice, payload: .validatorRotateKey(EventCrypto.rotation(chain: Fixture.chain, validator: ValidatorID(f.alice.publicKey), nonce: 2, old: f.alice, new: f.producer))),
             .keyInUse(f.producer.publicKey)),
            ("rotation replayed with another nonce", [Step(key: f.alice, payload: .validatorRegister(name: "a", personality: "x")),
                                                      Step(key: f.alice, payload: .transfer(to: f.bob.publicKey, amount: 1, memo: ""))],
             Step(key: f.alice, payload: .validatorRotateKey(EventCrypto.rotation(chain: Fixture.chain, validator: ValidatorID(f.alice.publicKey), nonce: 2, old: f.alice, new: .derived("n")))),
             .badRotationSignature),
            ("agent registers twice", registered(), Step(key: f.alice, payload: .agentRegister(AgentProfile(name: "n", capabilities: [], personality: "", endpoint: ""))),
             .alreadyRegistered("agent \(f.alice.publicKey.short)")),
            ("update by unregistered agent", [], Step(key: f.dave, payload: .agentUpdate(AgentProfile(name: "n", capabilities: [], personality: "", endpoint: ""))),
             .notRegistered("agent \(f.dave.publicKey.short)")),
            ("duplicate capability", [], Step(key: f.dave, payload: .agentRegister(AgentProfile(name: "n", capabilities: ["a", "a"], personality: "", endpoint: ""))),
             .invalidProfile("a capability appears twice")),
            ("alliance by a non-participant", [], Step(key: f.dave, payload: .alliancePropose(AllianceProposal(targets: [f.producer.publicKey], purpose: "", terms: "", durationMs: 1))),
             .notRegistered("agent or validator \(f.dave.publicKey.short)")),
            ("alliance with self as target", registered(), Step(key: f.alice, payload: .alliancePropose(AllianceProposal(targets: [f.alice.publicKey], purpose: "", terms: "", durationMs: 1))),
             .invalidAlliance("the proposer cannot be a target")),
            ("alliance too long", registered(), Step(key: f.alice, payload: .alliancePropose(AllianceProposal(targets: [f.bob.publicKey], purpose: "", terms: "", durationMs: 50_001))),
             .invalidAlliance("duration must be 1...50000 ms")),
            ("accepted by someone it was not offered to", registered() + [proposal()], Step(key: f.carol, payload: .allianceAccept(aid)), .notOffered(aid)),
            ("accepting an expired proposal", registered() + [proposal()], Step(key: f.bob, payload: .allianceAccept(aid), advanceMs: 10_000), .allianceExpired(aid)),
            ("accepting twice", registered() + [Step(key: f.alice, payload: .alliancePropose(AllianceProposal(targets: [f.bob.publicKey, f.carol.publicKey], purpose: "p", terms: "t", durationMs: 20_000))),
                                                Step(key: f.bob, payload: .allianceAccept(aid2))],
             Step(key: f.bob, payload: .allianceAccept(aid2)), .alreadyAccepted(aid2)),
            ("accepting a rejected proposal", registered() + [proposal(), Step(key: f.bob, payload: .allianceReject(aid))],
             Step(key: f.bob, payload: .allianceAccept(aid)), .allianceNotPending(aid, .rejected)),
            ("dissolving a pending alliance", registered() + [proposal()], Step(key: f.alice, payload: .allianceDissolve(aid)), .allianceNotActive(aid, .pending)),
            ("dissolve by a non-member", registered() + [proposal(), Step(key: f.bob, payload: .allianceAccept(aid))],
             Step(key: f.carol, payload: .allianceDissolve(aid)), .notMember(aid)),
            ("unknown alliance", registered(), Step(key: f.bob, payload: .allianceAccept(.zero)), .unknownAlliance(.zero)),
            ("unjail by an active validator", [aliceValidator()], Step(key: f.alice, payload: .validatorUnjail), .notJailed),
            ("unjail by a non-validator", [], Step(key: f.dave, payload: .validatorUnjail), .notJailed),
            // Jailed in block 2 for the default 100 blocks.
            ("unjail before the term is served", [aliceValidator(), aliceEquivocates()], Step(key: f.alice, payload: .validatorUnjail),
             .stillJailed(until: 102)),
            ("a jailed validator retires", [aliceValidator(), aliceEquivocates()], Step(key: f.alice, payload: .validatorRetire),
             .validatorJailed(ValidatorID(f.alice.publicKey))),
            ("delegating to a jailed validator", [aliceValidator(), aliceEquivocates()],
             Step(key: f.bob, payload: .delegate(validator: ValidatorID(f.alice.publicKey), amount: 1)), .validatorJailed(ValidatorID(f.alice.publicKey))),
            ("evidence that is no equivocation", [aliceValidator()],
             Step(key: f.bob, payload: .evidence(first: prepare(f.alice, blockA), second: prepare(f.alice, blockA))),
             .invalidEvidence("the two messages are identical")),
            ("evidence of an offence already punished", [aliceValidator(), aliceEquivocates()],
             Step(key: f.carol, payload: .evidence(first: prepare(f.alice, blockB), second: prepare(f.alice, blockA))), .duplicateEvidence),
            ("evidence against a key of no validator", [],
             Step(key: f.bob, payload: .evidence(first: prepare(stranger, blockA), second: prepare(stranger, blockB))),
             .unknownValidator(stranger.publicKey)),
            ("opinion by a non-validator", [], Step(key: f.bob, payload: .opinion(Opinion(height: 1, view: 0, blockHash: blockA, verdict: .accept, reason: ""))),
             .unknownValidator(f.bob.publicKey)),
            ("opinion on a block not yet made", [aliceValidator()],
             Step(key: f.alice, payload: .opinion(Opinion(height: 3, view: 0, blockHash: blockA, verdict: .refuse, reason: "future"))),
             .invalidOpinion("height 3 is after the current block 2")),
        ]
        for (name, setup, last, expected) in table {
            let (before, after, error) = attempt(setup, last)
            #expect(error == expected, "\(name)")
            #expect(before == after, "\(name): a refused event changed the state")
            #expect(before.stateRoot() == after.stateRoot(), "\(name)")
        }
    }

    @Test func wrongChainIsRefused() {
        var s = f.state()
        let c = ctx(s, proposer: f.producer.publicKey)
        try! s.beginBlock(c)
        let e = EventCrypto.makeEvent(chain: try! ChainID("elsewhere"), key: f.alice, nonce: 1, fee: 2, payload: .bond(amount: 1))
        let before = s
        #expect(throws: ApplyError.wrongChain) { try s.apply(e, id: EventCrypto.id(e.bytes), c) }
        #expect(s == before)
    }

    @Test func effectsOfValidEvents() throws {
        var s = f.state()
        var nonce: [PublicKey: UInt64] = [:]
        func apply(_ k: SigningKey, _ p: Payload, plusMs: UInt64 = 1_000) throws {
            let n = (nonce[k.publicKey] ?? 0) + 1
            let e = f.event(k, n, p)
            let c = ctx(s, proposer: f.producer.publicKey, plusMs: plusMs)
            try s.beginBlock(c)
            try s.apply(e, id: EventCrypto.id(e.bytes), c)
            nonce[k.publicKey] = n
        }
        try apply(f.alice, .transfer(to: f.bob.publicKey, amount: 100, memo: "hi"))
        #expect(s.accounts[f.alice.publicKey]!.balance == 1_000_000 - 102)
        #expect(s.accounts[f.bob.publicKey]!.balance == 1_000_100)
        #expect(s.accounts[f.producer.publicKey]!.balance == 2, "the fee goes to the proposer's account")
        try apply(f.carol, .validatorRegister(name: "carol", personality: "memetic"))
        #expect(s.votingPower()[f.carol.publicKey] == nil, "no power below the minimum stake")
        try apply(f.carol, .bond(amount: 150))
        #expect(s.votingPower()[f.carol.publicKey] == 150)
        try apply(f.bob, .delegate(validator: ValidatorID(f.carol.publicKey), amount: 50))
        #expect(s.votingPower()[f.carol.publicKey] == 200)
        try apply(f.bob, .undelegate(validator: ValidatorID(f.carol.publicKey), amount: 50))
        #expect(s.unbonding.count == 1)
        let bobBefore = s.accounts[f.bob.publicKey]!.balance
        // Unbonding releases after `unbondingBlocks` (3) blocks.
        try apply(f.alice, .transfer(to: f.dave.publicKey, amount: 1, memo: ""))
        try apply(f.alice, .transfer(to: f.dave.publicKey, amount: 1, memo: ""))
        #expect(s.accounts[f.bob.publicKey]!.balance == bobBefore)
        try apply(f.alice, .transfer(to: f.dave.publicKey, amount: 1, memo: ""))
        #expect(s.accounts[f.bob.publicKey]!.balance == bobBefore + 50)
        #expect(s.unbonding.isEmpty)
        // Rotation: the new key carries the power from the next block on.
        try apply(f.carol, .validatorRotateKey(EventCrypto.rotation(chain: Fixture.chain, validator: ValidatorID(f.carol.publicKey), nonce: 3, old: f.carol, new: .derived("carol-2"))))
        #expect(s.votingPower()[SigningKey.derived("carol-2").publicKey] == 150)
        #expect(s.votingPower()[f.carol.publicKey] == nil)
        #expect(s.validators[ValidatorID(f.carol.publicKey)]!.keyHistory.map(\.key) == [f.carol.publicKey, SigningKey.derived("carol-2").publicKey])
        // Alliance lifecycle: propose, accept (active), expire by time.
        for k in [f.alice, f.bob] { try apply(k, .agentRegister(AgentProfile(name: "x", capabilities: [], personality: "loyal", endpoint: ""))) }
        try apply(f.alice, .alliancePropose(AllianceProposal(targets: [f.bob.publicKey], purpose: "p", terms: "t", durationMs: 5_000)))
        let id = s.alliances.keys.first!
        try apply(f.bob, .allianceAccept(id))
        #expect(s.alliances[id]!.status == .active)
        try apply(f.alice, .transfer(to: f.dave.publicKey, amount: 1, memo: ""), plusMs: 5_000)
        #expect(s.alliances[id]!.status == .expired)
        #expect(s.computedSupply() == s.totalSupply)
    }

    @Test func conservationOverRandomWorkloads() async throws {
        // Property: whatever a random workload does (valid or refused), supply is conserved.
        for seed in 1 ... 5 as ClosedRange<UInt64> {
            let log = LedgerLog.memory()
            let s = try DemoWorkload(seed: seed, agents: 8, events: 400).run(into: log)
            let (state, _) = try StateLoader.load(log, useCheckpoints: false)
            #expect(state.computedSupply() == state.totalSupply, "seed \(seed)")
            #expect(s.invalidAdmitted == 0)
            #expect(s.validRefused == 0, "seed \(seed): \(s.refusals)")
        }
    }
}
