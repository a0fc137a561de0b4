import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore

/// The `demo` workload: many agents transferring, staking, delegating, registering,
/// proposing, accepting and rejecting alliances (some left to expire), a validator
/// key rotation, and a share of invalid submissions that the producer must refuse.
/// The same seed, agent count and event count always give byte-identical logs.
public struct DemoWorkload {
    public struct Summary: Sendable, Codable {
        public var seed: UInt64
        public var agents: Int
        public var submitted: Int
        public var committed: Int
        public var refusedAsIntended: Int
        /// Invalid submissions that were admitted (must be 0) and valid ones refused.
        public var invalidAdmitted: Int
        public var validRefused: Int
        public var refusals: [String: Int]
        public var kinds: [String: Int]
        public var blocks: UInt64
        /// Alliances by final status (pending, active, rejected, dissolved, expired).
        public var alliances: [String: Int]
        public var stateRoot: String
        public var genesisHash: String
    }

    public static let chain = try! ChainID("chaosledger-demo")
    public static let genesisTimeMs: UInt64 = 1_767_225_600_000  // 2026-01-01T00:00:00Z
    public static let blockIntervalMs: UInt64 = 2_000
    /// The purpose of proposals the workload never answers, so that they expire.
    static let lapse = "an offer left to lapse"

    public var seed: UInt64
    public var agents: Int
    public var events: Int

    public init(seed: UInt64, agents: Int, events: Int) {
        self.seed = seed; self.agents = max(4, agents); self.events = events
    }

    public func producerKey() -> SigningKey { SigningKey.derived("demo-\(seed)-producer") }
    func agentKey(_ i: Int) -> SigningKey { SigningKey.derived("demo-\(seed)-agent-\(i)") }

    public func genesis() -> Genesis {
        var params = ChainParameters()
        params.blockEventsMax = 100
        params.checkpointInterval = 10
        params.minValidatorStake = 1_000
        params.unbondingBlocks = 5
        params.allianceAcceptWindowMs = 30_000
        params.allianceDurationMaxMs = 120_000
        let allocations = (0 ..< agents).map { Genesis.Allocation(account: agentKey($0).publicKey, amount: 10_000_000) }
        // The producer's stake outweighs everything the workload can bond, so its lone
        // signature stays a quorum (> 2/3) as demo validators join.
        let producer = Genesis.Validator(key: producerKey().publicKey, name: "solo-producer", personality: "lawful", stake: 1_000_000_000_000)
        return try! Genesis(chainID: Self.chain, timestampMs: Self.genesisTimeMs, parameters: params,
                            validators: [producer], allocations: allocations)
    }

    public static func clock(genesisMs: UInt64) -> (Height) -> UInt64 { { h in genesisMs + h.value * blockIntervalMs } }

    /// Writes genesis into `log` (which must be empty) and runs the workload through a producer.
    public func run(into log: any EventLog) throws -> Summary {
        let g = genesis()
        let gh = try log.initialize(genesis: g)
        let producer = try SoloProducer(log: log, key: producerKey(), clock: Self.clock(genesisMs: g.timestampMs))
        producer.meme = { h in Array(DemoMemes.pick(height: h).utf8) }
        var rng = SplitMix64(seed: seed)
        let keys = (0 ..< agents).map(agentKey)
        var nonces = [UInt64](repeating: 0, count: agents)
        var summary = Summary(seed: seed, agents: agents, submitted: 0, committed: 0, refusedAsIntended: 0, invalidAdmitted: 0,
                              validRefused: 0, refusals: [:], kinds: [:], blocks: 0, alliances: [:], stateRoot: "", genesisHash: gh.hex)
        let validatorCount = min(3, agents / 4)
        var rotated = false

        func submit(_ i: Int, _ payload: Payload, fee: UInt64 = 1) {
            let e = EventCrypto.makeEvent(chain: Self.chain, key: keys[i], nonce: nonces[i] + 1, fee: fee, payload: payload)
            summary.submitted += 1
            do {
                try producer.submit(e.bytes)
                nonces[i] += 1
                summary.committed += 1
                summary.kinds[payload.kind.description, default: 0] += 1
            } catch {
                summary.validRefused += 1
                summary.refusals["unexpected: \(error)", default: 0] += 1
            }
        }
        func refuse(_ label: String, _ bytes: [UInt8]) {
            summary.submitted += 1
            do {
                try producer.submit(bytes)
                summary.invalidAdmitted += 1
            } catch {
                summary.refusedAsIntended += 1
                summary.refusals[label, default: 0] += 1
            }
        }
        func other(_ i: Int) -> Int { (i + 1 + Int(rng.next() % UInt64(agents - 1))) % agents }

        // Phase 1: every agent registers; the first few also become validators.
        for i in 0 ..< agents {
            submit(i, .agentRegister(AgentProfile(
                name: "agent-\(i)", capabilities: DemoMemes.capabilities(i),
                personality: DemoMemes.personalities[i % DemoMemes.personalities.count], endpoint: "agent://\(i)")))
        }
        for i in 0 ..< validatorCount {
            submit(i, .validatorRegister(name: "validator-\(i)", personality: DemoMemes.personalities[i]))
            submit(i, .bond(amount: 5_000))
        }
        // One proposal nobody answers: it must expire.
        submit(agents - 1, .alliancePropose(AllianceProposal(targets: [keys[0].publicKey], purpose: Self.lapse,
                                                              terms: "none", durationMs: 60_000)))

        while summary.submitted < events {
            let i = Int(rng.next() % UInt64(agents))
            let roll = rng.next() % 100
            let st = producer.pendingState
            switch roll {
            case 0 ..< 38:
                submit(i, .transfer(to: keys[other(i)].publicKey, amount: 1 + rng.next() % 5_000, memo: "payment \(summary.submitted)"))
            case 38 ..< 44:
                let v = Int(rng.next() % UInt64(validatorCount))
                submit(i, .delegate(validator: keys[v].publicKey, amount: 1 + rng.next() % 2_000))
            case 44 ..< 48:
                let mine = st.delegations.filter { $0.key.delegator == keys[i].publicKey }.sorted { $0.key < $1.key }
                if let d = mine.first { submit(i, .undelegate(validator: d.key.validator, amount: min(d.value, 1 + rng.next() % 500))) }
            case 48 ..< 51:
                if i < validatorCount {
                    if rng.next() % 2 == 0 { submit(i, .bond(amount: 1 + rng.next() % 300)) } else { submit(i, .unbond(amount: 1 + rng.next() % 100)) }
                }
            case 51 ..< 60:
                let n = 1 + Int(rng.next() % 2)
                var t = Set<Int>()
                while t.count < n { t.insert(other(i)) }
                submit(i, .alliancePropose(AllianceProposal(
                    targets: t.sorted().map { keys[$0].publicKey }, purpose: DemoMemes.purposes[Int(rng.next() % UInt64(DemoMemes.purposes.count))],
                    terms: "share memes for \(n) epochs", durationMs: 10_000 + rng.next() % 50_000)))
            case 60 ..< 74:
                // A target answers a pending proposal: mostly accept, sometimes reject.
                let open = st.alliances.values.filter { $0.status == .pending && st.timestampMs < $0.acceptByMs && $0.proposal.purpose != Self.lapse }.sorted { $0.id < $1.id }
                if !open.isEmpty {
                    let a = open[Int(rng.next() % UInt64(open.count))]
                    if let t = a.proposal.targets.first(where: { !a.accepted.contains($0) }), let j = keys.firstIndex(where: { $0.publicKey == t }) {
                        submit(j, rng.next() % 4 == 0 ? .allianceReject(a.id) : .allianceAccept(a.id))
                    }
                }
            case 74 ..< 77:
                let active = st.alliances.values.filter { $0.status == .active }.sorted { $0.id < $1.id }
                if let a = active.first, let j = keys.firstIndex(where: { $0.publicKey == a.proposer }) { submit(j, .allianceDissolve(a.id)) }
            case 77 ..< 80:
                submit(i, .agentUpdate(AgentProfile(name: "agent-\(i)", capabilities: DemoMemes.capabilities(i + Int(rng.next() % 3)),
                                                    personality: DemoMemes.personalities[Int(rng.next() % 4)], endpoint: "agent://\(i)/v2")))
            case 80 ..< 82:
                if !rotated, validatorCount > 0 {
                    let v = st.validators[keys[0].publicKey]!
                    let newKey = SigningKey.derived("demo-\(seed)-validator-0-rotated")
                    if v.consensusKey == keys[0].publicKey {
                        let r = EventCrypto.rotation(chain: Self.chain, validator: keys[0].publicKey, nonce: nonces[0] + 1, old: keys[0], new: newKey)
                        submit(0, .validatorRotateKey(r))
                        rotated = true
                    }
                }
            default:
                refuseOne(rng.next() % 9, i)
            }
        }
        // Closing phase: a validator retires and an agent deregisters.
        if validatorCount >= 3 { submit(2, .validatorRetire) }
        submit(agents - 2, .agentDeregister)
        try producer.commit()

        func refuseOne(_ which: UInt64, _ i: Int) {
            let k = keys[i]
            switch which {
            case 0:  // a flipped byte: the signature no longer verifies
                var b = EventCrypto.makeEvent(chain: Self.chain, key: k, nonce: nonces[i] + 1, fee: 1, payload: .transfer(to: keys[other(i)].publicKey, amount: 1, memo: "")).bytes
                b[b.count - 80] ^= 0x01
                refuse("bad signature", b)
            case 1:
                refuse("stale nonce", EventCrypto.makeEvent(chain: Self.chain, key: k, nonce: nonces[i], fee: 1, payload: .transfer(to: keys[other(i)].publicKey, amount: 1, memo: "")).bytes)
            case 2:
                refuse("future nonce", EventCrypto.makeEvent(chain: Self.chain, key: k, nonce: nonces[i] + 5, fee: 1, payload: .transfer(to: keys[other(i)].publicKey, amount: 1, memo: "")).bytes)
            case 3:
                refuse("insufficient balance", EventCrypto.makeEvent(chain: Self.chain, key: k, nonce: nonces[i] + 1, fee: 1, payload: .transfer(to: keys[other(i)].publicKey, amount: 1 << 60, memo: "")).bytes)
            case 4:
                let stranger = SigningKey.derived("demo-\(seed)-stranger-\(summary.submitted)")
                refuse("unknown author", EventCrypto.makeEvent(chain: Self.chain, key: stranger, nonce: 1, fee: 1, payload: .transfer(to: k.publicKey, amount: 1, memo: "")).bytes)
            case 5:
                // Accepting an alliance that was offered to someone else.
                let st = producer.pendingState
                if let a = st.alliances.values.sorted(by: { $0.id < $1.id }).first(where: { $0.status == .pending && !$0.proposal.targets.contains(k.publicKey) }) {
                    refuse("accepted by a non-target", EventCrypto.makeEvent(chain: Self.chain, key: k, nonce: nonces[i] + 1, fee: 1, payload: .allianceAccept(a.id)).bytes)
                }
            case 6:
                // Accepting a proposal whose window has passed.
                let st = producer.pendingState
                if let a = st.alliances.values.sorted(by: { $0.id < $1.id }).first(where: { $0.status == .expired && $0.activeUntilMs == 0 }),
                   let t = a.proposal.targets.first, let j = keys.firstIndex(where: { $0.publicKey == t }) {
                    refuse("accepted after expiry", EventCrypto.makeEvent(chain: Self.chain, key: keys[j], nonce: nonces[j] + 1, fee: 1, payload: .allianceAccept(a.id)).bytes)
                }
            case 7:
                refuse("malformed bytes", Array(EventCrypto.makeEvent(chain: Self.chain, key: k, nonce: nonces[i] + 1, fee: 1, payload: .bond(amount: 1)).bytes.dropLast(3)))
            default:
                refuse("fee too low", EventCrypto.makeEvent(chain: Self.chain, key: k, nonce: nonces[i] + 1, fee: 0, payload: .transfer(to: keys[other(i)].publicKey, amount: 1, memo: "")).bytes)
            }
        }

        summary.blocks = producer.state.height.value
        var statuses: [String: Int] = [:]
        for a in producer.state.alliances.values { statuses[a.status.description, default: 0] += 1 }
        summary.alliances = statuses
        summary.stateRoot = producer.state.stateRoot().hex
        return summary
    }
}

/// Deterministic meme and personality templates (producer strategies come with the
/// agent-economy issue).
public enum DemoMemes {
    public static let personalities = ["lawful", "memetic", "loyal", "chaotic"]
    public static let purposes = ["meme syndicate", "validator pact", "compute co-op", "chaos caucus", "data guild"]
    static let templates = [
        "much block, very consensus, wow", "one does not simply fork ChaosLedger", "this is fine (the log is append-only)",
        "distracted validator looks at a shinier meme", "always has been hash-chained", "stonks: stake goes up",
    ]
    static let capabilityPool = ["inference", "training", "storage", "translation", "audit", "memes", "routing", "search"]

    public static func pick(height: Height) -> String { "#\(height) \(templates[Int(height.value % UInt64(templates.count))])" }

    static func capabilities(_ i: Int) -> [String] {
        let n = 1 + i % 3
        return (0 ..< n).map { capabilityPool[(i + $0 * 3) % capabilityPool.count] }
    }
}
