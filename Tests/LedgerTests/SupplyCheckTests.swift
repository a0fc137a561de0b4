import LedgerCore
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
}
