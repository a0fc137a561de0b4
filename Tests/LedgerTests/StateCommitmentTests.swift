import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore
import LedgerTree
import Testing

/// Chains whose genesis chooses the tree commitment: their headers are version 2 and
/// state the root of the state each block leaves and the hash of the power that
/// certifies the next block; a header that misstates either is refused.
@Suite struct StateCommitmentTests {
    let f = Fixture()

    @Test func treeChainHeadersCommitThePostStateAndTheNextPower() throws {
        let log = LedgerLog.memory()
        let p = try f.producer(on: log)
        for n in UInt64(1) ... 6 {
            try p.submit(f.event(f.alice, n, .transfer(to: f.bob.publicKey, amount: 10 * n, memo: "")).bytes)
            try p.commit()
        }
        var previous: BlockHeader.PostState?
        for h in UInt64(1) ... 6 {
            let header = try #require(try log.block(at: Height(h))).header
            #expect(header.version == 2)
            let post = try #require(header.post)
            if let previous { #expect(header.parentStateRoot == previous.stateRoot) }
            previous = post
        }
        let (report, replayed) = Replayer(log: log).run()
        #expect(report.ok, "\(String(describing: report.failure))")
        let s = try #require(replayed)
        #expect(s.commitment == .tree)
        #expect(s.stateRoot() == previous?.stateRoot && s.buildTree().root == previous?.stateRoot)
        #expect(LedgerState.powerHash(s.powerForNextBlock(), Sodium()) == previous?.nextPowerHash)
        #expect(try Genesis.decode(try #require(try log.metadata()).genesisBytes).stateCommitment == StateCommitmentRule.tree)
    }

    /// A block on `s` carrying one transfer, with the header's post state filled in right.
    func block(on s: LedgerState) -> (BlockHeader, [(id: EventID, envelope: Envelope)], BlockHeader.PostState?) {
        let e = f.event(f.alice, 1, .transfer(to: f.bob.publicKey, amount: 5, memo: ""))
        let id = EventCrypto.id(e.bytes)
        let ctx = BlockContext(height: 1, timestampMs: s.timestampMs + 1_000, proposer: f.producer.publicKey, parentStateRoot: s.stateRoot())
        var t = s
        try! t.beginBlock(ctx)
        try! t.apply(e, id: id, ctx)
        let post = t.postState()
        let header = BlockHeader(chainID: s.chainID.raw, height: 1, parentHash: s.genesisHash, view: 0, timestampMs: ctx.timestampMs,
                                 proposer: f.producer.publicKey, eventCount: 1, eventsRoot: EventCrypto.eventsRoot([id]),
                                 parentStateRoot: ctx.parentStateRoot!, post: post, meme: [])
        return (header, [(id, e)], post)
    }

    @Test func aHeaderThatMisstatesThePostStateIsRefused() throws {
        let s = f.state()
        let (header, events, post) = block(on: s)
        let right = try #require(post)
        var ok = s
        try ok.applyBlock(header, events)
        #expect(ok.stateRoot() == right.stateRoot)

        var wrongRoot = header
        wrongRoot.post!.stateRoot.w3 ^= 1
        var a = s
        #expect(throws: BlockError.stateRootMismatch(header: wrongRoot.post!.stateRoot, folded: right.stateRoot)) {
            try a.applyBlock(wrongRoot, events)
        }
        var wrongPower = header
        wrongPower.post!.nextPowerHash = LedgerState.powerHash([:], Sodium())
        var b = s
        #expect(throws: BlockError.nextPowerMismatch(header: LedgerState.powerHash([:], Sodium()), folded: right.nextPowerHash)) {
            try b.applyBlock(wrongPower, events)
        }
        var version1 = header
        version1.post = nil
        var c = s
        #expect(throws: BlockError.wrongHeaderVersion(1, expected: 2)) { try c.applyBlock(version1, events) }
    }

    @Test func aFlatChainRefusesVersion2Headers() throws {
        var flat = f
        flat.stateCommitment = StateCommitmentRule.flat
        let s = flat.state()
        #expect(s.commitment == .flat && s.sealedTree == nil)
        let (header, events, post) = block(on: s)
        #expect(post == nil && header.version == 1)
        var ok = s
        try ok.applyBlock(header, events)
        var v2 = header
        v2.post = .init(stateRoot: ok.stateRoot(), nextPowerHash: LedgerState.powerHash(ok.powerForNextBlock(), Sodium()))
        var d = s
        #expect(throws: BlockError.wrongHeaderVersion(2, expected: 1)) { try d.applyBlock(v2, events) }
    }

    @Test func theGenesisPowerIsTheGenesisStatesPower() throws {
        var f = self.f
        f.extraValidators = [.init(key: SigningKey.derived("second").publicKey, name: "second", personality: "loyal", stake: 5_000)]
        let g = f.genesis
        #expect(LedgerState.genesisPower(g) == LedgerState(genesis: g, genesisHash: f.genesisHash, crypto: Sodium()).powerForNextBlock())
        #expect(LedgerState.genesisPower(g).count == 2)
    }

    @Test func version2HeadersRoundTripAndVersion3IsRefused() throws {
        let (header, _, _) = block(on: f.state())
        let bytes = header.encoded()
        #expect(Array(bytes.prefix(2)) == [0, 2])
        #expect(try BlockHeader.decode(bytes) == header)
        var v1 = header
        v1.post = nil
        #expect(v1.encoded().count == bytes.count - 64)
        #expect(throws: DecodeError.unsupportedVersion(field: "block header", version: 3)) { try BlockHeader.decode([0, 3] + bytes.dropFirst(2)) }
    }

    @Test func everyLeafOfAStateProvesAndEveryTamperingFails() throws {
        var s = f.state()
        let ctx = BlockContext(height: 1, timestampMs: s.timestampMs + 1_000, proposer: f.producer.publicKey)
        try s.beginBlock(ctx)
        try s.apply(f.event(f.alice, 1, .transfer(to: f.bob.publicKey, amount: 5, memo: "")), id: EventID(Hash32(w0: 1, w1: 0, w2: 0, w3: 0)), ctx)
        let root = s.sealRoot()
        let leaves = s.allLeaves()
        #expect(leaves.count >= 7)
        for (leaf, value) in leaves {
            let p = try #require(s.proof(leaf))
            #expect(p.value == value && p.verify(root: root, Sodium()), "\(leaf)")
            let decoded = try StateProof.decode(p.encoded(), Sodium())
            #expect(decoded == p && decoded.verify(root: root, Sodium()))
            // Another value, another entity's id, another root: each fails.
            var v = p
            v.value![v.value!.count - 1] ^= 1
            #expect(!v.verify(root: root, Sodium()))
            var other = p
            other.leaf = try StateLeaf(.account, SigningKey.derived("nobody").publicKey.bytes)
            #expect(!other.verify(root: root, Sodium()))
            #expect(!p.verify(root: Hash32(w0: 9, w1: 9, w2: 9, w3: 9), Sodium()))
            if !p.path.siblings.isEmpty {
                var sib = p
                sib.path.siblings[0].w0 ^= 1
                #expect(!sib.verify(root: root, Sodium()))
            }
        }
        // An absent account proves absent, and cannot be passed off as present.
        let nobody = try StateLeaf(.account, SigningKey.derived("nobody").publicKey.bytes)
        let absent = try #require(s.proof(nobody))
        #expect(absent.value == nil && absent.verify(root: root, Sodium()))
        var claimed = absent
        claimed.value = [1, 2, 3]
        #expect(!claimed.verify(root: root, Sodium()))
        #expect(try StateProof.decode(absent.encoded(), Sodium()) == absent)
        // A truncated or extended proof is a typed error.
        let bytes = try #require(s.proof(leaves[0].leaf)).encoded()
        #expect(throws: DecodeError.self) { try StateProof.decode(Array(bytes.dropLast()), Sodium()) }
        #expect(throws: DecodeError.trailingBytes(count: 1)) { try StateProof.decode(bytes + [0], Sodium()) }
    }

    @Test func eventAuditPathsProveEveryPlaceOfEverySize() {
        for n in 1 ... 19 {
            let ids = (0 ..< n).map { EventID(Hash32(w0: UInt64($0), w1: 7, w2: 0, w3: 0)) }
            let root = EventCrypto.eventsRoot(ids)
            for i in 0 ..< n {
                let path = EventCrypto.eventsPath(ids, index: i)
                #expect(EventCrypto.eventsRoot(id: ids[i], index: UInt32(i), count: UInt32(n), path: path) == root, "n \(n) i \(i)")
                // The wrong place or a changed sibling gives another root. (The count is
                // the header's, which the certificate signs.)
                if n > 1 {
                    let j = (i + 1) % n
                    #expect(EventCrypto.eventsRoot(id: ids[i], index: UInt32(j), count: UInt32(n), path: path) != root)
                    var bad = path
                    bad[0].w1 ^= 1
                    #expect(EventCrypto.eventsRoot(id: ids[i], index: UInt32(i), count: UInt32(n), path: bad) != root)
                }
                #expect(EventCrypto.eventsRoot(id: ids[i], index: UInt32(n), count: UInt32(n), path: path) == nil)
            }
        }
    }
}
