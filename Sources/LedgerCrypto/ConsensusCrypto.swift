import LedgerCore

extension SignedConsensusMessage {
    public static func sign(_ m: ConsensusMessage, chain: Bytes32, key: SigningKey) -> SignedConsensusMessage {
        SignedConsensusMessage(message: m, signer: key.publicKey, signature: key.sign(m.statement(chain: chain)))
    }

    public func verify(chain: Bytes32) -> Bool {
        Ed25519.verify(signature, message.statement(chain: chain), signer)
    }
}

/// Proof that a validator signed two different blocks in the same role, view and height.
public struct Equivocation: Sendable, Hashable {
    public let first: SignedConsensusMessage
    public let second: SignedConsensusMessage

    /// Returns evidence when `a` and `b` conflict: same signer, same kind, view and
    /// height, different blocks, and both signatures valid. Nil otherwise (a forged or
    /// duplicate pair is no evidence).
    public static func detect(_ a: SignedConsensusMessage, _ b: SignedConsensusMessage, chain: Bytes32) -> Equivocation? {
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
        guard a.verify(chain: chain), b.verify(chain: chain) else { return nil }
        return Equivocation(first: a, second: b)
    }
}
