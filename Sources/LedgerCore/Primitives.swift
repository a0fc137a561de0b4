/// The cryptographic primitives the pure modules use, as protocols: whoever runs them
/// (the node, the audit tools, the simulator, the tests) hands in an implementation —
/// LedgerCrypto's `Sodium`, over libsodium. The pure modules (Core, Tree, Projections,
/// Consensus, Agents) import no crypto library; `LayeringTests` fails if one does.
///
/// The rules built on them (what is hashed and signed, byte for byte) live here and in
/// `schemas/FORMAT.md`, so they are written once whatever the implementation.
public protocol Hashing: Sendable {
    /// BLAKE2b-256 of `bytes`.
    func hash(_ bytes: UnsafeRawBufferPointer) -> Hash32
}

extension Hashing {
    public func hash(_ bytes: [UInt8]) -> Hash32 { bytes.withUnsafeBytes { hash($0) } }
    public func hash(_ bytes: ArraySlice<UInt8>) -> Hash32 { bytes.withUnsafeBytes { hash($0) } }
}

/// Hashing and Ed25519 verification: what checking anything signed needs.
public protocol Primitives: Hashing {
    /// Whether `signature` is `key`'s Ed25519 signature of `message`.
    func verify(_ signature: Signature, _ message: UnsafeRawBufferPointer, _ key: PublicKey) -> Bool
}

extension Primitives {
    public func verify(_ signature: Signature, _ message: [UInt8], _ key: PublicKey) -> Bool {
        message.withUnsafeBytes { verify(signature, $0, key) }
    }
}

/// An Ed25519 signing key, held by whoever runs the pure modules (LedgerCrypto's
/// `SigningKey`); a replica signs its votes and opinions through it.
public protocol Signer: Sendable {
    var publicKey: PublicKey { get }
    func sign(_ message: [UInt8]) -> Signature
}

// MARK: - Events

extension Envelope {
    /// The id of the event whose stored bytes are `bytes`: BLAKE2b-256 of them.
    public static func id(_ bytes: [UInt8], _ h: some Hashing) -> EventID { EventID(h.hash(bytes)) }

    /// Signs `unsigned` (from `Envelope.unsigned`) and returns the stored bytes.
    public static func sign(unsigned: [UInt8], chain: ChainID, signer: some Signer) -> [UInt8] {
        let sig = signer.sign(Domain.event(chain.raw) + unsigned)
        var out = unsigned
        sig.append(to: &out)
        return out
    }

    /// Builds, signs and decodes an event in one step.
    public static func signed(chain: ChainID, signer: some Signer, nonce: UInt64, fee: UInt64, payload: Payload) -> Envelope {
        let unsigned = Envelope.unsigned(chainID: chain, author: signer.publicKey, nonce: nonce, fee: fee, payload: payload)
        // The bytes were just built from valid values; a decode failure is a programmer error.
        return try! Envelope(bytes: sign(unsigned: unsigned, chain: chain, signer: signer))
    }

    /// Verifies the author's signature. `scratch` is reused to avoid an allocation per
    /// event; it keeps the domain prefix while the chain and version stay the same.
    public func verifySignature(_ p: some Primitives, scratch: inout [UInt8]) -> Bool {
        let prefixCount = 17 + 1 + 2 + 32  // "CHAOSLEDGER/EVENT", 0, version, chain id
        let current = scratch.count >= prefixCount
            && scratch.withUnsafeBytes { s in
                UInt16(bigEndian: s.loadUnaligned(fromByteOffset: 18, as: UInt16.self)) == version
                    && Bytes32(UnsafeRawBufferPointer(rebasing: s[20 ..< 52])) == chainID
            }
        if current {
            scratch.removeSubrange(prefixCount...)
        } else {
            scratch.removeAll(keepingCapacity: true)
            scratch.append(contentsOf: Domain.event(chainID, version: version))
            precondition(scratch.count == prefixCount, "event domain prefix layout changed")
        }
        scratch.append(contentsOf: signedBytes)
        return p.verify(signature, scratch, author)
    }
}

// MARK: - Certificates, rotations, consensus messages

extension CommitCertificate {
    public static func vote(chain: Bytes32, height: Height, view: View, blockHash: Hash32, signer: some Signer) -> Vote {
        .init(key: signer.publicKey, signature: signer.sign(message(chain: chain, height: height, view: view, blockHash: blockHash)))
    }

    /// Whether `v` signs this certificate's block on `chain`.
    public func verifies(_ v: Vote, chain: Bytes32, _ p: some Primitives) -> Bool {
        p.verify(v.signature, Self.message(chain: chain, height: height, view: view, blockHash: blockHash), v.key)
    }
}

extension KeyRotation {
    /// A rotation signed by the current consensus key and the new key.
    public static func signed(chain: ChainID, validator: ValidatorID, nonce: UInt64, old: some Signer, new: some Signer) -> KeyRotation {
        let s = statement(chain: chain.raw, validator: validator, oldKey: old.publicKey, newKey: new.publicKey, nonce: nonce)
        return KeyRotation(oldKey: old.publicKey, newKey: new.publicKey, oldKeySignature: old.sign(s), newKeySignature: new.sign(s))
    }

    /// Whether both keys signed this rotation of `validator` at `nonce` on `chain`.
    public func verifies(chain: Bytes32, validator: ValidatorID, nonce: UInt64, _ p: some Primitives) -> Bool {
        let s = Self.statement(chain: chain, validator: validator, oldKey: oldKey, newKey: newKey, nonce: nonce)
        return p.verify(oldKeySignature, s, oldKey) && p.verify(newKeySignature, s, newKey)
    }
}

extension SignedConsensusMessage {
    public static func sign(_ m: ConsensusMessage, chain: Bytes32, signer: some Signer) -> SignedConsensusMessage {
        SignedConsensusMessage(message: m, signer: signer.publicKey, signature: signer.sign(m.statement(chain: chain)))
    }

    public func verify(chain: Bytes32, _ p: some Primitives) -> Bool {
        p.verify(signature, message.statement(chain: chain), signer)
    }
}

/// Proof that a validator signed two different blocks in the same role, view and height.
public struct Equivocation: Sendable, Hashable {
    public let first: SignedConsensusMessage
    public let second: SignedConsensusMessage

    /// Returns evidence when `a` and `b` conflict: same signer, same kind, view and
    /// height, different blocks, and both signatures valid. Nil otherwise (a forged or
    /// duplicate pair is no evidence).
    public static func detect(_ a: SignedConsensusMessage, _ b: SignedConsensusMessage, chain: Bytes32,
                              _ p: some Primitives) -> Equivocation? {
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
        guard a.verify(chain: chain, p), b.verify(chain: chain, p) else { return nil }
        return Equivocation(first: a, second: b)
    }
}

// MARK: - Events root (schemas/FORMAT.md §4.1)

/// The Merkle tree over a block's event ids (RFC 6962 shape): leaf = H(0x00 | id),
/// node = H(0x01 | left | right), split at the largest power of two below n; the empty
/// root is H() of nothing.
public enum EventsTree {
    public static func root(_ ids: [EventID], _ h: some Hashing) -> Hash32 {
        if ids.isEmpty { return h.hash([UInt8]()) }
        var buf = [UInt8](repeating: 0, count: 65)
        var level: [Hash32] = ids.map { id in node(&buf, 0, id.raw, nil, h) }
        return merkle(&level, 0, level.count, &buf, h)
    }

    /// The RFC 6962 audit path of the event at `index` among `ids`, the sibling nearest
    /// the leaf first.
    public static func path(_ ids: [EventID], index: Int, _ h: some Hashing) -> [Hash32] {
        precondition(index >= 0 && index < ids.count, "the event is in the block")
        var buf = [UInt8](repeating: 0, count: 65)
        var level: [Hash32] = ids.map { id in node(&buf, 0, id.raw, nil, h) }
        var path: [Hash32] = []
        func walk(_ lo: Int, _ hi: Int, _ m: Int) {
            let n = hi - lo
            guard n > 1 else { return }
            var k = 1
            while k << 1 < n { k <<= 1 }
            if m < k {
                walk(lo, lo + k, m)
                path.append(merkle(&level, lo + k, hi, &buf, h))
            } else {
                walk(lo + k, hi, m - k)
                path.append(merkle(&level, lo, lo + k, &buf, h))
            }
        }
        walk(0, level.count, index)
        return path
    }

    /// The events root an audit path implies for `id` at `index` of `count` events (RFC
    /// 9162 §2.1.3.2), nil when the path cannot be one for that place.
    public static func root(id: EventID, index: UInt32, count: UInt32, path: [Hash32], _ h: some Hashing) -> Hash32? {
        guard index < count else { return nil }
        var buf = [UInt8](repeating: 0, count: 65)
        var fn = UInt64(index), sn = UInt64(count) - 1
        var r = node(&buf, 0, id.raw, nil, h)
        for p in path {
            guard sn != 0 else { return nil }
            if fn & 1 == 1 || fn == sn {
                r = node(&buf, 1, p, r, h)
                if fn & 1 == 0 { while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 } }
            } else {
                r = node(&buf, 1, r, p, h)
            }
            fn >>= 1; sn >>= 1
        }
        return sn == 0 ? r : nil
    }

    /// H(tag | a | b?) through one reused buffer.
    static func node(_ buf: inout [UInt8], _ tag: UInt8, _ a: Hash32, _ b: Hash32?, _ h: some Hashing) -> Hash32 {
        buf.withUnsafeMutableBytes { p in
            p[0] = tag
            a.withBytes { UnsafeMutableRawBufferPointer(rebasing: p[1 ..< 33]).copyMemory(from: $0) }
            if let b { b.withBytes { UnsafeMutableRawBufferPointer(rebasing: p[33 ..< 65]).copyMemory(from: $0) } }
            return h.hash(UnsafeRawBufferPointer(rebasing: p[0 ..< (b == nil ? 33 : 65)]))
        }
    }

    static func merkle(_ leaves: inout [Hash32], _ lo: Int, _ hi: Int, _ buf: inout [UInt8], _ h: some Hashing) -> Hash32 {
        let n = hi - lo
        if n == 1 { return leaves[lo] }
        var k = 1
        while k << 1 < n { k <<= 1 }
        let l = merkle(&leaves, lo, lo + k, &buf, h)
        let r = merkle(&leaves, lo + k, hi, &buf, h)
        return node(&buf, 1, l, r, h)
    }
}
