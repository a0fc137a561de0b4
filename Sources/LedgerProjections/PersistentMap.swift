/// A persistent hash map (a hash array mapped trie, as Clojure's and Scala's): a copy
/// costs one reference, and a write to a copy copies only the nodes on the key's path
/// (about log32 n of them), never the whole map. A block's state is its parent's state
/// plus the block's writes; with a dictionary the first write to the copy copied every
/// account (40 ms at a million), with this the copy costs what the block writes. A node
/// referenced once is changed in place, so a fold that owns its state pays no copying.
///
/// Iteration order follows the process's hash seed, as a dictionary's does: everything
/// hashed or signed sorts first.
public struct PersistentMap<Key: Hashable & Sendable, Value: Sendable>: Sendable, Sequence {
    enum Slot {
        case entry(Key, Value, Int)
        case child(Node)
        /// Keys whose 64 hash bits are all equal.
        case collision([(Key, Value)], Int)
    }

    final class Node: @unchecked Sendable {
        var bitmap: UInt32
        var slots: [Slot]
        init(bitmap: UInt32 = 0, slots: [Slot] = []) { self.bitmap = bitmap; self.slots = slots }
        func copy() -> Node { Node(bitmap: bitmap, slots: slots) }
    }

    var root = Node()
    public private(set) var count = 0

    public init() {}

    public var isEmpty: Bool { count == 0 }

    @inline(__always)
    static func index(_ h: Int, _ shift: Int) -> UInt32 { UInt32(truncatingIfNeeded: (UInt(bitPattern: h) >> UInt(shift)) & 31) }

    public subscript(key: Key) -> Value? {
        get {
            let h = key.hashValue
            var node = root, shift = 0
            while true {
                let bit = UInt32(1) << Self.index(h, shift)
                guard node.bitmap & bit != 0 else { return nil }
                switch node.slots[(node.bitmap & (bit &- 1)).nonzeroBitCount] {
                case let .entry(k, v, _): return k == key ? v : nil
                case let .child(c): node = c; shift += 5
                case let .collision(list, ch): return ch == h ? list.first { $0.0 == key }?.1 : nil
                }
            }
        }
        set { update(key, newValue) }
        _modify {
            // One walk down the key's path, copying shared nodes. A present key's value is
            // taken out of its slot (so it alone holds its storage while it changes) and
            // put back; an insertion or a removal goes through `update`.
            let h = key.hashValue
            if !isKnownUniquelyReferenced(&root) { root = root.copy() }
            var node = root, shift = 0
            var found: (Node, Int, Value)?
            walk: while true {
                let bit = UInt32(1) << Self.index(h, shift)
                guard node.bitmap & bit != 0 else { break }
                let pos = (node.bitmap & (bit &- 1)).nonzeroBitCount
                switch node.slots[pos] {
                case let .entry(k, v, _):
                    if k == key { node.slots[pos] = .collision([], 0); found = (node, pos, v) }
                    break walk
                case var .child(c):
                    node.slots[pos] = .collision([], 0)
                    if !isKnownUniquelyReferenced(&c) { c = c.copy() }
                    node.slots[pos] = .child(c)
                    node = c; shift += 5
                case .collision:
                    break walk
                }
            }
            if let (n, pos, v) = found {
                var value: Value? = v
                found = nil
                defer {
                    if let value { n.slots[pos] = .entry(key, value, h) } else { n.slots[pos] = .entry(key, v, h); update(key, nil) }
                }
                yield &value
            } else {
                var value = self[key]
                let before = value != nil
                defer { if value != nil || before { update(key, value) } }
                yield &value
            }
        }
    }

    /// Sets (or with nil removes) `key`, copying only shared nodes on its path.
    public mutating func update(_ key: Key, _ value: Value?) {
        var delta = 0
        Self.set(&root, key, key.hashValue, value, 0, &delta)
        count += delta
    }

    static func set(_ node: inout Node, _ key: Key, _ h: Int, _ value: Value?, _ shift: Int, _ delta: inout Int) {
        let bit = UInt32(1) << index(h, shift)
        let pos = (node.bitmap & (bit &- 1)).nonzeroBitCount
        guard node.bitmap & bit != 0 else {
            guard let value else { return }
            if !isKnownUniquelyReferenced(&node) { node = node.copy() }
            node.bitmap |= bit
            node.slots.insert(.entry(key, value, h), at: pos)
            delta += 1
            return
        }
        if !isKnownUniquelyReferenced(&node) { node = node.copy() }
        switch node.slots[pos] {
        case let .entry(k, v, kh):
            if k == key {
                if let value { node.slots[pos] = .entry(key, value, h) } else { remove(node, bit, pos); delta -= 1 }
            } else if let value {
                node.slots[pos] = .child(pair((k, v, kh), (key, value, h), shift + 5))
                delta += 1
            }
        case var .child(c):
            node.slots[pos] = .collision([], 0)  // drop this reference so the child can be unique
            set(&c, key, h, value, shift + 5, &delta)
            if c.slots.isEmpty {
                remove(node, bit, pos)
            } else if c.slots.count == 1, case let .entry(k, v, kh) = c.slots[0] {
                node.slots[pos] = .entry(k, v, kh)
            } else {
                node.slots[pos] = .child(c)
            }
        case var .collision(list, ch):
            if ch == h {
                if let i = list.firstIndex(where: { $0.0 == key }) {
                    if let value { list[i].1 = value } else { list.remove(at: i); delta -= 1 }
                } else if let value {
                    list.append((key, value)); delta += 1
                }
                if list.isEmpty { remove(node, bit, pos) }
                else if list.count == 1 { node.slots[pos] = .entry(list[0].0, list[0].1, ch) }
                else { node.slots[pos] = .collision(list, ch) }
            } else if let value {
                // A different hash under this prefix: the collision moves down beside the new key.
                let n = Node(bitmap: UInt32(1) << index(ch, shift + 5), slots: [.collision(list, ch)])
                var child = n
                set(&child, key, h, value, shift + 5, &delta)
                node.slots[pos] = .child(child)
            }
        }
    }

    static func remove(_ node: Node, _ bit: UInt32, _ pos: Int) {
        node.bitmap &= ~bit
        node.slots.remove(at: pos)
    }

    /// The node at `shift` holding two entries with different keys.
    static func pair(_ a: (Key, Value, Int), _ b: (Key, Value, Int), _ shift: Int) -> Node {
        if a.2 == b.2 {
            return Node(bitmap: UInt32(1) << index(a.2, shift), slots: [.collision([(a.0, a.1), (b.0, b.1)], a.2)])
        }
        let ia = index(a.2, shift), ib = index(b.2, shift)
        if ia == ib { return Node(bitmap: UInt32(1) << ia, slots: [.child(pair(a, b, shift + 5))]) }
        let sa = Slot.entry(a.0, a.1, a.2), sb = Slot.entry(b.0, b.1, b.2)
        return Node(bitmap: (UInt32(1) << ia) | (UInt32(1) << ib), slots: ia < ib ? [sa, sb] : [sb, sa])
    }

    // MARK: Iteration

    public struct Iterator: IteratorProtocol {
        var stack: [(Node, Int)]
        var pending: ArraySlice<(Key, Value)> = []

        public mutating func next() -> (key: Key, value: Value)? {
            while true {
                if let p = pending.popFirst() { return (p.0, p.1) }
                guard let (node, i) = stack.last else { return nil }
                guard i < node.slots.count else { stack.removeLast(); continue }
                stack[stack.count - 1].1 = i + 1
                switch node.slots[i] {
                case let .entry(k, v, _): return (k, v)
                case let .child(c): stack.append((c, 0))
                case let .collision(list, _): pending = list[...]
                }
            }
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
