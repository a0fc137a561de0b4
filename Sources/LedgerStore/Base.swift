import LedgerCore
import LedgerCrypto

/// Where a state-synced log begins (schemas/FORMAT.md §15.4): the state after block
/// `height` as a snapshot, the quorum certificate that signs its root, and the power
/// changes that tie that quorum to the genesis. Blocks follow from `height + 1`; the
/// log holds none at or below it. A log initialised from its genesis has no base.
public struct LogBase: Sendable, Equatable {
    public var height: Height
    public var blockHash: Hash32
    /// The sequence number of the first event after the base (the serving peer's; the
    /// events before it are not in this log).
    public var nextSequence: SequenceNumber
    /// The canonical state bytes (FORMAT.md §7) after `height`.
    public var snapshot: [UInt8]
    /// The checkpoint certificate of `height` (§12 bytes).
    public var certificate: [UInt8]
    /// The power changes up to `height` as an audit bundle carries them (§13, opaque here).
    public var anchor: [UInt8]

    public init(height: Height, blockHash: Hash32, nextSequence: SequenceNumber, snapshot: [UInt8], certificate: [UInt8], anchor: [UInt8]) {
        self.height = height; self.blockHash = blockHash; self.nextSequence = nextSequence
        self.snapshot = snapshot; self.certificate = certificate; self.anchor = anchor
    }

    func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: snapshot.count + certificate.count + anchor.count + 64)
        w.u64(height.value); w.b32(blockHash); w.u64(nextSequence.value)
        w.blob32(snapshot); w.blob32(certificate); w.blob32(anchor)
        return w.bytes
    }

    static func decode(_ bytes: ArraySlice<UInt8>) throws(DecodeError) -> LogBase {
        var r = ByteReader(bytes)
        let b = LogBase(height: Height(try r.u64("base.height")), blockHash: try r.b32("base.blockHash"),
                        nextSequence: SequenceNumber(try r.u64("base.nextSequence")),
                        snapshot: try r.blob32("base.snapshot", max: Limits.snapshotBytesMax),
                        certificate: try r.blob32("base.certificate", max: Limits.snapshotBytesMax),
                        anchor: try r.blob32("base.anchor", max: Limits.snapshotBytesMax))
        try r.end()
        return b
    }
}

extension LedgerLog {
    static var baseKey: [UInt8] { Array("base".utf8) }

    /// Initialises an empty log at a base instead of the genesis: the genesis, the base,
    /// its certificate (where stable checkpoints' certificates are kept) and a head at the
    /// base, in one transaction; the index starts at the base too. The snapshot is stored
    /// once, in the base (the loader starts there when no later checkpoint serves).
    public func initialize(chainID: ChainID, genesisBytes: [UInt8], genesisHash: Hash32, base: LogBase) throws(StoreError) {
        guard Blake2b.hash(genesisBytes) == genesisHash else { throw .invalidAppend("genesis hash does not match its bytes") }
        guard base.height.value > 0 else { throw .invalidAppend("a base is the state after a block, not the genesis") }
        try kv.write { t throws(StoreError) in
            try Self.putChain(t, chainID, genesisBytes, genesisHash)
            try t.put(.meta, Self.baseKey, Record.seal(base.encoded()), append: false)
            try t.put(.meta, Self.headKey, Self.headRecord(base.height, base.blockHash, base.nextSequence), append: false)
            try t.put(.meta, Self.certificateKey(base.height), Record.seal(base.certificate), append: false)
        }
        let mark = Mark(height: base.height.value, next: base.nextSequence.value, blockHash: base.blockHash, genesisHash: genesisHash)
        try index?.write { t throws(StoreError) in
            try t.clear(.eventIDs); try t.clear(.streams)
            try t.put(.indexMeta, Self.indexedKey, mark.encoded, append: false)
        }
        cacheLock.withLock { markCache = mark }
    }

    /// The base this log starts from, nil for a log that starts at its genesis.
    public func base() throws(StoreError) -> LogBase? {
        try kv.read { t throws(StoreError) in try Self.base(t) }
    }

    static func base(_ t: any KVTxn) throws(StoreError) -> LogBase? {
        guard let v = try t.get(.meta, baseKey) else { return nil }
        do { return try LogBase.decode(try Record.open(v, record: "meta[base]")) } catch let e as StoreError { throw e } catch {
            throw .corrupt(record: "meta[base]", reason: "\(error)")
        }
    }

    /// The index mark a based log starts from.
    static func baseMark(_ t: any KVTxn) throws(StoreError) -> Mark? {
        guard let b = try base(t), let h = try head(t) else { return nil }
        return Mark(height: b.height.value, next: b.nextSequence.value, blockHash: b.blockHash, genesisHash: h.genesisHash)
    }
}
