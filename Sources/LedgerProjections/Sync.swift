import LedgerCore
import LedgerTree

/// One state-sync chunk (schemas/FORMAT.md §15.2): the state's entries whose tree keys
/// begin with the `depth` bits of `index`, with the siblings that prove them against the
/// state root of `height`. The receiver computes every key and value hash itself, so an
/// entry a peer altered, added or left out fails the proof.
public struct StateChunk: Sendable, Equatable {
    public static let formatVersion: UInt16 = 1

    public var height: Height
    public var depth: Int
    public var index: UInt32
    /// Keys strictly increasing.
    public var entries: [(leaf: StateLeaf, value: [UInt8])]
    public var siblings: [TreeChunk.Sibling]

    public init(height: Height, depth: Int, index: UInt32, entries: [(leaf: StateLeaf, value: [UInt8])], siblings: [TreeChunk.Sibling]) {
        self.height = height; self.depth = depth; self.index = index; self.entries = entries; self.siblings = siblings
    }

    public static func == (a: Self, b: Self) -> Bool { a.encoded() == b.encoded() }

    /// `u16 version | u64 height | u8 depth | u32 index | u32 n | n × (u8 kind | id |
    /// u32 len | value) | depth × (u8 tag | tag 1: b32 key, b32 value hash | tag 2: b32 hash)`.
    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + entries.reduce(0) { $0 + $1.value.count + $1.leaf.id.count + 5 } + siblings.count * 65)
        w.u16(Self.formatVersion); w.u64(height.value); w.u8(UInt8(depth)); w.u32(index)
        w.u32(UInt32(entries.count))
        for e in entries { w.u8(e.leaf.kind.rawValue); w.raw(e.leaf.id); w.blob32(e.value) }
        for s in siblings {
            switch s {
            case .empty: w.u8(0)
            case let .leaf(k, v): w.u8(1); w.b32(k); w.b32(v)
            case let .node(h): w.u8(2); w.b32(h)
            }
        }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> StateChunk {
        guard bytes.count <= Limits.syncChunkBytesMax else { throw .tooLong(field: "chunk", length: bytes.count, max: Limits.syncChunkBytesMax) }
        var r = ByteReader(bytes)
        let v = try r.u16("chunk.version")
        guard v == formatVersion else { throw .unsupportedVersion(field: "chunk", version: v) }
        let height = Height(try r.u64("chunk.height"))
        let depth = Int(try r.u8("chunk.depth"))
        guard depth <= TreeChunk.depthMax else { throw .invalidValue(field: "chunk.depth", reason: "\(depth) is over \(TreeChunk.depthMax)") }
        let index = try r.u32("chunk.index")
        // Each entry takes at least 5 bytes: a count past what the bytes hold is refused unread.
        let n = Int(try r.u32("chunk.entries"))
        guard n <= bytes.count / 5 else { throw .invalidValue(field: "chunk.entries", reason: "\(n) entries cannot fit in \(bytes.count) bytes") }
        var entries: [(leaf: StateLeaf, value: [UInt8])] = []
        entries.reserveCapacity(n)
        for _ in 0 ..< n {
            guard let kind = LeafKind(rawValue: try r.u8("entry.kind")) else { throw .invalidValue(field: "entry.kind", reason: "unknown leaf kind") }
            let leaf = try StateLeaf(kind, Array(try r.raw(kind.idLength, "entry.id")))
            entries.append((leaf, try r.blob32("entry.value", max: Limits.syncChunkBytesMax)))
        }
        var siblings: [TreeChunk.Sibling] = []
        for _ in 0 ..< depth {
            switch try r.u8("sibling.tag") {
            case 0: siblings.append(.empty)
            case 1: siblings.append(.leaf(key: try r.b32("sibling.key"), valueHash: try r.b32("sibling.valueHash")))
            case 2: siblings.append(.node(try r.b32("sibling.hash")))
            default: throw .invalidValue(field: "sibling.tag", reason: "not 0, 1 or 2")
            }
        }
        try r.end()
        return StateChunk(height: height, depth: depth, index: index, entries: entries, siblings: siblings)
    }

    /// The tree chunk these entries make: keys and value hashes computed here.
    public func treeChunk(_ rules: TreeRules) -> TreeChunk {
        TreeChunk(depth: depth, index: index,
                  leaves: entries.map { (rules.key(kind: $0.leaf.kind.rawValue, id: $0.leaf.id), rules.valueHash($0.value)) },
                  siblings: siblings)
    }

    /// Why this chunk is not part of the state whose root is `root` at `height`, or nil.
    public func refusal(height expected: Height, depth expectedDepth: Int, index expectedIndex: UInt32, root: Hash32, _ rules: TreeRules) -> String? {
        guard height == expected, depth == expectedDepth, index == expectedIndex else {
            return "chunk \(index) of depth \(depth) at \(height), not \(expectedIndex) of depth \(expectedDepth) at \(expected)"
        }
        let t = treeChunk(rules)
        if let why = t.malformed() { return why }
        guard t.verify(root: root, rules) else { return "its entries and siblings do not lead to the state root \(root.short)" }
        return nil
    }
}

/// Serves one state's chunks: its entries sorted by tree key once, then any chunk as a
/// slice of them with its siblings from the state's tree.
public struct StateChunker: Sendable {
    public let height: Height
    public let root: Hash32
    let tree: StateTree
    let keys: [Hash32]
    let entries: [(leaf: StateLeaf, value: [UInt8])]

    /// Nil for a state under the flat rule (no tree to prove chunks against).
    public init?(state: LedgerState) {
        var s = state
        guard s.commitment == .tree else { return nil }
        root = s.sealRoot()
        guard let t = s.sealedTree else { return nil }
        tree = t
        height = s.height
        let rules = s.treeRules
        let all = s.allLeaves().map { (key: rules.key(kind: $0.leaf.kind.rawValue, id: $0.leaf.id), entry: $0) }.sorted { $0.key < $1.key }
        keys = all.map(\.key)
        entries = all.map(\.entry)
    }

    public var leafCount: Int { keys.count }

    /// The depth that cuts this state into chunks of about `Limits.syncChunkLeavesTarget` leaves.
    public var depth: Int { Self.depth(forLeaves: keys.count) }

    public static func depth(forLeaves n: Int) -> Int {
        var d = 0
        while d < TreeChunk.depthMax, n >> d > Limits.syncChunkLeavesTarget { d += 1 }
        return d
    }

    public func chunk(depth: Int, index: UInt32) -> StateChunk {
        let t = tree.chunk(depth: depth, index: index)
        // The chunk's keys are a run of the sorted keys: find its first by bisection.
        var lo = 0, hi = keys.count
        let first = t.leaves.first?.key
        if let first {
            while lo < hi { let m = (lo + hi) / 2; if keys[m] < first { lo = m + 1 } else { hi = m } }
        }
        let run = first == nil ? [] : Array(entries[lo ..< lo + t.leaves.count])
        return StateChunk(height: height, depth: depth, index: index, entries: run, siblings: t.siblings)
    }
}

extension LedgerState {
    /// The state whose tree holds exactly `entries` (any order), through the canonical
    /// snapshot they make (FORMAT.md §15.3): each section is its kind's entries in key
    /// order, the unbonding, slash and delegator-slash lists in leaf-id order (the
    /// commitment does not fix their order across leaves, and no fold depends on it).
    public static func assemble(_ entries: [(leaf: StateLeaf, value: [UInt8])], crypto: any Primitives) throws(DecodeError) -> LedgerState {
        var byKind: [LeafKind: [(id: [UInt8], value: [UInt8])]] = [:]
        for e in entries { byKind[e.leaf.kind, default: []].append((e.leaf.id, e.value)) }
        for k in byKind.keys { byKind[k]!.sort { $0.id.lexicographicallyPrecedes($1.id) } }
        func one(_ k: LeafKind) throws(DecodeError) -> [UInt8] {
            guard let l = byKind[k], l.count == 1 else { throw .invalidValue(field: "state.\(k.name)", reason: "not exactly one \(k.name) entry") }
            return l[0].value
        }
        var w = ByteWriter(capacity: entries.reduce(64) { $0 + $1.value.count + 4 })
        func section(_ k: LeafKind) {
            let l = byKind[k] ?? []
            w.u32(UInt32(l.count)); for e in l { w.raw(e.value) }
        }
        w.u16(treeSnapshotVersion)
        w.raw(try one(.chain))
        section(.account); section(.validator); section(.delegation)
        // Each account's unbondings are one leaf: `u32 n | n entries`.
        var unbondings: [UInt8] = [], count: UInt32 = 0
        for e in byKind[.unbondings] ?? [] {
            var r = ByteReader(e.value)
            count += try r.u32("unbondings.count")
            unbondings += e.value.dropFirst(4)
        }
        w.u32(count); w.raw(unbondings)
        section(.agent); section(.alliance)
        w.raw(try one(.power))
        section(.slash); section(.offence); section(.opinions)
        if byKind[.economy] != nil {
            w.u8(economyMarker)
            let globals = try one(.economy)
            w.raw(globals)
            for k: LeafKind in [.reward, .commission, .delegatorSlash, .job, .reputation, .meme, .influence, .proposal] { section(k) }
            var r = ByteReader(globals)
            if try r.u16("economy.ruleVersion") >= RuleVersion.trust { section(.origin); section(.pair) }
        }
        section(.stream)
        return try decodeSnapshot(w.bytes, crypto: crypto)
    }
}
