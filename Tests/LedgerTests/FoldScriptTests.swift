import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerProjections
import Testing
@testable import chaosledger

/// Data-driven tests of the economy's fold, in the style of `Tests/golden/`: each script
/// in `Tests/folds/` is a list of commands, each followed by `----` and its output.
/// Events are written as `chaosledger submit` takes them, so a script reads like a
/// session at the command line. `FOLD_REWRITE=1 swift test --filter FoldScript` rewrites
/// the expected outputs (then read the diff).
///
/// Commands:
/// - `chain [param=value …]`: a version-2 chain; the validator is `producer` (it signs
///   every block), funded accounts are `alice`, `bob`, `carol` and `dave` (1,000,000
///   each). Parameters: any governable one (`blockReward=100`, …).
/// - `block [ms]`: the next block begins (1,000 ms later by default): rewards, expiries,
///   arbiter draws and activations happen here.
/// - `NAME KIND [--option value …]`: NAME signs an event of KIND (as `chaosledger submit`
///   takes it; the fee is the required one unless `--fee` is given) and it is folded into
///   the open block. `@name` is that account's key and `$J1` an id the script named
///   before. Output: `ok`, `ok J1` when the event creates a job (`J`), meme (`M`),
///   proposal (`P`) or alliance (`A`), or `refused CODE: reason`. A refusal must leave
///   the state byte for byte as it was.
/// - `show KIND REF`: an entity as `replay --trace` and `diff` show it (EntityView),
///   one field a line; REF is a name or an id the script named.
@Suite struct FoldScriptTests {
    static let dir = repoRoot + "/Tests/folds"

    static var scripts: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".txt") }.sorted()
    }

    @Test(arguments: scripts)
    func script(_ name: String) throws {
        var harness = FoldScript()
        try runScriptFile(Self.dir + "/" + name, rewriteVariable: "FOLD_REWRITE", emptyOutput: "") { line in
            let out = harness.run(line)
            harness.checkTree(line)
            return out
        }
    }
}

/// The state a fold script works on, and its names for keys and ids.
struct FoldScript {
    var f = Fixture()
    var s: LedgerState!
    var keys: [String: SigningKey] = [:]
    var aliases: [String: Bytes32] = [:]
    var counters: [String: Int] = [:]
    /// What the script folded, as schema fold vectors (`schemas/fold-vectors.json`).
    var steps: [FoldVectors.Step] = []

    mutating func run(_ line: String) -> String {
        let w = Self.words(line)
        guard let cmd = w.first else { return "" }
        switch cmd {
        case "chain": return chain(w.dropFirst())
        case "block":
            let ms = w.count > 1 ? UInt64(w[1]) ?? 1_000 : 1_000
            do { try s.beginBlock(BlockContext(height: s.height.next, timestampMs: s.timestampMs + ms, proposer: f.producer.publicKey)) } catch {
                return "block refused: \(error)"
            }
            steps.append(.init(block: .init(height: s.height.value, timestampMs: s.timestampMs, proposer: f.producer.publicKey.hex)))
            return "h\(s.height.value)"
        case "show":
            guard w.count == 3 else { return "usage: show KIND REF" }
            let id = keys[w[2]]?.publicKey.hex ?? aliases[w[2]]?.hex ?? w[2]
            guard let fields = EntityView.of(EntityRef(kind: w[1], id: id), in: s) else { return "\(w[1]) \(w[2]): none" }
            return fields.map { short("\($0.name) \($0.value)") }.joined(separator: "\n")
        default:
            guard let key = keys[cmd], w.count >= 2 else { return "unknown command \(cmd)" }
            return event(key, Array(w.dropFirst()))
        }
    }

    /// The incremental tree, sealed after every command, must have the root of a tree
    /// built from scratch: a write the tracked containers missed would show here.
    mutating func checkTree(_ line: String) {
        guard s != nil else { return }
        #expect(s.commitment == .tree)
        let incremental = s.sealRoot()
        #expect(incremental == s.buildTree().root, "after `\(line)`")
        #expect(incremental == s.sealedTree?.root)
        let indexesHold = s.derivedIndexesHold
        #expect(indexesHold, "the live alliances after `\(line)`")
    }

    mutating func chain(_ args: ArraySlice<String>) -> String {
        f.ruleVersion = RuleVersion.economy
        for a in args {
            let kv = a.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, let v = UInt64(kv[1]) else { return "bad parameter \(a)" }
            do { (f.params, f.economy) = try GovernableParameter.apply(kv[0], v, chain: f.params, economy: f.economy) } catch {
                return "bad parameter \(a): \(error)"
            }
        }
        s = f.state()
        keys = ["producer": f.producer, "alice": f.alice, "bob": f.bob, "carol": f.carol, "dave": f.dave]
        return "chain at h0, rule version \(s.economy.ruleVersion), base fee \(s.economy.baseFee)"
    }

    /// Signs and folds one event given as `chaosledger submit` arguments.
    mutating func event(_ key: SigningKey, _ args: [String]) -> String {
        var argv = args.map(substitute)
        var fee: UInt64?
        if let i = argv.firstIndex(of: "--fee"), i + 1 < argv.count { fee = UInt64(argv[i + 1]); argv.removeSubrange(i ... i + 1) }
        let nonce = (s.accounts[key.publicKey]?.nonce ?? 0) + 1
        let payload: Payload
        do {
            let submit = try Submit.parse(argv + ["--key", "-"])
            payload = try submit.payload(nonce: nonce, chainID: Fixture.chain, author: key)
        } catch { return "bad event: \(error)" }
        let e = EventCrypto.makeEvent(chain: Fixture.chain, key: key, nonce: nonce, fee: fee ?? s.requiredFee(for: payload), payload: payload)
        let id = EventCrypto.id(e.bytes)
        let before = s.canonicalBytes()
        let leavesBefore = FoldVectors.leaves(s)
        let ctx = BlockContext(height: s.height, timestampMs: s.timestampMs, proposer: f.producer.publicKey)
        do {
            try s.apply(e, id: id, ctx)
        } catch {
            let unchanged = s.canonicalBytes() == before
            steps.append(.init(event: Hex.encode(e.bytes), outcome: "refused \(error.code)", changed: []))
            return short("refused \(error.code): \(error)") + (unchanged ? "" : "\nBUG: the refusal changed the state")
        }
        steps.append(.init(event: Hex.encode(e.bytes), outcome: "ok", changed: FoldVectors.changes(from: leavesBefore, to: FoldVectors.leaves(s))))
        let prefix: String? = switch payload.kind {
        case .jobPost: "J"
        case .memePost: "M"
        case .govPropose: "P"
        case .alliancePropose: "A"
        default: nil
        }
        guard let prefix else { return "ok" }
        counters[prefix, default: 0] += 1
        let alias = "\(prefix)\(counters[prefix]!)"
        aliases[alias] = id.raw
        return "ok \(alias)"
    }

    /// `@name` → that key's hex, `$alias` → the id's hex; inside comma lists too.
    func substitute(_ word: String) -> String {
        word.split(separator: ",", omittingEmptySubsequences: false).map { part in
            let p = String(part)
            if p.hasPrefix("@"), let k = keys[String(p.dropFirst())] { return k.publicKey.hex }
            if p.hasPrefix("$"), let id = aliases[String(p.dropFirst())] { return id.hex }
            return p
        }.joined(separator: ",")
    }

    /// Full hex keys and ids in a line of a view, written back as the script's names
    /// (in sorted order, so the output does not depend on dictionary order).
    func short(_ line: String) -> String {
        var out = line
        for n in keys.keys.sorted() { out = out.replacingOccurrences(of: keys[n]!.publicKey.hex, with: "@" + n) }
        for n in aliases.keys.sorted() { out = out.replacingOccurrences(of: aliases[n]!.hex, with: "$" + n) }
        // Refusals name keys and ids by their first 12 hex digits.
        for n in keys.keys.sorted() { out = out.replacingOccurrences(of: keys[n]!.publicKey.short, with: "@" + n) }
        for n in aliases.keys.sorted() { out = out.replacingOccurrences(of: aliases[n]!.short, with: "$" + n) }
        return out
    }

    /// Words, with "double quotes" keeping spaces inside one.
    static func words(_ line: String) -> [String] {
        var out: [String] = [], cur = "", quoted = false, any = false
        for c in line {
            if c == "\"" { quoted.toggle(); any = true; continue }
            if c == " ", !quoted {
                if any || !cur.isEmpty { out.append(cur) }
                cur = ""; any = false
            } else { cur.append(c) }
        }
        if any || !cur.isEmpty { out.append(cur) }
        return out
    }
}
