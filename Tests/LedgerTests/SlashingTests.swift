import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerProjections
import LedgerStore
import LedgerWorkload
import Testing

/// Evidence, slashing, jailing, epochs and opinions (issue 3, part 2). The fixture's
/// epochs are 4 blocks long (checkpointInterval 4: epochs start at 1, 5, 9, 13, …).
@Suite struct SlashingTests {
    static func fixture(jailBlocks: UInt64 = 5, slashFractionBps: UInt32 = 1_000) -> Fixture {
        var f = Fixture()
        f.params.jailBlocks = jailBlocks
        f.params.slashFractionBps = slashFractionBps
        return f
    }

    /// Drives a state one block per event, keeping each author's nonce.
    struct Chain {
        let f: Fixture
        var s: LedgerState
        var nonces: [PublicKey: UInt64] = [:]
        init(_ f: Fixture) { self.f = f; s = f.state() }

        /// Starts the next block, 1 s after the last.
        @discardableResult
        mutating func begin() -> BlockContext {
            let c = ctx(s, proposer: f.producer.publicKey)
            try! s.beginBlock(c)
            return c
        }

        /// Starts empty blocks until the state is at height `h`.
        mutating func advance(to h: UInt64) { while s.height.value < h { begin() } }

        func nextNonce(_ k: SigningKey) -> UInt64 { (nonces[k.publicKey] ?? 0) + 1 }

        /// Applies one event in a new block; a refusal is a test failure.
        @discardableResult
        mutating func apply(_ k: SigningKey, _ p: Payload, sourceLocation: SourceLocation = #_sourceLocation) -> EventID {
            let e = f.event(k, nextNonce(k), p)
            let c = begin()
            let id = EventCrypto.id(e.bytes)
            do { try s.apply(e, id: id, c); nonces[k.publicKey] = e.nonce } catch {
                Issue.record("\(p.kind) refused: \(error)", sourceLocation: sourceLocation)
            }
            return id
        }

        /// Tries one event in a new block. Returns its error, after checking that the
        /// refusal left the whole state as it was.
        mutating func attempt(_ k: SigningKey, _ p: Payload, sourceLocation: SourceLocation = #_sourceLocation) -> ApplyError? {
            let e = f.event(k, nextNonce(k), p)
            let c = begin()
            let before = s
            do {
                try s.apply(e, id: EventCrypto.id(e.bytes), c)
                nonces[k.publicKey] = e.nonce
                return nil
            } catch {
                #expect(s == before, "a refused \(p.kind) changed the state", sourceLocation: sourceLocation)
                #expect(s.stateRoot() == before.stateRoot(), sourceLocation: sourceLocation)
                return error
            }
        }
    }

    /// Alice registers (block 1) and bonds 1,234 (block 2); the state is then at block 5,
    /// the first of the epoch in which she holds power.
    static func validatorChain(_ f: Fixture = fixture()) -> Chain {
        var c = Chain(f)
        c.apply(f.alice, .validatorRegister(name: "alice", personality: "chaotic"))
        c.apply(f.alice, .bond(amount: 1_234))
        c.advance(to: 4)
        c.begin()
        return c
    }

    static func evidence(_ a: [UInt8], _ b: [UInt8]) -> Payload { .evidence(first: a, second: b) }

    /// A certificate for block `height` with hash `hash`, signed by `keys`.
    static func certificate(_ height: UInt64, _ hash: Hash32, _ keys: [SigningKey]) -> CommitCertificate {
        CommitCertificate(height: Height(height), view: 0, blockHash: hash, votes: keys.map {
            EventCrypto.signCommit(chain: Fixture.chain.raw, height: Height(height), view: 0, blockHash: hash, key: $0)
        })
    }

    // MARK: - Slashing

    @Test func validEvidenceSlashesJailsBurnsAndCountsFromTheNextEpoch() {
        let f = Self.fixture()
        var c = Self.validatorChain(f)
        let alice = f.alice.publicKey
        #expect(c.s.epochPower[alice] == 1_234)
        let supply = c.s.totalSupply
        let bobBalance = c.s.accounts[f.bob.publicKey]!.balance
        let id = c.apply(f.bob, Self.evidence(prepare(f.alice, blockA), prepare(f.alice, blockB)))  // block 6
        let v = c.s.validators[ValidatorID(alice)]!
        // 1,234 × 1,000 / 10,000 = 123.4: the amount is rounded down.
        #expect(c.s.slashes == [SlashRecord(validator: ValidatorID(alice), offenceHeight: 5, offenceView: 2, stakeBefore: 1_234, amount: 123,
                                            evidence: id, slashedAt: 6)])
        #expect(v.selfStake == 1_111)
        #expect(v.status == .jailed)
        #expect(v.jailedUntil == 11)
        #expect(c.s.offences == [OffenceKey(validator: ValidatorID(alice), height: 5, view: 2, kind: 2)])
        #expect(c.s.totalSupply == supply - 123, "the slashed stake is burned")
        #expect(c.s.burned == 123)
        #expect(c.s.computedSupply() == c.s.totalSupply)
        #expect(c.s.accounts[f.bob.publicKey]!.balance == bobBalance - 2, "the reporter pays the fee")
        // Power: the jailed validator has none of its own any more, but the epoch's
        // power is fixed: it still certifies until the epoch ends with block 8.
        #expect(c.s.votingPower()[alice] == nil)
        #expect(c.s.powerForNextBlock()[alice] == 1_234)
        c.advance(to: 7)
        #expect(c.s.powerForNextBlock()[alice] == 1_234)
        c.advance(to: 8)
        #expect(c.s.powerForNextBlock()[alice] == nil)
        #expect(c.s.powerForNextBlock() == [f.producer.publicKey: 1_000_000_000])
        c.begin()
        #expect(c.s.epochPower == [f.producer.publicKey: 1_000_000_000])
    }

    @Test func checkpointEquivocationAndRepeatedOffences() {
        let f = Self.fixture()
        var c = Self.validatorChain(f)
        let alice = f.alice.publicKey
        let root1 = Blake2b.hash([1]), root2 = Blake2b.hash([2])
        // Two checkpoints for one height: same block, different state roots. View 0.
        let cp1 = vote(f.alice, .checkpoint(height: 4, blockHash: blockA, stateRoot: root1))
        let cp2 = vote(f.alice, .checkpoint(height: 4, blockHash: blockA, stateRoot: root2))
        let first = c.apply(f.bob, Self.evidence(cp1, cp2))  // block 6: jailed until 11
        #expect(c.s.slashes.last == SlashRecord(validator: ValidatorID(alice), offenceHeight: 4, offenceView: 0, stakeBefore: 1_234, amount: 123,
                                                evidence: first, slashedAt: 6))
        #expect(c.s.validators[ValidatorID(alice)]!.jailedUntil == 11)
        // A new offence by the jailed validator is punished again; its term extends.
        c.advance(to: 8)
        let second = c.apply(f.carol, Self.evidence(vote(f.alice, .commit(view: 0, height: 6, blockHash: blockA)),
                                                    vote(f.alice, .commit(view: 0, height: 6, blockHash: blockB))))  // block 9
        #expect(c.s.slashes == [
            SlashRecord(validator: ValidatorID(alice), offenceHeight: 4, offenceView: 0, stakeBefore: 1_234, amount: 123, evidence: first, slashedAt: 6),
            SlashRecord(validator: ValidatorID(alice), offenceHeight: 6, offenceView: 0, stakeBefore: 1_111, amount: 111, evidence: second, slashedAt: 9),
        ])
        #expect(c.s.validators[ValidatorID(alice)]!.selfStake == 1_000)
        #expect(c.s.validators[ValidatorID(alice)]!.jailedUntil == 14)
        #expect(c.s.burned == 234)
        #expect(c.s.offences == [OffenceKey(validator: ValidatorID(alice), height: 4, view: 0, kind: 4), OffenceKey(validator: ValidatorID(alice), height: 6, view: 0, kind: 3)])
        #expect(c.s.computedSupply() == c.s.totalSupply)
    }

    @Test(arguments: [(UInt32(0), UInt64(0)), (1, 0), (9, 1), (1_000, 123), (5_000, 617), (10_000, 1_234)])
    func theSlashedShareFollowsTheParameter(_ x: (bps: UInt32, amount: UInt64)) {
        let f = Self.fixture(slashFractionBps: x.bps)
        var c = Self.validatorChain(f)
        c.apply(f.bob, Self.evidence(prepare(f.alice, blockA), prepare(f.alice, blockB)))
        #expect(c.s.slashes.map(\.amount) == [x.amount])
        #expect(c.s.validators[ValidatorID(f.alice.publicKey)]!.selfStake == 1_234 - x.amount)
        #expect(c.s.validators[ValidatorID(f.alice.publicKey)]!.status == .jailed, "jailed even when nothing is taken")
        #expect(c.s.computedSupply() == c.s.totalSupply)
    }

    @Test func slashingAHugeStakeUses128BitArithmetic() throws {
        // stake × 1,000 overflows 64 bits; the amount must still be exactly stake / 10.
        let f = Fixture()
        let stake = UInt64.max - 1_000_000
        let g = try Genesis(chainID: Fixture.chain, timestampMs: 0, parameters: f.params,
                            validators: [.init(key: f.producer.publicKey, name: "whale", personality: "", stake: stake)],
                            allocations: [.init(account: f.bob.publicKey, amount: 1_000_000)], ruleVersion: RuleVersion.legacy)
        var s = LedgerState(genesis: g, genesisHash: Blake2b.hash(g.encoded()), crypto: Sodium())
        let c = ctx(s, proposer: f.producer.publicKey)
        try s.beginBlock(c)
        let e = f.event(f.bob, 1, Self.evidence(prepare(f.producer, blockA), prepare(f.producer, blockB)))
        try s.apply(e, id: EventCrypto.id(e.bytes), c)
        #expect(s.slashes.first?.amount == stake / 10)
        #expect(s.validators[ValidatorID(f.producer.publicKey)]!.selfStake == stake - stake / 10)
        #expect(s.computedSupply() == s.totalSupply)
    }

    @Test func refusedEvidenceIsTypedAndChangesNothing() throws {
        let f = Self.fixture()
        let a = f.alice, stranger = SigningKey.derived("stranger")
        func forged(_ block: Hash32) -> [UInt8] {
            let m = SignedConsensusMessage.sign(.prepare(view: 2, height: 5, blockHash: block), chain: Fixture.chain.raw, key: a)
            var sig = m.signature.bytes
            sig[10] ^= 1
            return SignedConsensusMessage(message: m.message, signer: m.signer, signature: Signature(sig)).encoded()
        }
        let other = try ChainID("another-chain")
        let table: [(String, [UInt8], [UInt8], ApplyError)] = [
            ("one signature flipped", prepare(a, blockA), forged(blockB), .invalidEvidence("a signature does not verify")),
            ("the same vote twice", prepare(a, blockA), prepare(a, blockA), .invalidEvidence("the two messages are identical")),
            ("the same block, one signature forged", prepare(a, blockA), forged(blockA), .invalidEvidence("both messages sign the same block")),
            ("a prepare and a commit of one block", prepare(a, blockA), vote(a, .commit(view: 2, height: 5, blockHash: blockA)),
             .invalidEvidence("the messages are of different kinds")),
            ("different heights", prepare(a, height: 5, blockA), prepare(a, height: 6, blockB), .invalidEvidence("the messages are for different heights")),
            ("different views", prepare(a, view: 2, blockA), prepare(a, view: 3, blockB), .invalidEvidence("the messages are for different views")),
            ("two different signers", prepare(a, blockA), prepare(f.bob, blockB), .invalidEvidence("the messages have different signers")),
            ("votes signed for another chain", vote(a, .prepare(view: 2, height: 5, blockHash: blockA), chain: other),
             vote(a, .prepare(view: 2, height: 5, blockHash: blockB), chain: other), .invalidEvidence("a signature does not verify")),
            ("a truncated first vote", [0, 1], prepare(a, blockB),
             .invalidEvidence("first message: \(DecodeError.truncated(field: "consensus.kind", needed: 1, available: 0))")),
            ("a second vote with a trailing byte", prepare(a, blockA), prepare(a, blockB) + [0],
             .invalidEvidence("second message: \(DecodeError.trailingBytes(count: 1))")),
            ("an unknown signer", prepare(stranger, blockA), prepare(stranger, blockB), .unknownValidator(stranger.publicKey)),
            ("a vote over the size limit", [UInt8](repeating: 0, count: Limits.consensusMessageBytesMax + 1), prepare(a, blockB),
             .malformedPayload(.tooLong(field: "evidence.first", length: 257, max: 256))),
        ]
        for (name, first, second, expected) in table {
            var c = Self.validatorChain(f)
            let error = c.attempt(f.bob, Self.evidence(first, second))
            #expect(error == expected, "\(name)")
            #expect(c.s.slashes.isEmpty && c.s.validators[ValidatorID(a.publicKey)]!.status == .active, "\(name)")
        }
    }

    @Test func anOffenceIsPunishedOnce() {
        let f = Self.fixture()
        var c = Self.validatorChain(f)
        c.apply(f.bob, Self.evidence(prepare(f.alice, blockA), prepare(f.alice, blockB)))
        #expect(c.attempt(f.carol, Self.evidence(prepare(f.alice, blockA), prepare(f.alice, blockB))) == .duplicateEvidence)
        #expect(c.attempt(f.carol, Self.evidence(prepare(f.alice, blockB), prepare(f.alice, blockA))) == .duplicateEvidence, "swapped")
        #expect(c.attempt(f.carol, Self.evidence(prepare(f.alice, blockA), prepare(f.alice, blockC))) == .duplicateEvidence,
                "another pair proving the same offence")
        #expect(c.s.slashes.count == 1)
        // The same height and view in another role is another offence.
        #expect(c.attempt(f.carol, Self.evidence(vote(f.alice, .commit(view: 2, height: 5, blockHash: blockA)),
                                                 vote(f.alice, .commit(view: 2, height: 5, blockHash: blockB)))) == nil)
        #expect(c.s.slashes.count == 2)
    }

    @Test func aRetiredValidatorIsSlashedButStaysRetired() {
        let f = Self.fixture()
        var c = Self.validatorChain(f)
        c.apply(f.alice, .validatorRetire)  // block 6
        c.apply(f.bob, Self.evidence(prepare(f.alice, blockA), prepare(f.alice, blockB)))  // block 7
        let v = c.s.validators[ValidatorID(f.alice.publicKey)]!
        #expect(v.status == .retired)
        #expect(v.selfStake == 1_111)
        #expect(v.jailedUntil == 12)
        #expect(c.attempt(f.alice, .validatorUnjail) == .notJailed, "retirement is final")
    }

    @Test func anEquivocationSignedWithARotatedAwayKeyIsStillTheValidators() {
        let f = Self.fixture()
        var c = Self.validatorChain(f)
        let next = SigningKey.derived("alice-2")
        c.apply(f.alice, .validatorRotateKey(EventCrypto.rotation(chain: Fixture.chain, validator: ValidatorID(f.alice.publicKey),
                                                                  nonce: c.nextNonce(f.alice), old: f.alice, new: next)))
        c.apply(f.bob, Self.evidence(prepare(f.alice, blockA), prepare(f.alice, blockB)))
        #expect(c.s.slashes.map(\.validator.raw) == [f.alice.publicKey], "every key a validator ever used maps to it")
        c.apply(f.bob, Self.evidence(prepare(next, view: 3, blockA), prepare(next, view: 3, blockB)))
        #expect(c.s.slashes.map(\.validator.raw) == [f.alice.publicKey, f.alice.publicKey])
    }

    // MARK: - Jail

    @Test func unjailingWaitsForTheTermAndPowerReturnsAtTheNextEpoch() {
        let f = Self.fixture()
        var c = Self.validatorChain(f)  // block 5
        let alice = f.alice.publicKey
        #expect(c.attempt(f.alice, .validatorUnjail) == .notJailed)  // block 6: active
        #expect(c.attempt(f.carol, .validatorUnjail) == .notJailed)  // block 7: not a validator
        c.apply(f.bob, Self.evidence(prepare(f.alice, blockA), prepare(f.alice, blockB)))  // block 8
        #expect(c.s.validators[ValidatorID(alice)]!.jailedUntil == 13)
        #expect(c.attempt(f.alice, .validatorUnjail) == .stillJailed(until: 13))  // block 9
        #expect(c.attempt(f.alice, .validatorRetire) == .validatorJailed(ValidatorID(alice)))  // block 10
        #expect(c.attempt(f.bob, .delegate(validator: ValidatorID(alice), amount: 10)) == .validatorJailed(ValidatorID(alice)))  // block 11
        #expect(c.attempt(f.alice, .bond(amount: 10)) == nil, "a jailed validator may restore its stake")  // block 12
        #expect(c.attempt(f.alice, .validatorUnjail) == nil)  // block 13 = jailedUntil
        #expect(c.s.validators[ValidatorID(alice)]!.status == .active)
        #expect(c.s.votingPower()[alice] == 1_121)
        // Block 13 started an epoch while Alice was still jailed: she certifies from block 17.
        #expect(c.s.epochPower[alice] == nil)
        #expect(c.s.powerForNextBlock()[alice] == nil)
        c.advance(to: 16)
        #expect(c.s.powerForNextBlock()[alice] == 1_121)
    }

    @Test func anUnjailedValidatorBelowTheMinimumStakeHoldsNoPower() {
        let f = Self.fixture(jailBlocks: 0, slashFractionBps: 10_000)
        var c = Self.validatorChain(f)
        c.apply(f.bob, Self.evidence(prepare(f.alice, blockA), prepare(f.alice, blockB)))
        #expect(c.s.validators[ValidatorID(f.alice.publicKey)]!.selfStake == 0)
        c.apply(f.alice, .validatorUnjail)
        #expect(c.s.validators[ValidatorID(f.alice.publicKey)]!.status == .active)
        #expect(c.s.votingPower()[f.alice.publicKey] == nil)
        c.apply(f.alice, .bond(amount: 100))
        #expect(c.s.votingPower()[f.alice.publicKey] == 100)
    }

    // MARK: - Opinions

    @Test func opinionsAreCountedPerValidator() {
        let f = Self.fixture()
        var c = Chain(f)
        let alice = f.alice.publicKey
        func opinion(_ h: UInt64, _ v: Verdict) -> Payload {
            .opinion(Opinion(height: Height(h), view: 0, blockHash: blockA, verdict: v, reason: v == .accept ? "" : "too few memes"))
        }
        #expect(c.attempt(f.alice, opinion(1, .accept)) == .unknownValidator(alice))  // block 1
        c.apply(f.alice, .validatorRegister(name: "alice", personality: "opinionated"))  // block 2
        c.apply(f.alice, opinion(3, .accept))  // block 3: the current block
        c.apply(f.alice, opinion(1, .refuse))
        c.apply(f.alice, opinion(2, .accept))
        #expect(c.s.opinionCounts == [ValidatorID(alice): OpinionCount(accepted: 2, refused: 1)])
        #expect(c.attempt(f.alice, opinion(8, .accept)) == .invalidOpinion("height 8 is after the current block 6"))
        #expect(c.attempt(f.alice, opinion(0, .accept)) == .invalidOpinion("there is no block at height 0"))
        // Any status: a retired validator still has opinions.
        c.apply(f.alice, .validatorRetire)
        c.apply(f.alice, opinion(2, .refuse))
        #expect(c.s.opinionCounts[ValidatorID(alice)] == OpinionCount(accepted: 2, refused: 2))
        #expect(c.s.computedSupply() == c.s.totalSupply)
    }

    @Test func opinionAndEvidenceDecodingIsBounded() throws {
        func opinionBytes(verdict: UInt8, reason: Int) -> [UInt8] {
            var w = ByteWriter()
            w.u64(1); w.u64(0); w.b32(blockA); w.u8(verdict); w.string(String(repeating: "r", count: reason))
            return w.bytes
        }
        #expect(try Payload.decode(kind: .opinion, opinionBytes(verdict: 2, reason: Limits.reasonBytesMax)[...])
            == .opinion(Opinion(height: 1, view: 0, blockHash: blockA, verdict: .refuse, reason: String(repeating: "r", count: 256))))
        #expect(throws: DecodeError.invalidValue(field: "opinion.verdict", reason: "unknown verdict 3")) {
            try Payload.decode(kind: .opinion, opinionBytes(verdict: 3, reason: 0)[...])
        }
        #expect(throws: DecodeError.invalidValue(field: "opinion.verdict", reason: "unknown verdict 0")) {
            try Payload.decode(kind: .opinion, opinionBytes(verdict: 0, reason: 0)[...])
        }
        #expect(throws: DecodeError.tooLong(field: "opinion.reason", length: 257, max: 256)) {
            try Payload.decode(kind: .opinion, opinionBytes(verdict: 1, reason: 257)[...])
        }
        #expect(throws: DecodeError.trailingBytes(count: 1)) { try Payload.decode(kind: .validatorUnjail, [7][...]) }
        var w = ByteWriter()
        w.blob16([1, 2]); w.u16(3); w.raw([1, 2])
        #expect(throws: DecodeError.truncated(field: "evidence.second", needed: 3, available: 2)) { try Payload.decode(kind: .evidence, w.bytes[...]) }
        // Through the fold, an unknown verdict is a malformed payload and changes nothing.
        let f = Self.fixture()
        var s = f.state()
        let c = ctx(s, proposer: f.producer.publicKey)
        try s.beginBlock(c)
        var unsigned = Array(f.event(f.alice, 1, .opinion(Opinion(height: 1, view: 0, blockHash: blockA, verdict: .accept, reason: ""))).signedBytes)
        unsigned[Envelope.headerBytes + 48] = 9
        let e = try Envelope(bytes: EventCrypto.sign(unsigned: unsigned, chain: Fixture.chain, key: f.alice))
        let before = s
        #expect(throws: ApplyError.malformedPayload(.invalidValue(field: "opinion.verdict", reason: "unknown verdict 9"))) {
            try s.apply(e, id: EventCrypto.id(e.bytes), c)
        }
        #expect(s == before)
    }

    // MARK: - Epochs

    @Test(arguments: [(UInt64(0), UInt64(4), false), (1, 4, true), (2, 4, false), (4, 4, false), (5, 4, true), (9, 4, true),
                      (1, 1, true), (2, 1, true), (101, 100, true), (100, 100, false)])
    func epochStarts(_ x: (height: UInt64, interval: UInt64, start: Bool)) {
        #expect(LedgerState.isEpochStart(Height(x.height), interval: x.interval) == x.start)
    }

    @Test func aValidatorJoiningMidEpochCertifiesFromTheNextEpoch() throws {
        let f = Self.fixture()
        var c = Chain(f)
        let alice = f.alice.publicKey, producer = f.producer.publicKey
        #expect(c.s.epochPower == [producer: 1_000_000_000], "at genesis the epoch power is the genesis power")
        c.apply(f.alice, .validatorRegister(name: "alice", personality: "eager"))  // block 1
        c.apply(f.alice, .bond(amount: 1_234))  // block 2
        #expect(c.s.votingPower()[alice] == 1_234)
        #expect(c.s.powerForNextBlock() == [producer: 1_000_000_000])
        // Her signature on block 3 is no vote: she holds no power in this epoch.
        #expect(throws: CertificateError.unknownSigner(alice)) {
            try c.s.verifyCertificate(Self.certificate(3, blockA, [f.producer, f.alice]), height: 3, blockHash: blockA)
        }
        try c.s.verifyCertificate(Self.certificate(3, blockA, [f.producer]), height: 3, blockHash: blockA)
        c.advance(to: 4)
        #expect(c.s.powerForNextBlock() == [producer: 1_000_000_000, alice: 1_234])
        // Block 5 starts the next epoch: her vote counts (alone it is no quorum).
        #expect(throws: CertificateError.noQuorum(power: 1_234, total: 1_000_001_234)) {
            try c.s.verifyCertificate(Self.certificate(5, blockA, [f.alice]), height: 5, blockHash: blockA)
        }
        try c.s.verifyCertificate(Self.certificate(5, blockA, [f.producer, f.alice]), height: 5, blockHash: blockA)
        c.begin()
        #expect(c.s.epochPower == [producer: 1_000_000_000, alice: 1_234])
        #expect(c.s.validators[ValidatorID(alice)]!.keyHistory.map(\.from) == [5])
    }

    @Test func aKeyRotationTakesEffectAtTheNextEpoch() throws {
        let f = Self.fixture()
        var c = Self.validatorChain(f)  // block 5
        let next = SigningKey.derived("alice-next")
        c.apply(f.alice, .validatorRotateKey(EventCrypto.rotation(chain: Fixture.chain, validator: ValidatorID(f.alice.publicKey),
                                                                  nonce: c.nextNonce(f.alice), old: f.alice, new: next)))  // block 6
        let history = c.s.validators[ValidatorID(f.alice.publicKey)]!.keyHistory
        #expect(history.map(\.key) == [f.alice.publicKey, next.publicKey])
        #expect(history.map(\.from) == [5, 9])
        #expect(c.s.votingPower()[next.publicKey] == 1_234)
        // The old key signs until the epoch ends.
        #expect(c.s.powerForNextBlock()[f.alice.publicKey] == 1_234)
        #expect(throws: CertificateError.unknownSigner(next.publicKey)) {
            try c.s.verifyCertificate(Self.certificate(7, blockA, [f.producer, next]), height: 7, blockHash: blockA)
        }
        try c.s.verifyCertificate(Self.certificate(7, blockA, [f.producer, f.alice]), height: 7, blockHash: blockA)
        c.advance(to: 8)
        #expect(c.s.powerForNextBlock()[f.alice.publicKey] == nil)
        #expect(c.s.powerForNextBlock()[next.publicKey] == 1_234)
        #expect(throws: CertificateError.unknownSigner(f.alice.publicKey)) {
            try c.s.verifyCertificate(Self.certificate(9, blockA, [f.producer, f.alice]), height: 9, blockHash: blockA)
        }
        try c.s.verifyCertificate(Self.certificate(9, blockA, [f.producer, next]), height: 9, blockHash: blockA)
    }

    @Test func aStakeChangeMidEpochDoesNotChangeWhoCertifiesUntilTheEpochEnds() throws {
        // The producer holds 1,000; Alice bonds 10,000 in block 2. Under the old rule the
        // producer's lone signature would stop being a quorum at block 3; with epochs it
        // certifies blocks 3 and 4 and stops at block 5, the next epoch.
        var f = Self.fixture()
        f.params.minValidatorStake = 100
        let g = try Genesis(chainID: Fixture.chain, timestampMs: 1_000_000, parameters: f.params,
                            validators: [.init(key: f.producer.publicKey, name: "producer", personality: "", stake: 1_000)],
                            allocations: [.init(account: f.alice.publicKey, amount: 1_000_000), .init(account: f.bob.publicKey, amount: 1_000_000)],
                            ruleVersion: RuleVersion.legacy)
        let log = LedgerLog.memory()
        _ = try log.initialize(genesis: g)
        let p = try SoloProducer(log: log, key: f.producer, clock: { h in 1_000_000 + h.value * 1_000 })
        try p.submit(f.event(f.alice, 1, .validatorRegister(name: "alice", personality: "")).bytes)
        try p.commit()
        try p.submit(f.event(f.alice, 2, .bond(amount: 10_000)).bytes)
        try p.commit()
        for n in 1 ... 2 as ClosedRange<UInt64> {
            try p.submit(f.event(f.bob, n, .transfer(to: f.carol.publicKey, amount: 1, memo: "")).bytes)
            try p.commit()
        }
        #expect(p.state.height == 4)
        try p.submit(f.event(f.bob, 3, .transfer(to: f.carol.publicKey, amount: 1, memo: "")).bytes)
        do {
            try p.commit()
            Issue.record("block 5 was certified by a third of the power")
        } catch {
            guard case let .certificate(e) = error else { Issue.record("\(error)"); return }
            #expect(e == .noQuorum(power: 1_000, total: 11_000))
        }
        let r = Replayer(log: log).run()
        #expect(r.report.ok, "\(String(describing: r.report.failure))")
        #expect(r.report.verifiedToHeight == 4)
    }

    // MARK: - Snapshots and replay

    @Test func snapshotsCarryEpochsJailsSlashesOffencesAndOpinions() throws {
        let f = Self.fixture()
        var c = Self.validatorChain(f)
        c.apply(f.alice, .validatorRotateKey(EventCrypto.rotation(chain: Fixture.chain, validator: ValidatorID(f.alice.publicKey),
                                                                  nonce: c.nextNonce(f.alice), old: f.alice, new: .derived("alice-3"))))
        c.apply(f.bob, Self.evidence(prepare(f.alice, blockA), prepare(f.alice, blockB)))
        c.apply(f.producer, .opinion(Opinion(height: 2, view: 0, blockHash: blockA, verdict: .refuse, reason: "ß")))
        #expect(c.s.epochPower != c.s.votingPower(), "mid-epoch, the two differ")
        #expect(!c.s.slashes.isEmpty && !c.s.offences.isEmpty && !c.s.opinionCounts.isEmpty && c.s.burned > 0)
        let bytes = c.s.canonicalBytes()
        let back = try LedgerState.decodeSnapshot(bytes, crypto: Sodium())
        #expect(back == c.s)
        #expect(back.stateRoot() == c.s.stateRoot())
        #expect(back.powerForNextBlock() == c.s.powerForNextBlock())
        var old = bytes
        old[1] = 1
        #expect(throws: DecodeError.unsupportedVersion(field: "snapshot", version: 1)) { try LedgerState.decodeSnapshot(old, crypto: Sodium()) }
    }

    @Test func aLogWithEvidenceUnjailAndOpinionsReplaysAndLoadsFromCheckpoints() throws {
        let f = Self.fixture(jailBlocks: 2)
        let log = LedgerLog.memory()
        let p = try f.producer(on: log)
        p.retention = .archive  // both checkpoints kept, so replay compares both
        var nonce: [PublicKey: UInt64] = [:]
        func submit(_ k: SigningKey, _ payload: Payload) throws {
            let n = (nonce[k.publicKey] ?? 0) + 1
            try p.submit(f.event(k, n, payload).bytes)
            nonce[k.publicKey] = n
        }
        try submit(f.alice, .validatorRegister(name: "alice", personality: ""))
        try submit(f.alice, .bond(amount: 5_000))
        try p.commit()  // block 1
        try submit(f.bob, Self.evidence(prepare(f.alice, height: 1, view: 0, blockA), prepare(f.alice, height: 1, view: 0, blockB)))
        try submit(f.alice, .opinion(Opinion(height: 1, view: 0, blockHash: blockA, verdict: .accept, reason: "")))
        try p.commit()  // block 2: jailed until 4
        for _ in 0 ..< 2 {
            try submit(f.carol, .transfer(to: f.dave.publicKey, amount: 1, memo: ""))
            try p.commit()  // blocks 3, 4 (checkpoint at 4)
        }
        try submit(f.alice, .validatorUnjail)
        try submit(f.alice, .opinion(Opinion(height: 4, view: 0, blockHash: blockB, verdict: .refuse, reason: "late")))
        try p.commit()  // block 5
        for _ in 0 ..< 4 {
            try submit(f.carol, .transfer(to: f.dave.publicKey, amount: 1, memo: ""))
            try p.commit()  // blocks 6...9 (checkpoint at 8)
        }
        #expect(p.state.validators[ValidatorID(f.alice.publicKey)]!.status == .active)
        #expect(p.state.slashes.map(\.amount) == [500])
        #expect(p.state.opinionCounts[ValidatorID(f.alice.publicKey)] == OpinionCount(accepted: 1, refused: 1))
        #expect(p.state.epochPower[f.alice.publicKey] == 4_500, "power again from the epoch after the unjail (block 9)")
        let r = Replayer(log: log).run()
        #expect(r.report.ok, "\(String(describing: r.report.failure))")
        #expect(r.report.checkpointsVerified == 2)
        #expect(r.state == p.state)
        let (loaded, stats) = try StateLoader.load(log)
        #expect(stats.fromHeight == 8)
        #expect(loaded == p.state)
    }

    /// Appends a block of `events` whose header says `headerView` and whose certificate,
    /// signed by the producer, says `certificateView`.
    func appendBlock(_ f: Fixture, _ log: any EventLog, _ s: inout LedgerState, headerView: View, certificateView: View,
                     _ events: [Envelope]) throws {
        let head = try #require(try log.head())
        let h = s.height.next
        let evs = events.map { (id: EventCrypto.id($0.bytes), envelope: $0) }
        var header = BlockHeader(chainID: Fixture.chain.raw, height: h, parentHash: head.hash, view: headerView,
                                 timestampMs: s.timestampMs + 1_000, proposer: f.producer.publicKey, eventCount: UInt32(evs.count),
                                 eventsRoot: EventCrypto.eventsRoot(evs.map(\.id)), parentStateRoot: s.stateRoot(), meme: [])
        header.post = try postState(of: header, evs, on: s)
        let hash = Blake2b.hash(header.encoded())
        let cert = CommitCertificate(height: h, view: certificateView, blockHash: hash, votes: [
            EventCrypto.signCommit(chain: Fixture.chain.raw, height: h, view: certificateView, blockHash: hash, key: f.producer),
        ])
        try log.append(BlockCommit(block: StoredBlock(header: header, certificate: cert, firstSequence: head.nextSequence),
                                   blockHash: hash, events: evs))
        try s.applyBlock(header, evs)
    }

    @Test(arguments: [(UInt64(0), UInt64(0), true), (1, 1, true), (1, 4, true), (2, 1, false)])
    func replayAcceptsACertificateFromTheHeadersViewOrALaterOne(_ x: (header: UInt64, certificate: UInt64, ok: Bool)) throws {
        let f = Fixture()
        let log = LedgerLog.memory()
        _ = try log.initialize(genesis: f.genesis)
        var s = f.state()
        try appendBlock(f, log, &s, headerView: 0, certificateView: 0, [f.event(f.alice, 1, .transfer(to: f.bob.publicKey, amount: 1, memo: ""))])
        try appendBlock(f, log, &s, headerView: View(x.header), certificateView: View(x.certificate),
                        [f.event(f.alice, 2, .transfer(to: f.bob.publicKey, amount: 1, memo: ""))])
        let r = Replayer(log: log).run().report
        if x.ok {
            #expect(r.ok, "\(String(describing: r.failure))")
            #expect(r.verifiedToHeight == 2)
        } else {
            #expect(!r.ok)
            #expect(r.failure?.height == 2)
            #expect(r.failure?.record == "blocks[2].certificate")
            #expect(r.failure?.reason == "view \(x.certificate) is before the header's view \(x.header)")
        }
    }
}
