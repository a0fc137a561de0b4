import LedgerAgents
import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerProjections

/// What the simulation does to replicas and clients: Byzantine corruption of honest
/// output, and the clients' events (valid, garbage, key rotations).
extension Simulation {
    // MARK: - Byzantine behaviour (the honest code runs; its output is corrupted here)

    func corrupt(_ n: SimNode, _ m: PeerMessage, to: Int) -> [PeerMessage] {
        let kinds = n.byzantine
        if kinds.contains(.withhold) { return [] }
        var out: [PeerMessage] = [m]
        let key = n.config.keys.first { n.replica.map { r in r.primary(of: r.view) } == $0.publicKey } ?? n.config.keys[0]
        let chainRaw = chain.raw
        if kinds.contains(.equivocate), case let .prePrepare(pp, block) = m, case let .prePrepare(v, h, _) = pp.message {
            var hd = block.header
            hd.timestampMs += 1 + UInt64(to % 2)
            let alt = ProposedBlock(header: hd, events: block.events, Sodium())
            let altPP = SignedConsensusMessage.sign(.prePrepare(view: v, height: h, blockHash: alt.hash), chain: chainRaw, signer: key)
            if to % 2 == 1 { out = [.prePrepare(altPP, alt)] }
            if rng.chance(0.3) { out.append(.prePrepare(altPP, alt)) }
        }
        if kinds.contains(.doubleVote), case let .vote(s) = m {
            let k = n.config.keys.first { $0.publicKey == s.signer } ?? n.config.keys[0]
            switch s.message {
            case let .prepare(v, h, _): out.append(.vote(.sign(.prepare(view: v, height: h, blockHash: Blake2b.hash([UInt8(to), 1])), chain: chainRaw, signer: k)))
            case let .commit(v, h, _): out.append(.vote(.sign(.commit(view: v, height: h, blockHash: Blake2b.hash([UInt8(to), 2])), chain: chainRaw, signer: k)))
            default: break
            }
        }
        if kinds.contains(.forge), case let .vote(s) = m {
            let victim = nodes[(n.index + 1 + to) % nodes.count].config.keys[0].publicKey
            out.append(.vote(SignedConsensusMessage(message: s.message, signer: victim, signature: Blake2b.hash([UInt8(to)]).append64())))
        }
        if kinds.contains(.mutate) {
            out = out.map { x in
                guard case let .vote(s) = x else {
                    if case let .prePrepare(pp, b) = x, !b.events.isEmpty {
                        var ev = b.events
                        ev[0][ev[0].count / 2] ^= 0x40
                        return .prePrepare(pp, ProposedBlock(header: b.header, events: ev, Sodium()))
                    }
                    return x
                }
                let mutated: ConsensusMessage
                switch s.message {
                case let .prepare(v, h, hash): mutated = .prepare(view: v.next, height: h, blockHash: hash)
                case let .commit(v, h, hash): mutated = .commit(view: v, height: h.next, blockHash: hash)
                case let .checkpoint(h, hash, _): mutated = .checkpoint(height: h, blockHash: hash, stateRoot: Blake2b.hash([1]))
                case let .prePrepare(v, h, _): mutated = .prePrepare(view: v, height: h, blockHash: Blake2b.hash([2]))
                }
                return .vote(SignedConsensusMessage(message: mutated, signer: s.signer, signature: s.signature))
            }
        }
        if kinds.contains(.replayStale), !n.received.isEmpty, rng.chance(0.2) {
            out.append(n.received[rng.below(n.received.count)])
        }
        return out
    }

    func forgeCertificate(_ b: CertifiedBlock) -> CertifiedBlock {
        var c = b.certificate
        if !c.votes.isEmpty { c.votes[0].signature = Blake2b.hash(c.votes[0].signature.hi.bytes).append64() }
        return CertifiedBlock(block: b.block, certificate: c)
    }

    func pushLies(_ i: Int) {
        let n = nodes[i]
        guard n.replica != nil, !n.chain.isEmpty else { return }
        faults.insert(.byzantine)
        let lies = n.chain.suffix(2).map(forgeCertificate)
        for t in nodes.indices where t != i { transmit(i, t, .blocks(lies)) }
    }

    // MARK: - Clients

    func sendClient(_ bytes: [UInt8]) {
        // A client gets no answer from a stopped process: it tries another node.
        let live = nodes.indices.filter { nodes[$0].replica != nil && (pausedUntil[$0] ?? 0) <= now }
        guard !live.isEmpty else { return }
        let i = live[rng.below(live.count)]
        step(nodes[i], .request(bytes))
    }

    func submitClientEvent(_ k: Int) {
        clientNonce[k] += 1
        let to = clientKeys[(k + 1 + rng.below(clientKeys.count - 1)) % clientKeys.count].publicKey
        let e = EventCrypto.makeEvent(chain: chain, key: clientKeys[k], nonce: clientNonce[k], fee: 1,
                                      payload: .transfer(to: to, amount: 1 + rng.below(UInt64(1_000)), memo: "sim"))
        let id = EventCrypto.id(e.bytes)
        submitted += 1
        submittedIDs.insert(id)
        clientPending[k].append((id, e.bytes, now))
        sendClient(e.bytes)
    }

    func submitGarbage() {
        let k = rng.below(clientKeys.count)
        var bytes = EventCrypto.makeEvent(chain: chain, key: clientKeys[k], nonce: 1_000_000, fee: 1,
                                          payload: .transfer(to: clientKeys[0].publicKey, amount: 1, memo: "forged")).bytes
        switch rng.below(3) {
        case 0: bytes[bytes.count - 5] ^= 0x01  // forged signature
        case 1: bytes.removeLast(7)  // truncated
        default: bytes = Array(repeating: 0xFF, count: Limits.eventBytesMax + 1)  // oversized
        }
        sendClient(bytes)
    }

    func submitRotation(_ i: Int) {
        let n = nodes[i]
        guard n.config.keys.count == 2 else { return }
        guard n.replica != nil else { agenda.push(now + 100, .rotate(i)); return }
        faults.insert(.keyRotation)
        step(n, .rotateKey(new: n.config.keys[1].publicKey))
    }
}
