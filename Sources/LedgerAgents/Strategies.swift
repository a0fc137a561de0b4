import LedgerConsensus
import LedgerCore

/// A producer that plays to its audience (ChaosChain's producer guide): it reads the
/// validators' personalities and picks, from templates and deterministically,
///  - a block meme every memetic validator accepts (quality at or above the threshold)
///    with a hashtag for each personality present;
///  - memes to post, tagged for that audience;
///  - alliance proposals: loyal validators refuse producers in rival alliances and
///    favour allies, so the producer proposes alliances to the loyal ones first.
/// Drives the `demo` and `devnet` workloads and the node's block memes.
public struct AudienceProducer: ProducerStrategy {
    /// The personalities of the validators the producer must persuade.
    public var audience: [String]
    public var seed: UInt64
    /// Draws templates and hashes memes' content with it.
    public let hashing: any Hashing

    public init(audience: [String], seed: UInt64 = 0, hashing: any Hashing) {
        self.audience = audience.sorted(); self.seed = seed; self.hashing = hashing
    }

    static let lines = [
        "when the quorum hits two thirds plus one stake unit!",
        "much byzantine, very tolerant, such finality?",
        "validators hate this one weird checkpoint trick!",
        "not your keys not your consensus, ser?",
        "gm to every honest replica in this view!",
        "escrow locked, milestone shipped, reputation climbing!",
        "who needs a clock when every block carries its timestamp?",
    ]
    static let flavour: [String: String] = [
        "lawful": "order", "memetic": "dankness", "loyal": "alliance", "chaotic": "entropy",
    ]
    static let purposes: [String: String] = [
        "lawful": "validator pact: honest blocks, on time",
        "memetic": "meme syndicate: only the finest templates",
        "loyal": "mutual defence: allies prepare each other's blocks",
        "chaotic": "chaos caucus: embrace the dice",
    ]

    func pick(_ n: UInt64, _ salt: String) -> Int {
        var w = ByteWriter(capacity: 64)
        w.raw(Array(salt.utf8)); w.u64(seed); w.u64(n)
        return Int(hashing.hash(w.bytes).w0 % UInt64(Self.lines.count))
    }

    public var tags: [String] {
        var t: [String] = []
        for p in audience { if let f = Self.flavour[p], !t.contains(f) { t.append(f) } }
        return t.isEmpty ? ["gm"] : t
    }

    public func meme(height: Height, view: View) -> [UInt8] {
        let line = Self.lines[pick(height.value &+ view.value &* 7_919, "block")]
        let text = line + " " + tags.map { "#" + $0 }.joined(separator: " ")
        return Array(text.utf8.prefix(Limits.memeBytesMax))
    }

    /// A meme to post (`meme.post`): a template, its hash, and the audience's tags.
    public func post(_ n: UInt64) -> Meme {
        let text = Self.lines[pick(n, "post")]
        return Meme(contentHash: hashing.hash(Array(text.utf8)), content: text, tags: tags)
    }

    /// An alliance proposal from `me` to the validators whose personality values
    /// alliances most (loyal first, then memetic), or nil when none is in the audience.
    public func alliance(me: PublicKey, validators: [(key: PublicKey, personality: String)], durationMs: UInt64) -> AllianceProposal? {
        let order = ["loyal", "memetic", "lawful"]
        for p in order {
            let targets = validators.filter { $0.personality == p && $0.key != me }.map(\.key).sorted()
            if !targets.isEmpty {
                return AllianceProposal(targets: Array(targets.prefix(Limits.allianceTargetsMax)), purpose: Self.purposes[p]!,
                                        terms: "prepare each other's blocks; share the memes", durationMs: durationMs)
            }
        }
        return nil
    }
}
