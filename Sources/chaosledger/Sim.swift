import ArgumentParser
import Foundation
import LedgerConsensus
import LedgerCore
import LedgerSimulation

/// `chaosledger sim`: the deterministic cluster simulator.
struct Sim: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the real replica code for a cluster under simulated faults and check its invariants.",
        discussion: "A failing seed is printed; running that seed again replays the same run exactly.")

    @Option(help: "Run one seed.") var seed: UInt64?
    @Option(help: "Run a range of seeds, A..B (inclusive).") var seeds: String?
    @Option(name: .customLong("bug"), help: "Switch on a planted bug: \(PlantedBug.allCases.map(\.rawValue).joined(separator: ", ")).")
    var bugs: [String] = []
    @Option(help: "Milliseconds of simulated time with faults.") var faultMs: UInt64 = 3_000
    @Option(help: "Milliseconds after the faults within which every replica must catch up.") var recoveryMs: UInt64 = 20_000
    @Flag(help: "Print a line for every seed, not only failures.") var verbose = false
    @Flag(help: "Print every replica's notes, commits and sends (one seed).") var trace = false
    @Option(help: "Seeds run in parallel (default: one per core).") var jobs: Int?
    @Flag(help: "No faults: a zero-latency, lossless network and no Byzantine replicas.") var clean = false
    @Flag(help: "The rotating-fault scenarios: one fault after another (crash, pause, isolation, input loss) on at most f replicas at a time, under steady load, with every commit pause held to a bound derived from the view timeout.")
    var rotating = false

    func run() throws {
        let range: ClosedRange<UInt64>
        if let s = seeds {
            let parts = s.components(separatedBy: "..")
            guard parts.count == 2, let a = UInt64(parts[0]), let b = UInt64(parts[1]), a <= b else {
                throw ValidationError("--seeds takes A..B, e.g. 1..10000")
            }
            range = a ... b
        } else {
            range = (seed ?? 1) ... (seed ?? 1)
        }
        var planted = Set<PlantedBug>()
        for b in bugs {
            guard let p = PlantedBug(rawValue: b) else { throw ValidationError("unknown bug \(b)") }
            planted.insert(p)
        }
        var options = SimOptions()
        options.bugs = planted
        options.faultMs = faultMs
        options.recoveryMs = recoveryMs
        options.clean = clean
        options.rotating = rotating
        options.verbose = trace
        let start = Date()
        let seedsList = Array(range)
        let lanes = max(1, min(jobs ?? ProcessInfo.processInfo.activeProcessorCount, seedsList.count))
        let sink = Sink()
        let frozenOptions = options, frozenPlanted = planted
        // Seeds run on every core; each lane takes every lanes-th seed. A seed's run does not
        // depend on the lane or on other runs, so the report is the same with any --jobs.
        DispatchQueue.concurrentPerform(iterations: lanes) { lane in
            for i in stride(from: lane, to: seedsList.count, by: lanes) {
                let s = seedsList[i]
                let r = Simulation(seed: s, options: frozenOptions).run()
                var text = ""
                if !r.ok {
                    text = "seed \(s) FAILED  [\(r.scenario)]\n" + r.violations.map { "  \($0)\n" }.joined()
                        + "  replay: chaosledger sim --seed \(s)\(frozenOptions.rotating ? " --rotating" : "")\(frozenPlanted.isEmpty ? "" : " " + frozenPlanted.map { "--bug \($0.rawValue)" }.sorted().joined(separator: " "))\n"
                } else if verbose || range.count == 1 {
                    text = "seed \(s) ok  height \(r.height), \(r.committedEvents) events, \(r.ackedClientEvents)/\(r.submittedClientEvents) client events, "
                        + "\(r.viewChanges) view changes, \(r.stateTransfers) fetches, \(r.slashed) slashed, digest \(r.digest.short)  [\(r.scenario)]"
                        + (r.setChanges.isEmpty ? "" : "  {\(r.setChanges.joined(separator: "; "))}") + "\n"
                }
                sink.add(r, text)
            }
        }
        let failed = summarize(sink.reports.sorted { $0.seed < $1.seed }, seeds: range.count, seconds: Date().timeIntervalSince(start))
        if !failed.isEmpty {
            print("failing seeds: \(failed.prefix(50).map(String.init).joined(separator: " "))")
            throw ExitCode(1)
        }
    }

    /// Prints the sweep's totals, its commit pauses and the faults it exercised; returns
    /// the failing seeds.
    func summarize(_ reports: [SimReport], seeds: Int, seconds: Double) -> [UInt64] {
        var failed: [UInt64] = []
        var faults: [FaultKind: Int] = [:]
        var commits = 0, events = 0, viewChanges = 0, messages = 0, transfers = 0, slashed = 0
        for r in reports {
            for f in r.faults { faults[f, default: 0] += 1 }
            commits += Int(r.height); events += r.committedEvents; viewChanges += r.viewChanges
            messages += r.messages; transfers += r.stateTransfers; slashed += r.slashed
            if !r.ok { failed.append(r.seed) }
        }
        print("\(seeds) seeds, \(failed.count) failed, in \(String(format: "%.1f", seconds)) s: \(commits) blocks, \(events) events, "
            + "\(viewChanges) view changes, \(transfers) state-transfer fetches, \(slashed) slashings, \(messages) messages")
        let stuck = reports.filter { !$0.scenario.someProducerAccepted }.count
        if stuck > 0 {
            print("\(stuck) seed(s) had no producer acceptable to a quorum of honest validators' personalities: safety checked, liveness not expected")
        }
        let pauses = reports.flatMap(\.pauses).sorted()
        if rotating, !pauses.isEmpty {
            func q(_ p: Double) -> UInt64 { pauses[min(pauses.count - 1, Int(Double(pauses.count) * p))] }
            print("commit pauses (ms, simulated, view timeout 200 ms): p50 \(q(0.5)), p90 \(q(0.9)), p99 \(q(0.99)), max \(pauses.last!) of \(pauses.count); "
                + "over 1 s: \(pauses.filter { $0 > 1_000 }.count); bounds: 1,000 ms with one faulty, 1,800 ms with two")
        }
        print("faults exercised (seeds): " + FaultKind.allCases.map { "\($0.rawValue) \(faults[$0] ?? 0)" }.joined(separator: ", "))
        return failed
    }
}

/// Collects reports from the sweep's lanes and prints each seed's lines whole.
final class Sink: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var reports: [SimReport] = []
    func add(_ r: SimReport, _ text: String) {
        lock.lock(); defer { lock.unlock() }
        reports.append(r)
        if !text.isEmpty { FileHandle.standardOutput.write(Data(text.utf8)) }
    }
}
