import LedgerConsensus
import LedgerCore
import LedgerCrypto
import Testing

/// Groundwork for the PBFT replica (issue 3): quorum arithmetic, primary selection and
/// signed consensus messages.
@Suite struct ConsensusFoundationTests {
    static func keys(_ n: Int) -> [SigningKey] { (0 ..< n).map { SigningKey.derived("consensus-\($0)") } }

    static func equalSet(_ n: Int) -> ValidatorSet {
        try! ValidatorSet(keys(n).map { .init(key: $0.publicKey, power: 100) })
    }

    /// The smallest quorum is 2f + 1 for n = 3f + 1, and for every n the smallest count
    /// over two thirds — not 2f + 1 with f = n / 3 (wrong whenever n ≠ 3f + 1).
    @Test(arguments: [(4, 3, 1), (5, 4, 1), (7, 5, 2), (10, 7, 3)])
    func quorumSizesForEqualPower(_ c: (n: Int, quorum: Int, f: Int)) {
        let set = Self.equalSet(c.n)
        let ks = set.members.map(\.key)
        #expect(set.faultsTolerated == c.f)
        #expect(!set.isQuorum(ks.prefix(c.quorum - 1)), "n=\(c.n): \(c.quorum - 1) signers must not be a quorum")
        #expect(set.isQuorum(ks.prefix(c.quorum)), "n=\(c.n): \(c.quorum) signers are a quorum")
        // Any two quorums share more than f members' power: an honest one among them.
        let a = Set(ks.prefix(c.quorum)), b = Set(ks.suffix(c.quorum))
        #expect(set.power(of: a.intersection(b)) > UInt64(c.f) * 100)
        // Weak quorum (f + 1): at least one honest member.
        #expect(!set.isWeakQuorum(ks.prefix(c.f)))
        #expect(set.isWeakQuorum(ks.prefix(c.f + 1)))
    }

    @Test func signersCountOnceAndStrangersNotAtAll() {
        let set = Self.equalSet(4)
        let k = set.members.map(\.key)
        #expect(!set.isQuorum([k[0], k[0], k[0], k[1]]), "repeated messages from one signer are one vote")
        let strangers = Self.keys(8).suffix(4).map(\.publicKey)
        #expect(!set.isQuorum([k[0], k[1]] + strangers))
        #expect(set.power(of: strangers) == 0)
    }

    @Test func unequalStakesNeedMoreThanTwoThirdsOfPower() throws {
        let ks = Self.keys(4).map(\.publicKey)
        let set = try ValidatorSet([.init(key: ks[0], power: 50), .init(key: ks[1], power: 20),
                                    .init(key: ks[2], power: 20), .init(key: ks[3], power: 10)])
        #expect(set.totalPower == 100)
        #expect(!set.isQuorum([ks[0]]))  // 50
        #expect(!set.isQuorum([ks[0], ks[3]]))  // 60
        #expect(set.isQuorum([ks[0], ks[1]]))  // 70
        #expect(!set.isQuorum([ks[1], ks[2], ks[3]]))  // 50: three of four signers, not a quorum
        // Exactly two thirds is not more than two thirds.
        let third = try ValidatorSet([.init(key: ks[0], power: 1), .init(key: ks[1], power: 1), .init(key: ks[2], power: 1)])
        #expect(!third.isQuorum([ks[0], ks[1]]))
        #expect(third.isQuorum(ks.prefix(3)))
    }

    @Test func invalidSetsAreRefused() {
        let k = Self.keys(2).map(\.publicKey)
        #expect(throws: ValidatorSet.Invalid.empty) { try ValidatorSet([]) }
        #expect(throws: ValidatorSet.Invalid.duplicateKey(k[0])) { try ValidatorSet([.init(key: k[0], power: 1), .init(key: k[0], power: 2)]) }
        #expect(throws: ValidatorSet.Invalid.zeroPower(k[1])) { try ValidatorSet([.init(key: k[1], power: 0)]) }
        #expect(throws: ValidatorSet.Invalid.totalOverflows) { try ValidatorSet([.init(key: k[0], power: .max), .init(key: k[1], power: 1)]) }
    }

    @Test func primaryRotation() throws {
        let set = Self.equalSet(4)
        let rr = (0 ..< 8).map { set.primary(view: View(UInt64($0)), epoch: 1, rule: .roundRobin, Sodium()) }
        #expect(Set(rr.prefix(4)).count == 4 && rr.prefix(4) == rr.suffix(4), "round robin visits every member in turn")
        // A view's primary keeps its turn for `epochsPerTurn` epochs, then the next member
        // leads: a validator skipped by a view change is not primary again an epoch later.
        let turn = ValidatorSet.epochsPerTurn
        let byEpoch = (0 ..< 3 * turn).map { set.primary(view: 5, epoch: $0, rule: .roundRobin, Sodium()) }
        #expect(Set(byEpoch.prefix(Int(turn))).count == 1, "one primary for a whole turn")
        #expect(byEpoch[Int(turn)] == set.primary(view: 6, epoch: 0, rule: .roundRobin, Sodium()), "the next turn is the next member's")
        #expect(byEpoch[Int(2 * turn)] == set.primary(view: 7, epoch: 0, rule: .roundRobin, Sodium()))
        // Stake-weighted: shares follow power, and consecutive views are independent draws.
        let ks = Self.keys(3).map(\.publicKey)
        let weighted = try ValidatorSet([.init(key: ks[0], power: 600), .init(key: ks[1], power: 300), .init(key: ks[2], power: 100)])
        var counts: [PublicKey: Int] = [:]
        var repeats = 0
        var last: PublicKey?
        for v in 0 ..< 10_000 as Range<UInt64> {
            let p = weighted.primary(view: View(v), epoch: 7, rule: .stakeWeighted, Sodium())
            counts[p, default: 0] += 1
            if p == last { repeats += 1 }
            last = p
        }
        #expect((5_700 ... 6_300).contains(counts[ks[0]] ?? 0))
        #expect((2_700 ... 3_300).contains(counts[ks[1]] ?? 0))
        #expect((800 ... 1_200).contains(counts[ks[2]] ?? 0))
        // Independent draws repeat with probability Σ share² = 0.46, not ~1 as a walk would.
        #expect((4_200 ... 5_000).contains(repeats))
        #expect(weighted.primary(view: 3, epoch: 9, rule: .stakeWeighted, Sodium()) == weighted.primary(view: 3, epoch: 9, rule: .stakeWeighted, Sodium()))
    }

    @Test func messagesRoundTripSignAndRefuseTampering() throws {
        let chain = Fixture.chain.raw
        let key = Self.keys(1)[0]
        let hash = Blake2b.hash([1, 2, 3])
        let all: [ConsensusMessage] = [
            .prePrepare(view: 2, height: 5, blockHash: hash), .prepare(view: 2, height: 5, blockHash: hash),
            .commit(view: 2, height: 5, blockHash: hash), .checkpoint(height: 100, blockHash: hash, stateRoot: Blake2b.hash([9])),
        ]
        var statements = Set<[UInt8]>()
        for m in all {
            let s = SignedConsensusMessage.sign(m, chain: chain, key: key)
            #expect(try SignedConsensusMessage.decode(s.encoded()) == s)
            #expect(s.verify(chain: chain))
            #expect(!s.verify(chain: try ChainID("other").raw), "bound to the chain")
            statements.insert(m.statement(chain: chain))
            // Every flipped byte either fails to decode or fails to verify.
            let bytes = s.encoded()
            for i in bytes.indices {
                var b = bytes
                b[i] ^= 0x01
                if let d = try? SignedConsensusMessage.decode(b) { #expect(!d.verify(chain: chain), "byte \(i) of \(m)") }
            }
            // A message claiming another signer does not verify.
            let forged = SignedConsensusMessage(message: m, signer: Self.keys(2)[1].publicKey, signature: s.signature)
            #expect(!forged.verify(chain: chain))
        }
        #expect(statements.count == all.count, "kinds sign distinct statements: a prepare is never a commit")
        #expect(throws: DecodeError.self) { try SignedConsensusMessage.decode([0, 1, 9]) }
    }

    @Test func aQuorumOfCommitsIsTheBlockCertificate() {
        let chain = Fixture.chain.raw
        let ks = Self.keys(4)
        let hash = Blake2b.hash([7])
        let commits = ks.prefix(3).map { SignedConsensusMessage.sign(.commit(view: 0, height: 3, blockHash: hash), chain: chain, key: $0) }
        let cert = CommitCertificate(height: 3, view: 0, blockHash: hash, votes: commits.compactMap(\.certificateVote))
        #expect(cert.votes.count == 3)
        for v in cert.votes { #expect(EventCrypto.verifyVote(v, chain: chain, certificate: cert)) }
        #expect(SignedConsensusMessage.sign(.prepare(view: 0, height: 3, blockHash: hash), chain: chain, key: ks[0]).certificateVote == nil)
    }

    @Test func equivocationIsDetectedAndForgedEvidenceIsNot() {
        let chain = Fixture.chain.raw
        let k = Self.keys(2)
        let a = SignedConsensusMessage.sign(.prepare(view: 1, height: 4, blockHash: Blake2b.hash([1])), chain: chain, key: k[0])
        let b = SignedConsensusMessage.sign(.prepare(view: 1, height: 4, blockHash: Blake2b.hash([2])), chain: chain, key: k[0])
        #expect(Equivocation.detect(a, b, chain: chain) != nil)
        #expect(Equivocation.detect(a, a, chain: chain) == nil, "a duplicate is no evidence")
        let otherView = SignedConsensusMessage.sign(.prepare(view: 2, height: 4, blockHash: Blake2b.hash([2])), chain: chain, key: k[0])
        #expect(Equivocation.detect(a, otherView, chain: chain) == nil, "another view may vote for another block")
        let otherSigner = SignedConsensusMessage.sign(.prepare(view: 1, height: 4, blockHash: Blake2b.hash([2])), chain: chain, key: k[1])
        #expect(Equivocation.detect(a, otherSigner, chain: chain) == nil)
        let forged = SignedConsensusMessage(message: b.message, signer: k[0].publicKey, signature: otherSigner.signature)
        #expect(Equivocation.detect(a, forged, chain: chain) == nil, "forged evidence is refused")
        let commit = SignedConsensusMessage.sign(.commit(view: 1, height: 4, blockHash: Blake2b.hash([2])), chain: chain, key: k[0])
        #expect(Equivocation.detect(a, commit, chain: chain) == nil, "a prepare and a commit are different roles")
    }
}
