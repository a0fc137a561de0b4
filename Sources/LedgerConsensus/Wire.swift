import LedgerCore

/// A proposed block: its header and the stored bytes of its events. Its hash is the
/// BLAKE2b-256 of the header bytes (the header commits to the events through the events
/// root, which the receiver recomputes).
public struct ProposedBlock: Sendable, Hashable {
    public let header: BlockHeader
    public let headerBytes: [UInt8]
    public let hash: Hash32
    public let events: [[UInt8]]

    public init(header: BlockHeader, events: [[UInt8]], _ h: any Hashing) {
        self.header = header
        headerBytes = header.encoded()
        hash = h.hash(headerBytes)
        self.events = events
    }

    init(headerBytes: [UInt8], events: [[UInt8]], _ h: any Hashing) throws(DecodeError) {
        header = try BlockHeader.decode(headerBytes)
        self.headerBytes = headerBytes
        hash = h.hash(headerBytes)
        self.events = events
    }

    public var height: Height { header.height }
    public var byteCount: Int { headerBytes.count + events.reduce(0) { $0 + $1.count } }

    func encode(_ w: inout ByteWriter) {
        w.blob16(headerBytes)
        w.u32(UInt32(events.count))
        for e in events { w.blob16(e) }
    }

    static func decode(_ r: inout ByteReader, _ h: any Hashing) throws(DecodeError) -> ProposedBlock {
        let hb = try r.blob16("block.header", max: Limits.blockHeaderBytesMax)
        let n = try r.count32("block.events", max: Limits.blockEventsMax)
        var events: [[UInt8]] = []
        events.reserveCapacity(n)
        for _ in 0 ..< n { events.append(try r.blob16("block.event", max: Limits.eventBytesMax)) }
        return try ProposedBlock(headerBytes: hb, events: events, h)
    }
}

/// A block with the certificate that committed it: what state transfer sends and what
/// the log stores.
public struct CertifiedBlock: Sendable, Hashable {
    public let block: ProposedBlock
    public let certificate: CommitCertificate
    public init(block: ProposedBlock, certificate: CommitCertificate) { self.block = block; self.certificate = certificate }
}

/// A compact signed vote: the statement is implied by the certificate carrying it.
public typealias Vote = CommitCertificate.Vote

/// Proof that a block was prepared in a view: the primary's pre-prepare signature and
/// prepare signatures whose signers, with the primary, hold a quorum.
public struct PreparedCertificate: Sendable, Hashable {
    public var view: View
    public var height: Height
    public var blockHash: Hash32
    public var prePrepare: Vote
    /// Sorted by key, distinct.
    public var prepares: [Vote]

    public init(view: View, height: Height, blockHash: Hash32, prePrepare: Vote, prepares: [Vote]) {
        self.view = view; self.height = height; self.blockHash = blockHash; self.prePrepare = prePrepare
        self.prepares = prepares.sorted { $0.key < $1.key }
    }

    func encode(_ w: inout ByteWriter) {
        w.u64(view.value); w.u64(height.value); w.b32(blockHash)
        w.b32(prePrepare.key); w.b64(prePrepare.signature)
        w.u16(UInt16(prepares.count))
        for v in prepares { w.b32(v.key); w.b64(v.signature) }
    }

    static func decode(_ r: inout ByteReader) throws(DecodeError) -> PreparedCertificate {
        let view = View(try r.u64("prepared.view")), h = Height(try r.u64("prepared.height")), hash = try r.b32("prepared.hash")
        let pp = Vote(key: try r.b32("prepared.primary"), signature: try r.b64("prepared.primarySignature"))
        return PreparedCertificate(view: view, height: h, blockHash: hash, prePrepare: pp, prepares: try decodeVotes(&r, "prepared.prepares"))
    }
}

func decodeVotes(_ r: inout ByteReader, _ field: String) throws(DecodeError) -> [Vote] {
    try CommitCertificate.decodeVotes(&r, field)
}

/// A record signed whole by one replica (view change, new view): the statement is the
/// domain of its kind followed by the encoding of everything but the signature.
public protocol SignedRecord: Sendable, Hashable {
    static var domainTag: String { get }
    var signer: PublicKey { get }
    var signature: Signature { get }
    func encodeBody(_ w: inout ByteWriter)
}

extension SignedRecord {
    public func statement(chain: Bytes32) -> [UInt8] {
        var w = ByteWriter(capacity: 512)
        w.raw(Domain.consensus(Self.domainTag, chain)); encodeBody(&w)
        return w.bytes
    }

    public func verifySignature(chain: Bytes32, _ p: any Primitives) -> Bool { p.verify(signature, statement(chain: chain), signer) }

    func encode(_ w: inout ByteWriter) { encodeBody(&w); w.b64(signature) }
}

/// VIEW-CHANGE: a replica's vote to move to `view`, carrying its last stable checkpoint
/// and every block it prepared above it. Signed by the replica over all of it.
public struct ViewChange: SignedRecord {
    public static let domainTag = "VIEWCHANGE"
    public var view: View
    public var replica: PublicKey
    public var stable: CheckpointCertificate
    /// Sorted by height, at most one per height.
    public var prepared: [PreparedCertificate]
    public var signature: Signature

    public func encodeBody(_ w: inout ByteWriter) {
        w.u64(view.value); w.b32(replica); stable.encode(&w)
        w.u16(UInt16(prepared.count))
        for p in prepared { p.encode(&w) }
    }

    public static func sign(view: View, stable: CheckpointCertificate, prepared: [PreparedCertificate], chain: Bytes32, key: any Signer) -> ViewChange {
        var vc = ViewChange(view: view, replica: key.publicKey, stable: stable, prepared: prepared.sorted { $0.height < $1.height }, signature: .zero)
        vc.signature = key.sign(vc.statement(chain: chain))
        return vc
    }

    public var signer: PublicKey { replica }

    static func decode(_ r: inout ByteReader) throws(DecodeError) -> ViewChange {
        let view = View(try r.u64("viewChange.view")), replica = try r.b32("viewChange.replica")
        let stable = try CheckpointCertificate.decode(&r)
        let n = try r.count("viewChange.prepared", max: Limits.pipelineDepthMax)
        var prepared: [PreparedCertificate] = []
        for _ in 0 ..< n {
            let p = try PreparedCertificate.decode(&r)
            if let last = prepared.last, !(last.height < p.height) {
                throw .invalidValue(field: "viewChange.prepared", reason: "heights not strictly increasing")
            }
            prepared.append(p)
        }
        return ViewChange(view: view, replica: replica, stable: stable, prepared: prepared, signature: try r.b64("viewChange.signature"))
    }
}

/// NEW-VIEW: the new primary's proof (a quorum of view changes) and the pre-prepares it
/// derived from them, which every replica recomputes.
public struct NewView: SignedRecord {
    public static let domainTag = "NEWVIEW"
    public var view: View
    public var primary: PublicKey
    /// Sorted by replica key, distinct.
    public var viewChanges: [ViewChange]
    /// Signed pre-prepares in this view, by increasing height.
    public var prePrepares: [SignedConsensusMessage]
    public var signature: Signature

    public func encodeBody(_ w: inout ByteWriter) {
        w.u64(view.value); w.b32(primary)
        w.u16(UInt16(viewChanges.count))
        for v in viewChanges { v.encode(&w) }
        w.u16(UInt16(prePrepares.count))
        for p in prePrepares { w.blob16(p.encoded()) }
    }

    public static func sign(view: View, viewChanges: [ViewChange], prePrepares: [SignedConsensusMessage], chain: Bytes32, key: any Signer) -> NewView {
        var nv = NewView(view: view, primary: key.publicKey, viewChanges: viewChanges.sorted { $0.replica < $1.replica },
                         prePrepares: prePrepares, signature: .zero)
        nv.signature = key.sign(nv.statement(chain: chain))
        return nv
    }

    public var signer: PublicKey { primary }

    static func decode(_ r: inout ByteReader) throws(DecodeError) -> NewView {
        let view = View(try r.u64("newView.view")), primary = try r.b32("newView.primary")
        let n = try r.count("newView.viewChanges", max: Limits.certificateSignersMax)
        var vcs: [ViewChange] = []
        for _ in 0 ..< n { vcs.append(try ViewChange.decode(&r)) }
        let m = try r.count("newView.prePrepares", max: Limits.pipelineDepthMax)
        var pps: [SignedConsensusMessage] = []
        for _ in 0 ..< m { pps.append(try SignedConsensusMessage.decode(try r.blob16("newView.prePrepare", max: Limits.consensusMessageBytesMax))) }
        return NewView(view: view, primary: primary, viewChanges: vcs, prePrepares: pps, signature: try r.b64("newView.signature"))
    }
}

/// Everything replicas send each other (schemas/FORMAT.md §10):
/// `u16 version | u8 tag | fields`. Decoding is total and bounded.
public enum PeerMessage: Sendable, Hashable {
    case prePrepare(SignedConsensusMessage, ProposedBlock)
    /// A prepare, commit or checkpoint vote.
    case vote(SignedConsensusMessage)
    /// A view change with the bodies of the blocks it names as prepared.
    case viewChange(ViewChange, blocks: [ProposedBlock])
    case newView(NewView, blocks: [ProposedBlock])
    /// State transfer: ask for certified blocks from a height on.
    case fetch(from: Height, count: UInt32)
    case blocks([CertifiedBlock])
    /// A client event passed on to the other replicas.
    case request([UInt8])
    /// Client events passed on together: a node driver coalesces the `request`s of one
    /// batch into one message (one frame, one syscall) instead of one per event.
    case requests([[UInt8]])

    public static let formatVersion: UInt16 = 1

    public var tag: UInt8 {
        switch self {
        case .prePrepare: 1
        case .vote: 2
        case .viewChange: 3
        case .newView: 4
        case .fetch: 5
        case .blocks: 6
        case .request: 7
        case .requests: 8
        }
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 256)
        w.u16(Self.formatVersion); w.u8(tag)
        switch self {
        case let .prePrepare(m, b): w.blob16(m.encoded()); b.encode(&w)
        case let .vote(m): w.blob16(m.encoded())
        case let .viewChange(vc, blocks):
            vc.encode(&w)
            w.u16(UInt16(blocks.count)); for b in blocks { b.encode(&w) }
        case let .newView(nv, blocks):
            nv.encode(&w)
            w.u16(UInt16(blocks.count)); for b in blocks { b.encode(&w) }
        case let .fetch(from, count): w.u64(from.value); w.u32(count)
        case let .blocks(bs):
            w.u16(UInt16(bs.count))
            for b in bs { b.block.encode(&w); w.raw(b.certificate.encoded()) }
        case let .request(e): w.blob16(e)
        case let .requests(es): w.u32(UInt32(es.count)); for e in es { w.blob16(e) }
        }
        return w.bytes
    }

    /// Decodes a peer message; block hashes are computed with `h`.
    public static func decode(_ bytes: [UInt8], _ h: any Hashing) throws(DecodeError) -> PeerMessage {
        guard bytes.count <= Limits.peerMessageBytesMax else {
            throw .tooLong(field: "peer message", length: bytes.count, max: Limits.peerMessageBytesMax)
        }
        var r = ByteReader(bytes)
        let v = try r.u16("peer.version")
        guard v == formatVersion else { throw .unsupportedVersion(field: "peer message", version: v) }
        let tag = try r.u8("peer.tag")
        let m: PeerMessage
        switch tag {
        case 1:
            let pp = try SignedConsensusMessage.decode(try r.blob16("peer.prePrepare", max: Limits.consensusMessageBytesMax))
            m = .prePrepare(pp, try ProposedBlock.decode(&r, h))
        case 2: m = .vote(try SignedConsensusMessage.decode(try r.blob16("peer.vote", max: Limits.consensusMessageBytesMax)))
        case 3:
            let vc = try ViewChange.decode(&r)
            m = .viewChange(vc, blocks: try decodeBlocks(&r, h))
        case 4:
            let nv = try NewView.decode(&r)
            m = .newView(nv, blocks: try decodeBlocks(&r, h))
        case 5: m = .fetch(from: Height(try r.u64("fetch.from")), count: try r.u32("fetch.count"))
        case 6:
            let n = try r.count("blocks.count", max: Limits.stateTransferBlocksMax)
            var out: [CertifiedBlock] = []
            for _ in 0 ..< n {
                let b = try ProposedBlock.decode(&r, h)
                out.append(CertifiedBlock(block: b, certificate: try CommitCertificate.decode(&r)))
            }
            m = .blocks(out)
        case 7: m = .request(try r.blob16("request.event", max: Limits.eventBytesMax))
        case 8:
            let n = try r.count32("requests.count", max: Limits.requestsPerMessageMax)
            var es: [[UInt8]] = []
            es.reserveCapacity(n)
            for _ in 0 ..< n { es.append(try r.blob16("requests.event", max: Limits.eventBytesMax)) }
            m = .requests(es)
        default: throw .invalidValue(field: "peer.tag", reason: "unknown message tag \(tag)")
        }
        try r.end()
        return m
    }

    static func decodeBlocks(_ r: inout ByteReader, _ h: any Hashing) throws(DecodeError) -> [ProposedBlock] {
        let n = try r.count("peer.blocks", max: Limits.pipelineDepthMax)
        var out: [ProposedBlock] = []
        for _ in 0 ..< n { out.append(try ProposedBlock.decode(&r, h)) }
        return out
    }
}

extension ByteReader {
    mutating func count32(_ f: String, max: Int) throws(DecodeError) -> Int {
        let n = Int(try u32(f))
        guard n <= max else { throw .tooLong(field: f, length: n, max: max) }
        return n
    }
}
