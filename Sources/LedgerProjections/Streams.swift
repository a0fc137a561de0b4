import LedgerCore
import LedgerTree

/// How many events a stream holds and a hash chain over their ids, in log order
/// (schemas/FORMAT.md §7.3): a client given a stream's events up to a proven height
/// recomputes both and so knows it got every one, in order, none left out.
///
///     h_0 = 32 zero bytes
///     h_n = BLAKE2b-256("CHAOSLEDGER/STREAM\0" | h_{n-1} | id_n)
public struct StreamHead: Sendable, Hashable {
    public var count: UInt64
    public var head: Hash32

    public static let empty = StreamHead(count: 0, head: .zero)

    public init(count: UInt64, head: Hash32) { self.count = count; self.head = head }

    static let domain = Array("CHAOSLEDGER/STREAM\0".utf8)

    /// The head after one more event.
    public func appending(_ id: EventID, _ rules: TreeRules) -> StreamHead {
        StreamHead(count: count + 1, head: rules.pair(Self.domain, head, id.raw))
    }

    public mutating func append(_ id: EventID, _ rules: TreeRules) { self = appending(id, rules) }

    /// The 73-byte entry of stream `k` with this head: its leaf value.
    public func entry(_ k: StreamKey) -> [UInt8] { encode { Entry.stream(&$0, k, self) } }

    /// Reads one 73-byte stream entry (§7.3).
    public static func decodeEntry(_ r: inout ByteReader) throws(DecodeError) -> (StreamKey, StreamHead) {
        let tag = try r.u8("stream.tag")
        guard let k = StreamKey(tag: tag, id: try r.b32("stream.id")) else {
            throw .invalidValue(field: "stream.tag", reason: "no stream kind \(tag)")
        }
        return (k, StreamHead(count: try r.u64("stream.count"), head: try r.b32("stream.head")))
    }

    /// The head of a stream of exactly these events.
    public static func of(_ ids: some Sequence<EventID>, _ h: any Hashing) -> StreamHead {
        let rules = TreeRules(h)
        return ids.reduce(.empty) { $0.appending($1, rules) }
    }
}

extension StreamKey: Comparable {
    /// By tag, then id: the order of the snapshot's streams section.
    public static func < (a: StreamKey, b: StreamKey) -> Bool { a.tag != b.tag ? a.tag < b.tag : a.id < b.id }
}

extension Entry {
    /// 73 bytes: u8 tag | b32 id | u64 count | b32 head.
    static func stream(_ w: inout ByteWriter, _ k: StreamKey, _ h: StreamHead) {
        w.u8(k.tag); w.b32(k.id); w.u64(h.count); w.b32(h.head)
    }
}

extension LedgerState {
    /// Appends an applied event to each stream it belongs to (`Payload.streams`, the
    /// membership the log's stream index uses). Tree chains only: flat chains commit
    /// no streams, and their state and snapshots stay what they always were.
    mutating func recordStreams(_ payload: Payload, author: PublicKey, id: EventID) {
        guard commitment == .tree else { return }
        streams[.account(author), default: .empty].append(id, treeRules)
        if let k = payload.otherStream(author: author, id: id) { streams[k, default: .empty].append(id, treeRules) }
    }

    /// The head of one stream (empty when no event touched it).
    public func streamHead(_ k: StreamKey) -> StreamHead { streams[k] ?? .empty }

    func encodeStreams(_ w: inout ByteWriter) {
        w.u32(UInt32(streams.count))
        for k in streams.keys.sorted() { Entry.stream(&w, k, streams[k]!) }
    }

    static func decodeStreams(_ r: inout ByteReader, into s: inout LedgerState) throws(DecodeError) {
        var last: StreamKey?
        for _ in 0 ..< (try r.snapshotCount("snapshot.streams")) {
            let (k, h) = try StreamHead.decodeEntry(&r)
            if let l = last, !(l < k) { throw .invalidValue(field: "snapshot.streams", reason: "keys not strictly increasing") }
            last = k
            guard h.count > 0 else { throw .invalidValue(field: "stream.count", reason: "a stream in the state has at least one event") }
            s.streams[k] = h
        }
    }
}
