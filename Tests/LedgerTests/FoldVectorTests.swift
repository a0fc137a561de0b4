import Foundation
import LedgerCore
import LedgerCrypto
import LedgerProjections
import Testing

/// Fold vectors (issue 18): what the fold scripts of `Tests/folds/` fold, as bytes another
/// implementation can check without Swift: each script's genesis, then its steps in
/// order — a block begins (height, time, proposer) or an event's bytes are folded into
/// the open block, with the outcome (`ok` or `refused CODE`) and, for `ok`, every state
/// leaf (FORMAT.md §7.2: kind, id, value; no value when deleted) the event changed.
/// Written by `FOLD_VECTORS_REWRITE=1 swift test --filter FoldVector`.
struct FoldVectors: Codable, Equatable {
    struct Block: Codable, Equatable { var height: UInt64; var timestampMs: UInt64; var proposer: String }
    struct Leaf: Codable, Equatable { var kind: UInt8; var id: String; var value: String? }
    struct Step: Codable, Equatable {
        var block: Block?
        var event: String?
        var outcome: String?
        var changed: [Leaf]?
        init(block: Block) { self.block = block }
        init(event: String, outcome: String, changed: [Leaf]) { self.event = event; self.outcome = outcome; self.changed = changed }
    }
    struct Script: Codable, Equatable { var name: String; var genesis: String; var steps: [Step] }

    var about: String
    var scripts: [Script]

    static let path = repoRoot + "/schemas/fold-vectors.json"
    static let about = "FORMAT.md §4.3 and ECONOMY.md folded: for each script, decode the genesis (§6) into its state (§6.1); for each step, begin the block, or fold the event into the open block and compare the outcome and the changed leaves (§7.2). A refused event changes nothing."

    /// Every leaf of a state by (kind, id hex), its value hex.
    static func leaves(_ s: LedgerState) -> [String: (kind: UInt8, id: String, value: String)] {
        var out: [String: (kind: UInt8, id: String, value: String)] = [:]
        for l in s.allLeaves() {
            let id = Hex.encode(l.leaf.id)
            out["\(l.leaf.kind.rawValue)/\(id)"] = (l.leaf.kind.rawValue, id, Hex.encode(l.value))
        }
        return out
    }

    /// The leaves whose value differs, sorted by (kind, id).
    static func changes(from a: [String: (kind: UInt8, id: String, value: String)], to b: [String: (kind: UInt8, id: String, value: String)]) -> [Leaf] {
        var out: [Leaf] = []
        for k in Set(a.keys).union(b.keys) where a[k]?.value != b[k]?.value {
            let e = b[k] ?? a[k]!
            out.append(Leaf(kind: e.kind, id: e.id, value: b[k]?.value))
        }
        return out.sorted { ($0.kind, $0.id) < ($1.kind, $1.id) }
    }

    static func encode(_ v: FoldVectors) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(v) + Data("\n".utf8)
    }
}

@Suite struct FoldVectorTests {
    /// Runs every fold script and collects what it folded.
    static func generate() throws -> FoldVectors {
        var scripts: [FoldVectors.Script] = []
        for name in FoldScriptTests.scripts {
            var harness = FoldScript()
            try runScriptFile(FoldScriptTests.dir + "/" + name, rewriteVariable: "FOLD_REWRITE", emptyOutput: "") { harness.run($0) }
            scripts.append(.init(name: String(name.dropLast(4)), genesis: Hex.encode(harness.f.genesis.encoded()), steps: harness.steps))
        }
        return FoldVectors(about: FoldVectors.about, scripts: scripts)
    }

    @Test func theFoldVectorsAreWhatTheFoldScriptsFold() throws {
        let fresh = try FoldVectors.encode(try Self.generate())
        if ProcessInfo.processInfo.environment["FOLD_VECTORS_REWRITE"] != nil {
            try fresh.write(to: URL(fileURLWithPath: FoldVectors.path))
            return
        }
        let committed = try Data(contentsOf: URL(fileURLWithPath: FoldVectors.path))
        #expect(committed == fresh, "schemas/fold-vectors.json is stale: FOLD_VECTORS_REWRITE=1 swift test --filter FoldVector, then read the diff")
    }

    /// What another implementation does with the file: only its bytes, no script.
    @Test func theFoldVectorsRefoldFromTheirBytes() throws {
        let doc = try JSONDecoder().decode(FoldVectors.self, from: Data(contentsOf: URL(fileURLWithPath: FoldVectors.path)))
        #expect(doc.scripts.count == FoldScriptTests.scripts.count)
        var events = 0
        for script in doc.scripts {
            let bytes = try #require(Hex.decode(script.genesis))
            var s = LedgerState(genesis: try Genesis.decode(bytes), genesisHash: Blake2b.hash(bytes), crypto: Sodium())
            var ctx = BlockContext(height: 0, timestampMs: s.timestampMs, proposer: .zero)
            for (i, step) in script.steps.enumerated() {
                if let b = step.block {
                    ctx = BlockContext(height: Height(b.height), timestampMs: b.timestampMs, proposer: try #require(Bytes32(hex: b.proposer)))
                    try s.beginBlock(ctx)
                    continue
                }
                let e = try Envelope(bytes: try #require(Hex.decode(step.event ?? "")))
                let before = FoldVectors.leaves(s)
                var outcome = "ok"
                do { try s.apply(e, id: EventCrypto.id(e.bytes), ctx) } catch { outcome = "refused \(error.code)" }
                events += 1
                #expect(outcome == step.outcome, "\(script.name) step \(i)")
                #expect(FoldVectors.changes(from: before, to: FoldVectors.leaves(s)) == (step.changed ?? []), "\(script.name) step \(i)")
            }
        }
        #expect(events > 50)
    }

    /// Each refusal code has a vector, or is named here: as unreachable (no event can get
    /// it from the fold, with the reason) or as a gap (reachable, no vector yet). A new
    /// code without either fails; so does an unreachable code that has a vector (the
    /// reason is wrong), a gap that has since been covered (strike it), or a name that is
    /// no code.
    @Test func everyRefusalHasAFoldVectorOrIsNamedUnreachable() throws {
        let source = try String(contentsOfFile: repoRoot + "/Sources/LedgerProjections/Errors.swift", encoding: .utf8)
        let codeSection = try #require(source.components(separatedBy: "public var code: String {").dropFirst().first)
        let all = Set(codeSection.split(separator: "\n").compactMap { line -> String? in
            guard line.contains("case ."), let q = line.split(separator: "\"").dropFirst().first else { return nil }
            return String(q)
        })
        #expect(all.count > 60, "the codes of ApplyError, read from its source")
        let doc = try JSONDecoder().decode(FoldVectors.self, from: Data(contentsOf: URL(fileURLWithPath: FoldVectors.path)))
        let covered = Set(doc.scripts.flatMap(\.steps).compactMap { $0.outcome }.filter { $0.hasPrefix("refused ") }.map { String($0.dropFirst(8)) })
        let unreachable = Set(Self.unreachable.keys)
        let missing = all.subtracting(covered).subtracting(unreachable).subtracting(Self.gaps)
        #expect(missing.isEmpty, "refusals with no fold vector, not unreachable and not a named gap: \(missing.sorted())")
        #expect(unreachable.intersection(covered).isEmpty, "codes named unreachable that have a vector: \(unreachable.intersection(covered).sorted())")
        #expect(Self.gaps.intersection(covered).isEmpty, "gaps that now have a vector (strike them): \(Self.gaps.intersection(covered).sorted())")
        #expect(Self.gaps.isDisjoint(with: unreachable), "a code is either a gap or unreachable")
        #expect(unreachable.union(Self.gaps).subtracting(all).isEmpty, "names that are no refusal code: \(unreachable.union(Self.gaps).subtracting(all).sorted())")
    }

    /// Refusal codes no event can get from the fold (`LedgerState.apply`), and why: an
    /// earlier check always refuses first, or the fold never makes the check at all.
    static let unreachable: [String: String] = [
        "bad_signature": "The fold never verifies the envelope's signature: block acceptance does before it (FOLD.md §1.1), and only admission reports the code.",
        "oversized": "Envelope(bytes:) refuses more than 4,096 bytes, so every envelope the fold is given is within the limit (only admission reports the code).",
        "duplicate_event": "An alliance, job, meme or proposal id is the id of the event that created it, and an event with that id has the same bytes, hence the same author and nonce: stale_nonce refuses it first.",
        "nothing_to_refund": "A refund is refused unless the job is posted or accepted, and such a job always has an unsettled milestone of positive amount (job.post refuses empty or zero milestones; settling the last one makes the job completed or resolved).",
    ]

    /// Reachable refusals with no fold vector yet (each is owed one): none.
    static let gaps: Set<String> = []
}
