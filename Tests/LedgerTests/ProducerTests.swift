import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerProjections
import LedgerStore
import LedgerWorkload
import Testing

/// The solo producer's admission and packing: every refusal is typed and leaves the
/// working state and the log untouched; blocks respect the chain's limits.
@Suite struct ProducerTests {
    let f = Fixture()

    @Test func refusalsAreTypedAndLoseNothing() throws {
        let log = LedgerLog.memory()
        let p = try f.producer(on: log)
        let good = f.event(f.alice, 1, .transfer(to: f.bob.publicKey, amount: 10, memo: "ok"))
        try p.submit(good.bytes)
        let before = p.pendingState

        var forged = f.event(f.alice, 2, .transfer(to: f.bob.publicKey, amount: 10, memo: "")).bytes
        forged[forged.count - 1] ^= 1
        let cases: [([UInt8], AdmissionError)] = [
            (forged, .rejected(.badSignature)),
            (good.bytes, .rejected(.duplicateEvent(EventCrypto.id(good.bytes)))),
            (f.event(f.alice, 1, .transfer(to: f.bob.publicKey, amount: 1, memo: "replay")).bytes, .rejected(.staleNonce(expected: 2, got: 1))),
            (Array(good.bytes.prefix(40)), .malformed(.truncated(field: "event.author", needed: 32, available: 4))),
            ([UInt8](repeating: 7, count: Limits.eventBytesMax + 1), .rejected(.oversized(bytes: Limits.eventBytesMax + 1, max: Limits.eventBytesMax))),
            (f.event(f.bob, 1, .transfer(to: f.alice.publicKey, amount: 5_000_000, memo: "")).bytes,
             .rejected(.insufficientBalance(needed: 5_000_002, available: 1_000_010))),  // Bob just received 10
        ]
        for (bytes, expected) in cases {
            #expect(throws: expected) { try p.submit(bytes) }
            #expect(p.pendingState == before, "a refused event changed the working state: \(expected)")
        }
        // The batch path gives the same answers, in order.
        let results = p.submitBatch(cases.map(\.0))
        for (r, (_, expected)) in zip(results, cases) {
            guard case let .failure(e) = r else { Issue.record("admitted: \(expected)"); continue }
            #expect(e == expected)
        }
        let block = try #require(try p.commit())
        #expect(block.header.eventCount == 1)
        #expect(try log.events(from: 0, count: 10).map(\.id) == [EventCrypto.id(good.bytes)])
        #expect(Replayer(log: log).run().report.ok)
    }

    @Test func blocksRespectCountAndByteLimits() throws {
        var fx = Fixture()
        fx.params.blockEventsMax = 7
        fx.params.blockBytesMax = UInt32(Limits.eventBytesMax)  // ~ 8 events of ~500 bytes
        let log = LedgerLog.memory()
        let p = try fx.producer(on: log)
        var nonce: UInt64 = 0
        for i in 0 ..< 40 {
            nonce += 1
            let memo = String(repeating: "m", count: i % 2 == 0 ? 250 : 10)
            try p.submit(fx.event(fx.alice, nonce, .transfer(to: fx.bob.publicKey, amount: 1, memo: memo)).bytes)
        }
        try p.commit()
        let head = try #require(try log.metadata()).head
        var total = 0
        for h in 1 ... head.value {
            let b = try #require(try log.block(at: Height(h)))
            let events = try log.events(from: b.firstSequence, count: Int(b.header.eventCount))
            #expect(events.count <= 7, "block \(h) has \(events.count) events")
            #expect(events.reduce(0) { $0 + $1.envelope.bytes.count } <= Limits.eventBytesMax, "block \(h) is over the byte limit")
            total += events.count
        }
        #expect(total == 40, "every admitted event is committed")
        #expect(head.value >= 6)
        let r = Replayer(log: log).run().report
        #expect(r.ok && r.events == 40)
    }

    @Test func aCheckpointThatCannotBeWrittenDoesNotFailTheCommit() throws {
        // Fill a tiny map until a block fails; every block reported committed must be in
        // the log and every block in the log reported — whether the map ran out on the
        // block or on its checkpoint (checkpointInterval 4).
        let d = TempDir("cpfull"); defer { d.cleanup() }
        let log = try LedgerLog.openLMDB(path: d.path, mapBytesInitial: 1 << 20, mapBytesMax: 2 << 20)
        defer { log.close() }
        let p = try f.producer(on: log)
        var reported: UInt64 = 0
        var nonce: UInt64 = 0
        do {
            for _ in 0 ..< 1_000 {
                for _ in 0 ..< 20 {
                    nonce += 1
                    try p.submit(f.event(f.alice, nonce, .transfer(to: f.bob.publicKey, amount: 1, memo: String(repeating: "c", count: 250))).bytes)
                }
                if let b = try p.commit() { reported = b.header.height.value }
            }
        } catch {}
        #expect(reported > 4)
        #expect(try log.metadata()?.head.value == reported)
    }

    @Test func aKeyWithoutVotingPowerCannotProduce() throws {
        let log = LedgerLog.memory()
        _ = try log.initialize(genesis: f.genesis)
        #expect(throws: ProducerError.self) {
            _ = try SoloProducer(log: log, key: f.alice, clock: { _ in 0 })
        }
    }
}
