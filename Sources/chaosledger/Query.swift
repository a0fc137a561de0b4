import ArgumentParser
import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerHTTP
import LedgerNode
import LedgerProjections
import LedgerStore
import LedgerViews

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print log records as JSON: blocks, events, one event, or a stream.",
        discussion: """
        Examples:
          chaosledger inspect --dir D --block 3
          chaosledger inspect --dir D --blocks 1 --count 10
          chaosledger inspect --dir D --events 0 --count 20
          chaosledger inspect --dir D --event <id hex>
          chaosledger inspect --dir D --stream account:<key hex>   (also agent:<key>, alliance:<id>)
        """)
    @Option(help: "Log directory.") var dir: String
    @Option(help: "One block by height.") var block: UInt64?
    @Option(help: "Blocks from this height (with --count).") var blocks: UInt64?
    @Option(help: "Events from this sequence number (with --count).") var events: UInt64?
    @Option(help: "One event by id (hex).") var event: String?
    @Option(help: "A stream: account:<hex>, agent:<hex> or alliance:<hex>.") var stream: String?
    @Option(help: "How many records for a range.") var count = 10

    func run() throws {
        let log = try openLog(dir, readOnly: true)
        let n = max(0, min(count, Limits.readRangeEventsMax))
        if let h = block {
            guard let b = try log.block(at: Height(h)) else { throw CLIError("no block at height \(h)") }
            var d = Render.block(b, hash: Blake2b.hash(b.headerBytes))
            d["events"] = try log.events(from: b.firstSequence, count: Int(b.header.eventCount)).map(Render.event)
            printJSON(d)
        } else if let from = blocks {
            var out: [[String: Any]] = []
            var h = from
            while out.count < n, let b = try log.block(at: Height(h)) {
                out.append(Render.block(b, hash: Blake2b.hash(b.headerBytes))); h += 1
            }
            printJSON(out)
        } else if let from = events {
            printJSON(try log.events(from: SequenceNumber(from), count: n).map(Render.event))
        } else if let idHex = event {
            guard let id = EventID(hex: idHex) else { throw CLIError("event id must be 64 hex digits") }
            guard let e = try log.event(id: id) else { throw CLIError("no event \(idHex)") }
            printJSON(Render.event(e))
        } else if let s = stream {
            guard let key = StreamKey(parsing: s) else { throw CLIError("stream must be account:<hex>, agent:<hex> or alliance:<hex>") }
            printJSON(try log.stream(key, after: nil, limit: n).map(Render.event))
        } else {
            guard let m = try log.metadata() else { throw CLIError("no log in \(dir)") }
            printJSON(["chainId": m.chainID.name, "formatVersion": m.formatVersion, "genesisHash": m.genesisHash.hex,
                       "head": m.head.value, "headHash": m.headHash.hex, "nextSequence": m.nextSequence.value])
        }
    }
}

struct StateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "state",
        abstract: "Print one entity's projected state (or a summary) at head or at a height, as JSON.")
    @Option(help: "Log directory.") var dir: String
    @Option(help: "Height (default: head).") var height: UInt64?
    @Option(help: "An account key (hex).") var account: String?
    @Option(help: "A validator id (hex).") var validator: String?
    @Option(help: "An agent key (hex).") var agent: String?
    @Option(help: "An alliance id (hex).") var alliance: String?

    func run() throws {
        let log = try openLog(dir, readOnly: true)
        let (s, _) = try StateLoader.load(log, upTo: height.map { Height($0) })
        func key(_ h: String) throws -> Bytes32 {
            guard let k = Bytes32(hex: h) else { throw CLIError("'\(h)' is not 64 hex digits") }
            return k
        }
        if let a = account {
            guard let d = Render.account(try key(a), s) else { throw CLIError("no account \(a) at height \(s.height)") }
            printJSON(d)
        } else if let v = validator {
            guard let x = s.validators[ValidatorID(try key(v))] else { throw CLIError("no validator \(v) at height \(s.height)") }
            printJSON(Render.validator(x))
        } else if let a = agent {
            let k = try key(a)
            guard let x = s.agents[k] else { throw CLIError("no agent \(a) at height \(s.height)") }
            printJSON(Render.agent(k, x, s))
        } else if let a = alliance {
            guard let x = s.alliances[AllianceID(try key(a))] else { throw CLIError("no alliance \(a) at height \(s.height)") }
            printJSON(Render.alliance(x))
        } else {
            printJSON(Render.summary(s))
        }
    }
}
