import Foundation
import LedgerAgents
import LedgerAudit
import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore
import Logging
import Metrics

/// What the HTTP side asks of a node: admission and submission, status, state and the log.
extension NodeDriver {
    // MARK: - NodeService

    public func submit(_ events: [[UInt8]], waitCommitted: Bool, timeoutMs: UInt64) async -> [Receipt] {
        var receipts: [Receipt] = []
        var accepted: [(Int, EventID, [UInt8])] = []
        var scratch: [UInt8] = []
        let (state, root, isStopping) = cond.withLock { (head, headRoot, stopping) }
        var verifiedHere = 0
        var checked: [Checked] = []
        for bytes in events {
            let r = check(bytes, state, root: root, stopping: isStopping, &scratch)
            if r.verified { verifiedHere += 1 }
            receipts.append(r.receipt)
            if let id = r.admit { accepted.append((receipts.count - 1, id, bytes)) }
            checked.append(r)
        }
        // Waiters are registered before the events go in, so a fast commit is never missed.
        var ws: [(Int, Waiter)] = []
        var displaced: [(EventID, Receipt, [Waiter])] = []
        let nowMs = now()
        cond.withLock {
            admissionVerified += verifiedHere
            for (i, id, bytes) in accepted {
                guard let a = checked[i].account else { continue }
                switch pending.admit(id, author: a.author, nonce: a.nonce, fee: a.fee, cost: a.cost,
                                     committedNonce: a.committedNonce, available: a.available, now: nowMs) {
                case let .refused(code, why):
                    receipts[i] = Receipt(id: id, status: .rejected, code: code, error: why)
                    continue
                case .alreadyPending:
                    // A resubmission: the client did not hear back. The event goes to the
                    // replica again (it keeps one copy per id), so an event the replica lost
                    // (a restart, a peer that never passed it on) is not held here for the
                    // sweep's two minutes while its client retries in vain.
                    inbox.append(.request(bytes, verified: true))
                case let .added(replaced, evicted):
                    var gone: [EventID] = []
                    for (old, code, why) in [(replaced, "replaced", "a later event with the same nonce and a higher fee replaced it"),
                                             (evicted, "evicted", "evicted from a full mempool for an author's next event")] {
                        guard let old else { continue }
                        gone.append(old)
                        displaced.append((old, Receipt(id: old, status: .rejected, code: code, error: why), waiters.removeValue(forKey: old) ?? []))
                    }
                    // The replica lets them go too, unless a proposed block already holds
                    // one (then it may still commit, and its id answers GET /v1/events).
                    if !gone.isEmpty { inbox.append(.forget(gone)) }
                    inbox.append(.request(bytes, verified: true))
                }
                if waitCommitted { let w = Waiter(); waiters[id, default: []].append(w); ws.append((i, w)) }
            }
            cond.signal()
        }
        for (_, receipt, list) in displaced {
            mRejected.increment()
            for w in list { w.resume(receipt) }
        }
        for r in receipts where r.status == .rejected { _ = r; mRejected.increment() }
        guard waitCommitted, !ws.isEmpty else { return receipts }
        let timeout = timeoutMs
        // One timer per request (not per event), cancelled once every event is settled.
        let all = ws.map(\.1)
        let timer = Task {
            try? await Task.sleep(for: .milliseconds(timeout))
            for w in all { w.resume(nil) }
        }
        for (i, w) in ws {
            if let r = await w.value() { receipts[i] = r } else { receipts[i].status = .pending }
        }
        timer.cancel()
        return receipts
    }

    struct Checked {
        var receipt: Receipt
        var admit: EventID?
        var verified = false
        /// What the pool's per-author bounds need (set when `admit` is).
        var account: AuthorCheck?
    }
    struct AuthorCheck { var author: PublicKey; var nonce: UInt64; var fee: UInt64; var cost: UInt64; var committedNonce: UInt64; var available: UInt64 }

    /// The head with the next block begun (rewards paid, unbondings released, alliances
    /// lapsed, arbiters drawn): a copy of it is what each author's next event is tried
    /// on. Beginning a block pays every delegator and visits the live alliances, undrawn
    /// disputes and pending proposals, so it is done once per head (and again after a
    /// second, for the deadlines), not per event: with persistent maps the copy costs
    /// nothing, and checking an event costs its own fold. A deadline that passes within that second is caught when the block is built.
    func probeBase(_ s: LedgerState, root: Hash32) -> ProbeBase {
        let t = now()
        if let b = cond.withLock({ probeCache }), b.height == s.height, b.root == root, t < b.builtAtMs + 1_000 { return b }
        var begun = s
        let ctx = BlockContext(height: s.height.next, timestampMs: max(t, s.timestampMs), proposer: options.nodeKey, parentStateRoot: root)
        // Cannot fail: the context follows the head by construction.
        try? begun.beginBlock(ctx)
        let b = ProbeBase(height: s.height, root: root, builtAtMs: t, state: begun, context: ctx)
        cond.withLock { probeCache = b; probeBuilds += 1 }
        return b
    }

    /// The admission checks that need no lock: everything but the mempool bound.
    func check(_ bytes: [UInt8], _ s: LedgerState, root: Hash32, stopping: Bool, _ scratch: inout [UInt8]) -> Checked {
        func reject(_ id: EventID?, _ code: String, _ why: String) -> Checked {
            Checked(receipt: Receipt(id: id, status: .rejected, code: code, error: why), admit: nil)
        }
        guard !stopping else { return reject(nil, "stopping", "the node is shutting down") }
        guard !cond.withLock({ diskFull }) else { return reject(nil, "disk_full", "the node's disk is full: it takes no events until space returns") }
        guard bytes.count <= Limits.eventBytesMax else {
            return reject(nil, "oversized", "event of \(bytes.count) bytes; the limit is \(Limits.eventBytesMax)")
        }
        let e: Envelope
        do { e = try Envelope(bytes: bytes) } catch { return reject(nil, "malformed", error.description) }
        let id = EventCrypto.id(bytes)
        guard e.chainID == s.chainID.raw else { return reject(id, "wrong_chain", "event is for another chain than \(s.chainID.name)") }
        guard let acct = s.accounts[e.author] else { return reject(id, "unknown_account", "author \(e.author.hex) has no account") }
        guard e.nonce > acct.nonce else {
            // Only an event with a used nonce can be in the log: look it up only then, to
            // tell a resubmission (`duplicate`) from a conflicting event.
            if let logged = try? log.event(id: id) {
                var r = Receipt(id: id, status: .rejected, code: "duplicate", error: "already committed at sequence \(logged.sequence.value)")
                r.sequence = logged.sequence
                return Checked(receipt: r, admit: nil)
            }
            return reject(id, "stale_nonce", "nonce \(e.nonce) is used; the next is \(acct.nonce + 1)")
        }
        guard e.nonce <= acct.nonce + options.nonceAheadMax else {
            return reject(id, "nonce_gap", "nonce \(e.nonce) is more than \(options.nonceAheadMax) ahead of \(acct.nonce)")
        }
        let minimum = s.requiredFee(e.kind, bytes: e.bytes.count)
        guard e.fee >= minimum else { return reject(id, "fee_too_low", "fee \(e.fee) is below the minimum \(minimum) for this event") }
        // Money is added with overflow checks: a fee and an amount that wrap past 2^64
        // must not look affordable.
        var cost = e.fee
        if e.kind == .transfer, case let .transfer(_, amount, _)? = try? e.decodePayload() {
            let (sum, over) = e.fee.addingReportingOverflow(amount)
            guard !over else { return reject(id, "insufficient_balance", "fee \(e.fee) plus amount \(amount) exceeds any balance") }
            cost = sum
        }
        // A reward claim may pay its fee out of the rewards it claims.
        let (available, over) = acct.balance.addingReportingOverflow(e.kind == .claimRewards ? s.economy.rewards[e.author] ?? 0 : 0)
        let spendable = over ? UInt64.max : available
        guard spendable >= cost else { return reject(id, "insufficient_balance", "balance \(acct.balance) < \(cost)") }
        // The signature last: everything above is cheap and refuses most of a flood
        // (future nonces, unfunded keys) without an Ed25519 verification.
        guard EventCrypto.verify(e, scratch: &scratch) else {
            var c = reject(id, "bad_signature", "the signature does not verify for author \(e.author.hex)")
            c.verified = true
            return c
        }
        // The author's next event is checked against every rule of its kind (targets
        // registered, validator known, stake held, …) on a copy of the head state, so a
        // client learns now, not by a timeout, that it can never commit. Later nonces
        // (a pipelined batch) may depend on the ones before them: the block checks those.
        if e.nonce == acct.nonce + 1 {
            let base = probeBase(s, root: root)
            var probe = base.state
            do {
                try probe.apply(e, id: id, base.context)
            } catch {
                var c = reject(id, error.code, error.description)
                c.verified = true
                return c
            }
        }
        return Checked(receipt: Receipt(id: id, status: .accepted), admit: id, verified: true,
                       account: AuthorCheck(author: e.author, nonce: e.nonce, fee: e.fee, cost: cost, committedNonce: acct.nonce, available: spendable))
    }

    public func eventStatus(_ id: EventID) async -> EventStatus {
        if cond.withLock({ pending[id] != nil }) { return .pending }
        guard let e = try? log.event(id: id) else { return .unknown }
        return .committed(height: height(ofSequence: e.sequence) ?? Height(0), sequence: e.sequence)
    }

    /// The block holding an event: a binary search over the blocks' first sequences.
    public func height(ofSequence s: SequenceNumber) -> Height? {
        guard let top = try? log.head()?.height.value, top >= 1 else { return nil }
        var lo: UInt64 = 1, hi = top
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            guard let b = try? log.block(at: Height(mid)) else { return nil }
            if b.firstSequence.value <= s.value { lo = mid } else { hi = mid - 1 }
        }
        return Height(lo)
    }

    public func status() async -> NodeStatus {
        let peers = cond.withLock { transport }?.peers() ?? []
        return cond.withLock {
            let validators = head.powerForNextBlock().count
            let ready = running && !stopping && !diskFull && (options.role == .follower ? !peers.isEmpty : validators == 1 || peers.count * 3 >= 2 * (validators - 1))
            return NodeStatus(role: options.role, nodeKey: options.nodeKey, chainID: head.chainID.name, height: head.height, headHash: headHash,
                              stateRoot: headRoot, view: view.value, changing: changing, primary: primary, mempool: pending.count,
                              peers: peers.count, viewChanges: viewChanges, committedEvents: committedEvents,
                              commitLatencyMs: latencies.isEmpty ? nil : 1000 * latencies.reduce(0, +) / Double(latencies.count),
                              ready: ready, stopping: stopping)
        }
    }

    /// The validator set a mesh peer may belong to: any validator of the chain (current
    /// or retired keys included, so a rotated or retiring validator still connects).
    public func isValidator(_ key: PublicKey) -> Bool {
        cond.withLock {
            head.validators[ValidatorID(key)] != nil || head.validators.values.contains { $0.consensusKey == key || $0.keyHistory.contains { $0.key == key } }
        }
    }

    public func state(at height: Height?) async throws(ServiceError) -> LedgerState {
        let (h, recent, stable) = cond.withLock { (head, recentStates, stableState) }
        guard let height, height != h.height else { return h }
        if let stable, stable.height == height { return stable }
        if height >= options.retention.oldest(head: h.height), let s = recent.last(where: { $0.height == height }) { return s }
        cond.withLock { pastStateLoads += 1 }
        return try options.retention.state(at: height, head: h, log: log)
    }

    public func feeEstimate() async -> FeeEstimate {
        cond.withLock { FeeEstimate.make(head, mempool: pending.count) }
    }

    public func peers() -> [PeerInfo] { cond.withLock { transport }?.peers() ?? [] }

    /// Committed events from `from`, read from the log when the consumer asks (pull, not
    /// push): a consumer that stops asking stops the reads, and nothing is buffered for it.
    public func committedEvents(from: SequenceNumber, max: Int) throws(ServiceError) -> [LoggedEvent]? {
        if cond.withLock({ stopping }) { return nil }
        do { return try log.events(from: from, count: max) } catch { throw .store(error) }
    }
}

/// A one-shot result a submitter waits for: the first `resume` wins.
final class Waiter: @unchecked Sendable {
    private let lock = NSLock()
    private var result: Receipt??
    private var cont: CheckedContinuation<Receipt?, Never>?

    func resume(_ r: Receipt?) {
        let c: CheckedContinuation<Receipt?, Never>? = lock.withLock {
            guard result == nil else { return nil }
            result = .some(r)
            defer { cont = nil }
            return cont
        }
        c?.resume(returning: r)
    }

    func value() async -> Receipt? {
        await withCheckedContinuation { (c: CheckedContinuation<Receipt?, Never>) in
            let done: Receipt?? = lock.withLock {
                if let r = result { return .some(r) }
                cont = c
                return nil
            }
            if let done { c.resume(returning: done) }
        }
    }
}
