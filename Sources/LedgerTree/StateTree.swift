import LedgerCore

/// The state tree kept up to date block by block: a persistent binary trie whose nodes
/// cache their hashes, so a batch of m changes rehashes only the nodes on their paths,
/// O(m log n), and an older version stays readable as long as someone holds it (the
/// speculative blocks of a replica share everything they did not change). Its root
/// always equals `SparseMerkleTree`'s for the same leaves (the tests check it).
///
/// A node that only this version can reach is updated in place; one that an older
/// version still holds is copied along the path (copy on write, node by node). A replay
/// or a rebuild, which keeps no old version, so allocates and frees nothing per block
/// for the nodes it rewrites.
public struct StateTree: Sendable {
    /// A node, immutable once built and shared by every version that holds it: a leaf
    /// (`leaves == 1`), or an inner node over two subtrees, one of which may be empty
    /// (nil). A subtree of one leaf is always that leaf, so `leaves == 1` tells them
    /// apart. Classes, not an indirect enum: reading a hash or a child of an enum case
    /// copied its payload, retaining and releasing both children, on every step of a path.
    ///
    /// Fields change only on a node that is uniquely referenced from a uniquely
    /// referenced parent (`update`), so no other version or thread can see the change.
    class Node: @unchecked Sendable {
        var hash: Hash32
        var leaves: Int
        init(hash: Hash32, leaves: Int) { self.hash = hash; self.leaves = leaves }
    }
    final class Leaf: Node, @unchecked Sendable {
        let key: Hash32
        var valueHash: Hash32
        init(key: Hash32, valueHash: Hash32, hash: Hash32) {
            self.key = key; self.valueHash = valueHash
            super.init(hash: hash, leaves: 1)
        }
    }
    final class Inner: Node, @unchecked Sendable {
        var left: Node?, right: Node?
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
        var order = changes.enumerated().map { (key: $0.element.key, value: $0.element.valueHash, at: $0.offset) }
        order.sort { $0.key != $1.key ? $0.key < $1.key : $0.at < $1.at }
        var sorted: [Change] = []
        sorted.reserveCapacity(order.count)
        for (n, c) in order.enumerated() where n + 1 == order.count || order[n + 1].key != c.key {
            sorted.append((key: c.key, value: c.value))
        }
        // Taken out of `self` first: the method call below reads `self`, and that copy
        // would hold the root a second time.
        var root = top
        top = nil
        update(&root, depth: 0, sorted[...])
        top = root
    }

    /// The value hash of `key`, nil when absent.
    public func valueHash(_ key: Hash32) -> Hash32? { Self.valueHash(in: top, depth: 0, key) }

    /// The value hash of `key` in the subtree `node` at `depth`, nil when absent.
    static func valueHash(in node: Node?, depth: Int, _ key: Hash32) -> Hash32? {
        var n = node, d = depth
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

    /// Applies `changes` to the subtree in `slot`, in place where nothing else holds it, and
    /// says whether its hash changed: a change that writes the value a leaf already has,
    /// or deletes a key that is absent, costs a walk and no hash.
    ///
    /// Called only on slots whose every ancestor was itself uniquely held (the root slot,
    /// and the children of nodes this function is updating in place): a node reachable
    /// only through a shared parent is shared, whatever its own reference count says.
    @discardableResult
    func update(_ slot: inout Node?, depth: Int, _ changes: ArraySlice<Change>) -> Bool {
        guard !changes.isEmpty else { return false }
        // Asked before binding the node: a local reference would count as a second one.
        guard isKnownUniquelyReferenced(&slot), let node = slot else {
            // Shared with another version (or empty): copied along the changed paths.
            let real = changes.filter { Self.valueHash(in: slot, depth: depth, $0.key) != $0.value }
            guard !real.isEmpty else { return false }
            slot = apply(slot, depth: depth, real[...])
            return true
        }
        if let leaf = Self.asLeaf(node) {
            let real = changes.filter { $0.key == leaf.key ? $0.value != leaf.valueHash : $0.value != nil }
            guard !real.isEmpty else { return false }
            if real.count == 1, let c = real.first, c.key == leaf.key, let v = c.value {
                // One new value for this very leaf: rehash it where it stands.
                leaf.valueHash = v
                leaf.hash = rules.leaf(leaf.key, v)
            } else {
                slot = apply(node, depth: depth, real[...])
            }
            return true
        }
        let inner = Self.asInner(node)
        let split = changes.firstIndex { TreeRules.bit($0.key, depth) } ?? changes.endIndex
        let left = update(&inner.left, depth: depth + 1, changes[..<split])
        let right = update(&inner.right, depth: depth + 1, changes[split...])
        guard left || right else { return false }
        // The same collapse as `join`, keeping this node when it stays an inner one.
        switch (inner.left, inner.right) {
        case (nil, nil): slot = nil
        case let (nil, x?) where x.leaves == 1: slot = x
        case let (x?, nil) where x.leaves == 1: slot = x
        default:
            inner.hash = rules.node(Self.hash(inner.left), Self.hash(inner.right))
            inner.leaves = Self.leaves(inner.left) + Self.leaves(inner.right)
        }
        return true
    }

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
