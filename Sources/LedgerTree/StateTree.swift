import LedgerCore

/// The state tree kept up to date block by block: a persistent binary trie whose nodes
/// cache their hashes, so a batch of m changes rehashes only the nodes on their paths,
/// O(m log n), and an older version stays readable as long as someone holds it (the
/// speculative blocks of a replica share everything they did not change). Its root
/// always equals `SparseMerkleTree`'s for the same leaves (the tests check it).
public struct StateTree: Sendable {
    indirect enum Node: Sendable {
        case empty
        case leaf(key: Hash32, valueHash: Hash32, hash: Hash32)
        case inner(left: Node, right: Node, hash: Hash32, leaves: Int)

        var hash: Hash32 {
            switch self {
            case .empty: TreeRules.empty
            case let .leaf(_, _, h): h
            case let .inner(_, _, h, _): h
            }
        }
        var leaves: Int {
            switch self {
            case .empty: 0
            case .leaf: 1
            case let .inner(_, _, _, n): n
            }
        }
    }

    public let rules: TreeRules
    var top: Node = .empty

    public init(rules: TreeRules) { self.rules = rules }

    /// The same tree whose further updates hash with `rules` (benchmarks count hashes).
    public func withRules(_ rules: TreeRules) -> StateTree {
        var t = StateTree(rules: rules)
        t.top = top
        return t
    }

    public var root: Hash32 { top.hash }
    public var count: Int { top.leaves }

    /// Applies a batch of changes: a key's new value hash, or nil to delete it. When a key
    /// appears more than once, its last change counts.
    public mutating func apply(_ changes: [(key: Hash32, valueHash: Hash32?)]) {
        guard !changes.isEmpty else { return }
        var last: [Hash32: Int] = [:]
        for (i, c) in changes.enumerated() { last[c.key] = i }
        let sorted = last.keys.sorted().map { k in (key: k, value: changes[last[k]!].valueHash) }
        top = apply(top, depth: 0, sorted[...])
    }

    /// The value hash of `key`, nil when absent.
    public func valueHash(_ key: Hash32) -> Hash32? {
        var n = top, d = 0
        while true {
            switch n {
            case .empty: return nil
            case let .leaf(k, vh, _): return k == key ? vh : nil
            case let .inner(l, r, _, _):
                n = TreeRules.bit(key, d) ? r : l
                d += 1
            }
        }
    }

    /// A proof for `key` against `root` (see `TreeProof`).
    public func proof(_ key: Hash32) -> TreeProof {
        var n = top, d = 0
        var siblings: [Hash32] = []
        while true {
            switch n {
            case .empty: return TreeProof(end: .empty, siblings: siblings.reversed())
            case let .leaf(k, vh, _):
                return TreeProof(end: k == key ? .value(vh) : .otherLeaf(key: k, valueHash: vh), siblings: siblings.reversed())
            case let .inner(l, r, _, _):
                let right = TreeRules.bit(key, d)
                siblings.append(right ? l.hash : r.hash)
                n = right ? r : l
                d += 1
            }
        }
    }

    // MARK: - Updating

    typealias Change = (key: Hash32, value: Hash32?)

    func apply(_ node: Node, depth: Int, _ changes: ArraySlice<Change>) -> Node {
        guard !changes.isEmpty else { return node }
        switch node {
        case .empty:
            return build(changes.compactMap { c in c.value.map { (c.key, $0) } }[...], depth: depth)
        case let .leaf(k, vh, _):
            // The old leaf joins the batch unless the batch changes it.
            var leaves = changes.compactMap { c in c.value.map { (c.key, $0) } }
            if !changes.contains(where: { $0.key == k }) {
                leaves.append((k, vh))
                leaves.sort { $0.0 < $1.0 }
            }
            return build(leaves[...], depth: depth)
        case let .inner(l, r, _, _):
            // Sorted keys put the 0 side first.
            let split = changes.firstIndex { TreeRules.bit($0.key, depth) } ?? changes.endIndex
            return join(apply(l, depth: depth + 1, changes[..<split]), apply(r, depth: depth + 1, changes[split...]))
        }
    }

    /// The node over two children, collapsed as the commitment requires: no leaves is
    /// empty, and a single leaf stands for its whole subtree.
    func join(_ l: Node, _ r: Node) -> Node {
        switch (l, r) {
        case (.empty, .empty): return .empty
        case (.empty, .leaf): return r
        case (.leaf, .empty): return l
        default: return .inner(left: l, right: r, hash: rules.node(l.hash, r.hash), leaves: l.leaves + r.leaves)
        }
    }

    /// The subtree at `depth` over sorted leaves that share `depth` bits.
    func build(_ leaves: ArraySlice<(Hash32, Hash32)>, depth: Int) -> Node {
        guard let first = leaves.first else { return .empty }
        if leaves.count == 1 { return .leaf(key: first.0, valueHash: first.1, hash: rules.leaf(first.0, first.1)) }
        let split = leaves.firstIndex { TreeRules.bit($0.0, depth) } ?? leaves.endIndex
        let l = build(leaves[..<split], depth: depth + 1), r = build(leaves[split...], depth: depth + 1)
        return .inner(left: l, right: r, hash: rules.node(l.hash, r.hash), leaves: leaves.count)
    }
}
