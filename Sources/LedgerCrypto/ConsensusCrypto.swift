import LedgerCore

extension SignedConsensusMessage {
    public static func sign(_ m: ConsensusMessage, chain: Bytes32, key: SigningKey) -> SignedConsensusMessage {
        sign(m, chain: chain, signer: key)
    }

    public func verify(chain: Bytes32) -> Bool { verify(chain: chain, Sodium()) }
}

extension Equivocation {
    /// `detect` with libsodium's verification.
    public static func detect(_ a: SignedConsensusMessage, _ b: SignedConsensusMessage, chain: Bytes32) -> Equivocation? {
        detect(a, b, chain: chain, Sodium())
    }
}
