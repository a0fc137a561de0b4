import LedgerCore
import LedgerProjections

/// A replica's pending client events: by id, in arrival order, and by author and nonce.
/// It holds events and answers questions about them; what may enter (signatures, nonces,
/// the bound) and when events leave are the replica's rules (`Replica+ClientEvents`,
/// `Replica+Mempool`).
struct Mempool {
    private(set) var events: [EventID: Envelope] = [:]
    /// When each event arrived.
    private(set) var since: [EventID: UInt64] = [:]
    /// Arrival order, compacted lazily: it can list an id that left, or one that left and
    /// came back twice.
    private(set) var order: [EventID] = []
    /// By author and nonce: the view timer asks whether any author's next nonce is
    /// waiting, which the arrival order cannot answer cheaply.
    private(set) var byAuthor: [PublicKey: [UInt64: [EventID]]] = [:]
    /// Events that are not opinions (see `ReplicaConfig.opinionDelayMs`).
    private(set) var clientCount = 0

    /// Events one author may hold at one nonce (a pending one and its fee replacements).
    static let perNonceMax = 4

    var count: Int { events.count }
    var isEmpty: Bool { events.isEmpty }
    subscript(_ id: EventID) -> Envelope? { events[id] }

    /// A validator's opinion on a block: opinions wait for company (`opinionDelayMs`).
    static func isOpinion(_ e: Envelope) -> Bool { e.kind == .opinion }

    mutating func insert(_ e: Envelope, id: EventID, at now: UInt64) {
        assert(events[id] == nil, "an event enters the mempool once")
        events[id] = e
        since[id] = now
        order.append(id)
        byAuthor[e.author, default: [:]][e.nonce, default: []].append(id)
        if !Self.isOpinion(e) { clientCount += 1 }
    }

    /// Removes the events; true if any was here.
    @discardableResult
    mutating func remove(_ ids: some Sequence<EventID>) -> Bool {
        var any = false
        for id in ids {
            guard let e = events.removeValue(forKey: id) else { continue }
            since[id] = nil
            if var list = byAuthor[e.author]?[e.nonce] {
                list.removeAll { $0 == id }
                byAuthor[e.author]![e.nonce] = list.isEmpty ? nil : list
                if byAuthor[e.author]!.isEmpty { byAuthor[e.author] = nil }
            }
            any = true
            if !Self.isOpinion(e) { clientCount -= 1 }
        }
        if any, order.count > 2 * events.count + 64 { order.removeAll { events[$0] == nil } }
        if events.isEmpty { order.removeAll(keepingCapacity: true); byAuthor.removeAll() }
        assert(clientCount >= 0 && clientCount <= events.count, "the client count follows the events")
        return any
    }

    /// The highest nonce n such that this author's events with nonces `base + 1` … n are
    /// all here (`base` when the next one is missing).
    func chainEnd(_ author: PublicKey, after base: UInt64) -> UInt64 {
        guard let byNonce = byAuthor[author] else { return base }
        var n = base
        while byNonce[n + 1] != nil { n += 1 }
        return n
    }

    /// Calls `body` once for each event not in `inFlight` that a block on `accounts` can
    /// take, in arrival order, until `body` returns false: an author's nonces from its
    /// next one up while they follow each other here, and (with `stale`) those at or
    /// below its nonce, which a build drops. An event behind a missing nonce could only
    /// wait aside: 2,800 future nonces from a flood, each tried against the state on
    /// every build, cut honest throughput to 29%.
    func forEachChainable(on accounts: TrackedMap<PublicKey, Account>, inFlight: Set<EventID>, stale: Bool,
                          _ body: (EventID, Envelope) -> Bool) {
        var listed = Set<EventID>()
        var runEnd: [PublicKey: UInt64] = [:]
        for id in order {
            guard let e = events[id], !inFlight.contains(id) else { continue }
            let base = accounts[e.author]?.nonce ?? 0
            let end = runEnd[e.author] ?? chainEnd(e.author, after: base)
            runEnd[e.author] = end
            guard e.nonce <= end, stale || e.nonce > base, listed.insert(id).inserted else { continue }
            if !body(id, e) { return }
        }
    }
}
