import LedgerCore
import LedgerCrypto

/// The mesh's bytes (FORMAT.md §11). Public so that tests can speak the protocol
/// from a raw socket with the same code the mesh uses.
public enum MeshWire {
    public static let magic: [UInt8] = Array("CLMESH".utf8)
    public static let version: UInt16 = 1
    /// Domain tag of the handshake signature: it can never verify as any other
    /// ChaosLedger signature (those start with their own tags, FORMAT.md §2.1).
    public static let transcriptTag: [UInt8] = Array("chaosledger/mesh/v1".utf8)
    /// The first two frames of a connection (HELLO, AUTH) are at most this long, so a
    /// stranger cannot make us buffer a 32 MiB frame before it has proved a key.
    public static let handshakeFrameBytesMax = 256
    /// Peer lists carry at most this many entries.
    public static let peerListEntriesMax = 64
    public static let hostBytesMax = 255

    // MARK: Handshake

    public struct Hello: Sendable, Equatable {
        public var chainID: Bytes32
        public var nodeKey: PublicKey
        public var kxPublicKey: [UInt8]
        public var nonce: [UInt8]
        /// The port this node accepts connections on (0: it does not listen).
        public var listenPort: UInt16

        public static let bytes = 6 + 2 + 32 + 32 + 32 + 32 + 2

        public init(chainID: Bytes32, nodeKey: PublicKey, kxPublicKey: [UInt8], nonce: [UInt8], listenPort: UInt16) {
            precondition(kxPublicKey.count == 32 && nonce.count == 32, "hello keys and nonce are 32 bytes")
            self.chainID = chainID; self.nodeKey = nodeKey; self.kxPublicKey = kxPublicKey
            self.nonce = nonce; self.listenPort = listenPort
        }

        public func encoded() -> [UInt8] {
            var w = ByteWriter(capacity: Self.bytes)
            w.raw(MeshWire.magic); w.u16(MeshWire.version); w.b32(chainID); w.b32(nodeKey)
            w.raw(kxPublicKey); w.raw(nonce); w.u16(listenPort)
            return w.bytes
        }

        public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Hello {
            var r = ByteReader(bytes)
            guard Array(try r.raw(6, "hello.magic")) == MeshWire.magic else {
                throw .invalidValue(field: "hello.magic", reason: "not a ChaosLedger mesh peer")
            }
            let v = try r.u16("hello.version")
            guard v == MeshWire.version else { throw .unsupportedVersion(field: "mesh", version: v) }
            let h = Hello(chainID: try r.b32("hello.chain"), nodeKey: try r.b32("hello.key"),
                          kxPublicKey: Array(try r.raw(32, "hello.kx")), nonce: Array(try r.raw(32, "hello.nonce")),
                          listenPort: try r.u16("hello.port"))
            try r.end()
            return h
        }
    }

    /// Which end of the connection signed a transcript; part of what is signed, so
    /// a signature cannot be reflected back to the side that made it.
    public enum Side: UInt8, Sendable {
        case initiator = 1
        case responder = 2
    }

    /// What each side's AUTH signs: both HELLOs (so both key-exchange keys, both
    /// nonces and the chain) in a fixed order, and the signer's side.
    public static func transcript(chainID: Bytes32, initiatorHello: [UInt8], responderHello: [UInt8], signer: Side) -> [UInt8] {
        var w = ByteWriter(capacity: transcriptTag.count + 32 + 2 * Hello.bytes + 1)
        w.raw(transcriptTag); w.b32(chainID); w.raw(initiatorHello); w.raw(responderHello); w.u8(signer.rawValue)
        return w.bytes
    }

    /// AUTH is the bare 64-byte signature.
    public static func decodeAuth(_ bytes: [UInt8]) throws(DecodeError) -> Signature {
        var r = ByteReader(bytes)
        let s = try r.b64("auth.signature")
        try r.end()
        return s
    }

    // MARK: Session frames (plaintext of each encrypted frame)

    public struct PeerAddress: Sendable, Hashable {
        public var key: PublicKey
        public var host: String
        public var port: UInt16
        public init(key: PublicKey, host: String, port: UInt16) { self.key = key; self.host = host; self.port = port }
        public var address: String { "\(host):\(port)" }
    }

    public enum Plain: Sendable, Equatable {
        /// The encoded PeerMessage (FORMAT.md §10); decoded by the receiver's handler.
        case message([UInt8])
        case ping(UInt64)
        case pong(UInt64)
        case peers([PeerAddress])

        public func encoded() -> [UInt8] {
            var w: ByteWriter
            switch self {
            case let .message(m): w = ByteWriter(capacity: m.count + 1); w.u8(1); w.raw(m)
            case let .ping(n): w = ByteWriter(capacity: 9); w.u8(2); w.u64(n)
            case let .pong(n): w = ByteWriter(capacity: 9); w.u8(3); w.u64(n)
            case let .peers(list):
                precondition(list.count <= peerListEntriesMax, "peer list over its limit")
                w = ByteWriter(); w.u8(4); w.u16(UInt16(list.count))
                for p in list {
                    w.b32(p.key); w.string(String(decoding: Array(p.host.utf8.prefix(hostBytesMax)), as: UTF8.self)); w.u16(p.port)
                }
            }
            return w.bytes
        }

        public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Plain {
            var r = ByteReader(bytes)
            let kind = try r.u8("mesh.kind")
            let p: Plain
            switch kind {
            case 1: return .message(Array(bytes.dropFirst()))
            case 2: p = .ping(try r.u64("ping.nonce"))
            case 3: p = .pong(try r.u64("pong.nonce"))
            case 4:
                let n = try r.count("peers.count", max: peerListEntriesMax)
                var list: [PeerAddress] = []
                for _ in 0 ..< n {
                    list.append(PeerAddress(key: try r.b32("peers.key"), host: try r.string("peers.host", max: hostBytesMax),
                                            port: try r.u16("peers.port")))
                }
                p = .peers(list)
            default: throw .invalidValue(field: "mesh.kind", reason: "unknown frame kind \(kind)")
            }
            try r.end()
            return p
        }
    }
}
