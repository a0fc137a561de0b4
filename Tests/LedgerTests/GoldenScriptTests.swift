import Foundation
import LedgerAgents
import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerProjections
import Testing

/// Data-driven tests of message handling, in the style of etcd raft's `testdata/*.txt`:
/// each script in `Tests/golden/` is a list of commands, each followed by `----` and the
/// output it must produce. The harness steps real replicas by hand: nothing moves unless
/// a command moves it. `GOLDEN_REWRITE=1 swift test --filter GoldenScript` rewrites the
/// expected outputs (then read the diff: a golden file is only as good as its review).
@Suite struct GoldenScriptTests {
    static let dir = repoRoot + "/Tests/golden"

    static var scripts: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".txt") }.sorted()
    }

    @Test(arguments: scripts)
    func script(_ name: String) throws {
        var harness = ScriptHarness()
        try runScriptFile(Self.dir + "/" + name, rewriteVariable: "GOLDEN_REWRITE", emptyOutput: "ok") { harness.run($0) }
    }
}

/// Runs a script of blocks — comment lines (#), a command, `----`, its expected output —
/// through `run`, expecting each output; with `rewriteVariable` set in the environment it
/// writes the actual outputs back instead (then read the diff). An empty output is
/// written as `emptyOutput`.
func runScriptFile(_ path: String, rewriteVariable: String, emptyOutput: String, _ run: (String) -> String) throws {
    let name = path.split(separator: "/").last.map(String.init) ?? path
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let rewrite = ProcessInfo.processInfo.environment[rewriteVariable] != nil
    var rewritten: [String] = []
    for block in text.components(separatedBy: "\n\n") where !block.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
        let parts = block.components(separatedBy: "\n----\n")
        let head = parts[0].split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let comments = head.filter { $0.hasPrefix("#") }
        let command = head.filter { !$0.hasPrefix("#") }.joined(separator: " ").trimmingCharacters(in: .whitespaces)
        let expected = parts.count > 1 ? parts[1].trimmingCharacters(in: .newlines) : ""
        var actual = run(command).trimmingCharacters(in: .newlines)
        if actual.isEmpty { actual = emptyOutput }
        rewritten.append((comments + [command, "----", actual]).joined(separator: "\n"))
        if !rewrite { #expect(actual == expected, "\(name): `\(command)`\n--- expected\n\(expected)\n--- actual\n\(actual)") }
    }
    if rewrite { try (rewritten.joined(separator: "\n\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8) }
}

/// A hand-stepped cluster: queued messages, pending disk writes, committed logs.
struct ScriptHarness {
    struct Pending { var token: UInt64; var records: [DurableRecord]; var commits: [CommittedBlock] }
    struct Queued { var from: Int; var to: Int; var message: PeerMessage }

    var replicas: [Replica?] = []
    var configs: [ReplicaConfig] = []
    var durable: [DurableState] = []
    var logs: [[CommittedBlock]] = []
    var pending: [[Pending]] = []
    var queue: [Queued] = []
    var now: UInt64 = 1_000_000
    var genesisState: LedgerState!
    var genesisHash = Hash32.zero
    var clients: [SigningKey] = []
    var nonces: [UInt64] = []
    var lastPrePrepare: [Int: (SignedConsensusMessage, ProposedBlock)] = [:]
    var chain = try! ChainID("golden")

    func r(_ s: Substring) -> Int { Int(s.dropFirst())! }
    func key(_ i: Int) -> any Signer { configs[i].keys[0] }
    func owner(_ k: PublicKey) -> Int? { configs.firstIndex { $0.keys.contains { $0.publicKey == k } } }

    mutating func run(_ line: String) -> String {
        let w = line.split(separator: " ")
        guard let cmd = w.first else { return "" }
        var out: [String] = []
        switch cmd {
        case "cluster":
            var n = 4, k: UInt64 = 4, stakes: [UInt64] = [], personalities: [String] = [], opinions = false
            for a in w.dropFirst() {
                let kv = a.split(separator: "=")
                if kv[0] == "n" { n = Int(kv[1])! }
                if kv[0] == "k" { k = UInt64(kv[1])! }
                if kv[0] == "stakes" { stakes = kv[1].split(separator: ",").map { UInt64($0)! } }
                if kv[0] == "personalities" { personalities = kv[1].split(separator: ",").map(String.init) }
                if kv[0] == "opinions" { opinions = kv[1] == "on" }
            }
            if stakes.isEmpty { stakes = Array(repeating: 10_000, count: n) }
            var p = ChainParameters()
            p.checkpointInterval = k
            p.minValidatorStake = 1_000
            // Sorted by key, so r0 is the first member and round-robin primaries go r0, r1, …
            let ops = (0 ..< n).map { SigningKey.derived("golden-validator-\($0)") }.sorted { $0.publicKey < $1.publicKey }
            clients = (0 ..< 2).map { SigningKey.derived("golden-client-\($0)") }
            nonces = [0, 0]
            // A version 2 genesis (rule version 1, no economy section): the scripts pin
            // consensus behaviour, and their block hashes, from before the economy.
            let built = try! Genesis(chainID: chain, timestampMs: now, parameters: p,
                                     validators: (0 ..< n).map { .init(key: ops[$0].publicKey, name: "r\($0)", personality: "lawful", stake: stakes[$0]) },
                                     allocations: clients.map { .init(account: $0.publicKey, amount: 1_000_000) } + ops.map { .init(account: $0.publicKey, amount: 1_000) },
                                     ruleVersion: RuleVersion.legacy, stateCommitment: StateCommitmentRule.flat)
            let g = try! Genesis.decode(built.encoded(version: 2))
            genesisHash = Blake2b.hash(g.encoded())
            genesisState = LedgerState(genesis: g, genesisHash: genesisHash, crypto: Sodium())
            let root = genesisState.stateRoot()
            for i in 0 ..< n {
                var c = ReplicaConfig(genesisHash: genesisHash, genesisStateRoot: root, keys: [ops[i]], operatorKey: ops[i], crypto: Sodium())
                c.viewTimeoutMs = 1_000
                c.retransmitMs = 5_000
                c.fetchIntervalMs = 100
                c.batchDelayMs = 0
                c.recordOpinions = opinions
                if i < personalities.count { c.personality = Personalities.named(personalities[i]) }
                configs.append(c)
                replicas.append(Replica(config: c, state: genesisState, lastHash: genesisHash))
                durable.append(DurableState()); logs.append([]); pending.append([])
            }
            let primary = replicas[0]!.primary(of: 0)
            out.append("\(n) replicas, primary of view 0: r\(owner(primary)!)")
        case "submit":
            let i = r(w[1]), count = w.count > 2 ? Int(w[2])! : 1
            for _ in 0 ..< count {
                nonces[0] += 1
                let e = EventCrypto.makeEvent(chain: chain, key: clients[0], nonce: nonces[0], fee: 1,
                                              payload: .transfer(to: clients[1].publicKey, amount: 10, memo: "golden"))
                out += step(i, .request(e.bytes))
            }
        case "persist":
            for i in targets(w.dropFirst().first) { out += persist(i) }
        case "deliver":
            // deliver [from->to] [kind]: everything queued that matches, in order; what it
            // produces is queued behind, not delivered.
            var filterFrom: Int?, filterTo: Int?, kind: String?
            for a in w.dropFirst() {
                if a.contains("->") {
                    let p = a.components(separatedBy: "->")
                    filterFrom = p[0] == "*" ? nil : Int(p[0].dropFirst())!
                    filterTo = p[1] == "*" ? nil : Int(p[1].dropFirst())!
                } else { kind = String(a) }
            }
            let batch = queue
            queue = []
            for q in batch {
                let match = (filterFrom == nil || q.from == filterFrom) && (filterTo == nil || q.to == filterTo)
                    && (kind == nil || Self.kind(q.message) == kind)
                if match { out += deliver(q) } else { queue.append(q) }
            }
        case "stabilize":
            // Persist and deliver until nothing moves; print only commits and notes.
            var rounds = 0
            while rounds < 100 {
                rounds += 1
                var moved = false
                for i in replicas.indices where !pending[i].isEmpty && replicas[i] != nil { moved = true; out += persist(i).filter(Self.quiet) }
                if !queue.isEmpty {
                    moved = true
                    let batch = queue
                    queue = []
                    for q in batch { out += deliver(q).filter(Self.quiet) }
                }
                if !moved { break }
            }
        case "drop":
            let p = w[1].components(separatedBy: "->")
            let from = p[0] == "*" ? nil : Int(p[0].dropFirst())!, to = p[1] == "*" ? nil : Int(p[1].dropFirst())!
            let before = queue.count
            queue.removeAll { (from == nil || $0.from == from) && (to == nil || $0.to == to) }
            out.append("dropped \(before - queue.count)")
        case "tick":
            now += UInt64(w[2])!
            for i in targets(w[1]) { out += step(i, .tick(nowMs: now)) }
        case "crash":
            let i = r(w[1])
            replicas[i] = nil
            out.append("r\(i) crashed, \(pending[i].count) unpersisted write(s) lost")
            pending[i] = []
            queue.removeAll { $0.to == i }
        case "restart":
            let i = r(w[1])
            let st = logs[i].last?.state ?? genesisState!
            let last = logs[i].last?.certified.block.hash ?? genesisHash
            var recent: [UInt64: Hash32] = [:]
            for b in logs[i] { recent[b.certified.block.height.value] = b.certified.block.hash }
            replicas[i] = Replica(config: configs[i], state: st, lastHash: last, recentHashes: recent, durable: durable[i])
            out.append("r\(i) restarted: \(replicas[i]!.status)")
        case "equivocate":
            // The primary sends `to` a second, different valid block for the height of its last pre-prepare.
            let p = r(w[1]), to = r(w[2])
            guard let (pp, block) = lastPrePrepare[p], case let .prePrepare(v, h, _) = pp.message else { return "nothing to equivocate on" }
            var hd = block.header
            hd.timestampMs += 1
            let alt = ProposedBlock(header: hd, events: block.events, Sodium())
            let altPP = SignedConsensusMessage.sign(.prePrepare(view: v, height: h, blockHash: alt.hash), chain: chain.raw, signer: key(p))
            queue.append(Queued(from: p, to: to, message: .prePrepare(altPP, alt)))
            out.append("queued r\(p)->r\(to) prePrepare v\(v) h\(h) \(alt.hash.hex.prefix(6)) (conflicts with \(block.hash.hex.prefix(6)))")
        case "forge":
            // forge <victim> <to> prepare|commit [via <sender>]: a vote claiming the
            // victim, with a made-up signature, sent by `sender` (r0, or r1 to r0, if none).
            let victim = r(w[1]), to = r(w[2])
            let sender = w.count >= 6 && w[4] == "via" ? r(w[5]) : to == 0 ? 1 : 0
            guard let (pp, _) = lastPrePrepare.values.first, case let .prePrepare(v, h, hash) = pp.message else { return "no block to forge a vote on" }
            let m: ConsensusMessage = w[3] == "commit" ? .commit(view: v, height: h, blockHash: hash) : .prepare(view: v, height: h, blockHash: hash)
            let fake = SignedConsensusMessage(message: m, signer: key(victim).publicKey, signature: Bytes64(hi: hash, lo: hash))
            queue.append(Queued(from: sender, to: to, message: .vote(fake)))
            out.append("queued forged \(w[3]) claiming r\(victim) from r\(sender) for r\(to)")
        case "relay":
            // relay <from> <to> forged|malformed|otherchain: a client event no honest
            // replica would pass on, relayed by `from`.
            let from = r(w[1]), to = r(w[2])
            nonces[1] += 1
            var bytes = EventCrypto.makeEvent(chain: w[3] == "otherchain" ? try! ChainID("golden-other") : chain, key: clients[1], nonce: nonces[1], fee: 1,
                                              payload: .transfer(to: clients[0].publicKey, amount: 1, memo: "relayed")).bytes
            if w[3] == "forged" { bytes[bytes.count - 1] ^= 1 }
            if w[3] == "malformed" { bytes = Array(bytes.prefix(20)) }
            queue.append(Queued(from: from, to: to, message: .request(bytes)))
            out.append("queued r\(from)->r\(to) \(w[3]) request")
        case "fetch":
            // fetch <from> <to> <height>: `from` asks `to` for certified blocks from a height.
            let from = r(w[1]), to = r(w[2])
            queue.append(Queued(from: from, to: to, message: .fetch(from: Height(UInt64(w[3])!), count: UInt32(Limits.stateTransferBlocksMax))))
            out.append("queued r\(from)->r\(to) fetch from h\(w[3])")
        case "status":
            for i in replicas.indices { out.append("r\(i): \(replicas[i]?.status ?? "crashed") log \(logs[i].count)") }
        case "validators":
            guard let st = replicas.compactMap({ $0 }).first?.state else { return "no replica" }
            for v in st.validators.values.sorted(by: { $0.name < $1.name }) {
                let o = st.opinionCounts[v.id]
                out.append("\(v.name): \(v.status) stake \(v.selfStake) jailed until \(v.jailedUntil) opinions +\(o?.accepted ?? 0)/-\(o?.refused ?? 0)")
            }
            for sl in st.slashes { out.append("slashed \(owner(sl.validator.raw).map { "r\($0)" } ?? "?"): stake \(sl.stakeBefore) - \(sl.amount) for h\(sl.offenceHeight) v\(sl.offenceView)") }
        case "queue":
            for q in queue { out.append("r\(q.from)->r\(q.to) \(q.message.summary(Sodium()))") }
        default:
            out.append("unknown command \(cmd)")
        }
        return out.joined(separator: "\n")
    }

    static func quiet(_ line: String) -> Bool { line.contains(" commit h") || line.contains(" note ") }

    func targets(_ w: Substring?) -> [Int] {
        guard let w, w != "all" else { return Array(replicas.indices) }
        return [r(w)]
    }

    mutating func deliver(_ q: Queued) -> [String] {
        guard replicas[q.to] != nil else { return [] }
        return step(q.to, .message(from: key(q.from).publicKey, q.message))
    }

    mutating func persist(_ i: Int) -> [String] {
        guard !pending[i].isEmpty, replicas[i] != nil else { return [] }
        let done = pending[i]
        pending[i] = []
        for p in done {
            for rec in p.records { durable[i].apply(rec) }
            logs[i] += p.commits
        }
        return ["r\(i): persisted through \(done.last!.token)"] + step(i, .persisted(token: done.last!.token))
    }

    mutating func step(_ i: Int, _ input: Input) -> [String] {
        guard var rep = replicas[i] else { return [] }
        let o = rep.step(input)
        replicas[i] = rep
        var lines: [String] = []
        for rec in o.persist { lines.append("r\(i): persist \(rec.summary)") }
        for c in o.commits {
            let cb = c.certified
            lines.append("r\(i): commit h\(cb.block.height) \(cb.block.hash.hex.prefix(6)) view \(cb.certificate.view) signers \(cb.certificate.votes.count) events \(cb.block.events.count)\(c.viaStateTransfer ? " (state transfer)" : "")")
        }
        if let t = o.persistToken { pending[i].append(Pending(token: t, records: o.persist, commits: o.commits)) }
        for s in o.send {
            let to: [Int]
            switch s.to {
            case .all: to = replicas.indices.filter { $0 != i }
            case let .peer(k): to = owner(k).map { [$0] } ?? []
            }
            if case let .prePrepare(pp, b) = s.message { lastPrePrepare[i] = (pp, b) }
            lines.append("r\(i): send \(s.to == .all ? "all" : "r\(to.first ?? -1)") \(s.message.summary(Sodium()))")
            for t in to { queue.append(Queued(from: i, to: t, message: s.message)) }
        }
        for s in o.serve {
            guard let to = owner(s.to) else { continue }
            let lo = Int(s.from.value) - 1
            let blocks = lo < logs[i].count ? Array(logs[i][lo ..< min(logs[i].count, lo + s.count)]).map(\.certified) : []
            lines.append("r\(i): serve r\(to) \(blocks.map { "h\($0.block.height)" }.joined(separator: ","))")
            if !blocks.isEmpty { queue.append(Queued(from: i, to: to, message: .blocks(blocks))) }
        }
        for n in o.notes { lines.append("r\(i): note \(n.summary)") }
        return lines
    }

    static func kind(_ m: PeerMessage) -> String {
        switch m {
        case .prePrepare: "prePrepare"
        case let .vote(v):
            switch v.message { case .prepare: "prepare"; case .commit: "commit"; case .checkpoint: "checkpoint"; case .prePrepare: "prePrepare" }
        case .viewChange: "viewChange"
        case .newView: "newView"
        case .fetch: "fetch"
        case .blocks: "blocks"
        case .request: "request"
        case .requests: "requests"
        }
    }
}
