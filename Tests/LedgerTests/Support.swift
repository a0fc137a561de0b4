import Foundation
import LedgerAudit
import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerProjections
import LedgerStore
import LedgerWorkload

/// A fresh temporary directory, removed by `cleanup()`.
struct TempDir {
    let path: String
    init(_ label: String = "t") {
        path = NSTemporaryDirectory() + "chaosledger-\(label)-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
    func sub(_ name: String) -> String { path + "/" + name }
}

/// The repository root, found from this file's path.
let repoRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0 ..< 3 { url.deleteLastPathComponent() }
    return url.path
}()

/// The built `chaosledger` executable, beside the test bundle.
let chaosledgerBinary: String = {
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    while url.path != "/" {
        let candidate = url.appendingPathComponent("chaosledger").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        url.deleteLastPathComponent()
    }
    return repoRoot + "/.build/debug/chaosledger"
}()

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

@discardableResult
func run(_ executable: String, _ args: [String]) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return ProcessResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

/// A small chain: one producing validator with a large stake, and funded actors.
struct Fixture {
    static let chain = try! ChainID("chaosledger-test")
    let producer = SigningKey.derived("fixture-producer")
    let alice = SigningKey.derived("fixture-alice")
    let bob = SigningKey.derived("fixture-bob")
    let carol = SigningKey.derived("fixture-carol")
    let dave = SigningKey.derived("fixture-dave")
    var params: ChainParameters = {
        var p = ChainParameters()
        p.minFee = 2
        p.minValidatorStake = 100
        p.unbondingBlocks = 3
        p.allianceAcceptWindowMs = 10_000
        p.allianceDurationMaxMs = 50_000
        p.checkpointInterval = 4
        p.blockEventsMax = 50
        return p
    }()
    /// The fold tests of issues 2 and 3 test the version 1 rules (flat fee to the
    /// proposer); EconomyTests set version 2.
    var ruleVersion = RuleVersion.legacy
    var economy = EconomyParameters()
    /// Extra genesis validators (EconomyTests: several validators for rewards and governance).
    var extraValidators: [Genesis.Validator] = []
    /// How the chain commits to its state (the tree unless a test asks for flat).
    var stateCommitment = StateCommitmentRule.tree

    var genesis: Genesis {
        try! Genesis(chainID: Self.chain, timestampMs: 1_000_000, parameters: params,
                     validators: [.init(key: producer.publicKey, name: "producer", personality: "lawful", stake: 1_000_000_000)] + extraValidators,
                     allocations: [alice, bob, carol, dave].map { .init(account: $0.publicKey, amount: 1_000_000) },
                     ruleVersion: ruleVersion, economy: economy, stateCommitment: stateCommitment)
    }

    var genesisHash: Hash32 { Blake2b.hash(genesis.encoded()) }
    func state() -> LedgerState { LedgerState(genesis: genesis, genesisHash: genesisHash, crypto: Sodium()) }

    func event(_ key: SigningKey, _ nonce: UInt64, _ payload: Payload, fee: UInt64 = 2) -> Envelope {
        EventCrypto.makeEvent(chain: Self.chain, key: key, nonce: nonce, fee: fee, payload: payload)
    }

    /// A producer on `log` (initialised with this genesis), blocks 1 s apart.
    func producer(on log: any EventLog) throws -> SoloProducer {
        if try log.metadata() == nil { _ = try log.initialize(genesis: genesis) }
        return try SoloProducer(log: log, key: producer, clock: { h in 1_000_000 + h.value * 1_000 })
    }
}

/// Applies an event in a block context after `state`'s height, 1 s later.
func ctx(_ s: LedgerState, proposer: PublicKey, plusMs: UInt64 = 1_000) -> BlockContext {
    BlockContext(height: s.height.next, timestampMs: s.timestampMs + plusMs, proposer: proposer)
}

/// One encoded signed consensus vote on the fixture chain (an evidence payload half).
func vote(_ k: SigningKey, _ m: ConsensusMessage, chain: ChainID = Fixture.chain) -> [UInt8] {
    SignedConsensusMessage.sign(m, chain: chain.raw, key: k).encoded()
}

/// Block hashes for evidence: two votes naming different ones conflict.
let blockA = Blake2b.hash(Array("block a".utf8)), blockB = Blake2b.hash(Array("block b".utf8)), blockC = Blake2b.hash(Array("block c".utf8))

/// An encoded prepare by `k` (height 5, view 2 unless told).
func prepare(_ k: SigningKey, height: UInt64 = 5, view: View = 2, _ block: Hash32) -> [UInt8] {
    vote(k, .prepare(view: view, height: Height(height), blockHash: block))
}

/// A chain of 4 equal "lawful" validators at genesis, for tests that step replicas by
/// hand: keys derived from `label`; 1,000,000 for each of `accounts`, then for each
/// validator.
struct FourValidators {
    let keys: [SigningKey]
    let chain: ChainID
    let genesisHash: Hash32
    let state: LedgerState

    init(_ label: String, parameters: ChainParameters, accounts: [PublicKey] = []) throws {
        let keys = (0 ..< 4).map { SigningKey.derived("\(label)-validator-\($0)") }
        self.keys = keys
        chain = try ChainID(label)
        let g = try Genesis(chainID: chain, timestampMs: 1_000, parameters: parameters,
                            validators: keys.enumerated().map { .init(key: $1.publicKey, name: "v\($0)", personality: "lawful", stake: 10_000) },
                            allocations: (accounts + keys.map(\.publicKey)).map { .init(account: $0, amount: 1_000_000) })
        genesisHash = Blake2b.hash(g.encoded())
        state = LedgerState(genesis: g, genesisHash: genesisHash, crypto: Sodium())
    }

    /// The replica of `key` at genesis, its config adjusted by `configure`.
    func replica(of key: SigningKey, _ configure: (inout ReplicaConfig) -> Void = { _ in }) -> Replica {
        var c = ReplicaConfig(genesisHash: genesisHash, genesisStateRoot: state.stateRoot(), keys: [key], operatorKey: key, crypto: Sodium())
        configure(&c)
        return Replica(config: c, state: state, lastHash: genesisHash)
    }

    /// The validator that is view `v`'s primary.
    func primary(of v: View) -> SigningKey {
        let k = replica(of: keys[0]).primary(of: v)
        return keys.first { $0.publicKey == k }!
    }
}

/// What a version 2 header of `header`'s block on `s` must say (nil on a flat chain):
/// the block folded into a copy of `s`.
func postState(of header: BlockHeader, _ events: [(id: EventID, envelope: Envelope)], on s: LedgerState) throws -> BlockHeader.PostState? {
    var t = s
    let ctx = BlockContext(height: header.height, timestampMs: header.timestampMs, proposer: header.proposer,
                           parentStateRoot: header.parentStateRoot)
    try t.beginBlock(ctx)
    for e in events { try t.apply(e.envelope, id: e.id, ctx) }
    return t.postState()
}
