import LedgerCore
import LedgerTree

/// A proof that a leaf holds a value, or is absent, in the state after block `height`
/// (schemas/FORMAT.md §14.1):
///
///     u16 version (1) | u8 kind | blob16 id | u64 height
///     | u8 type: 1 present, 2 empty place, 3 another leaf in its place
///     | type 1: blob32 value | type 3: 32 other key | 32 other value hash
///     | u16 n (≤ 256) | n × 32 sibling, deepest first
///
/// The verifier computes the key from (kind, id) itself, so a proof cannot claim one
/// entity's value for another; it checks the root it implies against the state root of
/// the version 2 header of block `height`.
public struct StateProof: Sendable, Equatable {
    public static let formatVersion: UInt16 = 1

    public var leaf: StateLeaf
    public var height: Height
    /// The entity's canonical entry (§7) when present.
    public var value: [UInt8]?
    public var path: TreeProof

    public init(leaf: StateLeaf, height: Height, value: [UInt8]?, path: TreeProof) {
        self.leaf = leaf; self.height = height; self.value = value; self.path = path
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + (value?.count ?? 64) + path.siblings.count * 32)
        w.u16(Self.formatVersion)
        w.u8(leaf.kind.rawValue); w.blob16(leaf.id); w.u64(height.value)
        switch path.end {
        case .value: w.u8(1); w.blob32(value ?? [])
        case .empty: w.u8(2)
        case let .otherLeaf(k, vh): w.u8(3); w.b32(k); w.b32(vh)
        }
        w.u16(UInt16(path.siblings.count))
        for s in path.siblings { w.b32(s) }
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8], _ h: any Hashing) throws(DecodeError) -> StateProof {
        var r = ByteReader(bytes)
        let v = try r.u16("proof.version")
        guard v == formatVersion else { throw .unsupportedVersion(field: "state proof", version: v) }
        guard let kind = LeafKind(rawValue: try r.u8("proof.kind")) else { throw .invalidValue(field: "proof.kind", reason: "unknown leaf kind") }
        let leaf = try StateLeaf(kind, try r.blob16("proof.id", max: 64))
        let height = Height(try r.u64("proof.height"))
        var value: [UInt8]? = nil
        let end: TreeProof.End
        switch try r.u8("proof.type") {
        case 1:
            let bytes = try r.blob32("proof.value", max: Limits.snapshotBytesMax)
            value = bytes
            end = .value(TreeRules(h).valueHash(bytes))
        case 2: end = .empty
        case 3: end = .otherLeaf(key: try r.b32("proof.otherKey"), valueHash: try r.b32("proof.otherValueHash"))
        default: throw .invalidValue(field: "proof.type", reason: "not 1, 2 or 3")
        }
        let n = try r.count("proof.siblings", max: 256)
        var siblings: [Hash32] = []
        siblings.reserveCapacity(n)
        for _ in 0 ..< n { siblings.append(try r.b32("proof.sibling")) }
        try r.end()
        return StateProof(leaf: leaf, height: height, value: value, path: TreeProof(end: end, siblings: siblings))
    }

    /// The tree key of this proof's leaf, computed from its kind and id.
    public func key(_ rules: TreeRules) -> Hash32 { rules.key(kind: leaf.kind.rawValue, id: leaf.id) }

    /// Whether the proof shows its value (or the leaf's absence) under `root`.
    public func verify(root: Hash32, _ h: any Hashing) -> Bool {
        let rules = TreeRules(h)
        return path.verify(key: key(rules), valueHash: value.map(rules.valueHash), root: root, rules: rules)
    }
}

extension LedgerState {
    /// A proof of `leaf` in this state (sealing a copy's tree first). Nil under the flat
    /// rule, which has no tree.
    public func proof(_ leaf: StateLeaf) -> StateProof? {
        guard commitment == .tree else { return nil }
        var s = self
        s.seal()
        guard let tree = s.sealedTree else { return nil }
        let rules = treeRules
        let path = tree.proof(rules.key(kind: leaf.kind.rawValue, id: leaf.id))
        let value = s.leafValue(leaf)
        return StateProof(leaf: leaf, height: height, value: value, path: path)
    }
}
