import LedgerCore

/// The state commitment's rules (schemas/FORMAT.md, "State tree"): a binary sparse Merkle
/// tree over 256-bit keys, in which a subtree holding one leaf is that leaf and a
/// subtree holding none is the empty hash E (32 zero bytes). Its root depends only on the
/// set of (key, value) leaves, never on the order they were written in.
///
///     key  = H("CHAOSLEDGER/STATE-KEY\0"   | u8 kind | id)
///     vh   = H("CHAOSLEDGER/STATE-VALUE\0" | value)
///     leaf = H("CHAOSLEDGER/STATE-LEAF\0"  | key | vh)
///     node = H("CHAOSLEDGER/STATE-NODE\0"  | left | right)
///
/// Key bits are read most significant first; a 0 goes left. Leaves and nodes carry
/// different tags and E has no preimage, so a proof cannot pass a node off as a leaf.
public struct TreeRules: Sendable {
    public let hasher: any Hashing
    public init(_ hasher: any Hashing) { self.hasher = hasher }

    static let keyTag = Array("CHAOSLEDGER/STATE-KEY\0".utf8)
    static let valueTag = Array("CHAOSLEDGER/STATE-VALUE\0".utf8)
    static let leafTag = Array("CHAOSLEDGER/STATE-LEAF\0".utf8)
    static let nodeTag = Array("CHAOSLEDGER/STATE-NODE\0".utf8)

    /// The empty subtree, and the root of an empty tree.
    public static let empty = Hash32.zero

    public func key(kind: UInt8, id: [UInt8]) -> Hash32 { hasher.hash(Self.keyTag + [kind] + id) }
    public func valueHash(_ value: [UInt8]) -> Hash32 { hasher.hash(Self.valueTag + value) }

    public func leaf(_ key: Hash32, _ valueHash: Hash32) -> Hash32 { pair(Self.leafTag, key, valueHash) }
    public func node(_ left: Hash32, _ right: Hash32) -> Hash32 { pair(Self.nodeTag, left, right) }

    /// H(tag | a | b), built on the stack: the tree hashes thousands of these a block,
    /// and building each in a fresh array cost more than the hash itself.
    public func pair(_ tag: [UInt8], _ a: Hash32, _ b: Hash32) -> Hash32 {
        withUnsafeTemporaryAllocation(byteCount: tag.count + 64, alignment: 8) { buf in
            tag.withUnsafeBytes { buf.copyMemory(from: $0) }
            a.withBytes { UnsafeMutableRawBufferPointer(rebasing: buf[tag.count ..< tag.count + 32]).copyMemory(from: $0) }
            b.withBytes { UnsafeMutableRawBufferPointer(rebasing: buf[tag.count + 32 ..< tag.count + 64]).copyMemory(from: $0) }
            return hasher.hash(UnsafeRawBufferPointer(buf))
        }
    }

    /// Bit `d` (0 = most significant) of `k`.
    @inlinable
    public static func bit(_ k: Hash32, _ d: Int) -> Bool {
        let word = d < 64 ? k.w0 : d < 128 ? k.w1 : d < 192 ? k.w2 : k.w3
        return (word >> UInt64(63 - d % 64)) & 1 == 1
    }

    /// How many leading bits `a` and `b` share (256 when equal).
    public static func commonPrefix(_ a: Hash32, _ b: Hash32) -> Int {
        for (x, y, base) in [(a.w0, b.w0, 0), (a.w1, b.w1, 64), (a.w2, b.w2, 128), (a.w3, b.w3, 192)] where x != y {
            return base + (x ^ y).leadingZeroBitCount
        }
        return 256
    }
}

/// A reference state tree in memory: the leaves by key, and the root and proofs computed
/// from them. It defines the commitment (every other implementation must agree with it)
/// and serves tests; a build costs O(n log n) hashes.
public struct SparseMerkleTree: Sendable {
    public let rules: TreeRules
    /// Value hash by key.
    public private(set) var leaves: [Hash32: Hash32] = [:]

    public init(rules: TreeRules) { self.rules = rules }

    public mutating func set(_ key: Hash32, valueHash: Hash32?) { leaves[key] = valueHash }

    /// The root of the current leaves.
    public var root: Hash32 { subtree(leaves.keys.sorted()[...], depth: 0) }

    /// The root of the subtree at `depth` holding `keys` (sorted, sharing `depth` bits).
    func subtree(_ keys: ArraySlice<Hash32>, depth: Int) -> Hash32 {
        guard let first = keys.first else { return TreeRules.empty }
        if keys.count == 1 { return rules.leaf(first, leaves[first]!) }
        // Sorted keys put the 0 side first: split at the first key whose bit is 1.
        let split = keys.firstIndex { TreeRules.bit($0, depth) } ?? keys.endIndex
        return rules.node(subtree(keys[..<split], depth: depth + 1), subtree(keys[split...], depth: depth + 1))
    }

    /// A proof for `key`: that it holds its value here, or that it is absent.
    public func proof(_ key: Hash32) -> TreeProof {
        var keys = leaves.keys.sorted()[...]
        var siblings: [Hash32] = []  // top-down here, bottom-up in the proof
        var depth = 0
        while keys.count > 1 {
            let split = keys.firstIndex { TreeRules.bit($0, depth) } ?? keys.endIndex
            let (mine, other) = TreeRules.bit(key, depth) ? (keys[split...], keys[..<split]) : (keys[..<split], keys[split...])
            siblings.append(subtree(other, depth: depth + 1))
            keys = mine
            depth += 1
        }
        let end: TreeProof.End
        if let only = keys.first {
            end = only == key ? .value(leaves[only]!) : .otherLeaf(key: only, valueHash: leaves[only]!)
        } else {
            end = .empty
        }
        return TreeProof(end: end, siblings: siblings.reversed())
    }
}

/// What a proof shows about a key, and the siblings from its subtree up to the root.
public struct TreeProof: Sendable, Hashable {
    public enum End: Sendable, Hashable {
        /// The key is present with this value hash.
        case value(Hash32)
        /// The key's place is an empty subtree: it is absent.
        case empty
        /// Another leaf alone holds the key's place (they share every bit above it): the
        /// key is absent.
        case otherLeaf(key: Hash32, valueHash: Hash32)
    }

    public var end: End
    /// Bottom-up: the first is the sibling of the deepest subtree on the key's path.
    public var siblings: [Hash32]

    public init(end: End, siblings: [Hash32]) { self.end = end; self.siblings = siblings }

    /// The root this proof implies for `key`, or nil when it is malformed for that key.
    public func root(for key: Hash32, rules: TreeRules) -> Hash32? {
        let n = siblings.count
        guard n <= 256 else { return nil }
        var cur: Hash32
        switch end {
        case let .value(vh): cur = rules.leaf(key, vh)
        case .empty: cur = TreeRules.empty
        case let .otherLeaf(other, vh):
            guard other != key, TreeRules.commonPrefix(key, other) >= n else { return nil }
            cur = rules.leaf(other, vh)
        }
        for (i, s) in siblings.enumerated() {
            let d = n - 1 - i
            cur = TreeRules.bit(key, d) ? rules.node(s, cur) : rules.node(cur, s)
        }
        return cur
    }

    /// Whether this proof shows `key` with value hash `valueHash` (nil: absent) under `root`.
    public func verify(key: Hash32, valueHash: Hash32?, root: Hash32, rules: TreeRules) -> Bool {
        switch (end, valueHash) {
        case let (.value(v), want?): guard v == want else { return false }
        case (.empty, nil), (.otherLeaf, nil): break
        default: return false
        }
        return self.root(for: key, rules: rules) == root
    }
}
