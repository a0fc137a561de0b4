/// Signed consensus votes (schemas/FORMAT.md §9): the wire and evidence format of
/// pre-prepare, prepare, commit and checkpoint statements. The format lives in the core
/// because evidence events carry these bytes and the staking fold checks them.
/// The normal-case PBFT messages and checkpoints (view change and new view come with the
/// replica). Every message is signed by its sender over a domain-separated statement;
/// a commit signs exactly the `CommitCertificate` statement, so a quorum of commit
/// messages is the block's certificate as it is.
public enum ConsensusMessage: Sendable, Hashable {
    case prePrepare(view: View, height: Height, blockHash: Hash32)
    case prepare(view: View, height: Height, blockHash: Hash32)
    case commit(view: View, height: Height, blockHash: Hash32)
    case checkpoint(height: Height, blockHash: Hash32, stateRoot: Hash32)

    /// The kind byte on the wire (1 pre-prepare, 2 prepare, 3 commit, 4 checkpoint).
    public var tag: UInt8 {
        switch self { case .prePrepare: 1; case .prepare: 2; case .commit: 3; case .checkpoint: 4 }
    }

    /// The view a normal-case message belongs to; nil for a checkpoint, which is not tied to a view.
    public var view: View? {
        switch self {
        case let .prePrepare(v, _, _), let .prepare(v, _, _), let .commit(v, _, _): v
        case .checkpoint: nil
        }
    }

    public var height: Height {
        switch self {
        case let .prePrepare(_, h, _), let .prepare(_, h, _), let .commit(_, h, _), let .checkpoint(h, _, _): h
        }
    }

    /// The statement the sender signs.
    public func statement(chain: Bytes32) -> [UInt8] {
        switch self {
        case let .commit(view, height, hash):
            return CommitCertificate.message(chain: chain, height: height, view: view, blockHash: hash)
        case let .prePrepare(view, height, hash), let .prepare(view, height, hash):
            var w = ByteWriter(capacity: 128)
            w.raw(Domain.consensus(tag == 1 ? "PREPREPARE" : "PREPARE", chain)); w.u64(height.value); w.u64(view.value); w.b32(hash)
            return w.bytes
        case let .checkpoint(height, hash, root):
            var w = ByteWriter(capacity: 128)
            w.raw(Domain.consensus("CHECKPOINT", chain)); w.u64(height.value); w.b32(hash); w.b32(root)
            return w.bytes
        }
    }

    public func encode(_ w: inout ByteWriter) {
        w.u8(tag)
        switch self {
        case let .prePrepare(view, height, hash), let .prepare(view, height, hash), let .commit(view, height, hash):
            w.u64(view.value); w.u64(height.value); w.b32(hash)
        case let .checkpoint(height, hash, root):
            w.u64(height.value); w.b32(hash); w.b32(root)
        }
    }

    public static func decode(_ r: inout ByteReader) throws(DecodeError) -> ConsensusMessage {
        let tag = try r.u8("consensus.kind")
        switch tag {
        case 1, 2, 3:
            let view = View(try r.u64("consensus.view")), height = Height(try r.u64("consensus.height")), hash = try r.b32("consensus.blockHash")
            return tag == 1 ? .prePrepare(view: view, height: height, blockHash: hash)
                : tag == 2 ? .prepare(view: view, height: height, blockHash: hash)
                : .commit(view: view, height: height, blockHash: hash)
        case 4:
            return .checkpoint(height: Height(try r.u64("consensus.height")), blockHash: try r.b32("consensus.blockHash"),
                               stateRoot: try r.b32("consensus.stateRoot"))
        default:
            throw .invalidValue(field: "consensus.kind", reason: "unknown message kind \(tag)")
        }
    }
}

extension Domain {
    public static func consensus(_ what: String, _ chain: Bytes32) -> [UInt8] {
        var w = ByteWriter(capacity: 64)
        w.raw(Array("CHAOSLEDGER/\(what)".utf8)); w.u8(0); w.u16(1); w.b32(chain)
        return w.bytes
    }
}

/// A message with its sender and signature: `u16 version | message | b32 signer | b64 signature`.
public struct SignedConsensusMessage: Sendable, Hashable {
    public static let formatVersion: UInt16 = 1
    public let message: ConsensusMessage
    public let signer: PublicKey
    public let signature: Signature

    public init(message: ConsensusMessage, signer: PublicKey, signature: Signature) {
        self.message = message; self.signer = signer; self.signature = signature
    }

    /// A commit as a certificate vote (nil for other kinds).
    public var certificateVote: CommitCertificate.Vote? {
        guard case .commit = message else { return nil }
        return .init(key: signer, signature: signature)
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 160)
        w.u16(Self.formatVersion); message.encode(&w); w.b32(signer); w.b64(signature)
        return w.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> SignedConsensusMessage {
        guard bytes.count <= Limits.consensusMessageBytesMax else {
            throw .tooLong(field: "consensus message", length: bytes.count, max: Limits.consensusMessageBytesMax)
        }
        var r = ByteReader(bytes)
        let v = try r.u16("consensus.version")
        guard v == formatVersion else { throw .unsupportedVersion(field: "consensus message", version: v) }
        let m = try ConsensusMessage.decode(&r)
        let signer = try r.b32("consensus.signer"), sig = try r.b64("consensus.signature")
        try r.end()
        return SignedConsensusMessage(message: m, signer: signer, signature: sig)
    }
}

