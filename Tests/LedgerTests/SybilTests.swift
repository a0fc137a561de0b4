import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore
import LedgerWorkload
import Testing

/// The Sybil simulation at a small size: the same workload, folded under rule version 2
/// and under rule version 3, must farm reputation under the first and nothing under the
/// second — so it is the rules, not a weak workload, that stop the ring.
@Suite struct SybilTests {
    static func small(_ rules: UInt16) -> SybilSimulation {
        var sim = SybilSimulation()
        sim.blocks = 40; sim.ring = 16; sim.honest = 8
        sim.ringJobsPerBlock = 8; sim.ringEndorsementsPerBlock = 6; sim.honestJobsPerBlock = 3
        sim.ruleVersion = rules
        return sim
    }

    @Test func aRingFundedFromOneSourceGainsNothingUnderTheTrustLayer() throws {
        let log = LedgerLog.memory()
        let v3 = try Self.small(RuleVersion.trust).run(into: log)
        #expect(v3.ruleVersion == RuleVersion.trust)
        // Both groups worked: the ring completed its self-dealing jobs and paid for them.
        #expect(v3.ring.jobs > 100 && v3.honest.jobs > 50, "\(v3)")
        #expect(v3.ring.max == 0 && v3.ring.min == 0, "the ring's reputation: \(v3.ring)")
        #expect(v3.honest.min > 0 && v3.honest.median > v3.ring.max, "\(v3.honest)")
        #expect(v3.ringAboveHonestMedian == 0)
        // Repeated endorsements of one pair within the period are refused.
        #expect((v3.refused["endorsement_too_soon"] ?? 0) > 0, "\(v3.refused)")
        // The run is a real log: it replays to the same state.
        let replay = Replayer(log: log).run()
        #expect(replay.report.ok, "\(String(describing: replay.report.failure))")
        #expect(replay.state?.stateRoot().hex == v3.stateRoot)
        // The trust layer's state (origins, pairs, agent trust records) survives a checkpoint
        // snapshot and a state-sync assembly, to the same root.
        var state = try #require(replay.state)
        let root = state.sealRoot()
        #expect(state.economy.origins.count == 16 && !state.economy.pairs.isEmpty)
        var decoded = try LedgerState.decodeSnapshot(state.canonicalBytes(), crypto: Sodium())
        #expect(decoded == state && decoded.sealRoot() == root)
        var assembled = try LedgerState.assemble(state.allLeaves().shuffled(), crypto: Sodium())
        #expect(assembled.sealRoot() == root && assembled.economy.origins.count == 16)
    }

    @Test func theSameRingFarmsUnderRuleVersionTwo() throws {
        let v2 = try Self.small(RuleVersion.economy).run(into: LedgerLog.memory())
        #expect(v2.ruleVersion == RuleVersion.economy)
        #expect(v2.ring.median > v2.honest.median, "ring \(v2.ring), honest \(v2.honest)")
        #expect(v2.ringAboveHonestMedian > v2.ring.agents / 2)
        // Agents cannot endorse under version 2: only validators may.
        #expect((v2.refused["unknown_validator"] ?? 0) > 0, "\(v2.refused)")
    }
}
