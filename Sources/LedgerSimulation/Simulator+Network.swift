import LedgerAgents
import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerProjections

/// Stepping a replica, carrying out its output, and the simulated network between replicas.
extension Simulation {
    // MARK: - Stepping a replica and carrying out its output

    func step(_ n: SimNode, _ input: Input) {
        guard var r = n.replica else { return }
        // Move the replica out while it steps, so its collections stay uniquely referenced
        // (a second reference would make every mutation copy them).
        n.replica = nil
        let out = r.step(input)
        n.replica = r
        if options.verbose, !out.notes.isEmpty { print("t=\(now) r\(n.index) status \(r.status)") }
        carryOut(n, out)
    }

    func carryOut(_ n: SimNode, _ out: Output) {
        if options.verbose {
            for note in out.notes { print("t=\(now) r\(n.index) \(note.summary)") }
            for c in out.commits { print("t=\(now) r\(n.index) commit \(c.certified.block.height) \(c.certified.block.hash.short) view \(c.certified.certificate.view)") }
            for o in out.send { print("t=\(now) r\(n.index) send \(o.to) \(o.message.summary(Sodium()))") }
        }
        for note in out.notes {
            switch note {
            case .startedViewChange: viewChanges += 1
            case .fetching: transfers += 1
            case let .divergence(s): if n.honest { violation("r\(n.index) divergence: \(s)") }
            case let .peerFault(k, fault):
                // A conviction is proof: honest traffic must never produce one.
                if let accused = keyOwner[k] {
                    if nodes[accused].honest { violation("r\(n.index) convicted honest r\(accused): \(fault)") }
                    else { convictions[fault, default: 0] += 1 }
                }
            default: break
            }
        }
        for c in out.commits { checkCommit(n, c) }
        if let token = out.persistToken {
            let delay = n.slow && faultsOn ? rng.range(5, 30) : rng.range(0, 3)
            let at = max(now + delay, n.lastDiskAt)
            n.lastDiskAt = at
            agenda.push(at, .persisted(n.index, incarnation: n.incarnation, token: token, records: out.persist, commits: out.commits))
        }
        for o in out.send {
            if n.honest { checkSentVote(n, o.message); checkNewView(n, o.message) }
            route(n, o)
        }
        for s in out.serve {
            guard let to = keyOwner[s.to] else { continue }
            let lo = Int(s.from.value) - 1
            guard lo >= 0, lo < n.chain.count else { continue }
            var blocks = Array(n.chain[lo ..< min(n.chain.count, lo + s.count)])
            if n.byzantine.contains(.lieInTransfer) { blocks = blocks.map(forgeCertificate) }
            if n.byzantine.contains(.withhold) { continue }
            transmit(n.index, to, .blocks(blocks))
        }
    }

    // MARK: - Network

    func route(_ n: SimNode, _ o: Outgoing) {
        let targets: [Int]
        switch o.to {
        case .all: targets = nodes.indices.filter { $0 != n.index }
        case let .peer(k): targets = keyOwner[k].map { [$0] } ?? []
        }
        if n.honest {
            for t in targets { transmit(n.index, t, o.message) }
            return
        }
        faults.insert(.byzantine)
        for t in targets { for m in corrupt(n, o.message, to: t) { transmit(n.index, t, m) } }
    }

    func transmit(_ from: Int, _ to: Int, _ m: PeerMessage) {
        messages += 1
        if faultsOn {
            if isolated.contains(from) || isolated.contains(to) { return }
            if losingInput.contains(to), rng.chance(0.2) { return }
            if let p = partition, p.contains(from) != p.contains(to) { return }
            if cutLinks.contains([min(from, to), max(from, to)]) { return }
            if scenario.lossRate > 0, rng.chance(scenario.lossRate) { faults.insert(.loss); return }
        }
        var delay = scenario.delayMaxMs == 0 ? 0 : rng.range(1, scenario.delayMaxMs)
        if faultsOn, nodes[to].slow || nodes[from].slow { delay += rng.range(10, 60); faults.insert(.slowReplica) }
        if delay > 1 { faults.insert(.delay) }
        if scenario.delayMaxMs >= 10 { faults.insert(.reordering) }
        agenda.push(now + delay, .deliver(from: from, to: to, m))
        if faultsOn, scenario.duplicateRate > 0, rng.chance(scenario.duplicateRate) {
            faults.insert(.duplication)
            agenda.push(now + delay + rng.range(0, 20), .deliver(from: from, to: to, m))
        }
    }
}
