import LedgerCore

// One-line summaries of messages, durable records and notes: the simulator's traces
// and the golden scripts (Tests/golden) print these.

extension ConsensusMessage {
    /// One line for traces and test scripts.
    public var summary: String {
        switch self {
        case let .prePrepare(v, h, x): "prePrepare v\(v) h\(h) \(x.hex.prefix(6))"
        case let .prepare(v, h, x): "prepare v\(v) h\(h) \(x.hex.prefix(6))"
        case let .commit(v, h, x): "commit v\(v) h\(h) \(x.hex.prefix(6))"
        case let .checkpoint(h, x, root): "checkpoint h\(h) \(x.hex.prefix(6)) root \(root.hex.prefix(6))"
        }
    }
}

extension PeerMessage {
    /// One line for traces and test scripts (a request is named by its event id, hashed with `h`).
    public func summary(_ h: any Hashing) -> String {
        switch self {
        case let .prePrepare(pp, b): pp.message.summary + " events \(b.events.count)"
        case let .vote(v): v.message.summary
        case let .viewChange(vc, _): "viewChange v\(vc.view) stable h\(vc.stable.height) prepared [\(vc.prepared.map { "h\($0.height)@v\($0.view)" }.joined(separator: ","))]"
        case let .newView(nv, _): "newView v\(nv.view) from \(nv.viewChanges.count) view changes, re-proposes [\(nv.prePrepares.map { "h\($0.message.height)" }.joined(separator: ","))]"
        case let .fetch(h, c): "fetch from h\(h) count \(c)"
        case let .blocks(bs): "blocks [\(bs.map { "h\($0.block.height)" }.joined(separator: ","))]"
        case let .request(e): "request \(Envelope.id(e, h).hex.prefix(6))"
        case let .requests(es): "requests \(es.count)"
        }
    }
}

extension DurableRecord {
    /// One line for traces and test scripts.
    public var summary: String {
        switch self {
        case let .view(v, changing): "view \(v)\(changing ? " (changing)" : "")"
        case let .vote(m): "vote " + m.message.summary
        case let .prepared(c, _): "prepared h\(c.height) v\(c.view) \(c.blockHash.hex.prefix(6)) signers \(c.prepares.count + 1)"
        case let .viewChange(vc, _): "viewChange v\(vc.view)"
        case let .stable(c): "stable h\(c.height) signers \(c.votes.count)"
        case let .epochSet(e, m): "epochSet \(e) members \(m.count)"
        }
    }
}

extension Note {
    /// One line for traces and test scripts.
    public var summary: String {
        switch self {
        case let .enteredView(v): "entered view \(v)"
        case let .startedViewChange(v): "started view change to \(v)"
        case let .rejectedProposal(h, why): "rejected proposal h\(h): \(why)"
        case let .refusedProposal(h, v, why): "refused proposal h\(h) v\(v): \(why)"
        case let .rejectedMessage(why): "rejected message: \(why)"
        case let .equivocation(k): "equivocation by \(k.hex.prefix(6))"
        case let .fetching(h, _): "fetching from h\(h)"
        case let .divergence(s): "DIVERGENCE \(s)"
        case let .droppedEvent(id, why): "dropped \(id.hex.prefix(6)): \(why)"
        case let .peerFault(k, fault): "peer \(k.hex.prefix(6)) \(fault)"
        }
    }
}
