import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerHTTP
import LedgerNode
import LedgerViews

/// The load benchmark of the replicated network: 4 validator processes on this
/// machine, clients submitting signed transfers over HTTP, committed events/s and
/// commit latency at light, half and full load, next to raw libsodium verification
/// measured in the same run.
struct BenchNet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-net",
        abstract: "Load-test 4 validator processes over HTTP: committed events/s and commit latency next to raw libsodium verify.",
        discussion: """
        Ceiling: each of the 4 processes verifies every event once, so on C cores the
        network cannot commit more than C/4 × the one-core verify rate (half of it on 2
        cores). Full load: every client submits its next batch as soon as the last one
        committed; the default 32 clients × 50 events keep the nodes saturated (16 left
        them short of work: smaller blocks, more turns and context switches per event).
        Half load: batches paced at half the full-load rate, the clients' starts spread
        over one interval so they do not arrive together. Light load: one event at a
        time, 20 per second. Latency: from the HTTP request until its receipt
        says committed (the node answers when the block is durable in its log).

        The three phases run --rounds times, each paired with its own raw rate; the
        summary is the median over the rounds (this machine is shared: one round can be
        slowed by neighbours that the raw rate, measured just before and after, misses).
        Each phase also reports the CPU the hypervisor took from the machine meanwhile
        (steal, from /proc/stat), and, for context, its throughput against what two
        threads of raw verification reach around it (raw2 / 4): on this shared VM two
        threads have verified between 1.2 and 2.6 times what one thread does.
        """)
    @Option(help: "Directory for the cluster (default: a new temporary one, removed afterwards).") var dir: String?
    @Option(help: "Seconds per load phase.") var seconds = 15.0
    @Option(help: "Rounds of the light, full and half phases; the summary is their median.") var rounds = 3
    @Option(help: "Concurrent clients (each with one request in flight).") var clients = 32
    @Option(help: "Events per request.") var batch = 50
    @Option(help: "How long a proposal may wait for a fuller block while others are in flight (the nodes' consensus.blockIntervalMs).")
    var blockIntervalMs = 50
    @Option(help: "First mesh port.") var meshPort = 27_100
    @Option(help: "First HTTP port.") var httpPort = 28_100
    @Flag(help: "Print the result as JSON.") var json = false

    struct Phase {
        var name: String
        var committed = 0
        var seconds = 0.0
        var latenciesMs: [Double] = []
        var rejected: [String: Int] = [:]
        /// Raw one-core verifications per second around this phase.
        var raw = 0.0
        /// Raw verifications per second of two threads at once, measured beside `raw`:
        /// what this machine's 2 cores gave then (not always 2 × `raw` on a shared VM).
        var raw2 = 0.0
        /// CPU seconds (user + system) the 4 node processes and this client process used
        /// during the phase: a figure the machine's noise (steal, neighbours) moves less
        /// than wall-clock throughput.
        var nodeCPU = 0.0
        var clientCPU = 0.0
        /// Blocks committed during the phase (the chain's height before and after).
        var blocks = 0
        /// The share of the machine's CPU time the hypervisor took during the phase, and
        /// during its two raw measurements (from /proc/stat).
        var steal = 0.0
        var rawSteal = 0.0
        var rate: Double { seconds > 0 ? Double(committed) / seconds : 0 }
        func ceiling(_ cores: Int) -> Double { raw * Double(cores) / 4 }
        /// The same ceiling from the measured two-thread rate, for context (2 cores).
        var ceiling2: Double { raw2 / 4 }
        /// Node CPU per committed event, in µs.
        var nodeMicros: Double { committed > 0 ? 1e6 * nodeCPU / Double(committed) : 0 }
        /// The share of the nodes' CPU that is the 4 verifications each event needs at the
        /// raw rate: the CPU-time form of "fraction of the ceiling".
        var verifyShare: Double { committed > 0 && raw > 0 ? 4e6 / raw / nodeMicros : 0 }
    }

    func validate() throws {
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        guard clients >= 1, batch >= 1 else { throw ValidationError("--clients and --batch must be at least 1") }
    }

    func run() async throws {
        let path = dir ?? (NSTemporaryDirectory() + "chaosledger-bench-net-\(getpid())")
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: path) } }
        let (layout, procs, keys) = try ClusterLayout.bench(dir: path, meshPort: meshPort, httpPort: httpPort, agents: clients)
        for p in procs { try p.start(extra: ["--log-level", "notice", "--consensus-block-interval-ms", "\(blockIntervalMs)"]) }
        defer { for p in procs { p.stop() } }
        let nodes = (0 ..< 4).map { NodeClient(layout.httpURL($0)) }
        let ports = (0 ..< 4).map { httpPort + $0 }
        try await Self.waitReady(nodes, logs: path + "/logs")
        let chain = try ChainID("chaosledger-devnet")
        let to = keys[0].publicKey
        // Pre-signed events, so client signing does not compete with the nodes while
        // measuring (signed on every core before the first phase).
        let perClient = Int(max(200, 2.2 * seconds * 8_000 / Double(clients))) * self.rounds
        stderr("bench-net: signing \(perClient * clients) events")
        let pools = Self.sign(keys: keys, perClient: perClient, chain: chain, to: to)
        let cursor = Cursor(clients)

        // Baseline in the same run, paired with each phase: one core verifying 20,000 of
        // these events with raw libsodium just before and just after it (the machine is
        // shared, so a phase is compared with the mean of the two).
        let sample = pools.flatMap { $0.prefix(20_000 / clients + 1) }.prefix(20_000).map { try! Envelope(bytes: $0) }
        let msgs = sample.map { Domain.event($0.chainID) + Array($0.signedBytes) }
        func rawRate(workers: Int = 1) -> Double {
            let t0 = Date()
            _ = ParallelVerifier.rawBaseline(messages: msgs, signatures: sample.map(\.signature), keys: sample.map(\.author), workers: workers)
            return Double(sample.count) / Date().timeIntervalSince(t0)
        }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let pids = procs.compactMap { $0.process?.processIdentifier }
        func paired(_ run: () async -> Phase) async -> Phase {
            let s0 = MachineCPU.now()
            let before = rawRate(), before2 = rawRate(workers: 2)
            let s1 = MachineCPU.now()
            let (n0, c0) = (pids.reduce(0) { $0 + Self.cpuSeconds(pid: $1) }, Self.cpuSeconds(pid: getpid()))
            let h0 = await Self.height(nodes[0])
            var p = await run()
            let s2 = MachineCPU.now()
            p.blocks = await Self.height(nodes[0]) - h0
            p.nodeCPU = pids.reduce(0) { $0 + Self.cpuSeconds(pid: $1) } - n0
            p.clientCPU = Self.cpuSeconds(pid: getpid()) - c0
            p.raw = (before + rawRate()) / 2
            p.raw2 = (before2 + rawRate(workers: 2)) / 2
            let s3 = MachineCPU.now()
            p.steal = s2.steal(since: s1)
            p.rawSteal = (s1.steal(since: s0) + s3.steal(since: s2)) / 2
            return p
        }

        // For context only: what two threads verify on this machine, against twice one.
        let raw1 = rawRate(), raw2 = rawRate(workers: 2)
        var results: [[Phase]] = []
        for r in 1 ... self.rounds {
            stderr("bench-net: round \(r) of \(self.rounds): light load")
            let light = await paired { await Self.load(name: "light", ports: ports, pools: pools, cursor: cursor, clients: 1, batch: 1, intervalMs: 50, seconds: min(seconds, 10)) }
            stderr("bench-net: round \(r) of \(self.rounds): full load")
            let full = await paired { await Self.load(name: "full", ports: ports, pools: pools, cursor: cursor, clients: clients, batch: batch, intervalMs: 0, seconds: seconds) }
            let halfInterval = full.rate > 0 ? 1000 * Double(batch * clients) / (full.rate / 2) : 1000
            stderr("bench-net: round \(r) of \(self.rounds): half load")
            let half = await paired { await Self.load(name: "half", ports: ports, pools: pools, cursor: cursor, clients: clients, batch: batch, intervalMs: halfInterval, seconds: seconds) }
            results.append([light, half, full])
        }
        report(results, raw1: raw1, raw2: raw2, cores: cores)
    }

    /// Prints every round's phases and the median of the rounds, as text or JSON.
    func report(_ results: [[Phase]], raw1: Double, raw2: Double, cores: Int) {
        let names = ["light", "half", "full"]
        func median(_ xs: [Double]) -> Double {
            let s = xs.sorted()
            return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        func of(_ p: Phase) -> Double { p.rate / p.ceiling(cores) }
        func of2(_ p: Phase) -> Double { p.raw2 > 0 ? p.rate / p.ceiling2 : 0 }
        func summary(_ i: Int) -> [String: Any] {
            let ps = results.map { $0[i] }
            return ["name": names[i], "ofCeiling": median(ps.map(of)), "committedPerSecond": median(ps.map(\.rate)),
                    "rawVerifyPerSecond1Core": median(ps.map(\.raw)), "rawVerifyPerSecond2Threads": median(ps.map(\.raw2)),
                    "ofTwoThreadCeiling": median(ps.map(of2)),
                    "p50Ms": median(ps.map { percentile($0.latenciesMs, 50) }), "p99Ms": median(ps.map { percentile($0.latenciesMs, 99) }),
                    "verifyShareOfNodeCPU": median(ps.map(\.verifyShare)), "steal": median(ps.map(\.steal))]
        }
        if json {
            printJSON([
                "cores": cores, "clients": clients, "batch": batch,
                "rawVerifyPerSecond1Core": Int(raw1), "rawVerifyPerSecond2Threads": Int(raw2),
                "median": names.indices.map(summary),
                "rounds": results.map { $0.map { p in
                    ["name": p.name, "committedPerSecond": Int(p.rate), "rawVerifyPerSecond1Core": Int(p.raw),
                     "ceilingEventsPerSecond": Int(p.ceiling(cores)), "ofCeiling": of(p),
                     "rawVerifyPerSecond2Threads": Int(p.raw2), "ofTwoThreadCeiling": of2(p),
                     "p50Ms": percentile(p.latenciesMs, 50), "p99Ms": percentile(p.latenciesMs, 99),
                     "committed": p.committed, "rejected": p.rejected,
                     "nodeCPUMicrosPerEvent": p.nodeMicros, "verifyShareOfNodeCPU": p.verifyShare,
                     "clientCPUSeconds": p.clientCPU, "nodeCPUSeconds": p.nodeCPU, "blocks": p.blocks,
                     "steal": p.steal, "rawSteal": p.rawSteal] as [String: Any]
                } },
            ])
            return
        }
        print("bench-net: 4 validator processes, \(cores) cores, \(clients) clients × \(batch) events per request, \(self.rounds) rounds")
        print("  ceiling = raw 1-core libsodium verify/s (mean of just before and just after the phase) × \(cores) cores / 4 verifications")
        print(String(format: "  (context: 2 threads verified %.0f/s = %.2f × one thread's %.0f/s at the start; \"2T\" below is each phase against raw 2-thread verify/s / 4)", raw2, raw2 / raw1, raw1))
        for (r, phases) in results.enumerated() {
            print("  round \(r + 1):")
            for p in phases {
                print(String(format: "    %-5@ load: %7.0f committed events/s  raw %6.0f/s  ceiling %6.0f  → %4.0f%% of ceiling (2T %6.0f/s: %3.0f%%)   latency p50 %6.1f ms  p99 %6.1f ms   steal %2.0f%% (raw %2.0f%%)%@",
                             p.name as NSString, p.rate, p.raw, p.ceiling(cores), 100 * of(p), p.raw2, 100 * of2(p),
                             percentile(p.latenciesMs, 50), percentile(p.latenciesMs, 99), 100 * p.steal, 100 * p.rawSteal,
                             (p.rejected.isEmpty ? "" : "  refused \(p.rejected)") as NSString))
            }
            for p in phases where p.committed > 0 {
                print(String(format: "    %-5@ CPU:  nodes %5.1f s, %6.1f µs/event (raw verify %5.1f µs × 4 = %4.0f%%); client %4.1f s; %5d blocks, %5.1f client events each",
                             p.name as NSString, p.nodeCPU, p.nodeMicros, 1e6 / p.raw, 100 * p.verifyShare, p.clientCPU,
                             p.blocks, p.blocks > 0 ? Double(p.committed) / Double(p.blocks) : 0))
            }
        }
        print("  median of \(self.rounds) rounds (each against its own raw rate):")
        for i in names.indices {
            let ps = results.map { $0[i] }
            let ofs = ps.map(of)
            print(String(format: "    %-5@ load: %4.0f%% of ceiling (rounds %@; 2T %3.0f%%)   latency p50 %6.1f ms  p99 %6.1f ms   node CPU share of the 4 verifications %3.0f%%",
                         names[i] as NSString, 100 * median(ofs), ofs.map { String(format: "%.0f%%", 100 * $0) }.joined(separator: ", ") as NSString,
                         100 * median(ps.map(of2)),
                         median(ps.map { percentile($0.latenciesMs, 50) }), median(ps.map { percentile($0.latenciesMs, 99) }),
                         100 * median(ps.map(\.verifyShare))))
        }
    }

    /// Waits until every node reports `/ready` (at most 60 s).
    static func waitReady(_ nodes: [NodeClient], logs: String) async throws {
        let readyBy = Date().addingTimeInterval(60)
        for n in nodes {
            while true {
                if let (s, _) = try? await n.request("GET", "/ready"), s == 200 { break }
                guard Date() < readyBy else { throw CLIError("the cluster did not become ready; logs in \(logs)") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Each client's events, signed on every core before the first phase.
    static func sign(keys: [SigningKey], perClient: Int, chain: ChainID, to: PublicKey) -> [[[UInt8]]] {
        let signed = UncheckedBox([[[UInt8]]](repeating: [], count: keys.count))
        DispatchQueue.concurrentPerform(iterations: keys.count) { i in
            let pool = (1 ... perClient).map { EventCrypto.makeEvent(chain: chain, key: keys[i], nonce: UInt64($0), fee: 1,
                                                                    payload: .transfer(to: to, amount: 1, memo: "")).bytes }
            signed.lock.withLock { signed.value[i] = pool }
        }
        return signed.value
    }

    /// The chain's height as a node reports it (0 if it does not answer).
    static func height(_ n: NodeClient) async -> Int {
        ((try? await n.getJSON("/v1/status"))?["height"] as? Int) ?? 0
    }

    /// The machine's CPU time counters (`/proc/stat`, first line), for steal.
    struct MachineCPU {
        var total: Double = 0
        var stolen: Double = 0
        static func now() -> MachineCPU {
            guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
                  let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") else { return MachineCPU() }
            // user nice system idle iowait irq softirq steal (guest time is inside user).
            let f = line.split(separator: " ").dropFirst().prefix(8).compactMap { Double($0) }
            guard f.count == 8 else { return MachineCPU() }
            return MachineCPU(total: f.reduce(0, +), stolen: f[7])
        }
        func steal(since a: MachineCPU) -> Double { total > a.total ? (stolen - a.stolen) / (total - a.total) : 0 }
    }

    /// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`.
    static func cpuSeconds(pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return 0 }
        // Fields after the command name: state is field 3, utime 14 and stime 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    final class UncheckedBox<T>: @unchecked Sendable {
        let lock = NSLock()
        var value: T
        init(_ v: T) { value = v }
    }

    /// Which pre-signed event each client submits next.
    final class Cursor: @unchecked Sendable {
        let lock = NSLock()
        var next: [Int]
        init(_ n: Int) { next = [Int](repeating: 0, count: n) }
        func take(_ c: Int, _ n: Int, max: Int) -> Range<Int>? {
            lock.withLock {
                let lo = next[c]
                guard lo < max else { return nil }
                next[c] = Swift.min(max, lo + n)
                return lo ..< next[c]
            }
        }
    }

    /// Runs `clients` client threads (blocking sockets: the cooperative pool has only
    /// as many threads as cores) until `seconds` pass or their events run out.
    static func load(name: String, ports: [Int], pools: [[[UInt8]]], cursor: Cursor, clients: Int, batch: Int,
              intervalMs: Double, seconds: Double) async -> Phase {
        let end = Date().addingTimeInterval(seconds)
        let start = Date()
        let lock = NSLock()
        nonisolated(unsafe) var results: [Phase] = []
        await withCheckedContinuation { (cont: CheckedContinuation<Void, Never>) in
            let group = DispatchGroup()
            for c in 0 ..< clients {
                group.enter()
                let t = Thread {
                    var p = Phase(name: name)
                    let conn = LoadConnection(port: ports[c % ports.count])
                    // Paced clients send on a schedule of their own, offset from one
                    // another: started together they would stay in step and every
                    // interval would bring one burst of clients × batch events.
                    var due = start.addingTimeInterval(intervalMs * Double(c) / Double(clients) / 1000)
                    while true {
                        if intervalMs > 0 {
                            let wait = due.timeIntervalSinceNow
                            if wait > 0 { usleep(useconds_t(wait * 1e6)) }
                            due = max(due.addingTimeInterval(intervalMs / 1000), Date())
                        }
                        guard Date() < end, let r = cursor.take(c, batch, max: pools[c].count) else { break }
                        let t = Date()
                        guard let (status, body) = try? conn.post("/v1/events?wait=true&timeoutMs=20000", JSONText.submission(Array(pools[c][r]))),
                              status == 200 || status == 422,
                              let rs = try? JSONDecoder().decode(NodeClient.Receipts.self, from: Data(body)).receipts else {
                            p.rejected["http", default: 0] += 1; continue
                        }
                        let ms = Date().timeIntervalSince(t) * 1000
                        for x in rs {
                            if x.status == "committed" { p.committed += 1; p.latenciesMs.append(ms) } else { p.rejected[x.code ?? x.status, default: 0] += 1 }
                        }
                    }
                    lock.withLock { results.append(p) }
                    group.leave()
                }
                t.start()
            }
            group.notify(queue: .global()) { cont.resume() }
        }
        var total = Phase(name: name)
        total.seconds = Date().timeIntervalSince(start)
        for p in results {
            total.committed += p.committed
            total.latenciesMs += p.latenciesMs
            for (k, v) in p.rejected { total.rejected[k, default: 0] += v }
        }
        return total
    }
}
