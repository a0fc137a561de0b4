import Foundation
import LedgerCore
import LedgerCrypto
import PropertyBased
import Testing

@Suite struct CodecTests {
    let f = Fixture()

    static let samplePayloads: [Payload] = {
        let k = SigningKey.derived("sample").publicKey
        let rot = EventCrypto.rotation(chain: Fixture.chain, validator: ValidatorID(k), nonce: 9, old: .derived("old"), new: .derived("new"))
        return [
            .transfer(to: k, amount: 42, memo: "héllo ✓"),
            .validatorRegister(name: "v", personality: "memetic"),
            .validatorRetire,
            .validatorRotateKey(rot),
            .bond(amount: 1), .unbond(amount: .max), .delegate(validator: ValidatorID(k), amount: 7), .undelegate(validator: ValidatorID(k), amount: 8),
            .agentRegister(AgentProfile(name: "a", capabilities: ["x", "y"], personality: "chaotic", endpoint: "e")),
            .agentUpdate(AgentProfile(name: "b", capabilities: [], personality: "", endpoint: "")),
            .agentDeregister,
            .agentHeartbeat,
            .alliancePropose(AllianceProposal(targets: [k, .zero], purpose: "p", terms: "t", durationMs: 5)),
            .allianceAccept(AllianceID(k)), .allianceReject(.zero), .allianceDissolve(AllianceID(k)),
            .validatorUnjail,
            .evidence(first: [1, 2, 3], second: []),
            .opinion(Opinion(height: 3, view: 1, blockHash: k, verdict: .accept, reason: "ok ✓")),
            .opinion(Opinion(height: 0, view: .max, blockHash: .zero, verdict: .refuse, reason: "")),
            .claimRewards, .setCommission(bps: 1_234),
            .jobPost(JobSpec(title: "t ✓", capabilities: ["code"], milestones: [1, .max], deadline: 9, minReputation: -5, arbiter: k)),
            .jobAccept(JobID(k)), .escrowFund(JobID(k)), .escrowRefund(.zero), .disputeResolve(JobID(k)),
            .jobSubmit(job: JobID(k), milestone: 3, result: .zero), .escrowRelease(job: JobID(k), milestone: .max),
            .escrowMultisig(MultisigRelease(job: JobID(k), milestone: 1, workerAmount: 5, cosignatures: [Cosignature(key: k, signature: .zero)])),
            .disputeOpen(job: JobID(k), reason: "why"), .disputeVote(job: JobID(k), workerShareBps: 10_000),
            .rate(job: JobID(k), score: 5, comment: "c"), .endorse(subject: k, delta: -5, reason: "r"),
            .memePost(Meme(contentHash: k, content: "ipfs://x", tags: ["a", "b"])), .memeReact(meme: MemeID(k), reaction: .dislike),
            .interact(target: k, kind: .collaborate, meme: .zero),
            .govPropose(GovernanceProposal(change: .parameter(name: "blockReward", value: 7), activateAt: 10, description: "d")),
            .govPropose(GovernanceProposal(change: .ruleVersion(2), activateAt: Height(.max), description: "")),
            .govVote(proposal: ProposalID(k), approve: false),
            .messageSend(to: k, sealed: [UInt8](repeating: 7, count: 60)),
            .jobAttest(job: JobID(k), milestone: 2, result: Blake2b.hash([1]), spec: Blake2b.hash([2])),
            .jobPost(JobSpec(title: "e", capabilities: [], milestones: [5], deadline: 9, evaluation: .named(k, spec: Blake2b.hash([3])))),
            .jobPost(JobSpec(title: "d", capabilities: ["x"], milestones: [5, 6], deadline: 9, evaluation: .drawn(spec: Blake2b.hash([4])))),
        ]
    }()

    @Test("every payload kind round-trips through envelope bytes", arguments: samplePayloads)
    func payloadRoundTrip(_ p: Payload) throws {
        let e = f.event(f.alice, 3, p)
        let decoded = try Envelope(bytes: e.bytes)
        #expect(decoded == e)
        #expect(try decoded.decodePayload() == p)
        #expect(p.encoded() == (try Payload.decode(kind: p.kind, p.encoded()[...])).encoded())
        #expect(EventCrypto.verify(decoded))
    }

    @Test func everyKindHasASample() {
        #expect(Set(Self.samplePayloads.map(\.kind)) == Set(EventKind.allCases))
    }

    @Test func transferRoundTripProperty() async {
        await propertyCheck(count: 200, input: Gen.uint64(), Gen.uint64(in: 1 ... .max), Gen.letterOrNumber.string(of: 0 ... 200)) { nonce, amount, memo in
            let e = f.event(f.bob, nonce, .transfer(to: f.alice.publicKey, amount: amount, memo: memo), fee: amount / 3)
            let d = try? Envelope(bytes: e.bytes)
            #expect(d == e)
            #expect(d.flatMap { try? $0.decodePayload() } == .transfer(to: f.alice.publicKey, amount: amount, memo: memo))
            #expect(d?.nonce == nonce)
        }
    }

    @Test func headerAndCertificateRoundTrip() async {
        await propertyCheck(count: 100, input: Gen.uint64(), Gen.uint64(), Gen.uint8().array(of: 0 ... 300)) { height, ts, meme in
            let h = BlockHeader(chainID: Fixture.chain.raw, height: Height(height), parentHash: Blake2b.hash(meme), view: View(ts / 7),
                                timestampMs: ts, proposer: f.producer.publicKey, eventCount: UInt32(meme.count),
                                eventsRoot: Blake2b.hash([1]), parentStateRoot: Blake2b.hash([2]), meme: meme)
            #expect((try? BlockHeader.decode(h.encoded())) == h)
            let votes = [f.alice, f.bob, f.carol].map { EventCrypto.signCommit(chain: Fixture.chain.raw, height: Height(height), view: 1, blockHash: .zero, key: $0) }
            let c = CommitCertificate(height: Height(height), view: 1, blockHash: .zero, votes: votes)
            let b = StoredBlock(header: h, certificate: c, firstSequence: SequenceNumber(ts))
            #expect((try? StoredBlock.decode(b.encoded()[...])) == b)
        }
    }

    @Test func genesisRoundTripAndCanonicalOrder() throws {
        let g = f.genesis
        #expect(try Genesis.decode(g.encoded()) == g)
        // Allocations given in another order produce the same bytes.
        let shuffled = try Genesis(chainID: g.chainID, timestampMs: g.timestampMs, parameters: g.parameters,
                                   validators: g.validators, allocations: g.allocations.reversed(), ruleVersion: g.ruleVersion, economy: g.economy)
        #expect(shuffled.encoded() == g.encoded())
    }

    /// Found in review: an out-of-range economy parameter is a typed error, never a trap.
    @Test func economyParametersOutOfRangeAreTypedErrors() throws {
        var e = EconomyParameters()
        e.arbiterMinReputation = .min
        var w = ByteWriter(capacity: 80)
        e.encode(&w)
        var r = ByteReader(w.bytes)
        #expect(throws: DecodeError.self) { _ = try EconomyParameters.decode(&r) }
        e = EconomyParameters(); e.arbitersPerDispute = 2
        #expect(throws: DecodeError.self) { try e.validate() }
    }

    @Test func aVersion1GenesisStillDecodesWithDefaultSlashingParameters() throws {
        // Version 1 is version 2 without the last two parameters (u32 slashFractionBps,
        // u64 jailBlocks, at bytes 98..<110) and with 1 in the version field.
        var params = f.params
        params.slashFractionBps = 2_500
        params.jailBlocks = 7
        var g = f.genesis
        g.parameters = params
        g.stateCommitment = StateCommitmentRule.flat
        let v2 = g.encoded(version: 2)
        #expect(Array(v2.prefix(2)) == [0, 2])
        #expect(Array(v2[98 ..< 110]) == [0, 0, 0x09, 0xC4, 0, 0, 0, 0, 0, 0, 0, 7])
        let v1 = [0, 1] + Array(v2[2 ..< 98]) + Array(v2[110...])
        let old = try Genesis.decode(v1)
        #expect(old.parameters.slashFractionBps == 1_000 && old.parameters.jailBlocks == 100)
        var expected = g
        expected.parameters.slashFractionBps = 1_000
        expected.parameters.jailBlocks = 100
        #expect(old.parameters == expected.parameters && old.validators == expected.validators && old.allocations == expected.allocations)
        #expect(old.encodedVersion == 1 && old.ruleVersion == RuleVersion.legacy)
        #expect(try Genesis.decode(v2).encoded() == v2)
        // Version 2 bytes labelled version 1 are misread from the validators on, and refused.
        #expect(throws: DecodeError.tooLong(field: "genesis.validators", length: 2_500, max: Limits.genesisValidatorsMax)) {
            try Genesis.decode([0, 1] + Array(v2[2...]))
        }
        #expect(throws: DecodeError.unsupportedVersion(field: "genesis", version: 5)) { try Genesis.decode([0, 5] + Array(v2[2...])) }
        // Version 3 carries the rule version and the economy after the allocations.
        let v3 = g.encoded(version: 3)
        #expect(Array(v3.prefix(2)) == [0, 3] && v3.count == v2.count + 2 + 68)
        let decoded3 = try Genesis.decode(v3)
        #expect(decoded3.stateCommitment == StateCommitmentRule.flat && decoded3.encoded() == v3)
        #expect(decoded3.encoded(version: 4) == g.encoded())
        // Version 4 adds the state commitment: 1 flat, 2 tree, nothing else.
        let v4 = g.encoded()
        #expect(Array(v4.prefix(2)) == [0, 4] && v4 == v3.replacing([0, 3], with: [0, 4], maxReplacements: 1) + [1])
        #expect(try Genesis.decode(v4) == g)
        var tree = g
        tree.stateCommitment = StateCommitmentRule.tree
        #expect(tree.encoded().last == 2)
        #expect(try Genesis.decode(tree.encoded()).stateCommitment == StateCommitmentRule.tree)
        #expect(throws: DecodeError.invalidValue(field: "genesis.stateCommitment", reason: "must be 1 (flat) or 2 (tree)")) {
            try Genesis.decode(Array(v4.dropLast()) + [3])
        }
        #expect(throws: DecodeError.unsupportedVersion(field: "genesis", version: 0)) { try Genesis.decode([0, 0] + Array(v1[2...])) }
    }

    @Test func slashingParametersAreBounded() throws {
        var p = ChainParameters()
        p.slashFractionBps = 10_000
        try p.validate()
        p.slashFractionBps = 10_001
        #expect(throws: DecodeError.invalidValue(field: "slashFractionBps", reason: "at most 10000 (all of the self-stake)")) { try p.validate() }
        p = ChainParameters()
        p.jailBlocks = ChainParameters.unbondingBlocksMax
        try p.validate()
        p.jailBlocks += 1
        #expect(throws: DecodeError.invalidValue(field: "jailBlocks", reason: "at most \(ChainParameters.unbondingBlocksMax)")) { try p.validate() }
    }

    @Test func jsonParametersWithoutSlashingFieldsTakeTheDefaults() throws {
        let old = #"{"minFee": 3, "minValidatorStake": 10, "unbondingBlocks": 2, "allianceAcceptWindowMs": 5, "allianceDurationMaxMs": 6, "checkpointInterval": 7, "blockEventsMax": 8, "blockBytesMax": 5000}"#
        let p = try JSONDecoder().decode(ChainParameters.self, from: Data(old.utf8))
        #expect(p == ChainParameters(minFee: 3, minValidatorStake: 10, unbondingBlocks: 2, allianceAcceptWindowMs: 5, allianceDurationMaxMs: 6,
                                     checkpointInterval: 7, blockEventsMax: 8, blockBytesMax: 5000, slashFractionBps: 1_000, jailBlocks: 100))
        var q = p
        q.slashFractionBps = 42; q.jailBlocks = 9
        #expect(try JSONDecoder().decode(ChainParameters.self, from: JSONEncoder().encode(q)) == q)
        let missing = #"{"minFee": 3}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(ChainParameters.self, from: Data(missing.utf8)) }
    }

    @Test func duplicateCertificateSignerIsRefused() throws {
        let v = EventCrypto.signCommit(chain: Fixture.chain.raw, height: 1, view: 0, blockHash: .zero, key: f.alice)
        var w = ByteWriter()
        w.u16(1); w.u64(1); w.u64(0); w.b32(.zero); w.u16(2)
        w.b32(v.key); w.b64(v.signature); w.b32(v.key); w.b64(v.signature)
        var r = ByteReader(w.bytes)
        #expect(throws: DecodeError.self) { try CommitCertificate.decode(&r) }
    }

    @Test func decodersAreTotalOnRandomBytes() async {
        // Any byte string either decodes or gives a DecodeError: never a crash.
        await propertyCheck(count: 500, input: Gen.uint8().array(of: 0 ... 400)) { bytes in
            _ = try? Envelope(bytes: bytes)
            _ = try? BlockHeader.decode(bytes)
            _ = try? StoredBlock.decode(bytes[...])
            _ = try? Genesis.decode(bytes)
            for k in EventKind.allCases { _ = try? Payload.decode(kind: k, bytes[...]) }
        }
    }

    @Test func oversizedAndTruncatedEventsAreTypedErrors() throws {
        let e = f.event(f.alice, 1, .transfer(to: f.bob.publicKey, amount: 1, memo: ""))
        #expect(throws: DecodeError.truncated(field: "event.signature", needed: 64, available: 63)) {
            try Envelope(bytes: Array(e.bytes.dropLast()))
        }
        #expect(throws: DecodeError.trailingBytes(count: 1)) { try Envelope(bytes: e.bytes + [0]) }
        let big = [UInt8](repeating: 0, count: Limits.eventBytesMax + 1)
        #expect(throws: DecodeError.tooLong(field: "event", length: Limits.eventBytesMax + 1, max: Limits.eventBytesMax)) {
            try Envelope(bytes: big)
        }
        var badKind = e.bytes
        badKind[3] = 99
        #expect(throws: DecodeError.unknownKind(99)) { try Envelope(bytes: badKind) }
        let longMemo = String(repeating: "m", count: Limits.memoBytesMax + 1)
        let tooLong = f.event(f.alice, 1, .transfer(to: f.bob.publicKey, amount: 1, memo: longMemo))
        #expect(throws: DecodeError.tooLong(field: "transfer.memo", length: Limits.memoBytesMax + 1, max: Limits.memoBytesMax)) {
            try tooLong.decodePayload()
        }
    }

    @Test func everyTamperedByteIsRejected() throws {
        // Flip each byte of a signed event in turn: the result must either fail to decode
        // or fail signature verification. Nothing tampered is ever accepted.
        let e = f.event(f.alice, 1, .transfer(to: f.bob.publicKey, amount: 5, memo: "tamper"))
        var accepted: [Int] = []
        for i in e.bytes.indices {
            var b = e.bytes
            b[i] ^= 0x20
            if let d = try? Envelope(bytes: b), EventCrypto.verify(d) { accepted.append(i) }
        }
        #expect(accepted.isEmpty, "tampered byte positions accepted: \(accepted)")
    }

    @Test func signatureFromAnotherChainOrKeyIsRejected() throws {
        let e = f.event(f.alice, 1, .bond(amount: 1))
        // Same bytes signed under another chain's domain: verification must fail.
        let other = try ChainID("other-chain")
        let foreign = EventCrypto.sign(unsigned: Array(e.signedBytes), chain: other, key: f.alice)
        #expect(!EventCrypto.verify(try Envelope(bytes: foreign)))
        // Alice's bytes signed by Bob.
        let forged = EventCrypto.sign(unsigned: Array(e.signedBytes), chain: Fixture.chain, key: f.bob)
        #expect(!EventCrypto.verify(try Envelope(bytes: forged)))
    }

    /// Keys a sender chooses (transfer recipients) that share their first bytes still
    /// hash apart: a dictionary of them does not become one long probe chain.
    @Test func keysSharingAPrefixHashApart() {
        let keys = (0 ..< 1_000).map { i in Bytes32(w0: 0x4242_4242_4242_4242, w1: 7, w2: UInt64(i % 10), w3: UInt64(i / 10)) }
        #expect(Set(keys).count == 1_000)
        #expect(Set(keys.map(\.hashValue)).count >= 995)
    }

    @Test func merkleRootShape() {
        let ids = (0 ..< 5).map { EventID(Blake2b.hash([UInt8($0)])) }
        func leaf(_ h: EventID) -> Hash32 { Blake2b.hash([0] + h.bytes) }
        func node(_ a: Hash32, _ b: Hash32) -> Hash32 { Blake2b.hash([1] + a.bytes + b.bytes) }
        // n = 5 splits 4 | 1.
        let expected = node(node(node(leaf(ids[0]), leaf(ids[1])), node(leaf(ids[2]), leaf(ids[3]))), leaf(ids[4]))
        #expect(EventCrypto.eventsRoot(ids) == expected)
        #expect(EventCrypto.eventsRoot([ids[0]]) == leaf(ids[0]))
        #expect(EventCrypto.eventsRoot([]) == Blake2b.hash([UInt8]()))
        #expect(EventCrypto.eventsRoot(ids) != EventCrypto.eventsRoot(ids.reversed()))
    }

    @Test func chainIDRules() {
        #expect(throws: DecodeError.self) { try ChainID("") }
        #expect(throws: DecodeError.self) { try ChainID("UPPER") }
        #expect(throws: DecodeError.self) { try ChainID(String(repeating: "a", count: 33)) }
        #expect((try? ChainID("a.b-c_1"))?.name == "a.b-c_1")
    }
}
