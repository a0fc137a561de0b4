import LedgerConsensus
import LedgerCore
import LedgerCrypto
import Testing

/// The wire format between replicas: every message round-trips, and every truncated,
/// extended or corrupted encoding is a typed `DecodeError`, never a crash.
@Suite struct PeerMessageTests {
    static let chain = Blake2b.hash(Array("peer-tests".utf8))
    static let keys = (0 ..< 4).map { SigningKey.derived("peer-\($0)") }

    static func block(_ h: UInt64) -> ProposedBlock {
        let e = EventCrypto.makeEvent(chain: try! ChainID("peer-tests"), key: keys[0], nonce: h, fee: 1,
                                      payload: .transfer(to: keys[1].publicKey, amount: 3, memo: "m"))
        return ProposedBlock(header: BlockHeader(chainID: chain, height: Height(h), parentHash: .zero, view: 2, timestampMs: 7,
                                                 proposer: keys[0].publicKey, eventCount: 1, eventsRoot: EventCrypto.eventsRoot([EventCrypto.id(e.bytes)]),
                                                 parentStateRoot: .zero, meme: Array("gm!".utf8)), events: [e.bytes], Sodium())
    }

    static var samples: [PeerMessage] {
        let b = block(5)
        let pp = SignedConsensusMessage.sign(.prePrepare(view: 2, height: 5, blockHash: b.hash), chain: chain, key: keys[0])
        let prepares = keys.dropFirst().map { SignedConsensusMessage.sign(.prepare(view: 2, height: 5, blockHash: b.hash), chain: chain, key: $0) }
        let cert = PreparedCertificate(view: 2, height: 5, blockHash: b.hash, prePrepare: .init(key: pp.signer, signature: pp.signature),
                                       prepares: prepares.map { .init(key: $0.signer, signature: $0.signature) })
        let cpVotes = keys.map { SignedConsensusMessage.sign(.checkpoint(height: 4, blockHash: b.hash, stateRoot: .zero), chain: chain, key: $0) }
        let stable = CheckpointCertificate(height: 4, blockHash: b.hash, stateRoot: .zero, votes: cpVotes.map { .init(key: $0.signer, signature: $0.signature) })
        let vc = ViewChange.sign(view: 3, stable: stable, prepared: [cert], chain: chain, key: keys[1])
        let nv = NewView.sign(view: 3, viewChanges: [vc], prePrepares: [SignedConsensusMessage.sign(.prePrepare(view: 3, height: 5, blockHash: b.hash), chain: chain, key: keys[3])],
                              chain: chain, key: keys[3])
        let commit = CommitCertificate(height: 5, view: 3, blockHash: b.hash,
                                       votes: keys.map { EventCrypto.signCommit(chain: chain, height: 5, view: 3, blockHash: b.hash, key: $0) })
        return [
            .prePrepare(pp, b), .vote(prepares[0]), .vote(cpVotes[2]), .viewChange(vc, blocks: [b]), .newView(nv, blocks: [b]),
            .fetch(from: 9, count: 16), .blocks([CertifiedBlock(block: b, certificate: commit)]), .request(b.events[0]), .requests(b.events),
        ]
    }

    @Test(arguments: samples)
    func roundTripsAndRefusesDamage(_ m: PeerMessage) throws {
        let bytes = m.encoded()
        #expect(try PeerMessage.decode(bytes, Sodium()) == m)
        for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 64)) {
            #expect(throws: DecodeError.self) { try PeerMessage.decode(Array(bytes.prefix(cut)), Sodium()) }
        }
        #expect(throws: DecodeError.self) { try PeerMessage.decode(bytes + [0], Sodium()) }
        var wrongTag = bytes
        wrongTag[2] = 99
        #expect(throws: DecodeError.self) { try PeerMessage.decode(wrongTag, Sodium()) }
    }

    /// Signed parts are bound by their signatures: a changed byte inside a view change
    /// either fails to decode or fails its signature.
    @Test func viewChangeSignatureCoversItsContent() throws {
        guard case let .viewChange(vc, _) = Self.samples[3] else { Issue.record("sample order"); return }
        #expect(vc.verifySignature(chain: Self.chain, Sodium()))
        var tampered = vc
        tampered.prepared[0].view = tampered.prepared[0].view.next
        #expect(!tampered.verifySignature(chain: Self.chain, Sodium()))
        var other = vc
        other.view = other.view.next
        #expect(!other.verifySignature(chain: Self.chain, Sodium()))
    }
}
