import Foundation
import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerHTTP
import LedgerAudit
@testable import LedgerNode
import LedgerProjections
import LedgerStore
import Logging
import Testing
import LedgerViews

/// An in-memory network for node drivers: what the mesh does, without sockets.
final class Hub: @unchecked Sendable {
    let lock = NSLock()
    var nodes: [PublicKey: NodeDriver] = [:]
    var down = Set<PublicKey>()
    var faults: [PublicKey: [(PublicKey, PeerFault)]] = [:]

    final class Link: PeerTransport, @unchecked Sendable {
        let hub: Hub
        let me: PublicKey
        init(_ hub: Hub, _ me: PublicKey) { self.hub = hub; self.me = me }
        func send(_ message: PeerMessage, to destination: Destination) {
            // Through the codec, as the mesh would: what arrives is what decodes.
            let m = try! PeerMessage.decode(message.encoded(), Sodium())
            let targets: [NodeDriver] = hub.lock.withLock {
                guard !hub.down.contains(me) else { return [] }
                let others = hub.nodes.filter { $0.key != me && !hub.down.contains($0.key) }
                if case let .peer(k) = destination, let n = others[k] { return [n] }
                return Array(others.values)
            }
            for t in targets { t.receive(from: me, m) }
        }
        func peers() -> [PeerInfo] {
            hub.lock.withLock { hub.nodes.keys.filter { $0 != me && !hub.down.contains($0) }.map { PeerInfo(key: $0, address: "hub", role: .validator, outbound: true) } }
        }
        /// What this node's replica convicted its peers of, in order.
        var faults: [(PublicKey, PeerFault)] { hub.lock.withLock { hub.faults[me] ?? [] } }
        func penalize(_ peer: PublicKey, for fault: PeerFault) { hub.lock.withLock { hub.faults[me, default: []].append((peer, fault)) } }
    }
}

struct TestChain {
    let validators = (0 ..< 4).map { SigningKey.derived("driver-validator-\($0)") }
    let clients = (0 ..< 2).map { SigningKey.derived("driver-client-\($0)") }
    let genesis: Genesis

    init() {
        var p = ChainParameters()
        p.checkpointInterval = 8
        genesis = try! Genesis(chainID: try! ChainID("driver-test"), timestampMs: 1_000, parameters: p,
                               validators: validators.enumerated().map { .init(key: $1.publicKey, name: "v\($0)", personality: "lawful", stake: 10_000) },
                               allocations: clients.map { .init(account: $0.publicKey, amount: 1_000_000_000) }
                                   + validators.map { .init(account: $0.publicKey, amount: 1_000_000) })
    }

    func transfer(_ from: Int, nonce: UInt64, amount: UInt64 = 5) -> [UInt8] {
        EventCrypto.makeEvent(chain: genesis.chainID, key: clients[from], nonce: nonce, fee: 1,
                              payload: .transfer(to: clients[1 - from].publicKey, amount: amount, memo: "t")).bytes
    }
}

@Suite(.serialized) struct DriverTests {
    let chain = TestChain()

    func makeNode(_ i: Int, log: LedgerLog, store: RecordStore, hub: Hub) throws -> NodeDriver {
        var o = NodeOptions(role: .validator, keys: [chain.validators[i]], operatorKey: chain.validators[i])
        o.viewTimeoutMs = 400
        o.personality = "lawful"
        let n = try NodeDriver(log: log, store: store, options: o, logger: Logger(label: "test-\(i)"))
        n.attach(Hub.Link(hub, chain.validators[i].publicKey))
        hub.lock.withLock { hub.nodes[chain.validators[i].publicKey] = n }
        n.start()
        return n
    }

    func waitFor(_ what: String, seconds: Double = 20, _ cond: () async -> Bool) async throws {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if await cond() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("timed out waiting for \(what)")
        throw CancellationError()
    }

    static let waitMs: UInt64 = 120_000

    @Test func fourDriversCommitRejectAndRestart() async throws {
        let hub = Hub()
        var logs: [LedgerLog] = []
        var stores: [RecordStore] = []
        var nodes: [NodeDriver] = []
        for i in 0 ..< 4 {
            let log = LedgerLog.memory()
            _ = try log.initialize(genesis: chain.genesis)
            logs.append(log); stores.append(RecordStore.memory())
            nodes.append(try makeNode(i, log: log, store: stores[i], hub: hub))
        }
        // Ten transfers, waited for: every one commits, on every node. (The wait is long:
        // in the full suite the synchronous simulation suites can hold the cooperative
        // pool for minutes, and a 10 s wait once ran out before this task was resumed.)
        let events = (1 ... 10).map { chain.transfer(0, nonce: UInt64($0)) }
        let receipts = await nodes[1].submit(events, waitCommitted: true, timeoutMs: Self.waitMs)
        #expect(receipts.allSatisfy { $0.status == .committed }, "\(receipts)")
        try await waitFor("all heads equal") {
            let hs = nodes.map { (try? $0.log.head()?.hash) ?? nil }
            return Set(hs).count == 1 && (try? nodes[0].log.head()?.height.value ?? 0) ?? 0 >= 1
        }
        // The log head moves before the served head (publish runs right after the write):
        // wait until node 2 serves the ten, or its admission would judge against the old head.
        try await waitFor("node 2 serves the ten transfers") {
            (try? await nodes[2].state(at: nil).accounts[chain.clients[0].publicKey]?.nonce) == 10
        }
        let balance = try await nodes[0].state(at: nil).accounts[chain.clients[0].publicKey]!.balance

        // Bad input: a replayed event, a forged one, a stale nonce, garbage, an oversized blob.
        var forged = chain.transfer(0, nonce: 11)
        forged[forged.count - 1] ^= 1
        let stale = chain.transfer(0, nonce: 3, amount: 7)
        let bad = await nodes[2].submit([events[0], forged, stale, [1, 2, 3], [UInt8](repeating: 0, count: Limits.eventBytesMax + 1)],
                                        waitCommitted: false, timeoutMs: 0)
        #expect(bad.map(\.code) == ["duplicate", "bad_signature", "stale_nonce", "malformed", "oversized"])
        #expect(bad.allSatisfy { $0.status == .rejected })
        #expect(try await nodes[0].state(at: nil).accounts[chain.clients[0].publicKey]!.balance == balance)
        // A rule that depends on other entities: an alliance with an unregistered target.
        let alliance = EventCrypto.makeEvent(chain: chain.genesis.chainID, key: chain.clients[1], nonce: 1, fee: 10,
                                             payload: .alliancePropose(AllianceProposal(targets: [chain.clients[0].publicKey], purpose: "p",
                                                                                        terms: "t", durationMs: 1_000))).bytes
        let ar = await nodes[0].submit([alliance], waitCommitted: false, timeoutMs: 0)
        #expect(ar[0].status == .rejected && ar[0].code == "not_registered", "\(ar)")
        // The same rule behind an earlier event of the batch is found when the block is
        // built: the waiting submitter gets the refusal, not a timeout.
        let register = EventCrypto.makeEvent(chain: chain.genesis.chainID, key: chain.clients[1], nonce: 1, fee: 10,
                                             payload: .agentRegister(AgentProfile(name: "c1", capabilities: [], personality: "lawful", endpoint: ""))).bytes
        let orphan = EventCrypto.makeEvent(chain: chain.genesis.chainID, key: chain.clients[1], nonce: 2, fee: 10,
                                           payload: .alliancePropose(AllianceProposal(targets: [chain.clients[0].publicKey], purpose: "p",
                                                                                      terms: "t", durationMs: 1_000))).bytes
        let br = await nodes[0].submit([register, orphan], waitCommitted: true, timeoutMs: Self.waitMs)
        #expect(br.map(\.status) == [.committed, .rejected] && br[1].code == "invalid_alliance", "\(br)")
        #expect(await nodes[0].eventStatus(EventCrypto.id(orphan)) == .unknown)

        // A node stops (and misses blocks), restarts from its log and store, catches up.
        await nodes[3].stop()
        hub.lock.withLock { _ = hub.down.insert(chain.validators[3].publicKey) }
        let more = (11 ... 40).map { chain.transfer(0, nonce: UInt64($0)) }
        let r2 = await nodes[0].submit(more, waitCommitted: true, timeoutMs: Self.waitMs)
        #expect(r2.allSatisfy { $0.status == .committed }, "\(r2.filter { $0.status != .committed })")
        hub.lock.withLock { _ = hub.down.remove(chain.validators[3].publicKey) }
        nodes[3] = try makeNode(3, log: logs[3], store: stores[3], hub: hub)
        let r3 = await nodes[1].submit([chain.transfer(1, nonce: 2)], waitCommitted: true, timeoutMs: Self.waitMs)
        #expect(r3[0].status == .committed)
        try await waitFor("the restarted node caught up", seconds: Double(Self.waitMs) / 1000) {
            let hs = nodes.map { (try? $0.log.head()?.hash) ?? nil }
            return Set(hs).count == 1
        }
        // The served head follows the log head once the block is durable (publish runs
        // right after the write), so the roots agree within a poll.
        try await waitFor("state roots agree") {
            let roots = (try? await nodes.asyncMap { try await $0.state(at: nil).stateRoot() }) ?? []
            return roots.count == 4 && Set(roots).count == 1
        }
        if case let .committed(h, _) = await nodes[3].eventStatus(receipts[0].id!) { #expect(h.value >= 1) } else { Issue.record("event not found") }

        // A just-certified height is served from memory, a height past the recent states
        // from the log; both are the state the next block recorded.
        let n0 = nodes[0]
        let head = try await n0.state(at: nil).height
        let loadsBefore = n0.cond.withLock { n0.pastStateLoads }
        let below = try await n0.state(at: Height(head.value - 1))
        #expect(below.stateRoot() == (try logs[0].block(at: head))?.header.parentStateRoot)
        #expect(n0.cond.withLock { n0.pastStateLoads } == loadsBefore, "height \(head.value - 1) was refolded, not served from memory")
        let recent = Set(n0.cond.withLock { n0.recentStates.map(\.height) })
        #expect(recent.count <= NodeDriver.recentStatesMax && recent.contains(Height(head.value - 1)))
        let old = try await n0.state(at: 1)
        #expect(old.stateRoot() == (try logs[0].block(at: 2))?.header.parentStateRoot)
        #expect(n0.cond.withLock { n0.pastStateLoads } == loadsBefore + (recent.contains(1) ? 0 : 1))
        for n in nodes { await n.stop() }
    }
}

extension DriverTests {
    /// Each checkpoint that becomes stable is stored in the log with its certificate
    /// (issue 18): replay checks each against the refold (the block, the state root, a
    /// quorum of the power that signs it) and names a tampered or under-signed one.
    @Test func stableCheckpointsAreStoredWithTheirCertificatesAndReplayChecksThem() async throws {
        let hub = Hub()
        var logs: [LedgerLog] = []
        var nodes: [NodeDriver] = []
        for i in 0 ..< 4 {
            let log = LedgerLog.memory()
            _ = try log.initialize(genesis: chain.genesis)
            logs.append(log)
            nodes.append(try makeNode(i, log: log, store: RecordStore.memory(), hub: hub))
        }
        // One transfer a block until two checkpoints (8 and 16) are past.
        var nonce: UInt64 = 1
        while (try logs[0].head()?.height.value ?? 0) < 18 {
            let r = await nodes[Int(nonce % 4)].submit([chain.transfer(0, nonce: nonce)], waitCommitted: true, timeoutMs: Self.waitMs)
            #expect(r[0].status == .committed, "\(r)")
            nonce += 1
        }
        try await waitFor("every node stored the certificates of checkpoints 8 and 16") {
            logs.allSatisfy { ((try? $0.checkpointCertificateHeights()) ?? []).starts(with: [8, 16]) }
        }
        // The newest stable checkpoint's state (what state sync serves) stays in memory,
        // however far the recent states moved on.
        let n0 = nodes[0]
        let stable = try #require(try logs[0].checkpointCertificateHeights().last)
        #expect(n0.cond.withLock { n0.stableState?.height } == stable)
        let loads = n0.cond.withLock { n0.pastStateLoads }
        let served = try await n0.state(at: stable)
        #expect(n0.cond.withLock { n0.pastStateLoads } == loads, "the state at the stable checkpoint \(stable) was refolded")
        let next = try #require(try logs[0].block(at: stable.next))
        #expect(served.height == stable && served.stateRoot() == next.header.parentStateRoot)
        for n in nodes { await n.stop() }
        for log in logs {
            let (report, _) = Replayer(log: log).run()
            #expect(report.ok, "\(report.failure.map(\.description) ?? "")")
            #expect(report.checkpointCertificatesVerified >= 2)
        }
        let log = logs[0]
        let good = try CheckpointCertificate.decode(bytes: try #require(try log.checkpointCertificate(at: 8)))
        #expect(good.votes.count >= 3 && good.height == 8)
        func replayFailure(with cert: CheckpointCertificate) throws -> String {
            try log.putCheckpointCertificate(height: 8, bytes: cert.encoded())
            let (report, _) = Replayer(log: log).run()
            return report.failure?.description ?? "passed"
        }
        // A signature flipped.
        var flipped = good
        flipped.votes[0].signature = Signature(good.votes[0].signature.bytes.map { $0 ^ 1 })
        #expect(try replayFailure(with: flipped).contains("checkpoint certificate[8]"))
        // Another state root, signed by one validator only: no quorum, and not the refold's root.
        let liar = chain.validators[0]
        let lie = SignedConsensusMessage.sign(.checkpoint(height: 8, blockHash: good.blockHash, stateRoot: .zero), chain: chain.genesis.chainID.raw, signer: liar)
        let forged = CheckpointCertificate(height: 8, blockHash: good.blockHash, stateRoot: .zero, votes: [.init(key: liar.publicKey, signature: lie.signature)])
        #expect(try replayFailure(with: forged).contains("refold gives"))
        // The true root signed by one validator: not a quorum.
        let one = SignedConsensusMessage.sign(good.message, chain: chain.genesis.chainID.raw, signer: liar)
        let short = CheckpointCertificate(height: 8, blockHash: good.blockHash, stateRoot: good.stateRoot, votes: [.init(key: liar.publicKey, signature: one.signature)])
        #expect(try replayFailure(with: short).contains("not more than two thirds"))
        // Put back, the log replays again.
        #expect(try replayFailure(with: good) == "passed")
    }
}

extension DriverTests {
    /// A peer that relays an event no honest replica forwards (forged, malformed, for
    /// another chain) is reported to the transport, once per message and only that
    /// peer; the message is read no further (a liar cannot make a node verify a batch of
    /// forgeries), the good event before the lie is kept and commits, and the forged one
    /// changes nothing. An event of a kind this binary does not know (a newer binary's,
    /// in a rolling upgrade) is refused without accusing anyone.
    /// Admission's money and per-author bounds (issue 16): a fee and an amount that wrap
    /// past 2^64 are refused (they used to be added with `&+`, so a nearly empty account
    /// got a huge transfer admitted); one key cannot hold more than its share of future
    /// nonces, nor more pending than its balance covers; a nonce is replaced only by a
    /// higher fee.
    @Test func admissionChecksMoneyWithoutWrappingAndBoundsEachAuthor() async throws {
        let log = LedgerLog.memory()
        _ = try log.initialize(genesis: chain.genesis)
        let node = try makeNode(0, log: log, store: RecordStore.memory(), hub: Hub())
        defer { Task { await node.stop(drainMs: 0) } }
        func one(_ bytes: [UInt8]) async -> Receipt { await node.submit([bytes], waitCommitted: false, timeoutMs: 0)[0] }
        // 1 + (2^64 − 1) wraps to 0: it must not pass the balance check.
        let wrap = await one(chain.transfer(0, nonce: 1, amount: .max))
        #expect(wrap.status == .rejected && wrap.code == "insufficient_balance", "\(wrap)")
        // Future nonces: up to 256 ahead are held, then refused; the pool holds 256 of them.
        let held = await node.submit((1 ... 256).map { chain.transfer(0, nonce: UInt64($0)) }, waitCommitted: false, timeoutMs: 0)
        #expect(held.allSatisfy { $0.status == .accepted })
        let beyond = await one(chain.transfer(0, nonce: 257))
        #expect(beyond.code == "nonce_gap")
        #expect(await node.status().mempool == 256)
        // A second event for a pending nonce at the same fee is refused.
        let same = await one(chain.transfer(0, nonce: 5, amount: 6))
        #expect(same.code == "nonce_pending", "\(same)")
        // The client's balance is 10^9: two pending transfers of 6·10^8 cannot both pay.
        let big = 600_000_000 as UInt64
        #expect(await one(chain.transfer(1, nonce: 1, amount: big)).status == .accepted)
        let second = await one(chain.transfer(1, nonce: 2, amount: big))
        #expect(second.status == .rejected && second.code == "insufficient_balance", "\(second)")

        // Each author's next event is tried on the head with the next block begun; that
        // block begin (which pays every delegator and visits the live alliances) is built
        // once per head and second, not once per event: 100 probes at one head.
        let before = node.cond.withLock { node.probeBuilds }
        for k in 1 ... 100 as ClosedRange<UInt64> { _ = await one(chain.transfer(1, nonce: 1, amount: k)) }
        let built = node.cond.withLock { node.probeBuilds } - before
        #expect(built <= 5, "the next block was begun \(built) times for 100 events")
        #expect(node.cond.withLock { node.probeBuilds } >= 1)
    }

    @Test func aPeerRelayingForgedEventsIsReportedAndNothingIsLost() async throws {
        let hub = Hub()
        var nodes: [NodeDriver] = []
        for i in 0 ..< 4 {
            let log = LedgerLog.memory()
            _ = try log.initialize(genesis: chain.genesis)
            nodes.append(try makeNode(i, log: log, store: RecordStore.memory(), hub: hub))
        }
        let liar = chain.validators[3].publicKey, me = chain.validators[0].publicKey
        let good = chain.transfer(0, nonce: 1)
        var forged = chain.transfer(1, nonce: 1)
        forged[forged.count - 1] ^= 1
        let otherChain = EventCrypto.makeEvent(chain: try ChainID("driver-test-other"), key: chain.clients[1], nonce: 1, fee: 1,
                                               payload: .transfer(to: chain.clients[0].publicKey, amount: 5, memo: "t")).bytes
        var newerKind = chain.transfer(1, nonce: 2)
        newerKind[2] = 0xFF; newerKind[3] = 0xFE  // u16 kind after the u16 version: unknown here
        let afterTheLie = chain.transfer(1, nonce: 3)
        let reports = { hub.lock.withLock { hub.faults } }
        nodes[0].receive(from: liar, .requests([newerKind, good, forged, afterTheLie, [1, 2, 3]]))
        try await waitFor("node 0 reports the relayer", seconds: Double(Self.waitMs) / 1000) { reports()[me]?.count == 1 }
        nodes[0].receive(from: liar, .request(otherChain))
        nodes[0].receive(from: liar, .requests([Array(good.prefix(20))]))  // cut short: malformed
        try await waitFor("node 0 reports two more messages", seconds: Double(Self.waitMs) / 1000) { reports()[me]?.count == 3 }
        let mine = reports()[me] ?? []
        #expect(mine.map(\.0) == [liar, liar, liar])
        #expect(mine.map(\.1) == [.forgedEvent, .wrongChainEvent, .malformedEvent])
        // Node 0 passes the good event on (it re-forwards what it holds) and it commits;
        // the events after the lie in its message were not read.
        try await waitFor("the good event commits", seconds: Double(Self.waitMs) / 1000) {
            if case .committed = await nodes[0].eventStatus(EventCrypto.id(good)) { return true }
            return false
        }
        for e in [forged, afterTheLie, newerKind] { #expect(await nodes[0].eventStatus(EventCrypto.id(e)) == .unknown) }
        try await waitFor("the head shows the good event alone", seconds: Double(Self.waitMs) / 1000) {
            guard let s = try? await nodes[0].state(at: nil) else { return false }
            return s.accounts[chain.clients[0].publicKey]!.nonce == 1 && s.accounts[chain.clients[1].publicKey]!.nonce == 0
        }
        // Nobody else was accused: honest traffic never looks like a lie.
        #expect(Array(reports().keys) == [me])
        for n in nodes { await n.stop() }
    }
}

@Suite struct JSONTextTests {
    /// The hand-built receipts JSON parses to exactly what the generic renderer gives,
    /// and writes the same bytes (sorted keys), escapes included.
    @Test func receiptsMatchTheGenericRenderer() throws {
        let id = EventID(Blake2b.hash(Array("x".utf8)))
        let rs = [Receipt(id: id, status: .committed, height: Height(7), sequence: SequenceNumber(41)),
                  Receipt(id: nil, status: .rejected, code: "malformed", error: "bad \"quote\" \\ back\nline \u{01} é"),
                  Receipt(id: id, status: .pending)]
        let generic: [[String: Any]] = rs.map {
            ["id": $0.id?.hex ?? NSNull(), "status": $0.status.rawValue, "code": $0.code ?? NSNull(), "error": $0.error ?? NSNull(),
             "height": $0.height?.value ?? NSNull(), "sequence": $0.sequence?.value ?? NSNull()]
        }
        #expect(JSONText.receipts(rs) == Render.json(["receipts": generic]))
        let events: [[UInt8]] = [[0, 1, 0xAB], [0xFF]]
        #expect(JSONText.submission(events) == Render.json(["events": events.map { Hex.encode($0) }]))
    }
}

extension Array {
    func asyncMap<T>(_ f: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for x in self { out.append(try await f(x)) }
        return out
    }
}
