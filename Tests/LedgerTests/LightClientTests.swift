import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerHTTP
import LedgerProjections
import LedgerStore
import Testing

/// The light client against the HTTP API: it trusts only the genesis, walks the power
/// changes, and checks entity and event proofs; every tampering is refused with its reason.
@Suite("Light client", .timeLimit(.minutes(10)))
struct LightClientTests {
    static func hex(_ s: Any?) -> [UInt8] { Hex.decode(s as? String ?? "") ?? [] }

    /// `/v1/light/checkpoints` serves the stored certificates of stable checkpoints, a
    /// page at a time; the light client checks one against the power it trusts and
    /// refuses a tampered one or one below its trusted height.
    @Test func servesCheckpointCertificatesThatTheClientChecks() async throws {
        let service = try SoloService()
        let f = service.fixture
        try await withAPI(service) { client in
            // Nine blocks (epochs of 4); a delegation in block 2 changes the power after block 4.
            for n in 1 ... 9 as ClosedRange<UInt64> {
                let p: Payload = n == 2 ? .delegate(validator: ValidatorID(f.producer.publicKey), amount: 500)
                    : .transfer(to: f.bob.publicKey, amount: 3, memo: "c\(n)")
                #expect(try await client.submit([f.event(f.alice, n, p)]).status == .ok)
            }
            // The one validator's certificates over checkpoints 4 and 8, as a node stores them.
            for h in [4, 8] as [Height] {
                let b = try #require(try service.log.block(at: h))
                let root = try #require(b.header.post?.stateRoot)
                let m = ConsensusMessage.checkpoint(height: h, blockHash: Blake2b.hash(b.headerBytes), stateRoot: root)
                let vote = SignedConsensusMessage.sign(m, chain: f.genesis.chainID.raw, signer: f.producer)
                let cert = CheckpointCertificate(height: h, blockHash: Blake2b.hash(b.headerBytes), stateRoot: root,
                                                 votes: [.init(key: f.producer.publicKey, signature: vote.signature)])
                try service.log.putCheckpointCertificate(height: h, bytes: cert.encoded())
            }
            let first = try #require(try await client.call(.get, "/v1/light/checkpoints?from=1&limit=1").json)
            let page = try #require(first["checkpoints"] as? [[String: Any]])
            #expect(page.map { $0["height"] as? Int } == [4] && first["next"] as? Int == 8)
            let second = try #require(try await client.call(.get, "/v1/light/checkpoints?from=8").json)
            #expect((second["checkpoints"] as? [[String: Any]])?.map { $0["height"] as? Int } == [8])
            #expect(((try await client.call(.get, "/v1/light/checkpoints?from=9").json)?["checkpoints"] as? [Any])?.isEmpty == true)

            let g = try await client.call(.get, "/v1/genesis")
            var lc = try LightClient(genesis: Self.hex(g.json?["bytes"]), hash: f.genesisHash)
            let powers = try #require(try await client.call(.get, "/v1/light/powers?from=1").json?["powers"] as? [[String: Any]])
            for c in powers {
                let list = try #require(c["power"] as? [[String: Any]])
                let next = Dictionary(uniqueKeysWithValues: list.map { (Bytes32(hex: $0["key"] as! String)!, UInt64($0["power"] as! Int)) })
                try lc.adopt(header: Self.hex(c["header"]), certificate: Self.hex(c["certificate"]), next: next)
            }
            let bytes = Self.hex(page[0]["certificate"])
            let cert = try lc.verifyCheckpoint(bytes)
            #expect(cert.height == 4 && cert.stateRoot.hex == page[0]["stateRoot"] as? String)
            var tampered = bytes
            tampered[tampered.count - 1] ^= 1
            #expect(throws: LightClient.Refusal.badSignature(f.producer.publicKey)) { try lc.verifyCheckpoint(tampered) }
            // A signer outside the trusted power, and a checkpoint below the trusted height.
            let stranger = SigningKey.derived("stranger")
            func signed(_ h: Height, by k: SigningKey) throws -> [UInt8] {
                let b = try #require(try service.log.block(at: h))
                let m = ConsensusMessage.checkpoint(height: h, blockHash: Blake2b.hash(b.headerBytes), stateRoot: .zero)
                let v = SignedConsensusMessage.sign(m, chain: f.genesis.chainID.raw, signer: k)
                return CheckpointCertificate(height: h, blockHash: Blake2b.hash(b.headerBytes), stateRoot: .zero,
                                             votes: [.init(key: k.publicKey, signature: v.signature)]).encoded()
            }
            let byStranger = try signed(8, by: stranger), tooOld = try signed(3, by: f.producer)
            #expect(lc.trustedHeight == 4)
            #expect(throws: LightClient.Refusal.unknownSigner(stranger.publicKey)) { try lc.verifyCheckpoint(byStranger) }
            #expect(throws: LightClient.Refusal.notAfterTrusted(height: 3, trusted: 4)) { try lc.verifyCheckpoint(tooOld) }
        }
    }

    @Test func followsPowerChangesAndVerifiesEntitiesAndEvents() async throws {
        let service = try SoloService()
        let f = service.fixture
        try await withAPI(service) { client in
            // Nine blocks (epochs of 4): a delegation in block 2 changes the power at the end of epoch 1.
            var n: UInt64 = 0
            var last = f.event(f.alice, 1, .transfer(to: f.bob.publicKey, amount: 1, memo: ""))
            for i in 1 ... 9 {
                n += 1
                last = i == 2 ? f.event(f.alice, n, .delegate(validator: ValidatorID(f.producer.publicKey), amount: 500))
                    : f.event(f.alice, n, .transfer(to: f.bob.publicKey, amount: 7, memo: "b\(i)"))
                #expect(try await client.submit([last]).status == .ok)
            }
            let g = try await client.call(.get, "/v1/genesis")
            var lc = try LightClient(genesis: Self.hex(g.json?["bytes"]), hash: f.genesisHash)

            let powers = try await client.call(.get, "/v1/light/powers?from=1")
            let changes = try #require(powers.json?["powers"] as? [[String: Any]])
            #expect(changes.map { $0["height"] as? Int } == [4], "the delegation changes the power once, at the end of epoch 1")
            for c in changes {
                let list = try #require(c["power"] as? [[String: Any]])
                let next = Dictionary(uniqueKeysWithValues: list.map { (Bytes32(hex: $0["key"] as! String)!, UInt64($0["power"] as! Int)) })
                try lc.adopt(header: Self.hex(c["header"]), certificate: Self.hex(c["certificate"]), next: next)
            }
            #expect(lc.trustedHeight == 4 && lc.power[f.producer.publicKey] == 1_000_000_500)

            // Five entity kinds, present and absent.
            let paths = ["/v1/accounts/\(f.alice.publicKey.hex)", "/v1/validators/\(f.producer.publicKey.hex)",
                         "/v1/accounts/\(SigningKey.derived("stranger").publicKey.hex)", "/v1/agents/\(f.bob.publicKey.hex)",
                         "/v1/jobs/\(Hash32.zero.hex)"]
            var proofs: [[String: Any]] = []
            for p in paths {
                let r = try await client.call(.get, p + "?proof=true")
                let d = try #require(r.json, "\(p): \(r.text)")
                let proof = try lc.verifyState(proof: Self.hex(d["proof"]), header: Self.hex(d["header"]), certificate: Self.hex(d["certificate"]))
                #expect((proof.value != nil) == (d["found"] as? Bool == true))
                proofs.append(d)
            }
            #expect(proofs.map { $0["found"] as? Bool } == [true, true, false, false, false])
            // The account's value is its §7 entry: key, balance, nonce.
            var r = ByteReader(Self.hex(proofs[0]["value"]))
            #expect(try r.b32("key") == f.alice.publicKey)
            #expect(try r.u64("balance") == UInt64((proofs[0]["entity"] as? [String: Any])?["balance"] as? Int ?? -1))

            // An event, by its RFC 6962 path.
            let id = EventCrypto.id(last.bytes)
            let ev = try await client.call(.get, "/v1/events/\(id.hex)?proof=true")
            let ep = try #require(ev.json?["proof"] as? [String: Any])
            try lc.verifyEvent(id: id, path: Self.hex(ep["path"]), header: Self.hex(ep["header"]), certificate: Self.hex(ep["certificate"]))

            // Tamperings, each refused with its own reason.
            let a = proofs[0]
            var value = Self.hex(a["proof"])
            value[value.count - 40] ^= 1
            #expect(throws: LightClient.Refusal.self) {
                try lc.verifyState(proof: value, header: Self.hex(a["header"]), certificate: Self.hex(a["certificate"]))
            }
            var header = Self.hex(a["header"])
            header[header.count - 70] ^= 1  // inside the state root
            #expect(throws: LightClient.Refusal.certificateForAnotherBlock(height: 9)) {
                try lc.verifyState(proof: Self.hex(a["proof"]), header: header, certificate: Self.hex(a["certificate"]))
            }
            #expect(throws: LightClient.Refusal.wrongPath("event \(f.bob.publicKey.short) at 0 of 1 against events root \(try BlockHeader.decode(Self.hex(ep["header"])).eventsRoot.short)")) {
                try lc.verifyEvent(id: EventID(f.bob.publicKey), path: Self.hex(ep["path"]), header: Self.hex(ep["header"]), certificate: Self.hex(ep["certificate"]))
            }
            // A certificate whose only signer is not in the trusted set.
            let h9 = try BlockHeader.decode(Self.hex(a["header"]))
            let forged = CommitCertificate(height: 9, view: 0, blockHash: Blake2b.hash(Self.hex(a["header"])),
                                           votes: [EventCrypto.signCommit(chain: h9.chainID, height: 9, view: 0,
                                                                          blockHash: Blake2b.hash(Self.hex(a["header"])), key: f.alice)])
            #expect(throws: LightClient.Refusal.unknownSigner(f.alice.publicKey)) {
                try lc.verifyState(proof: Self.hex(a["proof"]), header: Self.hex(a["header"]), certificate: forged.encoded())
            }
            // Another chain's genesis cannot follow this chain's headers.
            var other = f.genesis
            other.chainID = try ChainID("another-chain")
            let stranger = try LightClient(genesis: other.encoded())
            #expect(throws: LightClient.Refusal.anotherChain) {
                _ = try stranger.certified(header: Self.hex(a["header"]), certificate: Self.hex(a["certificate"]))
            }
            // A power list that is not the one the header commits to.
            var lc2 = try LightClient(genesis: Self.hex(g.json?["bytes"]))
            #expect(throws: LightClient.Refusal.powerMismatch(height: 4)) {
                try lc2.adopt(header: Self.hex(changes[0]["header"]), certificate: Self.hex(changes[0]["certificate"]),
                              next: [f.producer.publicKey: 1])
            }
            // A wrong genesis hash.
            #expect(throws: LightClient.Refusal.self) { _ = try LightClient(genesis: Self.hex(g.json?["bytes"]), hash: .zero) }
        }
    }

    /// A stream's events up to a proven height are all there, in order (§7.3): the full
    /// list verifies, and a list with one left out, one foreign, two swapped or one
    /// beyond the height is refused.
    @Test func provesAStreamComplete() async throws {
        let service = try SoloService()
        let f = service.fixture
        try await withAPI(service) { client in
            var sent: [EventID] = []
            for n in 1 ... 5 as ClosedRange<UInt64> {
                let e = f.event(f.alice, n, .transfer(to: f.bob.publicKey, amount: n, memo: "s\(n)"))
                #expect(try await client.submit([e]).status == .ok)
                sent.append(EventCrypto.id(e.bytes))
            }
            let g = try await client.call(.get, "/v1/genesis")
            let lc = try LightClient(genesis: Self.hex(g.json?["bytes"]), hash: f.genesisHash)
            let path = "/v1/streams/account/\(f.bob.publicKey.hex)"
            let d = try #require(try await client.call(.get, path + "?proof=true&height=4").json)
            let end = try #require(d["endSequence"] as? Int)
            let page = try #require(try await client.call(.get, path + "?limit=100").json?["events"] as? [[String: Any]])
            let ids = page.filter { ($0["sequence"] as? Int ?? .max) < end }.map { EventID(hex: $0["id"] as! String)! }
            #expect(ids == Array(sent.prefix(4)) && page.count == 5, "bob's stream at height 4: the first four transfers")
            func check(_ ids: [EventID]) throws {
                _ = try lc.verifyStream(.account(f.bob.publicKey), ids: ids, proof: Self.hex(d["proof"]),
                                        header: Self.hex(d["header"]), certificate: Self.hex(d["certificate"]))
            }
            try check(ids)
            #expect((d["entity"] as? [String: Any])?["count"] as? Int == 4)
            for bad in [Array(ids.dropFirst()), ids + [sent[4]], [ids[1], ids[0]] + ids.dropFirst(2), Array(ids.dropLast()) + [sent[4]]] {
                #expect(throws: LightClient.Refusal.self) { try check(bad) }
            }
            // The proof of one stream does not stand for another's.
            #expect(throws: LightClient.Refusal.wrongPath("the proof is for stream/01\(f.bob.publicKey.hex), not stream agent:\(f.bob.publicKey.hex)")) {
                _ = try lc.verifyStream(.agent(f.bob.publicKey), ids: [], proof: Self.hex(d["proof"]),
                                        header: Self.hex(d["header"]), certificate: Self.hex(d["certificate"]))
            }
            // A stream no event touched is proven absent, and complete when empty.
            let none = try #require(try await client.call(.get, "/v1/streams/job/\(Hash32.zero.hex)?proof=true").json)
            #expect(none["found"] as? Bool == false)
            _ = try lc.verifyStream(.job(.zero), ids: [], proof: Self.hex(none["proof"]), header: Self.hex(none["header"]),
                                    certificate: Self.hex(none["certificate"]))
        }
    }

    /// Under a state window, a proof below it is refused with `height_pruned` (410) and
    /// one inside it is served; the power changes stay servable from the records the
    /// log keeps, so a light client still walks from the genesis; and a power record that
    /// does not hash to its header's commitment is an error, never an answer.
    @Test func aPrunedHeightIsRefusedAndPowerChangesOutliveIt() async throws {
        let service = try SoloService()
        service.retention = StateRetention(window: 8)
        let f = service.fixture
        try await withAPI(service) { client in
            for n in 1 ... 20 as ClosedRange<UInt64> {  // 20 blocks; the delegation in block 2 changes the power at 4
                let p: Payload = n == 2 ? .delegate(validator: ValidatorID(f.producer.publicKey), amount: 500) : .transfer(to: f.bob.publicKey, amount: n, memo: "")
                #expect(try await client.submit([f.event(f.alice, n, p)]).status == .ok)
            }
            #expect(try service.log.checkpointHeights() == [12, 16, 20], "kept: 12 (at or below the oldest served, 12), 16 and 20")
            let account = "/v1/accounts/\(f.alice.publicKey.hex)"
            let pruned = try await client.call(.get, account + "?proof=true&height=11")
            #expect(pruned.status == .gone && pruned.errorCode == "height_pruned", "\(pruned.text)")
            #expect(try await client.call(.get, account + "?height=3").status == .gone)

            let g = try await client.call(.get, "/v1/genesis")
            var lc = try LightClient(genesis: Self.hex(g.json?["bytes"]), hash: f.genesisHash)
            let powers = try await client.call(.get, "/v1/light/powers?from=1")
            let changes = try #require(powers.json?["powers"] as? [[String: Any]], "\(powers.text)")
            #expect(changes.map { $0["height"] as? Int } == [4])
            for c in changes {
                let list = try #require(c["power"] as? [[String: Any]])
                let next = Dictionary(uniqueKeysWithValues: list.map { (Bytes32(hex: $0["key"] as! String)!, UInt64($0["power"] as! Int)) })
                try lc.adopt(header: Self.hex(c["header"]), certificate: Self.hex(c["certificate"]), next: next)
            }
            let d = try #require(try await client.call(.get, account + "?proof=true&height=12").json)
            let proof = try lc.verifyState(proof: Self.hex(d["proof"]), header: Self.hex(d["header"]), certificate: Self.hex(d["certificate"]))
            #expect(proof.value != nil && d["height"] as? Int == 12)

            try service.log.putNextPower(height: 4, power: [(key: f.producer.publicKey, power: 1)])
            let damaged = try await client.call(.get, "/v1/light/powers?from=1")
            #expect(damaged.status == .serviceUnavailable && damaged.text.contains("next power hash"), "\(damaged.text)")
        }
    }
}
