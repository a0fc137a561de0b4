import CSodium
import LedgerCore

/// libsodium must be initialised once before use; `sodium_init` is thread-safe and idempotent.
enum Sodium {
    static let ready: Bool = {
        precondition(sodium_init() >= 0, "libsodium failed to initialise")
        return true
    }()
    @inline(__always) static func ensure() { _ = ready }
}

/// BLAKE2b-256.
public enum Blake2b {
    public static func hash(_ p: UnsafeRawBufferPointer) -> Hash32 {
        Sodium.ensure()
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
        Sodium.ensure()
        var b = [UInt8](repeating: 0, count: n)
        randombytes_buf(&b, n)
        return b
    }
}
