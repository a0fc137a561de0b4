import LedgerAgents
import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerProjections

public struct SimOptions: Sendable {
    public var bugs: Set<PlantedBug> = []
    /// Faults are injected during [0, faultMs); then the network heals, every crashed
    /// replica restarts, and commits must resume within `recoveryMs`.
    public var faultMs: UInt64 = 3_000
    /// Commits must resume this long after faults stop (three times as long when honest
    /// personalities may refuse producers outright: see `Simulation.init`).
    public var recoveryMs: UInt64 = 20_000
    /// Replace the drawn scenario's faults with a clean, zero-latency network (benchmark).
    public var clean = false
    public var scenario: Scenario?
    /// Print what every replica does (for debugging one seed).
    public var verbose = false
    /// Benchmark mode: a clean 4-replica cluster, lawful, this many pre-signed client
    /// events submitted at once (signed before `run`, so not timed).
    public var benchEvents = 0
    public var blockEventsMax: UInt32 = 200
    /// The checker re-verifies every committed signature and certificate; a benchmark
    /// switches that off to time the replicas alone (agreement is still checked).
    public var checkInvariants = true
    /// Draw the rotating-fault scenario (`Scenario.drawRotating`) instead of the sweep's.
    public var rotating = false
    public init() {}
}

public struct SimReport: Sendable {
    public var seed: UInt64
    public var scenario: Scenario
    public var violations: [String]
    public var height: UInt64
    public var committedEvents: Int
    public var ackedClientEvents: Int
    public var submittedClientEvents: Int
    public var viewChanges: Int
    public var messages: Int
    public var stateTransfers: Int
    public var slashed: Int
    public var faults: Set<FaultKind>
    public var simulatedMs: UInt64
    /// BLAKE2b of the run's commit trace: the same seed gives the same digest, in any process.
    public var digest: Hash32
    public var votesSigned: Int
    /// Validator-set changes that took effect: a joiner's or a rotated key's first
    /// certificate signature, a retired validator's last.
    public var setChanges: [String]
    public var voteSignaturesVerified: Int
    public var eventSignaturesVerified: Int
    /// Convictions of Byzantine replicas, by fault (an honest one convicted is a violation).
    public var convictions: [PeerFault: Int]
    /// Commit pauses: each time a new height committed while a client event was waiting,
    /// how long that work had waited since the previous commit (ms), in commit order.
    public var pauses: [UInt64]
    public var ok: Bool { violations.isEmpty }
}

/// A binary min-heap of timed simulation events; ties keep insertion order.
struct Agenda {
    struct Item { var at: UInt64; var seq: UInt64; var what: Happening }
    var heap: [Item] = []
    var seq: UInt64 = 0
    mutating func push(_ at: UInt64, _ what: Happening) {
        seq += 1
        heap.append(Item(at: at, seq: seq, what: what))
        var i = heap.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard less(heap[i], heap[p]) else { break }
            heap.swapAt(i, p); i = p
        }
    }
    func less(_ a: Item, _ b: Item) -> Bool { (a.at, a.seq) < (b.at, b.seq) }
    mutating func pop() -> Item? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, less(heap[l], heap[m]) { m = l }
            if r < heap.count, less(heap[r], heap[m]) { m = r }
            if m == i { break }
            heap.swapAt(i, m); i = m
        }
        return top
    }
}

enum Happening {
    case deliver(from: Int, to: Int, PeerMessage)
    case tick(Int)
    case persisted(Int, incarnation: Int, token: UInt64, records: [DurableRecord], commits: [CommittedBlock])
    case crash(Int)
    case restart(Int)
    case partition([Int])
    case heal
    case cut(Int, Int)
    case restore(Int, Int)
    case client(Int)
    case clientRetry
    case garbage
    case rotate(Int)
    case join(Int)
    case retire(Int)
    case byzantinePush(Int)
    case rotatingFault(Int, FaultRotation.Kind)
    case rotatingFaultEnd(Int, FaultRotation.Kind)
    case faultsEnd
}

final class SimNode {
    let index: Int
    var config: ReplicaConfig
    var replica: Replica?
    var incarnation = 0
    var byzantine: [Byzantine]
    var slow: Bool
    // Durable: what survives a crash.
    var durable = DurableState()
    var chain: [CertifiedBlock] = []
    var durableState: LedgerState
    var lastDiskAt: UInt64 = 0
    // Volatile view for the checker.
    var executedState: LedgerState
    var received: [PeerMessage] = []

    init(index: Int, config: ReplicaConfig, genesis: LedgerState, byzantine: [Byzantine], slow: Bool) {
        self.index = index; self.config = config; self.byzantine = byzantine; self.slow = slow
        durableState = genesis; executedState = genesis
    }
    var honest: Bool { byzantine.isEmpty }
    var lastHash: Hash32 { chain.last?.block.hash ?? config.genesisHash }
}

/// A whole cluster of real replicas in one process: simulated time, network, disks,
/// crashes and Byzantine members, with the safety and liveness invariants checked
/// after every step (STYLE §3).
public final class Simulation {
    public let seed: UInt64
    public let scenario: Scenario
    public let options: SimOptions
    var rng: SplitMix64
    var agenda = Agenda()
    var now: UInt64 = 0
    var nodes: [SimNode] = []
    var keyOwner: [PublicKey: Int] = [:]
    public let genesis: Genesis
    let genesisState: LedgerState
    let genesisHash: Hash32
    let chain: ChainID
    var violations: [String] = []
    var faultsOn = true
    var faults = Set<FaultKind>()
    var partition: [Int]?
    var cutLinks = Set<[Int]>()
    // Checker state.
    var committedHash: [UInt64: Hash32] = [:]
    /// The lowest view in which each height's block is known committed (`checkNewView`).
    var committedView: [UInt64: View] = [:]
    var committedRoot: [UInt64: Hash32] = [:]
    var checkedEvents = Set<EventID>()
    var honestVotes: [SeenVote: SignedConsensusMessage] = [:]
    var acked: [EventID: UInt64] = [:]
    var clientKeys: [SigningKey] = []
    var clientNonce: [UInt64] = []
    var clientPending: [[(id: EventID, bytes: [UInt8], at: UInt64)]] = []
    var submitted = 0
    var submittedIDs = Set<EventID>()
    var lastCommitAt: UInt64 = 0
    // Rotating faults (FaultRotation): who is paused until when, isolated, losing input.
    var pausedUntil: [Int: UInt64] = [:]
    var isolated = Set<Int>()
    var losingInput = Set<Int>()
    var pauses: [UInt64] = []
    /// The longest a client event may wait for the next commit while at most f replicas
    /// are faulty (rotating-fault scenarios only).
    public let pauseBoundMs: UInt64
    var commitsAfterFaults = 0
    var trace = ByteWriter(capacity: 4096)
    var messages = 0
    var viewChanges = 0
    var transfers = 0
    var convictions: [PeerFault: Int] = [:]
    let stop: UInt64
    /// The liveness bound after faults stop, for this scenario.
    let recoveryMs: UInt64

    struct CheckedCertificate: Hashable { var certificate: CommitCertificate; var parentRoot: Hash32 }
    var checkedCertificates = Set<CheckedCertificate>()
    var checkedNewViews = Set<[Hash32]>()
    let genesisRoot: Hash32

    struct SeenVote: Hashable { var signer: PublicKey; var kind: UInt8; var height: UInt64; var view: View }

    public init(seed: UInt64, options: SimOptions = SimOptions()) {
        self.seed = seed
        self.options = options
        let sc = Self.scenario(seed: seed, options)
        scenario = sc
        rng = SplitMix64(seed: seed)
        // Honest validators whose personality can refuse a producer outright may need the
        // views to come round to a producer they accept — with a stake-weighted draw and a
        // withholding Byzantine member that can take several turns — so they get three
        // times the bound.
        let refusers = (0 ..< sc.validators).contains { sc.byzantine[$0] == nil && sc.personalities[$0] != "lawful" }
        recoveryMs = refusers ? 3 * options.recoveryMs : options.recoveryMs
        // With at most f replicas faulty, the honest ones need at most f + 1 views to reach
        // a working primary: the timeouts double, T + 2T + … + 2^f·T < 2^(f+1)·T, and a
        // view change's own messages, a batch delay and a retransmission fit in one more T.
        // (T is the 200 ms view timeout set below.)
        let f = sc.faultRotation?.concurrent ?? 0
        pauseBoundMs = 200 * ((UInt64(1) << UInt64(f + 1)) + 1)
        stop = options.faultMs + recoveryMs
        chain = try! ChainID("chaos-sim")
        var params = ChainParameters()
        params.checkpointInterval = sc.checkpointInterval
        params.minValidatorStake = 1_000
        params.blockEventsMax = options.blockEventsMax
        params.blockBytesMax = max(UInt32(Limits.eventBytesMax), options.blockEventsMax * 512)
        params.jailBlocks = 1_000
        let ops = (0 ..< sc.validators).map { SigningKey.derived("sim-\(seed)-validator-\($0)") }
        clientKeys = (0 ..< sc.clients).map { SigningKey.derived("sim-\(seed)-client-\($0)") }
        let joinerKey = SigningKey.derived("sim-\(seed)-joiner")
        var allocations = clientKeys.map { Genesis.Allocation(account: $0.publicKey, amount: 1_000_000_000) }
        allocations += ops.map { Genesis.Allocation(account: $0.publicKey, amount: 1_000_000) }
        if sc.joiner { allocations.append(Genesis.Allocation(account: joinerKey.publicKey, amount: 1_000_000)) }
        let validators = (0 ..< sc.validators).map {
            Genesis.Validator(key: ops[$0].publicKey, name: "r\($0)", personality: sc.personalities[$0], stake: sc.stakes[$0])
        }
        genesis = try! Genesis(chainID: chain, timestampMs: 1_000_000, parameters: params, validators: validators, allocations: allocations)
        genesisHash = Blake2b.hash(genesis.encoded())
        genesisState = LedgerState(genesis: genesis, genesisHash: genesisHash, crypto: Sodium())
        let root = genesisState.stateRoot()
        genesisRoot = root
        clientNonce = Array(repeating: 0, count: sc.clients)
        clientPending = Array(repeating: [], count: sc.clients)
        if options.benchEvents > 0 {
            // Pre-signed, so the fee cannot follow the base fee: it leaves room for blocks
            // above the gas target to raise it (an event whose fee falls below the base fee
            // is dropped, and its author's later nonces then wait for ever).
            presigned = (0 ..< options.benchEvents).map { i in
                let k = i % sc.clients
                let e = EventCrypto.makeEvent(chain: chain, key: clientKeys[k], nonce: UInt64(i / sc.clients + 1), fee: 1_000,
                                              payload: .transfer(to: clientKeys[(k + 1) % sc.clients].publicKey, amount: 1, memo: "bench!"))
                return e.bytes
            }
        }
        makeReplicas(ops: ops, joinerKey: joinerKey)
    }
    /// The seed's scenario, adjusted for the options (a steady load under rotating
    /// faults; a clean network and lawful validators for a benchmark).
    static func scenario(seed: UInt64, _ options: SimOptions) -> Scenario {
        var sc = options.scenario ?? (options.rotating ? Scenario.drawRotating(seed: seed) : Scenario.draw(seed: seed))
        // A steady load for the whole fault window: 40 client events per simulated second.
        if sc.faultRotation != nil, sc.clientEvents == 0 { sc.clientEvents = Int(options.faultMs / 25) }
        if options.benchEvents > 0 {
            sc.validators = 4; sc.stakes = [10_000, 10_000, 10_000, 10_000]; sc.personalities = ["lawful", "lawful", "lawful", "lawful"]
            sc.primaryRule = .roundRobin; sc.checkpointInterval = 50; sc.clients = 8; sc.clientEvents = options.benchEvents
        }
        if options.clean || options.benchEvents > 0 {
            sc.delayMaxMs = 0; sc.lossRate = 0; sc.duplicateRate = 0; sc.partitions = false; sc.linkCuts = false
            sc.crashes = false; sc.slowReplica = nil; sc.byzantine = [:]; sc.invalidEvents = false; sc.rotation = nil
        }
        return sc
    }

    /// The replicas: one per validator (a rotating one holds its next key too), and the
    /// joiner's follower when the scenario has one.
    func makeReplicas(ops: [SigningKey], joinerKey: SigningKey) {
        let root = genesisRoot
        for i in 0 ..< scenario.validators {
            var keys = [ops[i]]
            if scenario.rotation == i { keys.append(SigningKey.derived("sim-\(seed)-validator-\(i)-rotated")) }
            var c = ReplicaConfig(genesisHash: genesisHash, genesisStateRoot: root, keys: keys, operatorKey: ops[i], crypto: Sodium())
            c.primaryRule = scenario.primaryRule
            c.viewTimeoutMs = 200
            c.viewTimeoutMaxMs = 1_600
            c.retransmitMs = 100
            c.fetchIntervalMs = 120
            c.batchDelayMs = 5
            c.personality = Personalities.named(scenario.personalities[i])
            // Witty producers play to the cluster's personalities (the producer strategy of
            // the agent economy); lazy ones post "gm", which memetic validators refuse.
            if scenario.wittyProducers[i] {
                c.producer = AudienceProducer(audience: scenario.personalities, seed: seed &+ UInt64(i), hashing: Sodium())
            } else {
                c.producer = MemeProducer(witty: false)
            }
            c.bugs = options.bugs
            // A benchmark hands every replica its whole load at once, each client's
            // nonces far ahead: no driver bounds it, so the replica does not either.
            if options.benchEvents > 0 { c.authorAheadMax = .max }
            let node = SimNode(index: i, config: c, genesis: genesisState, byzantine: scenario.byzantine[i] ?? [], slow: scenario.slowReplica == i)
            node.replica = Replica(config: c, state: genesisState, lastHash: genesisHash)
            nodes.append(node)
            for k in keys { keyOwner[k.publicKey] = i }
        }
        if scenario.joiner {
            // Not a validator at genesis: its replica follows (executes, never votes) until
            // its registration and bond take effect at an epoch boundary.
            var c = nodes[0].config
            c.keys = [joinerKey]; c.operatorKey = joinerKey
            c.personality = Lawful(); c.producer = MemeProducer(witty: true)
            let node = SimNode(index: nodes.count, config: c, genesis: genesisState, byzantine: [], slow: false)
            node.replica = Replica(config: c, state: genesisState, lastHash: genesisHash)
            nodes.append(node)
            keyOwner[joinerKey.publicKey] = node.index
        }
    }

    var presigned: [[UInt8]] = []
    /// The pre-signed client events of a benchmark run.
    public var benchEvents: [[UInt8]] { presigned }

    // MARK: - Schedule

    func schedule() {
        let sc = scenario
        let fm = options.faultMs
        for i in nodes.indices { agenda.push(UInt64(i), .tick(i)) }
        // Client events spread over the fault window and a little after it.
        if !presigned.isEmpty {
            // Benchmark: everything submitted at once, round-robin over the replicas.
            for (i, bytes) in presigned.enumerated() {
                let id = EventCrypto.id(bytes)
                submitted += 1; submittedIDs.insert(id)
                step(nodes[i % nodes.count], .request(bytes))
            }
            agenda.push(fm, .faultsEnd)
            return
        }
        let spread = fm + 1_000
        for k in 0 ..< sc.clientEvents { agenda.push(rng.below(spread) + UInt64(k % 3), .client(k % sc.clients)) }
        agenda.push(200, .clientRetry)
        if sc.invalidEvents { for _ in 0 ..< 10 { agenda.push(rng.below(fm), .garbage) } }
        if sc.partitions {
            var t = rng.range(100, fm / 3)
            while t < fm {
                var side = nodes.indices.filter { _ in rng.chance(0.5) }
                if side.isEmpty || side.count == nodes.count { side = [rng.below(nodes.count)] }
                agenda.push(t, .partition(side))
                t += rng.range(200, 900)
                agenda.push(min(t, fm), .heal)
                t += rng.range(100, 600)
            }
        }
        if sc.linkCuts {
            var links: [(Int, Int)] = []
            for a in nodes.indices { for b in nodes.indices where a < b && rng.chance(0.4) { links.append((a, b)) } }
            var t = rng.range(50, fm / 2)
            for (a, b) in links { agenda.push(t, .cut(a, b)); t += rng.range(10, 200) }
            // Restored in a random order.
            var order = links
            for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.below(i + 1)) }
            for (a, b) in order { t += rng.range(10, 300); agenda.push(min(t, fm), .restore(a, b)) }
        }
        if sc.crashes {
            let honest = nodes.indices.filter { nodes[$0].honest }
            for _ in 0 ..< 1 + rng.below(3) {
                let i = honest[rng.below(honest.count)]
                let t = rng.range(100, fm - 100)
                agenda.push(t, .crash(i))
                agenda.push(min(t + rng.range(50, 1_200), fm), .restart(i))
            }
        }
        if let r = sc.rotation { agenda.push(rng.range(100, fm), .rotate(r)) }
        if sc.joiner { agenda.push(rng.range(100, fm / 2), .join(nodes.count - 1)) }
        if let r = sc.retire { agenda.push(rng.range(100, fm), .retire(r)) }
        for i in nodes.indices where nodes[i].byzantine.contains(.lieInTransfer) { agenda.push(rng.range(50, 300), .byzantinePush(i)) }
        if let fr = sc.faultRotation {
            var t = fr.periodMs, k = 0
            while t + fr.durationMs < fm {
                for c in 0 ..< fr.concurrent {
                    let i = (k * fr.concurrent + c) % sc.validators
                    let kind = FaultRotation.Kind.allCases[rng.below(FaultRotation.Kind.allCases.count)]
                    agenda.push(t, .rotatingFault(i, kind))
                    agenda.push(t + fr.durationMs, .rotatingFaultEnd(i, kind))
                }
                k += 1
                t += fr.periodMs
            }
        }
        agenda.push(fm, .faultsEnd)
    }

    // MARK: - Run

    public func run() -> SimReport {
        schedule()
        let clientsDone = options.faultMs + 1_000
        var nextDoneCheck = clientsDone
        while let item = agenda.pop(), item.at <= stop {
            now = item.at
            handle(item.what)
            if violations.count >= 5 { break }
            // Once faults and clients are over, stop as soon as every honest replica holds every event.
            if now >= nextDoneCheck {
                nextDoneCheck = now + 100
                if settled() { break }
            }
        }
        finalChecks()
        if options.verbose { for n in nodes { print("end r\(n.index): \(n.replica?.status ?? "crashed")") } }
        var honestHeights = nodes.filter(\.honest).map { $0.chain.count }
        honestHeights.sort()
        var slashed = 0
        for n in nodes where n.honest { slashed = max(slashed, n.executedState.slashes.count) }
        return SimReport(
            seed: seed, scenario: scenario, violations: violations, height: UInt64(honestHeights.last ?? 0),
            committedEvents: nodes.filter(\.honest).map { n in n.chain.reduce(0) { $0 + $1.block.events.count } }.max() ?? 0,
            ackedClientEvents: acked.keys.filter { submittedIDs.contains($0) }.count, submittedClientEvents: submitted,
            viewChanges: viewChanges, messages: messages, stateTransfers: transfers, slashed: slashed,
            faults: faults, simulatedMs: now, digest: Blake2b.hash(trace.bytes),
            votesSigned: nodes.reduce(0) { $0 + ($1.replica?.counters.votesSigned ?? 0) },
            setChanges: setChanges(),
            voteSignaturesVerified: nodes.reduce(0) { $0 + ($1.replica?.voteSignaturesVerified ?? 0) },
            eventSignaturesVerified: nodes.reduce(0) { $0 + ($1.replica?.counters.eventSignaturesVerified ?? 0) },
            convictions: convictions, pauses: pauses)
    }

    /// The durable logs of the honest replicas after a run (what a node's LMDB log holds).
    public func honestLogs() -> [(replica: Int, blocks: [CertifiedBlock])] {
        nodes.filter(\.honest).map { ($0.index, $0.chain) }
    }

    /// Validator-set changes that took effect, as "<what> at hX, <effect> hY": X is the
    /// height of the event, Y the first (or, for a retirement, last) certificate signed.
    func setChanges() -> [String] {
        guard let log = nodes.first(where: \.honest)?.chain else { return [] }
        func eventHeight(_ kind: EventKind, by author: PublicKey) -> UInt64? {
            log.first { b in b.block.events.contains { raw in (try? Envelope(bytes: raw)).map { $0.kind == kind && $0.author == author } ?? false } }?.block.height.value
        }
        func firstSigned(_ key: PublicKey) -> UInt64? { log.first { $0.certificate.votes.contains { $0.key == key } }?.block.height.value }
        var out: [String] = []
        let sc = scenario
        if sc.joiner, let node = nodes.last, let at = eventHeight(.bond, by: node.config.operatorKey.publicKey),
           let first = firstSigned(node.config.keys[0].publicKey) {
            out.append("joiner bonded at h\(at), signs from h\(first)")
        }
        if let r = sc.rotation, nodes[r].config.keys.count == 2, let at = eventHeight(.validatorRotateKey, by: nodes[r].config.operatorKey.publicKey),
           let first = firstSigned(nodes[r].config.keys[1].publicKey) {
            out.append("r\(r) rotated at h\(at), new key signs from h\(first)")
        }
        if let r = sc.retire, let at = eventHeight(.validatorRetire, by: nodes[r].config.operatorKey.publicKey),
           let last = log.last(where: { $0.certificate.votes.contains { $0.key == nodes[r].config.keys[0].publicKey } })?.block.height.value {
            out.append("r\(r) retired at h\(at), last signed h\(last)")
        }
        return out
    }

    func violation(_ s: String) {
        violations.append("t=\(now)ms: \(s)")
    }

    func handle(_ h: Happening) {
        switch h {
        case let .tick(i):
            let n = nodes[i]
            if let until = pausedUntil[i], now < until { agenda.push(until, .tick(i)); return }
            if n.replica != nil { step(n, .tick(nowMs: genesis.timestampMs + now)) }
            agenda.push(now + (n.slow && faultsOn ? 40 : 10), .tick(i))
        case let .deliver(from, to, m):
            if let until = pausedUntil[to], now < until { agenda.push(until, h); return }
            let n = nodes[to]
            guard n.replica != nil else { return }
            if !n.honest, n.byzantine.contains(.replayStale), n.received.count < 200 { n.received.append(m) }
            step(n, .message(from: nodes[from].config.keys[0].publicKey, m))
        case let .persisted(i, inc, token, records, commits):
            persisted(i, incarnation: inc, token: token, records, commits, h)
        case let .crash(i):
            let n = nodes[i]
            guard n.replica != nil else { return }
            faults.insert(.crash)
            n.replica = nil
            n.incarnation += 1
            n.lastDiskAt = now
        case let .restart(i):
            restart(i)
        case let .partition(side):
            guard faultsOn else { return }
            faults.insert(.partition)
            partition = side
        case .heal:
            partition = nil
        case let .cut(a, b):
            guard faultsOn else { return }
            faults.insert(.linkCut)
            cutLinks.insert([a, b])
        case let .restore(a, b):
            cutLinks.remove([a, b])
        case let .client(k):
            submitClientEvent(k)
        case .clientRetry:
            for k in clientPending.indices {
                for p in clientPending[k].prefix(16) { sendClient(p.bytes) }
            }
            agenda.push(now + 250, .clientRetry)
        case .garbage:
            faults.insert(.invalidClientEvent)
            submitGarbage()
        case let .rotate(i):
            submitRotation(i)
        case let .join(i):
            guard nodes[i].replica != nil else { return }
            faults.insert(.validatorJoin)
            step(nodes[i], .author(.validatorRegister(name: "joiner", personality: "lawful")))
            step(nodes[i], .author(.bond(amount: 10_000)))
        case let .retire(i):
            guard nodes[i].replica != nil else { agenda.push(now + 100, .retire(i)); return }
            faults.insert(.validatorRetire)
            step(nodes[i], .author(.validatorRetire))
        case let .byzantinePush(i):
            pushLies(i)
            if faultsOn || now < stop { agenda.push(now + 150, .byzantinePush(i)) }
        case let .rotatingFault(i, kind):
            rotatingFault(i, kind, starts: true)
        case let .rotatingFaultEnd(i, kind):
            rotatingFault(i, kind, starts: false)
        case .faultsEnd:
            endFaults()
        }
    }

    /// The fault window closes: every fault is lifted and every crashed replica restarts.
    func endFaults() {
        faultsOn = false
        pausedUntil.removeAll()
        isolated.removeAll()
        losingInput.removeAll()
        partition = nil
        cutLinks.removeAll()
        for i in nodes.indices where nodes[i].replica == nil { restart(i) }
        trace.u64(0xFA17)
    }

    /// A disk write completed: the records and blocks are durable, and the replica's
    /// held sends may go.
    func persisted(_ i: Int, incarnation inc: Int, token: UInt64, _ records: [DurableRecord], _ commits: [CommittedBlock], _ h: Happening) {
        if let until = pausedUntil[i], now < until { agenda.push(until, h); return }
        let n = nodes[i]
        guard n.incarnation == inc else { return }
        for r in records { n.durable.apply(r) }
        for c in commits {
            guard c.certified.block.height.value == UInt64(n.chain.count + 1) else {
                violation("r\(i) persisted block \(c.certified.block.height) after height \(n.chain.count)"); continue
            }
            n.chain.append(c.certified)
            n.durableState = c.state
            if n.honest { for id in c.ids where acked[id] == nil { acked[id] = c.certified.block.height.value } }
        }
        if n.honest { for (k, p) in clientPending.enumerated() { clientPending[k] = p.filter { acked[$0.id] == nil } } }
        if n.replica != nil { step(n, .persisted(token: token)) }
    }

    /// One fault of the rotation starts or ends at replica `i`.
    func rotatingFault(_ i: Int, _ kind: FaultRotation.Kind, starts: Bool) {
        guard starts else {
            switch kind {
            case .crash: restart(i)
            case .pause: pausedUntil[i] = nil
            case .isolate: isolated.remove(i)
            case .loss: losingInput.remove(i)
            }
            return
        }
        guard faultsOn else { return }
        switch kind {
        case .crash: handle(.crash(i))
        case .pause: faults.insert(.pause); pausedUntil[i] = now + (scenario.faultRotation?.durationMs ?? 0)
        case .isolate: faults.insert(.isolation); isolated.insert(i)
        case .loss: faults.insert(.inputLoss); losingInput.insert(i)
        }
    }

    func restart(_ i: Int) {
        let n = nodes[i]
        guard n.replica == nil else { return }
        var recent: [UInt64: Hash32] = [:]
        for b in n.chain.suffix(Int(4 * scenario.checkpointInterval)) { recent[b.block.height.value] = b.block.hash }
        n.replica = Replica(config: n.config, state: n.durableState, lastHash: n.lastHash, recentHashes: recent, durable: n.durable)
        n.executedState = n.durableState
        n.lastDiskAt = now
    }
}


extension Bytes32 {
    /// 64 bytes from a hash (a made-up signature).
    func append64() -> Bytes64 { Bytes64(hi: self, lo: self) }
}
