import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto

/// How long a wiped validator takes to catch up on a chain of N events: replaying every
/// block from the genesis (state transfer) against state sync from its peers' newest
/// stable checkpoint, next to raw libsodium verification of the N events on every core
/// measured in the same run (the least a replay of the history can cost).
struct BenchSync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-sync",
        abstract: "Catch-up time of a wiped validator: state sync from a snapshot against replaying every block, on a chain of N events.",
        discussion: """
        Three validators of four commit N pre-signed transfers (a quorum without the
        fourth); then the fourth starts with an empty data directory, first replaying
        every block from its peers, then (wiped again) with --state-sync-from the three.
        Caught up: its height reaches the others'. The baseline is raw libsodium
        verification of the N events on every core, just before the two catch-ups.
        Run it at two sizes: the replay grows with the history, the sync with the state.
        """)
    @Option(help: "Events in the chain before the fourth validator starts.") var events = 100_000
    @Option(help: "Concurrent clients (each an account sending transfers).") var clients = 16
    @Option(help: "Events per request.") var batch = 50
    @Option(help: "Distinct accounts the transfers go to (default: a new one each, so the state grows with the history).")
    var recipients: Int?
    @Option(help: "Directory for the cluster (default: a new temporary one, removed afterwards).") var dir: String?
    @Option(help: "First mesh port.") var meshPort = 27_300
    @Option(help: "First HTTP port.") var httpPort = 28_300
    @Flag(help: "Print the result as JSON.") var json = false

    func run() async throws {
        let path = dir ?? (NSTemporaryDirectory() + "chaosledger-bench-sync-\(getpid())")
        defer { if dir == nil { try? FileManager.default.removeItem(atPath: path) } }
        let (layout, procs, keys) = try ClusterLayout.bench(dir: path, meshPort: meshPort, httpPort: httpPort, agents: clients)
        for p in procs.prefix(3) { try p.start(extra: ["--log-level", "notice"]) }
        defer { for p in procs { _ = p.stop() } }
        let nodes = (0 ..< 4).map { NodeClient(layout.httpURL($0)) }
        try await BenchNet.waitReady(Array(nodes.prefix(3)), logs: path + "/logs")
        let chain = try ChainID("chaosledger-devnet")
        let perClient = (events + clients - 1) / clients
        stderr("bench-sync: signing \(perClient * clients) events")
        let pools = Self.sign(keys: keys, perClient: perClient, chain: chain, recipients: recipients ?? perClient * clients)
        stderr("bench-sync: committing them on 3 validators")
        let loaded = await BenchNet.load(name: "load", ports: (0 ..< 3).map { httpPort + $0 }, pools: pools, cursor: BenchNet.Cursor(clients),
                                         clients: clients, batch: batch, intervalMs: 0, seconds: 3_600)
        guard loaded.committed >= events * 99 / 100 else { throw CLIError("only \(loaded.committed) of \(events) events committed: \(loaded.rejected)") }
        let head = await BenchNet.height(nodes[0])
        let offer = await Self.offerNear(head, nodes[0], chain: chain, key: keys[0], nonce: UInt64(perClient), to: keys[1].publicKey)
        // Baseline: raw verification of the history's events on every core.
        let envelopes = pools.flatMap { $0 }.prefix(events).map { try! Envelope(bytes: $0) }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let t0 = Date()
        _ = ParallelVerifier.rawBaseline(messages: envelopes.map { Domain.event($0.chainID) + Array($0.signedBytes) },
                                         signatures: envelopes.map(\.signature), keys: envelopes.map(\.author), workers: cores)
        let raw = Date().timeIntervalSince(t0)

        let wiped = path + "/node-3"
        func catchUp(_ name: String, _ extra: [String]) async throws -> (seconds: Double, cpu: Double, height: Int) {
            for d in ["log", "consensus", "statesync"] { try? FileManager.default.removeItem(atPath: wiped + "/" + d) }
            let start = Date()
            try procs[3].start(extra: ["--log-level", "notice"] + extra)
            while true {
                let (h3, h0) = (await BenchNet.height(nodes[3]), await BenchNet.height(nodes[0]))
                if h3 > 0, h3 >= h0 { break }
                guard procs[3].running else { throw CLIError("node-3 exited during the \(name); see \(layout.logPath("node-3"))") }
                guard Date().timeIntervalSince(start) < 1_800 else { throw CLIError("node-3 did not catch up by \(name) in 30 minutes") }
                try await Task.sleep(for: .milliseconds(50))
            }
            let s = Date().timeIntervalSince(start)
            let cpu = procs[3].process.map { BenchNet.cpuSeconds(pid: $0.processIdentifier) } ?? 0
            let h = await BenchNet.height(nodes[3])
            _ = procs[3].stop()
            return (s, cpu, h)
        }
        stderr("bench-sync: node-3 catches up by replaying every block")
        let replay = try await catchUp("replay", [])
        stderr("bench-sync: node-3 catches up by state sync")
        let sync = try await catchUp("state sync", ["--state-sync-from", (0 ..< 3).map(layout.httpURL).joined(separator: ",")])
        let leaves = (offer["leaves"] as? NSNumber)?.intValue ?? 0, chunks = (offer["chunks"] as? NSNumber)?.intValue ?? 0
        let at = (offer["height"] as? NSNumber)?.intValue ?? 0
        if json {
            printJSON(["events": events, "recipients": recipients ?? perClient * clients, "committed": loaded.committed, "height": head, "snapshotHeight": at, "leaves": leaves, "chunks": chunks,
                       "replaySeconds": replay.seconds, "replayCPU": replay.cpu, "syncSeconds": sync.seconds, "syncCPU": sync.cpu,
                       "rawVerifySeconds": raw, "cores": cores])
        } else {
            print("bench-sync: \(loaded.committed) events in \(head) blocks; snapshot at \(at): \(leaves) leaves, \(chunks) chunks")
            print(String(format: "  replay every block:  %.2f s to height %d (node CPU %.2f s)", replay.seconds, replay.height, replay.cpu))
            print(String(format: "  state sync:          %.2f s to height %d (node CPU %.2f s)   %.1fx faster", sync.seconds, sync.height, sync.cpu,
                         sync.seconds > 0 ? replay.seconds / sync.seconds : 0))
            print(String(format: "  baseline: raw verify of the %d events on %d cores: %.2f s", envelopes.count, cores, raw))
        }
    }

    /// A stable checkpoint near the head to sync from (a few blocks of light load if the
    /// chain idles before reaching one).
    static func offerNear(_ head: Int, _ node: NodeClient, chain: ChainID, key: SigningKey, nonce: UInt64, to: PublicKey) async -> [String: Any] {
        var nonce = nonce
        while true {
            if let o = try? await node.getJSON("/v1/sync/snapshot"), let h = (o["height"] as? NSNumber)?.intValue, h + 100 >= head { return o }
            nonce += 1
            _ = try? await node.submit([EventCrypto.makeEvent(chain: chain, key: key, nonce: nonce, fee: 1,
                                                             payload: .transfer(to: to, amount: 1, memo: "")).bytes], wait: true)
        }
    }

    /// Each client's transfers, to recipient accounts numbered 0 ..< `recipients` (any 32
    /// bytes are an account key: a hash of the number), signed on every core.
    static func sign(keys: [SigningKey], perClient: Int, chain: ChainID, recipients: Int) -> [[[UInt8]]] {
        let signed = BenchNet.UncheckedBox([[[UInt8]]](repeating: [], count: keys.count))
        DispatchQueue.concurrentPerform(iterations: keys.count) { i in
            let pool = (1 ... perClient).map { n in
                let r = UInt64((i * perClient + n) % max(1, recipients))
                return EventCrypto.makeEvent(chain: chain, key: keys[i], nonce: UInt64(n), fee: 1,
                                             payload: .transfer(to: Blake2b.hash(withUnsafeBytes(of: r.bigEndian) { Array($0) }), amount: 1, memo: "")).bytes
            }
            signed.lock.withLock { signed.value[i] = pool }
        }
        return signed.value
    }
}
