import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerSimulation
import Testing

/// Liveness with at most f faulty replicas (issue 16): the view timer must see waiting
/// work however the mempool is ordered, a new primary must get the events the others
/// hold, and the rotating-fault simulator holds every commit pause to its bound.
@Suite struct LivenessTests {
    /// A backup of view 0 with `clients` funded.
    static func backup(_ label: String) throws -> (FourValidators, Replica, [SigningKey]) {
        let clients = (0 ..< 3).map { SigningKey.derived("\(label)-client-\($0)") }
        var p = ChainParameters()
        p.checkpointInterval = 8
        let vs = try FourValidators(label, parameters: p, accounts: clients.map(\.publicKey))
        let primary = vs.primary(of: 0)
        let me = vs.keys.first { $0.publicKey != primary.publicKey }!
        var r = vs.replica(of: me) { $0.recordOpinions = false }
        _ = r.step(.tick(nowMs: 2_000))
        return (vs, r, clients)
    }

    static func transfer(_ chain: ChainID, _ from: SigningKey, _ nonce: UInt64, to: PublicKey) -> Envelope {
        EventCrypto.makeEvent(chain: chain, key: from, nonce: nonce, fee: 10, payload: .transfer(to: to, amount: 1, memo: ""))
    }

    /// 300 events of one author waiting for a nonce nobody has, then another author's next
    /// event: the backup has work, and its view timer (1 s) must start a view change when
    /// the primary proposes nothing. The old look at the first 256 events in arrival
    /// order saw only the waiting ones and never started the timer.
    @Test func waitingEventsInFrontDoNotHideTheNextNonceFromTheViewTimer() throws {
        var (vs, r, clients) = try Self.backup("liveness-hidden")
        let gap = (2 ... 301).map { Self.transfer(vs.chain, clients[0], UInt64($0), to: clients[1].publicKey) }
        let next = Self.transfer(vs.chain, clients[1], 1, to: clients[2].publicKey)
        _ = r.step(.request(gap.map(\.bytes)[0]))
        for e in gap.dropFirst() + [next] { _ = r.step(.request(e.bytes)) }
        #expect(r.view == 0 && !r.changing)
        var started = false
        for t in stride(from: UInt64(2_010), through: 4_000, by: 10) {
            let out = r.step(.tick(nowMs: t))
            if out.notes.contains(.startedViewChange(1)) { started = true; break }
        }
        #expect(started, "the view timer never ran: the next-nonce event behind 300 waiting ones went unseen")
    }

    /// Entering a view, a backup passes its waiting events to the new primary: one cut off
    /// while they were passed round would otherwise lead the view with nothing to propose
    /// until the 2 s re-forward, and the view would time out again.
    @Test func enteringAViewPassesWaitingEventsToItsPrimary() throws {
        let clients = (0 ..< 2).map { SigningKey.derived("liveness-push-client-\($0)") }
        var p = ChainParameters()
        p.checkpointInterval = 8
        let vs = try FourValidators("liveness-push", parameters: p, accounts: clients.map(\.publicKey))
        let (p0, p1) = (vs.primary(of: 0).publicKey, vs.primary(of: 1))
        // A backup in view 0 that is not view 1's primary either.
        let me = vs.keys.first { $0.publicKey != p0 && $0.publicKey != p1.publicKey }!
        var r = vs.replica(of: me) { $0.recordOpinions = false }
        _ = r.step(.tick(nowMs: 2_000))
        let evs = (1 ... 3).map { Self.transfer(vs.chain, clients[0], UInt64($0), to: clients[1].publicKey) }
        for e in evs { _ = r.step(.request(e.bytes)) }
        // The primary proposes nothing: after the 1 s view timeout, a view change to 1.
        for t in stride(from: UInt64(2_010), through: 3_100, by: 10) {
            if let tok = r.step(.tick(nowMs: t)).persistToken { _ = r.step(.persisted(token: tok)) }
        }
        #expect(r.changing && r.view == 1)
        // View 1's primary installs it with everyone's view change; the backup joins.
        let genesis = CheckpointCertificate(height: 0, blockHash: vs.genesisHash, stateRoot: vs.state.stateRoot(), votes: [])
        let vcs = vs.keys.map { ViewChange.sign(view: 1, stable: genesis, prepared: [], chain: vs.chain.raw, key: $0) }.sorted { $0.replica < $1.replica }
        let nv = NewView.sign(view: 1, viewChanges: vcs, prePrepares: [], chain: vs.chain.raw, key: p1)
        var o = r.step(.message(from: p1.publicKey, .newView(nv, blocks: [])))
        if let t = o.persistToken { o.send += r.step(.persisted(token: t)).send }
        #expect(!r.changing && r.view == 1)
        let pushed = o.send.filter { $0.to == .peer(p1.publicKey) }.flatMap { s -> [[UInt8]] in
            switch s.message {
            case let .request(b): [b]
            case let .requests(bs): bs
            default: []
            }
        }
        #expect(Set(pushed.map(EventCrypto.id)) == Set(evs.map { EventCrypto.id($0.bytes) }))
    }

    /// The view timer doubles only after f views in a row failed. With four validators
    /// (f = 1), a view change whose new primary stays silent moves on after one view
    /// timeout (it took two: the timer doubled from the first failure, so two faulty
    /// validators next to each other in the rotation cost three timeouts with f = 2); the
    /// next failure in a row doubles it.
    @Test func theViewTimerDoublesOnlyAfterFFailedViews() throws {
        var (vs, r, clients) = try Self.backup("liveness-backoff")
        let genesis = CheckpointCertificate(height: 0, blockHash: vs.genesisHash, stateRoot: vs.state.stateRoot(), votes: [])
        _ = r.step(.request(Self.transfer(vs.chain, clients[0], 1, to: clients[1].publicKey).bytes))
        var t: UInt64 = 2_000
        /// Ticks every 10 ms until a view change to `target` starts; the time it did.
        func tickUntilViewChange(to target: View) -> UInt64? {
            while t < 20_000 {
                t += 10
                let out = r.step(.tick(nowMs: t))
                if let tok = out.persistToken { _ = r.step(.persisted(token: tok)) }
                if out.notes.contains(.startedViewChange(target)) { return t }
            }
            return nil
        }
        let me = vs.keys.first { $0.publicKey != vs.primary(of: 0).publicKey }!
        /// Two other validators, not the target view's primary (it stays silent), ask for
        /// `target` too: a quorum with this one.
        func othersJoin(_ target: View) {
            for k in vs.keys.filter({ $0.publicKey != me.publicKey && $0.publicKey != r.primary(of: target) }).prefix(2) {
                let vc = ViewChange.sign(view: target, stable: genesis, prepared: [], chain: vs.chain.raw, key: k)
                if let tok = r.step(.message(from: k.publicKey, .viewChange(vc, blocks: []))).persistToken { _ = r.step(.persisted(token: tok)) }
            }
        }
        let started1 = try #require(tickUntilViewChange(to: 1))
        #expect(started1 - 2_000 <= 1_010, "the first view change comes after one timeout")
        othersJoin(1)
        let quorumAt = t
        let started2 = try #require(tickUntilViewChange(to: 2))
        #expect(started2 - quorumAt <= 1_010, "one silent new primary (f = 1) costs one timeout, not \(started2 - quorumAt) ms")
        othersJoin(2)
        let quorum2At = t
        let started3 = try #require(tickUntilViewChange(to: 3))
        #expect(started3 - quorum2At >= 1_990 && started3 - quorum2At <= 2_010, "past f failures in a row the timer doubles")
    }

    /// A peer relays 400 future nonces of one funded key (2 … 401): before, all of them
    /// entered the replica's mempool, so a follower or a faulty validator could fill its
    /// 100,000 places with events that never commit and never pay. Now only those within
    /// `authorAheadMax` (256) of the author's nonce go in, a few at one nonce; the relayer
    /// is not convicted (it may be ahead of this replica), and another author's next event
    /// still goes in.
    @Test func aPeerCannotFillTheMempoolWithOneAuthorsFutureNonces() throws {
        var (vs, r, clients) = try Self.backup("liveness-relay-bound")
        let mine = Set(r.config.keys.map(\.publicKey))
        let peer = vs.keys.first { !mine.contains($0.publicKey) }!
        let flood = (2 ... 401).map { Self.transfer(vs.chain, clients[0], UInt64($0), to: clients[1].publicKey).bytes }
        var out = r.step(.message(from: peer.publicKey, .requests(flood)))
        #expect(!out.notes.contains { if case .peerFault = $0 { true } else { false } }, "an honest peer may be ahead: no conviction")
        #expect(r.mempoolCount == 255, "nonces 2 … 256 only, got \(r.mempoolCount)")
        // Replacements at one nonce: a few, not without end.
        let same = (0 ..< 10).map { EventCrypto.makeEvent(chain: vs.chain, key: clients[0], nonce: 3, fee: 20 + UInt64($0),
                                                          payload: .transfer(to: clients[1].publicKey, amount: 1, memo: "")).bytes }
        out = r.step(.message(from: peer.publicKey, .requests(same)))
        #expect(r.mempoolCount == 255 + 3, "four events at most at nonce 3, got \(r.mempoolCount - 255 + 1)")
        _ = r.step(.message(from: peer.publicKey, .request(Self.transfer(vs.chain, clients[1], 1, to: clients[2].publicKey).bytes)))
        #expect(r.mempoolCount == 259, "another author's next event still goes in")
    }

    /// An event the driver's pool let go (replaced or evicted) leaves the mempool: it is
    /// not proposed. One already in a proposed block stays.
    @Test func forgottenEventsAreNotProposed() throws {
        var p = try LonePrimary("liveness-forget", blockEventsMax: 10)
        let first = p.event(0, 1)
        #expect(p.relay([first]) == [ids([first])])
        let later = p.event(1, 1)
        #expect(p.relay([later]) == [])  // waits for the batch delay: a block is in flight
        _ = p.step(.forget([EventCrypto.id(later.bytes), EventCrypto.id(first.bytes)]))
        // The batch delay passes with nothing to propose: `later` is gone.
        #expect(p.step(.tick(nowMs: 2_100)) == [])
        // The next event goes at once (the oldest wait is over), alone: `later` stays out.
        let again = p.event(2, 1)
        #expect(p.relay([again]) == [ids([again])])
    }

    /// The rotating-fault scenarios (the real fault run's pattern: crashes, pauses,
    /// isolations and input loss rotating over the replicas, at most f at a time, under
    /// load): no violation, every commit pause within the bound. On the code before the
    /// two fixes above, seeds 1–100 broke the bound in 5 seeds (1.0–2.0 s) when faults
    /// came 100 ms apart, and with today's gaps seed 50 stalled for 57 s, the real run's
    /// signature (a different draw then: stake-weighted primaries were allowed). The unit
    /// tests above pin each fix.
    @Test func rotatingFaultsKeepCommitPausesWithinTheBound() {
        var options = SimOptions()
        options.rotating = true
        options.faultMs = 10_000
        let seeds: [UInt64] = Array(1 ... 12)
        let reports = SimulationTests.sweep(seeds, options: options)
        for r in reports where !r.ok { Issue.record("seed \(r.seed) [\(r.scenario)]: \(r.violations.joined(separator: "; "))") }
        var kinds = Set<FaultKind>()
        for r in reports { kinds.formUnion(r.faults) }
        for k in [FaultKind.crash, .pause, .isolation, .inputLoss] { #expect(kinds.contains(k), "no seed exercised \(k)") }
        #expect(reports.allSatisfy { !$0.pauses.isEmpty })
        #expect(reports.contains { $0.scenario.validators == 7 }, "no seed had two faulty replicas at a time")
    }
}
