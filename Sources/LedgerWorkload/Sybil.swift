import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore

/// The Sybil simulation (schemas/ECONOMY.md §Rule version 3): a ring of fresh agents,
/// all funded from one source, endorse each other and run self-dealing jobs — the ring's
/// clients pay its workers full-value jobs and both sides rate 5 — beside honest agents,
/// each funded on its own, hiring each other for real jobs of mixed value and rating
/// them 2 to 5. Every event is signed and folded by a producer into a real log, so the
/// run replays. The report compares the reputation the two groups end with.
public struct SybilSimulation: Sendable {
    public var blocks = 1_000
    public var ring = 100
    public var honest = 20
    /// Self-dealing jobs the ring runs per block, and endorsements it signs per block.
    public var ringJobsPerBlock = 30
    public var ringEndorsementsPerBlock = 20
    /// Real jobs among the honest agents per block.
    public var honestJobsPerBlock = 4
    /// Genesis accounts that fund the ring (member i from source i mod n): 1 is the
    /// one-source ring; n = ring size gives each member funds of its own.
    public var ringSources = 1
    public var seed: UInt64 = 1
    public var ruleVersion = RuleVersion.current

    public init() {}

    public struct Group: Sendable, Codable, Equatable {
        public var agents: Int
        /// Reputation at the last height, milli-points.
        public var min: Int64
        public var median: Int64
        public var max: Int64
        public var mean: Int64
        /// Jobs this group completed, and events it signed that were admitted.
        public var jobs: Int
        public var events: Int
    }

    public struct Report: Sendable, Codable {
        public var ruleVersion: UInt16
        public var ringSources: Int
        public var blocks: UInt64
        public var ring: Group
        public var honest: Group
        /// Ring members whose reputation is above the honest median (the target: none).
        public var ringAboveHonestMedian: Int
        /// Valid-looking events the chain refused, by code (the ring's repeated or
        /// unauthorised endorsements, mostly).
        public var refused: [String: Int]
        public var stateRoot: String
    }

    public static let chain = try! ChainID("chaosledger-sybil")

    func producerKey() -> SigningKey { SigningKey.derived("sybil-\(seed)-producer") }
    func sourceKey(_ i: Int) -> SigningKey { SigningKey.derived(i == 0 ? "sybil-\(seed)-source" : "sybil-\(seed)-source-\(i)") }
    var sources: Int { max(1, min(ringSources, max(1, ring))) }
    func honestKey(_ i: Int) -> SigningKey { SigningKey.derived("sybil-\(seed)-honest-\(i)") }
    func ringKey(_ i: Int) -> SigningKey { SigningKey.derived("sybil-\(seed)-ring-\(i)") }

    /// The honest agents and the ring's single source have genesis allocations; the
    /// ring's members are created by the source's transfers.
    public func genesis() throws -> Genesis {
        var params = ChainParameters()
        params.blockEventsMax = 2_000
        let allocations = (0 ..< honest).map { Genesis.Allocation(account: honestKey($0).publicKey, amount: 100_000_000) }
            + (0 ..< sources).map { Genesis.Allocation(account: sourceKey($0).publicKey, amount: 100_000_000 * UInt64(max(1, ring))) }
        let producer = Genesis.Validator(key: producerKey().publicKey, name: "producer", personality: "lawful", stake: 1_000_000_000)
        return try Genesis(chainID: Self.chain, timestampMs: DemoWorkload.genesisTimeMs, parameters: params, validators: [producer],
                           allocations: allocations, ruleVersion: ruleVersion)
    }

    public func run(into log: any EventLog) throws -> Report {
        let g = try genesis()
        _ = try log.initialize(genesis: g)
        let run = try SybilRun(self, log: log)
        try run.go()
        return run.report()
    }
}

/// One run of the simulation: keys, nonces, counters and the producer.
final class SybilRun {
    let sim: SybilSimulation
    let producer: SoloProducer
    let keys: [SigningKey]
    var nonces: [UInt64]
    var rng: SplitMix64
    var refused: [String: Int] = [:]
    var events = [Int](repeating: 0, count: 2)
    var jobs = [Int](repeating: 0, count: 2)
    /// Jobs posted in the last block, to be worked in this one: (client, worker, job, group).
    var posted: [(Int, Int, JobID, Int)] = []
    /// The first source's index; the sources follow it.
    let source: Int

    /// Indexes: honest agents first, then the ring, then the source.
    var ringRange: Range<Int> { sim.honest ..< sim.honest + sim.ring }

    init(_ sim: SybilSimulation, log: any EventLog) throws {
        self.sim = sim
        producer = try SoloProducer(log: log, key: sim.producerKey(), clock: DemoWorkload.clock(genesisMs: DemoWorkload.genesisTimeMs))
        keys = (0 ..< sim.honest).map(sim.honestKey) + (0 ..< sim.ring).map(sim.ringKey) + (0 ..< sim.sources).map(sim.sourceKey)
        source = sim.honest + sim.ring
        nonces = [UInt64](repeating: 0, count: keys.count)
        rng = SplitMix64(seed: sim.seed)
    }

    func group(_ i: Int) -> Int { ringRange.contains(i) ? 1 : 0 }

    @discardableResult
    func submit(_ i: Int, _ p: Payload) -> EventID? {
        let fee = producer.pendingState.requiredFee(for: p) * 2
        let e = EventCrypto.makeEvent(chain: SybilSimulation.chain, key: keys[i], nonce: nonces[i] + 1, fee: fee, payload: p)
        do {
            let id = try producer.submit(e.bytes)
            nonces[i] += 1
            if i < source { events[group(i)] += 1 }
            return id
        } catch {
            if case let .rejected(a) = error { refused[a.code, default: 0] += 1 } else { refused["\(error)", default: 0] += 1 }
            return nil
        }
    }

    func go() throws {
        for i in ringRange {
            submit(source + (i - sim.honest) % sim.sources, .transfer(to: keys[i].publicKey, amount: 50_000_000, memo: "seed"))
        }
        _ = try producer.commit()
        for i in 0 ..< sim.honest + sim.ring {
            submit(i, .agentRegister(AgentProfile(name: "agent-\(i)", capabilities: ["work"], personality: "lawful", endpoint: "")))
        }
        _ = try producer.commit()
        for _ in 0 ..< sim.blocks {
            let h = producer.pendingState.height.value
            work(at: h)
            post(at: h)
            endorse()
            if producer.pendingState.trustRules {
                for i in 0 ..< sim.honest where rng.next() % 10 == 0 { submit(i, .agentHeartbeat) }
            }
            _ = try producer.commit()
        }
    }

    func pick(_ r: Range<Int>) -> Int { r.lowerBound + Int(rng.next() % UInt64(r.count)) }
    func pair(_ r: Range<Int>) -> (Int, Int) {
        let a = pick(r)
        var b = pick(r)
        while b == a { b = pick(r) }
        return (a, b)
    }

    /// Honest jobs of mixed value (one or two milestones, 1,000–12,000 in all); the ring's
    /// at full value, one milestone each.
    func post(at h: UInt64) {
        posted = []
        let deadline = Height(h + 20)
        for _ in 0 ..< sim.honestJobsPerBlock where sim.honest >= 2 {
            let (c, w) = pair(0 ..< sim.honest)
            let ms = (0 ..< 1 + Int(rng.next() % 2)).map { _ in 500 + rng.next() % 5_500 }
            if let id = submit(c, .jobPost(JobSpec(title: "real work", capabilities: ["work"], milestones: ms, deadline: deadline))) {
                posted.append((c, w, JobID(createdBy: id), 0))
            }
        }
        for _ in 0 ..< sim.ringJobsPerBlock where sim.ring >= 2 {
            let (c, w) = pair(ringRange)
            if let id = submit(c, .jobPost(JobSpec(title: "farm", capabilities: ["work"], milestones: [10_000], deadline: deadline))) {
                posted.append((c, w, JobID(createdBy: id), 1))
            }
        }
    }

    /// Last block's jobs: accepted, funded, delivered, paid and rated both ways. Honest
    /// clients rate 2 to 5, honest workers 4 or 5; the ring always 5.
    func work(at h: UInt64) {
        for (c, w, j, g) in posted {
            guard submit(w, .jobAccept(j)) != nil, submit(c, .escrowFund(j)) != nil,
                  let job = producer.pendingState.economy.jobs[j] else { continue }
            for m in job.milestones.indices {
                submit(w, .jobSubmit(job: j, milestone: UInt16(m), result: Blake2b.hash(Array("result \(j.short) \(m)".utf8))))
                submit(c, .escrowRelease(job: j, milestone: UInt16(m)))
            }
            guard producer.pendingState.economy.jobs[j]?.status == .completed else { continue }
            jobs[g] += 1
            let byClient = g == 1 ? 5 : UInt8(2 + rng.next() % 4), byWorker = g == 1 ? 5 : UInt8(4 + rng.next() % 2)
            submit(c, .rate(job: j, score: byClient, comment: ""))
            submit(w, .rate(job: j, score: byWorker, comment: ""))
        }
    }

    /// The ring endorses itself at full strength, each time a random pair.
    func endorse() {
        for _ in 0 ..< sim.ringEndorsementsPerBlock where sim.ring >= 2 {
            let (a, b) = pair(ringRange)
            submit(a, .endorse(subject: keys[b].publicKey, delta: 5, reason: "great agent"))
        }
    }

    func report() -> SybilSimulation.Report {
        let s = producer.state
        func stats(_ r: Range<Int>, _ g: Int) -> SybilSimulation.Group {
            let reps = r.map { s.reputation(of: keys[$0].publicKey) }.sorted()
            guard !reps.isEmpty else { return .init(agents: 0, min: 0, median: 0, max: 0, mean: 0, jobs: jobs[g], events: events[g]) }
            let mean = reps.reduce(Int128(0)) { $0 + Int128($1) } / Int128(reps.count)
            return .init(agents: reps.count, min: reps.first!, median: reps[(reps.count - 1) / 2], max: reps.last!, mean: Int64(mean),
                         jobs: jobs[g], events: events[g])
        }
        let honest = stats(0 ..< sim.honest, 0), ring = stats(ringRange, 1)
        let above = ringRange.filter { s.reputation(of: keys[$0].publicKey) > honest.median }.count
        return .init(ruleVersion: s.economy.ruleVersion, ringSources: sim.sources, blocks: s.height.value, ring: ring, honest: honest,
                     ringAboveHonestMedian: above, refused: refused, stateRoot: s.stateRoot().hex)
    }
}
