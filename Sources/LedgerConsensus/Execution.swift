import LedgerCore
import LedgerProjections

/// Why a proposed or transferred block was refused. A replica that receives one never
/// prepares it; the block is never applied.
public enum BlockRejection: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongChain
    case wrongHeight(expected: Height, got: Height)
    case wrongParent
    case wrongParentState
    case wrongProposer(expected: PublicKey, got: PublicKey)
    case eventCountMismatch(header: UInt32, carried: Int)
    case tooManyEvents(Int, max: Int)
    case tooManyBytes(Int, max: Int)
    case eventsRootMismatch
    case malformedEvent(index: Int, DecodeError)
    case badSignature(index: Int)
    case duplicateEvent(index: Int)
    case timeTooFarAhead(blockMs: UInt64, nowMs: UInt64)
    case block(BlockError)

    public var description: String {
        switch self {
        case .wrongChain: "block is for another chain"
        case let .wrongHeight(e, g): "block height \(g), expected \(e)"
        case .wrongParent: "parent hash is not the block before it"
        case .wrongParentState: "parent state root does not match"
        case let .wrongProposer(e, g): "proposer \(g.short) is not the primary \(e.short)"
        case let .eventCountMismatch(h, c): "header counts \(h) events, block carries \(c)"
        case let .tooManyEvents(n, m): "\(n) events, limit \(m)"
        case let .tooManyBytes(n, m): "\(n) bytes, limit \(m)"
        case .eventsRootMismatch: "events root does not match the events"
        case let .malformedEvent(i, d): "event \(i) is malformed: \(d)"
        case let .badSignature(i): "event \(i) has a bad signature"
        case let .duplicateEvent(i): "event \(i) appears twice"
        case let .timeTooFarAhead(b, n): "block time \(b) is too far ahead of local time \(n)"
        case let .block(e): e.description
        }
    }
}

/// A block checked against its parent state and applied to a copy of it.
public struct ExecutedBlock: Sendable {
    public var state: LedgerState
    public var stateRoot: Hash32
    public var ids: [EventID]
    public var envelopes: [Envelope]
    /// Event signatures this check verified (the others were already known).
    public var signaturesVerified: Int
}

/// The parent a block is checked against: the state after the block before it.
public struct ParentView: Sendable {
    public var state: LedgerState
    public var stateRoot: Hash32
    public var hash: Hash32
}

public enum Execution {
    /// Checks a block's structure, links, limits, events root and every event's
    /// signature (unless `verified` already holds its id), then applies it to a copy of
    /// the parent state. Pure: the same block and parent always give the same result.
    public static func execute(_ b: ProposedBlock, parent: ParentView, verified: Set<EventID>, crypto: any Primitives,
                               scratch: inout [UInt8]) throws(BlockRejection) -> ExecutedBlock {
        let h = b.header, p = parent.state
        guard h.chainID == p.chainID.raw else { throw .wrongChain }
        guard h.height == p.height.next else { throw .wrongHeight(expected: p.height.next, got: h.height) }
        guard h.parentHash == parent.hash else { throw .wrongParent }
        guard h.parentStateRoot == parent.stateRoot else { throw .wrongParentState }
        guard Int(h.eventCount) == b.events.count else { throw .eventCountMismatch(header: h.eventCount, carried: b.events.count) }
        guard b.events.count <= Int(p.parameters.blockEventsMax) else {
            throw .tooManyEvents(b.events.count, max: Int(p.parameters.blockEventsMax))
        }
        let bytes = b.events.reduce(0) { $0 + $1.count }
        guard bytes <= Int(p.parameters.blockBytesMax) else { throw .tooManyBytes(bytes, max: Int(p.parameters.blockBytesMax)) }
        var envs: [Envelope] = []
        var ids: [EventID] = []
        envs.reserveCapacity(b.events.count); ids.reserveCapacity(b.events.count)
        var seen = Set<EventID>()
        for (i, raw) in b.events.enumerated() {
            let e: Envelope
            do { e = try Envelope(bytes: raw) } catch { throw .malformedEvent(index: i, error) }
            let id = Envelope.id(raw, crypto)
            guard seen.insert(id).inserted else { throw .duplicateEvent(index: i) }
            envs.append(e); ids.append(id)
        }
        guard EventsTree.root(ids, crypto) == h.eventsRoot else { throw .eventsRootMismatch }
        var checked = 0
        for i in envs.indices where !verified.contains(ids[i]) {
            guard envs[i].verifySignature(crypto, scratch: &scratch) else { throw .badSignature(index: i) }
            checked += 1
        }
        var s = p
        let ctx = BlockContext(height: h.height, timestampMs: h.timestampMs, proposer: h.proposer, parentStateRoot: h.parentStateRoot)
        do throws(BlockError) {
            try s.beginBlock(ctx)
            for i in envs.indices {
                do { try s.apply(envs[i], id: ids[i], ctx) } catch { throw BlockError.event(index: i, id: ids[i], error) }
            }
            try s.checkPostState(h)
        } catch { throw .block(error) }
        let root = s.sealRoot()
        return ExecutedBlock(state: s, stateRoot: root, ids: ids, envelopes: envs, signaturesVerified: checked)
    }
}
