import LedgerCore
import LedgerProjections

// The mempool as the view timer and a new primary see it: which waiting events can go
// into a block now (by author, at each one's next nonce), and which can never.
extension Replica {
    /// Whether some author's next event waits and applies to the executed state (the view
    /// timer runs only then). It looks author by author, at each one's next nonce. It used
    /// to look at the first 256 events in arrival order: when those all waited for a nonce
    /// that a block this replica had not yet executed would use (pipelined clients, a
    /// replica that was cut off), it saw no work while later arrivals could go in, so its
    /// view timer never ran and a primary that proposed nothing was never replaced (the
    /// stall of the real fault run; simulator seeds 17 and 23 of the rotating-fault sweep).
    ///
    /// Candidates are tried in key order, so the outcome does not depend on the
    /// dictionary's order (which differs between processes). Stale events leave when a
    /// block moves their author's nonce (`dropStale`); events waiting for a nonce that
    /// never comes, once a second here.
    mutating func hasApplicableEvent() -> Bool {
        if timers.waitSweep.due(now, every: 1_000) {
            timers.waitSweep.fire(now)
            dropExpiredWaiting()
        }
        var candidates: [(author: PublicKey, ids: [EventID])] = []
        for (author, byNonce) in mempool.byAuthor {
            guard let acct = state.accounts[author], let ids = byNonce[acct.nonce + 1] else { continue }
            candidates.append((author, ids))
        }
        guard !candidates.isEmpty else { return false }
        let ctx = BlockContext(height: state.height.next, timestampMs: max(now, state.timestampMs), proposer: myKey?.publicKey ?? config.keys[0].publicKey,
                               parentStateRoot: stateRoot)
        var probe = state
        try? probe.beginBlock(ctx)
        var bad: [EventID] = []
        defer { dropFromMempool(bad) }
        // The smallest key first; on a refusal, the next smallest (usually the first applies).
        while let i = candidates.indices.min(by: { candidates[$0].author < candidates[$1].author }) {
            for id in candidates[i].ids {
                guard let e = mempool[id] else { continue }
                var copy = probe
                do {
                    try copy.apply(e, id: id, ctx)
                    return true
                } catch {
                    bad.append(id)
                    dropped.append(.droppedEvent(id, error))
                }
            }
            candidates.remove(at: i)
        }
        return false
    }

    /// Events whose author's nonce a block has passed can never apply: they leave the
    /// mempool when that block executes (only its authors are looked at).
    mutating func dropStale(authors: some Sequence<PublicKey>) {
        var stale: [EventID] = []
        for author in Set(authors) {
            guard let byNonce = mempool.byAuthor[author], let acct = state.accounts[author] else { continue }
            for (n, ids) in byNonce where n <= acct.nonce {
                for id in ids {
                    stale.append(id)
                    dropped.append(.droppedEvent(id, .staleNonce(expected: acct.nonce + 1, got: n)))
                }
            }
        }
        dropFromMempool(stale)
    }

    /// Events waiting longer than `mempoolWaitMaxMs` for a nonce no event here has (its
    /// predecessor was lost or replaced) leave.
    mutating func dropExpiredWaiting() {
        var expired: [EventID] = []
        for (author, byNonce) in mempool.byAuthor {
            guard let next = state.accounts[author].map({ $0.nonce + 1 }), byNonce[next] == nil else { continue }
            for (n, ids) in byNonce where n > next {
                for id in ids where now >= (mempool.since[id] ?? now) &+ config.mempoolWaitMaxMs {
                    expired.append(id)
                    dropped.append(.droppedEvent(id, .futureNonce(expected: next, got: n)))
                }
            }
        }
        dropFromMempool(expired)
    }

    /// The most events `pushWaitingEvents` passes on at once.
    static let pushEventsMax = 1_000

    /// Passes this replica's oldest waiting client events (not in a proposed block) to the
    /// primary of its view. A replica that was cut off, stopped or restarted can become
    /// primary without the events the others hold; they reach it by re-forwarding only
    /// after 2 s, so it proposed nothing and the view timed out again (simulator seed 57
    /// of the rotating-fault sweep). A block's worth at most: the primary needs no more
    /// to propose, and the rest follows as blocks commit.
    mutating func pushWaitingEvents() {
        guard !changing, !mempool.isEmpty, let mine = myKey?.publicKey else { return }
        let p = primary(of: view)
        guard p != mine else { return }
        timers.pushToPrimary.fire(now)
        var batch: [[UInt8]] = [], bytes = 0
        let most = min(Self.pushEventsMax, Int(state.parameters.blockEventsMax))
        // Only events that can go into a block now (not ones waiting behind a gap).
        mempool.forEachChainable(on: state.accounts, inFlight: inFlightIDs(), stale: false) { _, e in
            guard batch.count < most, bytes + e.bytes.count <= Limits.peerMessageBytesMax / 2 else { return false }
            batch.append(e.bytes)
            bytes += e.bytes.count + 4
            return true
        }
        guard !batch.isEmpty else { return }
        send(batch.count == 1 ? .request(batch[0]) : .requests(batch), to: .peer(p))
    }
}
