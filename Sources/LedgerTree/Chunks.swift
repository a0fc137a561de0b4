import LedgerCore

/// A part of the state tree for state sync (schemas/FORMAT.md §15): the leaves whose
/// keys begin with the `depth` bits of `index`, and the siblings that tie the subtree
/// holding them to the root. The 2^depth chunks of one depth partition the leaves, and
/// each one verifies on its own, so a syncing node refuses a lying peer's chunk as soon
/// as it arrives and keeps every chunk it has checked.
public struct TreeChunk: Sendable, Equatable {
    /// The subtree beside the chunk's path at one depth. A subtree of one leaf is that
    /// leaf (the tree's collapse rule), so the verifier must see the leaf itself to know
    /// that it floats up past an empty neighbour; a subtree of two or more is its hash.
    public enum Sibling: Sendable, Equatable {
        case empty
        case leaf(key: Hash32, valueHash: Hash32)
        case node(Hash32)
    }

    /// Chunks are cut at most this deep: a million chunks.
    public static let depthMax = 20

    public var depth: Int
    public var index: UInt32
    /// (key, value hash), keys strictly increasing, every key under the chunk's prefix.
    public var leaves: [(key: Hash32, valueHash: Hash32)]
    /// Top-down: `siblings[i]` is the subtree at depth i + 1 whose first i bits are the
    /// prefix's and whose bit i is not.
    public var siblings: [Sibling]

    public init(depth: Int, index: UInt32, leaves: [(key: Hash32, valueHash: Hash32)], siblings: [Sibling]) {
        self.depth = depth; self.index = index; self.leaves = leaves; self.siblings = siblings
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.depth == b.depth && a.index == b.index && a.siblings == b.siblings
            && a.leaves.map(\.key) == b.leaves.map(\.key) && a.leaves.map(\.valueHash) == b.leaves.map(\.valueHash)
    }

    /// Bit `i` (0 = most significant) of the chunk's prefix.
    func prefixBit(_ i: Int) -> Bool { (index >> UInt32(depth - 1 - i)) & 1 == 1 }

    /// Whether `key` lies under the prefix: its first `depth` bits are `index`.
    public static func contains(_ key: Hash32, depth: Int, index: UInt32) -> Bool {
        depth == 0 || key.w0 >> UInt64(64 - depth) == UInt64(index)
    }

    /// Why a chunk is refused before its root is computed, or nil when it is well formed.
    public func malformed() -> String? {
        guard (0 ... Self.depthMax).contains(depth) else { return "depth \(depth) is not in 0...\(Self.depthMax)" }
        guard UInt64(index) < UInt64(1) << UInt64(depth) else { return "index \(index) has more than \(depth) bits" }
        guard siblings.count == depth else { return "\(siblings.count) siblings for depth \(depth)" }
        for (n, l) in leaves.enumerated() {
            guard Self.contains(l.key, depth: depth, index: index) else { return "leaf \(n) lies outside the chunk" }
            if n > 0, !(leaves[n - 1].key < l.key) { return "leaf keys not strictly increasing at \(n)" }
        }
        for (i, s) in siblings.enumerated() {
            switch s {
            case let .leaf(k, _):
                // The sibling's place: the prefix's first i bits, then the other bit i.
                guard TreeRules.commonPrefix(k, Self.prefixKey(self)) == i else { return "sibling \(i) is a leaf outside its place" }
            case let .node(h):
                guard h != TreeRules.empty else { return "sibling \(i) is a node with the empty hash" }
            case .empty: break
            }
        }
        return nil
    }

    /// A key with the prefix's bits and zeros after them.
    static func prefixKey(_ c: TreeChunk) -> Hash32 {
        guard c.depth > 0 else { return Hash32.zero }
        return Hash32(w0: UInt64(c.index) << UInt64(64 - c.depth), w1: 0, w2: 0, w3: 0)
    }

    /// The root this chunk implies, or nil when it is malformed. A chunk verifies when
    /// this is the certified root: its leaves are then exactly the tree's under the
    /// prefix, with those value hashes.
    public func root(_ rules: TreeRules) -> Hash32? {
        guard malformed() == nil else { return nil }
        var cur = rules.subtree(leaves[...], depth: depth)
        var count = min(leaves.count, 2)
        for i in stride(from: depth - 1, through: 0, by: -1) {
            let (h, n): (Hash32, Int)
            switch siblings[i] {
            case .empty: (h, n) = (TreeRules.empty, 0)
            case let .leaf(k, v): (h, n) = (rules.leaf(k, v), 1)
            case let .node(x): (h, n) = (x, 2)
            }
            // The collapse rule: no leaves is empty, one leaf stands for the subtree.
            switch (count, n) {
            case (0, 0), (1, 0): break
            case (0, 1): cur = h
            default: cur = prefixBit(i) ? rules.node(h, cur) : rules.node(cur, h)
            }
            count = min(count + n, 2)
        }
        return cur
    }

    /// Whether this chunk is part of the tree whose root is `root`.
    public func verify(root: Hash32, _ rules: TreeRules) -> Bool { self.root(rules) == root }
}

extension TreeRules {
    /// The hash of the subtree at `depth` over sorted leaves that share `depth` bits.
    public func subtree(_ leaves: ArraySlice<(key: Hash32, valueHash: Hash32)>, depth: Int) -> Hash32 {
        guard let first = leaves.first else { return Self.empty }
        if leaves.count == 1 { return leaf(first.key, first.valueHash) }
        let split = leaves.firstIndex { Self.bit($0.key, depth) } ?? leaves.endIndex
        return node(subtree(leaves[..<split], depth: depth + 1), subtree(leaves[split...], depth: depth + 1))
    }
}

extension StateTree {
    /// Chunk `index` of the 2^`depth` chunks of this tree (`depth` ≤ `TreeChunk.depthMax`).
    public func chunk(depth: Int, index: UInt32) -> TreeChunk {
        var out = TreeChunk(depth: depth, index: index, leaves: [], siblings: [])
        let prefix = TreeChunk.prefixKey(out)
        var n = top
        for i in 0 ..< depth {
            guard let x = n else { break }
            if let l = Self.asLeaf(x) {
                // One leaf holds this whole subtree: it is either in the chunk or the
                // sibling at the depth where its key leaves the prefix.
                let at = TreeRules.commonPrefix(l.key, prefix)
                if at < depth, at >= i {
                    out.siblings = (0 ..< depth).map { $0 < i ? out.siblings[$0] : $0 == at ? .leaf(key: l.key, valueHash: l.valueHash) : .empty }
                    return out
                }
                n = x
                break
            }
            let inner = Self.asInner(x)
            let right = out.prefixBit(i)
            out.siblings.append(Self.sibling(right ? inner.left : inner.right))
            n = right ? inner.right : inner.left
        }
        out.siblings += Array(repeating: .empty, count: depth - out.siblings.count)
        if let n, TreeChunk.contains(Self.anyKey(n), depth: depth, index: index) { Self.collect(n, into: &out.leaves) }
        return out
    }

    static func sibling(_ n: Node?) -> TreeChunk.Sibling {
        guard let n else { return .empty }
        if let l = asLeaf(n) { return .leaf(key: l.key, valueHash: l.valueHash) }
        return .node(n.hash)
    }

    /// Some key under `n` (the leftmost).
    static func anyKey(_ n: Node) -> Hash32 {
        var x = n
        while asLeaf(x) == nil { let i = asInner(x); x = i.left ?? i.right! }
        return asLeaf(x)!.key
    }

    /// Every leaf under `n`, keys ascending (left is the 0 side).
    static func collect(_ n: Node, into out: inout [(key: Hash32, valueHash: Hash32)]) {
        if let l = asLeaf(n) { out.append((l.key, l.valueHash)); return }
        let i = asInner(n)
        if let l = i.left { collect(l, into: &out) }
        if let r = i.right { collect(r, into: &out) }
    }
}
