import CSodium
import Foundation
import LedgerCore

/// Key files: JSON holding the public key and either the 32-byte seed or the seed sealed
/// with XSalsa20-Poly1305 (secretbox) under a key derived from a passphrase by argon2id
/// (schemas/FORMAT.md §8). Files are created with mode 0600 and refused on read when any
/// group or other permission bit is set, as ssh does.
public enum KeyFile {
    struct Sealed: Codable {
        var kdf: String
        var opslimit: UInt64
        var memlimit: UInt64
        var salt: String
        var nonce: String
        var ciphertext: String
    }
    struct Document: Codable {
        var format: String
        var version: Int
        var publicKey: String
        var seed: String?
        var encrypted: Sealed?
    }

    /// argon2id "interactive" limits by default; tests pass smaller ones.
    public struct KDFCost: Sendable {
        public var opslimit: UInt64
        public var memlimit: UInt64
        public static let interactive = KDFCost(opslimit: UInt64(crypto_pwhash_OPSLIMIT_INTERACTIVE),
                                                memlimit: UInt64(crypto_pwhash_MEMLIMIT_INTERACTIVE))
        public static let minimum = KDFCost(opslimit: UInt64(crypto_pwhash_OPSLIMIT_MIN), memlimit: 8192)
        public init(opslimit: UInt64, memlimit: UInt64) { self.opslimit = opslimit; self.memlimit = memlimit }
    }

    public static func write(_ key: SigningKey, to path: String, passphrase: String? = nil, cost: KDFCost = .interactive) throws(CryptoError) {
        var doc = Document(format: "chaosledger-key", version: 1, publicKey: key.publicKey.hex, seed: nil, encrypted: nil)
        if let passphrase {
            let salt = SecureRandom.bytes(Int(crypto_pwhash_SALTBYTES))
            let nonce = SecureRandom.bytes(Int(crypto_secretbox_NONCEBYTES))
            let k = try derive(passphrase, salt: salt, cost: cost, path: path)
            var ct = [UInt8](repeating: 0, count: key.seed.count + Int(crypto_secretbox_MACBYTES))
            guard crypto_secretbox_easy(&ct, key.seed, UInt64(key.seed.count), nonce, k) == 0 else {
                throw .keyFile(path: path, reason: "encryption failed")
            }
            doc.encrypted = Sealed(kdf: "argon2id13", opslimit: cost.opslimit, memlimit: cost.memlimit,
                                   salt: Hex.encode(salt), nonce: Hex.encode(nonce), ciphertext: Hex.encode(ct))
        } else {
            doc.seed = Hex.encode(key.seed)
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? enc.encode(doc) else { throw .keyFile(path: path, reason: "cannot encode") }
        // O_EXCL: never overwrite an existing key by accident.
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw .keyFile(path: path, reason: "cannot create: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let ok = data.withUnsafeBytes { p in Foundation.write(fd, p.baseAddress, p.count) == p.count }
        guard ok, fsync(fd) == 0 else { throw .keyFile(path: path, reason: "write failed: \(String(cString: strerror(errno)))") }
    }

    public static func read(from path: String, passphrase: String? = nil) throws(CryptoError) -> SigningKey {
        var st = stat()
        guard stat(path, &st) == 0 else { throw .keyFile(path: path, reason: "cannot stat: \(String(cString: strerror(errno)))") }
        guard st.st_mode & 0o077 == 0 else {
            throw .keyFile(path: path, reason: "permissions \(String(st.st_mode & 0o777, radix: 8)) are too open; chmod 600")
        }
        guard st.st_size <= 64 * 1024, let data = FileManager.default.contents(atPath: path) else {
            throw .keyFile(path: path, reason: "cannot read, or larger than 64 KiB")
        }
        guard let doc = try? JSONDecoder().decode(Document.self, from: data), doc.format == "chaosledger-key", doc.version == 1 else {
            throw .keyFile(path: path, reason: "not a chaosledger-key version 1 document")
        }
        let seed: [UInt8]
        if let hex = doc.seed {
            guard let s = Hex.decode(hex), s.count == 32 else { throw .keyFile(path: path, reason: "seed is not 32 hex bytes") }
            seed = s
        } else if let e = doc.encrypted {
            guard let passphrase else { throw .keyFile(path: path, reason: "the key is encrypted: a passphrase is needed") }
            guard e.kdf == "argon2id13", let salt = Hex.decode(e.salt), salt.count == Int(crypto_pwhash_SALTBYTES),
                  let nonce = Hex.decode(e.nonce), nonce.count == Int(crypto_secretbox_NONCEBYTES),
                  let ct = Hex.decode(e.ciphertext), ct.count == 32 + Int(crypto_secretbox_MACBYTES),
                  e.memlimit <= 1 << 32, e.opslimit <= 64
            else { throw .keyFile(path: path, reason: "malformed encrypted section") }
            let k = try derive(passphrase, salt: salt, cost: KDFCost(opslimit: e.opslimit, memlimit: e.memlimit), path: path)
            var s = [UInt8](repeating: 0, count: 32)
            guard crypto_secretbox_open_easy(&s, ct, UInt64(ct.count), nonce, k) == 0 else { throw .wrongPassphrase(path: path) }
            seed = s
        } else {
            throw .keyFile(path: path, reason: "neither seed nor encrypted seed present")
        }
        let key = try SigningKey(seed: seed)
        guard key.publicKey.hex == doc.publicKey.lowercased() else {
            throw .keyFile(path: path, reason: "public key does not match the seed")
        }
        return key
    }

    static func derive(_ passphrase: String, salt: [UInt8], cost: KDFCost, path: String) throws(CryptoError) -> [UInt8] {
        Libsodium.ensure()
        var k = [UInt8](repeating: 0, count: Int(crypto_secretbox_KEYBYTES))
        let pw = Array(passphrase.utf8).map { CChar(bitPattern: $0) }
        guard crypto_pwhash(&k, UInt64(k.count), pw, UInt64(pw.count), salt, cost.opslimit, Int(cost.memlimit),
                            crypto_pwhash_ALG_ARGON2ID13) == 0
        else { throw .keyFile(path: path, reason: "argon2id failed (out of memory?)") }
        return k
    }
}
