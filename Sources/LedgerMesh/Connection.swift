import LedgerConsensus
import LedgerCore
import LedgerCrypto
import LedgerNode
import Logging
import NIOCore
import Synchronization

/// Splits the byte stream into `u32 length | body` frames (FORMAT.md §11.1). The
/// length is checked before anything waits for the body, so an oversized claim is
/// refused as soon as its four bytes arrive, without allocating it. The first two
/// frames of a connection are the handshake and get a much smaller limit.
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    /// The limit once the handshake is done, read per frame: it drops to the follower
    /// limit when the peer turns out to be a follower (`Connection.frameBytesMax`).
    let conn: Connection
    private var frames = 0

    init(conn: Connection) { self.conn = conn }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        let limit = frames < 2 ? MeshWire.handshakeFrameBytesMax : conn.frameBytesMax.load(ordering: .relaxed)
        guard Int(length) <= limit else { throw MeshError.frameTooLong(length: Int(length), max: limit) }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        let body = buffer.readSlice(length: Int(length))!
        frames += 1
        context.fireChannelRead(NIOAny(body))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A half frame at EOF is dropped with the connection; nothing to deliver.
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// One TCP connection as the rest of the mesh sees it: safe to read from any
/// thread. The handler (event-loop bound) fills it in as the handshake proceeds.
final class Connection: Sendable {
    struct Peer: Sendable {
        var key: PublicKey
        var role: PeerRole
        /// The address the peer accepts connections on: the dialed one, or the far
        /// end's IP with the port announced in its HELLO.
        var listenHost: String?
        var listenPort: UInt16
        var latencyMs: Double?
        var listenAddress: String? { listenHost.map { "\($0):\(listenPort)" } }
    }

    let id: UInt64
    let channel: any Channel
    /// We dialed it (we are the handshake's initiator).
    let outbound: Bool
    /// For outbound connections, the "host:port" we dialed.
    let dialed: String?
    let remoteAddress: String
    let bytesIn = Atomic<UInt64>(0)
    let bytesOut = Atomic<UInt64>(0)
    /// Frames handed to NIO and not yet written; bounded by `outboundQueueMax`.
    let pending = Atomic<Int>(0)
    /// The largest frame this peer may send: a validator's, or the smaller follower
    /// limit, which bounds what a follower can hold here in a partial frame.
    let frameBytesMax: Atomic<Int>
    private let state = Mutex<Peer?>(nil)

    init(id: UInt64, channel: any Channel, outbound: Bool, dialed: String?, frameBytesMax: Int) {
        self.id = id; self.channel = channel; self.outbound = outbound; self.dialed = dialed
        self.frameBytesMax = Atomic(frameBytesMax)
        remoteAddress = channel.remoteAddress.map(Self.describe) ?? dialed ?? "?"
    }

    /// Nil until the handshake completed.
    var peer: Peer? { state.withLock { $0 } }
    func authenticated(_ p: Peer) { state.withLock { $0 = p } }
    func setLatency(_ ms: Double) { state.withLock { $0?.latencyMs = ms } }

    static func describe(_ a: SocketAddress) -> String {
        "\(a.ipAddress ?? "?"):\(a.port ?? 0)"
    }
}

/// The per-connection protocol: handshake, then encrypted frames, heartbeats and
/// peer lists. Runs on the channel's event loop only.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = MeshWire.Plain
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        case awaitingHello
        case awaitingAuth(peerHello: [UInt8], hello: MeshWire.Hello, role: PeerRole)
        case established(key: PublicKey)
        case closed
    }

    /// What a misbehaving authenticated peer loses per offence (FORMAT.md §11.5).
    static let offencePenalty = 50

    private let mesh: Mesh
    private let conn: Connection
    private var phase: Phase = .awaitingHello
    private var wasActive = false
    /// Both keys were proved (set once; `phase` moves on to `.closed`).
    private var authenticated = false
    /// The ephemeral key-exchange pair; dropped once the session keys exist.
    private var kx: MeshCrypto.KxKeyPair? = .generate()
    private var ourHello: [UInt8] = []
    private var tx: MeshCrypto.FrameCipher?
    private var rx: MeshCrypto.FrameCipher?
    private var lastHeard = NIODeadline.now()
    private var lastPeerList = NIODeadline.now()
    private var ping: (nonce: UInt64, sentAt: NIODeadline)?
    private var timer: Scheduled<Void>?

    init(mesh: Mesh, conn: Connection) { self.mesh = mesh; self.conn = conn }

    private var side: MeshWire.Side { conn.outbound ? .initiator : .responder }
    private var key: PublicKey? {
        switch phase {
        case let .established(k): k
        case let .awaitingAuth(_, h, _): h.nodeKey
        default: nil
        }
    }

    // MARK: Lifecycle

    func channelActive(context: ChannelHandlerContext) {
        wasActive = true
        lastHeard = .now()
        let cfg = mesh.config
        ourHello = MeshWire.Hello(chainID: cfg.chainID.raw, nodeKey: cfg.identity.publicKey, kxPublicKey: kx!.publicKey,
                                  nonce: SecureRandom.bytes(32), listenPort: UInt16(clamping: mesh.listeningPort)).encoded()
        writeFrame(context, ourHello, promise: nil)
        context.flush()
        // The handshake must finish in time; the same timer then drives heartbeats.
        schedule(context, in: cfg.handshakeTimeoutMs)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel(); timer = nil
        if !authenticated, wasActive, !mesh.isStopped {
            // Every connection that ends before both keys were proved counts once,
            // whichever side gave up and why (refusal, bad signature, timeout, garbage).
            mesh.countHandshakeFailure()
        }
        phase = .closed
        mesh.closed(conn)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case let MeshError.frameTooLong(length, max) = error {
            misbehaved(context, "frame of \(length) bytes over the limit of \(max)")
        } else {
            mesh.logger.debug("mesh connection error", metadata: ["peer": "\(conn.remoteAddress)", "error": "\(error)"])
            context.close(promise: nil)
        }
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        let body = buffer.readBytes(length: buffer.readableBytes) ?? []
        let wire = UInt64(4 + body.count)
        conn.bytesIn.add(wire, ordering: .relaxed)
        mesh.bytesIn.add(wire, ordering: .relaxed)
        lastHeard = .now()
        switch phase {
        case .awaitingHello: readHello(context, body)
        case let .awaitingAuth(peerHello, hello, role): readAuth(context, body, peerHello: peerHello, hello: hello, role: role)
        case let .established(key): readSession(context, body, key: key)
        case .closed: break
        }
    }

    private func readHello(_ context: ChannelHandlerContext, _ body: [UInt8]) {
        let cfg = mesh.config
        let hello: MeshWire.Hello
        do { hello = try MeshWire.Hello.decode(body) } catch { return refuse(context, "bad hello: \(error)") }
        guard hello.chainID == cfg.chainID.raw else { return refuse(context, "peer is on another chain") }
        if let d = conn.dialed { mesh.noteAddress(d, key: hello.nodeKey) }
        guard hello.nodeKey != cfg.identity.publicKey else { return refuse(context, "connected to ourselves") }
        if let why = mesh.refusal(hello.nodeKey) { return refuse(context, why) }
        guard let role = mesh.policy(hello.nodeKey) else { return refuse(context, "policy refuses key \(hello.nodeKey.short)") }
        let (i, r) = conn.outbound ? (ourHello, body) : (body, ourHello)
        let signature = cfg.identity.sign(MeshWire.transcript(chainID: cfg.chainID.raw, initiatorHello: i, responderHello: r, signer: side))
        writeFrame(context, signature.bytes, promise: nil)
        context.flush()
        phase = .awaitingAuth(peerHello: body, hello: hello, role: role)
    }

    private func readAuth(_ context: ChannelHandlerContext, _ body: [UInt8], peerHello: [UInt8], hello: MeshWire.Hello, role: PeerRole) {
        let chain = mesh.config.chainID.raw
        let signature: Signature
        do { signature = try MeshWire.decodeAuth(body) } catch { return refuse(context, "bad auth: \(error)") }
        let (i, r) = conn.outbound ? (ourHello, peerHello) : (peerHello, ourHello)
        let theirs: MeshWire.Side = conn.outbound ? .responder : .initiator
        guard Ed25519.verify(signature, MeshWire.transcript(chainID: chain, initiatorHello: i, responderHello: r, signer: theirs), hello.nodeKey) else {
            return refuse(context, "handshake signature does not verify")
        }
        guard let kx else { return refuse(context, "no key-exchange pair") }
        let keys: MeshCrypto.SessionKeys
        do { keys = try MeshCrypto.sessionKeys(kx, peer: hello.kxPublicKey, side: conn.outbound ? .initiator : .responder) } catch {
            return refuse(context, "\(error)")
        }
        tx = MeshCrypto.FrameCipher(key: keys.tx)
        rx = MeshCrypto.FrameCipher(key: keys.rx)
        self.kx = nil
        phase = .established(key: hello.nodeKey)
        authenticated = true

        let listenHost: String? = if let d = conn.dialed {
            MeshAddress.parse(d)?.host
        } else if hello.listenPort != 0 {
            context.channel.remoteAddress?.ipAddress
        } else { nil }
        let listenPort = conn.dialed.flatMap { MeshAddress.parse($0)?.port } ?? hello.listenPort
        conn.authenticated(.init(key: hello.nodeKey, role: role, listenHost: listenHost, listenPort: listenPort))
        if role == .follower { conn.frameBytesMax.store(min(mesh.config.followerFrameBytesMax, mesh.config.frameBytesMax), ordering: .relaxed) }
        guard mesh.register(conn) else {
            // A second connection to a key we keep another one for: not a failure.
            context.close(promise: nil)
            return
        }
        mesh.logger.debug("mesh peer connected", metadata: ["peer": "\(hello.nodeKey.short)", "address": "\(conn.remoteAddress)",
                                                             "outbound": "\(conn.outbound)"])
        sendPeerList(context)
        timer?.cancel()
        schedule(context, in: mesh.config.heartbeatMs)
    }

    private func readSession(_ context: ChannelHandlerContext, _ body: [UInt8], key: PublicKey) {
        let plain: MeshWire.Plain
        do {
            plain = try MeshWire.Plain.decode(try rx!.open(body))
        } catch {
            return misbehaved(context, "frame rejected: \(error)")
        }
        switch plain {
        case let .message(bytes):
            let message: PeerMessage
            do { message = try PeerMessage.decode(bytes, Sodium()) } catch { return misbehaved(context, "peer message: \(error)") }
            mesh.deliver(from: key, message)
        case let .ping(n):
            sendPlain(context, .pong(n), promise: nil)
            context.flush()
        case let .pong(n):
            if let p = ping, p.nonce == n {
                conn.setLatency(Double(NIODeadline.now().uptimeNanoseconds - p.sentAt.uptimeNanoseconds) / 1e6)
                ping = nil
            }
        case let .peers(list):
            mesh.learn(list)
        }
    }

    // MARK: Writing

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        sendPlain(context, unwrapOutboundIn(data), promise: promise)
    }

    private func sendPlain(_ context: ChannelHandlerContext, _ plain: MeshWire.Plain, promise: EventLoopPromise<Void>?) {
        guard case .established = phase, tx != nil else {
            promise?.fail(MeshError.notConnected)
            return
        }
        writeFrame(context, tx!.seal(plain.encoded()), promise: promise)
    }

    private func writeFrame(_ context: ChannelHandlerContext, _ body: [UInt8], promise: EventLoopPromise<Void>?) {
        var buffer = context.channel.allocator.buffer(capacity: 4 + body.count)
        buffer.writeInteger(UInt32(body.count))
        buffer.writeBytes(body)
        let wire = UInt64(buffer.readableBytes)
        conn.bytesOut.add(wire, ordering: .relaxed)
        mesh.bytesOut.add(wire, ordering: .relaxed)
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func sendPeerList(_ context: ChannelHandlerContext) {
        guard case let .established(key) = phase else { return }
        lastPeerList = .now()
        sendPlain(context, .peers(mesh.peerList(excluding: key)), promise: nil)
        context.flush()
    }

    // MARK: Timers

    private func schedule(_ context: ChannelHandlerContext, in ms: UInt64) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(ms))) {
            self.tick(context)
        }
    }

    /// Before the handshake completes this is its timeout; after, one heartbeat.
    private func tick(_ context: ChannelHandlerContext) {
        let cfg = mesh.config
        guard case .established = phase else {
            if case .closed = phase { return }
            return refuse(context, "handshake timed out")
        }
        let now = NIODeadline.now()
        // Silence for ~5 heartbeats means the peer (or the path) is gone; TCP alone
        // may take many minutes to say so.
        if now - lastHeard > .milliseconds(Int64(cfg.heartbeatMs * 5)) {
            mesh.logger.debug("mesh peer silent, dropping", metadata: ["peer": "\(conn.remoteAddress)"])
            context.close(promise: nil)
            return
        }
        let nonce = UInt64.random(in: 0 ... .max)
        ping = (nonce, now)
        sendPlain(context, .ping(nonce), promise: nil)
        context.flush()
        if now - lastPeerList >= .milliseconds(Int64(cfg.peerExchangeMs)) { sendPeerList(context) }
        schedule(context, in: cfg.heartbeatMs)
    }

    // MARK: Failures

    /// The handshake failed: close without scoring, since the key was not proved
    /// (anyone can claim a key in a HELLO). Counted in `channelInactive`.
    private func refuse(_ context: ChannelHandlerContext, _ why: String) {
        mesh.logger.debug("mesh handshake refused", metadata: ["peer": "\(conn.remoteAddress)", "why": "\(why)"])
        phase = .closed
        context.close(promise: nil)
    }

    /// A malformed, oversized, replayed or forged frame: disconnect, count it, and
    /// score the key down if it was proved.
    private func misbehaved(_ context: ChannelHandlerContext, _ why: String) {
        if case .closed = phase { return }
        mesh.framesRejected.add(1, ordering: .relaxed)
        mesh.logger.notice("mesh peer misbehaved, disconnecting", metadata: ["peer": "\(conn.remoteAddress)", "why": "\(why)"])
        if case let .established(key) = phase { mesh.penalize(key, by: Self.offencePenalty) }
        phase = .closed
        context.close(promise: nil)
    }
}
