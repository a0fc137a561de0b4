import ArgumentParser
import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerProjections
import LedgerStore

/// `chaosledger bench`: throughput of the spine next to baselines measured in the same
/// run on the same machine (raw libsodium verification, raw LMDB appends). Run it on a
/// release build: `swift run -c release chaosledger bench`.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure ingest, append, replay and rebuild against raw baselines.")
    @Option(help: "Number of 200-byte events.") var events = 100_000
    @Option(help: "Events per block.") var blockEvents = 1_000
    @Option(help: "Scratch directory (default: a new one under /tmp, removed afterwards).") var dir: String?
    @Flag(help: "Print the figures as JSON.") var json = false

    func run() throws {
        let root = dir ?? NSTemporaryDirectory() + "chaosledger-bench-\(UUID().uuidString)"
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: root) } }
        let cores = ParallelVerifier.cores
        let chain = try ChainID("chaosledger-bench")
        let authors = 1_000
        let keys = (0 ..< authors).map { SigningKey.derived("bench-\($0)") }
        let producer = SigningKey.derived("bench-producer")
        var params = ChainParameters()
        params.blockEventsMax = UInt32(blockEvents)
        params.blockBytesMax = UInt32(max(Limits.eventBytesMax, blockEvents * 256))
        params.checkpointInterval = 50
        let genesis = try Genesis(chainID: chain, timestampMs: 0, parameters: params,
                                  validators: [.init(key: producer.publicKey, name: "p", personality: "lawful", stake: 1 << 40)],
                                  allocations: keys.map { .init(account: $0.publicKey, amount: 1 << 40) })

        // 200-byte signed transfers: 152 bytes of envelope + 48 of payload (6-byte memo).
        stderr("bench: signing \(events) events…")
        var signed: [[UInt8]] = []
        signed.reserveCapacity(events)
        for i in 0 ..< events {
            let a = i % authors
            let e = EventCrypto.makeEvent(chain: chain, key: keys[a], nonce: UInt64(i / authors + 1), fee: 1,
                                          payload: .transfer(to: keys[(a + 1) % authors].publicKey, amount: 1, memo: "bench!"))
            signed.append(e.bytes)
        }
        precondition(signed[0].count == 200, "bench events must be 200 bytes, got \(signed[0].count)")
        let envelopes = signed.map { try! Envelope(bytes: $0) }

        // Baseline 1: raw crypto_sign_verify_detached on 1 and on all cores.
        let messages = envelopes.map { Domain.event(chain.raw) + Array($0.signedBytes) }
        let sigs = envelopes.map(\.signature), pks = envelopes.map(\.author)
        let raw1 = time { _ = ParallelVerifier.rawBaseline(messages: messages, signatures: sigs, keys: pks, workers: 1) }
        let rawN = time { _ = ParallelVerifier.rawBaseline(messages: messages, signatures: sigs, keys: pks, workers: cores) }

        // Decode cost of the fixed layout (the schema decision).
        var sink = 0
        let decode = time { for b in signed { sink &+= Int((try? Envelope(bytes: b))?.nonce ?? 0) } }
        let decodePayload = time { for e in envelopes { if case .transfer = try! e.decodePayload() { sink &+= 1 } } }

        // 1. Ingest: decode + verify on every core + admit (nonce, balance, …) + durable block commit.
        stderr("bench: ingest…")
        let ingestLog = try LedgerLog.openLMDB(path: root + "/ingest")
        _ = try ingestLog.initialize(genesis: genesis)
        let p = try SoloProducer(log: ingestLog, key: producer, clock: { h in h.value * 1_000 })
        var refused = 0
        let ingest = time {
            var i = 0
            while i < signed.count {
                let batch = Array(signed[i ..< min(i + blockEvents, signed.count)])
                for r in p.submitBatch(batch) { if case .failure = r { refused += 1 } }
                _ = try! p.commit()
                i += blockEvents
            }
        }
        precondition(refused == 0, "bench events were refused")

        // 2. Append of already-verified events: the store alone, the same blocks re-appended
        //    into a fresh log, next to raw LMDB appends of the same bytes.
        stderr("bench: append…")
        let head = try ingestLog.metadata()!.head
        var commits: [BlockCommit] = []
        for h in 1 ... head.value {
            let b = try ingestLog.block(at: Height(h))!
            let evs = try ingestLog.events(from: b.firstSequence, count: Int(b.header.eventCount))
            commits.append(BlockCommit(block: b, blockHash: Blake2b.hash(b.headerBytes), events: evs.map { ($0.id, $0.envelope) },
                                       streams: evs.map { e in (try! e.envelope.decodePayload()).streams(author: e.envelope.author, id: e.id) }))
        }
        let appendLog = try LedgerLog.openLMDB(path: root + "/append")
        _ = try appendLog.initialize(genesis: genesis)
        let append = time { for c in commits { try! appendLog.append(c) } }
        let rawLMDB = try RawLMDBBaseline.append(dir: root + "/raw", records: signed, perTxn: blockEvents)

        // 3. Replay with full verification; 4. rebuild without.
        stderr("bench: replay…")
        let reader = try LedgerLog.openLMDB(path: root + "/ingest", mode: .readOnly)
        let (report, _) = Replayer(log: reader).run()
        precondition(report.ok, "replay failed: \(String(describing: report.failure))")
        stderr("bench: rebuild…")
        let (_, stats) = try StateLoader.rebuild(ingestLog)

        let n = Double(events)
        let figures: [(String, Double, String)] = [
            ("raw libsodium verify, 1 core", n / raw1, "baseline"),
            ("raw libsodium verify, \(cores) cores", n / rawN, "baseline"),
            ("ingest: verify + admit + commit (blocks of \(blockEvents))", n / ingest, pct(n / ingest, n / rawN, "raw \(cores)-core verify", target: 80)),
            ("raw LMDB append, same bytes, \(blockEvents)/txn", n / rawLMDB, "baseline"),
            ("append of verified events (group commit)", n / append, pct(n / append, n / rawLMDB, "raw LMDB", target: 50)),
            ("replay with verification", n / report.seconds, pct(n / report.seconds, n / rawN, "raw \(cores)-core verify", target: 80)),
            ("rebuild without verification", Double(stats.events) / stats.seconds, "target ≥ 500000/s"),
            ("envelope decode (fixed layout), ns/event", decode / n * 1e9, "ns"),
            ("payload decode (transfer), ns/event", decodePayload / n * 1e9, "ns"),
        ]
        if json {
            printJSON(Dictionary(uniqueKeysWithValues: figures.map { ($0.0, $0.1) }).merging(["events": n, "cores": Double(cores), "sink": Double(sink % 2)]) { a, _ in a })
            return
        }
        print("chaosledger bench: \(events) events of 200 bytes, \(authors) authors, blocks of \(blockEvents), \(cores) cores")
        for (name, v, note) in figures {
            let unit = note == "ns" ? "ns" : "events/s"
            print(String(format: "  %-58@ %12.0f %@   %@", name as NSString, v, unit, note == "ns" ? "" : note))
        }
        _ = sink
    }

    func pct(_ v: Double, _ base: Double, _ name: String, target: Int) -> String {
        let p = v / base * 100
        return String(format: "%.0f%% of %@ (target ≥ %d%%: %@)", p, name, target, p >= Double(target) ? "met" : "NOT met")
    }

    func time(_ body: () throws -> Void) rethrows -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
}
