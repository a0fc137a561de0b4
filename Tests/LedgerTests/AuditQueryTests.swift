import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerProjections
import LedgerStore
import Testing

/// The audit queries: `replay --trace`, `diff`, `export` and `replay --bundle`, over a
/// small log whose history is known event by event.
@Suite(.serialized) struct AuditQueryTests {
    let f = Fixture()
    var alice: PublicKey { f.alice.publicKey }
    var bob: PublicKey { f.bob.publicKey }
    var producer: PublicKey { f.producer.publicKey }

    /// Eight blocks, one second apart (unbonding takes 3 blocks; epochs of 4 blocks):
    ///  1 alice and bob register as agents; alice sends bob 100
    ///  2 alice delegates 500 to the producer
    ///  3 alice proposes an alliance to bob
    ///  4 bob accepts it (it becomes active); alice undelegates 200 (released at block 7)
    ///  5, 6 bob sends carol 1, twice
    ///  7 carol sends dave 1 (and, at the block's start, alice's 200 come back)
    ///  8 alice sends dave 1
    /// Returns the alliance id.
    @discardableResult
    func build(_ log: any EventLog) throws -> AllianceID {
        let p = try f.producer(on: log)
        let profile = AgentProfile(name: "agent", capabilities: ["trade"], personality: "lawful", endpoint: "")
        var nonces: [PublicKey: UInt64] = [:]
        func submit(_ k: SigningKey, _ payload: Payload) throws -> EventID {
            nonces[k.publicKey, default: 0] += 1
            return try p.submit(f.event(k, nonces[k.publicKey]!, payload).bytes)
        }
        _ = try submit(f.alice, .agentRegister(profile))
        _ = try submit(f.bob, .agentRegister(profile))
        _ = try submit(f.alice, .transfer(to: bob, amount: 100, memo: "hello"))
        try p.commit()
        _ = try submit(f.alice, .delegate(validator: ValidatorID(producer), amount: 500))
        try p.commit()
        let alliance = AllianceID(createdBy: try submit(f.alice, .alliancePropose(AllianceProposal(targets: [bob], purpose: "trade", terms: "fair", durationMs: 50_000))))
        try p.commit()
        _ = try submit(f.bob, .allianceAccept(alliance))
        _ = try submit(f.alice, .undelegate(validator: ValidatorID(producer), amount: 200))
        try p.commit()
        _ = try submit(f.bob, .transfer(to: f.carol.publicKey, amount: 1, memo: ""))
        try p.commit()
        _ = try submit(f.bob, .transfer(to: f.carol.publicKey, amount: 1, memo: ""))
        try p.commit()
        _ = try submit(f.carol, .transfer(to: f.dave.publicKey, amount: 1, memo: ""))
        try p.commit()
        _ = try submit(f.alice, .transfer(to: f.dave.publicKey, amount: 1, memo: ""))
        try p.commit()
        return alliance
    }

    func value(_ fields: [EntityField]?, _ name: String) -> String? { fields?.first { $0.name == name }?.value }

    func balanceDelta(_ s: TraceStep) -> Int64 {
        guard let c = s.changes.first(where: { $0.name == "balance" }) else { return 0 }
        return Int64(c.after ?? "0")! - Int64(c.before ?? "0")!
    }

    @Test func traceOfAnAccountExplainsItsBalanceExactly() throws {
        let log = LedgerLog.memory()
        try build(log)
        let head = try #require(Replayer(log: log).run().state)
        let t = try Trace.run(log: log, entity: EntityView.parse("account:\(alice.hex)"))
        #expect(t.replay.ok && t.replay.verifiedToHeight == 8)
        // The chain ends at the state at head, and its balance deltas from genesis add up to it.
        #expect(t.final == EntityView.of(EntityRef(kind: "account", id: alice.hex), in: head))
        #expect(t.steps.last?.after == t.final)
        #expect(value(t.final, "balance") == "999587")  // 1,000,000 − 6 fees of 2 − 100 − 500 + 200 − 1
        #expect(t.steps.reduce(0) { $0 + balanceDelta($1) } == 999_587)
        #expect(t.steps.first?.cause == .genesis && value(t.steps.first?.after, "balance") == "1000000")
        // Her six events, in order, all in her stream (bob's acceptance is in the alliance's).
        let events = t.steps.filter { $0.cause == .event }
        #expect(events.map(\.kind) == ["agent.register", "transfer", "staking.delegate", "alliance.propose", "staking.undelegate", "transfer"])
        #expect(events.allSatisfy { $0.inStream == true && $0.author == alice.hex })
        #expect(t.streamEvents == 6)
        #expect(events.map(\.height) == [1, 1, 2, 3, 4, 8])
        // The release at the start of block 7, with no event of hers.
        let release = try #require(t.steps.first { $0.cause == .block })
        #expect(release.height == 7)
        #expect(release.notes.count == 1 && release.notes[0].hasPrefix("unbonding of 200 released to account:\(alice.hex)"))
        #expect(release.changes == [FieldChange(name: "balance", before: "999390", after: "999590"),
                                    FieldChange(name: "unbonding[7/\(producer.hex)]", before: "200", after: nil)])
        #expect(t.steps.filter { $0.cause == .block }.count == 1)
        // The delegation and its undelegation, field by field.
        #expect(events[2].changes.contains(FieldChange(name: "delegation[\(producer.hex)]", before: nil, after: "500")))
        #expect(events[4].changes.contains(FieldChange(name: "delegation[\(producer.hex)]", before: "500", after: "300")))
        #expect(events[4].changes.contains(FieldChange(name: "unbonding[7/\(producer.hex)]", before: nil, after: "200")))
    }

    @Test func traceOfTheProposerShowsFeesFromOutsideItsStream() throws {
        let log = LedgerLog.memory()
        try build(log)
        let head = try #require(Replayer(log: log).run().state)
        let t = try Trace.run(log: log, entity: EntityView.parse("account:\(producer.hex)"))
        #expect(t.steps.last?.after == t.final && t.final == EntityView.of(EntityRef(kind: "account", id: producer.hex), in: head))
        let outside = t.steps.filter { $0.inStream == false }
        // Every one of the 11 events paid its fee of 2 to the producer's account; 2 of them
        // (alice's delegation and undelegation) are in its stream.
        #expect(outside.count == 9)
        #expect(outside.allSatisfy { $0.notes.first?.hasPrefix("fee 2 paid to the proposer of block") == true && balanceDelta($0) == 2 })
        #expect(t.steps.reduce(0) { $0 + balanceDelta($1) } == Int64(head.accounts[producer]!.balance))
        #expect(head.accounts[producer]!.balance == 22)
        // The validator view of the same key: delegations in, and the epoch power fixed at block 5.
        let v = try Trace.run(log: log, entity: EntityView.parse("validator:\(producer.hex)"))
        #expect(v.final == EntityView.of(EntityRef(kind: "validator", id: producer.hex), in: head))
        let epoch = try #require(v.steps.first { $0.cause == .block })
        #expect(epoch.height == 5 && epoch.notes == ["epoch starting at block 5: voting power fixed"])
        #expect(epoch.changes == [FieldChange(name: "epochPower", before: "1000000000", after: "1000000300")])
    }

    @Test func traceOfAnAllianceShowsProposeAcceptActive() throws {
        let log = LedgerLog.memory()
        let id = try build(log)
        let t = try Trace.run(log: log, entity: EntityView.parse("alliance:\(id.hex)"))
        #expect(t.steps.map(\.kind) == ["alliance.propose", "alliance.accept"])
        #expect(t.steps.map { value($0.after, "status") } == ["pending", "active"])
        #expect(t.steps[0].changes.allSatisfy { $0.before == nil })
        #expect(t.steps[1].changes.map(\.name) == ["accepted", "activeUntilMs", "status"])
        #expect(t.steps[1].author == bob.hex && t.steps[1].height == 4)
        #expect(value(t.final, "activeUntilMs") == "\(1_004_000 + 50_000)")
    }

    @Test func badEntitiesAreRefused() throws {
        let log = LedgerLog.memory()
        try build(log)
        #expect(throws: AuditQueryError.self) { try EntityView.parse("account:12") }
        #expect(throws: AuditQueryError.self) { try EntityView.parse("planet:\(alice.hex)") }
        #expect(throws: AuditQueryError.self) { try EntityView.parse("delegation:\(alice.hex)") }
        #expect(throws: AuditQueryError.badRange("from 5 is after to 4")) { try StateDiff.run(log: log, from: 5, to: 4) }
        #expect(throws: AuditQueryError.badRange("to 9 is after the head 8")) { try StateDiff.run(log: log, from: 0, to: 9) }
        // An entity that never existed has an empty trace, not an error.
        let nobody = try Trace.run(log: log, entity: EntityView.parse("agent:\(f.dave.publicKey.hex)"))
        #expect(nobody.steps.isEmpty && nobody.final == nil)
    }

    @Test func diffListsExactlyTheChangedFields() throws {
        let log = LedgerLog.memory()
        let id = try build(log)
        let d = try StateDiff.run(log: log, from: 2, to: 4)
        #expect(d.blocks == 2 && d.events == 3)
        #expect(d.eventsByKind == ["alliance.propose": 1, "alliance.accept": 1, "staking.undelegate": 1])
        let delegation = "\(alice.hex)-\(producer.hex)"
        let accounts = [alice, bob, producer].sorted().map { "account:\($0.hex)" }
        #expect(d.entities.map(\.entity) == ["chain:ledger"] + accounts + [
            "validator:\(producer.hex)", "delegation:\(delegation)", "unbonding:\(alice.hex)-\(producer.hex)-7", "alliance:\(id.hex)",
        ])
        func entity(_ e: String) -> EntityDiff? { d.entities.first { $0.entity == e } }
        #expect(entity("account:\(alice.hex)")?.changes == [
            FieldChange(name: "balance", before: "999394", after: "999390"),
            FieldChange(name: "delegation[\(producer.hex)]", before: "500", after: "300"),
            FieldChange(name: "nonce", before: "3", after: "5"),
            FieldChange(name: "unbonding[7/\(producer.hex)]", before: nil, after: "200"),
        ])
        #expect(entity("account:\(bob.hex)")?.changes == [FieldChange(name: "balance", before: "1000098", after: "1000096"),
                                                         FieldChange(name: "nonce", before: "1", after: "2")])
        #expect(entity("validator:\(producer.hex)")?.changes == [FieldChange(name: "delegated", before: "500", after: "300")])
        #expect(entity("delegation:\(delegation)")?.status == .changed)
        #expect(entity("unbonding:\(alice.hex)-\(producer.hex)-7")?.status == .added)
        let alliance = try #require(entity("alliance:\(id.hex)"))
        #expect(alliance.status == .added && alliance.changes.first { $0.name == "status" }?.after == "active")
        #expect(entity("chain:ledger")?.changes == [
            FieldChange(name: "eventsApplied", before: "4", after: "7"), FieldChange(name: "feesPaid", before: "8", after: "14"),
            FieldChange(name: "height", before: "2", after: "4"), FieldChange(name: "timestampMs", before: "1002000", after: "1004000"),
        ])
        // A height against itself: nothing.
        let none = try StateDiff.run(log: log, from: 3, to: 3)
        #expect(none.entities.isEmpty && none.events == 0 && none.fromStateRoot == none.toStateRoot)
        // From genesis, entities that did not exist are added.
        let all = try StateDiff.run(log: log, from: 0, to: nil)
        #expect(all.toHeight == 8 && all.events == 11)
        #expect(all.entities.first { $0.entity == "agent:\(alice.hex)" }?.status == .added)
    }

    @Test func exportThenVerifyTheBundle() throws {
        let log = LedgerLog.memory()
        try build(log)
        let head = try #require(Replayer(log: log).run().state)
        let bundle = try AuditBundle.export(from: log)
        let bytes = bundle.encoded()
        let decoded = try AuditBundle.decode(bytes)
        #expect(decoded.encoded() == bytes)
        #expect(decoded.blocks.count == 8 && decoded.stateRoots.count == 9 && decoded.snapshot == nil)
        #expect(decoded.validatorSets.map(\.from) == [1, 5])
        let (r, state) = decoded.verify()
        #expect(r.ok, "\(String(describing: r.failure))")
        #expect(r.blocks == 8 && r.events == 11 && r.signaturesVerified == 11 && r.fromHeight == 0)
        #expect(r.stateRootsCompared == 8 + 9)  // each parent root, and each recorded root
        #expect(state == head)

        // From block 5 on: the snapshot at 4 stands in for blocks 1...4.
        let later = try AuditBundle.decode(AuditBundle.export(from: log, from: 4, to: 8).encoded())
        #expect(later.snapshot != nil && later.blocks.count == 4 && later.validatorSets.map(\.from) == [5])
        let (r2, state2) = later.verify()
        #expect(r2.ok, "\(String(describing: r2.failure))")
        #expect(r2.fromHeight == 4 && r2.blocks == 4 && r2.events == 4)
        #expect(state2 == head)
        // The snapshot is tied to the genesis: the delegation in block 2 changed the power
        // at the end of epoch 1, and the bundle carries that header and its certificate.
        #expect(later.powerChanges.count == 1 && later.version == 2)
        #expect(r2.anchor == "the genesis, through 1 certified power changes up to block 4")
        // Without them the walk from the genesis ends at the genesis power, not the
        // snapshot's: refused, where a version 1 bundle trusts the snapshot's set and says so.
        var bare = later
        bare.powerChanges = []
        let f1 = try verifyFailure(bare)
        #expect(f1.record == "powerChanges" && f1.reason.contains("another validator set"), "\(f1)")
        var power = later
        power.powerChanges[0].power[0].power += 1
        #expect(try verifyFailure(power).reason.contains("next power hash"))
        // The checkpoint certificates in the range travel with it: the one at 4 signs the
        // snapshot's root, the one at 8 the refold's after block 8; each forged one is named.
        for h in [4, 8] as [Height] {
            let b = try #require(try log.block(at: h))
            let root = try #require(b.header.post?.stateRoot)
            let m = ConsensusMessage.checkpoint(height: h, blockHash: Blake2b.hash(b.headerBytes), stateRoot: root)
            let vote = SignedConsensusMessage.sign(m, chain: f.genesis.chainID.raw, signer: f.producer)
            try log.putCheckpointCertificate(height: h, bytes: CheckpointCertificate(height: h, blockHash: Blake2b.hash(b.headerBytes),
                                                                                     stateRoot: root, votes: [.init(key: producer, signature: vote.signature)]).encoded())
        }
        let certified = try AuditBundle.decode(AuditBundle.export(from: log, from: 4, to: 8).encoded())
        #expect(certified.checkpointCertificates.map(\.height) == [4, 8])
        let (rc, _) = certified.verify()
        #expect(rc.ok && rc.checkpointCertificatesVerified == 1, "\(String(describing: rc.failure))")
        for i in 0 ..< 2 {
            var forgedCert = certified
            forgedCert.checkpointCertificates[i].stateRoot = Blake2b.hash(Array("another root".utf8))
            let fc = try verifyFailure(forgedCert)
            #expect(fc.record == "checkpoint certificate[\(i == 0 ? 4 : 8)]" && fc.reason.contains("refold gives"), "\(fc)")
        }
        // A snapshot altered (a balance, still canonical) no longer has the root its
        // certificate signs; a certificate without a quorum is refused as such.
        var altered = certified
        let at = try #require(StateSyncTests.find(f.dave.publicKey.bytes, in: altered.snapshot!)) + 32 + 7
        altered.snapshot![at] ^= 1
        let fa = try verifyFailure(altered)
        #expect(fa.record == "checkpoint certificate[4]" && fa.reason.contains("state root"), "\(fa)")
        var unsigned = certified
        unsigned.checkpointCertificates[0].votes = []
        let fu = try verifyFailure(unsigned)
        #expect(fu.record == "checkpoint certificate[4]" && fu.reason.contains("not more than two thirds"), "\(fu)")
        var v1 = later
        v1.version = 1
        let (r1, _) = try AuditBundle.decode(v1.encoded()).verify()
        #expect(r1.ok && r1.anchor.hasPrefix("the snapshot at 4 and its validator set (a version 1 bundle"), "\(r1.anchor)")
        #expect(throws: BundleError.badRange("from 8 must be before to 8: a bundle holds at least one block")) {
            try AuditBundle.export(from: log, from: 8)
        }
    }

    /// Re-encodes a changed bundle, so its outer hash is right again.
    func verifyFailure(_ b: AuditBundle) throws -> AuditFailure {
        let (r, _) = try AuditBundle.decode(b.encoded()).verify()
        #expect(!r.ok)
        return try #require(r.failure)
    }

    @Test func damagedAndForgedBundlesAreRefused() throws {
        let log = LedgerLog.memory()
        try build(log)
        let bundle = try AuditBundle.export(from: log)
        let bytes = bundle.encoded()

        var flipped = bytes
        flipped[bytes.count / 2] ^= 0x01
        #expect(throws: BundleError.hashMismatch) { try AuditBundle.decode(flipped) }
        #expect(throws: BundleError.truncated(expected: bytes.count, actual: bytes.count - 10)) { try AuditBundle.decode(Array(bytes.dropLast(10))) }
        #expect(throws: BundleError.trailingBytes(1)) { try AuditBundle.decode(bytes + [0]) }
        #expect(throws: BundleError.notABundle) { try AuditBundle.decode(Array("not a bundle at all".utf8)) }
        var version = bytes
        version[9] = 9
        #expect(throws: BundleError.unsupportedVersion(9)) { try AuditBundle.decode(version) }

        // An event signature forged, the bundle re-hashed: the signature check names it.
        var forged = bundle
        forged.blocks[2].events[0][forged.blocks[2].events[0].count - 1] ^= 0x01
        let e = try verifyFailure(forged)
        #expect(e.height == 3 && e.record == "events[4]" && e.reason.hasSuffix("does not verify"))

        // A certificate signature forged.
        var cert = bundle
        var vote = cert.blocks[5].block.certificate.votes[0]
        vote.signature = Bytes64(hi: vote.signature.lo, lo: vote.signature.hi)
        cert.blocks[5].block.certificate.votes[0] = vote
        let c = try verifyFailure(cert)
        #expect(c.height == 6 && c.record == "blocks[6].certificate" && c.reason == "signature of \(producer.short) does not verify")

        // A recorded state root or validator set that the refold does not give.
        var roots = bundle
        roots.stateRoots[3] = Blake2b.hash(Array("other".utf8))
        let s = try verifyFailure(roots)
        #expect(s.record == "stateRoots[3]")
        var sets = bundle
        sets.validatorSets[1].members[0].power += 1
        #expect(try verifyFailure(sets).record == "validatorSets")

        // A snapshot that is not the state the next block names.
        var later = try AuditBundle.export(from: log, from: 4, to: 8)
        var other = try AuditBundle.export(from: log, from: 3, to: 8)
        later.snapshot = other.snapshot
        other.snapshot = nil
        let x = try verifyFailure(later)
        #expect(x.record == "snapshot" && x.reason == "is the state at 3, not at 4")
    }

    @Test func commandsRunOnARealLog() throws {
        let d = TempDir("audit"); defer { d.cleanup() }
        let dir = d.sub("log")
        do {
            let log = try LedgerLog.openLMDB(path: dir)
            try build(log)
            log.close()
        }
        let trace = try run(chaosledgerBinary, ["replay", "--dir", dir, "--trace", "account:\(alice.hex)"])
        #expect(trace.status == 0, "\(trace.stderr)")
        #expect(trace.stdout.contains("block 7: unbonding of 200 released to account:\(alice.hex)"))
        #expect(trace.stdout.contains("    balance: 999390 -> 999590"))
        #expect(trace.stdout.contains("now: balance 999587, delegation[\(producer.hex)] 300, nonce 6"))

        let diff = try run(chaosledgerBinary, ["diff", "--dir", dir, "--from", "2", "--to", "4", "--json"])
        #expect(diff.status == 0, "\(diff.stderr)")
        let decoded = try JSONDecoder().decode(StateDiff.self, from: Data(diff.stdout.utf8))
        #expect(decoded.eventsByKind == ["alliance.propose": 1, "alliance.accept": 1, "staking.undelegate": 1])
        #expect(diff.stdout.range(of: "\"alliance.accept\"")!.lowerBound < diff.stdout.range(of: "\"alliance.propose\"")!.lowerBound, "sorted keys")

        let file = d.sub("audit.bundle")
        let export = try run(chaosledgerBinary, ["export", "--dir", dir, "--out", file, "--from", "2"])
        #expect(export.status == 0, "\(export.stderr)")
        let ok = try run(chaosledgerBinary, ["replay", "--bundle", file])
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout.contains("from the snapshot at height 2") && ok.stdout.hasSuffix("OK\n"))

        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
        bytes[bytes.count - 40] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let bad = try run(chaosledgerBinary, ["replay", "--bundle", file])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("content does not match the bundle's hash"))
        let noEntity = try run(chaosledgerBinary, ["replay", "--dir", dir, "--trace", "account:xyz"])
        #expect(noEntity.status != 0 && noEntity.stderr.contains("the id must be 64 hex digits"))
    }
}
