import ArgumentParser
import Foundation
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerTree

/// `chaosledger bench-tree`: what a block's state commitment costs as the state grows.
/// For each size, blocks of `--block` changed leaves (three updates to one insert) are
/// applied to the incremental tree, next to two baselines measured in the same run: the
/// flat hash (BLAKE2b over `--entry-bytes` per entry) and today's commitment itself,
/// `LedgerState.stateRoot()` of a chain with as many funded accounts (encode the whole
/// state, then hash it; FORMAT.md §7), which every block pays now.
struct BenchTree: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-tree",
                                                    abstract: "Measure the state tree's cost per block against hashing the whole state, at several sizes.")
    @Option(help: "State sizes (leaves), comma-separated.") var sizes = "1000,100000,1000000"
    @Option(help: "Leaves changed per block.") var block = 1_000
    @Option(help: "Blocks measured at each size; the figure is their median.") var blocks = 9
    @Option(help: "Bytes per entry of the flat baseline (an account is 48 in FORMAT.md §7).") var entryBytes = 48

    func run() throws {
        let rules = TreeRules(Sodium())
        print("bench-tree: \(block) leaves changed per block (3 updates : 1 insert), median of \(blocks) blocks; baseline: BLAKE2b over the whole state, \(entryBytes) bytes an entry")
        print("  leaves      build        tree/block   hashes/block   flat hash    stateRoot()   tree ÷ stateRoot()")
        for n in sizes.split(separator: ",").compactMap({ Int($0) }) {
            var rng = SplitMix64(seed: UInt64(n))
            func random() -> Hash32 { Hash32(w0: rng.next(), w1: rng.next(), w2: rng.next(), w3: rng.next()) }
            var keys = (0 ..< n).map { _ in random() }
            var tree = StateTree(rules: rules)
            let build = Self.time { tree.apply(keys.map { ($0, rules.valueHash($0.bytes)) }) }
            let flatBytes = [UInt8](repeating: 7, count: n * entryBytes)
            var treeTimes: [Double] = [], flatTimes: [Double] = []
            var hashes = 0
            for b in 0 ..< blocks {
                let batch: [(key: Hash32, valueHash: Hash32?)] = (0 ..< block).map { i in
                    if i % 4 == 3 { let k = random(); keys.append(k); return (k, rules.valueHash(k.bytes)) }
                    let k = keys[Int(rng.next() % UInt64(keys.count))]
                    return (k, rules.valueHash(k.bytes + [UInt8(truncatingIfNeeded: b)]))
                }
                if b == 0 {
                    // The same batch on a copy, counting its hashes (the copy shares the tree).
                    let counting = CountingHasher()
                    var probe = tree.withRules(TreeRules(counting))
                    probe.apply(batch)
                    hashes = counting.count
                }
                flatTimes.append(Self.time { _ = Blake2b.hash(flatBytes) })
                treeTimes.append(Self.time { tree.apply(batch) })
            }
            let t = Self.median(treeTimes), f = Self.median(flatTimes), today = try Self.todaysRoot(accounts: n, blocks: 3)
            print(String(format: "  %9d   %8.1f ms   %8.2f ms   %10d   %8.2f ms   %8.2f ms   %6.3f", n, build * 1e3, t * 1e3, hashes, f * 1e3, today * 1e3, t / today))
        }
    }

    /// The median time of today's `stateRoot()` over a chain whose genesis funds `accounts` keys.
    static func todaysRoot(accounts: Int, blocks: Int) throws -> Double {
        var rng = SplitMix64(seed: 7)
        let v = SigningKey.derived("bench-tree-validator")
        let g = try Genesis(chainID: ChainID("bench-tree"), timestampMs: 0, parameters: ChainParameters(),
                            validators: [.init(key: v.publicKey, name: "v", personality: "lawful", stake: 1 << 40)],
                            allocations: (0 ..< accounts).map { _ in .init(account: Hash32(w0: rng.next(), w1: rng.next(), w2: rng.next(), w3: rng.next()), amount: 1_000) },
                            stateCommitment: StateCommitmentRule.flat)
        let state = LedgerState(genesis: g, genesisHash: .zero, crypto: Sodium())
        return median((0 ..< blocks).map { _ in time { _ = state.stateRoot() } })
    }

    static func time(_ body: () -> Void) -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    static func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
}

/// Counts the hashes a batch costs (for the hashes-per-block column).
final class CountingHasher: Hashing, @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    var count: Int { lock.withLock { n } }
    func hash(_ bytes: UnsafeRawBufferPointer) -> Hash32 {
        lock.withLock { n += 1 }
        return Blake2b.hash(bytes)
    }
}
