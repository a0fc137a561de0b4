import LedgerCore

/// The state tree kept up to date block by block: a persistent binary trie whose nodes
/// cache their hashes, so a batch of m changes rehashes only the nodes on their paths,
/// O(m log n), and an older version stays readable as long as someone holds it (the
/// speculative blocks of a replica share everything they did not change). Its root
/// always equals `SparseMerkleTree`'s for the same leaves (the tests check it).
public struct StateTree: Sendable {
    /// A node, immutable once built and shared by every version that holds it: a leaf
    /// (`leaves == 1`), or an inner node over two subtrees, one of which may be empty
    /// (nil). A subtree of one leaf is always that leaf, so `leaves == 1` tells them
    /// apart. Classes, not an indirect enum: reading a hash or a child of an enum case
    /// copied its payload, retaining and releasing both children, on every step of a path.
    class Node: @unchecked Sendable {
        let hash: Hash32
        let leaves: Int
        init(hash: Hash32, leaves: Int) { self.hash = hash; self.leaves = leaves }
    }
    final class Leaf: Node, @unchecked Sendable {
        let key: Hash32, valueHash: Hash32
        init(key: Hash32, valueHash: Hash32, hash: Hash32) {
            self.key = key; self.valueHash = valueHash
            super.init(hash: hash, leaves: 1)
        }
    }
    final class Inner: Node, @unchecked Sendable {
        let left: Node?, right: Node?
        init(left: Node?, right: Node?, hash: Hash32, leaves: Int) {
            self.left = left; self.right = right
            super.init(hash: hash, leaves: leaves)
        }
    }

    static func hash(_ n: Node?) -> Hash32 { n?.hash ?? TreeRules.empty }
    static func leaves(_ n: Node?) -> Int { n?.leaves ?? 0 }
    static func asLeaf(_ n: Node) -> Leaf? { n.leaves == 1 ? unsafeDowncast(n, to: Leaf.self) : nil }
    static func asInner(_ n: Node) -> Inner { unsafeDowncast(n, to: Inner.self) }

    public let rules: TreeRules
    var top: Node?

    public init(rules: TreeRules) { self.rules = rules }

    /// The same tree whose further updates hash with `rules` (benchmarks count hashes).
    public func withRules(_ rules: TreeRules) -> StateTree {
        var t = StateTree(rules: rules)
        t.top = top
        return t
    }

    public var root: Hash32 { Self.hash(top) }
    public var count: Int { Self.leaves(top) }

    /// Applies a batch of changes: a key's new value hash, or nil to delete it. When a key
    /// appears more than once, its last change counts.
    public mutating func apply(_ changes: [(key: Hash32, valueHash: Hash32?)]) {
        guard !changes.isEmpty else { return }
        // Sorted by key, then by position: the last of each run of equal keys counts.
        let order = changes.indices.sorted { changes[$0].key != changes[$1].key ? changes[$0].key < changes[$1].key : $0 < $1 }
        var sorted: [Change] = []
        sorted.reserveCapacity(order.count)
        for (n, i) in order.enumerated() where n + 1 == order.count || changes[order[n + 1]].key != changes[i].key {
            sorted.append((key: changes[i].key, value: changes[i].valueHash))
        }
        top = apply(top, depth: 0, sorted[...])
    }

    /// The value hash of `key`, nil when absent.
    public func valueHash(_ key: Hash32) -> Hash32? {
        var n = top, d = 0
        while let x = n {
            if let l = Self.asLeaf(x) { return l.key == key ? l.valueHash : nil }
            let i = Self.asInner(x)
            n = TreeRules.bit(key, d) ? i.right : i.left
            d += 1
        }
        return nil
    }

    /// A proof for `key` against `root` (see `TreeProof`).
    public func proof(_ key: Hash32) -> TreeProof {
        var n = top, d = 0
        var siblings: [Hash32] = []
        while let x = n {
            if let l = Self.asLeaf(x) {
                return TreeProof(end: l.key == key ? .value(l.valueHash) : .otherLeaf(key: l.key, valueHash: l.valueHash),
                                 siblings: siblings.reversed())
            }
            let i = Self.asInner(x)
            let right = TreeRules.bit(key, d)
            siblings.append(Self.hash(right ? i.left : i.right))
            n = right ? i.right : i.left
            d += 1
        }
        return TreeProof(end: .empty, siblings: siblings.reversed())
    }

    // MARK: - Updating

    typealias Change = (key: Hash32, value: Hash32?)

    func apply(_ node: Node?, depth: Int, _ changes: ArraySlice<Change>) -> Node? {
        guard !changes.isEmpty else { return node }
        guard let node else { return build(changes.compactMap { c in c.value.map { (c.key, $0) } }[...], depth: depth) }
        if let leaf = Self.asLeaf(node) {
            // The old leaf joins the batch unless the batch changes it.
            var leaves = changes.compactMap { c in c.value.map { (c.key, $0) } }
            if !changes.contains(where: { $0.key == leaf.key }) {
                leaves.append((leaf.key, leaf.valueHash))
                leaves.sort { $0.0 < $1.0 }
            }
            return build(leaves[...], depth: depth)
        }
        let inner = Self.asInner(node)
        // Sorted keys put the 0 side first.
        let split = changes.firstIndex { TreeRules.bit($0.key, depth) } ?? changes.endIndex
        return join(apply(inner.left, depth: depth + 1, changes[..<split]), apply(inner.right, depth: depth + 1, changes[split...]))
    }

    /// The node over two children, collapsed as the commitment requires: no leaves is
    /// empty, and a single leaf stands for its whole subtree.
    func join(_ l: Node?, _ r: Node?) -> Node? {
        switch (l, r) {
        case (nil, nil): return nil
        case let (nil, x?) where x.leaves == 1: return x
        case let (x?, nil) where x.leaves == 1: return x
        default: return Inner(left: l, right: r, hash: rules.node(Self.hash(l), Self.hash(r)), leaves: Self.leaves(l) + Self.leaves(r))
        }
    }

    /// The subtree at `depth` over sorted leaves that share `depth` bits.
    func build(_ leaves: ArraySlice<(Hash32, Hash32)>, depth: Int) -> Node? {
        guard let first = leaves.first else { return nil }
        if leaves.count == 1 { return Leaf(key: first.0, valueHash: first.1, hash: rules.leaf(first.0, first.1)) }
        let split = leaves.firstIndex { TreeRules.bit($0.0, depth) } ?? leaves.endIndex
        let l = build(leaves[..<split], depth: depth + 1), r = build(leaves[split...], depth: depth + 1)
        return Inner(left: l, right: r, hash: rules.node(Self.hash(l), Self.hash(r)), leaves: leaves.count)
    }
}
