import LedgerCore
import LedgerTree

/// How a chain commits to its state (schemas/FORMAT.md §7.2), fixed by its genesis:
/// the flat rule hashes the whole canonical encoding every block; the tree rule keeps a
/// sparse Merkle tree of one leaf per entity and rehashes only what a block touched.
public enum StateCommitment: UInt8, Sendable, CustomStringConvertible {
    case flat = 1
    case tree = 2
    public var description: String { self == .flat ? "flat" : "tree" }
}

/// The tree a tree-rule state carries. Derived data: two states with equal entities are
/// equal whatever their trees hold, so `==` ignores it.
struct TreeCache: Sendable, Equatable {
    var tree: StateTree?
    static func == (_: Self, _: Self) -> Bool { true }
}

/// The leaves each seal folded in, kept only while `recordsSealedLeaves` is on (the
/// PostgreSQL sink rewrites only the rows a block changed). Not state: `==` ignores it.
struct SealRecord: Sendable, Equatable {
    var on = false
    var leaves: [StateLeaf] = []
    static func == (_: Self, _: Self) -> Bool { true }
}

/// The primitives a state hashes and verifies with, handed in by whoever made it
/// (LedgerCrypto's `Sodium`), and the tree rules over them. Not state: `==` ignores it.
struct CryptoRef: Sendable, Equatable {
    let primitives: any Primitives
    let rules: TreeRules
    init(_ p: any Primitives) { primitives = p; rules = TreeRules(p) }
    static func == (_: Self, _: Self) -> Bool { true }
}

extension LedgerState {
    /// The primitives this state was made with.
    public var crypto: any Primitives { cryptoRef.primitives }
    /// The state tree's rules over `crypto`.
    public var treeRules: TreeRules { cryptoRef.rules }

    /// The state root: BLAKE2b-256 of the canonical bytes (flat rule), or the tree's root
    /// with everything written so far folded in (tree rule; the state is not changed, so
    /// a caller that keeps the state should `sealRoot()` instead).
    public func stateRoot() -> Hash32 {
        switch commitment {
        case .flat: return crypto.hash(canonicalBytes())
        case .tree:
            var s = self
            // The copy records nothing: appending to a shared record would copy it whole.
            s.sealRecord = SealRecord()
            return s.sealRoot()
        }
    }

    /// The state root, folding the leaves written since the last seal into the tree
    /// (O(written × log N)). Under the flat rule it forgets what was written and hashes
    /// the canonical bytes.
    public mutating func sealRoot() -> Hash32 {
        seal()
        return treeCache.tree?.root ?? crypto.hash(canonicalBytes())
    }

    /// Folds what was written since the last call into the tree (tree rule), or forgets
    /// it (flat rule): O(written × log N), except the first call on a state, which builds
    /// the tree from every leaf (a genesis, a decoded snapshot).
    public mutating func seal() {
        guard commitment == .tree else {
            if sealRecord.on { sealRecord.leaves += takeLeafChanges().map(\.leaf) } else { discardWritten() }
            return
        }
        guard var tree = treeCache.tree else {
            discardWritten()
            treeCache.tree = buildTree()
            return
        }
        // Taken out of the cache while it changes, so that the tree's nodes are held
        // once and updated in place (a copy of this state that shares them keeps them).
        treeCache.tree = nil
        let rules = treeRules
        var batch: [(key: Hash32, valueHash: Hash32?)] = []
        for c in takeLeafChanges() {
            if sealRecord.on { sealRecord.leaves.append(c.leaf) }
            let k = rules.key(kind: c.leaf.kind.rawValue, id: c.leaf.id)
            // Unchanged leaves (the scalars most blocks, a write of the same value) cost the
            // tree a walk, not a path of hashes.
            batch.append((k, c.value.map(rules.valueHash)))
        }
        tree.apply(batch)
        treeCache.tree = tree
    }

    /// Whether each seal records the leaves it folded in (`sealedLeaves`). Off by
    /// default: only a reader that rewrites what changed (the PostgreSQL sink) pays for it.
    public var recordsSealedLeaves: Bool {
        get { sealRecord.on }
        set { sealRecord.on = newValue; if !newValue { sealRecord.leaves = [] } }
    }

    /// The leaves the seals since the last `takeSealedLeaves()` folded in, in seal order
    /// (a leaf written in two blocks appears twice; the three scalar leaves every seal).
    public var sealedLeaves: [StateLeaf] { sealRecord.leaves }

    public mutating func takeSealedLeaves() -> [StateLeaf] {
        defer { sealRecord.leaves.removeAll(keepingCapacity: true) }
        return sealRecord.leaves
    }

    /// The tree of this state built from scratch (the oracle for the incremental one).
    public func buildTree() -> StateTree {
        let rules = treeRules
        var t = StateTree(rules: rules)
        t.apply(allLeaves().map { (rules.key(kind: $0.leaf.kind.rawValue, id: $0.leaf.id), rules.valueHash($0.value)) })
        return t
    }

    /// The tree as of the last seal (nil under the flat rule, or before the first seal).
    public var sealedTree: StateTree? { treeCache.tree }

    /// `H("CHAOSLEDGER/POWER\0" | u32 n | n × (32 key | u64 power))`, keys ascending: what
    /// a version 2 header commits for the power that certifies the next block.
    public static func powerHash(_ power: [PublicKey: UInt64], _ h: some Hashing) -> Hash32 {
        var w = ByteWriter(capacity: 24 + power.count * 40)
        w.raw(Array("CHAOSLEDGER/POWER\0".utf8))
        Entry.power(&w, power)
        return h.hash(w.bytes)
    }

    /// The power a log stores with the block that left this state (`BlockCommit.nextPower`):
    /// at an epoch end of a tree-committed chain, the power of the next epoch, keys
    /// ascending; nil otherwise. Light clients read power changes from these after the
    /// state of that height is pruned.
    public func storedNextPower() -> [(key: PublicKey, power: UInt64)]? {
        guard commitment == .tree, height.value > 0, height.value % parameters.checkpointInterval == 0 else { return nil }
        return powerForNextBlock().sorted { $0.key < $1.key }.map { (key: $0.key, power: $0.value) }
    }

    /// What a version 2 header of the block that left this state says (nil under the
    /// flat rule, whose headers are version 1). Seals the tree.
    public mutating func postState() -> BlockHeader.PostState? {
        guard commitment == .tree else { return nil }
        return BlockHeader.PostState(stateRoot: sealRoot(), nextPowerHash: Self.powerHash(powerForNextBlock(), crypto))
    }

    /// Checks, after a block's events, that its header is of this chain's version and,
    /// for version 2, that its state root and next power hash are this state's.
    /// With `roots: false` only the version is checked.
    public mutating func checkPostState(_ header: BlockHeader, roots: Bool = true) throws(BlockError) {
        let expected = commitment == .tree ? BlockHeader.postStateVersion : BlockHeader.formatVersion
        guard header.version == expected else { throw .wrongHeaderVersion(header.version, expected: expected) }
        guard roots, let claimed = header.post, let mine = postState() else { return }
        guard claimed.stateRoot == mine.stateRoot else { throw .stateRootMismatch(header: claimed.stateRoot, folded: mine.stateRoot) }
        guard claimed.nextPowerHash == mine.nextPowerHash else {
            throw .nextPowerMismatch(header: claimed.nextPowerHash, folded: mine.nextPowerHash)
        }
    }
}
