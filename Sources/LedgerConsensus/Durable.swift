import LedgerCore

/// Which of its own votes a replica signed: one per (kind, height, view).
public struct VoteSlot: Hashable, Comparable, Sendable {
    public var kind: UInt8
    public var height: UInt64
    public var view: View
    public static func < (a: Self, b: Self) -> Bool { (a.height, a.view, a.kind) < (b.height, b.view, b.kind) }
}

/// What a replica must find again after a restart so it can never contradict itself:
/// its view, every vote it signed, the blocks it prepared (with their certificates), its
/// view changes, and its stable checkpoint. Committed blocks are in the log, not here.
public enum DurableRecord: Sendable, Hashable {
    case view(View, changing: Bool)
    case vote(SignedConsensusMessage)
    case prepared(PreparedCertificate, ProposedBlock)
    case viewChange(ViewChange, blocks: [ProposedBlock])
    case stable(CheckpointCertificate)
    /// The validator set of an epoch, as this replica computed it when it got there:
    /// after a restart it still verifies certificates of recent epochs.
    case epochSet(epoch: UInt64, members: [ValidatorSet.Member])
}

/// The fold of a replica's durable records (what a driver keeps on disk).
public struct DurableState: Sendable, Equatable {
    public private(set) var view: View = 0
    public private(set) var changing = false
    public private(set) var votes: [VoteSlot: SignedConsensusMessage] = [:]
    /// Highest-view prepared certificate per height, with the block.
    public private(set) var prepared: [UInt64: (PreparedCertificate, ProposedBlock)] = [:]
    public private(set) var viewChange: (ViewChange, [ProposedBlock])?
    public private(set) var stable: CheckpointCertificate?
    public private(set) var epochSets: [UInt64: [ValidatorSet.Member]] = [:]
    /// Epoch sets kept (older epochs' certificates are no longer checked).
    public static let epochSetsKept: UInt64 = 8

    public init() {}

    public static func == (a: Self, b: Self) -> Bool {
        a.view == b.view && a.changing == b.changing && a.votes == b.votes && a.stable == b.stable
            && a.prepared.keys.sorted() == b.prepared.keys.sorted()
            && a.prepared.allSatisfy { b.prepared[$0.key]?.0 == $0.value.0 }
            && a.viewChange?.0 == b.viewChange?.0 && a.epochSets == b.epochSets
    }

    public mutating func apply(_ r: DurableRecord) {
        switch r {
        case let .view(v, changing):
            if v > view || (v == view && !changing) { view = v; self.changing = changing }
        case let .vote(m):
            let (kind, h, v) = Self.slot(m.message)
            votes[VoteSlot(kind: kind, height: h, view: v)] = m
        case let .prepared(c, b):
            if let old = prepared[c.height.value], old.0.view >= c.view { return }
            prepared[c.height.value] = (c, b)
        case let .viewChange(vc, blocks):
            // A replica re-signs its view change when an epoch begins during it (new key,
            // newer checkpoint): the latest for a view replaces the earlier one.
            if let old = viewChange, old.0.view > vc.view { return }
            viewChange = (vc, blocks)
        case let .epochSet(e, members):
            epochSets[e] = members
            if e >= Self.epochSetsKept { epochSets = epochSets.filter { $0.key > e - Self.epochSetsKept } }
        case let .stable(c):
            guard c.height.value > (stable?.height.value ?? 0) || stable == nil else { return }
            stable = c
            let h = c.height.value
            votes = votes.filter { $0.key.height > h }
            prepared = prepared.filter { $0.key > h }
        }
    }

    /// (kind, height, view) of a vote: a replica signs at most one per triple (view 0 for checkpoints).
    public static func slot(_ m: ConsensusMessage) -> (UInt8, UInt64, View) {
        switch m {
        case let .prePrepare(v, h, _): (1, h.value, v)
        case let .prepare(v, h, _): (2, h.value, v)
        case let .commit(v, h, _): (3, h.value, v)
        case let .checkpoint(h, _, _): (4, h.value, 0)
        }
    }

    /// The block hash this replica already signed in that role, height and view, if any.
    public func signed(_ m: ConsensusMessage) -> SignedConsensusMessage? {
        let (k, h, v) = Self.slot(m)
        return votes[VoteSlot(kind: k, height: h, view: v)]
    }
}

// MARK: - Encoding (schemas/FORMAT.md §12): what a node writes to its consensus store

extension DurableRecord {
    public static let formatVersion: UInt16 = 1

    /// `u16 version | u8 tag | fields`, reusing the wire encodings of §10.
    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 256)
        w.u16(Self.formatVersion)
        switch self {
        case let .view(v, changing): w.u8(1); w.u64(v.value); w.u8(changing ? 1 : 0)
        case let .vote(m): w.u8(2); w.blob16(m.encoded())
        case let .prepared(c, b): w.u8(3); c.encode(&w); b.encode(&w)
        case let .viewChange(vc, blocks):
            w.u8(4); vc.encode(&w)
            w.u16(UInt16(blocks.count)); for b in blocks { b.encode(&w) }
        case let .stable(c): w.u8(5); c.encode(&w)
        case let .epochSet(e, members):
            w.u8(6); w.u64(e)
            w.u16(UInt16(members.count)); for m in members { w.b32(m.key); w.u64(m.power) }
        }
        return w.bytes
    }

    /// Decodes a durable record; block hashes are computed with `h`.
    public static func decode(_ bytes: [UInt8], _ h: any Hashing) throws(DecodeError) -> DurableRecord {
        var r = ByteReader(bytes)
        let v = try r.u16("durable.version")
        guard v == formatVersion else { throw .unsupportedVersion(field: "durable record", version: v) }
        let tag = try r.u8("durable.tag")
        let out: DurableRecord
        switch tag {
        case 1:
            let view = View(try r.u64("durable.view"))
            let c = try r.u8("durable.changing")
            guard c <= 1 else { throw .invalidValue(field: "durable.changing", reason: "not 0 or 1") }
            out = .view(view, changing: c == 1)
        case 2: out = .vote(try SignedConsensusMessage.decode(try r.blob16("durable.vote", max: Limits.consensusMessageBytesMax)))
        case 3:
            let c = try PreparedCertificate.decode(&r)
            out = .prepared(c, try ProposedBlock.decode(&r, h))
        case 4:
            let vc = try ViewChange.decode(&r)
            out = .viewChange(vc, blocks: try PeerMessage.decodeBlocks(&r, h))
        case 5: out = .stable(try CheckpointCertificate.decode(&r))
        case 6:
            let e = try r.u64("durable.epoch")
            let n = try r.count("durable.members", max: Limits.certificateSignersMax)
            var members: [ValidatorSet.Member] = []
            for _ in 0 ..< n { members.append(.init(key: try r.b32("durable.member"), power: try r.u64("durable.power"))) }
            out = .epochSet(epoch: e, members: members)
        default: throw .invalidValue(field: "durable.tag", reason: "unknown record tag \(tag)")
        }
        try r.end()
        return out
    }
}

extension DurableState {
    /// The records that rebuild this state when applied to an empty one, in an order
    /// `apply` accepts: what a store writes when it compacts.
    public var records: [DurableRecord] {
        var out: [DurableRecord] = []
        if let s = stable { out.append(.stable(s)) }
        for e in epochSets.keys.sorted() { out.append(.epochSet(epoch: e, members: epochSets[e]!)) }
        out.append(.view(view, changing: changing))
        for k in votes.keys.sorted() { out.append(.vote(votes[k]!)) }
        for h in prepared.keys.sorted() { let (c, b) = prepared[h]!; out.append(.prepared(c, b)) }
        if let (vc, blocks) = viewChange { out.append(.viewChange(vc, blocks: blocks)) }
        return out
    }
}
