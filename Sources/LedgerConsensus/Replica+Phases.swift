import LedgerCore
import LedgerProjections

/// The normal case: pre-prepare, prepare, commit, execution and checkpoints.
extension Replica {
    // MARK: - Messages

    mutating func onMessage(_ from: PublicKey, _ m: PeerMessage, _ out: inout Output) {
        switch m {
        case let .request(bytes): admitRelayed(CollectionOfOne(bytes), from: from, &out)
        case let .requests(list): admitRelayed(list, from: from, &out)
        case let .prePrepare(pp, block): onPrePrepare(from, pp, block, &out)
        case let .vote(v): onVote(from, v, &out)
        case let .viewChange(vc, blocks): onViewChange(from, vc, blocks, &out)
        case let .newView(nv, blocks): onNewView(from, nv, blocks, &out)
        case let .fetch(h, count):
            guard h.value >= 1, h <= state.height else { return }
            if let last = fetchServedAt[from], now < last &+ Limits.fetchAnswerGapMs {
                out.notes.append(.rejectedMessage("state-transfer request from \(from.short) sooner than \(Limits.fetchAnswerGapMs) ms after the last"))
                return
            }
            if fetchServedAt.count >= Limits.fetchPeersRememberedMax { fetchServedAt.removeAll(keepingCapacity: true) }
            fetchServedAt[from] = now
            out.serve.append(ServeRequest(to: from, from: h, count: min(Int(count), Limits.stateTransferBlocksMax)))
        case let .blocks(bs): onBlocks(from, bs, &out)
        }
    }

    /// Remembers a member's vote and reports a conflicting pair as evidence, once.
    mutating func remember(_ s: SignedConsensusMessage, _ out: inout Output) {
        let (kind, h, v) = DurableState.slot(s.message)
        let key = SeenKey(signer: s.signer, kind: kind, height: h, view: v)
        if let old = seen[key] {
            guard old.message != s.message, !reported.contains(key) else { return }
            guard Equivocation.detect(old, s, chain: chain, config.crypto) != nil else { return }
            reported.insert(key)
            out.notes.append(.equivocation(s.signer))
            authorEvent(.evidence(first: old.encoded(), second: s.encoded()), &out)
            return
        }
        if seen.count >= Limits.voteMemoryMax { seen.removeAll(keepingCapacity: true) }
        seen[key] = s
    }

    mutating func claim(_ signer: PublicKey, _ h: UInt64) {
        if h > (peerClaims[signer] ?? 0) { peerClaims[signer] = h }
    }

    func inWindow(_ h: UInt64) -> Bool { h > stable.height.value && h <= stable.height.value + window }

    mutating func onPrePrepare(_ from: PublicKey, _ pp: SignedConsensusMessage, _ block: ProposedBlock, _ out: inout Output) {
        guard case let .prePrepare(v, height, hash) = pp.message else { return }
        let h = height.value
        guard let set = set(for: h), set.contains(pp.signer) else {
            if set(for: h) == nil, inWindow(h) || h > state.height.value { claim(pp.signer, h &- 1) }
            else { out.notes.append(.rejectedMessage("pre-prepare for h\(h) from \(pp.signer.short): not a member")) }
            return
        }
        guard sigs.verify(pp, chain) else { out.notes.append(.peerFault(from, .forgedConsensusMessage)); return }
        remember(pp, &out)
        guard v == view, !changing, pp.signer == primary(of: v), inWindow(h), h > state.height.value else { return }
        guard block.hash == hash else { out.notes.append(.rejectedMessage("pre-prepare names another block")); return }
        var slot = slots[h] ?? Slot(view: v)
        guard slot.block == nil, slot.pending == nil else { return }
        slot.pending = (pp, block, false)
        slots[h] = slot
    }

    /// Validates pending proposals whose parent is now known (called from `advance`).
    mutating func validatePending(_ h: UInt64, _ out: inout Output) -> Bool {
        guard var slot = slots[h], let (pp, block, fromNewView) = slot.pending else { return false }
        guard let parent = parentView(h) else { return false }
        slot.pending = nil
        do throws(BlockRejection) {
            guard block.header.proposer == pp.signer || fromNewView else {
                throw .wrongProposer(expected: pp.signer, got: block.header.proposer)
            }
            guard block.header.timestampMs <= now &+ config.clockDriftMaxMs || fromNewView else {
                throw .timeTooFarAhead(blockMs: block.header.timestampMs, nowMs: now)
            }
            guard fromNewView || block.header.view == view else { throw .wrongProposer(expected: pp.signer, got: block.header.proposer) }
            let exec = try Execution.execute(block, parent: parent, verified: verified, crypto: config.crypto, scratch: &scratch)
            counters.eventSignaturesVerified += exec.signaturesVerified
            for id in exec.ids { rememberVerified(id) }
            slot.block = block
            slot.prePrepare = pp
            slot.exec = exec
            slot.view = view
            slots[h] = slot
        } catch {
            slots[h] = slot
            out.notes.append(.rejectedProposal(Height(h), error))
            return true
        }
        // Personalities judge fresh proposals only: a block re-proposed in a new view
        // may already be committed somewhere and is always prepared.
        var accept = true
        if !fromNewView, let exec = slot.exec, myKey?.publicKey != pp.signer {
            let system = exec.envelopes.allSatisfy { $0.kind == .opinion || $0.kind == .evidence }
            if !system {
                let j = config.personality.judge(Proposal(block: block, view: view, events: exec.envelopes, parent: parent.state,
                                                          judge: ValidatorID(config.operatorKey.publicKey), refusedBefore: refusedHeights.contains(h)))
                accept = j.accept
                if !j.accept {
                    refusedHeights.insert(h)
                    out.notes.append(.refusedProposal(Height(h), view: view, reason: j.reason))
                }
                if config.recordOpinions, currentSet.contains(myKey?.publicKey ?? .zero) {
                    authorEvent(.opinion(Opinion(height: Height(h), view: view, blockHash: block.hash, verdict: j.accept ? .accept : .refuse,
                                                 reason: String(j.reason.utf8.prefix(Limits.reasonBytesMax)) ?? "")), &out)
                }
            }
        }
        // Recording a refusal may have ended the view (more than a third refused).
        guard slots[h] != nil, !changing else { return true }
        slots[h]!.refused = !accept
        if accept, let key = myKey, key.publicKey != pp.signer,
           let s = signVote(.prepare(view: view, height: Height(h), blockHash: block.hash), key: key, &out) {
            slots[h]!.sentPrepare = true
            addVote(s, to: h)
            send(.vote(s))
        }
        return true
    }

    func parentView(_ h: UInt64) -> ParentView? {
        guard set(for: h) != nil, Self.epochOf(h, interval) == epoch else { return nil }
        if h == state.height.value + 1 { return ParentView(state: state, stateRoot: stateRoot, hash: lastHash) }
        guard let p = slots[h - 1], p.view == view, let b = p.block, let e = p.exec, !p.executed else { return nil }
        return ParentView(state: e.state, stateRoot: e.stateRoot, hash: b.hash)
    }

    mutating func addVote(_ s: SignedConsensusMessage, to h: UInt64) {
        guard var slot = slots[h] else { return }
        let cap = 4 * currentSet.count + 4
        switch s.message {
        case .prepare:
            if config.bugs.contains(.quorumByMessages) { if slot.prepares.count < cap { slot.prepares.append(s) } }
            else if !slot.prepares.contains(where: { $0.signer == s.signer }) { slot.prepares.append(s) }
        case .commit:
            if config.bugs.contains(.quorumByMessages) { if slot.commits.count < cap { slot.commits.append(s) } }
            else if !slot.commits.contains(where: { $0.signer == s.signer }) { slot.commits.append(s) }
        default: break
        }
        slots[h] = slot
    }

    mutating func onVote(_ from: PublicKey, _ s: SignedConsensusMessage, _ out: inout Output) {
        let h = s.message.height.value
        if case let .checkpoint(height, hash, root) = s.message {
            guard let set = checkpointSet(h), set.contains(s.signer) else {
                if checkpointSet(h) == nil, h > state.height.value { claim(s.signer, h) }
                return
            }
            guard sigs.verify(s, chain) else { out.notes.append(.peerFault(from, .forgedConsensusMessage)); return }
            remember(s, &out)
            claim(s.signer, h)
            guard h > stable.height.value else { return }
            checkpointVotes[h, default: [:]][s.signer] = s
            tryStable(height, hash, root, &out)
            return
        }
        guard let set = set(for: h), set.contains(s.signer) else {
            if set(for: h) == nil, h > state.height.value { claim(s.signer, h &- 1) }
            else { out.notes.append(.rejectedMessage("vote for h\(h) from \(s.signer.short): not a member")) }
            return
        }
        guard sigs.verify(s, chain) else { out.notes.append(.peerFault(from, .forgedConsensusMessage)); return }
        remember(s, &out)
        if case .commit = s.message { claim(s.signer, h) }
        let v: View
        switch s.message {
        case let .prepare(vv, _, _), let .commit(vv, _, _): v = vv
        default: return
        }
        if v > view, v > (viewSeen[s.signer] ?? 0) {
            viewSeen[s.signer] = v
            catchUpOnViews(&out)
        }
        guard v == view, !changing, inWindow(h) else { return }
        if slots[h] == nil { slots[h] = Slot(view: view) }
        addVote(s, to: h)
    }

    /// Moves every slot as far as it can go, in height order: validate, prepare,
    /// commit, execute.
    mutating func advance(_ out: inout Output) {
        var progressed = true
        while progressed {
            progressed = false
            var h = state.height.value + 1
            while h <= stable.height.value + window, slots[h] != nil {
                if slots[h]?.pending != nil, validatePending(h, &out) { progressed = true }
                if stepPrepared(h, &out) { progressed = true }
                if let s = slots[h], s.prepared, !s.committed, hasCommitQuorum(h) { slots[h]!.advance(to: .committed); progressed = true }
                h += 1
            }
            while let s = slots[state.height.value + 1], s.committed, s.exec != nil, !s.executed {
                execute(state.height.value + 1, &out)
                progressed = true
            }
        }
    }

    func matching(_ votes: [SignedConsensusMessage], _ slot: Slot) -> [SignedConsensusMessage] {
        guard let b = slot.block else { return [] }
        return votes.filter {
            switch $0.message {
            case let .prepare(v, _, hash), let .commit(v, _, hash): v == slot.view && hash == b.hash
            default: false
            }
        }
    }

    mutating func stepPrepared(_ h: UInt64, _ out: inout Output) -> Bool {
        guard let slot = slots[h], !slot.prepared, let pp = slot.prePrepare, let b = slot.block, slot.view == view else { return false }
        let below = h == state.height.value + 1 || (slots[h - 1]?.prepared == true && slots[h - 1]?.view == view)
        guard below else { return false }
        let prepares = matching(slot.prepares, slot)
        guard quorum([pp.signer] + prepares.map(\.signer), currentSet) else { return false }
        slots[h]!.advance(to: .prepared)
        let cert = PreparedCertificate(view: view, height: Height(h), blockHash: b.hash,
                                       prePrepare: Vote(key: pp.signer, signature: pp.signature),
                                       prepares: prepares.map { Vote(key: $0.signer, signature: $0.signature) })
        persist(.prepared(cert, b), &out)
        if let key = myKey, let c = signVote(.commit(view: view, height: Height(h), blockHash: b.hash), key: key, &out) {
            addVote(c, to: h)
            send(.vote(c))
        }
        return true
    }

    func hasCommitQuorum(_ h: UInt64) -> Bool {
        guard let slot = slots[h] else { return false }
        return quorum(matching(slot.commits, slot).map(\.signer), currentSet)
    }

    mutating func execute(_ h: UInt64, _ out: inout Output) {
        let slot = slots[h]!
        let b = slot.block!, exec = slot.exec!
        var votes: [Vote] = []
        var signers = Set<PublicKey>()
        for c in matching(slot.commits, slot) where config.bugs.contains(.quorumByMessages) || signers.insert(c.signer).inserted {
            votes.append(Vote(key: c.signer, signature: c.signature))
        }
        let cert = CommitCertificate(height: Height(h), view: slot.view, blockHash: b.hash, votes: votes)
        assert(!config.bugs.isEmpty || quorum(votes.map(\.key), currentSet), "executing h\(h) without a commit quorum")
        slots[h]!.advance(to: .executed)
        applyExecuted(b, exec, cert, viaTransfer: false, &out)
    }

    mutating func applyExecuted(_ b: ProposedBlock, _ exec: ExecutedBlock, _ cert: CommitCertificate, viaTransfer: Bool, _ out: inout Output) {
        let h = b.height.value
        assert(h == state.height.value + 1 && b.header.parentHash == lastHash, "blocks execute in height order on their parent")
        state = exec.state
        stateRoot = exec.stateRoot
        lastHash = b.hash
        assert(state.height.value == h && stateRoot == exec.stateRoot, "the executed height advanced by exactly this block")
        executedHashes[h] = b.hash
        out.commits.append(CommittedBlock(certified: CertifiedBlock(block: b, certificate: cert), state: exec.state, stateRoot: exec.stateRoot,
                                          ids: exec.ids, envelopes: exec.envelopes, viaStateTransfer: viaTransfer))
        dropFromMempool(exec.ids)
        dropStale(authors: exec.envelopes.lazy.map(\.author))
        lastProgressAt = now
        workSince = nil
        failedViews = 0
        refusals[h] = nil
        if !refusedHeights.isEmpty { refusedHeights = refusedHeights.filter { $0 > h } }
        refreshSet()
        if h % interval == 0 {
            checkpointRoots[h] = exec.stateRoot
            if let key = myKey,
               let s = signVote(.checkpoint(height: b.height, blockHash: b.hash, stateRoot: exec.stateRoot), key: key, &out) {
                checkpointVotes[h, default: [:]][s.signer] = s
                send(.vote(s))
                tryStable(b.height, b.hash, exec.stateRoot, &out)
            }
        }
    }

    // MARK: - Checkpoints

    mutating func tryStable(_ height: Height, _ hash: Hash32, _ root: Hash32, _ out: inout Output) {
        let h = height.value
        guard h > stable.height.value, h <= state.height.value, let set = checkpointSet(h), let votes = checkpointVotes[h] else { return }
        let agreeing = votes.values.filter { $0.message == .checkpoint(height: height, blockHash: hash, stateRoot: root) }
        guard quorum(agreeing.map(\.signer), set) else { return }
        // After a restart the root of an older checkpoint height may be unknown here; the
        // same block on the same parent can only give the same root (execution is pure).
        guard executedHashes[h] == hash, checkpointRoots[h] == root || (checkpointRoots[h] == nil && h < state.height.value) else {
            out.notes.append(.divergence("a quorum checkpointed height \(h) with a block or state root this replica does not have"))
            return
        }
        let cert = CheckpointCertificate(height: height, blockHash: hash, stateRoot: root,
                                         votes: agreeing.sorted { $0.signer < $1.signer }.map { Vote(key: $0.signer, signature: $0.signature) })
        let before = stable.height
        assert(!config.bugs.isEmpty || quorum(cert.votes.map(\.key), set), "a stable checkpoint without a quorum at h\(h)")
        stable = cert
        assert(stable.height > before && stable.height <= state.height, "the stable checkpoint only moves up, never past execution")
        persist(.stable(cert), &out)
        collectGarbage()
    }

    /// Everything at or below the stable checkpoint is settled: drop it.
    mutating func collectGarbage() {
        let h = stable.height.value
        slots = slots.filter { $0.key > h }
        checkpointVotes = checkpointVotes.filter { $0.key > h }
        checkpointRoots = checkpointRoots.filter { $0.key >= h }
        executedHashes = executedHashes.filter { $0.key >= h }
        seen = seen.filter { $0.key.height > h }
        reported = reported.filter { $0.height > h }
        refusals = refusals.filter { $0.key > h }
    }
}
