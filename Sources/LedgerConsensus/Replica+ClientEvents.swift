import LedgerCore
import LedgerProjections

/// Client events, relayed events and the mempool; the replica's own opinion events.
extension Replica {
    // MARK: - Client events and the mempool

    /// `relayed`: the event came from a peer (not from a client through the driver);
    /// then an event no honest replica forwards is returned as the peer's fault, not noted.
    @discardableResult
    mutating func admit(_ bytes: [UInt8], forward: Bool, signatureChecked: Bool = false, relayed: Bool = false, _ out: inout Output) -> PeerFault? {
        func refuse(_ fault: PeerFault, _ why: String) -> PeerFault? {
            if relayed { return fault }
            out.notes.append(.rejectedMessage(why))
            return nil
        }
        let e: Envelope
        do { e = try Envelope(bytes: bytes) } catch {
            switch error {
            // A kind or an envelope version this binary does not know can be a newer
            // binary's, passed on in a rolling upgrade: refused, held against nobody.
            case .unknownKind, .unsupportedVersion:
                out.notes.append(.rejectedMessage("client event of a kind or version this binary does not know: \(error)"))
                return nil
            default: return refuse(.malformedEvent, "malformed client event: \(error)")
            }
        }
        guard e.chainID == chain else { return refuse(.wrongChainEvent, "client event for another chain") }
        let id = Envelope.id(bytes, config.crypto)
        guard mempool[id] == nil else { return nil }
        guard let acct = state.accounts[e.author], e.nonce > acct.nonce else {
            // The driver admitted it against a head this replica has already passed (or
            // a client resubmitted it): it can never commit, and its submitter must hear
            // so now rather than when the driver's sweep forgets it.
            if !relayed {
                let why: ApplyError = state.accounts[e.author].map { .staleNonce(expected: $0.nonce + 1, got: e.nonce) } ?? .unknownAuthor(e.author)
                dropped.append(.droppedEvent(id, why))
            }
            return nil
        }
        // Bounded per author, as admission bounds it: nonces at most `authorAheadMax`
        // ahead, and a few events per nonce (fee replacements). Beyond that the event is
        // not kept; its relayer is not convicted, since it may be ahead of this replica.
        guard e.nonce - acct.nonce <= config.authorAheadMax,
              (mempool.byAuthor[e.author]?[e.nonce]?.count ?? 0) < Mempool.perNonceMax else {
            out.notes.append(.rejectedMessage("event \(id.short) is beyond its author's bound in the mempool"))
            return nil
        }
        guard mempool.count < Limits.mempoolEventsMax else { out.notes.append(.rejectedMessage("mempool full")); return nil }
        if signatureChecked { rememberVerified(id) }
        if !verified.contains(id) {
            counters.eventSignaturesVerified += 1
            guard e.verifySignature(config.crypto, scratch: &scratch) else { return refuse(.forgedEvent, "client event with a bad signature") }
            rememberVerified(id)
        }
        mempool.insert(e, id: id, at: now)
        if oldestPendingAt == nil { oldestPendingAt = now }
        // One that can go into a block ends a pause after a build that found nothing:
        // otherwise a mempool full of future nonces would hold it back a batch delay.
        if e.nonce <= mempool.chainEnd(e.author, after: acct.nonce) {
            chainableSinceBuild += 1
            timers.buildIdle.clear()
        }
        if forward { send(.request(bytes)) }
        noteOpinion(e, &out)
        return nil
    }

    /// Events a peer relayed. A message that convicts its relayer is read no further:
    /// one charge per message, and a liar cannot make this replica verify thousands of
    /// forgeries with one message (the events before the lie are kept).
    mutating func admitRelayed(_ events: some Sequence<[UInt8]>, from: PublicKey, _ out: inout Output) {
        for bytes in events {
            guard let fault = admit(bytes, forward: false, relayed: true, &out) else { continue }
            out.notes.append(.peerFault(from, fault))
            return
        }
    }

    mutating func rememberVerified(_ id: EventID) {
        if verified.count >= 4 * Limits.mempoolEventsMax { verified.removeAll(keepingCapacity: true) }
        verified.insert(id)
    }

    mutating func dropFromMempool(_ ids: some Sequence<EventID>) {
        mempool.remove(ids)
        if mempool.isEmpty { oldestPendingAt = nil }
    }


    /// Authors an event with the operator key (opinions, evidence) and treats it like a client's.
    mutating func authorEvent(_ p: Payload, _ out: inout Output) {
        let nonce = max(nextOwnNonce, (state.accounts[config.operatorKey.publicKey]?.nonce ?? 0) + 1)
        nextOwnNonce = nonce + 1
        // Rule version 1 has a flat minimum fee. Under version 2 the event offers twice the
        // current minimum: the base fee may rise before the event is in a block.
        let fee = state.requiredFee(for: p)
        let offer = state.economy.ruleVersion >= RuleVersion.economy && fee <= UInt64.max / 2 ? fee * 2 : fee
        let e = Envelope.signed(chain: state.chainID, signer: config.operatorKey, nonce: nonce, fee: offer, payload: p)
        admit(e.bytes, forward: true, &out)
    }

    /// A refusal opinion from more than a third of the power against the current
    /// proposal at a height ends the view: the next primary tries.
    mutating func noteOpinion(_ e: Envelope, _ out: inout Output) {
        guard e.kind == .opinion, case let .opinion(o)? = try? e.decodePayload(), o.verdict == .refuse,
              o.view == view, !changing, let slot = slots[o.height.value], slot.block?.hash == o.blockHash,
              let v = state.validators[ValidatorID(e.author)], currentSet.contains(v.consensusKey) else { return }
        var r = refusals[o.height.value] ?? (view, o.blockHash, [])
        if r.view != view || r.hash != o.blockHash { r = (view, o.blockHash, []) }
        r.by.insert(ValidatorID(e.author))
        refusals[o.height.value] = r
        let keys = r.by.compactMap { state.validators[$0]?.consensusKey }
        if currentSet.isWeakQuorum(keys) { startViewChange(view.next, &out) }
    }
}
