import LedgerCore

/// Signing and verification of events, certificates and rotations over libsodium: the
/// rules are LedgerCore's (Primitives.swift), this binds them to `Sodium` for the
/// modules that may import crypto (the node, audit, workload, tools and tests).
public enum EventCrypto {
    static let p = Sodium()

    /// Signs `unsigned` (from `Envelope.unsigned`) and returns the stored bytes.
    public static func sign(unsigned: [UInt8], chain: ChainID, key: SigningKey) -> [UInt8] {
        Envelope.sign(unsigned: unsigned, chain: chain, signer: key)
    }

    /// Builds, signs and decodes an event in one step.
    public static func makeEvent(chain: ChainID, key: SigningKey, nonce: UInt64, fee: UInt64, payload: Payload) -> Envelope {
        Envelope.signed(chain: chain, signer: key, nonce: nonce, fee: fee, payload: payload)
    }

    public static func id(_ bytes: [UInt8]) -> EventID { EventID(Blake2b.hash(bytes)) }

    /// Verifies the author's signature; `scratch` is reused between calls.
    public static func verify(_ e: Envelope, scratch: inout [UInt8]) -> Bool { e.verifySignature(p, scratch: &scratch) }

    public static func verify(_ e: Envelope) -> Bool {
        var s: [UInt8] = []
        return verify(e, scratch: &s)
    }

    public static func signCommit(chain: Bytes32, height: Height, view: View, blockHash: Hash32, key: SigningKey) -> CommitCertificate.Vote {
        CommitCertificate.vote(chain: chain, height: height, view: view, blockHash: blockHash, signer: key)
    }

    public static func verifyVote(_ v: CommitCertificate.Vote, chain: Bytes32, certificate c: CommitCertificate) -> Bool {
        c.verifies(v, chain: chain, p)
    }

    /// Builds a key rotation signed by the current consensus key and the new key.
    public static func rotation(chain: ChainID, validator: ValidatorID, nonce: UInt64, old: SigningKey, new: SigningKey) -> KeyRotation {
        KeyRotation.signed(chain: chain, validator: validator, nonce: nonce, old: old, new: new)
    }

    public static func verifyRotation(_ r: KeyRotation, chain: Bytes32, validator: ValidatorID, nonce: UInt64) -> Bool {
        r.verifies(chain: chain, validator: validator, nonce: nonce, p)
    }

    /// Merkle root of a block's event ids (schemas/FORMAT.md §4.1; `EventsTree`).
    public static func eventsRoot(_ ids: [EventID]) -> Hash32 { EventsTree.root(ids, p) }

    /// The RFC 6962 audit path of the event at `index` among `ids`.
    public static func eventsPath(_ ids: [EventID], index: Int) -> [Hash32] { EventsTree.path(ids, index: index, p) }

    /// The events root an audit path implies, nil when the path cannot be one for that place.
    public static func eventsRoot(id: EventID, index: UInt32, count: UInt32, path: [Hash32]) -> Hash32? {
        EventsTree.root(id: id, index: index, count: count, path: path, p)
    }
}
