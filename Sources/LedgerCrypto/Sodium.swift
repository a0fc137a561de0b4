import CSodium
import LedgerCore

/// libsodium must be initialised once before use; `sodium_init` is thread-safe and idempotent.
enum Libsodium {
    static let ready: Bool = {
        precondition(sodium_init() >= 0, "libsodium failed to initialise")
        return true
    }()
    @inline(__always) static func ensure() { _ = ready }
}

/// The primitives the pure modules take (LedgerCore's `Primitives`), over libsodium:
/// BLAKE2b-256 and Ed25519 verification. What the node, the audit tools, the simulator
/// and the tests hand to the state, the replica and the personalities.
public struct Sodium: Primitives {
    public init() {}
    @inline(__always) public func hash(_ bytes: UnsafeRawBufferPointer) -> Hash32 { Blake2b.hash(bytes) }
    @inline(__always) public func verify(_ signature: Signature, _ message: UnsafeRawBufferPointer, _ key: PublicKey) -> Bool {
        Ed25519.verify(signature, message, key)
    }
}

extension SigningKey: Signer {}

/// BLAKE2b-256.
public enum Blake2b {
    public static func hash(_ p: UnsafeRawBufferPointer) -> Hash32 {
        Libsodium.ensure()
        var out: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &out) { o in
            _ = crypto_generichash(o.baseAddress!.assumingMemoryBound(to: UInt8.self), 32,
                                   p.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(p.count), nil, 0)
            return Hash32(UnsafeRawBufferPointer(o))
        }
    }
    public static func hash(_ data: [UInt8]) -> Hash32 { data.withUnsafeBytes { hash($0) } }
    public static func hash(_ data: ArraySlice<UInt8>) -> Hash32 { data.withUnsafeBytes { hash($0) } }
}

/// Cryptographically secure random bytes (keys, salts, nonces) — never used by folds.
public enum SecureRandom {
    public static func bytes(_ n: Int) -> [UInt8] {
        Libsodium.ensure()
        var b = [UInt8](repeating: 0, count: n)
        randombytes_buf(&b, n)
        return b
    }
}
