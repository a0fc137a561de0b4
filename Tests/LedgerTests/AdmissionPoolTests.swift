import LedgerCore
import LedgerCrypto
import LedgerNode
import Testing

/// The admission pool's per-author bounds (issue 16): a funded key signing future nonces
/// cannot fill the mempool, money is summed with overflow checks, a nonce is replaced
/// only by a higher fee, and a full pool still takes an author's next event.
@Suite struct AdmissionPoolTests {
    static func key(_ i: Int) -> PublicKey { SigningKey.derived("pool-author-\(i)").publicKey }
    static func id(_ i: Int, _ n: UInt64, _ salt: UInt8 = 0) -> EventID { EventID(Blake2b.hash(Array("\(i)/\(n)/\(salt)".utf8))) }

    /// Admits author i's event at nonce n (committed nonce 0, balance 1,000,000 unless told).
    static func add(_ p: inout AdmissionPool, _ i: Int, _ n: UInt64, fee: UInt64 = 1, cost: UInt64? = nil, salt: UInt8 = 0,
                    balance: UInt64 = 1_000_000) -> AdmissionPool.Outcome {
        p.admit(id(i, n, salt), author: key(i), nonce: n, fee: fee, cost: cost ?? fee, committedNonce: 0, available: balance, now: n)
    }

    @Test func oneAuthorHoldsAtMostItsShare() {
        var p = AdmissionPool(capacity: 1_000, perAuthorMax: 16)
        for n in 2 ... 17 as ClosedRange<UInt64> { #expect(Self.add(&p, 0, n) == .added(replaced: nil, evicted: nil)) }
        #expect(Self.add(&p, 0, 18) == .refused(code: "author_limit", why: "author has 16 events pending, the most one author may hold"))
        #expect(p.count == 16)
        // Another author is not affected.
        #expect(Self.add(&p, 1, 1) == .added(replaced: nil, evicted: nil))
    }

    @Test func pendingEventsMustAllBeAffordable() {
        var p = AdmissionPool(capacity: 1_000, perAuthorMax: 64)
        #expect(Self.add(&p, 0, 1, cost: 600, balance: 1_000) == .added(replaced: nil, evicted: nil))
        guard case .refused("insufficient_balance", _) = Self.add(&p, 0, 2, cost: 401, balance: 1_000) else {
            Issue.record("a second event the balance cannot cover with the first was admitted"); return
        }
        #expect(Self.add(&p, 0, 2, cost: 400, balance: 1_000) == .added(replaced: nil, evicted: nil))
        #expect(p.pendingCost(of: Self.key(0)) == 1_000)
        // Sums that would wrap past 2^64 are refused, not wrapped.
        guard case .refused("insufficient_balance", _) = Self.add(&p, 0, 3, cost: .max, balance: .max) else {
            Issue.record("a cost that overflows the author's pending total was admitted"); return
        }
        // Leaving the pool gives the amount back.
        p.remove(Self.id(0, 1))
        #expect(p.pendingCost(of: Self.key(0)) == 400)
    }

    @Test func aNonceIsReplacedOnlyByAHigherFee() {
        var p = AdmissionPool(capacity: 1_000, perAuthorMax: 64)
        #expect(Self.add(&p, 0, 1, fee: 100) == .added(replaced: nil, evicted: nil))
        #expect(Self.add(&p, 0, 1, fee: 109, salt: 1) == .refused(code: "nonce_pending", why: "an event with nonce 1 is pending; a replacement must pay a fee of at least 110"))
        #expect(Self.add(&p, 0, 1, fee: 110, salt: 2) == .added(replaced: Self.id(0, 1), evicted: nil))
        #expect(p.count == 1 && p.pendingCost(of: Self.key(0)) == 110)
        #expect(AdmissionPool.replacementFee(for: .max) == .max)
        #expect(AdmissionPool.replacementFee(for: 0) == 1)
    }

    /// Eleven keys fill the pool with future nonces; an honest author's next event still
    /// gets in, pushing out the highest nonce of the biggest holder; its later nonces do not.
    @Test func aFullPoolStillTakesAnAuthorsNextEvent() {
        var p = AdmissionPool(capacity: 110, perAuthorMax: 10)
        for i in 0 ..< 11 { for n in 2 ... 11 as ClosedRange<UInt64> { _ = Self.add(&p, i, n) } }
        #expect(p.count == 110)
        #expect(Self.add(&p, 99, 2) == .refused(code: "mempool_full", why: "the mempool holds 110 events"))
        guard case let .added(nil, evicted?) = Self.add(&p, 99, 1) else { Issue.record("the next-nonce event found no room"); return }
        #expect(p.count == 110)
        #expect(p[evicted] == nil && p.pendingCount(of: Self.key(99)) == 1)
        // The victim was some flooder's highest nonce.
        #expect((0 ..< 11).contains { Self.id($0, 11) == evicted })
    }
}
