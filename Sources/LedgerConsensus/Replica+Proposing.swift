import LedgerCore
import LedgerProjections

/// The primary's side: when to propose, and building a block from the mempool.
extension Replica {
    // MARK: - Proposing

    mutating func tryPropose(_ out: inout Output) {
        guard isPrimary, let key = myKey else { return }
        while true {
            // The next height: above everything executed or proposed in this view.
            var h = state.height.value + 1
            while let s = slots[h], s.block != nil || s.pending != nil || s.executed { h += 1 }
            guard inWindow(h), Self.epochOf(h, interval) == epoch, let parent = parentView(h) else { return }
            if durable.signed(.prePrepare(view: view, height: Height(h), blockHash: .zero)) != nil { return }
            let inFlight = h - state.height.value - 1
            // Only opinions waiting (events in flight do not count): they wait for other
            // events, or `opinionDelayMs`.
            let opinionsOnly: Bool
            if mempool.clientCount == 0 {
                opinionsOnly = true
            } else if inFlight > 0, let o = oldestPendingAt, now >= o &+ config.batchDelayMs {
                opinionsOnly = mempool.clientCount <= clientEventsInFlight()
            } else {
                opinionsOnly = false
            }
            // Held opinions keep the other replicas' view timers running: they wait at most
            // a quarter of the view timeout.
            let delay = opinionsOnly ? max(min(config.opinionDelayMs, config.viewTimeoutMs / 4), config.batchDelayMs) : config.batchDelayMs
            let waited = oldestPendingAt.map { now >= $0 &+ delay } ?? false
            let maxEvents = Int(state.parameters.blockEventsMax)
            // A full block is ready when the events not yet in a proposed block fill one
            // (the mempool also holds the events of the blocks in flight: counting those
            // proposed a block per arriving event once a full one was in flight).
            // Events not yet in a proposed block, and of those the ones that can go in.
            let pending = mempool.count - eventsInFlight()
            let ready = min(pending, chainableSinceBuild + chainableLeft)
            let fullReady = timers.fullRuleOff.passed(now) && ready >= maxEvents
            let due = (inFlight == 0 && !opinionsOnly) || waited
            guard due || fullReady else { return }
            // Each build reads the whole mempool. After one found nothing to propose (every
            // event not in flight waits for a nonce this replica has not seen), a large
            // mempool is read again only after a batch delay, not on every message.
            guard timers.buildIdle.passed(now) || pending <= Self.buildFreeEvents else { return }
            counters.blockBuilds += 1
            chainableSinceBuild = 0
            let built = buildBlock(h, parent: parent, key: key)
            if !due, built?.full != true {
                // Events waiting for a nonce were counted as ready (the block stopped short
                // of the count and byte limits): the full-block rule waits a batch delay
                // before it believes the count again.
                timers.fullRuleOff.holdOff(now, for: config.batchDelayMs)
            }
            guard let (block, exec, _) = built else {
                if pending > Self.buildFreeEvents { timers.buildIdle.holdOff(now, for: config.batchDelayMs) }
                return
            }
            guard let pp = signVote(.prePrepare(view: view, height: Height(h), blockHash: block.hash), key: key, &out) else { return }
            var slot = Slot(view: view)
            slot.block = block; slot.prePrepare = pp; slot.exec = exec; slot.sentPrepare = true
            if let old = slots[h] { slot.prepares = old.prepares; slot.commits = old.commits }
            slots[h] = slot
            send(.prePrepare(pp, block))
            oldestPendingAt = mempool.isEmpty ? nil : now
        }
    }

    /// Mempools up to this size are cheap to read: a build that found nothing may be
    /// retried on the next message.
    static let buildFreeEvents = 256

    /// Calls `body` with each block proposed above the executed height, as this replica
    /// executed it. (`tryPropose` asks on every step: the box is passed, not a copy of
    /// the block and its state.)
    func forEachInFlight(_ body: (Speculation) -> Void) {
        for (k, slot) in slots where k > state.height.value && !slot.executed { if let e = slot.speculation { body(e) } }
    }

    /// The ids of their events, which the mempool still holds: no new block takes them.
    func inFlightIDs() -> Set<EventID> {
        var ids = Set<EventID>()
        forEachInFlight { ids.formUnion($0.value.ids) }
        return ids
    }

    /// How many events those blocks hold (the mempool still holds them, except the rare
    /// one dropped or never admitted here: an overcount only delays the full-block rule
    /// to the batch delay; checking each id would cost a lookup per in-flight event on
    /// every step).
    func eventsInFlight() -> Int {
        var n = 0
        forEachInFlight { n += $0.value.ids.count }
        return n
    }

    /// Mempool events other than opinions that are in blocks proposed above the
    /// executed height (`mempool.clientCount` counts them too).
    func clientEventsInFlight() -> Int {
        var n = 0
        forEachInFlight { spec in
            for (id, e) in zip(spec.value.ids, spec.value.envelopes) where !Mempool.isOpinion(e) && mempool[id] != nil { n += 1 }
        }
        return n
    }

    /// `full`: the block stopped at the count or byte limit (more events would have gone in).
    mutating func buildBlock(_ h: UInt64, parent: ParentView, key: any Signer) -> (ProposedBlock, ExecutedBlock, full: Bool)? {
        var s = parent.state
        let ts = max(now, s.timestampMs)
        let ctx = BlockContext(height: Height(h), timestampMs: ts, proposer: key.publicKey, parentStateRoot: parent.stateRoot)
        do { try s.beginBlock(ctx) } catch { preconditionFailure("a proposal follows its parent by construction: \(error)") }
        let inFlight = inFlightIDs()
        var ids: [EventID] = [], envs: [Envelope] = [], raws: [[UInt8]] = []
        var bytes = 0
        var drop: [EventID] = []
        let maxEvents = Int(s.parameters.blockEventsMax), maxBytes = Int(s.parameters.blockBytesMax)
        // Selection by fee: the highest fees first, arrival order among equal fees. An
        // author's events still go in nonce order: one that must wait for its
        // predecessor waits aside and goes in as soon as that one does.
        var candidates: [(id: EventID, e: Envelope)] = []
        candidates.reserveCapacity(mempool.count)
        var fees = Set<UInt64>()
        mempool.forEachChainable(on: s.accounts, inFlight: inFlight, stale: true) { id, e in
            candidates.append((id, e))
            fees.insert(e.fee)
            return true
        }
        if fees.count > 1 {
            let rank = Dictionary(uniqueKeysWithValues: candidates.enumerated().map { ($1.id, $0) })
            candidates.sort { $0.e.fee != $1.e.fee ? $0.e.fee > $1.e.fee : rank[$0.id]! < rank[$1.id]! }
        }
        var full = false
        // Events waiting for their author's previous nonce, by author, in arrival order.
        var waiting: [PublicKey: [(id: EventID, e: Envelope)]] = [:]
        /// Applies one event: true if it went in; a future nonce waits for its author.
        func include(_ id: EventID, _ e: Envelope) -> Bool {
            if ids.count >= maxEvents || bytes + e.bytes.count > maxBytes { full = true; return false }
            do {
                try s.apply(e, id: id, ctx)
                ids.append(id); envs.append(e); raws.append(e.bytes); bytes += e.bytes.count
                return true
            } catch {
                switch error {
                case .futureNonce: waiting[e.author, default: []].append((id, e))
                case .staleNonce: drop.append(id); dropped.append(.droppedEvent(id, error))
                default: if h == state.height.value + 1 { drop.append(id); dropped.append(.droppedEvent(id, error)) }
                }
                return false
            }
        }
        for (id, e) in candidates where !full {
            guard include(id, e) else { continue }
            // The author's nonce moved: its waiting events may go in now, in nonce order
            // (one sort per drain, so an author's reversed backlog costs n log n).
            guard let list = waiting.removeValue(forKey: e.author) else { continue }
            let sorted = list.sorted { $0.e.nonce < $1.e.nonce }
            for (k, w) in sorted.enumerated() where !include(w.id, w.e) {
                // `include` put `w` back if it still waits; the rest wait behind it.
                if k + 1 < sorted.count { waiting[e.author, default: []].append(contentsOf: sorted[(k + 1)...]) }
                break
            }
        }
        dropFromMempool(drop)
        chainableLeft = max(0, candidates.count - ids.count - drop.count)
        guard !ids.isEmpty else { return nil }
        let post = s.postState()
        let header = BlockHeader(chainID: chain, height: Height(h), parentHash: parent.hash, view: view, timestampMs: ts,
                                 proposer: key.publicKey, eventCount: UInt32(ids.count), eventsRoot: EventsTree.root(ids, config.crypto),
                                 parentStateRoot: parent.stateRoot, post: post,
                                 meme: Array(config.producer.meme(height: Height(h), view: view).prefix(Limits.memeBytesMax)))
        let root = s.sealRoot()
        return (ProposedBlock(header: header, events: raws, config.crypto), ExecutedBlock(state: s, stateRoot: root, ids: ids, envelopes: envs, signaturesVerified: 0), full)
    }
}
