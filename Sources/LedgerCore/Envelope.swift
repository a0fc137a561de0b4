/// The event envelope, format version 1 (schemas/FORMAT.md §2). Stored exactly as signed:
///
///     u16 version | u16 kind | 32 chain id | 32 author | u64 nonce | u64 fee
///     | u32 payload length | payload | 64 signature
///
/// The signature covers `Domain.event(chainID)` followed by every byte before it.
public struct Envelope: Sendable, Hashable {
    public static let formatVersion: UInt16 = 1
    public static let headerBytes = 2 + 2 + 32 + 32 + 8 + 8 + 4
    public static let overheadBytes = headerBytes + 64

    /// The stored bytes, exactly as signed.
    public let bytes: [UInt8]
    public let version: UInt16
    public let kind: EventKind
    public let chainID: Bytes32
    public let author: PublicKey
    public let nonce: UInt64
    public let fee: UInt64
    public let signature: Signature

    public var payload: ArraySlice<UInt8> { bytes[Envelope.headerBytes ..< bytes.count - 64] }
    /// The bytes the signature covers (after the domain prefix).
    public var signedBytes: ArraySlice<UInt8> { bytes[0 ..< bytes.count - 64] }

    /// Decodes and checks the structure; it does not verify the signature.
    public init(bytes: [UInt8]) throws(DecodeError) {
        guard bytes.count <= Limits.eventBytesMax else {
            throw .tooLong(field: "event", length: bytes.count, max: Limits.eventBytesMax)
        }
        var r = ByteReader(bytes)
        version = try r.u16("event.version")
        guard version == Envelope.formatVersion else { throw .unsupportedVersion(field: "event", version: version) }
        let k = try r.u16("event.kind")
        guard let kind = EventKind(rawValue: k) else { throw .unknownKind(k) }
        self.kind = kind
        chainID = try r.b32("event.chainID")
        author = try r.b32("event.author")
        nonce = try r.u64("event.nonce")
        fee = try r.u64("event.fee")
        let n = Int(try r.u32("event.payload.length"))
        guard n <= Limits.payloadBytesMax else {
            throw .tooLong(field: "event.payload", length: n, max: Limits.payloadBytesMax)
        }
        _ = try r.raw(n, "event.payload")
        signature = try r.b64("event.signature")
        try r.end()
        self.bytes = bytes
    }

    /// The unsigned bytes of a new event; append a signature to finish it.
    public static func unsigned(
        chainID: ChainID, author: PublicKey, nonce: UInt64, fee: UInt64, payload: Payload
    ) -> [UInt8] {
        let p = payload.encoded()
        var w = ByteWriter(capacity: headerBytes + p.count + 64)
        w.u16(formatVersion)
        w.u16(payload.kind.rawValue)
        w.b32(chainID.raw)
        w.b32(author)
        w.u64(nonce)
        w.u64(fee)
        w.blob32(p)
        return w.bytes
    }

    public func decodePayload() throws(DecodeError) -> Payload {
        try Payload.decode(kind: kind, payload)
    }

    /// The streams this event is indexed under — the one rule the indexer, the stream
    /// reader's check and everyone else use. An undecodable payload (never in a valid
    /// log) still belongs to its author's account.
    public func streams(id: EventID) -> [StreamKey] {
        (try? decodePayload())?.streams(author: author, id: id) ?? [.account(author)]
    }
}

/// Domain-separation prefixes: every signature in ChaosLedger signs one of these,
/// followed by the bytes it covers, so a signature over one kind of message can never
/// be replayed as another, or on another chain or format version.
public enum Domain {
    public static func event(_ chain: Bytes32, version: UInt16 = Envelope.formatVersion) -> [UInt8] {
        prefix("CHAOSLEDGER/EVENT", version, chain)
    }
    public static func commit(_ chain: Bytes32, version: UInt16 = CommitCertificate.formatVersion) -> [UInt8] {
        prefix("CHAOSLEDGER/COMMIT", version, chain)
    }
    public static func rotate(_ chain: Bytes32) -> [UInt8] {
        prefix("CHAOSLEDGER/ROTATE", 1, chain)
    }

    static func prefix(_ tag: String, _ version: UInt16, _ chain: Bytes32) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        w.raw(Array(tag.utf8)); w.u8(0)
        w.u16(version)
        w.b32(chain)
        return w.bytes
    }
}
