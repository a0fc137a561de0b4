import LedgerCore

/// Signing and verification of events, certificates and rotations, always over a
/// domain-separation prefix followed by the exact stored bytes (ARCHITECTURE invariant 2).
public enum EventCrypto {
    /// Signs `unsigned` (from `Envelope.unsigned`) and returns the stored bytes.
    public static func sign(unsigned: [UInt8], chain: ChainID, key: SigningKey) -> [UInt8] {
        let sig = key.sign(Domain.event(chain.raw) + unsigned)
        var out = unsigned
        sig.append(to: &out)
        return out
    }

    /// Builds, signs and decodes an event in one step.
    public static func makeEvent(chain: ChainID, key: SigningKey, nonce: UInt64, fee: UInt64, payload: Payload) -> Envelope {
        let unsigned = Envelope.unsigned(chainID: chain, author: key.publicKey, nonce: nonce, fee: fee, payload: payload)
        // The bytes were just built from valid values; a decode failure is a programmer error.
        return try! Envelope(bytes: sign(unsigned: unsigned, chain: chain, key: key))
    }

    public static func id(_ bytes: [UInt8]) -> EventID { Blake2b.hash(bytes) }

    /// Verifies the author's signature. `scratch` is reused to avoid an allocation per
    /// event; it keeps the domain prefix while the chain and version stay the same.
    public static func verify(_ e: Envelope, scratch: inout [UInt8]) -> Bool {
        let prefixCount = 17 + 1 + 2 + 32  // "CHAOSLEDGER/EVENT", 0, version, chain id
        let current = scratch.count >= prefixCount
            && scratch.withUnsafeBytes { p in
                UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 18, as: UInt16.self)) == e.version
                    && Bytes32(UnsafeRawBufferPointer(rebasing: p[20 ..< 52])) == e.chainID
            }
        if current {
            scratch.removeSubrange(prefixCount...)
        } else {
            scratch.removeAll(keepingCapacity: true)
            scratch.append(contentsOf: Domain.event(e.chainID, version: e.version))
            precondition(scratch.count == prefixCount, "event domain prefix layout changed")
        }
        scratch.append(contentsOf: e.signedBytes)
        return Ed25519.verify(e.signature, scratch, e.author)
    }

    public static func verify(_ e: Envelope) -> Bool {
        var s: [UInt8] = []
        return verify(e, scratch: &s)
    }

    public static func signCommit(chain: Bytes32, height: Height, view: UInt64, blockHash: Hash32, key: SigningKey) -> CommitCertificate.Vote {
        let m = CommitCertificate.message(chain: chain, height: height, view: view, blockHash: blockHash)
        return .init(key: key.publicKey, signature: key.sign(m))
    }

    public static func verifyVote(_ v: CommitCertificate.Vote, chain: Bytes32, certificate c: CommitCertificate) -> Bool {
        Ed25519.verify(v.signature, CommitCertificate.message(chain: chain, height: c.height, view: c.view, blockHash: c.blockHash), v.key)
    }

    /// Builds a key rotation signed by the current consensus key and the new key.
    public static func rotation(chain: ChainID, validator: ValidatorID, nonce: UInt64, old: SigningKey, new: SigningKey) -> KeyRotation {
        let s = KeyRotation.statement(chain: chain.raw, validator: validator, oldKey: old.publicKey, newKey: new.publicKey, nonce: nonce)
        return KeyRotation(oldKey: old.publicKey, newKey: new.publicKey, oldKeySignature: old.sign(s), newKeySignature: new.sign(s))
    }

    public static func verifyRotation(_ r: KeyRotation, chain: Bytes32, validator: ValidatorID, nonce: UInt64) -> Bool {
        let s = KeyRotation.statement(chain: chain, validator: validator, oldKey: r.oldKey, newKey: r.newKey, nonce: nonce)
        return Ed25519.verify(r.oldKeySignature, s, r.oldKey) && Ed25519.verify(r.newKeySignature, s, r.newKey)
    }

    /// Merkle root of a block's event ids (schemas/FORMAT.md §4.1, RFC 6962 shape):
    /// leaf = H(0x00 | id), node = H(0x01 | left | right), split at the largest power of
    /// two below n; the empty root is H() of nothing.
    public static func eventsRoot(_ ids: [EventID]) -> Hash32 {
        if ids.isEmpty { return Blake2b.hash([UInt8]()) }
        var buf = [UInt8](repeating: 0, count: 65)
        var level: [Hash32] = ids.map { id in node(&buf, 0, id, nil) }
        return merkle(&level, 0, level.count, &buf)
    }

    /// The RFC 6962 audit path of the event at `index` among `ids` (§4.1 shape), the
    /// sibling nearest the leaf first.
    public static func eventsPath(_ ids: [EventID], index: Int) -> [Hash32] {
        precondition(index >= 0 && index < ids.count, "the event is in the block")
        var buf = [UInt8](repeating: 0, count: 65)
        var level: [Hash32] = ids.map { id in node(&buf, 0, id, nil) }
        var path: [Hash32] = []
        func walk(_ lo: Int, _ hi: Int, _ m: Int) {
            let n = hi - lo
            guard n > 1 else { return }
            var k = 1
            while k << 1 < n { k <<= 1 }
            if m < k {
                walk(lo, lo + k, m)
                path.append(merkle(&level, lo + k, hi, &buf))
            } else {
                walk(lo + k, hi, m - k)
                path.append(merkle(&level, lo, lo + k, &buf))
            }
        }
        walk(0, level.count, index)
        return path
    }

    /// The events root an audit path implies for `id` at `index` of `count` events (RFC
    /// 9162 §2.1.3.2), nil when the path cannot be one for that place.
    public static func eventsRoot(id: EventID, index: UInt32, count: UInt32, path: [Hash32]) -> Hash32? {
        guard index < count else { return nil }
        var buf = [UInt8](repeating: 0, count: 65)
        var fn = UInt64(index), sn = UInt64(count) - 1
        var r = node(&buf, 0, id, nil)
        for p in path {
            guard sn != 0 else { return nil }
            if fn & 1 == 1 || fn == sn {
                r = node(&buf, 1, p, r)
                if fn & 1 == 0 { while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 } }
            } else {
                r = node(&buf, 1, r, p)
            }
            fn >>= 1; sn >>= 1
        }
        return sn == 0 ? r : nil
    }

    /// H(tag | a | b?) through one reused buffer.
    static func node(_ buf: inout [UInt8], _ tag: UInt8, _ a: Hash32, _ b: Hash32?) -> Hash32 {
        buf.withUnsafeMutableBytes { p in
            p[0] = tag
            a.withBytes { UnsafeMutableRawBufferPointer(rebasing: p[1 ..< 33]).copyMemory(from: $0) }
            if let b { b.withBytes { UnsafeMutableRawBufferPointer(rebasing: p[33 ..< 65]).copyMemory(from: $0) } }
            return Blake2b.hash(UnsafeRawBufferPointer(rebasing: p[0 ..< (b == nil ? 33 : 65)]))
        }
    }

    static func merkle(_ leaves: inout [Hash32], _ lo: Int, _ hi: Int, _ buf: inout [UInt8]) -> Hash32 {
        let n = hi - lo
        if n == 1 { return leaves[lo] }
        var k = 1
        while k << 1 < n { k <<= 1 }
        let l = merkle(&leaves, lo, lo + k, &buf)
        let r = merkle(&leaves, lo + k, hi, &buf)
        return node(&buf, 1, l, r)
    }
}
