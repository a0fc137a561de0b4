import LedgerCore
import LedgerCrypto

/// The normal-case PBFT messages and checkpoints (view change and new view come with the
/// replica). Every message is signed by its sender over a domain-separated statement;
/// a commit signs exactly the `CommitCertificate` statement, so a quorum of commit
/// messages is the block's certificate as it is.
public enum ConsensusMessage: Sendable, Hashable {
    case prePrepare(view: UInt64, height: Height, blockHash: Hash32)
    case prepare(view: UInt64, height: Height, blockHash: Hash32)
    case commit(view: UInt64, height: Height, blockHash: Hash32)
    case checkpoint(height: Height, blockHash: Hash32, stateRoot: Hash32)

    var tag: UInt8 {
        switch self { case .prePrepare: 1; case .prepare: 2; case .commit: 3; case .checkpoint: 4 }
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
            w.raw(Domain.consensus(tag == 1 ? "PREPREPARE" : "PREPARE", chain)); w.u64(height.value); w.u64(view); w.b32(hash)
            return w.bytes
        case let .checkpoint(height, hash, root):
            var w = ByteWriter(capacity: 128)
            w.raw(Domain.consensus("CHECKPOINT", chain)); w.u64(height.value); w.b32(hash); w.b32(root)
            return w.bytes
        }
    }

    func encode(_ w: inout ByteWriter) {
        w.u8(tag)
        switch self {
        case let .prePrepare(view, height, hash), let .prepare(view, height, hash), let .commit(view, height, hash):
            w.u64(view); w.u64(height.value); w.b32(hash)
        case let .checkpoint(height, hash, root):
            w.u64(height.value); w.b32(hash); w.b32(root)
        }
    }

    static func decode(_ r: inout ByteReader) throws(DecodeError) -> ConsensusMessage {
        let tag = try r.u8("consensus.kind")
        switch tag {
        case 1, 2, 3:
            let view = try r.u64("consensus.view"), height = Height(try r.u64("consensus.height")), hash = try r.b32("consensus.blockHash")
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
    static func consensus(_ what: String, _ chain: Bytes32) -> [UInt8] {
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

    public static func sign(_ m: ConsensusMessage, chain: Bytes32, key: SigningKey) -> SignedConsensusMessage {
        SignedConsensusMessage(message: m, signer: key.publicKey, signature: key.sign(m.statement(chain: chain)))
    }

    public func verify(chain: Bytes32) -> Bool {
        Ed25519.verify(signature, message.statement(chain: chain), signer)
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
        guard bytes.count <= 256 else { throw .tooLong(field: "consensus message", length: bytes.count, max: 256) }
        var r = ByteReader(bytes)
        let v = try r.u16("consensus.version")
        guard v == formatVersion else { throw .unsupportedVersion(field: "consensus message", version: v) }
        let m = try ConsensusMessage.decode(&r)
        let signer = try r.b32("consensus.signer"), sig = try r.b64("consensus.signature")
        try r.end()
        return SignedConsensusMessage(message: m, signer: signer, signature: sig)
    }
}

/// Proof that a validator signed two different blocks in the same role, view and height.
public struct Equivocation: Sendable, Hashable {
    public let first: SignedConsensusMessage
    public let second: SignedConsensusMessage

    /// Returns evidence when `a` and `b` conflict: same signer, same kind, view and
    /// height, different blocks, and both signatures valid. Nil otherwise (a forged or
    /// duplicate pair is no evidence).
    public static func detect(_ a: SignedConsensusMessage, _ b: SignedConsensusMessage, chain: Bytes32) -> Equivocation? {
        guard a.signer == b.signer, a != b else { return nil }
        switch (a.message, b.message) {
        case let (.prePrepare(v1, h1, x), .prePrepare(v2, h2, y)), let (.prepare(v1, h1, x), .prepare(v2, h2, y)),
             let (.commit(v1, h1, x), .commit(v2, h2, y)):
            guard v1 == v2, h1 == h2, x != y else { return nil }
        case let (.checkpoint(h1, x, r1), .checkpoint(h2, y, r2)):
            guard h1 == h2, x != y || r1 != r2 else { return nil }
        default:
            return nil
        }
        guard a.verify(chain: chain), b.verify(chain: chain) else { return nil }
        return Equivocation(first: a, second: b)
    }
}
