/// Block header (schemas/FORMAT.md §4), format version 1:
///
///     u16 version | 32 chain id | u64 height | 32 parent hash | u64 view | u64 timestamp ms
///     | 32 proposer | u32 event count | 32 events root | 32 parent state root | u16 meme length | meme
///
/// Version 2, for chains that commit their state as a tree, adds after the parent state
/// root `32 state root | 32 next power hash`: the root of the state this block leaves,
/// and the hash of the voting power that certifies the next block (§4.3). A light client
/// learns both from a header the current validators signed.
///
/// The block hash is BLAKE2b-256 of these bytes. Block 1's parent hash is the genesis hash.
public struct BlockHeader: Sendable, Hashable {
    public static let formatVersion: UInt16 = 1
    public static let postStateVersion: UInt16 = 2

    /// What a version 2 header says of the state its block leaves.
    public struct PostState: Sendable, Hashable {
        public var stateRoot: Hash32
        public var nextPowerHash: Hash32
        public init(stateRoot: Hash32, nextPowerHash: Hash32) { self.stateRoot = stateRoot; self.nextPowerHash = nextPowerHash }
    }

    public var chainID: Bytes32
    public var height: Height
    public var parentHash: Hash32
    public var view: View
    public var timestampMs: UInt64
    public var proposer: PublicKey
    public var eventCount: UInt32
    public var eventsRoot: Hash32
    public var parentStateRoot: Hash32
    /// Version 2 only (nil: version 1).
    public var post: PostState?
    public var meme: [UInt8]

    public init(chainID: Bytes32, height: Height, parentHash: Hash32, view: View, timestampMs: UInt64,
                proposer: PublicKey, eventCount: UInt32, eventsRoot: Hash32, parentStateRoot: Hash32, post: PostState? = nil,
                meme: [UInt8]) {
        self.chainID = chainID; self.height = height; self.parentHash = parentHash; self.view = view
        self.timestampMs = timestampMs; self.proposer = proposer; self.eventCount = eventCount
        self.eventsRoot = eventsRoot; self.parentStateRoot = parentStateRoot; self.post = post; self.meme = meme
    }

    public var version: UInt16 { post == nil ? Self.formatVersion : Self.postStateVersion }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 264 + meme.count)
        w.u16(version)
        w.b32(chainID); w.u64(height.value); w.b32(parentHash); w.u64(view.value); w.u64(timestampMs)
        w.b32(proposer); w.u32(eventCount); w.b32(eventsRoot); w.b32(parentStateRoot)
        if let post { w.b32(post.stateRoot); w.b32(post.nextPowerHash) }
        w.blob16(meme)
        return w.bytes
    }

    public static func decode(_ r: inout ByteReader) throws(DecodeError) -> BlockHeader {
        let v = try r.u16("header.version")
        guard v == formatVersion || v == postStateVersion else { throw .unsupportedVersion(field: "block header", version: v) }
        let chain = try r.b32("header.chainID"), height = Height(try r.u64("header.height"))
        let parent = try r.b32("header.parentHash"), view = View(try r.u64("header.view"))
        let ts = try r.u64("header.timestamp"), proposer = try r.b32("header.proposer")
        let count = try r.u32("header.eventCount"), eventsRoot = try r.b32("header.eventsRoot")
        let parentState = try r.b32("header.parentStateRoot")
        let post = v == postStateVersion
            ? PostState(stateRoot: try r.b32("header.stateRoot"), nextPowerHash: try r.b32("header.nextPowerHash")) : nil
        let h = BlockHeader(chainID: chain, height: height, parentHash: parent, view: view, timestampMs: ts, proposer: proposer,
                            eventCount: count, eventsRoot: eventsRoot, parentStateRoot: parentState, post: post,
                            meme: try r.blob16("header.meme", max: Limits.memeBytesMax))
        guard h.eventCount <= Limits.blockEventsMax else {
            throw .tooLong(field: "header.eventCount", length: Int(h.eventCount), max: Limits.blockEventsMax)
        }
        return h
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> BlockHeader {
        var r = ByteReader(bytes)
        let h = try decode(&r)
        try r.end()
        return h
    }
}

/// A commit certificate: signatures of distinct validators' consensus keys over
/// `Domain.commit(chain) | u64 height | u64 view | 32 block hash`, sorted by key
/// (schemas/FORMAT.md §4.2).
public struct CommitCertificate: Sendable, Hashable {
    public static let formatVersion: UInt16 = 1

    public struct Vote: Sendable, Hashable {
        public var key: PublicKey
        public var signature: Signature
        public init(key: PublicKey, signature: Signature) { self.key = key; self.signature = signature }
    }

    public var height: Height
    public var view: View
    public var blockHash: Hash32
    public var votes: [Vote]

    public init(height: Height, view: View, blockHash: Hash32, votes: [Vote]) {
        self.height = height; self.view = view; self.blockHash = blockHash
        self.votes = votes.sorted { $0.key < $1.key }
    }

    public static func message(chain: Bytes32, height: Height, view: View, blockHash: Hash32) -> [UInt8] {
        var w = ByteWriter(capacity: 128)
        w.raw(Domain.commit(chain)); w.u64(height.value); w.u64(view.value); w.b32(blockHash)
        return w.bytes
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 60 + votes.count * 96)
        w.u16(CommitCertificate.formatVersion)
        w.u64(height.value); w.u64(view.value); w.b32(blockHash)
        w.u16(UInt16(votes.count))
        for v in votes { w.b32(v.key); w.b64(v.signature) }
        return w.bytes
    }

    public static func decode(_ r: inout ByteReader) throws(DecodeError) -> CommitCertificate {
        let v = try r.u16("certificate.version")
        guard v == formatVersion else { throw .unsupportedVersion(field: "certificate", version: v) }
        let height = Height(try r.u64("certificate.height"))
        let view = View(try r.u64("certificate.view"))
        let hash = try r.b32("certificate.blockHash")
        return CommitCertificate(height: height, view: view, blockHash: hash, votes: try decodeVotes(&r, "certificate.votes"))
    }

    /// `u16 n | n × (b32 key, b64 signature)`, keys strictly increasing (canonical: no
    /// signer twice), as every certificate carries its votes.
    public static func decodeVotes(_ r: inout ByteReader, _ field: String) throws(DecodeError) -> [Vote] {
        let n = try r.count(field, max: Limits.certificateSignersMax)
        var out: [Vote] = []
        out.reserveCapacity(n)
        for _ in 0 ..< n {
            let v = Vote(key: try r.b32(field), signature: try r.b64(field))
            if let last = out.last, !(last.key < v.key) {
                throw .invalidValue(field: field, reason: "keys not strictly increasing (duplicate or unsorted signer)")
            }
            out.append(v)
        }
        return out
    }
}

/// A stable checkpoint: a quorum of the validators that certify block `height + 1`
/// signed checkpoint votes over (height, block hash, state root) (schemas/FORMAT.md §12).
/// Height 0 (genesis) needs no votes. Stored in the log as each becomes stable (§5), so
/// an auditor can check a state root a quorum signed without the consensus records.
public struct CheckpointCertificate: Sendable, Hashable {
    public var height: Height
    public var blockHash: Hash32
    public var stateRoot: Hash32
    public var votes: [CommitCertificate.Vote]

    public init(height: Height, blockHash: Hash32, stateRoot: Hash32, votes: [CommitCertificate.Vote]) {
        self.height = height; self.blockHash = blockHash; self.stateRoot = stateRoot
        self.votes = votes.sorted { $0.key < $1.key }
    }

    public var message: ConsensusMessage { .checkpoint(height: height, blockHash: blockHash, stateRoot: stateRoot) }

    /// `u64 height | b32 block hash | b32 state root | u16 n | n × (b32 key, b64 signature)`.
    public func encode(_ w: inout ByteWriter) {
        w.u64(height.value); w.b32(blockHash); w.b32(stateRoot)
        w.u16(UInt16(votes.count))
        for v in votes { w.b32(v.key); w.b64(v.signature) }
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 74 + votes.count * 96)
        encode(&w)
        return w.bytes
    }

    public static func decode(_ r: inout ByteReader) throws(DecodeError) -> CheckpointCertificate {
        CheckpointCertificate(height: Height(try r.u64("checkpoint.height")), blockHash: try r.b32("checkpoint.hash"),
                              stateRoot: try r.b32("checkpoint.root"), votes: try CommitCertificate.decodeVotes(&r, "checkpoint.votes"))
    }

    /// The whole of `bytes`, nothing after it.
    public static func decode(bytes: [UInt8]) throws(DecodeError) -> CheckpointCertificate {
        var r = ByteReader(bytes)
        let c = try decode(&r)
        try r.end()
        return c
    }
}

/// A block as stored: header bytes, certificate, and the position of its first event.
public struct StoredBlock: Sendable, Hashable {
    public var header: BlockHeader
    public var headerBytes: [UInt8]
    public var certificate: CommitCertificate
    public var firstSequence: SequenceNumber

    public init(header: BlockHeader, certificate: CommitCertificate, firstSequence: SequenceNumber) {
        self.header = header; self.headerBytes = header.encoded()
        self.certificate = certificate; self.firstSequence = firstSequence
    }

    /// Record body in the `blocks` database: u32 header length | header | certificate | u64 first sequence.
    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: headerBytes.count + 200)
        w.blob32(headerBytes)
        w.raw(certificate.encoded())
        w.u64(firstSequence.value)
        return w.bytes
    }

    public static func decode(_ bytes: ArraySlice<UInt8>) throws(DecodeError) -> StoredBlock {
        var r = ByteReader(bytes)
        let hb = try r.blob32("block.header", max: 4096)
        let header = try BlockHeader.decode(hb)
        let cert = try CommitCertificate.decode(&r)
        let first = SequenceNumber(try r.u64("block.firstSequence"))
        try r.end()
        var b = StoredBlock(header: header, certificate: cert, firstSequence: first)
        b.headerBytes = hb
        return b
    }
}
