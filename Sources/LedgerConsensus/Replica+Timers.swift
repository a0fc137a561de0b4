import LedgerCore
import LedgerProjections

/// The clock's side: view timers, retransmission, re-forwarding and state transfer.
extension Replica {
    // MARK: - Timers, retransmission, state transfer

    /// The view timer. It doubles with each failed view only after the first f: with f
    /// faulty validators, up to f views in a row can have a faulty primary, and doubling
    /// from the first made two faulty validators next to each other in the rotation cost
    /// 1 + 2 timeouts instead of 2 (measured: about 3 s a fault with 7 validators). Past
    /// f failures in a row it is the network that is slow, and the timer grows until it
    /// is long enough, as PBFT needs for liveness.
    func timeout() -> UInt64 {
        let doublings = failedViews > UInt32(currentSet.faultsTolerated) ? failedViews - UInt32(currentSet.faultsTolerated) : 0
        return min(config.viewTimeoutMs << UInt64(min(doublings, 16)), config.viewTimeoutMaxMs)
    }

    mutating func onTick(_ out: inout Output) {
        let inFlight = slots.contains { $0.key > state.height.value && ($0.value.block != nil || $0.value.pending != nil) }
        let work = inFlight || hasApplicableEvent()
        if !work { workSince = nil } else if workSince == nil { workSince = now }
        if changing {
            if let q = viewChangeQuorumAt, now >= q &+ timeout() { startViewChange(view.next, &out) }
        } else if let since = workSince, now >= max(since, lastProgressAt) &+ timeout(), myKey != nil {
            startViewChange(view.next, &out)
        } else if let since = workSince, now >= max(since, lastProgressAt) &+ timeout() / 2, timers.pushToPrimary.due(now, every: timeout() / 2) {
            // Half the view timeout with work and no progress: the primary may lack the
            // events (it was cut off when they were passed on), so it gets them now rather
            // than by the 2 s re-forward or a view change.
            pushWaitingEvents()
        }
        if timers.retransmit.due(now, every: config.retransmitMs) {
            timers.retransmit.fire(now)
            retransmit(&out)
        }
        fetchIfBehind(&out)
    }

    /// How many of the newest executed heights `retransmit` resends its commits for.
    static let retransmitExecutedMax: UInt64 = 4

    mutating func retransmit(_ out: inout Output) {
        reforwardOldEvents()
        // In every mode: the newest checkpoint votes, and commits for blocks executed above
        // the stable checkpoint. They let others stabilise and commit, and tell a replica
        // that is behind — even one that has to catch up before it can join a view change —
        // how far the others are.
        if let h = checkpointVotes.keys.max(), let set = checkpointSet(h), let k = myKey(in: set)?.publicKey, let v = checkpointVotes[h]?[k] {
            send(.vote(v))
        }
        for v in stable.votes where stable.height.value > 0 && config.keys.contains(where: { $0.publicKey == v.key }) {
            send(.vote(SignedConsensusMessage(message: stable.message, signer: v.key, signature: v.signature)))
        }
        let mine = Set(config.keys.map(\.publicKey))
        // Commits of the slots still in flight in this view, and of the newest executed
        // ones only: those show how far this replica is (a peer further behind fetches
        // the blocks by state transfer). Resending every executed slot above the stable
        // checkpoint, up to a whole interval of them every round, was most of the mesh's
        // messages under load.
        let recentFrom = state.height.value > Self.retransmitExecutedMax ? state.height.value - Self.retransmitExecutedMax : 0
        for h in slots.keys.sorted() where h > stable.height.value {
            let s = slots[h]!
            guard !s.executed || h > recentFrom else { continue }
            if s.executed || s.view == view, let c = s.commits.first(where: { mine.contains($0.signer) }) { send(.vote(c)) }
        }
        if changing {
            if let (vc, blocks) = durable.viewChange, vc.view == view { send(.viewChange(vc, blocks: blocks)) }
            return
        }
        if let (nv, blocks) = myNewView, nv.view == view { send(.newView(nv, blocks: blocks)) }
        for h in slots.keys.sorted() where h > stable.height.value {
            let s = slots[h]!
            guard s.view == view, !s.executed else { continue }
            if let pp = s.prePrepare, let b = s.block, mine.contains(pp.signer) { send(.prePrepare(pp, b)) }
            if let p = s.prepares.first(where: { mine.contains($0.signer) }) { send(.vote(p)) }
        }
    }

    /// Client events this replica has held for a while without seeing them in a block
    /// are passed on again (at most 1,000, every 2 s): a forward lost to a reconnecting
    /// link would otherwise leave an event only here, where no primary takes it.
    mutating func reforwardOldEvents() {
        let every: UInt64 = 2_000
        guard timers.reforward.due(now, every: every), !mempool.isEmpty else { return }
        timers.reforward.fire(now)
        let inFlight = inFlightIDs()
        var n = 0
        for id in mempool.order where n < 1_000 {
            guard let e = mempool[id], !inFlight.contains(id), let since = mempool.since[id], now >= since &+ every else { continue }
            send(.request(e.bytes))
            n += 1
        }
    }

    /// Asks a peer that claims a greater height for the next blocks: after
    /// `fetchIntervalMs` without progress, or at once when the last answer moved this
    /// replica on and it is still behind (`fetchStreaming`). Asking only every 400 ms
    /// fetched 40 blocks a second, less than a loaded chain grows: a validator back from
    /// a pause never caught up, and the next fault left the others without a quorum.
    /// Each peer is asked at most as often as peers answer (`Limits.fetchAnswerGapMs`), so
    /// a replica catching up rotates over all that claim more.
    mutating func fetchIfBehind(_ out: inout Output) {
        let behind = peerClaims.filter { $0.value > state.height.value }.keys.sorted()
        guard !behind.isEmpty else { fetchStreaming = false; return }
        let waited = now >= lastProgressAt &+ config.fetchIntervalMs && timers.fetch.due(now, every: config.fetchIntervalMs)
        guard waited || fetchStreaming else { return }
        // A quarter more than the peers' gap: the request must not arrive early there.
        let gap = Limits.fetchAnswerGapMs + Limits.fetchAnswerGapMs / 4
        let ready = behind.filter { p in fetchAskedAt[p].map { now >= $0 &+ gap } ?? true }
        guard !ready.isEmpty else { return }
        fetchStreaming = false
        timers.fetch.fire(now)
        let peer = ready[Int(fetchRound % UInt64(ready.count))]
        fetchRound &+= 1
        if fetchAskedAt.count >= Limits.fetchPeersRememberedMax { fetchAskedAt.removeAll(keepingCapacity: true) }
        fetchAskedAt[peer] = now
        out.notes.append(.fetching(from: state.height.next, peer: peer))
        send(.fetch(from: state.height.next, count: UInt32(Limits.stateTransferBlocksMax)), to: .peer(peer))
        // A peer that claimed a height and does not deliver loses its claim after a round
        // of asking on the timer (answers that arrive keep the stream going instead).
        if waited, fetchRound % UInt64(max(behind.count, 1) * 4) == 0 { peerClaims = peerClaims.filter { $0.value <= state.height.value } }
    }

    /// State transfer: certified blocks are checked (certificate against the epoch's
    /// validator set, then every link, root and event) and applied, never re-agreed.
    mutating func onBlocks(_ from: PublicKey, _ blocks: [CertifiedBlock], _ out: inout Output) {
        for cb in blocks.sorted(by: { $0.block.height < $1.block.height }) {
            let h = cb.block.height.value
            guard h == state.height.value + 1 else { continue }
            let c = cb.certificate
            guard c.height == cb.block.height, c.blockHash == cb.block.hash, c.view >= cb.block.header.view,
                  verifyVotes(c.votes, statement: CommitCertificate.message(chain: chain, height: c.height, view: c.view, blockHash: c.blockHash), set: currentSet)
            else {
                out.notes.append(.rejectedMessage("state transfer from \(from.short): certificate for height \(h) does not verify"))
                peerClaims[from] = nil
                return
            }
            let exec: ExecutedBlock
            do { exec = try Execution.execute(cb.block, parent: ParentView(state: state, stateRoot: stateRoot, hash: lastHash), verified: verified, crypto: config.crypto, scratch: &scratch) } catch {
                out.notes.append(.rejectedProposal(Height(h), error))
                peerClaims[from] = nil
                return
            }
            counters.eventSignaturesVerified += exec.signaturesVerified
            // Whatever this replica had in flight at this height was not committed.
            if let s = slots[h], s.block?.hash != cb.block.hash { slots = slots.filter { $0.key < h } }
            slots[h]?.advance(to: .executed)
            if slots[h]?.exec == nil { slots[h] = nil }
            applyExecuted(cb.block, exec, c, viaTransfer: true, &out)
            // A block certified in the view this replica is changing to (or a later one)
            // proves that view was installed by a quorum: join it instead of completing a
            // view change of its own — with an epoch begun meanwhile, this replica could
            // even compute a different primary for that view and build a second new view.
            if c.view >= view, changing || c.view > view { adoptView(c.view, &out) }
            if let next = slots[h + 1], let nb = next.block, nb.header.parentHash != lastHash {
                slots = slots.filter { $0.key <= h }
            }
            fetchStreaming = true
        }
        if fetchStreaming { fetchIfBehind(&out) }
    }
}
