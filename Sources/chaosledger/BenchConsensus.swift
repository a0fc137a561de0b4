import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerSimulation

/// `chaosledger bench-consensus`: four real replicas in the simulator, a zero-latency
/// network, real signatures; committed events per second next to raw libsodium
/// verification of the same events measured in the same run.
struct BenchConsensus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-consensus",
        abstract: "Measure 4 simulated replicas (zero-latency network, real signatures) against raw verification.")
    @Option(help: "Client events (200-byte signed transfers).") var events = 20_000
    @Option(help: "Largest block, in events.") var blockEvents: UInt32 = 1_000
    @Option(help: "Repetitions; each ratio is the median of the pairs.") var repeats = 3
    @Flag(help: "Print the figures as JSON.") var json = false

    func run() throws {
        var ratios: [Double] = [], rates: [Double] = [], raws: [Double] = []
        var last: SimReport?
        for i in 0 ..< repeats {
            var options = SimOptions()
            options.benchEvents = events
            options.blockEventsMax = blockEvents
            options.checkInvariants = false
            options.faultMs = 0
            options.recoveryMs = 600_000
            let sim = Simulation(seed: UInt64(1_000 + i), options: options)
            // Baseline, just before: one core verifying the same signatures with raw libsodium
            // (the simulator runs every replica on one thread).
            let envs = sim.benchEvents.map { try! Envelope(bytes: $0) }
            let msgs = envs.map { Domain.event($0.chainID) + Array($0.signedBytes) }
            let t0 = Date()
            _ = ParallelVerifier.rawBaseline(messages: msgs, signatures: envs.map(\.signature), keys: envs.map(\.author), workers: 1)
            let raw = Double(events) / Date().timeIntervalSince(t0)
            let t1 = Date()
            let r = sim.run()
            let secs = Date().timeIntervalSince(t1)
            guard r.ok, r.ackedClientEvents == events else { throw CLIError("benchmark run failed: \(r.violations)") }
            let rate = Double(r.ackedClientEvents) / secs
            rates.append(rate); raws.append(raw); ratios.append(rate / raw)
            last = r
        }
        let r = last!
        let blocks = Double(r.height)
        func median(_ x: [Double]) -> Double { let s = x.sorted(); return s[s.count / 2] }
        let figures: [String: Any] = [
            "replicas": 4, "clientEvents": events, "blocks": r.height, "committedEvents": r.committedEvents,
            "clientEventsPerSecond": Int(median(rates)), "rawVerifyPerSecond1Core": Int(median(raws)),
            "ratioToRawVerify": (median(ratios) * 1000).rounded() / 1000,
            "messagesPerBlock": Int(Double(r.messages) / blocks),
            "voteSignaturesPerBlock": (Double(r.votesSigned) / blocks * 10).rounded() / 10,
            "voteVerificationsPerBlock": (Double(r.voteSignaturesVerified) / blocks * 10).rounded() / 10,
            "eventVerificationsPerEvent": (Double(r.eventSignaturesVerified) / Double(r.committedEvents) * 100).rounded() / 100,
        ]
        if json { printJSON(figures); return }
        print("4 replicas, zero-latency simulated network, real signatures; \(events) client events, blocks of up to \(blockEvents)")
        print(String(format: "  committed client events/s  %9.0f   (median of %d; runs: %@)", median(rates), repeats, rates.map { String(Int($0)) }.joined(separator: ", ")))
        print(String(format: "  raw libsodium verify/s     %9.0f   (1 core, same run; the simulator is single-threaded)", median(raws)))
        print(String(format: "  ratio                      %9.3f   (each event is verified by all 4 replicas: the ceiling is about 0.25)", median(ratios)))
        print("  per committed block (\(r.height) blocks, \(r.committedEvents) events incl. opinions):")
        print(String(format: "    messages %.0f, vote signatures made %.1f, vote signatures verified %.1f; event verifications per event %.2f",
                     Double(r.messages) / blocks, Double(r.votesSigned) / blocks, Double(r.voteSignaturesVerified) / blocks,
                     Double(r.eventSignaturesVerified) / Double(r.committedEvents)))
    }
}
