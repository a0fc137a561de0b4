import LedgerAgents
import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerProjections

/// The checker: what must hold after every step and at the end of a run.
extension Simulation {
    // MARK: - Invariants

    func checkCommit(_ n: SimNode, _ c: CommittedBlock) {
        guard n.honest else { n.executedState = c.state; return }
        let b = c.certified.block, h = b.height.value
        committedView[h] = min(committedView[h] ?? .max, c.certified.certificate.view)
        // The commit certificate must pass the replay's check against the parent state.
        if !options.checkInvariants {
            if let known = committedHash[h], known != b.hash { violation("agreement: r\(n.index) committed another block at height \(h)") }
            committedHash[h] = b.hash
            if !faultsOn { commitsAfterFaults += 1 }
            n.executedState = c.state
            return
        }
        // Checked once per distinct certificate and parent state (replicas share most).
        let parentRoot = committedRoot[h - 1] ?? (h == 1 ? genesisRoot : nil)
        if parentRoot == nil || checkedCertificates.insert(CheckedCertificate(certificate: c.certified.certificate, parentRoot: parentRoot!)).inserted {
            do { try n.executedState.verifyCertificate(c.certified.certificate, height: b.height, blockHash: b.hash) } catch {
                violation("r\(n.index) committed height \(h) with a certificate replay refuses: \(error)")
            }
        }
        if let known = committedHash[h] {
            if known != b.hash { violation("agreement: r\(n.index) committed \(b.hash.short) at height \(h), another honest replica \(known.short)") }
        } else {
            committedHash[h] = b.hash
            trace.u64(h); trace.b32(b.hash); trace.u64(now)
            notePause(until: now)
            lastCommitAt = now
            if !faultsOn { commitsAfterFaults += 1 }
            var scratch: [UInt8] = []
            for raw in b.events {
                let id = EventCrypto.id(raw)
                guard checkedEvents.insert(id).inserted else { continue }
                guard let e = try? Envelope(bytes: raw), EventCrypto.verify(e, scratch: &scratch) else {
                    violation("height \(h) carries event \(id.short) without its author's valid signature"); continue
                }
            }
        }
        if let root = committedRoot[h] {
            if root != c.stateRoot { violation("state roots differ at height \(h): r\(n.index) has \(c.stateRoot.short)") }
        } else {
            committedRoot[h] = c.stateRoot
            // The oracle of the state tree: the root kept up block by block is the root
            // of a tree built from every leaf (a write it missed would differ here).
            if c.state.commitment == .tree, c.state.buildTree().root != c.stateRoot {
                violation("r\(n.index)'s incremental state tree at height \(h) differs from a fresh build")
            }
            if !c.state.derivedIndexesHold { violation("r\(n.index)'s derived indexes (live alliances, undrawn disputes, pending proposals) at height \(h) differ from a scan of the state") }
        }
        n.executedState = c.state
    }

    /// An honest replica's vote leaves only once it is durable, and never contradicts an
    /// earlier vote of the same signer.
    func checkSentVote(_ n: SimNode, _ m: PeerMessage) {
        var votes: [SignedConsensusMessage] = []
        switch m {
        case let .prePrepare(pp, _): votes = [pp]
        case let .vote(v): votes = [v]
        case let .newView(nv, _): votes = nv.prePrepares
        default: return
        }
        for v in votes {
            // Votes at or below the durable stable checkpoint are settled and collected.
            if v.message.height.value > (n.durable.stable?.height.value ?? 0), n.durable.signed(v.message) != v {
                violation("r\(n.index) sent \(v.message) before it was durable")
            }
            let (kind, h, view) = DurableState.slot(v.message)
            let key = SeenVote(signer: v.signer, kind: kind, height: h, view: view)
            if let old = honestVotes[key], old.message != v.message {
                violation("honest r\(n.index) signed two different \(kind == 1 ? "pre-prepares" : kind == 2 ? "prepares" : kind == 3 ? "commits" : "checkpoints") at height \(h) view \(view)")
            }
            honestVotes[key] = v
        }
    }

    /// PBFT's view-change safety, checked where it is decided: a new view re-proposes
    /// every block already committed above its base checkpoint, unchanged, if it was
    /// committed in an earlier view. A new view for a view lower than a block's commit is
    /// not bound by it: a quorum had moved past that view to commit the block, and never
    /// goes back, so such a new view (a primary back from a pause, acting on its backlog)
    /// cannot be installed by one.
    func checkNewView(_ n: SimNode, _ m: PeerMessage) {
        // Checked when first sent: a retransmission goes out after later commits.
        guard case let .newView(nv, _) = m, let first = nv.viewChanges.first,
              checkedNewViews.insert([nv.primary, Blake2b.hash(nv.statement(chain: chain.raw))]).inserted else { return }
        var base = first.stable.height.value
        for vc in nv.viewChanges { base = max(base, vc.stable.height.value) }
        var proposed: [UInt64: Hash32] = [:]
        for pp in nv.prePrepares { if case let .prePrepare(_, h, x) = pp.message { proposed[h.value] = x } }
        var h = base + 1
        while let committed = committedHash[h] {
            if proposed[h] != committed, committedView[h].map({ $0 < nv.view }) ?? true {
                violation("honest r\(n.index)'s new view \(nv.view) does not re-propose block \(committed.short), committed at height \(h)")
                return
            }
            h += 1
        }
    }

    func settled() -> Bool {
        guard !faultsOn, acked.count >= submittedIDs.count, submittedIDs.allSatisfy({ acked[$0] != nil }) else { return false }
        let honest = nodes.filter(\.honest)
        let top = honest.map { $0.chain.count }.max() ?? 0
        return honest.allSatisfy { $0.chain.count == top && $0.replica != nil } && (acked.values.max() ?? 0) <= UInt64(top)
    }

    func finalChecks() {
        // A pause still open at the end counts too.
        if scenario.faultRotation != nil, acked.count < submittedIDs.count { notePause(until: now) }
        guard violations.isEmpty else { return }
        // Safety holds always; liveness only where some producer is acceptable to honest
        // validators holding a quorum (see Scenario.someProducerAccepted).
        guard scenario.someProducerAccepted else { return }
        let honest = nodes.filter(\.honest)
        let top = honest.map { $0.chain.count }.max() ?? 0
        for n in honest where n.chain.count != top {
            violation("liveness: r\(n.index) is at height \(n.chain.count), others at \(top), \(recoveryMs) ms after faults stopped")
        }
        let lost = submittedIDs.filter { acked[$0] == nil }.count
        if lost > 0 { violation("liveness: \(lost) of \(submitted) client events never committed \(recoveryMs) ms after faults stopped") }
        if submitted > 0, commitsAfterFaults == 0, acked.count < submitted { violation("liveness: no commit after faults stopped") }
        // No acknowledged event is lost: every honest chain holds it at the height it was acknowledged at.
        for n in honest {
            var at: [EventID: UInt64] = [:]
            for b in n.chain { for raw in b.block.events { at[EventCrypto.id(raw)] = b.block.height.value } }
            for (id, h) in acked where at[id] != h {
                violation("acknowledged event \(id.short) (height \(h)) is missing from r\(n.index)'s log"); break
            }
        }
    }
}
