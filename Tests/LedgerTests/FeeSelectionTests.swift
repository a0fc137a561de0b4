import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerProjections
import Testing

/// The block producer picks the highest fees first, and still keeps each author's
/// events in nonce order.
@Suite struct FeeSelectionTests {
    @Test func aBusyPrimaryFillsTheNextBlockByFee() throws {
        var p = try LonePrimary("fee-test", blockEventsMax: 3)
        // Four events arrive together (a peer's forwarded batch): a cheap one, client 2's
        // nonces 1 (fee 2) and 2 (fee 9), and a fee-7 one. The block (3 events) takes the
        // fee-7 one, then client 2's pair in nonce order (its fee-9 event needs the fee-2
        // one first); the fee-1 event goes in the next block, after the batch delay.
        let cheap = p.event(1, 1, fee: 1), low = p.event(2, 1, fee: 2), high = p.event(2, 2, fee: 9), mid = p.event(3, 1, fee: 7)
        #expect(p.relay([cheap, low, high, mid]) == [ids([mid, low, high])])
        #expect(p.step(.tick(nowMs: 2_050)) == [ids([cheap])])
    }
}
