import LedgerCore
import LedgerProjections

/// View changes: asking for a view, choosing what the new view re-proposes, installing it.
extension Replica {
    // MARK: - View change

    mutating func startViewChange(_ target: View, _ out: inout Output) {
        guard target > view || (target == view && !changing) else { return }
        let before = view
        view = target
        viewStatus = .changing
        assert(view >= before && changing, "a view change never goes back")
        viewChangeQuorumAt = nil
        failedViews &+= 1
        out.notes.append(.startedViewChange(target))
        persist(.view(target, changing: true), &out)
        // (Asking again for the view it is in leaves the record "normal in it", which supersedes.)
        assert(durable.view == target && (durable.changing || target == before), "the view change is recorded before anything is sent for it")
        slots = slots.filter { $0.value.executed }
        myNewView = nil
        newViewResentAt.removeAll()
        viewChangeStale = false
        signViewChange(&out)
    }

    /// Signs and sends this replica's view change for the current target view.
    mutating func signViewChange(_ out: inout Output) {
        let target = view
        guard changing, let key = myKey else { return }
        var prepared: [PreparedCertificate] = []
        var blocks: [ProposedBlock] = []
        for h in durable.prepared.keys.sorted() where inWindow(h) {
            let (c, b) = durable.prepared[h]!
            prepared.append(c); blocks.append(b)
        }
        let vc = ViewChange.sign(view: target, stable: stable, prepared: prepared, chain: chain, key: key)
        persist(.viewChange(vc, blocks: blocks), &out)
        viewChanges[key.publicKey] = (vc, blocks)
        send(.viewChange(vc, blocks: blocks))
        noteViewChangeQuorum()
        tryNewView(&out)
    }

    mutating func noteViewChangeQuorum() {
        guard changing, viewChangeQuorumAt == nil else { return }
        // Replicas already asking for later views are not in this view either.
        if quorum(viewChanges.values.filter { $0.0.view >= view }.map(\.0.replica), currentSet) { viewChangeQuorumAt = now }
    }

    /// More than a third of the power seen in later views (view changes or votes): this
    /// replica missed a view change; join the highest view that many are in.
    mutating func catchUpOnViews(_ out: inout Output) {
        let later = viewSeen.filter { $0.value > view && currentSet.contains($0.key) }
        guard currentSet.isWeakQuorum(later.keys) else { return }
        var best = view
        for v in Set(later.values).sorted(by: >) {
            if currentSet.isWeakQuorum(later.filter { $0.value >= v }.keys) { best = v; break }
        }
        if best > view { startViewChange(best, &out) }
    }

    /// Why a view change does not verify here. `forged` (a member's view change whose
    /// signature does not verify) convicts whoever sent it.
    enum ViewChangeFlaw {
        case forged
        case invalid(String)
        var why: String {
            switch self {
            case .forged: "bad signature"
            case let .invalid(why): why
            }
        }
    }

    /// Nil when a validator of this epoch signed the view change, else why not.
    func checkSigner(_ vc: ViewChange) -> ViewChangeFlaw? {
        guard currentSet.contains(vc.replica) else { return .invalid("sender is not a validator of this epoch") }
        return sigs.verify(vc.signature, vc.statement(chain: chain), vc.replica) ? nil : .forged
    }

    /// Nil when the view change verifies here, else why not.
    func checkViewChange(_ vc: ViewChange, _ blocks: [ProposedBlock], requireBlocks: Bool = true) -> ViewChangeFlaw? {
        if let flaw = checkSigner(vc) { return flaw }
        guard validCheckpoint(vc.stable) else { return .invalid("stable checkpoint \(vc.stable.height) does not verify here") }
        let base = vc.stable.height.value
        var byHash: [Hash32: ProposedBlock] = [:]
        for b in blocks { byHash[b.hash] = b }
        for p in vc.prepared {
            guard p.height.value > base, p.height.value <= base + window else { return .invalid("prepared height \(p.height) outside the window") }
            guard let set = set(for: p.height.value) else { return .invalid("prepared height \(p.height) is in an epoch unknown here") }
            guard validPrepared(p, set: set) else { return .invalid("prepared certificate at \(p.height) view \(p.view) does not verify") }
            guard !requireBlocks || byHash[p.blockHash]?.height == p.height else { return .invalid("block prepared at \(p.height) not attached") }
        }
        return nil
    }

    mutating func onViewChange(_ from: PublicKey, _ vc: ViewChange, _ blocks: [ProposedBlock], _ out: inout Output) {
        guard vc.view > view || (vc.view == view && changing) else {
            // A member asking for the view this replica already installed missed the new
            // view: it gets it again (it asks each `retransmitMs` until it has it), once
            // its own signature shows the request is its own. Otherwise anyone could make
            // this replica send its new view, blocks and all, on every message.
            guard vc.view == view, !changing, let (nv, bs) = myNewView, nv.view == view else { return }
            if let flaw = checkSigner(vc) {
                if case .forged = flaw { out.notes.append(.peerFault(from, .forgedConsensusMessage)) }
                return
            }
            if let last = newViewResentAt[vc.replica], now < last &+ config.retransmitMs { return }
            newViewResentAt[vc.replica] = now
            send(.newView(nv, blocks: bs), to: .peer(vc.replica))
            return
        }
        if let old = viewChanges[vc.replica], old.0.view >= vc.view { return }
        if let flaw = checkViewChange(vc, blocks) {
            if case .forged = flaw { out.notes.append(.peerFault(from, .forgedConsensusMessage)); return }
            if vc.stable.height.value > state.height.value, currentSet.contains(vc.replica) { claim(vc.replica, vc.stable.height.value) }
            out.notes.append(.rejectedMessage("view change \(vc.view) from \(vc.replica.short): \(flaw.why)"))
            return
        }
        viewChanges[vc.replica] = (vc, blocks)
        if vc.stable.height.value > state.height.value { claim(vc.replica, vc.stable.height.value) }
        if vc.view > (viewSeen[vc.replica] ?? 0) { viewSeen[vc.replica] = vc.view }
        catchUpOnViews(&out)
        noteViewChangeQuorum()
        tryNewView(&out)
    }

    /// The re-proposals a new view must carry: from the highest stable checkpoint up, the
    /// highest-view prepared block of each height, until a height with none (or one that
    /// does not extend the block chosen below it).
    func choose(_ vcs: [ViewChange], blocks: [Hash32: ProposedBlock]) -> (CheckpointCertificate, [PreparedCertificate]) {
        var base = vcs[0].stable
        for vc in vcs where vc.stable.height > base.height { base = vc.stable }
        var chosen: [PreparedCertificate] = []
        var parent = base.blockHash
        var h = base.height.value + 1
        while h <= base.height.value + window {
            var best: PreparedCertificate?
            for vc in vcs {
                for p in vc.prepared where p.height.value == h {
                    if let b = best, b.view > p.view || (b.view == p.view && !(p.blockHash < b.blockHash)) { continue }
                    best = p
                }
            }
            guard let c = best, let b = blocks[c.blockHash], b.header.parentHash == parent else { break }
            chosen.append(c)
            parent = c.blockHash
            h += 1
        }
        if config.bugs.contains(.newViewDropsPrepared), !chosen.isEmpty { chosen.removeLast() }
        return (base, chosen)
    }

    mutating func tryNewView(_ out: inout Output) {
        guard changing, let key = myKey, primary(of: view) == key.publicKey else { return }
        let vcs = viewChanges.values.filter { $0.0.view == view }.sorted { $0.0.replica < $1.0.replica }
        guard quorum(vcs.map(\.0.replica), currentSet) else { return }
        var byHash: [Hash32: ProposedBlock] = [:]
        for (_, bs) in vcs { for b in bs { byHash[b.hash] = b } }
        let (base, chosen) = choose(vcs.map(\.0), blocks: byHash)
        var pps: [SignedConsensusMessage] = []
        var blocks: [ProposedBlock] = []
        for c in chosen {
            guard let pp = signVote(.prePrepare(view: view, height: c.height, blockHash: c.blockHash), key: key, &out) else { return }
            pps.append(pp); blocks.append(byHash[c.blockHash]!)
        }
        let nv = NewView.sign(view: view, viewChanges: vcs.map(\.0), prePrepares: pps, chain: chain, key: key)
        myNewView = (nv, blocks)
        send(.newView(nv, blocks: blocks))
        install(nv, base: base, blocks, &out)
    }

    mutating func onNewView(_ from: PublicKey, _ nv: NewView, _ blocks: [ProposedBlock], _ out: inout Output) {
        guard nv.view > view || (nv.view == view && changing) else { return }
        guard nv.primary == primary(of: nv.view) else {
            out.notes.append(.rejectedMessage("new view \(nv.view) not from its primary")); return
        }
        guard sigs.verify(nv.signature, nv.statement(chain: chain), nv.primary) else { out.notes.append(.peerFault(from, .forgedConsensusMessage)); return }
        var signers = Set<PublicKey>()
        var byHash: [Hash32: ProposedBlock] = [:]
        for b in blocks { byHash[b.hash] = b }
        for vc in nv.viewChanges {
            let flaw: ViewChangeFlaw? = vc.view != nv.view ? .invalid("for another view")
                : !signers.insert(vc.replica).inserted ? .invalid("twice") : checkViewChange(vc, blocks, requireBlocks: false)
            if let flaw {
                if case .forged = flaw { out.notes.append(.peerFault(from, .forgedConsensusMessage)); return }
                if vc.stable.height.value > state.height.value, currentSet.contains(vc.replica) { claim(nv.primary, vc.stable.height.value) }
                out.notes.append(.rejectedMessage("new view \(nv.view) carries an invalid view change from \(vc.replica.short): \(flaw.why)")); return
            }
        }
        guard quorum(Array(signers), currentSet) else { out.notes.append(.rejectedMessage("new view \(nv.view) without a quorum")); return }
        let (base, chosen) = choose(nv.viewChanges, blocks: byHash)
        guard chosen.count == nv.prePrepares.count else { out.notes.append(.rejectedMessage("new view \(nv.view) re-proposes the wrong blocks")); return }
        for (c, pp) in zip(chosen, nv.prePrepares) {
            guard pp.message == .prePrepare(view: nv.view, height: c.height, blockHash: c.blockHash), pp.signer == nv.primary,
                  sigs.verify(pp, chain) else { out.notes.append(.rejectedMessage("new view \(nv.view) re-proposes the wrong blocks")); return }
        }
        install(nv, base: base, blocks, &out)
    }

    /// Joins a view that others installed, known from a certificate of that view. The
    /// new view's re-proposals are below the certified height, so nothing is lost by
    /// joining without it.
    mutating func adoptView(_ v: View, _ out: inout Output) {
        enterView(v, &out)
        slots = slots.filter { $0.value.executed || $0.key <= state.height.value }
    }

    /// Leaves view-change mode for view `v` (from a NEW-VIEW or a certificate of `v`).
    mutating func enterView(_ v: View, _ out: inout Output) {
        assert(v > view || (v == view && changing), "entering view \(v) from \(view)\(changing ? " (changing)" : ""): views only move forward")
        view = v
        viewStatus = .normal
        viewChangeStale = false
        persist(.view(view, changing: false), &out)
        assert(view == v && !changing && durable.view == v && !durable.changing, "the entered view is normal and recorded")
        out.notes.append(.enteredView(view))
        lastProgressAt = now
        workSince = nil
        pushWaitingEvents()
        viewChanges = viewChanges.filter { $0.value.0.view > view }
    }

    mutating func install(_ nv: NewView, base: CheckpointCertificate, _ blocks: [ProposedBlock], _ out: inout Output) {
        enterView(nv.view, &out)
        slots = [:]
        var byHash: [Hash32: ProposedBlock] = [:]
        for b in blocks { byHash[b.hash] = b }
        if base.height > state.height { claim(nv.primary, base.height.value) }
        for pp in nv.prePrepares {
            guard case let .prePrepare(_, height, hash) = pp.message, let b = byHash[hash] else { continue }
            let h = height.value
            remember(pp, &out)
            if h <= state.height.value {
                // Already executed here: it must be the same block; help the others commit it.
                guard executedHashes[h] == nil || executedHashes[h] == hash else {
                    out.notes.append(.divergence("new view \(view) re-proposes another block at executed height \(h)")); continue
                }
                var s = Slot(view: view)
                s.block = b; s.prePrepare = pp; s.advance(to: .executed)
                slots[h] = s
                if let key = myKey, key.publicKey != nv.primary {
                    if let p = signVote(.prepare(view: view, height: height, blockHash: hash), key: key, &out) { send(.vote(p)) }
                }
                if let key = myKey, let c = signVote(.commit(view: view, height: height, blockHash: hash), key: key, &out) { send(.vote(c)) }
                continue
            }
            guard inWindow(h) else { continue }
            var s = Slot(view: view)
            s.pending = (pp, b, true)
            slots[h] = s
        }
    }
}
