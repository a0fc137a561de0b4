import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore

extension SchemaVectors {
    /// The whole schema vector document: `generate()` and the audit bundle, which needs a
    /// producer (`chaosledger vectors` prints this).
    public static func document() -> Document {
        var d = generate()
        d.bundle = bundleVector()
        return d
    }

    /// Four blocks of a tree chain with epochs of two blocks, exported from block 2 on.
    static func bundleVector() -> Bundle {
        let chain = try! ChainID("chaosledger-vectors")
        let validator = key("validator"), alice = key("alice"), bob = key("bob")
        var params = ChainParameters()
        params.minFee = 2
        params.minValidatorStake = 100
        params.checkpointInterval = 2
        let genesis = try! Genesis(chainID: chain, timestampMs: 1_700_000_000_000, parameters: params,
                                   validators: [.init(key: validator.publicKey, name: "validator-0", personality: "lawful", stake: 1_000_000)],
                                   allocations: [.init(account: alice.publicKey, amount: 1_000_000), .init(account: bob.publicKey, amount: 1_000_000)],
                                   ruleVersion: RuleVersion.legacy, economy: EconomyParameters(), stateCommitment: StateCommitmentRule.tree)
        let log = LedgerLog.memory()
        _ = try! log.initialize(genesis: genesis)
        let p = try! SoloProducer(log: log, key: validator, clock: { h in 1_700_000_000_000 + h.value * 1_000 })
        var nonces: [PublicKey: UInt64] = [:]
        func submit(_ k: SigningKey, _ payload: Payload) {
            nonces[k.publicKey, default: 0] += 1
            _ = try! p.submit(EventCrypto.makeEvent(chain: chain, key: k, nonce: nonces[k.publicKey]!, fee: 2, payload: payload).bytes)
        }
        submit(alice, .delegate(validator: ValidatorID(validator.publicKey), amount: 500))
        _ = try! p.commit()
        submit(alice, .transfer(to: bob.publicKey, amount: 10, memo: "block 2"))
        _ = try! p.commit()
        submit(bob, .transfer(to: alice.publicKey, amount: 3, memo: "block 3"))
        submit(alice, .transfer(to: bob.publicKey, amount: 1, memo: ""))
        _ = try! p.commit()
        submit(bob, .transfer(to: alice.publicKey, amount: 1, memo: "block 4"))
        _ = try! p.commit()
        for h in [2, 4] as [Height] {
            let b = try! log.block(at: h)!
            let root = b.header.post!.stateRoot
            let m = ConsensusMessage.checkpoint(height: h, blockHash: Blake2b.hash(b.headerBytes), stateRoot: root)
            let vote = SignedConsensusMessage.sign(m, chain: chain.raw, signer: validator)
            try! log.putCheckpointCertificate(height: h, bytes: CheckpointCertificate(height: h, blockHash: Blake2b.hash(b.headerBytes), stateRoot: root,
                                                                                      votes: [.init(key: validator.publicKey, signature: vote.signature)]).encoded())
        }
        let bundle = try! AuditBundle.export(from: log, from: 2, to: 4)
        return Bundle(genesis: Hex.encode(genesis.encoded()), bytes: Hex.encode(bundle.encoded()), fromHeight: 2, toHeight: 4,
                      snapshotHash: Blake2b.hash(bundle.snapshot!).hex, stateRoots: bundle.stateRoots.map(\.hex),
                      powerChangeHeights: bundle.powerChanges.map { try! BlockHeader.decode($0.header).height.value },
                      checkpointHeights: bundle.checkpointCertificates.map(\.height.value),
                      events: bundle.blocks.reduce(0) { $0 + $1.events.count })
    }
}
