import LedgerCore
import LedgerCrypto
@testable import LedgerProjections
import Testing

/// The conservation check adds money with overflow checks: a state whose balances wrap
/// round 2^64 back to the total supply must not pass for a conserved one.
@Suite struct SupplyCheckTests {
    @Test func aSumThatWrapsRoundIsNotTheSupply() {
        let f = Fixture()
        var s = f.state()
        #expect(s.computedSupply() == s.totalSupply, "a genesis conserves its supply")
        // Alice gains X and Bob 2^64 − X: the true sum is the supply plus 2^64, which a
        // wrapping sum reports as the supply itself.
        let x: UInt64 = 1 << 40
        s.accounts[f.alice.publicKey]!.balance += x
        s.accounts[f.bob.publicKey]!.balance += UInt64.max - x + 1
        #expect(s.computedSupply() == nil, "the parts add up past 2^64 − 1")
        // One unit more than the supply, with no overflow, is a plain mismatch.
        var t = f.state()
        t.accounts[f.alice.publicKey]!.balance += 1
        #expect(t.computedSupply() == t.totalSupply + 1)
    }

    /// Voting power is summed in 128 bits and a validator's power saturates: two stakes of
    /// 2^63 and the producer's must not wrap round to the producer's alone, which would
    /// make one of the two a quorum by itself.
    @Test func powerSumsDoNotWrapIntoAQuorum() throws {
        var f = Fixture()
        let v1 = SigningKey.derived("wrap-1"), v2 = SigningKey.derived("wrap-2")
        f.extraValidators = [.init(key: v1.publicKey, name: "v1", personality: "lawful", stake: 1_000),
                             .init(key: v2.publicKey, name: "v2", personality: "lawful", stake: 1_000)]
        var s = f.state()
        s.validators[ValidatorID(v1.publicKey)]!.selfStake = 1 << 63
        s.validators[ValidatorID(v2.publicKey)]!.selfStake = 1 << 63
        let root = s.stateRoot(), block = Blake2b.hash([1])
        let m = ConsensusMessage.checkpoint(height: 0, blockHash: block, stateRoot: root)
        let vote = SignedConsensusMessage.sign(m, chain: Fixture.chain.raw, signer: v1)
        let cert = CheckpointCertificate(height: 0, blockHash: block, stateRoot: root, votes: [.init(key: v1.publicKey, signature: vote.signature)])
        #expect(throws: CertificateError.self) { try s.verifyCheckpointCertificate(cert, blockHash: block) }
        s.validators[ValidatorID(v1.publicKey)]!.delegated = .max
        #expect(s.votingPower()[v1.publicKey] == .max, "self stake + delegations saturates")
    }
}
