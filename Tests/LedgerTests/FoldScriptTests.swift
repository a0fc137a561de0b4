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
///   each). Parameters: any governable one (`blockReward=100`, …), and `ruleVersion=1`
///   for a chain that starts under rule version 1. One `chain` per script (the fold
///   vectors keep one genesis per script).
/// - `key NAME`: a new key named NAME (derived from the name), with no account.
/// - `block [ms]`: the next block begins (1,000 ms later by default): rewards, expiries,
///   arbiter draws and activations happen here.
/// - `NAME KIND [--option value …]`: NAME signs an event of KIND (as `chaosledger submit`
///   takes it) and it is folded into the open block. `@name` is that key, `%name` a key
///   file holding it (for `--new-key` and `--cosigners`), and `$J1` an id the script
///   named before. Output: `ok`, `ok J1` when the event creates a job (`J`), meme (`M`),
///   proposal (`P`) or alliance (`A`), or `refused CODE: reason`. A refusal must leave
///   the state byte for byte as it was. Two kinds `submit` does not author are built
///   here: `consensus.evidence --signer NAME --height H [--view V] --blocks X,Y` (two
///   prepares NAME signed, for the blocks hashed from "block X" and "block Y") and
///   `social.opinion --height H [--verdict accept|refuse]`.
///   Modifiers, taken out before `submit` reads the rest; the event still decodes as an
///   envelope (the fold vectors refold it from its bytes):
///   - `--fee N`: the fee (default: the required one);
///   - `--nonce N`: the envelope's nonce (default: the account's next one; a rotation
///     signs the same nonce);
///   - `--chain NAME`: the chain the event (and any statement in it) is signed for;
///   - `--payload-hex HEX`: these bytes as KIND's payload, decodable or not (no options);
///   - `--corrupt signature|rotation|cosignature`: one bit flipped in the envelope's
///     signature, the rotation's new-key signature or the last co-signature.
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
        case "key":
            guard w.count == 2, keys[w[1]] == nil, s != nil else { return "usage: key NAME (a name not taken, after chain)" }
            keys[w[1]] = SigningKey.derived("fold-script-\(w[1])")
            return "key @\(w[1]), no account"
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
            if kv[0] == "ruleVersion" {
                guard let r = UInt16(exactly: v), RuleVersion.supported.contains(r) else { return "bad parameter \(a)" }
                f.ruleVersion = r
                continue
            }
            do { (f.params, f.economy) = try GovernableParameter.apply(kv[0], v, chain: f.params, economy: f.economy) } catch {
                return "bad parameter \(a): \(error)"
            }
        }
        s = f.state()
        keys = ["producer": f.producer, "alice": f.alice, "bob": f.bob, "carol": f.carol, "dave": f.dave]
        return "chain at h0, rule version \(s.economy.ruleVersion), base fee \(s.economy.baseFee)"
    }

    /// Signs and folds one event given as `chaosledger submit` arguments, with the
    /// modifiers and the two extra kinds of the type's comment.
    mutating func event(_ key: SigningKey, _ args: [String]) -> String {
        var argv = args.map(substitute)
        func take(_ flag: String) -> String? {
            guard let i = argv.firstIndex(of: flag), i + 1 < argv.count else { return nil }
            defer { argv.removeSubrange(i ... i + 1) }
            return argv[i + 1]
        }
        func number(_ flag: String) throws -> UInt64? {
            guard let v = take(flag) else { return nil }
            guard let n = UInt64(v) else { throw CLIError("\(flag) takes a number, not '\(v)'") }
            return n
        }
        let e: Envelope
        do {
            let fee = try number("--fee")
            let nonce = try number("--nonce") ?? (s.accounts[key.publicKey]?.nonce ?? 0) + 1
            let chain = try take("--chain").map { try ChainID($0) } ?? Fixture.chain
            let corrupt = take("--corrupt")
            let unsigned: [UInt8]
            if let hex = take("--payload-hex") {
                // Raw payload bytes: the envelope of FORMAT.md §2 around them.
                guard argv.count == 1, let kind = EventKind.allCases.first(where: { $0.description == argv[0] }), let raw = Hex.decode(hex) else {
                    throw CLIError("--payload-hex HEX follows a kind and no other option")
                }
                var w = ByteWriter(capacity: Envelope.headerBytes + raw.count)
                w.u16(Envelope.formatVersion); w.u16(kind.rawValue); w.b32(chain.raw); w.b32(key.publicKey); w.u64(nonce)
                w.u64(fee ?? s.requiredFee(kind, bytes: Envelope.overheadBytes + raw.count)); w.blob32(raw)
                unsigned = w.bytes
            } else {
                var payload = try payload(argv, key: key, nonce: nonce, chain: chain)
                if let corrupt, corrupt != "signature" { payload = try Self.corrupt(payload, corrupt) }
                unsigned = Envelope.unsigned(chainID: chain, author: key.publicKey, nonce: nonce, fee: fee ?? s.requiredFee(for: payload), payload: payload)
            }
            var bytes = EventCrypto.sign(unsigned: unsigned, chain: chain, key: key)
            if corrupt == "signature" { bytes[bytes.count - 64] ^= 1 }
            e = try Envelope(bytes: bytes)
        } catch { return "bad event: \(error)" }
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
        let prefix: String? = switch e.kind {
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

    /// The payload of `argv` (a kind and its options): built here for evidence and
    /// opinions, by `chaosledger submit`'s own code for every other kind.
    func payload(_ argv: [String], key: SigningKey, nonce: UInt64, chain: ChainID) throws -> Payload {
        switch argv.first {
        case "consensus.evidence":
            let o = try Self.options(argv.dropFirst(), allowed: ["--signer", "--height", "--view", "--blocks"])
            let blocks = (o["--blocks"] ?? "").split(separator: ",").map { Blake2b.hash(Array("block \($0)".utf8)) }
            guard let signer = o["--signer"].flatMap({ keys[$0] }), let h = o["--height"].flatMap(UInt64.init),
                  let view = UInt64(o["--view"] ?? "0"), blocks.count == 2 else {
                throw CLIError("consensus.evidence --signer NAME --height H [--view V] --blocks X,Y")
            }
            let votes = blocks.map {
                SignedConsensusMessage.sign(.prepare(view: View(view), height: Height(h), blockHash: $0), chain: chain.raw, signer: signer).encoded()
            }
            return .evidence(first: votes[0], second: votes[1])
        case "social.opinion":
            let o = try Self.options(argv.dropFirst(), allowed: ["--height", "--verdict"])
            guard let h = o["--height"].flatMap(UInt64.init), let verdict = ["accept": Verdict.accept, "refuse": .refuse][o["--verdict"] ?? "accept"] else {
                throw CLIError("social.opinion --height H [--verdict accept|refuse]")
            }
            return .opinion(Opinion(height: Height(h), view: 0, blockHash: .zero, verdict: verdict, reason: ""))
        default:
            return try Submit.parse(argv + ["--key", "-"]).payload(nonce: nonce, chainID: chain, author: key)
        }
    }

    /// `--name value` pairs, each name one of `allowed`.
    static func options(_ words: ArraySlice<String>, allowed: Set<String>) throws -> [String: String] {
        var out: [String: String] = [:], rest = words
        while let name = rest.popFirst() {
            guard allowed.contains(name), let value = rest.popFirst() else { throw CLIError("unknown option or no value: \(name)") }
            out[name] = value
        }
        return out
    }

    /// `payload` with one bit flipped in the signature `what` names.
    static func corrupt(_ payload: Payload, _ what: String) throws -> Payload {
        func flip(_ s: Signature) -> Signature { var b = s.bytes; b[0] ^= 1; return Signature(b) }
        switch (what, payload) {
        case ("rotation", .validatorRotateKey(var r)):
            r.newKeySignature = flip(r.newKeySignature)
            return .validatorRotateKey(r)
        case ("cosignature", .escrowMultisig(var r)) where !r.cosignatures.isEmpty:
            r.cosignatures[r.cosignatures.count - 1].signature = flip(r.cosignatures[r.cosignatures.count - 1].signature)
            return .escrowMultisig(r)
        default:
            throw CLIError("--corrupt is signature, rotation (of validator.rotate_key) or cosignature (of a release with co-signers)")
        }
    }

    /// A key file holding `key`, for the options of `submit` that read one. Written afresh
    /// every time (to a new file, then renamed over the old: scripts run in parallel).
    static func keyFile(_ name: String, _ key: SigningKey) -> String {
        let dir = NSTemporaryDirectory() + "chaosledger-fold-script-keys"
        let path = dir + "/" + name + ".key", fresh = path + "." + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        if (try? KeyFile.write(key, to: fresh)) != nil { _ = rename(fresh, path) }
        return path
    }

    /// `@name` → that key's hex, `$alias` → the id's hex; inside comma lists too.
    func substitute(_ word: String) -> String {
        word.split(separator: ",", omittingEmptySubsequences: false).map { part in
            let p = String(part)
            if p.hasPrefix("@"), let k = keys[String(p.dropFirst())] { return k.publicKey.hex }
            if p.hasPrefix("$"), let id = aliases[String(p.dropFirst())] { return id.hex }
            if p.hasPrefix("%"), let k = keys[String(p.dropFirst())] { return Self.keyFile(String(p.dropFirst()), k) }
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
