import LedgerCore

/// The events a node admitted and has not yet seen commit or drop, with the per-author
/// bounds that keep one key from freezing admission (issue 16; Ethereum's transaction
/// pools are the model: per-account slots, a cumulative balance check, replacement by a
/// higher fee, eviction of the least useful event under pressure).
///
/// - An author holds at most `perAuthorMax` events, one per nonce. A second event for a
///   nonce replaces the first only if it pays at least `replacementBumpPercent` more.
/// - Everything an author has pending costs (fee + amount, added with overflow checks)
///   no more than its balance: events that can never all pay are refused now.
/// - When the pool is full, an author's next-nonce event (the one that can go into the
///   next block) still gets in: the highest-nonce event of the author holding the most
///   is evicted. Any other event is refused (`mempool_full`).
///
/// Pure bookkeeping: no clock (times are passed in), no lock (the driver holds one).
public struct AdmissionPool: Sendable {
    public struct Entry: Sendable, Equatable {
        public var at: UInt64
        public var author: PublicKey
        public var nonce: UInt64
        public var fee: UInt64
        public var cost: UInt64
    }

    public enum Outcome: Sendable, Equatable {
        /// In the pool now; `replaced` left it for this one, `evicted` to make room.
        case added(replaced: EventID?, evicted: EventID?)
        /// The same event was already pending.
        case alreadyPending
        case refused(code: String, why: String)
    }

    public let capacity: Int
    public let perAuthorMax: Int
    public static let replacementBumpPercent: UInt64 = 10

    public private(set) var entries: [EventID: Entry] = [:]
    private var byAuthor: [PublicKey: [UInt64: EventID]] = [:]
    private var authorCost: [PublicKey: UInt64] = [:]

    public init(capacity: Int, perAuthorMax: Int) {
        self.capacity = capacity
        self.perAuthorMax = perAuthorMax
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public subscript(id: EventID) -> Entry? { entries[id] }
    public func pendingCount(of author: PublicKey) -> Int { byAuthor[author]?.count ?? 0 }
    public func pendingCost(of author: PublicKey) -> UInt64 { authorCost[author] ?? 0 }

    /// The smallest fee that replaces a pending event paying `fee`.
    public static func replacementFee(for fee: UInt64) -> UInt64 {
        let (bumped, over) = fee.addingReportingOverflow(max(1, fee / 100 * replacementBumpPercent))
        return over ? .max : bumped
    }

    /// Admits an event whose author's committed nonce is `committedNonce` and whose
    /// balance (plus anything else it may spend) is `available`.
    public mutating func admit(_ id: EventID, author: PublicKey, nonce: UInt64, fee: UInt64, cost: UInt64,
                               committedNonce: UInt64, available: UInt64, now: UInt64) -> Outcome {
        if entries[id] != nil { return .alreadyPending }
        let mine = byAuthor[author] ?? [:]
        var replaced: EventID?
        var held = authorCost[author] ?? 0
        if let old = mine[nonce], let o = entries[old] {
            let need = Self.replacementFee(for: o.fee)
            guard fee >= need else {
                return .refused(code: "nonce_pending", why: "an event with nonce \(nonce) is pending; a replacement must pay a fee of at least \(need)")
            }
            replaced = old
            held -= o.cost
        } else if mine.count >= perAuthorMax {
            return .refused(code: "author_limit", why: "author has \(mine.count) events pending, the most one author may hold")
        }
        let (total, over) = held.addingReportingOverflow(cost)
        guard !over, total <= available else {
            return .refused(code: "insufficient_balance",
                            why: "balance \(available) does not cover this event (\(cost)) with the \(mine.count - (replaced == nil ? 0 : 1)) pending before it (\(held))")
        }
        var evicted: EventID?
        if replaced == nil, entries.count >= capacity {
            // Only an event that can go into the next block pushes another out.
            guard nonce == committedNonce &+ 1, let victim = evictionCandidate(sparing: author) else {
                return .refused(code: "mempool_full", why: "the mempool holds \(entries.count) events")
            }
            evicted = victim
            remove(victim)
        }
        if let replaced { remove(replaced) }
        entries[id] = Entry(at: now, author: author, nonce: nonce, fee: fee, cost: cost)
        byAuthor[author, default: [:]][nonce] = id
        authorCost[author, default: 0] += cost
        return .added(replaced: replaced, evicted: evicted)
    }

    /// The least useful event: the highest nonce of the author holding the most events
    /// (ties: the lower fee, then the smaller key, so every node picks alike). The author
    /// of the incoming next-nonce event is passed over while it holds no more than others.
    func evictionCandidate(sparing author: PublicKey) -> EventID? {
        var best: (count: Int, key: PublicKey)?
        for (k, m) in byAuthor where !m.isEmpty {
            if let b = best, m.count < b.count || (m.count == b.count && !(k < b.key)) { continue }
            best = (m.count, k)
        }
        guard let b = best else { return nil }
        if b.key == author, let own = byAuthor[author], own.count <= 1 { return nil }
        guard let m = byAuthor[b.key], let top = m.keys.max() else { return nil }
        return m[top]
    }

    /// Forgets an event (committed, dropped, evicted or expired); its entry, if it was pending.
    @discardableResult
    public mutating func remove(_ id: EventID) -> Entry? {
        guard let e = entries.removeValue(forKey: id) else { return nil }
        if byAuthor[e.author]?[e.nonce] == id {
            byAuthor[e.author]![e.nonce] = nil
            if byAuthor[e.author]!.isEmpty { byAuthor[e.author] = nil }
        }
        let left = (authorCost[e.author] ?? 0) - min(authorCost[e.author] ?? 0, e.cost)
        authorCost[e.author] = left == 0 && byAuthor[e.author] == nil ? nil : left
        return e
    }

    /// The events admitted before `cutoff` (for the driver's sweep of entries the replica
    /// will never report on).
    public func admitted(before cutoff: UInt64) -> [EventID] {
        entries.filter { $0.value.at < cutoff }.map(\.key)
    }
}
