import Foundation
import LedgerAudit
import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerSimulation
import LedgerStore
import Testing

/// The deterministic cluster simulator (issue 3): a sweep of seeds through every fault
/// kind with zero violations, planted bugs that the sweep must catch, determinism, and
/// the logs it produces passing the offline replay.
@Suite struct SimulationTests {
    static let sweepSeeds: ClosedRange<UInt64> = 1 ... 200

    /// Runs seeds on every core; reports come back in seed order.
    static func sweep(_ seeds: [UInt64], options: SimOptions = SimOptions()) -> [SimReport] {
        let lanes = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let box = ReportBox(count: seeds.count)
        DispatchQueue.concurrentPerform(iterations: lanes) { lane in
            for i in stride(from: lane, to: seeds.count, by: lanes) {
                box.put(i, Simulation(seed: seeds[i], options: options).run())
            }
        }
        return box.all()
    }

    @Test func sweepHasNoViolationsAndCoversEveryFault() {
        let reports = Self.sweep(Array(Self.sweepSeeds))
        let failed = reports.filter { !$0.ok }
        #expect(failed.isEmpty, "\(failed.map { "seed \($0.seed) [\($0.scenario)]: \($0.violations.joined(separator: "; "))" }.joined(separator: "\n"))")
        var faults: [FaultKind: Int] = [:]
        var byzantine: [Byzantine: Int] = [:]
        var personalities = Set<String>()
        var sizes = Set<Int>()
        for r in reports {
            for f in r.faults { faults[f, default: 0] += 1 }
            for kinds in r.scenario.byzantine.values { for k in kinds { byzantine[k, default: 0] += 1 } }
            personalities.formUnion(r.scenario.personalities)
            sizes.insert(r.scenario.validators)
        }
        // Pauses, isolations and input loss belong to the rotating-fault scenarios (LivenessTests).
        for f in FaultKind.allCases where ![.pause, .isolation, .inputLoss].contains(f) { #expect(faults[f, default: 0] > 0, "no seed exercised \(f)") }
        for b in Byzantine.allCases { #expect(byzantine[b, default: 0] > 0, "no seed had a \(b) replica") }
        #expect(personalities == Set(["lawful", "memetic", "loyal", "chaotic"]))
        #expect(sizes.isSuperset(of: [4, 5, 7]))
        #expect(reports.contains { Set($0.scenario.stakes).count > 1 }, "unequal stakes")
        #expect(reports.contains { $0.scenario.primaryRule == .stakeWeighted } && reports.contains { $0.scenario.primaryRule == .roundRobin })
        #expect(reports.reduce(0) { $0 + $1.slashed } > 0, "an equivocating replica was slashed somewhere")
        #expect(reports.reduce(0) { $0 + $1.convictions[.forgedConsensusMessage, default: 0] } > 0, "a forging replica was convicted somewhere")
        #expect(reports.reduce(0) { $0 + $1.viewChanges } > 0)
        #expect(reports.reduce(0) { $0 + $1.stateTransfers } > 0)
        // Every event commits wherever some producer is acceptable to a quorum of honest
        // validators (personalities may make a cluster refuse every producer: safe, stuck).
        #expect(reports.filter(\.scenario.someProducerAccepted).allSatisfy { $0.ackedClientEvents == $0.submittedClientEvents })
        #expect(reports.filter(\.scenario.someProducerAccepted).count >= 190)
        // Validator-set changes happened, and took effect exactly at epoch boundaries: a new
        // key signs only from the epoch after its event, a retired key never after its epoch.
        let changes = reports.flatMap { r in r.setChanges.map { (r.scenario.checkpointInterval, $0) } }
        for kind in ["joiner bonded", "rotated", "retired"] {
            #expect(changes.contains { $0.1.contains(kind) }, "no seed showed \(kind)")
        }
        for (k, c) in changes {
            let hs = c.split(separator: "h").dropFirst().map { UInt64($0.prefix { $0.isNumber })! }
            let epochEnd = (hs[0] + k - 1) / k * k
            if c.contains("retired") { #expect(hs[1] <= epochEnd, "\(c) (K = \(k))") } else { #expect(hs[1] > epochEnd, "\(c) (K = \(k))") }
        }
    }

    /// Which seeds can show a bug: a forged certificate needs a replica that lies in state
    /// transfer; a new view that drops a certificate needs view changes under faults.
    static func candidates(for bug: PlantedBug) -> [UInt64] {
        let all = Array(UInt64(1) ... 400)
        switch bug {
        case .acceptForgedSignature: return all.filter { Scenario.draw(seed: $0).byzantine.values.contains { $0.contains(.lieInTransfer) } }
        case .newViewDropsPrepared: return all.filter { let s = Scenario.draw(seed: $0); return s.partitions || s.crashes }
        default: return all
        }
    }

    @Test(arguments: PlantedBug.allCases)
    func sweepCatchesPlantedBug(_ bug: PlantedBug) {
        var options = SimOptions()
        options.bugs = [bug]
        let seeds = Self.candidates(for: bug).prefix(40)
        var caught: SimReport?
        for chunk in stride(from: 0, to: seeds.count, by: 4) where caught == nil {
            let batch = Array(seeds.dropFirst(chunk).prefix(4))
            caught = Self.sweep(batch, options: options).first { !$0.ok }
        }
        #expect(caught != nil, "the sweep did not catch \(bug) in seeds \(seeds.first ?? 0)...")
        if let c = caught {
            // The same seed without the bug is clean: the bug, not the seed, is what failed.
            #expect(Simulation(seed: c.seed).run().ok)
        }
    }

    @Test func sameSeedSameRun() {
        let a = Simulation(seed: 42).run(), b = Simulation(seed: 42).run()
        #expect(a.digest == b.digest)
        #expect(a.height == b.height && a.messages == b.messages && a.viewChanges == b.viewChanges)
        #expect(Simulation(seed: 43).run().digest != a.digest)
    }

    /// The logs the honest replicas keep replay cleanly offline: certificates against the
    /// epoch's validators, views (a block may commit in a later view than it was proposed
    /// in), state roots and supply.
    @Test(arguments: [UInt64(3), 17, 29])
    func simulatedLogsReplay(_ seed: UInt64) throws {
        let sim = Simulation(seed: seed)
        let report = sim.run()
        #expect(report.ok, "\(report.violations)")
        for (replica, blocks) in sim.honestLogs().prefix(2) {
            let log = LedgerLog.memory()
            _ = try log.initialize(genesis: sim.genesis)
            var next: UInt64 = 0
            for cb in blocks {
                let events = cb.block.events.map { raw in (id: EventCrypto.id(raw), envelope: try! Envelope(bytes: raw)) }
                let stored = StoredBlock(header: cb.block.header, certificate: cb.certificate, firstSequence: SequenceNumber(next))
                try log.append(BlockCommit(block: stored, blockHash: cb.block.hash, events: events))
                next += UInt64(events.count)
            }
            let r = Replayer(log: log).run().report
            #expect(r.ok, "replica \(replica) of seed \(seed): \(String(describing: r.failure))")
            #expect(r.blocks == UInt64(blocks.count))
        }
    }
}

final class ReportBox: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [SimReport?]
    init(count: Int) { reports = Array(repeating: nil, count: count) }
    func put(_ i: Int, _ r: SimReport) { lock.lock(); reports[i] = r; lock.unlock() }
    func all() -> [SimReport] { lock.lock(); defer { lock.unlock() }; return reports.map { $0! } }
}
