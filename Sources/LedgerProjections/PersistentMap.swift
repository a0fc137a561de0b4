/// A persistent hash map (a hash array mapped trie, as Clojure's and Scala's): a copy
/// costs one reference, and a write to a copy copies only the nodes on the key's path
/// (about log32 n of them), never the whole map. A block's state is its parent's state
/// plus the block's writes; with a dictionary the first write to the copy copied every
/// account (40 ms at a million), with this the copy costs what the block writes. A node
/// referenced once is changed in place, so a fold that owns its state pays no copying.
///
/// The node layout is CHAMP's (Steindorfer and Vinju, OOPSLA 2015): a node keeps its
/// entries and its children in two arrays, each indexed through its own bitmap, so a
/// value is changed in place in its entry and a child's uniqueness is checked where it
/// lies. Keys are hashed with the process's seeded hasher (`Bytes32` hashes all four
/// words): a key's 64 hash bits pick one 5-bit index per level, and keys whose 64 bits
/// are all equal share a bucket at the bottom, searched in order.
///
/// Iteration order follows the process's hash seed, as a dictionary's does: everything
/// hashed or signed sorts first.
public struct PersistentMap<Key: Hashable & Sendable, Value: Sendable>: Sendable, Sequence {
    struct Entry {
        var key: Key
        var value: Value
        var hash: Int
    }

    /// Above `bucketShift`, `dataMap` marks the indexes holding an entry and `nodeMap`
    /// those holding a child; at `bucketShift` a node is a bucket: entries only.
    final class Node: @unchecked Sendable {
        // The map's own exclusivity (a struct's inout access) already guards these.
        @exclusivity(unchecked) var dataMap: UInt32
        @exclusivity(unchecked) var nodeMap: UInt32
        @exclusivity(unchecked) var entries: ContiguousArray<Entry>
        @exclusivity(unchecked) var children: ContiguousArray<Node>

        init(dataMap: UInt32 = 0, nodeMap: UInt32 = 0, entries: ContiguousArray<Entry> = [], children: ContiguousArray<Node> = []) {
            self.dataMap = dataMap; self.nodeMap = nodeMap; self.entries = entries; self.children = children
        }

        func copy() -> Node { Node(dataMap: dataMap, nodeMap: nodeMap, entries: entries, children: children) }
    }

    /// 13 levels of 5 bits use all 64 hash bits (the last level 4 of them).
    static var bucketShift: Int { 65 }

    var root = Node()
    public private(set) var count = 0

    public init() {}

    public var isEmpty: Bool { count == 0 }

    @inline(__always)
    static func bit(_ h: Int, _ shift: Int) -> UInt32 {
        UInt32(1) << UInt32(truncatingIfNeeded: (UInt(bitPattern: h) >> UInt(shift)) & 31)
    }

    /// The position of `bit`'s slot among the slots `map` marks.
    @inline(__always)
    static func rank(_ map: UInt32, _ bit: UInt32) -> Int { (map & (bit &- 1)).nonzeroBitCount }

    public subscript(key: Key) -> Value? {
        get {
            let h = key.hashValue
            var node = root, shift = 0
            while shift < Self.bucketShift {
                let bit = Self.bit(h, shift)
                if node.dataMap & bit != 0 {
                    let i = Self.rank(node.dataMap, bit)
                    return node.entries[i].hash == h && node.entries[i].key == key ? node.entries[i].value : nil
                }
                guard node.nodeMap & bit != 0 else { return nil }
                node = node.children[Self.rank(node.nodeMap, bit)]
                shift += 5
            }
            return node.entries.first { $0.key == key }?.value
        }
        set { update(key, newValue) }
        _modify {
            // A present key's value is copied out, changed and written back to the entry
            // found by one walk; an insertion or a removal goes through `update`.
            if let (node, i) = uniquePath(to: key, key.hashValue) {
                var value: Value? = node.entries[i].value
                defer { if let value { node.entries[i].value = value } else { update(key, nil) } }
                yield &value
            } else {
                var value: Value?
                defer { if let value { update(key, value) } }
                yield &value
            }
        }
    }

    /// The value of `key`, or `value()` inserted for it; a present value is changed in
    /// place in its entry.
    public subscript(key: Key, default value: @autoclosure () -> Value) -> Value {
        get { self[key] ?? value() }
        _modify {
            if let (node, i) = uniquePath(to: key, key.hashValue) {
                yield &node.entries[i].value
            } else {
                var v = value()
                defer { update(key, v) }
                yield &v
            }
        }
    }

    /// Walks to `key`'s entry, copying every shared node on the way so the entry can be
    /// changed in place: its node and position, or nil when the key is absent.
    mutating func uniquePath(to key: Key, _ h: Int) -> (Node, Int)? {
        if !isKnownUniquelyReferenced(&root) { root = root.copy() }
        var node = root, shift = 0
        while shift < Self.bucketShift {
            let bit = Self.bit(h, shift)
            if node.dataMap & bit != 0 {
                let i = Self.rank(node.dataMap, bit)
                return node.entries[i].hash == h && node.entries[i].key == key ? (node, i) : nil
            }
            guard node.nodeMap & bit != 0 else { return nil }
            let j = Self.rank(node.nodeMap, bit)
            if !isKnownUniquelyReferenced(&node.children[j]) { node.children[j] = node.children[j].copy() }
            node = node.children[j]
            shift += 5
        }
        return node.entries.firstIndex { $0.key == key }.map { (node, $0) }
    }

    /// Sets (or with nil removes) `key`, copying only shared nodes on its path.
    public mutating func update(_ key: Key, _ value: Value?) {
        var delta = 0
        Self.set(&root, key, key.hashValue, value, 0, &delta)
        count += delta
    }

    static func set(_ node: inout Node, _ key: Key, _ h: Int, _ value: Value?, _ shift: Int, _ delta: inout Int) {
        if !isKnownUniquelyReferenced(&node) { node = node.copy() }
        guard shift < bucketShift else {
            if let i = node.entries.firstIndex(where: { $0.key == key }) {
                if let value { node.entries[i].value = value } else { node.entries.remove(at: i); delta -= 1 }
            } else if let value {
                node.entries.append(Entry(key: key, value: value, hash: h)); delta += 1
            }
            return
        }
        let bit = Self.bit(h, shift)
        if node.dataMap & bit != 0 {
            let i = rank(node.dataMap, bit)
            if node.entries[i].hash == h && node.entries[i].key == key {
                if let value {
                    node.entries[i].value = value
                } else {
                    node.dataMap &= ~bit
                    node.entries.remove(at: i)
                    delta -= 1
                }
            } else if let value {
                // Two keys under one index: both move down into a new child.
                let old = node.entries.remove(at: i)
                node.dataMap &= ~bit
                node.nodeMap |= bit
                node.children.insert(pair(old, Entry(key: key, value: value, hash: h), shift + 5), at: rank(node.nodeMap, bit))
                delta += 1
            }
        } else if node.nodeMap & bit != 0 {
            let j = rank(node.nodeMap, bit)
            set(&node.children[j], key, h, value, shift + 5, &delta)
            // A child left with one entry and no children folds back up (recursively, so
            // a removal leaves no chain of single children), and an empty one goes.
            let child = node.children[j]
            guard child.children.isEmpty, child.entries.count <= 1 else { return }
            node.children.remove(at: j)
            node.nodeMap &= ~bit
            if let e = child.entries.first {
                node.dataMap |= bit
                node.entries.insert(e, at: rank(node.dataMap, bit))
            }
        } else if let value {
            node.dataMap |= bit
            node.entries.insert(Entry(key: key, value: value, hash: h), at: rank(node.dataMap, bit))
            delta += 1
        }
    }

    /// The node at `shift` holding two entries with different keys.
    static func pair(_ a: Entry, _ b: Entry, _ shift: Int) -> Node {
        guard shift < bucketShift else { return Node(entries: [a, b]) }
        let ba = bit(a.hash, shift), bb = bit(b.hash, shift)
        if ba == bb { return Node(nodeMap: ba, children: [pair(a, b, shift + 5)]) }
        return Node(dataMap: ba | bb, entries: ba < bb ? [a, b] : [b, a])
    }

    /// The keys whose values satisfy `isIncluded`, each value lent to it from its node's
    /// buffer: iterating builds a (key, value) pair for every entry. The derived indexes
    /// are recomputed with it when a snapshot is decoded, and checked with it in tests.
    public func keys(where isIncluded: (borrowing Value) throws -> Bool) rethrows -> [Key] {
        var out: [Key] = []
        var stack = [root]
        while let node = stack.popLast() {
            // Through the buffer: an array's subscript would copy each whole entry out.
            try node.entries.withUnsafeBufferPointer { p in
                for i in p.indices where try isIncluded(p[i].value) { out.append(p[i].key) }
            }
            stack.append(contentsOf: node.children)
        }
        return out
    }

    // MARK: Iteration

    public struct Iterator: IteratorProtocol {
        /// Each node on the way down, and how far into its entries, then children, we are.
        var stack: [(Node, Int)]

        public mutating func next() -> (key: Key, value: Value)? {
            while let (node, i) = stack.last {
                stack[stack.count - 1].1 = i + 1
                if i < node.entries.count { return (node.entries[i].key, node.entries[i].value) }
                let j = i - node.entries.count
                if j < node.children.count { stack.append((node.children[j], 0)) } else { stack.removeLast() }
            }
            return nil
        }
    }

    public func makeIterator() -> Iterator { Iterator(stack: [(root, 0)]) }
    public var underestimatedCount: Int { count }
}

extension PersistentMap: Equatable where Value: Equatable {
    public static func == (a: Self, b: Self) -> Bool {
        if a.root === b.root { return true }
        guard a.count == b.count else { return false }
        for (k, v) in a where b[k] != v { return false }
        return true
    }
}
