import ArgumentParser
import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerProjections
import LedgerStore
import LedgerWorkload

/// `chaosledger bench`: throughput of the spine next to baselines measured in the same
/// run on the same machine (raw libsodium verification, raw LMDB appends). Run it on a
/// release build: `swift run -c release chaosledger bench`.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure ingest, append, replay and rebuild against raw baselines.")
    @Option(help: "Number of 200-byte events.") var events = 100_000
    @Option(help: "Events per block.") var blockEvents = 1_000
    @Option(help: "Scratch directory (default: a new one under /tmp, removed afterwards).") var dir: String?
    @Flag(help: "Print the figures as JSON.") var json = false
    @Option(help: "Repetitions of each phase; each figure is the best of them (the machine is shared and noisy).") var repeats = 3
    @Option(help: "Only these phases (comma-separated: verify,ingest,append,replay,rebuild,state). The state phase runs only when named.") var phases: String?
    @Option(help: "State phase: account counts, comma-separated.") var stateAccounts = "1000,100000,1000000"
    @Option(help: "State phase: blocks measured at each size.") var stateBlocks = 9
    @Option(help: "The chain's rule version: 1 (no economy) or 2 (gas, base fee, per-block rewards), to measure the economy's cost.")
    var ruleVersion: UInt16 = RuleVersion.current

    /// What every phase shares: the signed events, their parts for the raw baseline, and
    /// the best rates and paired ratios measured so far.
    final class Run {
        let root: String, cores: Int, blockEvents: Int
        let chain: ChainID, producer: SigningKey, genesis: Genesis
        var signed: [[UInt8]] = [], envelopes: [Envelope] = []
        var messages: [[UInt8]] = [], sigs: [Signature] = [], keys: [PublicKey] = []
        var raw1 = Double.infinity, rawN = Double.infinity, ours = Double.infinity
        var ingest = Double.infinity, indexRate = Double.nan, append = Double.infinity, rawLMDB = Double.infinity
        var replay = Double.infinity, rebuild = Double.infinity
        var oursRatios: [Double] = [], ingestRatios: [Double] = [], appendRatios: [Double] = [], replayRatios: [Double] = []
        var ingestLog: LedgerLog!
        init(root: String, cores: Int, blockEvents: Int, chain: ChainID, producer: SigningKey, genesis: Genesis) {
            self.root = root; self.cores = cores; self.blockEvents = blockEvents
            self.chain = chain; self.producer = producer; self.genesis = genesis
        }
        /// Raw libsodium verification of every event on every core (the baseline measured
        /// just before each phase it is paired with); keeps the best rate.
        func rawVerify() -> Double {
            let t = Bench.time { _ = ParallelVerifier.rawBaseline(messages: messages, signatures: sigs, keys: keys, workers: cores) }
            rawN = min(rawN, t)
            return t
        }
    }

    func run() throws {
        if let p = phases, p.split(separator: ",").contains("state") {
            try statePhase()
            if p == "state" { return }
        }
        let root = dir ?? NSTemporaryDirectory() + "chaosledger-bench-\(UUID().uuidString)"
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: root) } }
        let r = try setUp(root: root)
        func want(_ p: String) -> Bool { phases.map { $0.split(separator: ",").contains(Substring(p)) } ?? true }
        // Each phase is paired with its baseline measured just before it; a ratio is the
        // median over `repeats` pairs. Load from other tenants of this machine moves
        // absolute rates by 1.5x within minutes; adjacent pairs see the same load.
        if want("verify") { verifyPhase(r) }
        if phases == "verify" {
            // The baseline alone, for scripts that pair it with their own runs (tools/history-bench.sh).
            let n = Double(events)
            print(String(format: "raw libsodium verify: 1 core %.0f/s, %d cores %.0f/s; ParallelVerifier %.0f/s", n / r.raw1, r.cores, n / r.rawN, n / r.ours))
            return
        }
        // Decode cost of the fixed layout (the schema decision).
        var sink = 0
        let decode = Self.time { for b in r.signed { sink &+= Int((try? Envelope(bytes: b))?.nonce ?? 0) } }
        let decodePayload = Self.time { for e in r.envelopes { if case .transfer = try! e.decodePayload() { sink &+= 1 } } }
        try ingestPhase(r)
        guard want("append") || want("replay") || want("rebuild") else {
            print(String(format: "ingest %.0f events/s", Double(events) / r.ingest)); return
        }
        try appendPhase(r)
        try replayAndRebuildPhases(r)
        report(r, decode: decode, decodePayload: decodePayload, sink: sink)
    }

    /// The chain, and `events` signed 200-byte transfers from 1,000 authors.
    func setUp(root: String) throws -> Run {
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
                                  allocations: keys.map { .init(account: $0.publicKey, amount: 1 << 40) }, ruleVersion: ruleVersion)
        let r = Run(root: root, cores: ParallelVerifier.cores, blockEvents: blockEvents, chain: chain, producer: producer, genesis: genesis)
        // 200-byte signed transfers: 152 bytes of envelope + 48 of payload (6-byte memo).
        stderr("bench: signing \(events) events…")
        r.signed.reserveCapacity(events)
        for i in 0 ..< events {
            let a = i % authors
            let e = EventCrypto.makeEvent(chain: chain, key: keys[a], nonce: UInt64(i / authors + 1), fee: 1,
                                          payload: .transfer(to: keys[(a + 1) % authors].publicKey, amount: 1, memo: "bench!"))
            r.signed.append(e.bytes)
        }
        precondition(r.signed[0].count == 200, "bench events must be 200 bytes, got \(r.signed[0].count)")
        r.envelopes = r.signed.map { try! Envelope(bytes: $0) }
        r.messages = r.envelopes.map { Domain.event(chain.raw) + Array($0.signedBytes) }
        r.sigs = r.envelopes.map(\.signature)
        r.keys = r.envelopes.map(\.author)
        return r
    }

    /// Raw verification on one core and on all, and ours beside it.
    func verifyPhase(_ r: Run) {
        for _ in 0 ..< repeats {
            r.raw1 = min(r.raw1, Self.time { _ = ParallelVerifier.rawBaseline(messages: r.messages, signatures: r.sigs, keys: r.keys, workers: 1) })
            let base = r.rawVerify()
            let o = Self.time { _ = ParallelVerifier.verify(r.envelopes, workers: r.cores) }
            r.ours = min(r.ours, o)
            r.oursRatios.append(base / o)
        }
    }

    /// 1. Ingest: decode + verify on every core + admit (nonce, balance, …) + durable block commit.
    func ingestPhase(_ r: Run) throws {
        stderr("bench: ingest…")
        var batches: [[[UInt8]]] = []
        var i = 0
        while i < r.signed.count { batches.append(Array(r.signed[i ..< min(i + blockEvents, r.signed.count)])); i += blockEvents }
        for k in 0 ..< repeats {
            let log = try LedgerLog.openLMDB(path: r.root + "/ingest-\(k)")
            _ = try log.initialize(genesis: r.genesis)
            let p = try SoloProducer(log: log, key: r.producer, clock: { h in h.value * 1_000 })
            var refused = 0
            let base = r.rawVerify()
            let t = Self.time {
                for batch in try! p.ingest(batches) { for x in batch { if case .failure = x { refused += 1 } } }
            }
            r.ingest = min(r.ingest, t)
            r.ingestRatios.append(base / t)
            precondition(refused == 0, "bench events were refused")
            // The indexer catches up beside the appends; finish it before the next phase
            // and time a full catch-up on its own.
            try log.catchUpIndex()
            if k == repeats - 1 {
                r.indexRate = Double(events) / Self.time { try! log.rebuildIndex() }
            }
            r.ingestLog = log
        }
    }

    /// 2. Append of verified events (group commit) beside raw LMDB appends of the same bytes.
    func appendPhase(_ r: Run) throws {
        stderr("bench: append…")
        let head = try r.ingestLog.metadata()!.head
        var commits: [BlockCommit] = []
        for h in 1 ... head.value {
            let b = try r.ingestLog.block(at: Height(h))!
            let evs = try r.ingestLog.events(from: b.firstSequence, count: Int(b.header.eventCount))
            commits.append(BlockCommit(block: b, blockHash: Blake2b.hash(b.headerBytes), events: evs.map { ($0.id, $0.envelope) }))
        }
        for k in 0 ..< repeats {
            let appendLog = try LedgerLog.openLMDB(path: r.root + "/append-\(k)")
            _ = try appendLog.initialize(genesis: r.genesis)
            let base = try RawLMDBBaseline.append(dir: r.root + "/raw-\(k)", records: r.signed, perTxn: blockEvents)
            r.rawLMDB = min(r.rawLMDB, base)
            let t = Self.time { for c in commits { try! appendLog.append(c) } }
            r.append = min(r.append, t)
            r.appendRatios.append(base / t)
            try appendLog.catchUpIndex()
        }
    }

    /// 3. Replay with full verification; 4. rebuild without.
    func replayAndRebuildPhases(_ r: Run) throws {
        stderr("bench: replay…")
        let reader = try LedgerLog.openLMDB(path: r.ingestLog.path, mode: .readOnly)
        for _ in 0 ..< repeats {
            let base = r.rawVerify()
            let (report, _) = Replayer(log: reader).run()
            r.replayRatios.append(base / report.seconds)
            precondition(report.ok && report.events == UInt64(events), "replay failed: \(String(describing: report.failure))")
            r.replay = min(r.replay, report.seconds)
        }
        stderr("bench: rebuild…")
        for _ in 0 ..< repeats {
            let (_, stats) = try StateLoader.rebuild(r.ingestLog)
            precondition(stats.events == UInt64(events))
            r.rebuild = min(r.rebuild, stats.seconds)
        }
    }

    func report(_ r: Run, decode: Double, decodePayload: Double, sink: Int) {
        let n = Double(events), cores = r.cores
        let figures: [(String, Double, String)] = [
            ("raw libsodium verify, 1 core", n / r.raw1, "baseline"),
            ("raw libsodium verify, \(cores) cores", n / r.rawN, "baseline"),
            ("ParallelVerifier (ours), \(cores) cores", n / r.ours, pct(r.oursRatios, "raw \(cores)-core verify", target: 95)),
            ("ingest: verify + admit + commit (blocks of \(blockEvents))", n / r.ingest, pct(r.ingestRatios, "raw \(cores)-core verify", target: 80)),
            ("raw LMDB append, same bytes, \(blockEvents)/txn", n / r.rawLMDB, "baseline"),
            ("append of verified events (group commit)", n / r.append, pct(r.appendRatios, "raw LMDB", target: 50)),
            ("index build (ids + streams), from scratch", r.indexRate, "background, beside appends"),
            ("replay with verification", n / r.replay, pct(r.replayRatios, "raw \(cores)-core verify", target: 80)),
            ("rebuild without verification", n / r.rebuild, n / r.rebuild >= 500_000 ? "target ≥ 500000/s: met" : "target ≥ 500000/s: NOT met"),
            ("envelope decode (fixed layout), ns/event", decode / n * 1e9, "ns"),
            ("payload decode (transfer), ns/event", decodePayload / n * 1e9, "ns"),
        ]
        if json {
            printJSON(Dictionary(uniqueKeysWithValues: figures.map { ($0.0, $0.1) }).merging(["events": n, "cores": Double(cores), "sink": Double(sink % 2)]) { a, _ in a })
            return
        }
        print("chaosledger bench: \(events) events of 200 bytes, 1000 authors, blocks of \(blockEvents), \(cores) cores, best of \(repeats); ratios: median of \(repeats) adjacent pairs")
        for (name, v, note) in figures {
            let unit = note == "ns" ? "ns      " : "events/s"
            let padded = name.count < 62 ? name + String(repeating: " ", count: 62 - name.count) : name
            print("  \(padded) \(String(format: "%10.0f", v)) \(unit)   \(note == "ns" ? "" : note)")
        }
    }

    /// The median of paired ratios (phase rate ÷ the baseline rate measured just before it).
    func pct(_ ratios: [Double], _ name: String, target: Int) -> String {
        guard !ratios.isEmpty else { return "no baseline" }
        let sorted = ratios.sorted()
        let p = sorted[sorted.count / 2] * 100
        let all = sorted.map { String(format: "%.0f", $0 * 100) }.joined(separator: "/")
        return String(format: "%.0f%% of %@, median of %@ (target ≥ %d%%: %@)", p, name, all, target, p >= Double(target) ? "met" : "NOT met")
    }

    static func time(_ body: () throws -> Void) rethrows -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
}
