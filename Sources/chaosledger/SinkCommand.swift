import ArgumentParser
import Foundation
import LedgerCore
import LedgerSink
import Logging

/// `chaosledger sink postgres`: the PostgreSQL sink beside a node.
struct SinkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sink",
        abstract: "Write a node's verified history and projections into another database.",
        subcommands: [SinkPostgres.self])
}

struct SinkPostgres: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "postgres",
        abstract: "Follow a node's log and write blocks, events and projections into PostgreSQL.",
        discussion: """
        Reads the node's LMDB log read-only (run it beside the node, on the node's data
        directory's log), verifies every block as `replay` does (signatures, hash links,
        certificates, events roots, state roots) and writes the blocks, the events with
        their decoded payloads and every projection into the schema `chaosledger`
        (schemas/postgres). Each transaction holds a run of blocks and the checkpoint
        naming its last one: killed at any point, the sink resumes from the checkpoint with
        no block half-written and no row twice. The schema is created or migrated first.
        Audit queries: docs/SQL.md.
        """)
    @Option(help: "The node's log directory (for a devnet validator: data/devnet/v0/log).") var log: String
    @Option(help: "postgres://user[:password]@host[:port]/database") var database = "postgres://postgres@127.0.0.1:5432/postgres"
    @Option(help: "At most this many blocks per transaction (the next batch is folded while PostgreSQL commits this one).") var batchBlocks = 64
    @Option(help: "Store a state snapshot with the checkpoint every this many blocks (a restart refolds at most that many).")
    var snapshotEvery: UInt64 = 1024
    @Option(help: "How often to look for new blocks, in milliseconds.") var pollMs = 20
    @Flag(help: "Stop once the log's head is written, instead of following it.") var stopAtHead = false
    @Option(help: "Stop once this height is written.") var untilHeight: UInt64?
    @Flag(help: "Also verify every event's signature (by default the sink trusts what each block's certificate covers, as a light client does).")
    var verifySignatures = false
    @Flag(help: "Print a line per transaction.") var verbose = false

    func run() async throws {
        var config = SinkConfig(logPath: log)
        do { try config.setDatabase(url: database) } catch { throw CLIError(error.description) }
        config.batchBlocks = max(1, batchBlocks)
        config.snapshotEvery = max(1, snapshotEvery)
        config.pollMs = max(1, pollMs)
        config.stopAtHead = stopAtHead
        config.verifySignatures = verifySignatures
        config.untilHeight = untilHeight.map(Height.init)
        var logger = Logger(label: "chaosledger.sink")
        logger.logLevel = verbose ? .info : .warning
        let sink: PostgresSink
        do { sink = try PostgresSink(config, logger: logger) } catch { throw CLIError(error.description) }
        let verbose = self.verbose
        do {
            let done = try await sink.run { p in
                if verbose { print("height \(p.height.value): \(p.blocks) blocks, \(p.events) events in \(p.transactions) transactions") }
            }
            print("sink: at height \(done.height.value); wrote \(done.blocks) blocks, \(done.events) events in \(done.transactions) transactions")
        } catch let e as SinkError {
            throw CLIError(e.description)
        }
    }
}
