import LedgerConsensus
import LedgerCore
import LedgerProjections

/// The ChaosChain personalities. Each is pure: the same proposal always gets the same
/// verdict, so a run can be replayed from its seed (and a recorded opinion explains it).
public enum Personalities {
    public static let names = ["lawful", "memetic", "loyal", "chaotic"]

    /// A personality by its registered name (unknown names are lawful).
    public static func named(_ name: String) -> any Personality {
        switch name {
        case "memetic": Memetic()
        case "loyal": Loyal()
        case "chaotic": Chaotic()
        default: Lawful()
        }
    }
}

/// Wants a meme worth reading: its quality (MemeQuality.score) must reach a threshold.
public struct Memetic: Personality {
    public var threshold: Int
    public init(threshold: Int = 40) { self.threshold = threshold }
    public var name: String { "memetic" }
    public func judge(_ p: Proposal) -> Judgement {
        let q = MemeQuality.score(p.block.header.meme)
        return q >= threshold ? .accept("meme quality \(q) ≥ \(threshold)") : .refuse("meme quality \(q) < \(threshold)")
    }
}

/// Favours producers it is allied with and refuses rivals: a producer in an active
/// alliance this validator is not part of. Producers outside every alliance are neutral.
public struct Loyal: Personality {
    public init() {}
    public var name: String { "loyal" }
    public func judge(_ p: Proposal) -> Judgement {
        let producer = p.proposer
        var rival = false
        for id in p.parent.alliances.keys.sorted() {
            let a = p.parent.alliances[id]!
            guard a.status == .active, a.members.contains(producer.raw) else { continue }
            if a.members.contains(p.judge.raw) { return .accept("producer \(producer.short) is an ally (alliance \(id.short))") }
            rival = true
        }
        return rival ? .refuse("producer \(producer.short) belongs to a rival alliance") : .accept("producer \(producer.short) is neutral")
    }
}

/// Refuses a fraction of blocks, drawn from the block hash and the judge's key, so the
/// draw is reproducible and differs between validators and between re-proposals.
/// It refuses a height at most once: with f validators down the rest are exactly a
/// quorum, and each refusal then costs a view timeout, so dice that said no in several
/// views in a row stopped a cluster for longer than any fault did.
public struct Chaotic: Personality {
    public var refuseBps: UInt64
    public init(refuseBps: UInt64 = 2_500) { self.refuseBps = refuseBps }
    public var name: String { "chaotic" }
    public func judge(_ p: Proposal) -> Judgement {
        if p.refusedBefore { return .accept("already refused this height once") }
        var w = ByteWriter(capacity: 96)
        w.raw(Array("CHAOSLEDGER/CHAOTIC".utf8)); w.b32(p.block.hash); w.b32(p.judge)
        let roll = p.parent.crypto.hash(w.bytes).w0 % 10_000
        return roll < refuseBps ? .refuse("the dice said no (\(roll) < \(refuseBps))") : .accept("the dice said yes (\(roll))")
    }
}

/// A meme's quality, 0–100: ten points per distinct word of three or more letters (at
/// most eight), ten for an exclamation, ten for a question. Empty memes score zero.
public enum MemeQuality {
    public static func score(_ meme: [UInt8]) -> Int {
        let text = String(decoding: meme, as: UTF8.self).lowercased()
        var words = Set<Substring>()
        for w in text.split(whereSeparator: { !$0.isLetter }) where w.count >= 3 { words.insert(w) }
        var s = min(words.count, 8) * 10
        if text.contains("!") { s += 10 }
        if text.contains("?") { s += 10 }
        return min(s, 100)
    }
}

/// A producer that attaches memes: a witty one, or a lazy one that memetic validators refuse.
public struct MemeProducer: ProducerStrategy {
    public var witty: Bool
    public init(witty: Bool) { self.witty = witty }
    static let good = [
        "when the quorum hits two thirds plus one stake unit!",
        "much byzantine, very tolerant, such finality?",
        "validators hate this one weird checkpoint trick!",
        "not your keys not your consensus, ser?",
        "gm to every honest replica in this view!",
    ]
    public func meme(height: Height, view: View) -> [UInt8] {
        witty ? Array(Self.good[Int((height.value &+ view.value) % UInt64(Self.good.count))].utf8) : Array("gm".utf8)
    }
}
