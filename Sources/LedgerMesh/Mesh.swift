import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerNode
import Logging
import NIOCore
import NIOPosix
import Synchronization

// The TCP mesh between nodes (issue 4). Every byte on the wire is in FORMAT.md §11.
//
// Threads: one NIO event loop runs every connection handler, the dialer and the
// timers. `Mesh`'s shared state sits behind one mutex that no code holds while it
// calls out (the sink, the policy, NIO writes and closes); connection handlers are
// confined to the event loop.

public struct MeshConfig: Sendable {
    public var host: String = "127.0.0.1"
    /// 0: any free port (`Mesh.listeningPort` says which).
    public var port: Int
    /// This node's key (the validator's first consensus key, or a follower's own key).
    public var identity: SigningKey
    public var chainID: ChainID
    /// "host:port" peers to dial, and re-dial with backoff for as long as the mesh runs.
    public var bootstrap: [String]
    public var frameBytesMax: Int = Limits.peerMessageBytesMax + 64
    public var heartbeatMs: UInt64 = 1_000
    public var reconnectMinMs: UInt64 = 100, reconnectMaxMs: UInt64 = 5_000
    public var banScore: Int = -100
    public var banMs: UInt64 = 30_000
    /// Frames queued per peer before further sends to it are dropped.
    public var outboundQueueMax: Int = 10_000
    /// A connection whose handshake has not finished by then is closed.
    public var handshakeTimeoutMs: UInt64 = 5_000
    /// How often each peer is sent the list of our peers' listen addresses (also sent on connect).
    public var peerExchangeMs: UInt64 = 10_000
    /// Follower connections a node keeps at once; more are refused after the handshake.
    public var followersMax = 32
    /// The largest frame a follower may send (it sends state-transfer requests and the
    /// client events submitted to it): with `followersMax`, what followers can hold here
    /// in partial frames is bounded (32 × 4 MiB), not 32 MiB each.
    public var followerFrameBytesMax = 4 << 20

    public init(port: Int, identity: SigningKey, chainID: ChainID, bootstrap: [String]) {
        self.port = port; self.identity = identity; self.chainID = chainID; self.bootstrap = bootstrap
    }
}

public struct MeshCounters: Sendable, Hashable {
    /// All bytes on the wire, framing and handshakes included.
    public var bytesIn: UInt64
    public var bytesOut: UInt64
    /// Oversized, undecryptable (forged, replayed, reordered) or malformed frames.
    public var framesRejected: UInt64
    /// Connections that ended before both keys were proved, on either side's initiative.
    public var handshakesFailed: UInt64
    /// Authenticated peers that went away.
    public var disconnects: UInt64
    /// Sends dropped because the peer's outbound queue was full.
    public var framesDropped: UInt64
    /// Messages that decoded but proved their sender faulty (the replica's judgement,
    /// `penalize(_:for:)`), e.g. a relayed event with a forged signature.
    public var peerFaults: UInt64
    /// Followers refused because `followersMax` were connected.
    public var followersRefused: UInt64
}

public enum MeshError: Error, Sendable, Equatable, CustomStringConvertible {
    case frameTooLong(length: Int, max: Int)
    case notConnected
    case stopped
    case alreadyStarted
    case badAddress(String)
    case bind(host: String, port: Int, cause: String)

    public var description: String {
        switch self {
        case let .frameTooLong(l, m): "mesh frame of \(l) bytes over the limit of \(m)"
        case .notConnected: "mesh peer not connected"
        case .stopped: "mesh stopped"
        case .alreadyStarted: "mesh already started"
        case let .badAddress(a): "bad peer address \"\(a)\" (expected host:port)"
        case let .bind(h, p, c): "cannot listen on \(h):\(p): \(c)"
        }
    }
}

/// "host:port", with an IPv6 host in brackets.
struct MeshAddress: Sendable, Hashable {
    var host: String
    var port: UInt16

    static func parse(_ s: String) -> MeshAddress? {
        guard let colon = s.lastIndex(of: ":"), let port = UInt16(s[s.index(after: colon)...]), port != 0 else { return nil }
        var host = String(s[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, host.utf8.count <= MeshWire.hostBytesMax else { return nil }
        return MeshAddress(host: host, port: port)
    }
}

public final class Mesh: PeerTransport, Sendable {
    /// Addresses we know of (bootstrap and gossiped); gossip beyond it is ignored.
    static let targetsMax = 256
    /// A gossiped address that failed this many dials in a row is forgotten
    /// (bootstrap addresses are retried for as long as the mesh runs).
    static let gossipedFailuresMax = 8

    let config: MeshConfig
    let policy: @Sendable (PublicKey) -> PeerRole?
    let sink: any PeerMessageSink
    let logger: Logger
    private let group: MultiThreadedEventLoopGroup

    let bytesIn = Atomic<UInt64>(0)
    let bytesOut = Atomic<UInt64>(0)
    let framesRejected = Atomic<UInt64>(0)
    private let handshakesFailed = Atomic<UInt64>(0)
    private let disconnects = Atomic<UInt64>(0)
    private let framesDropped = Atomic<UInt64>(0)
    private let peerFaults = Atomic<UInt64>(0)
    private let followersRefused = Atomic<UInt64>(0)
    private let stopped = Atomic<Bool>(false)
    private let port = Atomic<Int>(0)
    private let state = Mutex(State())

    /// An address to keep a connection to.
    struct Target {
        /// The key last seen (or announced) at this address: no dial while it is connected.
        var keyHint: PublicKey?
        var bootstrap: Bool
        var failures = 0
        var notBefore: NIODeadline
        var dialing = false
    }

    struct State {
        var started = false
        var server: (any Channel)?
        var dialer: RepeatedTask?
        var nextID: UInt64 = 0
        /// Every open channel, handshaking ones included, so `stop` can close them.
        var open: [UInt64: any Channel] = [:]
        /// One authenticated connection per key.
        var peers: [PublicKey: Connection] = [:]
        /// Kept across reconnects, so that reconnecting does not wash a score clean.
        var scores: [PublicKey: Int] = [:]
        var bans: [PublicKey: NIODeadline] = [:]
        var targets: [String: Target] = [:]

        /// When a ban has run out the key starts again from 0.
        mutating func isBanned(_ key: PublicKey, _ now: NIODeadline) -> Bool {
            guard let until = bans[key] else { return false }
            if now < until { return true }
            bans[key] = nil; scores[key] = 0
            return false
        }
    }

    /// `policy` says what role an authenticated key may have (nil: refuse it); it is
    /// called on the event loop for every handshake, so it must be cheap.
    public init(config: MeshConfig, policy: @escaping @Sendable (PublicKey) -> PeerRole?, sink: any PeerMessageSink, logger: Logger) {
        self.config = config; self.policy = policy; self.sink = sink; self.logger = logger
        // One thread: the mesh is I/O bound, and the machine's cores belong to consensus and verification.
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    deinit {
        if !stopped.load(ordering: .acquiring) { group.shutdownGracefully { _ in } }
    }

    var isStopped: Bool { stopped.load(ordering: .acquiring) }

    public var listeningPort: Int { port.load(ordering: .acquiring) }

    public var counters: MeshCounters {
        MeshCounters(bytesIn: bytesIn.load(ordering: .relaxed), bytesOut: bytesOut.load(ordering: .relaxed),
                     framesRejected: framesRejected.load(ordering: .relaxed), handshakesFailed: handshakesFailed.load(ordering: .relaxed),
                     disconnects: disconnects.load(ordering: .relaxed), framesDropped: framesDropped.load(ordering: .relaxed),
                     peerFaults: peerFaults.load(ordering: .relaxed), followersRefused: followersRefused.load(ordering: .relaxed))
    }

    // MARK: Lifecycle

    /// Binds the listener, then dials the bootstrap peers and keeps dialing what is
    /// not connected (a dialer tick on the event loop).
    public func start() async throws {
        var bootstrap: [String] = []
        for b in config.bootstrap {
            guard MeshAddress.parse(b) != nil else { throw MeshError.badAddress(b) }
            bootstrap.append(b)
        }
        let first = state.withLock { s in
            defer { s.started = true }
            return !s.started
        }
        guard first, !isStopped else { throw MeshError.alreadyStarted }
        let server: any Channel
        do {
            server = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 64)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in self.initialize(channel, dialed: nil) }
                .bind(host: config.host, port: config.port).get()
        } catch {
            throw MeshError.bind(host: config.host, port: config.port, cause: "\(error)")
        }
        port.store(server.localAddress?.port ?? 0, ordering: .releasing)
        let tickMs = Int64(max(10, min(config.reconnectMinMs, 100)))
        let dialer = group.next().scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(tickMs)) { _ in self.dialDue() }
        let now = NIODeadline.now()
        state.withLock { s in
            s.server = server; s.dialer = dialer
            for b in bootstrap { s.targets[b] = Target(keyHint: nil, bootstrap: true, notBefore: now) }
        }
        logger.info("mesh listening", metadata: ["port": "\(listeningPort)", "key": "\(config.identity.publicKey.short)"])
    }

    /// Closes every connection and the listener and stops the event loop: after it
    /// returns the mesh calls neither the sink nor the policy again.
    public func stop() async {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let (server, channels, dialer) = state.withLock { s in (s.server, Array(s.open.values), s.dialer) }
        dialer?.cancel()
        try? await server?.close()
        for c in channels { try? await c.close() }  // one may have closed already; that is fine
        try? await group.shutdownGracefully()
    }

    // MARK: PeerTransport

    public func send(_ message: PeerMessage, to destination: Destination) { send(batch: [(message, destination)]) }

    /// Every message encoded once; each connection gets its frames in one event-loop
    /// task and one flush, instead of a task, a wake-up and a write per message.
    public func send(batch: [(message: PeerMessage, to: Destination)]) {
        guard !batch.isEmpty else { return }
        let peers = state.withLock { $0.peers }
        var queues: [ObjectIdentifier: (Connection, [MeshWire.Plain])] = [:]
        for (m, d) in batch {
            let plain = MeshWire.Plain.message(m.encoded())
            if case let .peer(k) = d, let c = peers[k] {
                queues[ObjectIdentifier(c), default: (c, [])].1.append(plain)
            } else {
                for c in peers.values { queues[ObjectIdentifier(c), default: (c, [])].1.append(plain) }
            }
        }
        for (c, plains) in queues.values { enqueue(plains, to: c) }
    }

    public func peers() -> [PeerInfo] {
        state.withLock { s in
            s.peers.values.compactMap { c -> PeerInfo? in
                guard let p = c.peer else { return nil }
                return PeerInfo(key: p.key, address: c.remoteAddress, listenAddress: p.listenAddress, role: p.role, outbound: c.outbound,
                                latencyMs: p.latencyMs, score: s.scores[p.key] ?? 0,
                                bytesIn: c.bytesIn.load(ordering: .relaxed), bytesOut: c.bytesOut.load(ordering: .relaxed))
            }
        }.sorted { $0.key < $1.key }
    }

    /// A message that proved its sender faulty costs it what a forged frame does and
    /// closes its connection (FORMAT.md §11.5): it reconnects with a lower score, and
    /// repeat offenders are banned. (The driver logs the fault; a ban is logged here.)
    public func penalize(_ peer: PublicKey, for fault: PeerFault) {
        guard !isStopped else { return }
        peerFaults.add(1, ordering: .relaxed)
        let conn = state.withLock { $0.peers[peer] }
        penalize(peer, by: ConnectionHandler.offencePenalty)
        conn?.channel.close(promise: nil)
    }

    /// A key's score, connected or not (0 for a key never penalized or whose ban ran out).
    public func score(_ key: PublicKey) -> Int {
        state.withLock { $0.scores[key] ?? 0 }
    }

    /// Never blocks: a connection's frames go to NIO in one task, written and flushed
    /// once; those over the peer's queue bound (a peer too far behind) are dropped.
    private func enqueue(_ plains: [MeshWire.Plain], to c: Connection) {
        let over = max(0, c.pending.add(plains.count, ordering: .relaxed).newValue - config.outboundQueueMax)
        let taken = plains.count - min(plains.count, over)
        if taken < plains.count {
            c.pending.subtract(plains.count - taken, ordering: .relaxed)
            framesDropped.add(UInt64(plains.count - taken), ordering: .relaxed)
        }
        guard taken > 0 else { return }
        let channel = c.channel
        let frames = plains.prefix(taken)
        channel.eventLoop.execute {
            let done = channel.eventLoop.makePromise(of: Void.self)
            for (i, p) in frames.enumerated() { channel.write(p, promise: i == frames.count - 1 ? done : nil) }
            channel.flush()
            done.futureResult.whenComplete { _ in c.pending.subtract(taken, ordering: .relaxed) }
        }
    }

    // MARK: Connections (called by the handlers, on the event loop)

    func initialize(_ channel: any Channel, dialed: String?) -> EventLoopFuture<Void> {
        let id: UInt64? = state.withLock { s in
            guard !isStopped else { return nil }
            s.nextID += 1
            s.open[s.nextID] = channel
            return s.nextID
        }
        guard let id else { return channel.eventLoop.makeFailedFuture(MeshError.stopped) }
        channel.closeFuture.whenComplete { _ in _ = self.state.withLock { $0.open.removeValue(forKey: id) } }
        let conn = Connection(id: id, channel: channel, outbound: dialed != nil, dialed: dialed, frameBytesMax: config.frameBytesMax)
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(conn: conn)))
            try channel.pipeline.syncOperations.addHandler(ConnectionHandler(mesh: self, conn: conn))
        }
    }

    /// Why a key that just said HELLO is refused before the policy is asked, if it is.
    func refusal(_ key: PublicKey) -> String? {
        let now = NIODeadline.now()
        return state.withLock { s in
            if isStopped { return "mesh stopping" }
            if s.isBanned(key, now) { return "key \(key.short) is banned" }
            return nil
        }
    }

    /// Adds an authenticated connection; false when it must close because we keep
    /// another one to the same key. Both ends decide the same way: the connection
    /// initiated by the smaller key wins; between two initiated by the same key
    /// (it reconnected before we noticed the old one die) the newer wins.
    func register(_ conn: Connection) -> Bool {
        guard let p = conn.peer else { return false }
        let own = config.identity.publicKey
        let now = NIODeadline.now()
        let (accepted, replaced, others): (Bool, Connection?, [Connection]) = state.withLock { s in
            guard !isStopped, !s.isBanned(p.key, now) else { return (false, nil, []) }
            if p.role == .follower, s.peers[p.key] == nil, s.peers.values.filter({ $0.peer?.role == .follower }).count >= config.followersMax {
                followersRefused.add(1, ordering: .relaxed)
                return (false, nil, [])
            }
            var replaced: Connection?
            if let old = s.peers[p.key] {
                let newInitiator = conn.outbound ? own : p.key
                let oldInitiator = old.outbound ? own : p.key
                guard newInitiator == oldInitiator || newInitiator < oldInitiator else { return (false, nil, []) }
                replaced = old
            }
            s.peers[p.key] = conn
            if let a = p.listenAddress { s.targets[a]?.keyHint = p.key }
            return (true, replaced, s.peers.values.filter { $0.id != conn.id })
        }
        replaced?.channel.close(promise: nil)
        // Tell the others about the newcomer now rather than at the next exchange.
        if accepted { for c in others { announcePeers(to: c) } }
        return accepted
    }

    private func announcePeers(to c: Connection) {
        guard let k = c.peer?.key else { return }
        enqueue([.peers(peerList(excluding: k))], to: c)
    }

    func closed(_ conn: Connection) {
        let now = NIODeadline.now()
        let wasPeer = state.withLock { s in
            var wasPeer = false
            if let p = conn.peer, s.peers[p.key]?.id == conn.id {
                s.peers[p.key] = nil
                wasPeer = true
            }
            if let d = conn.dialed { s.dialEnded(d, authenticated: conn.peer != nil, now: now, config: config) }
            return wasPeer
        }
        if wasPeer {
            disconnects.add(1, ordering: .relaxed)
            logger.debug("mesh peer disconnected", metadata: ["peer": "\(conn.peer!.key.short)"])
        }
    }

    func countHandshakeFailure() { handshakesFailed.add(1, ordering: .relaxed) }

    /// Scores a proved key down; below `banScore` it is refused for `banMs`.
    func penalize(_ key: PublicKey, by points: Int) {
        let now = NIODeadline.now()
        let banned: Connection?? = state.withLock { s in
            let score = (s.scores[key] ?? 0) - points
            s.scores[key] = score
            guard score < config.banScore else { return .none }
            s.bans[key] = now + .milliseconds(Int64(config.banMs))
            return .some(s.peers[key])
        }
        if case let .some(c) = banned {
            logger.notice("mesh peer banned", metadata: ["peer": "\(key.short)", "ms": "\(config.banMs)"])
            c?.channel.close(promise: nil)
        }
    }

    func deliver(from key: PublicKey, _ message: PeerMessage) {
        guard !isStopped else { return }
        sink.receive(from: key, message)
    }

    // MARK: Peer exchange and dialing

    func peerList(excluding key: PublicKey) -> [MeshWire.PeerAddress] {
        let list = state.withLock { s in
            s.peers.values.compactMap { c -> MeshWire.PeerAddress? in
                guard let p = c.peer, p.key != key, let h = p.listenHost, p.listenPort != 0 else { return nil }
                return MeshWire.PeerAddress(key: p.key, host: h, port: p.listenPort)
            }
        }
        return Array(list.sorted { $0.key < $1.key }.prefix(MeshWire.peerListEntriesMax))
    }

    /// Remembers gossiped addresses to dial. The handshake decides whether we keep
    /// the connection: the announced key is only a hint to avoid a useless dial.
    func learn(_ list: [MeshWire.PeerAddress]) {
        let own = config.identity.publicKey
        let now = NIODeadline.now()
        state.withLock { s in
            for e in list where e.key != own && s.peers[e.key] == nil && e.port != 0 {
                guard let a = MeshAddress.parse(e.address) else { continue }
                let address = "\(a.host):\(a.port)"
                if s.targets[address] == nil, s.targets.count < Self.targetsMax {
                    s.targets[address] = Target(keyHint: e.key, bootstrap: false, notBefore: now)
                }
            }
        }
    }

    /// What the handshake revealed about an address we dialed (our own key included:
    /// then we never dial it again).
    func noteAddress(_ address: String, key: PublicKey) {
        state.withLock { $0.targets[address]?.keyHint = key }
    }

    private func dialDue() {
        let own = config.identity.publicKey
        let now = NIODeadline.now()
        let due: [String] = state.withLock { s in
            guard !isStopped else { return [] }
            let listening = Set(s.peers.values.compactMap { $0.peer?.listenAddress })
            var due: [String] = []
            for (address, t) in s.targets where !t.dialing && t.notBefore <= now && !listening.contains(address) {
                if let k = t.keyHint, k == own || s.peers[k] != nil || s.isBanned(k, now) { continue }
                due.append(address)
            }
            for a in due { s.targets[a]?.dialing = true }
            return due
        }
        for a in due { dial(a) }
    }

    private func dial(_ address: String) {
        guard let a = MeshAddress.parse(address) else { return }
        ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.milliseconds(Int64(max(config.handshakeTimeoutMs, 1_000))))
            .channelInitializer { channel in self.initialize(channel, dialed: address) }
            .connect(host: a.host, port: Int(a.port))
            .whenFailure { _ in
                let now = NIODeadline.now()
                self.state.withLock { $0.dialEnded(address, authenticated: false, now: now, config: self.config) }
            }
    }
}

extension Mesh.State {
    /// Schedules the next dial of an address with exponential backoff: from
    /// `reconnectMinMs` after a connection that was authenticated, doubling per
    /// failure up to `reconnectMaxMs`, jittered down by up to half so that nodes
    /// restarted together do not dial in lockstep.
    mutating func dialEnded(_ address: String, authenticated: Bool, now: NIODeadline, config: MeshConfig) {
        guard var t = targets[address] else { return }
        t.dialing = false
        t.failures = authenticated ? 0 : t.failures + 1
        if !t.bootstrap, t.failures >= Mesh.gossipedFailuresMax {
            targets[address] = nil
            return
        }
        let base = min(config.reconnectMaxMs, config.reconnectMinMs << UInt64(min(t.failures, 20)))
        let ms = base / 2 + UInt64.random(in: 0 ... max(1, base / 2))
        t.notBefore = now + .milliseconds(Int64(ms))
        targets[address] = t
    }
}
