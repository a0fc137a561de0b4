import CSodium
import LedgerCore

// The libsodium calls of the TCP mesh (LedgerMesh may not import CSodium; STYLE §8).
// Wire layout and the handshake transcript are in FORMAT.md §11.

/// Mesh handshake and session crypto: X25519 key exchange (crypto_kx) and the
/// per-direction XChaCha20-Poly1305 frame cipher.
public enum MeshCrypto {
    public static let kxPublicKeyBytes = 32
    public static let sessionKeyBytes = 32
    /// What sealing adds to a plaintext (the Poly1305 tag).
    public static let tagBytes = 16

    /// A fresh ephemeral key-exchange key pair, one per connection attempt, so a
    /// leaked session key says nothing about another session.
    public struct KxKeyPair: Sendable {
        public let publicKey: [UInt8]
        let secret: [UInt8]

        public static func generate() -> KxKeyPair {
            Libsodium.ensure()
            var pk = [UInt8](repeating: 0, count: Int(crypto_kx_PUBLICKEYBYTES))
            var sk = [UInt8](repeating: 0, count: Int(crypto_kx_SECRETKEYBYTES))
            precondition(crypto_kx_keypair(&pk, &sk) == 0, "crypto_kx_keypair failed")
            return KxKeyPair(publicKey: pk, secret: sk)
        }
    }

    /// The two keys of one side of a session: `rx` opens what the other side sealed
    /// with its `tx`.
    public struct SessionKeys: Sendable, Equatable {
        public let rx: [UInt8]
        public let tx: [UInt8]
    }

    public enum Side: Sendable { case initiator, responder }

    /// Derives this side's session keys. The initiator (the dialer) is crypto_kx's
    /// client, the responder its server. Fails when the peer's public key is not a
    /// valid point (libsodium refuses low-order points).
    public static func sessionKeys(_ own: KxKeyPair, peer: [UInt8], side: Side) throws(CryptoError) -> SessionKeys {
        Libsodium.ensure()
        guard peer.count == kxPublicKeyBytes else { throw .invalidKey("kx public key must be 32 bytes, got \(peer.count)") }
        var rx = [UInt8](repeating: 0, count: sessionKeyBytes)
        var tx = [UInt8](repeating: 0, count: sessionKeyBytes)
        let rc = switch side {
        case .initiator: crypto_kx_client_session_keys(&rx, &tx, own.publicKey, own.secret, peer)
        case .responder: crypto_kx_server_session_keys(&rx, &tx, own.publicKey, own.secret, peer)
        }
        guard rc == 0 else { throw .invalidKey("kx public key refused") }
        return SessionKeys(rx: rx, tx: tx)
    }

    /// One direction of a session: XChaCha20-Poly1305 under one key, with the nonce
    /// taken from a counter both ends keep (16 zero bytes | u64 big-endian counter).
    /// The counter is never sent; the receiver expects exactly the next one, so a
    /// replayed, reordered, dropped or forged frame fails to open.
    public struct FrameCipher: Sendable {
        let key: [UInt8]
        public private(set) var counter: UInt64 = 0

        public init(key: [UInt8]) {
            precondition(key.count == sessionKeyBytes, "session key must be 32 bytes")
            self.key = key
        }

        static func nonce(_ counter: UInt64) -> [UInt8] {
            var n = [UInt8](repeating: 0, count: Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES))
            withUnsafeBytes(of: counter.bigEndian) { c in
                for i in 0 ..< 8 { n[16 + i] = c[i] }
            }
            return n
        }

        /// Seals the next frame. A session that sent 2^64 frames has to end rather
        /// than reuse a nonce (it cannot happen, but a reused nonce would be fatal).
        public mutating func seal(_ plaintext: [UInt8]) -> [UInt8] {
            precondition(counter < UInt64.max, "mesh session nonce exhausted")
            var out = [UInt8](repeating: 0, count: plaintext.count + tagBytes)
            var outLen: UInt64 = 0
            let n = Self.nonce(counter)
            let rc = crypto_aead_xchacha20poly1305_ietf_encrypt(&out, &outLen, plaintext, UInt64(plaintext.count),
                                                                nil, 0, nil, n, key)
            precondition(rc == 0 && Int(outLen) == out.count, "xchacha20poly1305 encrypt failed")
            counter += 1
            return out
        }

        /// Opens the next frame; on failure the counter does not move (the caller
        /// drops the connection anyway).
        public mutating func open(_ ciphertext: [UInt8]) throws(CryptoError) -> [UInt8] {
            guard ciphertext.count >= tagBytes, counter < UInt64.max else { throw .badSignature(what: "mesh frame") }
            var out = [UInt8](repeating: 0, count: ciphertext.count - tagBytes)
            var outLen: UInt64 = 0
            let n = Self.nonce(counter)
            let rc = crypto_aead_xchacha20poly1305_ietf_decrypt(&out, &outLen, nil, ciphertext, UInt64(ciphertext.count),
                                                                nil, 0, n, key)
            guard rc == 0 else { throw .badSignature(what: "mesh frame") }
            counter += 1
            return Array(out.prefix(Int(outLen)))
        }
    }
}
