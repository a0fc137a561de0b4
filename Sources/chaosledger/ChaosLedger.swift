import ArgumentParser
import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerProjections
import LedgerStore
import LedgerWorkload

@main
struct ChaosLedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaosledger",
        abstract: "An event-sourced, Byzantine-fault-tolerant ledger for networks of AI agents.",
        subcommands: [Keygen.self, GenesisCommand.self, Demo.self, Replay.self, Rebuild.self, Inspect.self, StateCommand.self,
                      Sim.self, BenchConsensus.self, Bench.self, CrashWriter.self, VectorsCommand.self,
                      NodeCommand.self, Devnet.self, Submit.self, BenchNet.self, BenchSync.self, BenchTree.self, DiffCommand.self, Export.self,
                      VerifyCommand.self, SybilCommand.self, InboxCommand.self, SinkCommand.self, MCPCommand.self, BenchSink.self])
}

/// A failure the CLI reports with a message and a non-zero exit code.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func printJSON(_ value: Any) {
    let data = try! JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

func printEncodable<T: Encodable>(_ value: T) {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try! enc.encode(value), as: UTF8.self))
}

func stderr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

func openLog(_ dir: String, readOnly: Bool) throws -> LedgerLog {
    do { return try LedgerLog.openLMDB(path: dir, mode: readOnly ? .readOnly : .readWrite) } catch {
        throw CLIError("cannot open log in \(dir): \(error)")
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create an Ed25519 key file (mode 0600).")
    @Option(help: "Where to write the key file (must not exist).") var out: String
    @Option(help: "Encrypt the key with the passphrase held in this environment variable (argon2id + secretbox).")
    var passphraseEnv: String?

    func run() throws {
        let key = SigningKey.generate()
        var pass: String?
        if let v = passphraseEnv {
            guard let p = ProcessInfo.processInfo.environment[v], !p.isEmpty else { throw CLIError("environment variable \(v) is empty or unset") }
            pass = p
        }
        try KeyFile.write(key, to: out, passphrase: pass)
        print(key.publicKey.hex)
    }
}

/// The genesis file (schemas/FORMAT.md §6): JSON, amounts as integers, keys as hex.
struct GenesisFile: Codable {
    struct Validator: Codable { var publicKey: String; var name: String; var personality: String; var stake: UInt64 }
    struct Allocation: Codable { var account: String; var amount: UInt64 }
    var chainId: String
    var timestampMs: UInt64
    var parameters: ChainParameters?
    var validators: [Validator]
    var allocations: [Allocation]
    /// The rule version the chain starts under (default: the current one).
    var ruleVersion: UInt16?
    var economy: EconomyParameters?
    /// "tree" (the default: a state tree, version 2 headers, proofs) or "flat" (the whole
    /// state hashed every block, as before genesis version 4).
    var stateCommitment: String?

    func genesis() throws -> Genesis {
        func key(_ s: String, _ what: String) throws -> PublicKey {
            guard let k = Bytes32(hex: s) else { throw CLIError("\(what): '\(s)' is not a 32-byte hex key") }
            return k
        }
        return try Genesis(
            chainID: try ChainID(chainId), timestampMs: timestampMs, parameters: parameters ?? ChainParameters(),
            validators: try validators.map { Genesis.Validator(key: try key($0.publicKey, "validator"), name: $0.name, personality: $0.personality, stake: $0.stake) },
            allocations: try allocations.map { Genesis.Allocation(account: try key($0.account, "allocation"), amount: $0.amount) },
            ruleVersion: ruleVersion ?? RuleVersion.current, economy: economy ?? EconomyParameters(),
            stateCommitment: try commitment())
    }

    func commitment() throws -> UInt8 {
        switch stateCommitment ?? "tree" {
        case "tree": StateCommitmentRule.tree
        case "flat": StateCommitmentRule.flat
        case let other: throw CLIError("stateCommitment: '\(other)' is not \"tree\" or \"flat\"")
        }
    }
}

struct GenesisCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "genesis", abstract: "Write a genesis from a JSON file into a new log directory.")
    @Option(help: "Genesis JSON file (schemas/FORMAT.md §6; example schemas/genesis.example.json).") var file: String
    @Option(help: "Log directory to create.") var dir: String

    func run() throws {
        guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
        let doc: GenesisFile
        do { doc = try JSONDecoder().decode(GenesisFile.self, from: data) } catch { throw CLIError("\(file): \(error)") }
        let g = try doc.genesis()
        let log = try openLog(dir, readOnly: false)
        let hash = try log.initialize(genesis: g)
        print("genesis \(hash.hex) chain \(g.chainID) validators \(g.validators.count) allocations \(g.allocations.count)")
    }
}

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a deterministic, seeded multi-agent workload into a fresh log.")
    @Option(help: "Log directory (must not hold a log yet).") var dir: String
    @Option(help: "Number of agents.") var agents = 50
    @Option(help: "Number of submissions, valid and invalid.") var events = 5_000
    @Option(help: "Workload seed.") var seed: UInt64 = 1
    @Flag(help: "Print the summary as JSON.") var json = false

    func run() throws {
        let log = try openLog(dir, readOnly: false)
        guard try log.metadata() == nil else { throw CLIError("\(dir) already holds a log; demo writes a fresh one") }
        let s = try DemoWorkload(seed: seed, agents: agents, events: events).run(into: log)
        if json { printEncodable(s); return }
        print("demo: seed \(s.seed), \(s.agents) agents, \(s.submitted) submissions")
        print("  committed \(s.committed) events in \(s.blocks) blocks")
        print("  refused \(s.refusedAsIntended) invalid submissions as intended:")
        for (k, v) in s.refusals.sorted(by: { $0.key < $1.key }) { print("    \(k): \(v)") }
        print("  by kind:")
        for (k, v) in s.kinds.sorted(by: { $0.key < $1.key }) { print("    \(k): \(v)") }
        print("  alliances: " + s.alliances.sorted(by: { $0.key < $1.key }).map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        print("  genesis \(s.genesisHash)")
        print("  state root \(s.stateRoot)")
        if s.invalidAdmitted > 0 { throw CLIError("\(s.invalidAdmitted) invalid submissions were admitted") }
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify a log from genesis: every signature, hash link, certificate and state root.",
        discussion: """
        Opens the log read-only. Exits 1 and names the first bad record on any failure.
          chaosledger replay --dir D                      verify the log
          chaosledger replay --dir D --trace account:<hex>   how an entity reached its state (also validator:, agent:, alliance:)
          chaosledger replay --bundle FILE                verify an audit bundle (from `export`), with no log
        """)
    @Option(help: "Log directory.") var dir: String?
    @Option(help: "An audit bundle to verify instead of a log.") var bundle: String?
    @Option(help: "Explain how an entity reached its state: account:<hex>, validator:<hex>, agent:<hex>, alliance:<hex>.") var trace: String?
    @Option(help: "Stop after this height.") var toHeight: UInt64?
    @Flag(help: "Print the report as JSON.") var json = false
    @Flag(help: "No progress lines on stderr.") var quiet = false

    func validate() throws {
        guard (dir == nil) != (bundle == nil) else { throw ValidationError("give exactly one of --dir and --bundle") }
        if trace != nil, dir == nil { throw ValidationError("--trace reads a log: give --dir") }
        if trace != nil, toHeight != nil { throw ValidationError("--trace explains the state at head; --to-height does not apply") }
    }

    func run() throws {
        if let path = bundle { return try verifyBundle(path, json: json) }
        let dir = dir!
        let log = try openLog(dir, readOnly: true)
        if let t = trace { return try traceEntity(log, t, json: json) }
        var r = Replayer(log: log, toHeight: toHeight.map { Height($0) })
        if !quiet {
            var last = DispatchTime.now().uptimeNanoseconds
            r.progress = { h, head in
                let now = DispatchTime.now().uptimeNanoseconds
                if now - last > 1_000_000_000 || h == head {
                    last = now
                    stderr("replay: block \(h) of \(head)")
                }
            }
        }
        let (report, _) = r.run()
        try printReport(report, json: json)
    }
}

/// The replay report, as `replay` prints it for a log or a bundle; exits 1 when it failed.
func printReport(_ report: ReplayReport, json: Bool) throws {
    if json {
        printEncodable(report)
    } else {
        print("chain \(report.chainID), genesis \(report.genesisHash)")
        if report.fromHeight > 0 { print("from the snapshot at height \(report.fromHeight); trusted: \(report.anchor)") }
        print("verified \(report.blocks) blocks (to height \(report.verifiedToHeight) of \(report.headHeight)), \(report.events) events")
        print("signatures \(report.signaturesVerified), certificate votes \(report.certificateVotesVerified), state roots compared \(report.stateRootsCompared), checkpoint certificates \(report.checkpointCertificatesVerified)")
        print("state root \(report.stateRoot)")
        let rate = report.seconds > 0 ? Double(report.events) / report.seconds : 0
        print(String(format: "%.3f s, %.0f events/s", report.seconds, rate))
        print(report.ok ? "OK" : "FAILED: \(report.failure!)")
    }
    if !report.ok { throw ExitCode(1) }
}

struct Rebuild: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Drop and rebuild projection checkpoints and the id and stream indexes from the log.")
    @Option(help: "Log directory.") var dir: String
    @Option(help: "Keep the checkpoints that serve the state of the last N blocks (0: every checkpoint, an archive).")
    var stateWindow: UInt64 = StateRetention.defaultWindow

    func run() throws {
        let log = try openLog(dir, readOnly: false)
        let (state, stats) = try StateLoader.rebuild(log, retention: StateRetention(window: stateWindow))
        try log.rebuildIndex()
        print("rebuilt \(stats.blocks) blocks, \(stats.events) events, \(stats.checkpointsWritten) checkpoints in \(String(format: "%.3f", stats.seconds)) s")
        print("height \(state.height), state root \(state.stateRoot().hex)")
    }
}
