import ArgumentParser
import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStore
import LedgerWorkload

/// Test support: appends blocks forever (or `--blocks`), printing `committed H` after
/// each durable commit. The crash test kills it with SIGKILL and checks that every
/// acknowledged block is present and nothing partial is.
struct CrashWriter: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "crash-writer", abstract: "Test support: append blocks until killed.",
                                                    shouldDisplay: false)
    @Option var dir: String
    @Option var blocks: UInt64 = .max
    @Option var eventsPerBlock = 50

    func run() throws {
        let log = try openLog(dir, readOnly: false)
        let w = DemoWorkload(seed: 7, agents: 8, events: 0)
        if try log.metadata() == nil { _ = try log.initialize(genesis: w.genesis()) }
        let p = try SoloProducer(log: log, key: w.producerKey(), clock: DemoWorkload.clock(genesisMs: DemoWorkload.genesisTimeMs))
        let keys = (0 ..< 8).map { SigningKey.derived("demo-7-agent-\($0)") }
        var nonces = keys.map { p.state.accounts[$0.publicKey]?.nonce ?? 0 }
        var made: UInt64 = 0
        while made < blocks {
            for j in 0 ..< eventsPerBlock {
                let i = j % keys.count
                let e = EventCrypto.makeEvent(chain: DemoWorkload.chain, key: keys[i], nonce: nonces[i] + 1, fee: 1,
                                              payload: .transfer(to: keys[(i + 1) % keys.count].publicKey, amount: 1, memo: "crash \(made)"))
                try p.submit(e.bytes)
                nonces[i] += 1
            }
            if let b = try p.commit() {
                // Unbuffered: the line is out before the next block starts.
                FileHandle.standardOutput.write(Data("committed \(b.header.height)\n".utf8))
            }
            made += 1
        }
    }
}

/// Prints the schema test vectors (tools/gen-vectors.sh writes them to schemas/vectors.json).
struct VectorsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vectors", abstract: "Print the schema test vectors as JSON.",
                                                    shouldDisplay: false)
    func run() throws { printEncodable(SchemaVectors.document()) }
}
