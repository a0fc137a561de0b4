import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerProjections
import Testing

/// A consensus message whose signature does not verify under the member key it names
/// convicts the peer that sent it (honest replicas send only what they signed or
/// verified); a signer this replica does not know as a member convicts nobody, since it
/// may be a validator of an epoch this replica has not reached.
@Suite struct ConvictionTests {
    struct Fixture {
        let genesis: FourValidators
        var validators: [SigningKey] { genesis.keys }
        var chain: Bytes32 { genesis.chain.raw }
        let stable: CheckpointCertificate
        /// The replica of a validator that is not the primary of view 0.
        var replica: Replica
        let me: SigningKey
        /// The peer every message below comes from (itself a validator).
        let liar: PublicKey

        init() throws {
            var p = ChainParameters()
            p.checkpointInterval = 8
            genesis = try FourValidators("conviction", parameters: p)
            stable = CheckpointCertificate(height: 0, blockHash: genesis.genesisHash, stateRoot: genesis.state.stateRoot(), votes: [])
            let primary = genesis.primary(of: 0).publicKey
            let backups = genesis.keys.filter { $0.publicKey != primary }
            me = backups[0]
            liar = backups[1].publicKey
            replica = genesis.replica(of: me)
            _ = replica.step(.tick(nowMs: 2_000))
        }

        func key(_ k: PublicKey) -> SigningKey { validators.first { $0.publicKey == k }! }

        /// A validator's replica at genesis, its clock at 2 s.
        func replica(of key: SigningKey) -> Replica {
            var r = genesis.replica(of: key)
            _ = r.step(.tick(nowMs: 2_000))
            return r
        }

        /// The faults the replica reports for one message from `liar`.
        mutating func faults(_ m: PeerMessage) -> [(PublicKey, PeerFault)] {
            replica.step(.message(from: liar, m)).notes.compactMap { if case let .peerFault(k, f) = $0 { (k, f) } else { nil } }
        }
    }

    @Test func votesAndProposalsWithForgedSignaturesConvictTheirSender() throws {
        var f = try Fixture()
        let other = f.validators.first { $0.publicKey != f.me.publicKey && $0.publicKey != f.liar }!
        let hash = Blake2b.hash([1])
        let prepare = ConsensusMessage.prepare(view: 0, height: Height(1), blockHash: hash)
        let genuine = SignedConsensusMessage.sign(prepare, chain: f.chain, key: other)
        #expect(f.faults(.vote(genuine)).isEmpty, "a member's genuine vote, passed on by another peer")
        // The member's signature over another statement, and a signature made up.
        let elsewhere = SignedConsensusMessage.sign(.prepare(view: 0, height: Height(1), blockHash: Blake2b.hash([2])), chain: f.chain, key: other)
        let moved = SignedConsensusMessage(message: prepare, signer: other.publicKey, signature: elsewhere.signature)
        let commit = ConsensusMessage.commit(view: 0, height: Height(1), blockHash: hash)
        let madeUp = SignedConsensusMessage(message: commit, signer: other.publicKey, signature: Bytes64(hi: Blake2b.hash([3]), lo: Blake2b.hash([3])))
        let checkpoint = SignedConsensusMessage(message: .checkpoint(height: Height(4), blockHash: hash, stateRoot: hash), signer: other.publicKey,
                                                signature: elsewhere.signature)
        for forged in [moved, madeUp, checkpoint] {
            let faults = f.faults(.vote(forged))
            #expect(faults.map(\.0) == [f.liar] && faults.map(\.1) == [.forgedConsensusMessage], "\(forged.message)")
        }
        // A pre-prepare from the primary whose signature covers another block.
        let primary = f.key(f.replica.primary(of: 0))
        let block = ProposedBlock(header: BlockHeader(chainID: f.chain, height: Height(1), parentHash: hash, view: 0, timestampMs: 2_000,
                                                      proposer: primary.publicKey, eventCount: 0, eventsRoot: EventCrypto.eventsRoot([]),
                                                      parentStateRoot: hash, meme: []), events: [], Sodium())
        let signedOther = SignedConsensusMessage.sign(.prePrepare(view: 0, height: Height(1), blockHash: hash), chain: f.chain, key: primary)
        let pp = SignedConsensusMessage(message: .prePrepare(view: 0, height: Height(1), blockHash: block.hash), signer: primary.publicKey,
                                        signature: signedOther.signature)
        let ppFaults = f.faults(.prePrepare(pp, block))
        #expect(ppFaults.map(\.0) == [f.liar] && ppFaults.map(\.1) == [.forgedConsensusMessage])
        // The genuine pre-prepare, passed on by the same peer, convicts nobody.
        let genuinePP = SignedConsensusMessage.sign(.prePrepare(view: 0, height: Height(1), blockHash: block.hash), chain: f.chain, key: primary)
        #expect(f.faults(.prePrepare(genuinePP, block)).isEmpty)
        // A checkpoint vote for a height whose signers this replica does not know yet (the
        // next epoch's set, after height 8) convicts nobody, whatever its signature.
        let ahead = SignedConsensusMessage(message: .checkpoint(height: Height(8), blockHash: hash, stateRoot: hash), signer: other.publicKey,
                                           signature: elsewhere.signature)
        #expect(f.faults(.vote(ahead)).isEmpty)
        // A signer this replica does not know as a member convicts nobody, whatever it signed.
        let stranger = SigningKey.derived("conviction-stranger")
        let unknown = SignedConsensusMessage(message: commit, signer: stranger.publicKey, signature: Bytes64(hi: Blake2b.hash([4]), lo: Blake2b.hash([4])))
        let out = f.replica.step(.message(from: f.liar, .vote(unknown)))
        #expect(!out.notes.contains { if case .peerFault = $0 { true } else { false } })
        #expect(out.notes.contains { if case let .rejectedMessage(why) = $0 { why.contains("not a member") } else { false } })
    }

    @Test func viewChangesAndNewViewsWithForgedSignaturesConvictTheirSender() throws {
        var f = try Fixture()
        let other = f.validators.first { $0.publicKey != f.me.publicKey && $0.publicKey != f.liar }!
        var vc = ViewChange.sign(view: 1, stable: f.stable, prepared: [], chain: f.chain, key: other)
        let genuine = vc
        vc.view = 2  // changed after signing
        let faults = f.faults(.viewChange(vc, blocks: []))
        #expect(faults.map(\.0) == [f.liar] && faults.map(\.1) == [.forgedConsensusMessage])
        // The new primary's new view, its signature taken from another record; then a
        // correctly signed one that carries the tampered view change.
        let nextPrimary = f.key(f.replica.primary(of: 2))
        var nv = NewView.sign(view: 2, viewChanges: [], prePrepares: [], chain: f.chain, key: nextPrimary)
        nv.signature = genuine.signature
        let nvFaults = f.faults(.newView(nv, blocks: []))
        #expect(nvFaults.map(\.0) == [f.liar] && nvFaults.map(\.1) == [.forgedConsensusMessage])
        let carrying = NewView.sign(view: 2, viewChanges: [vc], prePrepares: [], chain: f.chain, key: nextPrimary)
        let carriedFaults = f.faults(.newView(carrying, blocks: []))
        #expect(carriedFaults.map(\.0) == [f.liar] && carriedFaults.map(\.1) == [.forgedConsensusMessage])
        // The genuine view change convicts nobody (nor does a view change from a key
        // this replica does not know as a validator).
        #expect(f.faults(.viewChange(genuine, blocks: [])).isEmpty)
        var stranger = ViewChange.sign(view: 3, stable: f.stable, prepared: [], chain: f.chain, key: SigningKey.derived("conviction-stranger"))
        #expect(f.faults(.viewChange(stranger, blocks: [])).isEmpty)
        stranger.view = 4  // and with a signature that does not verify either
        #expect(f.faults(.viewChange(stranger, blocks: [])).isEmpty)
    }

    /// A replica that installed a view sends its new view again to a member asking for
    /// that view (it missed the new view), but only when the request's signature is
    /// that member's, and at most once per `retransmitMs`: before, any view change naming
    /// any key made it send the whole new view, to everyone if the key had no connection.
    @Test func aNewViewIsSentAgainOnlyToAMemberWhoseRequestVerifies() throws {
        let f = try Fixture()
        let newPrimary = f.key(f.replica.primary(of: 1))
        var r = f.replica(of: newPrimary)
        let others = f.validators.filter { $0.publicKey != newPrimary.publicKey }
        let asks = others.map { ViewChange.sign(view: 1, stable: f.stable, prepared: [], chain: f.chain, key: $0) }
        /// Steps `r`, acknowledging its records, and returns what it sent.
        func step(_ input: Input) -> [Outgoing] {
            var out = r.step(input)
            var sent = out.send
            while let t = out.persistToken {
                out = r.step(.persisted(token: t))
                sent += out.send
            }
            return sent
        }
        func newViews(_ sent: [Outgoing]) -> [Destination] { sent.compactMap { if case .newView = $0.message { $0.to } else { nil } } }
        var sent: [Outgoing] = []
        // Two view changes and its own make a quorum: it installs view 1.
        for vc in asks.prefix(2) { sent += step(.message(from: vc.replica, .viewChange(vc, blocks: []))) }
        #expect(newViews(sent) == [.all], "the new primary installed view 1")
        #expect(r.view == 1)
        let asker = asks[2], liar = others[1].publicKey
        // A forged request naming a member convicts its sender and sends nothing.
        var forged = asker
        forged.signature = asks[0].signature
        var out = r.step(.message(from: liar, .viewChange(forged, blocks: [])))
        #expect(newViews(out.send).isEmpty)
        #expect(out.notes.contains(.peerFault(liar, .forgedConsensusMessage)))
        // A request from a key that is not a member: nothing sent, nobody convicted.
        let stranger = ViewChange.sign(view: 1, stable: f.stable, prepared: [], chain: f.chain, key: SigningKey.derived("conviction-stranger"))
        out = r.step(.message(from: liar, .viewChange(stranger, blocks: [])))
        #expect(newViews(out.send).isEmpty && !out.notes.contains { if case .peerFault = $0 { true } else { false } })
        // The member's own request: the new view goes to it, once per retransmitMs.
        #expect(newViews(step(.message(from: asker.replica, .viewChange(asker, blocks: [])))) == [.peer(asker.replica)])
        #expect(newViews(step(.message(from: asker.replica, .viewChange(asker, blocks: [])))).isEmpty)
        _ = step(.tick(nowMs: 2_000 + r.config.retransmitMs))
        #expect(newViews(step(.message(from: asker.replica, .viewChange(asker, blocks: [])))) == [.peer(asker.replica)])
    }
}
