import LedgerCore

/// Errors of the store. Corruption names the record; I/O errors say what, where and why.
public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A record failed its hash check or does not decode: the log on disk is damaged.
    case corrupt(record: String, reason: String)
    /// The map reached `Limits.mapBytesMax`; nothing of the failed write was kept.
    case mapFull(path: String)
    /// The disk is full; nothing of the failed write was kept.
    case diskFull(path: String)
    /// Another process holds the writer lock on this directory.
    case locked(path: String)
    case readOnly(path: String)
    case closed(path: String)
    case io(operation: String, path: String, code: Int32, message: String)
    case notInitialized
    case alreadyInitialized
    /// An append that does not extend the head (wrong height, parent, sequence or chain).
    case invalidAppend(String)

    public var description: String {
        switch self {
        case let .corrupt(r, why): "corrupt record \(r): \(why)"
        case let .mapFull(p): "\(p): LMDB map is at its size limit"
        case let .diskFull(p): "\(p): disk full"
        case let .locked(p): "\(p): another process is writing to this log"
        case let .readOnly(p): "\(p): the log is open read-only"
        case let .closed(p): "\(p): the log is closed"
        case let .io(op, p, c, m): "\(p): \(op) failed (\(c)): \(m)"
        case .notInitialized: "the log has no genesis yet"
        case .alreadyInitialized: "the log already has a genesis"
        case let .invalidAppend(why): "invalid append: \(why)"
        }
    }
}

/// What the metadata database holds.
public struct LogMetadata: Sendable, Equatable {
    public var chainID: ChainID
    public var formatVersion: UInt16
    public var genesisHash: Hash32
    public var genesisBytes: [UInt8]
    /// Height of the last committed block (0: genesis only).
    public var head: Height
    /// Hash of the last committed block (the genesis hash at height 0).
    public var headHash: Hash32
    /// The sequence number the next event will get.
    public var nextSequence: SequenceNumber
}

/// An event as read back from the log, with its position and verified id.
public struct LoggedEvent: Sendable, Hashable {
    public var sequence: SequenceNumber
    public var id: EventID
    public var envelope: Envelope
    public init(sequence: SequenceNumber, id: EventID, envelope: Envelope) {
        self.sequence = sequence; self.id = id; self.envelope = envelope
    }
}

/// One block's worth of records, written in one durable transaction.
public struct BlockCommit: Sendable {
    public var block: StoredBlock
    public var blockHash: Hash32
    /// Events with their ids, in block order; the ids were computed by the caller from the bytes.
    public var events: [(id: EventID, envelope: Envelope)]
    /// At an epoch end of a tree-committed chain: the power that certifies the next
    /// block (what the header's next power hash commits), kept for light clients after
    /// the state of that height is pruned.
    public var nextPower: [(key: PublicKey, power: UInt64)]?

    public init(block: StoredBlock, blockHash: Hash32, events: [(id: EventID, envelope: Envelope)],
                nextPower: [(key: PublicKey, power: UInt64)]? = nil) {
        self.block = block; self.blockHash = blockHash; self.events = events; self.nextPower = nextPower
    }
}

/// The append-only event log. Implementations: `LMDBEventLog` and `MemoryEventLog`,
/// both checked by one conformance suite.
/// The head of the log: what an append needs, without the genesis document.
public struct LogHead: Sendable, Equatable {
    public var height: Height
    public var hash: Hash32
    public var nextSequence: SequenceNumber
}

public protocol EventLog: AnyObject, Sendable {
    /// Everything in `meta`, the genesis document included (its hash is checked on read).
    func metadata() throws(StoreError) -> LogMetadata?
    /// Just the head; cheap enough to call for every block.
    func head() throws(StoreError) -> LogHead?
    func initialize(chainID: ChainID, genesisBytes: [UInt8], genesisHash: Hash32) throws(StoreError)
    /// Appends header, events, certificate and the new head in one durable transaction:
    /// after it returns the block survives a crash; if it throws, nothing of it was
    /// written. The id and stream indexes are derived from these records and caught up
    /// apart (Index.swift); lookups cover what they have not reached yet.
    func append(_ commit: BlockCommit) throws(StoreError)
    func block(at height: Height) throws(StoreError) -> StoredBlock?
    func events(from: SequenceNumber, count: Int) throws(StoreError) -> [LoggedEvent]
    func event(id: EventID) throws(StoreError) -> LoggedEvent?
    func stream(_ key: StreamKey, after: SequenceNumber?, limit: Int) throws(StoreError) -> [LoggedEvent]
    func putCheckpoint(height: Height, snapshot: [UInt8]) throws(StoreError)
    /// The newest checkpoint at or below `height`.
    func checkpoint(atOrBelow height: Height) throws(StoreError) -> (height: Height, snapshot: [UInt8])?
    func dropCheckpoints() throws(StoreError)
    /// The heights that have a checkpoint, ascending.
    func checkpointHeights() throws(StoreError) -> [Height]
    /// Deletes every checkpoint `keep` refuses, in one transaction.
    func pruneCheckpoints(keeping keep: (Height) -> Bool) throws(StoreError)
    /// The power stored with block `height` (`BlockCommit.nextPower`), keys ascending;
    /// nil when that block stored none.
    func nextPower(at height: Height) throws(StoreError) -> [(key: PublicKey, power: UInt64)]?
    /// Stores block `height`'s power apart from its append (a rebuild filling in a log
    /// written before power records existed).
    func putNextPower(height: Height, power: [(key: PublicKey, power: UInt64)]) throws(StoreError)
    /// Stores the certificate that made checkpoint `height` stable (its §12 bytes, opaque
    /// here); a second one for a height replaces the first (both are quorum-signed over
    /// the same block and root).
    func putCheckpointCertificate(height: Height, bytes: [UInt8]) throws(StoreError)
    /// The stored checkpoint certificate of `height`, nil when none.
    func checkpointCertificate(at height: Height) throws(StoreError) -> [UInt8]?
    /// The heights with a stored checkpoint certificate, ascending: the first `limit` at or
    /// above `from`.
    func checkpointCertificateHeights(from: Height, limit: Int) throws(StoreError) -> [Height]
    /// Where a state-synced log begins (nil: at its genesis).
    func base() throws(StoreError) -> LogBase?
}

extension EventLog {
    /// Every height with a stored checkpoint certificate, ascending.
    public func checkpointCertificateHeights() throws(StoreError) -> [Height] {
        try checkpointCertificateHeights(from: 0, limit: .max)
    }
}
