import LedgerCore

public enum CertificateError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongBlock
    case unknownSigner(PublicKey)
    case badSignature(PublicKey)
    case noQuorum(power: UInt64, total: UInt64)

    public var description: String {
        switch self {
        case .wrongBlock: "certificate names another block"
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
        let power = powerForNextBlock()
        var total: UInt64 = 0
        for p in power.values { total &+= p }
        var signed: UInt64 = 0
        var seen = Set<PublicKey>()
        for v in c.votes {
            guard let p = power[v.key] else { throw .unknownSigner(v.key) }
            guard seen.insert(v.key).inserted else { continue }
            guard c.verifies(v, chain: chainID.raw, crypto) else { throw .badSignature(v.key) }
            signed &+= p
        }
        guard Quorum.reached(power: signed, total: total) else { throw .noQuorum(power: signed, total: total) }
    }
}
