import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerProjections
import Testing

/// The primary of view 0 of a 4-validator chain, driven alone: its own proposals are
/// what the tests read (the other validators never answer).
struct LonePrimary {
    let chain: ChainID
    let clients: [SigningKey]
    /// A validator other than the primary: relayed events come "from" it.
    let peer: PublicKey
    var replica: Replica

    init(_ label: String, blockEventsMax: UInt32, blockBytesMax: UInt32 = 1 << 20) throws {
        clients = (0 ..< 4).map { SigningKey.derived("\(label)-client-\($0)") }
        var p = ChainParameters()
        p.blockEventsMax = blockEventsMax
        p.blockBytesMax = blockBytesMax
        p.checkpointInterval = 8
        let vs = try FourValidators(label, parameters: p, accounts: clients.map(\.publicKey))
        chain = vs.chain
        let primary = vs.primary(of: 0)
        peer = vs.keys.first { $0.publicKey != primary.publicKey }!.publicKey
        // These tests hold one author's backlog of up to 400 nonces, past the per-author
        // bound of a node's mempool (256 ahead; LivenessTests tests that bound).
        replica = vs.replica(of: primary) { $0.recordOpinions = false; $0.authorAheadMax = 1_000 }
        _ = replica.step(.tick(nowMs: 2_000))
    }

    func event(_ k: Int, _ nonce: UInt64, fee: UInt64 = 1, memo: String = "") -> Envelope {
        EventCrypto.makeEvent(chain: chain, key: clients[k], nonce: nonce, fee: fee, payload: .transfer(to: clients[(k + 1) % 4].publicKey, amount: 1, memo: memo))
    }

    /// Steps the replica, acknowledges its records (a pre-prepare is sent only once its
    /// record is durable) and returns the events of each block it proposed, in order.
    mutating func step(_ input: Input) -> [[EventID]] {
        var out = replica.step(input)
        if let t = out.persistToken { out.send += replica.step(.persisted(token: t)).send }
        return out.send.compactMap { if case let .prePrepare(_, b) = $0.message { b.events.map(EventCrypto.id) } else { nil } }
    }

    /// Relays events from `peer` in one message.
    mutating func relay(_ events: [Envelope]) -> [[EventID]] { step(.message(from: peer, .requests(events.map(\.bytes)))) }
}

func ids(_ events: [Envelope]) -> [EventID] { events.map { EventCrypto.id($0.bytes) } }

/// When the primary proposes: at once when nothing is in flight, when a full block is
/// ready, or after the batch delay; and what reading the mempool may cost it.
@Suite struct ProposalTests {
    /// The mempool also holds the events of the blocks in flight. Counting those as ready
    /// made a primary with a full block in flight propose a block per arriving event.
    @Test func aFullBlockInFlightDoesNotTurnEachArrivalIntoABlock() throws {
        var p = try LonePrimary("proposal-full", blockEventsMax: 3)
        let first = [p.event(0, 1), p.event(0, 2), p.event(0, 3)]
        #expect(p.relay(first) == [ids(first)])
        // One more event while the full block is in flight: not a block yet.
        let a = p.event(1, 1)
        #expect(p.relay([a]) == [])
        // Two more make a full block of events not in flight: proposed at once.
        let b = [p.event(2, 1), p.event(3, 1)]
        #expect(p.relay(b) == [ids([a] + b)])
        // A lone event waits for the batch delay (50 ms by default), then goes.
        let c = p.event(1, 2)
        #expect(p.relay([c]) == [])
        #expect(p.step(.tick(nowMs: 2_049)) == [])
        #expect(p.step(.tick(nowMs: 2_050)) == [ids([c])])
    }

    /// A block that stopped at the byte limit is full: the full-block rule stays on.
    @Test func aBlockFullByBytesKeepsTheFullBlockRule() throws {
        // 4 KiB blocks (the least allowed) of ~0.4 KiB events: the bytes, not the count
        // of 20, end each block.
        var p = try LonePrimary("proposal-bytes", blockEventsMax: 20, blockBytesMax: UInt32(Limits.eventBytesMax))
        let memo = String(repeating: "m", count: Limits.memoBytesMax)
        let evs = (0 ..< 4).flatMap { k in (1 ... 10).map { p.event(k, UInt64($0), memo: memo) } }
        let perBlock = Limits.eventBytesMax / evs[0].bytes.count
        #expect(perBlock > 1 && perBlock < 10)
        // The first block goes with nothing in flight; the next two because 20 or more
        // events not in flight are ready; then fewer than 20 are, and they wait.
        let blocks = p.relay(evs)
        #expect(blocks.map(\.count) == [perBlock, perBlock, perBlock])
        #expect(p.step(.tick(nowMs: 2_050)).joined().count == min(40 - 3 * perBlock, perBlock))
    }

    /// A build that found nothing because every event is already in flight does not hold
    /// back the next event: the pause is for events that cannot go in, not for these.
    @Test func eventsInFlightDoNotPauseTheNextBuild() throws {
        var p = try LonePrimary("proposal-inflight", blockEventsMax: 1_000)
        let first = (1 ... 300).map { p.event(0, UInt64($0)) }
        #expect(p.relay(first) == [ids(first)])
        // With only in-flight client events pending, the primary looks again after the
        // opinion delay (200 ms) and finds nothing to propose.
        let builds = p.replica.counters.blockBuilds
        #expect(p.step(.tick(nowMs: 2_200)) == [])
        #expect(p.replica.counters.blockBuilds == builds + 1)
        let next = p.event(1, 1)
        #expect(p.step(.tick(nowMs: 2_201)) == [])
        #expect(p.relay([next]) == [ids([next])])
    }

    /// Events waiting for a nonce the primary has not seen cannot go in. Each build reads
    /// the whole mempool, so with a large mempool of them a build that found nothing is
    /// not repeated on every message that brings more of them; but an event that can go
    /// in ends the pause at once (a flood of future nonces must not delay honest events
    /// by a batch delay); and nothing is lost.
    @Test func eventsThatCannotGoInAreNotReadAgainOnEveryMessage() throws {
        var p = try LonePrimary("proposal-gap", blockEventsMax: 1_000)
        let waiting = (2 ... 301).map { p.event(0, UInt64($0)) }
        #expect(p.relay(waiting) == [])
        let builds = p.replica.counters.blockBuilds
        #expect(builds == 1)
        // 100 more messages of events that cannot go in either: no build.
        let more = (302 ... 401).map { p.event(0, UInt64($0)) }
        for e in more { #expect(p.relay([e]) == []) }
        #expect(p.replica.counters.blockBuilds == builds)
        // The missing nonce arrives: the block goes at once, whole and in nonce order.
        let missing = p.event(0, 1)
        #expect(p.relay([missing]) == [ids([missing] + waiting + more)])
        #expect(p.replica.counters.blockBuilds == builds + 1)
    }
}
