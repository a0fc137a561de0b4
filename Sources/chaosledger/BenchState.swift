import Foundation
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore
import LedgerWorkload

/// `chaosledger bench --phases state`: what the state commitment costs a block as the
/// state grows, tree against flat in the same run on the same states. For each size, a
/// genesis funds that many accounts (1,000 of them senders); each block carries
/// `--block-events` transfers to random accounts (one in four new). Figures are medians:
/// - root: `sealRoot()` after the block's events (tree: the touched leaves and their
///   paths; flat: BLAKE2b over the whole canonical state, the baseline);
/// - commit: a single validator (`SoloProducer`, memory log) taking one transfer and
///   committing its block, the latency a submitter sees minus the network.
extension Bench {
    func statePhase() throws {
        let sizes = stateAccounts.split(separator: ",").compactMap { Int($0) }
        print("state: \(blockEvents) transfers per block, median of \(stateBlocks) blocks; baseline: the flat hash of the same state")
        print("  accounts    tree root/block   flat root/block   tree ÷ flat   commit (tree)   commit (flat)")
        var all: [StateFigures] = []
        for n in sizes {
            let r = try stateFigures(accounts: n)
            all.append(r)
            print(String(format: "  %9d   %12.2f ms   %12.2f ms   %9.3f   %10.2f ms   %10.2f ms", n, r.treeRoot * 1e3, r.flatRoot * 1e3,
                         r.treeRoot / r.flatRoot, r.treeCommit * 1e3, r.flatCommit * 1e3))
        }
        if let a = all.first, let z = all.last, all.count > 1 {
            print(String(format: "  %d vs %d accounts: tree root %.2fx, commit %.2fx (targets: 3x, 1.3x); flat root %.1fx, flat commit %.1fx",
                         sizes.last!, sizes.first!, z.treeRoot / a.treeRoot, z.treeCommit / a.treeCommit,
                         z.flatRoot / a.flatRoot, z.flatCommit / a.flatCommit))
        }
    }

    struct StateFigures { var treeRoot, flatRoot, treeCommit, flatCommit: Double }

    func stateFigures(accounts n: Int) throws -> StateFigures {
        let chain = try ChainID("chaosledger-bench-state")
        let producer = SigningKey.derived("bench-state-producer")
        let senders = (0 ..< 1_000).map { SigningKey.derived("bench-state-sender-\($0)") }
        var rng = SplitMix64(seed: UInt64(n))
        func random() -> PublicKey { Hash32(w0: rng.next(), w1: rng.next(), w2: rng.next(), w3: rng.next()) }
        var accounts = (0 ..< max(0, n - senders.count - 1)).map { _ in random() }
        let allocations = senders.map { Genesis.Allocation(account: $0.publicKey, amount: 1 << 40) }
            + accounts.map { Genesis.Allocation(account: $0, amount: 1_000) }
        var params = ChainParameters()
        params.blockEventsMax = UInt32(max(blockEvents, 1))
        params.checkpointInterval = 1 << 30  // no checkpoint inside the measured blocks
        func genesis(_ c: UInt8) throws -> Genesis {
            try Genesis(chainID: chain, timestampMs: 0, parameters: params,
                        validators: [.init(key: producer.publicKey, name: "p", personality: "lawful", stake: 1 << 40)],
                        allocations: allocations, ruleVersion: RuleVersion.legacy, stateCommitment: c)
        }
        let gTree = try genesis(StateCommitmentRule.tree), gFlat = try genesis(StateCommitmentRule.flat)
        var tree = LedgerState(genesis: gTree, genesisHash: .zero, crypto: Sodium()), flat = LedgerState(genesis: gFlat, genesisHash: .zero, crypto: Sodium())
        var treeRoot: [Double] = [], flatRoot: [Double] = []
        for b in 0 ..< stateBlocks {
            var batch: [(EventID, Envelope)] = []
            for (i, s) in senders.prefix(blockEvents).enumerated() {
                let to: PublicKey
                if i % 4 == 3 || accounts.isEmpty { to = random(); accounts.append(to) } else { to = accounts[Int(rng.next() % UInt64(accounts.count))] }
                let e = EventCrypto.makeEvent(chain: chain, key: s, nonce: UInt64(b + 1), fee: params.minFee, payload: .transfer(to: to, amount: 1, memo: ""))
                batch.append((EventCrypto.id(e.bytes), e))
            }
            let ctx = BlockContext(height: Height(UInt64(b + 1)), timestampMs: UInt64(b + 1) * 1_000, proposer: producer.publicKey)
            try tree.beginBlock(ctx); try flat.beginBlock(ctx)
            for (id, e) in batch { try tree.apply(e, id: id, ctx); try flat.apply(e, id: id, ctx) }
            treeRoot.append(Self.time { _ = tree.sealRoot() })
            flatRoot.append(Self.time { _ = flat.sealRoot() })
        }
        return StateFigures(treeRoot: Self.median(treeRoot), flatRoot: Self.median(flatRoot),
                            treeCommit: try commitLatency(gTree, producer, senders[0]), flatCommit: try commitLatency(gFlat, producer, senders[0]))
    }

    /// The median time for a single validator to admit one transfer and commit its block.
    func commitLatency(_ g: Genesis, _ producer: SigningKey, _ sender: SigningKey) throws -> Double {
        let log = LedgerLog.memory()
        _ = try log.initialize(genesis: g)
        let p = try SoloProducer(log: log, key: producer, clock: { h in h.value * 1_000 })
        var times: [Double] = []
        for nonce in UInt64(1) ... UInt64(stateBlocks) {
            let e = EventCrypto.makeEvent(chain: g.chainID, key: sender, nonce: nonce, fee: g.parameters.minFee,
                                          payload: .transfer(to: producer.publicKey, amount: 1, memo: ""))
            var failure: Error?
            times.append(Self.time {
                do { _ = try p.submit(e.bytes); try p.commit() } catch { failure = error }
            })
            if let failure { throw CLIError("commit latency: \(failure)") }
        }
        return Self.median(times)
    }

    static func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
}
