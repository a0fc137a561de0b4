import LedgerCore
import LedgerProjections

/// Signatures this replica already verified: retransmissions and certificates repeat
/// the same votes many times, and Ed25519 dominates a replica's cost. Only successes are
/// kept, keyed by signer, signature and a hash of the statement, so the cache changes how
/// fast an answer comes, never the answer. It is a class so `verify` can be called from
/// non-mutating checks; copies of a replica share it, which is harmless for the same reason.
final class SignatureCache: @unchecked Sendable {
    struct Entry: Hashable { var key: PublicKey; var signature: Signature; var digest: Hash32 }
    private var known = Set<Entry>()
    private(set) var verified = 0
    let crypto: any Primitives

    init(_ crypto: any Primitives) { self.crypto = crypto }

    func verify(_ sig: Signature, _ statement: [UInt8], _ key: PublicKey) -> Bool {
        let e = Entry(key: key, signature: sig, digest: crypto.hash(statement))
        if known.contains(e) { return true }
        verified += 1
        guard crypto.verify(sig, statement, key) else { return false }
        if known.count >= 200_000 { known.removeAll(keepingCapacity: true) }
        known.insert(e)
        return true
    }

    func verify(_ m: SignedConsensusMessage, _ chain: Bytes32) -> Bool { verify(m.signature, m.message.statement(chain: chain), m.signer) }
}
