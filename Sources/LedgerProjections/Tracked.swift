import LedgerCore

/// A map that remembers which keys were written since the last `takeWritten()`, so the
/// state tree re-encodes only the leaves a block touched (issue 17). The folds use it as
/// a dictionary: reads, `[k] = v`, `[k, default: d] += x`, `removeValue`, iteration.
/// Every write goes through a subscript setter, `_modify` or a mutating method here, so
/// no write can be missed; a write that leaves the value as it was is recorded too,
/// which costs one re-encoding and never a wrong root. Its storage is a `PersistentMap`,
/// so a copy (a block's state forked from its parent's) costs what the block then
/// writes, not the size of the map. `==` compares the contents only.
public struct TrackedMap<Key: Hashable & Sendable, Value: Sendable>: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (key: Key, value: Value)

    public private(set) var contents = PersistentMap<Key, Value>()
    /// Appended on every write (cheaper than hashing into a set on the hot path);
    /// `takeWritten` dedupes.
    private(set) var written: [Key] = []

    public init() {}
    public init(_ dictionary: [Key: Value]) {
        for (k, v) in dictionary { contents[k] = v }
        written = Array(dictionary.keys)
    }
    public init(dictionaryLiteral elements: (Key, Value)...) {
        for (k, v) in elements { contents[k] = v; written.append(k) }
    }

    public func makeIterator() -> PersistentMap<Key, Value>.Iterator { contents.makeIterator() }
    public var underestimatedCount: Int { contents.count }
    public var count: Int { contents.count }
    public var isEmpty: Bool { contents.isEmpty }
    /// The keys and the values, in iteration order (arrays: O(n), as iterating is).
    public var keys: [Key] { contents.map(\.key) }
    public var values: [Value] { contents.map(\.value) }

    public subscript(key: Key) -> Value? {
        get { contents[key] }
        set { written.append(key); contents[key] = newValue }
        _modify {
            written.append(key)
            yield &contents[key]
        }
    }

    public subscript(key: Key, default value: @autoclosure () -> Value) -> Value {
        get { contents[key] ?? value() }
        _modify {
            written.append(key)
            yield &contents[key, default: value()]
        }
    }

    @discardableResult
    public mutating func removeValue(forKey key: Key) -> Value? {
        written.append(key)
        let old = contents[key]
        if old != nil { contents.update(key, nil) }
        return old
    }

    public func filter(_ isIncluded: (Element) throws -> Bool) rethrows -> [Key: Value] {
        var out: [Key: Value] = [:]
        for e in contents where try isIncluded(e) { out[e.key] = e.value }
        return out
    }

    /// The keys written since the last call, and forgets them.
    mutating func takeWritten() -> Set<Key> {
        defer { written.removeAll(keepingCapacity: true) }
        return Set(written)
    }
}

extension TrackedMap: Equatable where Value: Equatable {
    public static func == (a: Self, b: Self) -> Bool { a.contents == b.contents }
}

/// An array that remembers the elements appended or removed since the last
/// `takeWritten()` (slashes, delegator slashes, unbondings). Only `append` and
/// `removeAll(where:)` change it. `==` compares the contents only.
public struct TrackedList<Element: Sendable>: Sendable, RandomAccessCollection, ExpressibleByArrayLiteral {
    public private(set) var contents: [Element]
    private(set) var written: [Element] = []

    public init() { contents = [] }
    public init(_ contents: [Element]) { self.contents = contents; written = contents }
    public init(arrayLiteral elements: Element...) { self.init(elements) }

    public var startIndex: Int { contents.startIndex }
    public var endIndex: Int { contents.endIndex }
    public subscript(position: Int) -> Element { contents[position] }

    public mutating func append(_ e: Element) { written.append(e); contents.append(e) }

    /// Removes the elements matching `shouldRemove`, keeping the others in order, and
    /// returns the removed ones in their order.
    @discardableResult
    public mutating func removeAll(where shouldRemove: (Element) throws -> Bool) rethrows -> [Element] {
        var keep: [Element] = [], removed: [Element] = []
        for e in contents {
            if try shouldRemove(e) { removed.append(e) } else { keep.append(e) }
        }
        guard !removed.isEmpty else { return [] }
        contents = keep
        written += removed
        return removed
    }

    mutating func takeWritten() -> [Element] {
        defer { written.removeAll(keepingCapacity: true) }
        return written
    }
}

extension TrackedList: Equatable where Element: Equatable {
    public static func == (a: Self, b: Self) -> Bool { a.contents == b.contents }
}

/// A set that remembers the members inserted since the last `takeWritten()` (offences).
public struct TrackedSet<Element: Hashable & Sendable>: Sendable, Collection, ExpressibleByArrayLiteral {
    public typealias Index = Set<Element>.Index
    public private(set) var contents: Set<Element>
    private(set) var written: [Element] = []

    public init() { contents = [] }
    public init(arrayLiteral elements: Element...) { contents = Set(elements); written = elements }

    public var startIndex: Index { contents.startIndex }
    public var endIndex: Index { contents.endIndex }
    public func index(after i: Index) -> Index { contents.index(after: i) }
    public subscript(position: Index) -> Element { contents[position] }
    public var count: Int { contents.count }
    public func contains(_ e: Element) -> Bool { contents.contains(e) }

    @discardableResult
    public mutating func insert(_ e: Element) -> Bool {
        let (inserted, _) = contents.insert(e)
        if inserted { written.append(e) }
        return inserted
    }

    mutating func takeWritten() -> [Element] {
        defer { written.removeAll(keepingCapacity: true) }
        return written
    }
}

extension TrackedSet: Equatable {
    public static func == (a: Self, b: Self) -> Bool { a.contents == b.contents }
}
