import ArgumentParser
import Foundation
import LedgerCore
import LedgerStore
import LedgerWorkload

/// `chaosledger sybil`: the Sybil simulation (ECONOMY.md §Rule version 3), under the
/// trust layer's rules and, as the baseline in the same run, under rule version 2.
struct SybilCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sybil",
        abstract: "Simulate a Sybil ring beside honest agents and report the reputation each gains.",
        discussion: """
        A ring of fresh agents funded from one source endorses itself and runs self-dealing
        jobs beside honest agents doing real jobs; every event is signed and folded into a
        log. Runs under rule version 3 (the trust layer) and, unless --rules is given, under
        rule version 2 as the baseline. Exits 1 when under version 3 a one-source ring has a
        member above the median honest agent. --ring-sources N funds the ring from N
        genesis accounts instead: what the funding-origin rule cannot see.
        """)
    @Option(help: "Blocks of activity.") var blocks = 1_000
    @Option(help: "Agents in the ring (all funded from one source).") var ring = 100
    @Option(help: "Honest agents, each funded on its own.") var honest = 20
    @Option(help: "Self-dealing jobs the ring runs per block.") var ringJobs = 30
    @Option(help: "Real jobs among the honest agents per block.") var honestJobs = 4
    @Option(help: "Genesis accounts funding the ring (1: one source; the ring size: each member its own).") var ringSources = 1
    @Option(help: "Seed.") var seed: UInt64 = 1
    @Option(help: "Only this rule version (2 or 3).") var rules: UInt16?
    @Option(help: "Keep the logs: the rule version 3 run's here, the version 2 run's in DIR-v2 (both replayable); else temporary.") var dir: String?
    @Flag(help: "Print the reports as JSON.") var json = false

    func run() throws {
        var reports: [SybilSimulation.Report] = []
        for v in rules.map({ [$0] }) ?? [RuleVersion.economy, RuleVersion.trust] {
            var sim = SybilSimulation()
            sim.blocks = blocks; sim.ring = ring; sim.honest = honest; sim.ringJobsPerBlock = ringJobs
            sim.honestJobsPerBlock = honestJobs; sim.seed = seed; sim.ruleVersion = v; sim.ringSources = ringSources
            // An LMDB log: the in-memory store is for tests, and costs a scan per append.
            let path = dir.map { v == RuleVersion.trust ? $0 : $0 + "-v2" }
                ?? FileManager.default.temporaryDirectory.appendingPathComponent("chaosledger-sybil-\(UUID().uuidString)").path
            defer { if dir == nil { try? FileManager.default.removeItem(atPath: path) } }
            let log = try openLog(path, readOnly: false)
            guard try log.metadata() == nil else { throw CLIError("\(path) already holds a log") }
            reports.append(try sim.run(into: log))
        }
        if json { printEncodable(reports) } else { for r in reports { print(Self.describe(r)) } }
        if ringSources == 1, let r = reports.first(where: { $0.ruleVersion >= RuleVersion.trust }), r.ringAboveHonestMedian > 0 {
            throw CLIError("\(r.ringAboveHonestMedian) ring members end above the median honest agent")
        }
    }

    static func describe(_ r: SybilSimulation.Report) -> String {
        func pts(_ v: Int64) -> String { String(format: "%.1f", Double(v) / 1000) }
        func line(_ name: String, _ g: SybilSimulation.Group) -> String {
            "  \(name): \(g.agents) agents, \(g.jobs) jobs, \(g.events) events; reputation min \(pts(g.min)) median \(pts(g.median)) mean \(pts(g.mean)) max \(pts(g.max)) points"
        }
        return """
        rule version \(r.ruleVersion), \(r.blocks) blocks, the ring funded from \(r.ringSources) source\(r.ringSources == 1 ? "" : "s")
        \(line("honest", r.honest))
        \(line("ring  ", r.ring))
          ring members above the honest median: \(r.ringAboveHonestMedian) of \(r.ring.agents)
          refused: \(r.refused.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
          state root \(r.stateRoot)
        """
    }
}
