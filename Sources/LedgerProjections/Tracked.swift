import LedgerCore

/// A dictionary that remembers which keys were written since the last `takeWritten()`,
/// so the state tree re-encodes only the leaves a block touched (issue 17). The folds
/// use it as a dictionary: reads, `[k] = v`, `[k, default: d] += x`, `removeValue`,
/// iteration. Every write goes through a subscript setter, `_modify` or a mutating
/// method here, so no write can be missed; a write that leaves the value as it was is
/// recorded too, which costs one re-encoding and never a wrong root. `==` compares the
/// contents only.
public struct TrackedMap<Key: Hashable & Sendable, Value: Sendable>: Sendable, Collection, ExpressibleByDictionaryLiteral {
    public typealias Element = Dictionary<Key, Value>.Element
    public typealias Index = Dictionary<Key, Value>.Index

    public private(set) var contents: [Key: Value]
    private(set) var written: Set<Key> = []

    public init() { contents = [:] }
    public init(_ contents: [Key: Value]) { self.contents = contents; written = Set(contents.keys) }
    public init(dictionaryLiteral elements: (Key, Value)...) {
        contents = Dictionary(elements, uniquingKeysWith: { $1 }); written = Set(contents.keys)
    }

    public var startIndex: Index { contents.startIndex }
    public var endIndex: Index { contents.endIndex }
    public func index(after i: Index) -> Index { contents.index(after: i) }
    public subscript(position: Index) -> Element { contents[position] }
    public var count: Int { contents.count }
    public var isEmpty: Bool { contents.isEmpty }
    public var keys: Dictionary<Key, Value>.Keys { contents.keys }
    public var values: Dictionary<Key, Value>.Values { contents.values }

    public subscript(key: Key) -> Value? {
        get { contents[key] }
        set { written.insert(key); contents[key] = newValue }
        _modify { written.insert(key); yield &contents[key] }
    }

    public subscript(key: Key, default value: @autoclosure () -> Value) -> Value {
        get { contents[key, default: value()] }
        _modify { written.insert(key); yield &contents[key, default: value()] }
    }

    @discardableResult
    public mutating func removeValue(forKey key: Key) -> Value? {
        written.insert(key)
        return contents.removeValue(forKey: key)
    }

    public func filter(_ isIncluded: (Element) throws -> Bool) rethrows -> [Key: Value] { try contents.filter(isIncluded) }

    /// The keys written since the last call, and forgets them.
    mutating func takeWritten() -> Set<Key> {
        defer { written.removeAll(keepingCapacity: true) }
        return written
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
