import LedgerCore
@testable import LedgerProjections
import Testing

/// The persistent map against a dictionary: random inserts, updates and deletes agree,
/// a copy never sees writes made after it, and keys whose hashes collide in part or in
/// full are kept apart.
@Suite struct PersistentMapTests {
    /// A key whose hash is chosen: `hash` collides on purpose.
    struct K: Hashable, Sendable {
        var id: Int
        var hash: Int
        func hash(into h: inout Hasher) { h.combine(hash) }
        static func == (a: K, b: K) -> Bool { a.id == b.id }
    }

    func agree<Key, V: Equatable>(_ m: PersistentMap<Key, V>, _ d: [Key: V]) -> Bool {
        guard m.count == d.count else { return false }
        var seen = 0
        for (k, v) in m { guard d[k] == v else { return false }; seen += 1 }
        return seen == d.count && d.allSatisfy { m[$0.key] == $0.value }
    }

    @Test(arguments: [0, 4, 64])
    func randomOperationsAgreeWithADictionary(hashSpace: Int) {
        var rng = SplitMix64(seed: UInt64(hashSpace) + 1)
        var m = PersistentMap<K, UInt64>(), d: [K: UInt64] = [:]
        var snapshots: [(PersistentMap<K, UInt64>, [K: UInt64])] = []
        for step in 0 ..< 6_000 {
            let id = Int(rng.next() % 700)
            // hashSpace 0: natural hashes; small: many keys share a full hash.
            let k = K(id: id, hash: hashSpace == 0 ? id : id % hashSpace)
            switch rng.next() % 4 {
            case 0: m[k] = nil; d[k] = nil
            case 1:
                // Changed in place (`_modify`), or inserted through the optional.
                if d[k] != nil { m[k]! &+= 1; d[k]! &+= 1 } else { m[k] = 1; d[k] = 1 }
            case 2:
                // Changed in place in its entry, or inserted with the default.
                m[k, default: 5] &+= 3; d[k, default: 5] &+= 3
            default: let v = rng.next(); m[k] = v; d[k] = v
            }
            if step % 500 == 0 { snapshots.append((m, d)) }
        }
        #expect(agree(m, d))
        for (old, expected) in snapshots { #expect(agree(old, expected), "a copy changed after later writes") }
        for (k, _) in d { m[k] = nil }
        var it = m.makeIterator()
        #expect(m.isEmpty && it.next() == nil)
    }

    @Test func aTrackedMapRecordsWritesAndComparesByContents() {
        var a = TrackedMap<Bytes32, UInt64>()
        let k1 = Bytes32(w0: 1, w1: 0, w2: 0, w3: 0), k2 = Bytes32(w0: 2, w1: 0, w2: 0, w3: 0)
        a[k1] = 5
        a[k2, default: 0] += 7
        let b = a
        a[k1]! += 1
        #expect(b[k1] == 5 && a[k1] == 6 && b != a)
        #expect(a.removeValue(forKey: k2) == 7 && a.count == 1)
        #expect(a.takeWritten() == [k1, k2] && a.takeWritten().isEmpty)
        var c = TrackedMap<Bytes32, UInt64>()
        c[k1] = 6
        #expect(c == a, "equal contents, different written sets")
    }
}
