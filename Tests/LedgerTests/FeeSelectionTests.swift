import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerProjections
import Testing

/// The block producer picks the highest fees first, and still keeps each author's
/// events in nonce order.
@Suite struct FeeSelectionTests {
    @Test func aBusyPrimaryFillsTheNextBlockByFee() throws {
        let vs = (0 ..< 4).map { SigningKey.derived("fee-validator-\($0)") }
        let cs = (0 ..< 4).map { SigningKey.derived("fee-client-\($0)") }
        var p = ChainParameters()
        p.blockEventsMax = 3
        p.checkpointInterval = 8
        let chain = try ChainID("fee-test")
        let g = try Genesis(chainID: chain, timestampMs: 1_000, parameters: p,
                            validators: vs.enumerated().map { .init(key: $1.publicKey, name: "v\($0)", personality: "lawful", stake: 10_000) },
                            allocations: cs.map { .init(account: $0.publicKey, amount: 1_000_000) } + vs.map { .init(account: $0.publicKey, amount: 1_000_000) })
        let gh = Blake2b.hash(g.encoded())
        let state = LedgerState(genesis: g, genesisHash: gh)
        // Find the primary of view 0 and drive it alone.
        var probe = Replica(config: ReplicaConfig(genesisHash: gh, genesisStateRoot: state.stateRoot(), keys: [vs[0]], operatorKey: vs[0]),
                            state: state, lastHash: gh)
        let primary = vs.first { $0.publicKey == probe.primary(of: 0) }!
        var c = ReplicaConfig(genesisHash: gh, genesisStateRoot: state.stateRoot(), keys: [primary], operatorKey: primary)
        c.recordOpinions = false
        var r = Replica(config: c, state: state, lastHash: gh)
        _ = probe.step(.tick(nowMs: 1_000))

        func event(_ k: Int, _ nonce: UInt64, fee: UInt64) -> Envelope {
            EventCrypto.makeEvent(chain: chain, key: cs[k], nonce: nonce, fee: fee, payload: .transfer(to: cs[(k + 1) % 4].publicKey, amount: 1, memo: ""))
        }
        /// The events of each block proposed, in order.
        func proposed(_ out: Output) -> [[EventID]] {
            out.send.compactMap { if case let .prePrepare(_, b) = $0.message { b.events.map(EventCrypto.id) } else { nil } }
        }
        _ = r.step(.tick(nowMs: 2_000))
        // Four events arrive together (a peer's forwarded batch): a cheap one, client 2's
        // nonces 1 (fee 2) and 2 (fee 9), and a fee-7 one. The block (3 events) takes the
        // fee-7 one, then client 2's pair in nonce order (its fee-9 event needs the fee-2
        // one first); the fee-1 event goes in the next block.
        let cheap = event(1, 1, fee: 1), low = event(2, 1, fee: 2), high = event(2, 2, fee: 9), mid = event(3, 1, fee: 7)
        let peer = vs.first { $0.publicKey != primary.publicKey }!.publicKey
        var out = r.step(.message(from: peer, .requests([cheap, low, high, mid].map(\.bytes))))
        out.send += r.step(.persisted(token: out.persistToken ?? 0)).send
        #expect(proposed(out) == [[mid, low, high].map { EventCrypto.id($0.bytes) }, [EventCrypto.id(cheap.bytes)]])
    }
}
