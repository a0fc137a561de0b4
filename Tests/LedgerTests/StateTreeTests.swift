import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerTree
import Testing

/// The state commitment's reference tree (issue 17, step 1): its shape, that the root
/// depends only on the set of leaves, and that every proof verifies and every tampered
/// one does not.
@Suite struct StateTreeTests {
    let rules = TreeRules(Sodium())

    /// A key with the given leading bits, the rest from `fill`.
    func key(bits: String, fill: UInt64) -> Hash32 {
        var k = Hash32(w0: 0, w1: fill, w2: fill &* 31, w3: fill &* 131)
        for (i, c) in bits.enumerated() where c == "1" { k.w0 |= 1 << UInt64(63 - i) }
        return k
    }

    @Test func emptyAndOneLeaf() {
        var t = SparseMerkleTree(rules: rules)
        #expect(t.root == .zero, "the empty tree's root is E")
        let k = rules.key(kind: 3, id: Array(repeating: 7, count: 32))
        let p0 = t.proof(k)
        #expect(p0.end == .empty && p0.siblings.isEmpty && p0.verify(key: k, valueHash: nil, root: .zero, rules: rules))
        let vh = rules.valueHash([1, 2, 3])
        t.set(k, valueHash: vh)
        #expect(t.root == rules.leaf(k, vh), "one leaf is the root itself")
        // The bytes hashed, spelled out (schemas will carry the same).
        #expect(k == Blake2b.hash(Array("CHAOSLEDGER/STATE-KEY\0".utf8) + [3] + Array(repeating: 7, count: 32)))
        #expect(vh == Blake2b.hash(Array("CHAOSLEDGER/STATE-VALUE\0".utf8) + [1, 2, 3]))
        #expect(rules.leaf(k, vh) == Blake2b.hash(Array("CHAOSLEDGER/STATE-LEAF\0".utf8) + k.bytes + vh.bytes))
        #expect(rules.node(k, vh) == Blake2b.hash(Array("CHAOSLEDGER/STATE-NODE\0".utf8) + k.bytes + vh.bytes))
        #expect(t.proof(k).verify(key: k, valueHash: vh, root: t.root, rules: rules))
        t.set(k, valueHash: nil)
        #expect(t.root == .zero, "deleting the last leaf gives E back")
    }

    /// Two leaves sharing exactly 3 leading bits sit at depth 4, under three nodes whose
    /// other child is empty: the shape every implementation must reproduce.
    @Test func twoLeavesSharingThreeBits() {
        var t = SparseMerkleTree(rules: rules)
        let a = key(bits: "0000", fill: 1), b = key(bits: "0001", fill: 2)
        let va = rules.valueHash(Array("a".utf8)), vb = rules.valueHash(Array("b".utf8))
        t.set(a, valueHash: va)
        t.set(b, valueHash: vb)
        let e = TreeRules.empty
        let expected = rules.node(rules.node(rules.node(rules.node(rules.leaf(a, va), rules.leaf(b, vb)), e), e), e)
        #expect(t.root == expected)
        let p = t.proof(a)
        #expect(p.siblings == [rules.leaf(b, vb), e, e, e])
        // An absent key below them: its place at depth 4 is held by `a` alone.
        let c = key(bits: "00001", fill: 3)
        let pc = t.proof(c)
        #expect(pc.end == .otherLeaf(key: a, valueHash: va))
        #expect(pc.verify(key: c, valueHash: nil, root: t.root, rules: rules))
        // An absent key on the other side of the root: an empty subtree at depth 1.
        let d = key(bits: "1", fill: 4)
        #expect(t.proof(d).end == .empty && t.proof(d).siblings.count == 1)
        #expect(t.proof(d).verify(key: d, valueHash: nil, root: t.root, rules: rules))
    }

    @Test func theRootDependsOnlyOnTheSetOfLeaves() {
        var rng = SplitMix64(seed: 17)
        let entries = (0 ..< 300).map { i in (rules.key(kind: 3, id: (0 ..< 32).map { _ in UInt8(truncatingIfNeeded: rng.next()) }), rules.valueHash([UInt8(i % 256)])) }
        var a = SparseMerkleTree(rules: rules), b = SparseMerkleTree(rules: rules)
        for (k, v) in entries { a.set(k, valueHash: v) }
        for (k, v) in entries.reversed() { b.set(k, valueHash: v) }
        #expect(a.root == b.root)
        let before = a.root
        let extra = rules.key(kind: 4, id: [9])
        a.set(extra, valueHash: rules.valueHash([9]))
        #expect(a.root != before)
        a.set(extra, valueHash: nil)
        #expect(a.root == before, "a delete collapses the tree back to the same root")
        a.set(entries[0].0, valueHash: rules.valueHash([0xFF]))
        #expect(a.root != before, "changing one value changes the root")
    }

    @Test func everyProofVerifiesAndEveryTamperedOneFails() {
        var rng = SplitMix64(seed: 42)
        func random() -> Hash32 { Hash32(w0: rng.next(), w1: rng.next(), w2: rng.next(), w3: rng.next()) }
        var t = SparseMerkleTree(rules: rules)
        var present: [(Hash32, Hash32)] = []
        for _ in 0 ..< 200 {
            let k = random(), v = rules.valueHash(random().bytes)
            t.set(k, valueHash: v)
            present.append((k, v))
        }
        let root = t.root
        for (k, v) in present {
            let p = t.proof(k)
            #expect(p.verify(key: k, valueHash: v, root: root, rules: rules))
            #expect(!p.verify(key: k, valueHash: nil, root: root, rules: rules), "a present key is not absent")
            #expect(!p.verify(key: k, valueHash: rules.valueHash([0]), root: root, rules: rules), "nor holds another value")
            var flipped = p
            flipped.siblings[0].w3 ^= 1
            #expect(!flipped.verify(key: k, valueHash: v, root: root, rules: rules), "a changed sibling")
            var short = p
            short.siblings.removeLast()
            #expect(!short.verify(key: k, valueHash: v, root: root, rules: rules), "a missing sibling")
        }
        var kinds = Set<String>()
        for _ in 0 ..< 200 {
            let k = random()
            let p = t.proof(k)
            #expect(p.verify(key: k, valueHash: nil, root: root, rules: rules))
            #expect(!p.verify(key: k, valueHash: nil, root: rules.node(root, root), rules: rules), "another root")
            switch p.end {
            case .empty: kinds.insert("empty")
            case let .otherLeaf(other, vh):
                kinds.insert("other")
                // The neighbour's proof cannot be passed off as the absent key's own
                // inclusion, nor a neighbour further up the path as its place holder.
                #expect(!TreeProof(end: .value(vh), siblings: p.siblings).verify(key: k, valueHash: vh, root: root, rules: rules))
                // A place holder must share every bit above the place: one claimed deeper
                // than the keys' common prefix is malformed whatever the siblings.
                let tooDeep = TreeProof(end: .otherLeaf(key: other, valueHash: vh),
                                        siblings: Array(repeating: .zero, count: TreeRules.commonPrefix(k, other) + 1))
                #expect(tooDeep.root(for: k, rules: rules) == nil)
            case .value: Issue.record("a random key was found present")
            }
        }
        #expect(kinds == ["empty", "other"], "both kinds of absence occur")
    }
}

/// The incremental tree against the reference, batch after batch of inserts, changes
/// and deletes; older versions stay as they were.
@Suite struct IncrementalStateTreeTests {
    let rules = TreeRules(Sodium())

    @Test func batchesAgreeWithTheReferenceAndOldVersionsStay() {
        var rng = SplitMix64(seed: 99)
        func random() -> Hash32 { Hash32(w0: rng.next(), w1: rng.next(), w2: rng.next(), w3: rng.next()) }
        var reference = SparseMerkleTree(rules: rules)
        var tree = StateTree(rules: rules)
        var keys: [Hash32] = []
        var versions: [(StateTree, Hash32)] = []
        for round in 0 ..< 40 {
            var batch: [(key: Hash32, valueHash: Hash32?)] = []
            for _ in 0 ..< Int(rng.next() % 40) {
                let roll = rng.next() % 10
                if roll < 5 || keys.isEmpty {
                    let k = random()
                    keys.append(k)
                    batch.append((k, rules.valueHash(k.bytes)))
                } else if roll < 8 {
                    batch.append((keys[Int(rng.next() % UInt64(keys.count))], rules.valueHash([UInt8(round)])))
                } else {
                    let i = Int(rng.next() % UInt64(keys.count))
                    batch.append((keys[i], nil))
                    keys.remove(at: i)
                }
            }
            // A key written twice in one batch: the last write counts.
            if let k = keys.last { batch.append((k, rules.valueHash([0xAA]))); batch.append((k, rules.valueHash([0xBB]))) }
            tree.apply(batch)
            var last: [Hash32: Hash32?] = [:]
            for c in batch { last.updateValue(c.valueHash, forKey: c.key) }
            for (k, v) in last { reference.set(k, valueHash: v) }
            #expect(tree.root == reference.root, "round \(round)")
            #expect(tree.count == reference.leaves.count)
            versions.append((tree, tree.root))
        }
        for (t, r) in versions { #expect(t.root == r, "an old version keeps its root") }
        // Proofs from the incremental tree are the reference's.
        for k in keys.prefix(50) + (0 ..< 50).map({ _ in random() }) {
            let p = tree.proof(k)
            #expect(p == reference.proof(k))
            #expect(p.verify(key: k, valueHash: tree.valueHash(k), root: tree.root, rules: rules))
        }
        // Deleting everything gives the empty root.
        tree.apply(keys.map { ($0, nil) })
        #expect(tree.root == .zero && tree.count == 0)
    }

    /// A tree that no other version holds is updated in place; one that an older version
    /// still holds is copied along the paths it changes. Versions kept now and then, while
    /// the tree in between is updated in place, must keep every leaf and every proof: a
    /// node changed in place under a kept version would leave that version's proofs
    /// pointing at hashes its root does not commit to. Writes of the value a leaf already
    /// has, and deletes of absent keys, leave the root as it was.
    @Test func inPlaceUpdatesLeaveKeptVersionsWhole() {
        var rng = SplitMix64(seed: 7)
        func random() -> Hash32 { Hash32(w0: rng.next(), w1: rng.next(), w2: rng.next(), w3: rng.next()) }
        var tree = StateTree(rules: rules)
        var current: [Hash32: Hash32] = [:]
        var kept: [(tree: StateTree, root: Hash32, leaves: [Hash32: Hash32])] = []
        for round in 0 ..< 60 {
            var batch: [(key: Hash32, valueHash: Hash32?)] = []
            for _ in 0 ..< 1 + Int(rng.next() % 30) {
                let roll = rng.next() % 10
                if roll < 4 || current.isEmpty {
                    let k = random()
                    batch.append((k, rules.valueHash(k.bytes)))
                } else {
                    let k = current.keys.sorted()[Int(rng.next() % UInt64(current.count))]
                    // Updates, deletes, and writes of the value the leaf already has.
                    batch.append((k, roll < 7 ? rules.valueHash([UInt8(round), UInt8(roll)]) : roll < 9 ? nil : current[k]))
                }
            }
            // A delete of a key that was never there changes nothing.
            batch.append((random(), nil))
            tree.apply(batch)
            for c in batch { current[c.key] = c.valueHash }
            var reference = SparseMerkleTree(rules: rules)
            for (k, v) in current { reference.set(k, valueHash: v) }
            #expect(tree.root == reference.root, "round \(round)")
            if round % 7 == 0 { kept.append((tree, tree.root, current)) }
        }
        #expect(kept.count > 5)
        for (n, v) in kept.enumerated() {
            var reference = SparseMerkleTree(rules: rules)
            for (k, x) in v.leaves { reference.set(k, valueHash: x) }
            #expect(v.tree.root == v.root && reference.root == v.root, "kept version \(n)")
            #expect(v.tree.count == v.leaves.count)
            for (k, x) in v.leaves {
                #expect(v.tree.valueHash(k) == x)
                #expect(v.tree.proof(k).verify(key: k, valueHash: x, root: v.root, rules: rules), "kept version \(n)")
            }
        }
    }
}
