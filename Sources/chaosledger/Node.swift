import ArgumentParser
import Configuration
import Foundation
import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerHTTP
import LedgerMesh
import LedgerNode
import LedgerProjections
import LedgerStore
import Logging
import Metrics
import ServiceLifecycle
import SystemPackage

/// A node's settings (schemas/node-config.md). Read from, in order of precedence:
/// command-line flags after `--config FILE` (`--http-port 8081`), environment variables
/// (`CHAOSLEDGER_HTTP_PORT=8081`), then the JSON file.
struct NodeSettings: Sendable {
    var role: PeerRole
    var dataDir: String
    var genesisFile: String?
    var keyFile: String
    var operatorKeyFile: String?
    /// Extra consensus keys this validator may rotate to.
    var rotationKeyFiles: [String]
    var personality: String
    var wittyMemes: Bool
    var primaryRule: ValidatorSet.PrimaryRule
    var viewTimeoutMs: UInt64
    var blockIntervalMs: UInt64
    var meshHost: String
    var meshPort: Int
    var bootstrap: [String]
    /// Follower keys (hex) this validator serves, or ["*"] for any key (default: none).
    var followers: [String]
    var followersMax: Int
    var connectionsMax: Int
    var idleTimeoutMs: UInt64
    var subscribersMax: Int
    var subscriberWriteTimeoutMs: UInt64
    var mempoolEventsMax: Int
    var authorPendingMax: UInt64
    var httpHost: String
    var httpPort: Int
    var requestsPerSecond: Double
    var logLevel: Logger.Level
    var drainMs: UInt64
    var stateWindow: UInt64
    /// API base URLs to state-sync from when the log is empty (none: replay from the genesis).
    var stateSyncFrom: [String]

    static func load(file: String, overrides: [String]) async throws -> NodeSettings {
        let fileProvider: FileProvider<JSONSnapshot>
        do { fileProvider = try await FileProvider<JSONSnapshot>(filePath: FilePath(file)) } catch {
            throw CLIError("config \(file): \(error)")
        }
        let config = ConfigReader(providers: [
            CommandLineArgumentsProvider(arguments: ["chaosledger"] + overrides),
            EnvironmentVariablesProvider().prefixKeys(with: "chaosledger"),
            fileProvider,
        ])
        let base = URL(fileURLWithPath: file).deletingLastPathComponent().path
        /// Relative paths in the file are relative to the file.
        func path(_ p: String) -> String { p.hasPrefix("/") ? p : base + "/" + p }
        func required(_ key: String) throws -> String {
            guard let v = config.string(forKey: ConfigKey(key)) else { throw CLIError("config: '\(key)' is required") }
            return v
        }
        let role = try required("role")
        guard let r = PeerRole(rawValue: role) else { throw CLIError("config: role must be validator or follower, not '\(role)'") }
        let level = config.string(forKey: "log.level", default: "info")
        guard let lvl = Logger.Level(rawValue: level) else { throw CLIError("config: log.level '\(level)' is not a swift-log level") }
        let rule = config.string(forKey: "consensus.primaryRule", default: "roundRobin")
        guard rule == "roundRobin" || rule == "stakeWeighted" else { throw CLIError("config: consensus.primaryRule must be roundRobin or stakeWeighted") }
        return NodeSettings(
            role: r, dataDir: path(try required("dataDir")), genesisFile: config.string(forKey: "genesisFile").map(path),
            keyFile: path(try required("keyFile")), operatorKeyFile: config.string(forKey: "operatorKeyFile").map(path),
            rotationKeyFiles: config.stringArray(forKey: "rotationKeyFiles", default: []).map(path),
            personality: config.string(forKey: "personality", default: "lawful"),
            wittyMemes: config.bool(forKey: "wittyMemes", default: true),
            primaryRule: rule == "stakeWeighted" ? .stakeWeighted : .roundRobin,
            viewTimeoutMs: UInt64(config.int(forKey: "consensus.viewTimeoutMs", default: 1_000)),
            blockIntervalMs: UInt64(config.int(forKey: "consensus.blockIntervalMs", default: 50)),
            meshHost: config.string(forKey: "mesh.host", default: "127.0.0.1"), meshPort: config.int(forKey: "mesh.port", default: 7100),
            bootstrap: config.stringArray(forKey: "mesh.bootstrap", default: []),
            followers: config.stringArray(forKey: "mesh.followers", default: []),
            followersMax: config.int(forKey: "mesh.followersMax", default: 32),
            connectionsMax: config.int(forKey: "http.connectionsMax", default: 4_096),
            idleTimeoutMs: UInt64(config.int(forKey: "http.idleTimeoutMs", default: 10_000)),
            subscribersMax: config.int(forKey: "http.subscribersMax", default: 256),
            subscriberWriteTimeoutMs: UInt64(config.int(forKey: "http.subscriberWriteTimeoutMs", default: 10_000)),
            mempoolEventsMax: config.int(forKey: "mempool.eventsMax", default: Limits.mempoolEventsMax),
            authorPendingMax: UInt64(config.int(forKey: "mempool.authorPendingMax", default: Int(Limits.authorPendingMax))),
            httpHost: config.string(forKey: "http.host", default: "127.0.0.1"), httpPort: config.int(forKey: "http.port", default: 8100),
            requestsPerSecond: config.double(forKey: "http.requestsPerSecond", default: 2_000),
            logLevel: lvl, drainMs: UInt64(config.int(forKey: "drainMs", default: 3_000)),
            stateWindow: UInt64(max(0, config.int(forKey: "state.window", default: Int(StateRetention.defaultWindow)))),
            stateSyncFrom: config.stringArray(forKey: "stateSync.from", default: []).flatMap { $0.split(separator: ",").map(String.init) })
    }
}

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run a validator or a follower: the replica, the TCP mesh and the HTTP API.",
        discussion: """
        Settings come from the JSON file, then CHAOSLEDGER_* environment variables, then
        flags after the file (for example --http-port 8081 --mesh-bootstrap 127.0.0.1:7101).
        See schemas/node-config.md. SIGTERM or SIGINT stops it gracefully: it takes no more
        events, lets the admitted ones commit, makes everything durable and exits 0.
        """)
    @Option(help: "Node config file (JSON).") var config: String
    @Argument(parsing: .allUnrecognized, help: "Overrides: --key value, as in the config file with dots as dashes.")
    var overrides: [String] = []

    func run() async throws {
        let s = try await NodeSettings.load(file: config, overrides: overrides)
        // Every HTTP and mesh connection is a descriptor: take the hard limit, so the
        // connection caps (http.connectionsMax, mesh.followersMax) bind before it does.
        var files = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &files) == 0, files.rlim_cur < files.rlim_max {
            files.rlim_cur = files.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &files)
        }
        let level = s.logLevel
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        var logger = Logger(label: "chaosledger.node")
        logger.logLevel = level
        let registry = NodeMetrics.bootstrap()

        func readKey(_ p: String) throws -> SigningKey {
            do { return try KeyFile.read(from: p, passphrase: ProcessInfo.processInfo.environment["CHAOSLEDGER_KEY_PASSPHRASE"]) } catch {
                throw CLIError("key file \(p): \(error)")
            }
        }
        let key = try readKey(s.keyFile)
        let op = try s.operatorKeyFile.map(readKey) ?? key
        let extra = try s.rotationKeyFiles.map(readKey)

        let (log, store, synced) = try await Self.openStores(s, logger: logger)
        var o = NodeOptions(role: s.role, keys: [key] + extra, operatorKey: op)
        o.personality = s.personality
        o.wittyMemes = s.wittyMemes
        o.primaryRule = s.primaryRule
        o.viewTimeoutMs = s.viewTimeoutMs
        o.blockIntervalMs = s.blockIntervalMs
        o.dataDir = s.dataDir
        o.pendingMax = s.mempoolEventsMax
        o.nonceAheadMax = s.authorPendingMax
        o.retention = StateRetention(window: s.stateWindow)
        let driver: NodeDriver
        do { driver = try NodeDriver(log: log, store: store, options: o, logger: logger, synced: synced) } catch { throw CLIError("\(error)") }

        let mesh = try Self.mesh(s, key: key, chain: try log.metadata()!.chainID, driver: driver, logger: logger)
        driver.attach(mesh)
        try await mesh.start()
        driver.start()

        var api = APIConfig(port: s.httpPort)
        api.host = s.httpHost
        api.requestsPerSecond = s.requestsPerSecond
        api.burst = 2 * s.requestsPerSecond
        api.connectionsMax = s.connectionsMax
        api.idleTimeoutMs = s.idleTimeoutMs
        api.subscribersMax = s.subscribersMax
        api.subscriberWriteTimeoutMs = s.subscriberWriteTimeoutMs
        let app = API.application(service: driver, config: api, registry: registry, logger: logger)
        let node = NodeLifecycle(driver: driver, mesh: mesh, log: log, store: store, drainMs: s.drainMs, logger: logger)
        // Services stop in reverse order: the HTTP server first (no new work), then the node
        // (drain, stop the mesh, close the files).
        let group = ServiceGroup(configuration: .init(services: [.init(service: node), .init(service: app)],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        logger.info("serving", metadata: ["http": "\(s.httpHost):\(s.httpPort)", "mesh": "\(s.meshHost):\(mesh.listeningPort)"])
        try await group.run()
        logger.info("exited cleanly")
    }

    /// The event log (initialised from the genesis file when empty) and the consensus
    /// record store.
    static func openStores(_ s: NodeSettings, logger: Logger) async throws -> (LedgerLog, RecordStore, LedgerState?) {
        let log = try openLog(s.dataDir + "/log", readOnly: false)
        var synced: LedgerState?
        if try log.metadata() == nil {
            guard let g = s.genesisFile else { throw CLIError("\(s.dataDir)/log is empty and no genesisFile is set") }
            let doc: GenesisFile
            do { doc = try JSONDecoder().decode(GenesisFile.self, from: try Data(contentsOf: URL(fileURLWithPath: g))) } catch {
                throw CLIError("\(g): \(error)")
            }
            let genesis = try doc.genesis()
            if s.stateSyncFrom.isEmpty {
                _ = try log.initialize(genesis: genesis)
                logger.info("initialised the log from the genesis", metadata: ["file": "\(g)"])
            } else {
                // An empty log with peers to sync from: the state at their newest stable
                // checkpoint, proven chunk by chunk; the blocks after it come from consensus.
                let sync = StateSync(genesisBytes: genesis.encoded(), peers: s.stateSyncFrom.map { HTTPSnapshotPeer($0) },
                                     workDir: s.dataDir + "/statesync", logger: logger)
                do { synced = try await sync.run(into: log).state } catch { throw CLIError("state sync: \(error)") }
            }
        }
        let store: RecordStore
        do { store = try RecordStore.open(path: s.dataDir + "/consensus") } catch { throw CLIError("consensus store: \(error)") }
        if store.truncatedTailBytes > 0 {
            // An append cut short by a crash: never synced, so nothing that depended on it was sent.
            logger.warning("consensus store: cut off a torn last append", metadata: ["bytes": "\(store.truncatedTailBytes)"])
        }
        return (log, store, synced)
    }

    /// The mesh and who may join it: validators, and on a validator the followers the
    /// operator listed.
    static func mesh(_ s: NodeSettings, key: SigningKey, chain: ChainID, driver: NodeDriver, logger: Logger) throws -> Mesh {
        let anyFollower = s.followers.contains("*")
        let followerKeys = Set(s.followers.compactMap { Bytes32(hex: $0) })
        let role = s.role
        var mc = MeshConfig(port: s.meshPort, identity: key, chainID: chain, bootstrap: s.bootstrap)
        mc.host = s.meshHost
        mc.followersMax = s.followersMax
        let mesh = Mesh(config: mc, policy: { [driver] k in
            if driver.isValidator(k) { return .validator }
            // A follower serves no other follower: it only listens to validators.
            if role == .validator, anyFollower || followerKeys.contains(k) { return .follower }
            return nil
        }, sink: driver, logger: logger)
        return mesh
    }
}

/// The node as a lifecycle service: runs until graceful shutdown, then drains the
/// replica, stops the mesh and closes the log and the consensus store.
struct NodeLifecycle: Service {
    let driver: NodeDriver
    let mesh: Mesh
    let log: LedgerLog
    let store: RecordStore
    let drainMs: UInt64
    let logger: Logger

    func run() async throws {
        let bytesIn = Counter(label: "chaosledger_mesh_bytes_in_total")
        let bytesOut = Counter(label: "chaosledger_mesh_bytes_out_total")
        let mesh = self.mesh
        // Poll the mesh's byte counters into metrics until shutdown begins.
        let poll = Task {
            var last = mesh.counters
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let c = mesh.counters
                bytesIn.increment(by: Int(c.bytesIn - min(c.bytesIn, last.bytesIn)))
                bytesOut.increment(by: Int(c.bytesOut - min(c.bytesOut, last.bytesOut)))
                last = c
            }
        }
        try? await gracefulShutdown()
        poll.cancel()
        logger.info("shutting down: draining admitted events")
        await driver.stop(drainMs: drainMs)
        await mesh.stop()
        store.close()
        log.close()
    }
}
