import LedgerCore

public enum CertificateError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongBlock
    /// A checkpoint certificate over a state root the refold does not give.
    case wrongStateRoot(certified: Hash32, folded: Hash32)
    case unknownSigner(PublicKey)
    case badSignature(PublicKey)
    case noQuorum(power: UInt64, total: UInt64)

    public var description: String {
        switch self {
        case .wrongBlock: "certificate names another block"
        case let .wrongStateRoot(c, f): "certificate signs state root \(c.short) but the refold gives \(f.short)"
        case let .unknownSigner(k): "signer \(k.short) holds no voting power at this height"
        case let .badSignature(k): "signature of \(k.short) does not verify"
        case let .noQuorum(p, t): "signers hold \(p) of \(t) voting power, not more than two thirds"
        }
    }
}

extension LedgerState {
    /// Checks a commit certificate for the block after this state: every vote is by a
    /// distinct consensus key with power for that block (`powerForNextBlock()`: the
    /// epoch's power; the decoder already refused duplicate keys), every signature
    /// verifies, and the signers hold a quorum.
    public func verifyCertificate(_ c: CommitCertificate, height: Height, blockHash: Hash32) throws(CertificateError) {
        guard c.height == height, c.blockHash == blockHash else { throw .wrongBlock }
        try checkQuorum(c.votes, statement: CommitCertificate.message(chain: chainID.raw, height: c.height, view: c.view, blockHash: c.blockHash))
    }

    /// Checks a checkpoint certificate for this state, the state after block `height`
    /// whose hash is `blockHash`: it names that block and this state's root, and a quorum
    /// of the power that certifies the next block (the set that signs checkpoint
    /// `height`) signed it.
    public func verifyCheckpointCertificate(_ c: CheckpointCertificate, blockHash: Hash32) throws(CertificateError) {
        guard c.height == height, c.blockHash == blockHash else { throw .wrongBlock }
        let root = stateRoot()
        guard c.stateRoot == root else { throw .wrongStateRoot(certified: c.stateRoot, folded: root) }
        try checkQuorum(c.votes, statement: c.message.statement(chain: chainID.raw))
    }

    /// Every vote by a distinct key with power for the next block, every signature
    /// verifying `statement`, and the signers holding a quorum of that power.
    func checkQuorum(_ votes: [CommitCertificate.Vote], statement: [UInt8]) throws(CertificateError) {
        let power = powerForNextBlock()
        // 128-bit sums: a state's powers are bounded by its supply, but a snapshot that
        // claims more must not wrap a sum into a quorum.
        var total: UInt128 = 0
        for p in power.values { total += UInt128(p) }
        var signed: UInt128 = 0
        var seen = Set<PublicKey>()
        for v in votes {
            guard let p = power[v.key] else { throw .unknownSigner(v.key) }
            guard seen.insert(v.key).inserted else { continue }
            guard crypto.verify(v.signature, statement, v.key) else { throw .badSignature(v.key) }
            signed += UInt128(p)
        }
        guard Quorum.reached(power: signed, total: total) else {
            throw .noQuorum(power: UInt64(clamping: signed), total: UInt64(clamping: total))
        }
    }
}
