import ArgumentParser
import Foundation
import LedgerAgents
import LedgerCore
import LedgerCrypto
import LedgerHTTP
import LedgerNode
import LedgerProjections
import LedgerViews

/// A local cluster's files: keys, genesis, one config per node (ops/devnet holds an
/// example of each). `devnet` writes them once and reuses them, so a second run
/// resumes the same chain.
struct ClusterLayout {
    var dir: String
    var validators: Int
    var personalities: [String]
    var meshPort: Int
    var httpPort: Int
    var agents: Int
    var follower: Bool
    var viewTimeoutMs: Int = 1_000

    /// A benchmark's cluster: 4 lawful validators with `agents` funded agents, a 2 s view
    /// timeout; its processes (not started) and the agents' keys.
    static func bench(dir: String, meshPort: Int, httpPort: Int, agents: Int) throws -> (ClusterLayout, [NodeProcess], [SigningKey]) {
        var layout = ClusterLayout(dir: dir, validators: 4, personalities: ["lawful"], meshPort: meshPort, httpPort: httpPort,
                                   agents: agents, follower: false)
        layout.viewTimeoutMs = 2_000
        let (_, keys) = try layout.prepare()
        let procs = (0 ..< 4).map { NodeProcess(name: "node-\($0)", config: layout.configPath($0), logFile: layout.logPath("node-\($0)")) }
        return (layout, procs, keys)
    }

    func validatorKeyPath(_ i: Int) -> String { dir + "/keys/validator-\(i).key" }
    func agentKeyPath(_ i: Int) -> String { dir + "/keys/agent-\(i).key" }
    var followerKeyPath: String { dir + "/keys/follower.key" }
    func configPath(_ i: Int) -> String { dir + "/node-\(i).json" }
    var followerConfigPath: String { dir + "/follower.json" }
    func logPath(_ name: String) -> String { dir + "/logs/\(name).log" }
    /// Node index `validators` is the follower.
    func httpURL(_ i: Int) -> String { "http://127.0.0.1:\(httpPort + i)" }

    /// Writes whatever is missing; returns the validator and agent keys.
    func prepare() throws -> (validators: [SigningKey], agents: [SigningKey]) {
        let fm = FileManager.default
        for d in ["", "/keys", "/logs"] { try fm.createDirectory(atPath: dir + d, withIntermediateDirectories: true) }
        func key(_ path: String) throws -> SigningKey {
            if fm.fileExists(atPath: path) { return try KeyFile.read(from: path) }
            let k = SigningKey.generate()
            try KeyFile.write(k, to: path)
            return k
        }
        let vs = try (0 ..< validators).map { try key(validatorKeyPath($0)) }
        let ags = try (0 ..< agents).map { try key(agentKeyPath($0)) }
        let genesisPath = dir + "/genesis.json"
        if !fm.fileExists(atPath: genesisPath) {
            let g: [String: Any] = [
                "chainId": "chaosledger-devnet",
                "timestampMs": UInt64(Date().timeIntervalSince1970 * 1000),
                "parameters": ["minFee": 1, "minValidatorStake": 1_000, "unbondingBlocks": 10, "allianceAcceptWindowMs": 60_000,
                               "allianceDurationMaxMs": 86_400_000, "checkpointInterval": 50, "blockEventsMax": 1_000,
                               "blockBytesMax": 1_048_576, "slashFractionBps": 1_000, "jailBlocks": 100],
                "validators": vs.enumerated().map { i, k in
                    ["publicKey": k.publicKey.hex, "name": "validator-\(i)", "personality": personalities[i % personalities.count], "stake": 1_000_000]
                },
                "allocations": vs.map { ["account": $0.publicKey.hex, "amount": 1_000_000_000] }
                    + ags.map { ["account": $0.publicKey.hex, "amount": 1_000_000_000_000] },
            ]
            try Render.json(g, pretty: true).write(to: genesisPath)
        }
        let meshAddresses = (0 ..< validators).map { "127.0.0.1:\(meshPort + $0)" }
        // The validators serve the devnet's own follower key and no other (the mesh is
        // closed to unknown keys by default).
        let followerKey = try key(followerKeyPath)
        for i in 0 ..< validators where !fm.fileExists(atPath: configPath(i)) {
            let c: [String: Any] = [
                "role": "validator", "dataDir": "node-\(i)", "genesisFile": "genesis.json", "keyFile": "keys/validator-\(i).key",
                "personality": personalities[i % personalities.count], "wittyMemes": true,
                "consensus": ["viewTimeoutMs": viewTimeoutMs, "blockIntervalMs": 50, "primaryRule": "roundRobin"],
                "mesh": ["host": "127.0.0.1", "port": meshPort + i, "bootstrap": meshAddresses.enumerated().filter { $0.offset != i }.map(\.element),
                         "followers": [followerKey.publicKey.hex]],
                "http": ["host": "127.0.0.1", "port": httpPort + i, "requestsPerSecond": 5_000],
                "log": ["level": "info"], "drainMs": 3_000,
            ]
            try Render.json(c, pretty: true).write(to: configPath(i))
        }
        if follower, !fm.fileExists(atPath: followerConfigPath) {
            let c: [String: Any] = [
                "role": "follower", "dataDir": "follower", "genesisFile": "genesis.json", "keyFile": "keys/follower.key",
                "mesh": ["host": "127.0.0.1", "port": meshPort + validators, "bootstrap": meshAddresses],
                "http": ["host": "127.0.0.1", "port": httpPort + validators], "log": ["level": "info"],
            ]
            try Render.json(c, pretty: true).write(to: followerConfigPath)
        }
        return (vs, ags)
    }
}

extension Array where Element == UInt8 {
    func write(to path: String) throws { try Data(self).write(to: URL(fileURLWithPath: path)) }
}

/// A node running as a child process (`chaosledger node --config …`), its output
/// appended to a log file.
final class NodeProcess: @unchecked Sendable {
    let name: String
    let config: String
    let logFile: String
    private(set) var process: Process?

    init(name: String, config: String, logFile: String) { self.name = name; self.config = config; self.logFile = logFile }

    static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    func start(extra: [String] = []) throws {
        if !FileManager.default.fileExists(atPath: logFile) { _ = FileManager.default.createFile(atPath: logFile, contents: nil) }
        guard let out = FileHandle(forWritingAtPath: logFile) else { throw CLIError("cannot write \(logFile)") }
        out.seekToEndOfFile()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.executable)
        p.arguments = ["node", "--config", config] + extra
        p.standardOutput = out
        p.standardError = out
        try p.run()
        process = p
    }

    var running: Bool { process?.isRunning ?? false }

    func signal(_ s: Int32) { if let p = process, p.isRunning { kill(p.processIdentifier, s) } }

    /// SIGTERM, then waits up to `seconds` for a clean exit (SIGKILL after that). Returns the exit status.
    @discardableResult
    func stop(seconds: Double = 15) -> Int32? {
        guard let p = process else { return nil }
        signal(SIGTERM)
        let end = Date().addingTimeInterval(seconds)
        while p.isRunning, Date() < end { usleep(20_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit(); return nil }
        p.waitUntilExit()
        return p.terminationReason == .exit ? p.terminationStatus : nil
    }
}

/// Built-in agent clients: each signs a realistic mix (agent registration, transfers,
/// delegations to validators, profile updates, alliance proposals and acceptances, memes
/// and reactions, jobs posted, funded and cancelled) and
/// submits it over HTTP in batches, waiting for commitment, at a shared target rate.
final class AgentSwarm: @unchecked Sendable {
    let keys: [SigningKey]
    let validators: [PublicKey]
    let chain: ChainID
    let clients: [NodeClient]
    let batch: Int
    let lock = NSLock()
    var committed = 0
    var rejected: [String: Int] = [:]
    var latenciesMs: [Double] = []
    var kinds: [String: Int] = [:]
    /// Proposals waiting for their target to accept: (target index, alliance id).
    var proposals: [(Int, EventID)] = []
    /// Jobs an agent posted and has yet to fund, then to cancel: (client index, job id, funded).
    var jobs: [(Int, EventID, Bool)] = []
    /// Memes posted, for reactions, and who reacted to which.
    var memes: [(Int, EventID)] = []
    struct ReactionKey: Hashable { var agent: Int; var meme: EventID }
    var reacted = Set<ReactionKey>()
    let strategy = AudienceProducer(audience: ["lawful", "memetic", "loyal", "chaotic"], seed: 42, hashing: Sodium())

    init(keys: [SigningKey], validators: [PublicKey], chain: ChainID, nodes: [String], batch: Int) {
        self.keys = keys; self.validators = validators; self.chain = chain
        clients = nodes.map(NodeClient.init); self.batch = batch
    }

    func payload(_ i: Int, _ rng: inout SplitMix64, registered: Bool) -> Payload {
        if !registered {
            return .agentRegister(AgentProfile(name: "agent-\(i)", capabilities: ["compute", "memes", "audit"].shuffledPrefix(2, &rng),
                                               personality: ["lawful", "memetic", "loyal", "chaotic"][i % 4], endpoint: "agent://devnet/\(i)"))
        }
        if let p = lock.withLock({ () -> EventID? in
            guard let k = proposals.firstIndex(where: { $0.0 == i }) else { return nil }
            return proposals.remove(at: k).1
        }) { return .allianceAccept(AllianceID(createdBy: p)) }
        // A job this agent posted: fund it, then (nobody else here takes jobs) cancel it.
        if let (k, j, funded) = lock.withLock({ () -> (Int, EventID, Bool)? in
            guard let k = jobs.firstIndex(where: { $0.0 == i }) else { return nil }
            return (k, jobs[k].1, jobs[k].2)
        }) {
            lock.withLock { if funded { jobs.remove(at: k) } else { jobs[k].2 = true } }
            return funded ? .escrowRefund(JobID(createdBy: j)) : .escrowFund(JobID(createdBy: j))
        }
        let other = (i + 1 + Int(rng.below(UInt64(keys.count - 1)))) % keys.count
        switch rng.below(100) {
        case 0 ..< 55: return .transfer(to: keys[other].publicKey, amount: 1 + rng.below(1_000), memo: "job payment")
        case 55 ..< 62: return .memePost(strategy.post(rng.next()))
        case 62 ..< 66:
            // Each agent reacts once to a meme (a second reaction is refused, and would hold
            // up the rest of its batch behind a nonce gap).
            if let m = lock.withLock({ () -> EventID? in
                guard let m = memes.first(where: { $0.0 != i && !reacted.contains(ReactionKey(agent: i, meme: $0.1)) })?.1 else { return nil }
                reacted.insert(ReactionKey(agent: i, meme: m))
                return m
            }) { return .memeReact(meme: MemeID(createdBy: m), reaction: .like) }
            return .interact(target: keys[other].publicKey, kind: .follow, meme: .zero)
        case 66 ..< 70:
            return .jobPost(JobSpec(title: "devnet task", capabilities: ["compute"], milestones: [100 + rng.below(900)], deadline: Height(1 << 39)))
        case 70 ..< 80: return .delegate(validator: ValidatorID(validators[Int(rng.below(UInt64(validators.count)))]), amount: 1 + rng.below(500))
        case 80 ..< 85:
            return .agentUpdate(AgentProfile(name: "agent-\(i)", capabilities: ["compute", "memes", "audit", "arbitrate"].shuffledPrefix(3, &rng),
                                             personality: ["lawful", "memetic", "loyal", "chaotic"][i % 4], endpoint: "agent://devnet/\(i)"))
        default:
            guard keys.count > 1 else { return .transfer(to: keys[i].publicKey, amount: 1, memo: "self") }
            return .alliancePropose(AllianceProposal(targets: [keys[other].publicKey], purpose: "meme syndicate", terms: "share the laughs",
                                                     durationMs: 3_600_000))
        }
    }

    /// Runs agent `i` until `stop()` returns true; `interval` paces its batches.
    func run(_ i: Int, intervalMs: Double, stop: @escaping @Sendable () -> Bool) async {
        var rng = SplitMix64(seed: UInt64(i) &* 0x9E37_79B9 &+ 7)
        let client = clients[i % clients.count]
        var nonce: UInt64 = (try? await client.nonce(of: keys[i].publicKey)) ?? 0
        var registered = nonce > 0
        while !stop() {
            let started = Date()
            var events: [[UInt8]] = []
            var payloads: [Payload] = []
            for _ in 0 ..< batch {
                let p = payload(i, &rng, registered: registered)
                registered = true
                nonce += 1
                payloads.append(p)
                // The gas of the kind at twice the minimum base fee (schemas/ECONOMY.md).
                let fee = Gas.of(p.kind, bytes: Envelope.overheadBytes + p.encoded().count) * 2
                events.append(EventCrypto.makeEvent(chain: chain, key: keys[i], nonce: nonce, fee: fee, payload: p).bytes)
            }
            do {
                let rs = try await client.submit(events, wait: true, timeoutMs: 15_000)
                let ms = Date().timeIntervalSince(started) * 1000
                var resync = false
                lock.withLock {
                    for (k, r) in rs.enumerated() {
                        if r.status == "committed" {
                            committed += 1
                            latenciesMs.append(ms)
                            kinds[payloads[k].kind.description, default: 0] += 1
                            if case let .alliancePropose(ap) = payloads[k], let id = r.id.flatMap({ EventID(hex: $0) }),
                               let t = keys.firstIndex(where: { $0.publicKey == ap.targets[0] }) { proposals.append((t, id)) }
                            if let id = r.id.flatMap({ EventID(hex: $0) }) {
                                if case .jobPost = payloads[k] { jobs.append((i, id, false)) }
                                if case .memePost = payloads[k] { memes.append((i, id)); if memes.count > 50 { memes.removeFirst() } }
                            }
                        } else { rejected[r.code ?? r.status, default: 0] += 1; resync = true }
                    }
                }
                if resync { nonce = (try? await client.nonce(of: keys[i].publicKey)) ?? nonce }
            } catch {
                lock.withLock { rejected["http: \(error)".prefix(60).description, default: 0] += 1 }
                try? await Task.sleep(for: .milliseconds(200))
                nonce = (try? await client.nonce(of: keys[i].publicKey)) ?? nonce
            }
            let spent = Date().timeIntervalSince(started) * 1000
            if intervalMs > spent { try? await Task.sleep(for: .milliseconds(Int(intervalMs - spent))) }
        }
    }
}

extension Array {
    func shuffledPrefix(_ n: Int, _ rng: inout SplitMix64) -> [Element] {
        var a = self
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, Int(rng.below(UInt64(i + 1)))) }
        return Array(a.prefix(n))
    }
}

/// Percentile of unsorted samples (nearest rank).
func percentile(_ xs: [Double], _ p: Double) -> Double {
    guard !xs.isEmpty else { return 0 }
    let s = xs.sorted()
    let rank = Int((p / 100 * Double(s.count)).rounded(.up))
    return s[max(0, min(s.count - 1, rank - 1))]
}

/// A line on stdout, unbuffered (a status line must show when it is printed, even
/// through a pipe).
func say(_ s: String) { FileHandle.standardOutput.write(Data((s + "\n").utf8)) }

/// Set by SIGINT/SIGTERM handlers of long-running CLI commands.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    private var sources: [DispatchSourceSignal] = []
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }

    func onSignals(_ sigs: [Int32]) {
        for s in sigs {
            signal(s, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: s, queue: .global())
            src.setEventHandler { [weak self] in self?.set() }
            src.resume()
            sources.append(src)
        }
    }
}

struct Devnet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a local network: 4 validators with different personalities as processes on 127.0.0.1, agent clients submitting a signed workload over HTTP, and a live status line until Ctrl-C.",
        discussion: """
        The first run creates keys, a genesis and one config per node in --dir (see
        ops/devnet for examples); later runs reuse them and resume the chain. Node logs go
        to DIR/logs. Ctrl-C (or --duration) stops the agents, then each node with SIGTERM.
        """)
    @Option(help: "Directory for keys, genesis, configs, data and logs.") var dir = "data/devnet"
    @Option(help: "Number of validators.") var validators = 4
    @Option(help: "Personalities, assigned in turn.") var personalities = "lawful,memetic,loyal,chaotic"
    @Option(help: "First mesh port (validator i listens on this + i).") var meshPort = 7100
    @Option(help: "First HTTP port (validator i serves on this + i).") var httpPort = 8100
    @Option(help: "Agent clients.") var agents = 8
    @Option(help: "Target events per second over all agents (0: no agents).") var rate = 200.0
    @Option(help: "Events per HTTP request.") var batch = 10
    @Flag(help: "Also run a follower node.") var follower = false
    @Option(help: "Stop after this many seconds (default: run until Ctrl-C).") var duration: Double?
    @Flag(help: "Only write the keys, genesis and configs.") var prepareOnly = false
    @Flag(inversion: .prefixedNo, help: "Run the scripted pass through the economy (jobs, disputes, memes, rewards, governance) beside the agents.")
    var economyTour = true

    func run() async throws {
        let layout = ClusterLayout(dir: dir, validators: validators, personalities: personalities.split(separator: ",").map(String.init),
                                   meshPort: meshPort, httpPort: httpPort, agents: agents, follower: follower)
        let (vkeys, akeys) = try layout.prepare()
        if prepareOnly { say("wrote \(dir)"); return }
        let stop = StopFlag()
        stop.onSignals([SIGINT, SIGTERM])
        var procs = (0 ..< validators).map { NodeProcess(name: "node-\($0)", config: layout.configPath($0), logFile: layout.logPath("node-\($0)")) }
        if follower { procs.append(NodeProcess(name: "follower", config: layout.followerConfigPath, logFile: layout.logPath("follower"))) }
        for p in procs { try p.start() }
        say("devnet: \(validators) validators (\(layout.personalities.prefix(validators).joined(separator: ", ")))\(follower ? " + a follower" : ""), "
              + "HTTP \(layout.httpURL(0)) … ; logs in \(dir)/logs; Ctrl-C stops")
        let clients = (0 ..< procs.count).map { NodeClient(layout.httpURL($0)) }
        // Ready: every node answers /ready.
        let readyBy = Date().addingTimeInterval(60)
        for (i, c) in clients.enumerated() {
            while !stop.isSet, Date() < readyBy {
                if let (s, _) = try? await c.request("GET", "/ready"), s == 200 { break }
                if !procs[i].running { throw CLIError("\(procs[i].name) exited; see \(procs[i].logFile)") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        let chain = try ChainID("chaosledger-devnet")
        let swarm = AgentSwarm(keys: akeys, validators: vkeys.map(\.publicKey), chain: chain,
                               nodes: (0 ..< validators).map(layout.httpURL), batch: batch)
        let until = duration.map { Date().addingTimeInterval($0) }
        let done: @Sendable () -> Bool = { stop.isSet || until.map { Date() >= $0 } ?? false }
        var tasks: [Task<Void, Never>] = []
        let tour = EconomyTour(chain: chain, node: layout.httpURL(0), validators: vkeys)
        if rate > 0, agents > 0 {
            // The tour goes first, on a quiet chain: validators' keys also sign their nodes'
            // opinions, and under load those win every race for the next nonce.
            if economyTour {
                say("devnet: economy tour (jobs, escrow, a dispute, memes, rewards, governance; --no-economy-tour skips it)…")
                await tour.run(stop: done)
                let t = tour.lock.withLock { (tour.kinds.values.reduce(0, +), tour.kinds.count, tour.failures) }
                say("devnet: economy tour committed \(t.0) events in \(t.1) kinds" + (t.2.isEmpty ? "" : "; failed: \(t.2.joined(separator: "; "))"))
            }
            let interval = 1000 * Double(batch) * Double(agents) / rate
            for i in 0 ..< agents { tasks.append(Task { await swarm.run(i, intervalMs: interval, stop: done) }) }
        }
        var lastCommitted = swarm.lock.withLock { swarm.committed }
        var lastAt = Date()
        while !done() {
            try? await Task.sleep(for: .seconds(1))
            let line = await statusLine(clients, swarm, &lastCommitted, &lastAt)
            say(line)
            for p in procs where !p.running { say("devnet: \(p.name) is not running; see \(p.logFile)") }
        }
        for t in tasks { await t.value }
        say("devnet: stopping")
        var clean = true
        for p in procs.reversed() {
            let status = p.stop()
            if status != 0 { clean = false; say("devnet: \(p.name) did not exit cleanly (\(status.map(String.init) ?? "killed"))") }
        }
        let s = swarm.lock.withLock { (swarm.committed, swarm.rejected, swarm.kinds) }
        say("devnet: agents committed \(s.0) events \(s.2.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
              + (s.1.isEmpty ? "" : "; refused \(s.1)"))
        let t = tour.lock.withLock { (tour.kinds, tour.failures) }
        if !t.0.isEmpty || !t.1.isEmpty {
            say("devnet: economy tour committed \(t.0.values.reduce(0, +)) events in \(t.0.count) kinds: "
                  + t.0.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                  + (t.1.isEmpty ? "" : "; failed: \(t.1.joined(separator: "; "))"))
        }
        if !clean { throw ExitCode(1) }
    }

    func statusLine(_ clients: [NodeClient], _ swarm: AgentSwarm, _ last: inout Int, _ lastAt: inout Date) async -> String {
        var heights: [String] = []
        var view = "-", latency = "-"
        for c in clients {
            if let d = try? await c.getJSON("/v1/status") {
                heights.append("\(d["height"] ?? "?")")
                if view == "-" { view = "\(d["view"] ?? "?")" }
                if latency == "-", let l = d["commitLatencyMs"] as? NSNumber { latency = String(format: "%.1f ms", l.doubleValue) }
            } else { heights.append("down") }
        }
        let now = Date()
        let (committed, lat) = swarm.lock.withLock { (swarm.committed, swarm.latenciesMs.suffix(2_000)) }
        let rate = Double(committed - last) / now.timeIntervalSince(lastAt)
        last = committed
        lastAt = now
        return "height \(heights.joined(separator: "/"))  view \(view)  \(String(format: "%.0f", rate)) events/s  "
            + "commit latency \(latency) (node), p50 \(String(format: "%.0f", percentile(Array(lat), 50))) ms per batch (agents)"
    }
}
