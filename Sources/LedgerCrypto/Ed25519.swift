import CSodium
import LedgerCore

/// An Ed25519 signing key. The 32-byte seed is the secret; the same seed always gives
/// the same key, which is what lets seeded workloads be deterministic.
public struct SigningKey: Sendable {
    public let seed: [UInt8]
    public let publicKey: PublicKey
    let secret: [UInt8]  // libsodium's 64-byte form: seed | public key

    public init(seed: [UInt8]) throws(CryptoError) {
        Libsodium.ensure()
        guard seed.count == 32 else { throw .invalidKey("seed must be 32 bytes, got \(seed.count)") }
        var pk = [UInt8](repeating: 0, count: 32)
        var sk = [UInt8](repeating: 0, count: 64)
        guard crypto_sign_seed_keypair(&pk, &sk, seed) == 0 else { throw .invalidKey("libsodium rejected the seed") }
        self.seed = seed
        self.secret = sk
        self.publicKey = PublicKey(pk)
    }

    public static func generate() -> SigningKey {
        try! SigningKey(seed: SecureRandom.bytes(32))  // 32 bytes always makes a key
    }

    /// A key derived from a label, for deterministic workloads and tests only.
    public static func derived(_ label: String) -> SigningKey {
        try! SigningKey(seed: Blake2b.hash(Array("chaosledger-test-key:\(label)".utf8)).bytes)
    }

    public func sign(_ message: [UInt8]) -> Signature {
        var sig = [UInt8](repeating: 0, count: 64)
        message.withUnsafeBufferPointer { m in
            _ = crypto_sign_detached(&sig, nil, m.baseAddress, UInt64(m.count), secret)
        }
        return Signature(sig)
    }
}

public enum Ed25519 {
    public static func verify(_ signature: Signature, _ message: UnsafeRawBufferPointer, _ key: PublicKey) -> Bool {
        Libsodium.ensure()
        return signature.withBytes { s in
            key.withBytes { k in
                crypto_sign_verify_detached(s.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                            message.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                            UInt64(message.count), k.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
            }
        }
    }

    public static func verify(_ signature: Signature, _ message: [UInt8], _ key: PublicKey) -> Bool {
        message.withUnsafeBytes { verify(signature, $0, key) }
    }
}

public enum CryptoError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidKey(String)
    case badSignature(what: String)
    case keyFile(path: String, reason: String)
    case wrongPassphrase(path: String)

    public var description: String {
        switch self {
        case let .invalidKey(r): "invalid key: \(r)"
        case let .badSignature(w): "bad signature on \(w)"
        case let .keyFile(p, r): "key file \(p): \(r)"
        case let .wrongPassphrase(p): "key file \(p): wrong passphrase or damaged file"
        }
    }
}
