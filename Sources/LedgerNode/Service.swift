import LedgerAudit
import LedgerConsensus
import LedgerCore
import LedgerProjections
import LedgerStore

// The seams between the node driver and its two outer layers, the TCP mesh
// (LedgerMesh, SwiftNIO) and the HTTP API (LedgerHTTP, Hummingbird). The driver knows
// only these protocols, so neither heavy package is a dependency of LedgerNode, and
// tests can drive a node through an in-memory hub.

/// The network as the node driver sees it.
public protocol PeerTransport: AnyObject, Sendable {
    /// Queues a message for a peer, or for every connected peer; never blocks. A
    /// `.peer` destination that is not connected goes to every peer instead (the
    /// replica addresses validators by consensus key, which a rotation changes).
    func send(_ message: PeerMessage, to destination: Destination)
    /// Queues several messages, in order, as `send` does one by one; a transport may
    /// hand them to each connection together (one wake-up and one write per peer).
    func send(batch: [(message: PeerMessage, to: Destination)])
    /// The peers connected now.
    func peers() -> [PeerInfo]
    /// A peer proved faulty by what it sent (the replica's judgement): the transport
    /// scores it down and may drop or ban it.
    func penalize(_ peer: PublicKey, for fault: PeerFault)
}

extension PeerTransport {
    public func send(batch: [(message: PeerMessage, to: Destination)]) {
        for (m, d) in batch { send(m, to: d) }
    }
}

/// Where the mesh delivers what authenticated peers send.
public protocol PeerMessageSink: AnyObject, Sendable {
    func receive(from peer: PublicKey, _ message: PeerMessage)
}

public enum PeerRole: String, Sendable, Hashable, Codable {
    case validator
    case follower
}

public struct PeerInfo: Sendable, Hashable {
    /// The node key the peer proved in the handshake.
    public var key: PublicKey
    /// "host:port" of the connection's far end.
    public var address: String
    /// The address the peer listens on, as it announced it (for peer exchange).
    public var listenAddress: String?
    public var role: PeerRole
    public var outbound: Bool
    /// Round-trip time of the last heartbeat.
    public var latencyMs: Double?
    /// Starts at 0; each misbehaviour lowers it. Below the ban threshold the peer is refused for a while.
    public var score: Int
    public var bytesIn: UInt64
    public var bytesOut: UInt64

    public init(key: PublicKey, address: String, listenAddress: String? = nil, role: PeerRole, outbound: Bool,
                latencyMs: Double? = nil, score: Int = 0, bytesIn: UInt64 = 0, bytesOut: UInt64 = 0) {
        self.key = key; self.address = address; self.listenAddress = listenAddress; self.role = role
        self.outbound = outbound; self.latencyMs = latencyMs; self.score = score
        self.bytesIn = bytesIn; self.bytesOut = bytesOut
    }
}

/// What happened to one submitted event.
public struct Receipt: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        /// Admitted to the mempool (and passed on to the other validators).
        case accepted
        /// In a committed block (only when the caller waited, or it was already there).
        case committed
        /// Refused; `error` says why. Nothing was kept.
        case rejected
        /// Admitted, but not committed before the wait ran out.
        case pending
    }
    /// Nil only when the bytes did not decode into an envelope.
    public var id: EventID?
    public var status: Status
    /// A stable machine-readable code ("bad_signature", "stale_nonce", …) when rejected.
    public var code: String?
    public var error: String?
    public var height: Height?
    public var sequence: SequenceNumber?

    public init(id: EventID?, status: Status, code: String? = nil, error: String? = nil,
                height: Height? = nil, sequence: SequenceNumber? = nil) {
        self.id = id; self.status = status; self.code = code; self.error = error
        self.height = height; self.sequence = sequence
    }
}

public enum EventStatus: Sendable, Hashable {
    case pending
    case committed(height: Height, sequence: SequenceNumber)
    case unknown
}

public struct NodeStatus: Sendable, Hashable {
    public var role: PeerRole
    public var nodeKey: PublicKey
    public var chainID: String
    public var height: Height
    public var headHash: Hash32
    public var stateRoot: Hash32
    public var view: UInt64
    public var changing: Bool
    public var primary: PublicKey?
    public var mempool: Int
    public var peers: Int
    public var viewChanges: UInt64
    public var committedEvents: UInt64
    /// Mean commit latency of the last few hundred events this node admitted (ms).
    public var commitLatencyMs: Double?
    public var ready: Bool
    /// Set while the node shuts down: it takes no more work.
    public var stopping: Bool

    public init(role: PeerRole, nodeKey: PublicKey, chainID: String, height: Height, headHash: Hash32, stateRoot: Hash32,
                view: UInt64, changing: Bool, primary: PublicKey?, mempool: Int, peers: Int, viewChanges: UInt64,
                committedEvents: UInt64, commitLatencyMs: Double?, ready: Bool, stopping: Bool) {
        self.role = role; self.nodeKey = nodeKey; self.chainID = chainID; self.height = height; self.headHash = headHash
        self.stateRoot = stateRoot; self.view = view; self.changing = changing; self.primary = primary
        self.mempool = mempool; self.peers = peers; self.viewChanges = viewChanges; self.committedEvents = committedEvents
        self.commitLatencyMs = commitLatencyMs; self.ready = ready; self.stopping = stopping
    }
}

public struct FeeEstimate: Sendable, Hashable {
    /// The smallest fee the next block accepts for a 1-gas event (a plain transfer).
    public var minFee: UInt64
    /// A fee for a 1-gas event that gets into the next block or two at the current
    /// mempool size; an event of kind K should offer `gas[K] × suggested`.
    public var suggested: UInt64
    public var mempool: Int
    /// The base fee per unit of gas (rule version 2; under version 1 it is the flat minimum fee).
    public var baseFee: UInt64
    public var ruleVersion: UInt16
    /// Gas of each event kind for an event under 512 bytes (`Gas.of`); 1 for every kind under version 1.
    public var gas: [String: UInt64]
    public init(minFee: UInt64, suggested: UInt64, mempool: Int, baseFee: UInt64, ruleVersion: UInt16, gas: [String: UInt64]) {
        self.minFee = minFee; self.suggested = suggested; self.mempool = mempool
        self.baseFee = baseFee; self.ruleVersion = ruleVersion; self.gas = gas
    }

    /// The estimate for a state and a mempool size: the base fee may rise by 1/8 per full
    /// block ahead, so the suggestion allows for one such rise per block of backlog.
    public static func make(_ s: LedgerState, mempool: Int) -> FeeEstimate {
        let p = s.parameters
        let blocks = UInt64(mempool) / UInt64(max(1, p.blockEventsMax))
        let economic = s.economy.ruleVersion >= RuleVersion.economy
        let unit = s.requiredFee(.transfer, bytes: 1)
        var gas: [String: UInt64] = [:]
        for k in EventKind.allCases { gas[k.description] = economic ? Gas.of(k, bytes: 1) : 1 }
        let ahead = economic ? unit + (unit + 7) / 8 : unit
        return FeeEstimate(minFee: unit, suggested: ahead.saturatingMultiplied(1 + blocks), mempool: mempool,
                           baseFee: economic ? s.economy.baseFee : p.minFee, ruleVersion: s.economy.ruleVersion, gas: gas)
    }
}

extension UInt64 {
    func saturatingMultiplied(_ b: UInt64) -> UInt64 {
        let (m, o) = multipliedReportingOverflow(by: b)
        return o ? .max : m
    }
}

public enum ServiceError: Error, Sendable, Equatable, CustomStringConvertible {
    case noSuchHeight(Height)
    /// The state at this height is older than the node keeps (`StateRetention`).
    case heightPruned(Height, oldest: Height)
    case store(StoreError)
    case unavailable(String)
    public var description: String {
        switch self {
        case let .noSuchHeight(h): "no state at height \(h.value)"
        case let .heightPruned(h, oldest): "the state at height \(h.value) is pruned: this node keeps heights \(oldest.value) and later"
        case let .store(e): e.description
        case let .unavailable(why): why
        }
    }
}

extension StateRetention {
    /// The state at `height` (nil: the head) of a node whose head state is `head`: the
    /// head itself, or a refold from the newest kept checkpoint at or below `height`.
    /// A height above the head is unknown; one below the window is pruned.
    public func state(at height: Height?, head: LedgerState, log: any EventLog) throws(ServiceError) -> LedgerState {
        guard let height, height != head.height else { return head }
        guard height < head.height else { throw .noSuchHeight(height) }
        let oldest = oldest(head: head.height)
        guard height >= oldest else { throw .heightPruned(height, oldest: oldest) }
        do { return try StateLoader.load(log, upTo: height).0 } catch { throw .unavailable(error.description) }
    }
}

/// What the HTTP API serves from. Implemented by the node driver (validators and
/// followers); tests may implement it over a solo producer.
public protocol NodeService: AnyObject, Sendable {
    /// The node's log, for reads (blocks, events, streams): safe from any thread.
    var log: any EventLog { get }
    /// Admits each event (size, decode, signature, chain, nonce, fee, balance); with
    /// `waitCommitted`, returns once each admitted event is committed or `timeoutMs` passed.
    func submit(_ events: [[UInt8]], waitCommitted: Bool, timeoutMs: UInt64) async -> [Receipt]
    func eventStatus(_ id: EventID) async -> EventStatus
    func status() async -> NodeStatus
    /// The projected state at head (nil) or at a committed height.
    func state(at height: Height?) async throws(ServiceError) -> LedgerState
    func feeEstimate() async -> FeeEstimate
    func peers() -> [PeerInfo]
    /// Up to `max` committed events from sequence `from` on: empty when there are none
    /// yet, nil when no more will come (the node is stopping). A subscription calls it
    /// again and again, reading ahead of its socket by one batch only.
    func committedEvents(from: SequenceNumber, max: Int) throws(ServiceError) -> [LoggedEvent]?
}
