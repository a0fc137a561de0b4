import LedgerCore
import LedgerCrypto
import LedgerTree
import Testing

/// State-sync chunks (issue 18, step 4): every chunk of every depth verifies against the
/// root on its own, the chunks of one depth partition the leaves, and every alteration a
/// lying peer could make is refused.
@Suite struct TreeChunkTests {
    let rules = TreeRules(Sodium())

    func tree(_ n: Int, seed: UInt64) -> (StateTree, [(key: Hash32, valueHash: Hash32)]) {
        var rng = SplitMix64(seed: seed)
        var leaves: [(key: Hash32, valueHash: Hash32)] = []
        for _ in 0 ..< n {
            leaves.append((Hash32(w0: rng.next(), w1: rng.next(), w2: rng.next(), w3: rng.next()), rules.valueHash([UInt8(truncatingIfNeeded: rng.next())])))
        }
        leaves.sort { $0.key < $1.key }
        var t = StateTree(rules: rules)
        t.apply(leaves.map { ($0.key, $0.valueHash) })
        return (t, leaves)
    }

    @Test(arguments: [0, 1, 2, 3, 17, 300])
    func everyChunkVerifiesAndTheyPartitionTheLeaves(n: Int) {
        let (t, leaves) = tree(n, seed: UInt64(n) + 7)
        for depth in [0, 1, 2, 3, 6, 10] {
            var seen: [Hash32] = []
            for i in 0 ..< (UInt32(1) << UInt32(depth)) {
                let c = t.chunk(depth: depth, index: i)
                #expect(c.malformed() == nil)
                #expect(c.verify(root: t.root, rules), "chunk \(i) of depth \(depth) over \(n) leaves")
                seen += c.leaves.map(\.key)
            }
            #expect(seen == leaves.map(\.key), "the chunks of depth \(depth) hold every leaf once, in key order")
        }
    }

    /// Two leaves deep in one subtree: chunks beside them see a `.node`, chunks on the
    /// other side of their split see the lone leaf float up past empty siblings.
    @Test func collapsedLeavesFloatUpInTheProof() {
        var t = StateTree(rules: rules)
        let a = Hash32(w0: 0b0001 << 60, w1: 1, w2: 0, w3: 0), b = Hash32(w0: 0b1111 << 60, w1: 2, w2: 0, w3: 0)
        t.apply([(a, rules.valueHash([1])), (b, rules.valueHash([2]))])
        for i in UInt32(0) ..< 16 {
            let c = t.chunk(depth: 4, index: i)
            #expect(c.verify(root: t.root, rules))
            #expect(c.leaves.count == (i == 1 || i == 15 ? 1 : 0))
        }
        #expect(t.chunk(depth: 4, index: 3).siblings == [.leaf(key: b, valueHash: rules.valueHash([2])), .empty, .leaf(key: a, valueHash: rules.valueHash([1])), .empty])
    }

    @Test func everyAlterationIsRefused() {
        let (t, _) = tree(200, seed: 99)
        let root = t.root
        let good = t.chunk(depth: 3, index: 5)
        #expect(good.verify(root: root, rules) && good.leaves.count > 2)
        var tampered: [(String, TreeChunk)] = []
        var c = good; c.leaves.removeLast(); tampered.append(("a leaf dropped", c))
        c = good; c.leaves[1].valueHash = rules.valueHash([0xFF]); tampered.append(("a value changed", c))
        c = good; c.leaves.append((Hash32(w0: good.leaves.last!.key.w0 + 1, w1: 0, w2: 0, w3: 0), rules.valueHash([1]))); tampered.append(("a leaf added", c))
        c = good; c.leaves.swapAt(0, 1); tampered.append(("leaves reordered", c))
        c = good; c.index = 4; tampered.append(("another index", c))
        c = good; c.siblings[2] = .node(rules.valueHash([9])); tampered.append(("a sibling changed", c))
        c = good; c.siblings[1] = .empty; tampered.append(("a sibling emptied", c))
        c = good; c.siblings.removeLast(); tampered.append(("a sibling missing", c))
        c = good; c.depth = 21; tampered.append(("too deep", c))
        let leafy = t.chunk(depth: 7, index: 77)
        if case let .node(h) = leafy.siblings[6] {
            c = leafy; c.siblings[6] = .leaf(key: Hash32(w0: 0, w1: 0, w2: 0, w3: 0), valueHash: h); tampered.append(("a node passed off as a leaf", c))
        }
        for (why, x) in tampered { #expect(!x.verify(root: root, rules), "\(why) must not verify") }
        #expect(!good.verify(root: rules.valueHash([1]), rules), "another root")
    }
}
