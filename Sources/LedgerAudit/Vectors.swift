import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore

/// Test vectors for schemas/vectors.json: fixed seeds and values, so that a program in
/// another language can check its encoder, signer and hasher against ours byte for byte.
public enum SchemaVectors {
    public struct Key: Codable, Equatable, Sendable { public var label, seed, publicKey: String }
    public struct Event: Codable, Equatable, Sendable {
        public var kind: String
        public var kindCode: UInt16
        public var author: String
        public var nonce: UInt64
        public var fee: UInt64
        public var payload: String
        public var unsigned: String
        public var signingMessage: String
        public var signature: String
        public var bytes: String
        public var id: String
    }
    public struct Block: Codable, Equatable, Sendable {
        public var header: String
        public var blockHash: String
        public var eventIDs: [String]
        public var eventsRoot: String
        public var commitMessage: String
        public var certificate: String
    }
    /// One state-tree leaf (FORMAT.md §7.2): its address, its value and their hashes.
    public struct TreeLeaf: Codable, Equatable, Sendable {
        public var kind: UInt8
        public var id: String
        public var value: String
        public var key: String
        public var valueHash: String
    }
    /// A tree-committed chain's genesis state: every leaf, the root, proofs, the power
    /// hash and an event path (FORMAT.md §7.2, §14).
    public struct StateTree: Codable, Equatable, Sendable {
        public var genesis: String
        public var genesisHash: String
        public var leaves: [TreeLeaf]
        public var root: String
        public var inclusionProof: String
        public var exclusionProof: String
        public var powerHash: String
        public var eventPath: String
        public var eventPathRoot: String
        /// §7.3: alice's account stream holding the block's three events, in order.
        public var streamIds: [String]
        public var streamEntry: String
        /// The genesis state's snapshot (FORMAT.md §7, version 3).
        public var snapshot: String
        /// The genesis state cut into the 4 state-sync chunks of depth 2 (FORMAT.md §15.2).
        public var syncChunks: [String]
    }
    /// A commit certificate under four validators of equal power (FORMAT.md §4.2): three
    /// signers make a quorum, two do not.
    public struct Quorum: Codable, Equatable, Sendable {
        public struct Power: Codable, Equatable, Sendable { public var key: String; public var power: UInt64 }
        public var powers: [Power]
        public var commitMessage: String
        public var certificate: String
        public var tooFew: String
    }

    /// One record of the log's main LMDB environment (FORMAT.md §5), as stored.
    public struct LMDBRecord: Codable, Equatable, Sendable {
        public var db: String
        public var key: String
        public var value: String
    }

    public struct Document: Codable, Equatable, Sendable {
        public var chainId: String
        public var chainIdBytes: String
        public var keys: [Key]
        public var events: [Event]
        public var genesis: String
        public var genesisHash: String
        public var block: Block
        public var genesisStateRoot: String
        /// A version 3 genesis (rule version 2, a non-default economy, flat) and its state root.
        public var economyGenesis: String
        public var economyGenesisStateRoot: String
        public var stateTree: StateTree
        public var quorum: Quorum
        /// The log after the version 2 genesis and the block above: its events, block and
        /// meta records.
        public var lmdb: [LMDBRecord]
        /// An audit bundle that starts from a snapshot (FORMAT.md §13), made by a solo
        /// producer (LedgerWorkload fills it in).
        public var bundle: Bundle?
    }

    /// A version 2 audit bundle of blocks 3–4 of a tree chain (epochs of 2 blocks; a
    /// delegation in block 1 changes the power at the end of block 2), with the snapshot
    /// after block 2, the power change that anchors it and checkpoint certificates at 2 and 4.
    public struct Bundle: Codable, Equatable, Sendable {
        public var genesis: String
        public var bytes: String
        public var fromHeight: UInt64
        public var toHeight: UInt64
        public var snapshotHash: String
        /// The state roots after `fromHeight … toHeight`.
        public var stateRoots: [String]
        public var powerChangeHeights: [UInt64]
        public var checkpointHeights: [UInt64]
        public var events: Int
        public init(genesis: String, bytes: String, fromHeight: UInt64, toHeight: UInt64, snapshotHash: String, stateRoots: [String],
                    powerChangeHeights: [UInt64], checkpointHeights: [UInt64], events: Int) {
            self.genesis = genesis; self.bytes = bytes; self.fromHeight = fromHeight; self.toHeight = toHeight
            self.snapshotHash = snapshotHash; self.stateRoots = stateRoots; self.powerChangeHeights = powerChangeHeights
            self.checkpointHeights = checkpointHeights; self.events = events
        }
    }

    public static func key(_ label: String) -> SigningKey {
        try! SigningKey(seed: Blake2b.hash(Array("chaosledger-vector-seed:\(label)".utf8)).bytes)
    }

    public static func generate() -> Document {
        let chain = try! ChainID("chaosledger-vectors")
        let alice = key("alice"), bob = key("bob"), validator = key("validator"), rotated = key("validator-rotated")
        let events = eventVectors(chain: chain, alice: alice, bob: bob, validator: validator, rotated: rotated)
        // A version 2 genesis (rule version 1, no economy section): these vectors were
        // generated before the agent economy existed, and must still come out the same,
        // state root included, so every log written before it still replays.
        let built = try! Genesis(chainID: chain, timestampMs: 1_767_225_600_000, parameters: ChainParameters(),
                                 validators: [.init(key: validator.publicKey, name: "validator-0", personality: "lawful", stake: 1_000_000)],
                                 allocations: [.init(account: alice.publicKey, amount: 50_000), .init(account: bob.publicKey, amount: 70_000)],
                                 ruleVersion: RuleVersion.legacy, stateCommitment: StateCommitmentRule.flat)
        let gb = built.encoded(version: 2)
        let genesis = try! Genesis.decode(gb)
        let gh = Blake2b.hash(gb)
        let state = LedgerState(genesis: genesis, genesisHash: gh, crypto: Sodium())
        let ids = events.prefix(3).map { EventID(hex: $0.id)! }
        let header = BlockHeader(chainID: chain.raw, height: 1, parentHash: gh, view: 0, timestampMs: 1_767_225_601_000,
                                 proposer: validator.publicKey, eventCount: UInt32(ids.count), eventsRoot: EventCrypto.eventsRoot(ids),
                                 parentStateRoot: state.stateRoot(), meme: Array("much vector, very test".utf8))
        let hb = header.encoded()
        let bh = Blake2b.hash(hb)
        let vote = EventCrypto.signCommit(chain: chain.raw, height: 1, view: 0, blockHash: bh, key: validator)
        let cert = CommitCertificate(height: 1, view: 0, blockHash: bh, votes: [vote])
        let economyGenesis = economyGenesisVector(chain: chain, validator: validator, alice: alice, bob: bob)
        return Document(
            chainId: chain.name, chainIdBytes: chain.raw.hex,
            keys: ([("alice", alice), ("bob", bob), ("validator", validator), ("validator-rotated", rotated)] + quorumKeys.map { ($0, key($0)) }).map {
                Key(label: $0.0, seed: Hex.encode($0.1.seed), publicKey: $0.1.publicKey.hex)
            },
            events: events, genesis: Hex.encode(gb), genesisHash: gh.hex,
            block: Block(header: Hex.encode(hb), blockHash: bh.hex, eventIDs: ids.map(\.hex), eventsRoot: header.eventsRoot.hex,
                         commitMessage: Hex.encode(CommitCertificate.message(chain: chain.raw, height: 1, view: 0, blockHash: bh)),
                         certificate: Hex.encode(cert.encoded())),
            genesisStateRoot: state.stateRoot().hex,
            economyGenesis: Hex.encode(economyGenesis.bytes), economyGenesisStateRoot: economyGenesis.root.hex,
            stateTree: treeVectors(chain: chain, validator: validator, alice: alice, bob: bob, ids: ids),
            quorum: quorumVectors(chain: chain, blockHash: bh),
            lmdb: lmdbVectors(chain: chain, genesis: gb, header: header, certificate: cert, events: events.prefix(3).map { Hex.decode($0.bytes)! }))
    }

    /// The records a log holds after the genesis and block 1 (memory log: the same bytes
    /// as LMDB's).
    static func lmdbVectors(chain: ChainID, genesis: [UInt8], header: BlockHeader, certificate: CommitCertificate, events: [[UInt8]]) -> [LMDBRecord] {
        let log = LedgerLog.memory()
        try! log.initialize(chainID: chain, genesisBytes: genesis, genesisHash: Blake2b.hash(genesis))
        let commit = BlockCommit(block: StoredBlock(header: header, certificate: certificate, firstSequence: 0), blockHash: Blake2b.hash(header.encoded()),
                                 events: events.map { (id: EventCrypto.id($0), envelope: try! Envelope(bytes: $0)) })
        try! log.append(commit)
        return try! log.rawRecords(limit: 16).map { LMDBRecord(db: $0.db, key: Hex.encode($0.key), value: Hex.encode($0.value)) }
    }

    /// One event of every core kind, signed (the evidence is a real equivocation).
    static func eventVectors(chain: ChainID, alice: SigningKey, bob: SigningKey, validator: SigningKey, rotated: SigningKey) -> [Event] {
        // An equivocation: the validator prepared two different blocks at one height and view.
        let blockA = Blake2b.hash(Array("block a".utf8)), blockB = Blake2b.hash(Array("block b".utf8))
        let prepareA = SignedConsensusMessage.sign(.prepare(view: 3, height: 7, blockHash: blockA), chain: chain.raw, key: validator)
        let prepareB = SignedConsensusMessage.sign(.prepare(view: 3, height: 7, blockHash: blockB), chain: chain.raw, key: validator)
        let payloads: [(SigningKey, Payload)] = [
            (alice, .transfer(to: bob.publicKey, amount: 1_000, memo: "vector")),
            (validator, .validatorRegister(name: "validator-0", personality: "memetic")),
            (validator, .validatorRetire),
            (validator, .validatorRotateKey(EventCrypto.rotation(chain: chain, validator: ValidatorID(validator.publicKey), nonce: 4, old: validator, new: rotated))),
            (validator, .bond(amount: 5_000)),
            (validator, .unbond(amount: 10)),
            (alice, .delegate(validator: ValidatorID(validator.publicKey), amount: 250)),
            (alice, .undelegate(validator: ValidatorID(validator.publicKey), amount: 50)),
            (bob, .agentRegister(AgentProfile(name: "bob", capabilities: ["inference", "memes"], personality: "chaotic", endpoint: "agent://bob"))),
            (bob, .agentUpdate(AgentProfile(name: "bob", capabilities: ["audit"], personality: "lawful", endpoint: ""))),
            (bob, .agentDeregister),
            (alice, .alliancePropose(AllianceProposal(targets: [bob.publicKey], purpose: "meme syndicate", terms: "share", durationMs: 60_000))),
            (bob, .allianceAccept(AllianceID(Blake2b.hash(Array("alliance".utf8))))),
            (bob, .allianceReject(AllianceID(Blake2b.hash(Array("alliance".utf8))))),
            (alice, .allianceDissolve(AllianceID(Blake2b.hash(Array("alliance".utf8))))),
            (validator, .validatorUnjail),
            (alice, .evidence(first: prepareA.encoded(), second: prepareB.encoded())),
            (validator, .opinion(Opinion(height: 7, view: 3, blockHash: blockA, verdict: .refuse, reason: "not enough memes"))),
        ]
        var events: [Event] = []
        for (i, (k, p)) in payloads.enumerated() {
            let nonce = UInt64(i == 3 ? 4 : i + 1)
            let unsigned = Envelope.unsigned(chainID: chain, author: k.publicKey, nonce: nonce, fee: 2, payload: p)
            let message = Domain.event(chain.raw) + unsigned
            let bytes = EventCrypto.sign(unsigned: unsigned, chain: chain, key: k)
            events.append(Event(kind: p.kind.description, kindCode: p.kind.rawValue, author: k.publicKey.hex, nonce: nonce, fee: 2,
                                payload: Hex.encode(p.encoded()), unsigned: Hex.encode(unsigned), signingMessage: Hex.encode(message),
                                signature: Hex.encode(bytes.suffix(64)), bytes: Hex.encode(bytes), id: EventCrypto.id(bytes).hex))
        }
        return events
    }

    /// A version 3 genesis (rule version 2, two economy parameters off their defaults,
    /// flat) and its state root.
    static func economyGenesisVector(chain: ChainID, validator: SigningKey, alice: SigningKey, bob: SigningKey) -> (bytes: [UInt8], root: Hash32) {
        var economy = EconomyParameters()
        economy.blockReward = 250
        economy.baseFeeMin = 3
        let g3 = try! Genesis(chainID: chain, timestampMs: 1_767_225_600_000, parameters: ChainParameters(),
                              validators: [.init(key: validator.publicKey, name: "validator-0", personality: "lawful", stake: 1_000_000)],
                              allocations: [.init(account: alice.publicKey, amount: 50_000), .init(account: bob.publicKey, amount: 70_000)],
                              ruleVersion: 2, economy: economy, stateCommitment: StateCommitmentRule.flat)
        let bytes = g3.encoded(version: 3)
        return (bytes, LedgerState(genesis: try! Genesis.decode(bytes), genesisHash: Blake2b.hash(bytes), crypto: Sodium()).stateRoot())
    }

    static let quorumKeys = ["quorum-0", "quorum-1", "quorum-2", "quorum-3"]

    static func quorumVectors(chain: ChainID, blockHash: Hash32) -> Quorum {
        let keys = quorumKeys.map(key).sorted { $0.publicKey < $1.publicKey }
        let votes = keys.map { EventCrypto.signCommit(chain: chain.raw, height: 9, view: 2, blockHash: blockHash, key: $0) }
        return Quorum(powers: keys.map { .init(key: $0.publicKey.hex, power: 250_000) },
                      commitMessage: Hex.encode(CommitCertificate.message(chain: chain.raw, height: 9, view: 2, blockHash: blockHash)),
                      certificate: Hex.encode(CommitCertificate(height: 9, view: 2, blockHash: blockHash, votes: Array(votes.prefix(3))).encoded()),
                      tooFew: Hex.encode(CommitCertificate(height: 9, view: 2, blockHash: blockHash, votes: [votes[0], votes[3]]).encoded()))
    }

    /// The same accounts under the tree commitment (genesis version 4).
    static func treeVectors(chain: ChainID, validator: SigningKey, alice: SigningKey, bob: SigningKey, ids: [EventID]) -> StateTree {
        let g = try! Genesis(chainID: chain, timestampMs: 1_767_225_600_000, parameters: ChainParameters(),
                             validators: [.init(key: validator.publicKey, name: "validator-0", personality: "lawful", stake: 1_000_000)],
                             allocations: [.init(account: alice.publicKey, amount: 50_000), .init(account: bob.publicKey, amount: 70_000)],
                             stateCommitment: StateCommitmentRule.tree)
        let gb = g.encoded()
        let state = LedgerState(genesis: g, genesisHash: Blake2b.hash(gb), crypto: Sodium())
        let rules = state.treeRules
        let leaves = state.allLeaves().map { l in
            TreeLeaf(kind: l.leaf.kind.rawValue, id: Hex.encode(l.leaf.id), value: Hex.encode(l.value),
                     key: rules.key(kind: l.leaf.kind.rawValue, id: l.leaf.id).hex, valueHash: rules.valueHash(l.value).hex)
        }.sorted { $0.key < $1.key }
        let inclusion = state.proof(try! StateLeaf(.account, alice.publicKey.bytes))!
        let exclusion = state.proof(try! StateLeaf(.account, Blake2b.hash(Array("nobody".utf8)).bytes))!
        let path = EventCrypto.eventsPath(ids, index: 2)
        var w = ByteWriter(capacity: 128)
        w.u32(2); w.u32(UInt32(ids.count)); w.u16(UInt16(path.count))
        for p in path { w.b32(p) }
        return StateTree(genesis: Hex.encode(gb), genesisHash: Blake2b.hash(gb).hex, leaves: leaves, root: state.stateRoot().hex,
                         inclusionProof: Hex.encode(inclusion.encoded()), exclusionProof: Hex.encode(exclusion.encoded()),
                         powerHash: LedgerState.powerHash(state.powerForNextBlock(), Sodium()).hex,
                         eventPath: Hex.encode(w.bytes), eventPathRoot: EventCrypto.eventsRoot(ids).hex,
                         streamIds: ids.map(\.hex), streamEntry: Hex.encode(StreamHead.of(ids, Sodium()).entry(.account(alice.publicKey))),
                         snapshot: Hex.encode(state.canonicalBytes()),
                         syncChunks: (0 ..< 4).map { Hex.encode(StateChunker(state: state)!.chunk(depth: 2, index: $0).encoded()) })
    }
}
