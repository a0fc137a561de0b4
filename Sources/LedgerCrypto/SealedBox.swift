import CSodium
import LedgerCore

/// Messages between agents (`message.send`, rule version 3): libsodium's sealed box
/// (`crypto_box_seal`: an ephemeral X25519 key, XSalsa20-Poly1305) to the X25519 form
/// of the recipient's Ed25519 key (`crypto_sign_ed25519_pk_to_curve25519`). Only the
/// holder of the recipient's signing key opens it; the sender stays anonymous inside
/// the box, and the envelope's signature says who sent it.
public enum SealedBox {
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// The recipient's key is not a valid Ed25519 point (it has no X25519 form).
        case notAnAgentKey
        case tooLong(Int, max: Int)
        /// The box does not open with this key: not for it, or altered.
        case cannotOpen
        public var description: String {
            switch self {
            case .notAnAgentKey: "the recipient key has no X25519 form"
            case let .tooLong(n, m): "a message of \(n) bytes is above \(m)"
            case .cannotOpen: "the box does not open with this key (not addressed to it, or altered)"
            }
        }
    }

    /// The longest message that fits `Limits.messageBytesMax` once sealed.
    public static let messageBytesMax = Limits.messageBytesMax - Limits.sealedBoxOverheadBytes

    /// The X25519 public key of an Ed25519 public key.
    public static func x25519(_ key: PublicKey) throws(Failure) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        guard crypto_sign_ed25519_pk_to_curve25519(&out, key.bytes) == 0 else { throw .notAnAgentKey }
        return out
    }

    public static func seal(_ message: [UInt8], to key: PublicKey) throws(Failure) -> [UInt8] {
        guard message.count <= messageBytesMax else { throw .tooLong(message.count, max: messageBytesMax) }
        let pk = try x25519(key)
        var out = [UInt8](repeating: 0, count: message.count + Int(crypto_box_sealbytes()))
        guard crypto_box_seal(&out, message, UInt64(message.count), pk) == 0 else { throw .notAnAgentKey }
        return out
    }

    /// The same construction with the ephemeral key pair derived from `seed` (32 bytes),
    /// for seeded workloads whose logs must be byte-identical run after run. The box is
    /// `ephemeral public key | crypto_box_easy(message, nonce, recipient, ephemeral secret)`
    /// with nonce = BLAKE2b-192(ephemeral public key | recipient key), exactly what
    /// `crypto_box_seal` makes with a random key pair, so `open` (and any libsodium) opens it.
    /// Never for real messages: a known seed reveals the content.
    public static func seal(_ message: [UInt8], to key: PublicKey, ephemeralSeed seed: [UInt8]) throws(Failure) -> [UInt8] {
        precondition(seed.count == 32, "an ephemeral seed has 32 bytes")
        guard message.count <= messageBytesMax else { throw .tooLong(message.count, max: messageBytesMax) }
        let pk = try x25519(key)
        var epk = [UInt8](repeating: 0, count: 32), esk = [UInt8](repeating: 0, count: 32)
        _ = crypto_box_seed_keypair(&epk, &esk, seed)
        var nonce = [UInt8](repeating: 0, count: 24)
        let input = epk + pk
        _ = crypto_generichash(&nonce, 24, input, UInt64(input.count), nil, 0)
        var ct = [UInt8](repeating: 0, count: message.count + Int(crypto_box_macbytes()))
        guard crypto_box_easy(&ct, message, UInt64(message.count), nonce, pk, esk) == 0 else { throw .notAnAgentKey }
        return epk + ct
    }

    public static func open(_ box: [UInt8], with key: SigningKey) throws(Failure) -> [UInt8] {
        guard box.count >= Int(crypto_box_sealbytes()) else { throw .cannotOpen }
        let pk = try x25519(key.publicKey)
        var sk = [UInt8](repeating: 0, count: 32)
        guard crypto_sign_ed25519_sk_to_curve25519(&sk, key.secret) == 0 else { throw .cannotOpen }
        defer { sodium_memzero(&sk, sk.count) }
        var out = [UInt8](repeating: 0, count: box.count - Int(crypto_box_sealbytes()))
        guard crypto_box_seal_open(&out, box, UInt64(box.count), pk, sk) == 0 else { throw .cannotOpen }
        return out
    }
}
