import ArgumentParser
import Foundation
import LedgerAudit
import LedgerCore
import LedgerProjections
import LedgerStore

/// `replay --bundle`: a bundle that does not decode is refused with its typed error; one
/// that decodes gets the same report as a log.
func verifyBundle(_ path: String, json: Bool) throws {
    let bundle: AuditBundle
    do { bundle = try AuditBundle.read(path: path) } catch { throw CLIError("bundle \(path): \(error)") }
    try printReport(bundle.verify().report, json: json)
}

/// `replay --trace`.
func traceEntity(_ log: any EventLog, _ text: String, json: Bool) throws {
    let t: EntityTrace
    do { t = try Trace.run(log: log, entity: try EntityView.parse(text)) } catch { throw CLIError(error.description) }
    if json { printEncodable(t); return }
    func fields(_ f: [EntityField]?) -> String {
        guard let f else { return "(does not exist)" }
        return f.map { "\($0.name) \($0.value)" }.joined(separator: ", ")
    }
    print("trace \(t.entity): \(t.steps.count) steps, \(t.streamEvents) events in its stream (log verified to height \(t.replay.verifiedToHeight))")
    for s in t.steps {
        switch s.cause {
        case .genesis: print("height \(s.height): \(s.notes.joined(separator: "; "))")
        case .block: print("block \(s.height): \(s.notes.joined(separator: "; "))")
        case .event:
            let stream = s.inStream == true ? "" : " [outside its stream: \(s.notes.joined(separator: "; "))]"
            print("block \(s.height) seq \(s.sequence!) event \(s.eventID!) \(s.kind!) by \(s.author!)\(stream)")
        }
        for c in s.changes { print("    \(c.name): \(c.before ?? "-") -> \(c.after ?? "-")") }
    }
    print("now: \(fields(t.final))")
}

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "What changed between the states after two heights: every entity's fields, and the events committed in between.",
        discussion: "Folds the log from genesis to --to under replay's checks. Exits 1 if the log does not verify.")
    @Option(help: "Log directory.") var dir: String
    @Option(help: "The earlier height (0: genesis).") var from: UInt64
    @Option(help: "The later height (default: head).") var to: UInt64?
    @Flag(help: "Print as JSON (sorted keys).") var json = false

    func run() throws {
        let log = try openLog(dir, readOnly: true)
        let d: StateDiff
        do { d = try StateDiff.run(log: log, from: Height(from), to: to.map { Height($0) }) } catch { throw CLIError(error.description) }
        if json { printEncodable(d); return }
        print("diff \(d.fromHeight) -> \(d.toHeight): state root \(d.fromStateRoot) -> \(d.toStateRoot)")
        print("\(d.blocks) blocks, \(d.events) events" + (d.eventsByKind.isEmpty ? "" : ": ")
            + d.eventsByKind.keys.sorted().map { "\($0) \(d.eventsByKind[$0]!)" }.joined(separator: ", "))
        for e in d.entities {
            print("\(e.status.rawValue) \(e.entity)")
            for c in e.changes { print("    \(c.name): \(c.before ?? "-") -> \(c.after ?? "-")") }
        }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an audit bundle (schemas/FORMAT.md §13) of blocks --from + 1 ... --to, verifiable by `replay --bundle` with no log.",
        discussion: "The log is verified from genesis first. With --from > 0 the bundle starts from the state snapshot at --from.")
    @Option(help: "Log directory.") var dir: String
    @Option(help: "The bundle file to write.") var out: String
    @Option(help: "The state the bundle starts from (0: genesis).") var from: UInt64 = 0
    @Option(help: "The last block (default: head).") var to: UInt64?

    func run() throws {
        let log = try openLog(dir, readOnly: true)
        do {
            let b = try AuditBundle.export(from: log, from: Height(from), to: to.map { Height($0) })
            try b.write(path: out)
            let size = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? NSNumber)?.intValue ?? 0
            print("exported blocks \(b.fromHeight.value + 1)...\(b.toHeight) (\(b.blocks.reduce(0) { $0 + $1.events.count }) events, "
                + "\(b.validatorSets.count) validator sets\(b.snapshot == nil ? "" : ", snapshot at \(b.fromHeight)")) to \(out), \(size) bytes")
        } catch { throw CLIError("export: \(error)") }
    }
}
